"""COCO box evaluation with pycocotools (or faster-coco-eval, the same algorithm in C++).

Detections and ground truth arrive in model coordinates (yxyx normalized to the resized model
input, which `fixed_shape_resizer` stretches from the whole original image) and are converted
here, at the edge, to absolute `[x, y, w, h]` in the original image, with 1-based category ids
(model class + CLASS_ID_OFFSET). Each worker accumulates its own shard; `merge` joins the shards
gathered from every worker before `evaluate`, which prints pycocotools' 12-line summary exactly
as pycocotools prints it and returns the numbers.

Backends (`backend`, the `--eval_backend` flag): "pycocotools" (the reference) or
"faster_coco_eval" (the faster-coco-eval package: pycocotools' evaluate and accumulate
reimplemented in C++; the same 12 numbers, which tests/evaluation and
benchmarks/coco_eval_benchmark.py check). faster-coco-eval needs integer image ids, so images
with string source ids are numbered in the order pycocotools sorts them, which keeps its
tie-breaking between equal scores the same.

Per category (`include_metrics_per_category`), from the accumulated precision
[T IoU thresholds, R recall points, K categories, A areas, M max dets] and recall [T, K, A, M]
arrays, at area "all" and maxDets 100: AP (IoU 0.5:0.95), AP@0.5, AP@0.75, AR@100, and the
number of ground-truth boxes that are not crowd (the positives AP counts); -1 where the
category has no ground truth (pycocotools' convention). They are printed as a table after the
summary, and `write_pr_curves` plots the precision-recall curve of each category.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import re
from typing import Any, Mapping, Sequence

import numpy as np

from object_detection.core import np_box_ops
from object_detection.core.standard_fields import CLASS_ID_OFFSET
from object_detection.utils.errors import ConfigError
from object_detection.utils.log import console_line

BACKENDS = ("pycocotools", "faster_coco_eval")

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

# (per-category key prefix in our reports: "<prefix>/<category name>", OD API name prefix).
# The OD API names come from its coco_tools.COCOEvalWrapper.ComputeMetrics (the first with
# include_metrics_per_category, the others with all_metrics_per_category), prefixed with
# "DetectionBoxes_" by its CocoDetectionEvaluator; num_groundtruth has no OD API counterpart.
PER_CATEGORY_METRICS = (
    ("AP", "DetectionBoxes_PerformanceByCategory/mAP"),
    ("AP@0.5", "DetectionBoxes_Precision mAP@.50IOU ByCategory"),
    ("AP@0.75", "DetectionBoxes_Precision mAP@.75IOU ByCategory"),
    ("AR@100", "DetectionBoxes_Recall AR@100 ByCategory"),
    ("num_groundtruth", "DetectionBoxes_PerformanceByCategory/num_groundtruth"),
)


def image_key(source_id: Any) -> int | str:
    """The id of an image in evaluation: its source id, as an int when it is one."""
    if isinstance(source_id, bytes):
        source_id = source_id.decode("utf-8")
    try:
        return int(source_id)
    except (TypeError, ValueError):
        return str(source_id)


def check_backend(backend: str) -> None:
    """Raises ConfigError naming `--eval_backend` unless `backend` is in BACKENDS."""
    if backend not in BACKENDS:
        raise ConfigError(
            f"--eval_backend: {backend!r} is not supported; supported: {list(BACKENDS)}.")


class CocoEvaluator:
    """Accumulates ground truth and detections of evaluated images; computes COCO metrics.

    Args:
      categories: [{"id": 1-based id, "name": str}, ...] (from the label map).
      include_metrics_per_category: also report (and print as a table) AP, AP@0.5, AP@0.75,
        AR@100 and the ground-truth count per category (see the module docstring).
      backend: one of BACKENDS (the `--eval_backend` flag).

    Raises:
      ConfigError: an unknown backend, or "faster_coco_eval" without the package installed.

    After `evaluate`, `coco_eval` holds that run's COCOeval object (its `params` and its
    `eval` dict with the accumulated "precision" and "recall" arrays; the per-image `evalImgs`
    and `ious` are dropped to free memory); None before.
    """

    name = "coco_detection_metrics"  # its eval_config.metrics_set name

    def __init__(self, categories: Sequence[Mapping[str, Any]],
                 include_metrics_per_category: bool = False, backend: str = "pycocotools"):
        check_backend(backend)
        if backend == "faster_coco_eval":
            try:
                import faster_coco_eval  # noqa: F401
            except ImportError as e:
                raise ConfigError(
                    "--eval_backend: 'faster_coco_eval' needs the faster-coco-eval package "
                    f"(pip install the version setup.py names): {e}") from e
        self.categories = [dict(id=int(c["id"]), name=str(c["name"])) for c in categories]
        self.include_metrics_per_category = include_metrics_per_category
        self.backend = backend
        self.images: dict[Any, dict] = {}
        self.groundtruth: list[dict] = []
        self.detections: list[dict] = []
        self.coco_eval = None

    def empty_copy(self) -> CocoEvaluator:
        """A new evaluator with the same settings and no image (to merge gathered states)."""
        return CocoEvaluator(self.categories, self.include_metrics_per_category,
                             backend=self.backend)

    def add_image(self, *, source_id, original_shape: Sequence[int], groundtruth_boxes,
                  groundtruth_classes, num_groundtruth_boxes: int, detection_boxes,
                  detection_scores, detection_classes, num_detections: int,
                  groundtruth_is_crowd=None, groundtruth_area=None,
                  groundtruth_difficult=None) -> None:
        """Adds one image (numpy arrays; boxes yxyx normalized; classes 0-based).

        `groundtruth_difficult` is accepted, so that every evaluator takes the same arguments,
        and not used: COCO has no difficult boxes (crowd boxes are its ignored regions).
        """
        del groundtruth_difficult  # not a COCO notion
        image_id = image_key(source_id)
        if image_id in self.images:
            return  # an image seen twice (padded last batch) counts once
        height, width = (float(s) for s in original_shape[:2])
        self.images[image_id] = {"id": image_id, "height": height, "width": width}
        n = int(num_groundtruth_boxes)
        gt_xywh = np_box_ops.normalized_yxyx_to_absolute_xywh(
            np.asarray(groundtruth_boxes, np.float64)[:n].reshape(-1, 4), height, width)
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
        det_xywh = np_box_ops.normalized_yxyx_to_absolute_xywh(
            np.asarray(detection_boxes, np.float64)[:d].reshape(-1, 4), height, width)
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
        """Runs COCOeval (bbox) with the backend; prints its summary; returns the 12 numbers.

        Returns:
          {our key: value} for the 12 COCO numbers (see METRICS), and, when
          include_metrics_per_category, "AP/<name>", "AP@0.5/<name>", "AP@0.75/<name>",
          "AR@100/<name>" and "num_groundtruth/<name>" for every category (see the module
          docstring), also printed as a table after the summary.
        """
        if not self.images:
            raise ValueError("COCO evaluation: no image was evaluated (is the eval input empty?)")
        images = list(self.images.values())
        annotations = [dict(a, id=i + 1) for i, a in enumerate(self.groundtruth)]
        # Copies: loadRes adds id, area, iscrowd and a box polygon to the dicts it is given.
        detections = [dict(d) for d in self.detections]
        run = _run_pycocotools if self.backend == "pycocotools" else _run_faster_coco_eval
        coco_eval, summary = run(images, annotations, detections, self.categories)
        coco_eval.evalImgs, coco_eval.ious = [], {}  # per-image results: no longer needed
        self.coco_eval = coco_eval
        if print_summary:
            console_line(summary, end="")
        metrics = {key: float(v) for (key, _), v in zip(METRICS, coco_eval.stats)}
        if self.include_metrics_per_category:
            per_category = self._per_category_metrics()
            metrics.update(per_category)
            if print_summary:
                console_line(self._per_category_table(per_category), end="")
        return metrics

    def _per_category_metrics(self) -> dict[str, float]:
        params, accumulated = self.coco_eval.params, self.coco_eval.eval
        precision = accumulated["precision"]  # [T, R, K, A, M]
        recall = accumulated["recall"]  # [T, K, A, M]
        area, max_dets = params.areaRngLbl.index("all"), params.maxDets.index(100)
        t50, t75 = (_threshold_index(params.iouThrs, t) for t in (0.5, 0.75))
        names = {c["id"]: c["name"] for c in self.categories}
        positives: dict[int, int] = {}
        for g in self.groundtruth:
            if not g["iscrowd"]:
                positives[g["category_id"]] = positives.get(g["category_id"], 0) + 1
        metrics = {}
        for k, category_id in enumerate(params.catIds):
            name = names[category_id]
            metrics[f"AP/{name}"] = _mean_defined(precision[:, :, k, area, max_dets])
            metrics[f"AP@0.5/{name}"] = _mean_defined(precision[t50, :, k, area, max_dets])
            metrics[f"AP@0.75/{name}"] = _mean_defined(precision[t75, :, k, area, max_dets])
            metrics[f"AR@100/{name}"] = _mean_defined(recall[:, k, area, max_dets])
            metrics[f"num_groundtruth/{name}"] = float(positives.get(category_id, 0))
        return metrics

    def _per_category_table(self, per_category: Mapping[str, float]) -> str:
        names = [c["name"] for c in sorted(self.categories, key=lambda c: c["id"])]
        width = max([len("category")] + [len(n) for n in names])
        columns = [prefix for prefix, _ in PER_CATEGORY_METRICS]  # the last is the count
        headers = columns[:-1] + ["num_gt"]
        lines = ["Per category (area all, maxDets 100; -1: no ground truth):",
                 f"{'category':<{width}}" + "".join(f"  {h:>7}" for h in headers)]
        for name in names:
            values = [per_category[f"{c}/{name}"] for c in columns]
            lines.append(f"{name:<{width}}" + "".join(f"  {v:>7.3f}" for v in values[:-1])
                         + f"  {int(values[-1]):>7d}")
        return "\n".join(lines) + "\n"

    def tensorboard_names(self, metrics: Mapping[str, float]) -> dict[str, float]:
        """`metrics` (from `evaluate`) under the OD API's metric names."""
        return od_api_metric_names(metrics)

    def write_pr_curves(self, directory: str) -> list[str]:
        """Writes one PNG per category: its precision-recall curves at IoU 0.5 and 0.5:0.95.

        The curves are COCOeval's accumulated precision at its 101 recall points (area all,
        maxDets 100): at IoU 0.5, and the mean over the ten IoU thresholds 0.5:0.95 (whose
        area is the category's AP). Categories without ground truth get no file. File names
        are `pr_curve_<id>_<name>.png`, the name reduced to letters, digits, `.`, `_`, `-`.

        Returns:
          The paths written, in category id order.

        Raises:
          RuntimeError: `evaluate` has not run yet.
        """
        if self.coco_eval is None:
            raise RuntimeError("write_pr_curves: call evaluate() first.")
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        params, precision = self.coco_eval.params, self.coco_eval.eval["precision"]
        area, max_dets = params.areaRngLbl.index("all"), params.maxDets.index(100)
        t50 = _threshold_index(params.iouThrs, 0.5)
        names = {c["id"]: c["name"] for c in self.categories}
        os.makedirs(directory, exist_ok=True)
        paths = []
        for k, category_id in enumerate(params.catIds):
            curves = precision[:, :, k, area, max_dets]  # [T, R]
            if np.all(curves < 0):
                continue  # no ground truth: COCOeval leaves the curve undefined (-1)
            at_50, mean = curves[t50], curves.mean(axis=0)
            figure = Figure(figsize=(5, 4), dpi=100)
            FigureCanvasAgg(figure)
            ax = figure.add_subplot()
            ax.plot(params.recThrs, at_50, label=f"IoU 0.5 (AP {at_50.mean():.3f})")
            ax.plot(params.recThrs, mean, label=f"IoU 0.5:0.95 mean (AP {mean.mean():.3f})")
            ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="recall", ylabel="precision",
                   title=f"{names[category_id]} (id {category_id})")
            ax.grid(alpha=0.3)
            ax.legend(loc="lower left")
            figure.tight_layout()
            path = os.path.join(directory,
                                f"pr_curve_{category_id}_{_file_name(names[category_id])}.png")
            figure.savefig(path)
            paths.append(path)
        return paths


def _threshold_index(thresholds: np.ndarray, value: float) -> int:
    return int(np.argmin(np.abs(np.asarray(thresholds) - value)))


def _mean_defined(values: np.ndarray) -> float:
    """Mean of the entries > -1 (COCOeval's "undefined"), or -1 if there is none."""
    defined = values[values > -1]
    return float(np.mean(defined)) if defined.size else -1.0


def _file_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "category"


def _run_pycocotools(images, annotations, detections, categories):
    """(COCOeval after evaluate and accumulate, its summary text) with pycocotools."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt = COCO()
    gt.dataset = {"images": images, "annotations": annotations, "categories": categories}
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        dt = gt.loadRes(detections) if detections else COCO()
    if not detections:
        dt.dataset = {"images": images, "annotations": [], "categories": categories}
        with contextlib.redirect_stdout(io.StringIO()):
            dt.createIndex()
    coco_eval = COCOeval(gt, dt, iouType="bbox")
    coco_eval.params.imgIds = sorted((image["id"] for image in images), key=str)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_eval.evaluate()
        coco_eval.accumulate()
    summary = io.StringIO()
    with contextlib.redirect_stdout(summary):
        coco_eval.summarize()
    return coco_eval, summary.getvalue()


def _run_faster_coco_eval(images, annotations, detections, categories):
    """(COCOeval_faster after evaluate and accumulate, its summary text): faster-coco-eval.

    Its image ids must be integers: ids that are not all integers are replaced by their rank
    in pycocotools' image order (np.unique: sorted), so that both accumulate the images in
    the same order.
    """
    from faster_coco_eval import COCO, COCOeval_faster

    ids = [image["id"] for image in images]
    if all(isinstance(i, int) for i in ids):
        number = {i: i for i in ids}
    else:
        number = {i: rank + 1 for rank, i in enumerate(sorted(ids, key=str))}
    quiet = lambda *args, **kwargs: None  # noqa: E731
    gt = COCO({"images": [dict(image, id=number[image["id"]]) for image in images],
               "annotations": [dict(a, image_id=number[a["image_id"]]) for a in annotations],
               "categories": [dict(c) for c in categories]}, print_function=quiet)
    dt = gt.loadRes([dict(d, image_id=number[d["image_id"]]) for d in detections])
    coco_eval = COCOeval_faster(gt, dt, iouType="bbox", print_function=quiet)
    coco_eval.params.imgIds = sorted(number.values())
    coco_eval.evaluate()
    coco_eval.accumulate()
    lines: list[str] = []
    coco_eval.print_function = lambda line, *args, **kwargs: lines.append(str(line))
    coco_eval.summarize()
    # It also prints AR@0.5 and AR@0.75 after pycocotools' 12 lines: those are not reported.
    return coco_eval, "".join(line + "\n" for line in lines[:len(METRICS)])


def od_api_metric_names(metrics: Mapping[str, float]) -> dict[str, float]:
    """The same numbers under the OD API's metric names (TensorBoard, OD API users' tools).

    The 12 numbers get their METRICS names; "<prefix>/<category>" keys their
    PER_CATEGORY_METRICS names ("AP/cat" -> "DetectionBoxes_PerformanceByCategory/mAP/cat");
    other keys are put under "DetectionBoxes_PerformanceByCategory/".
    """
    names = dict(METRICS)
    per_category = dict(PER_CATEGORY_METRICS)
    renamed = {}
    for key, value in metrics.items():
        prefix, _, category = key.partition("/")
        if key in names:
            renamed[names[key]] = value
        elif category and prefix in per_category:
            renamed[f"{per_category[prefix]}/{category}"] = value
        else:
            renamed[f"DetectionBoxes_PerformanceByCategory/{key}"] = value
    return renamed
