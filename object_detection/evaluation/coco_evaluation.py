"""COCO box evaluation with pycocotools.

Detections and ground truth arrive in model coordinates (yxyx normalized to the resized model
input, which `fixed_shape_resizer` stretches from the whole original image) and are converted
here, at the edge, to absolute `[x, y, w, h]` in the original image, with 1-based category ids
(model class + CLASS_ID_OFFSET). Each worker accumulates its own shard; `merge` joins the shards
gathered from every worker before `evaluate`, which prints pycocotools' 12-line summary exactly
as pycocotools prints it and returns the numbers.
"""
from __future__ import annotations

import contextlib
import io
import json
from typing import Any, Mapping, Sequence

import numpy as np

CLASS_ID_OFFSET = 1

# (key in our reports, OD API metric name), in pycocotools' `stats` order.
METRICS = (
    ("mAP", "DetectionBoxes_Precision/mAP"),
    ("mAP@0.5", "DetectionBoxes_Precision/mAP@.50IOU"),
    ("mAP@0.75", "DetectionBoxes_Precision/mAP@.75IOU"),
    ("mAP_small", "DetectionBoxes_Precision/mAP (small)"),
    ("mAP_medium", "DetectionBoxes_Precision/mAP (medium)"),
    ("mAP_large", "DetectionBoxes_Precision/mAP (large)"),
    ("AR@1", "DetectionBoxes_Recall/AR@1"),
    ("AR@10", "DetectionBoxes_Recall/AR@10"),
    ("AR@100", "DetectionBoxes_Recall/AR@100"),
    ("AR@100_small", "DetectionBoxes_Recall/AR@100 (small)"),
    ("AR@100_medium", "DetectionBoxes_Recall/AR@100 (medium)"),
    ("AR@100_large", "DetectionBoxes_Recall/AR@100 (large)"),
)


def _image_id(source_id: Any) -> int | str:
    if isinstance(source_id, bytes):
        source_id = source_id.decode("utf-8")
    try:
        return int(source_id)
    except (TypeError, ValueError):
        return str(source_id)


def yxyx_normalized_to_xywh_absolute(boxes: np.ndarray, height: float, width: float) -> np.ndarray:
    """float [N, 4] yxyx normalized -> float [N, 4] [x, y, w, h] in pixels."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    ymin, xmin, ymax, xmax = (boxes[:, i] for i in range(4))
    return np.stack([xmin * width, ymin * height, (xmax - xmin) * width, (ymax - ymin) * height],
                    axis=1)


class CocoEvaluator:
    """Accumulates ground truth and detections of evaluated images; computes COCO metrics.

    Args:
      categories: [{"id": 1-based id, "name": str}, ...] (from the label map).
      include_metrics_per_category: also report AP per category.
    """

    def __init__(self, categories: Sequence[Mapping[str, Any]],
                 include_metrics_per_category: bool = False):
        self.categories = [dict(id=int(c["id"]), name=str(c["name"])) for c in categories]
        self.include_metrics_per_category = include_metrics_per_category
        self.images: dict[Any, dict] = {}
        self.groundtruth: list[dict] = []
        self.detections: list[dict] = []

    def add_image(self, *, source_id, original_shape: Sequence[int], groundtruth_boxes,
                  groundtruth_classes, num_groundtruth_boxes: int, detection_boxes,
                  detection_scores, detection_classes, num_detections: int,
                  groundtruth_is_crowd=None, groundtruth_area=None) -> None:
        """Adds one image (numpy arrays; boxes yxyx normalized; classes 0-based)."""
        image_id = _image_id(source_id)
        if image_id in self.images:
            return  # an image seen twice (padded last batch) counts once
        height, width = (float(s) for s in original_shape[:2])
        self.images[image_id] = {"id": image_id, "height": height, "width": width}
        n = int(num_groundtruth_boxes)
        gt_xywh = yxyx_normalized_to_xywh_absolute(np.asarray(groundtruth_boxes)[:n], height, width)
        for i in range(n):
            crowd = int(groundtruth_is_crowd[i]) if groundtruth_is_crowd is not None else 0
            area = float(groundtruth_area[i]) if groundtruth_area is not None else 0.0
            if area <= 0:
                area = float(gt_xywh[i, 2] * gt_xywh[i, 3])
            self.groundtruth.append({
                "image_id": image_id,
                "category_id": int(groundtruth_classes[i]) + CLASS_ID_OFFSET,
                "bbox": [float(v) for v in gt_xywh[i]],
                "area": area,
                "iscrowd": crowd,
            })
        d = int(num_detections)
        det_xywh = yxyx_normalized_to_xywh_absolute(np.asarray(detection_boxes)[:d], height, width)
        for i in range(d):
            self.detections.append({
                "image_id": image_id,
                "category_id": int(detection_classes[i]) + CLASS_ID_OFFSET,
                "bbox": [round(float(v), 2) for v in det_xywh[i]],
                "score": float(detection_scores[i]),
            })

    def state(self) -> dict:
        return {"images": list(self.images.values()), "groundtruth": self.groundtruth,
                "detections": self.detections}

    def merge(self, states: Sequence[Mapping[str, Any]]) -> None:
        """Adds the images of other workers (their `state()`), skipping images already held."""
        for state in states:
            new_ids = set()
            for image in state["images"]:
                if image["id"] not in self.images:
                    self.images[image["id"]] = image
                    new_ids.add(image["id"])
            self.groundtruth += [g for g in state["groundtruth"] if g["image_id"] in new_ids]
            self.detections += [d for d in state["detections"] if d["image_id"] in new_ids]

    @property
    def num_images(self) -> int:
        return len(self.images)

    def write_detections(self, path: str) -> None:
        """Detections as a COCO results json (list of {image_id, category_id, bbox, score})."""
        with open(path, "w") as f:
            json.dump(self.detections, f)

    def evaluate(self, print_summary: bool = True) -> dict[str, float]:
        """Runs pycocotools' COCOeval (bbox); prints its summary; returns the 12 numbers.

        Returns:
          {our key: value} for the 12 COCO numbers (see METRICS), and, when
          include_metrics_per_category, "AP/<category name>" entries.
        """
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        if not self.images:
            raise ValueError("COCO evaluation: no image was evaluated (is the eval input empty?)")
        gt = COCO()
        annotations = [dict(a, id=i + 1) for i, a in enumerate(self.groundtruth)]
        gt.dataset = {"images": list(self.images.values()), "annotations": annotations,
                      "categories": self.categories}
        with contextlib.redirect_stdout(io.StringIO()):
            gt.createIndex()
            dt = gt.loadRes(self.detections) if self.detections else COCO()
        if not self.detections:
            dt.dataset = {"images": list(self.images.values()), "annotations": [],
                          "categories": self.categories}
            with contextlib.redirect_stdout(io.StringIO()):
                dt.createIndex()
        coco_eval = COCOeval(gt, dt, iouType="bbox")
        coco_eval.params.imgIds = sorted(self.images, key=str)
        quiet = io.StringIO()
        with contextlib.redirect_stdout(quiet):
            coco_eval.evaluate()
            coco_eval.accumulate()
        summary = io.StringIO()
        with contextlib.redirect_stdout(summary):
            coco_eval.summarize()
        if print_summary:
            print(summary.getvalue(), end="", flush=True)
        metrics = {key: float(v) for (key, _), v in zip(METRICS, coco_eval.stats)}
        if self.include_metrics_per_category:
            # precision: [T IoU thresholds, R recall points, K categories, A areas, M max dets]
            precision = coco_eval.eval["precision"]
            for k, cat_id in enumerate(coco_eval.params.catIds):
                p = precision[:, :, k, 0, -1]
                name = next(c["name"] for c in self.categories if c["id"] == cat_id)
                metrics[f"AP/{name}"] = float(np.mean(p[p > -1])) if np.any(p > -1) else -1.0
        return metrics


def od_api_metric_names(metrics: Mapping[str, float]) -> dict[str, float]:
    """The same numbers under the OD API's metric names (TensorBoard, OD API users' tools)."""
    names = dict(METRICS)
    return {names.get(k, f"DetectionBoxes_PerformanceByCategory/{k}"): v
            for k, v in metrics.items()}
