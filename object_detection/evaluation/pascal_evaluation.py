"""PASCAL VOC box evaluation: AP at one IoU threshold, as the OD API computes it.

Reimplements the semantics of the OD API's PascalDetectionEvaluator and
WeightedPascalDetectionEvaluator (its utils/object_detection_evaluation.py,
per_image_evaluation.py and metrics.py); the interface is `CocoEvaluator`'s.

Inputs: boxes yxyx normalized, converted to absolute pixels of the original image (no +1 in
widths, as in the OD API and our COCO path; IoU does not depend on the scale, so it is the
IoU of the normalized boxes too); classes 0-based; the classes evaluated are 0..K-1 with
K = the largest label-map id (the OD API sizes its arrays so); other class ids are ignored.

Per image, when it is added (only its scored detections are kept, so states stay small):
  - detections with an empty box (ymin >= ymax or xmin >= xmax) are dropped;
  - for each class, its detections in decreasing score (stable: ties keep their order) each
    take the ground-truth box of the class with the largest IoU with them. If that IoU is
    >= matching_iou_threshold and the box is `difficult`, the detection is ignored: neither
    TP nor FP. If the box is not difficult and not yet taken, the detection is a TP and takes
    it; if it is already taken, the detection is a FP (a duplicate), even when another free
    box overlaps it enough (the VOC devkit's rule, not COCO's). Below the threshold: FP.
  - the positives of a class are its ground-truth boxes that are not difficult.
Crowd boxes (`groundtruth_is_crowd`) are ordinary ground truth, as in the OD API, whose Pascal
evaluators never read is_crowd; `groundtruth_area` is not used either.

Over all images (in source-id order, so merged shards give the same result as one
evaluator), per class with positives P > 0: its detections sorted by decreasing score (stable),
precision_i = TP_i / i and recall_i = TP_i / P after the first i detections, and

  AP = sum over the ranks i where recall changes of (recall_i - recall_{i-1}) * max_{j>=i}
       precision_j,   with recall_0 = 0

(VOC2010+ all-point AP: the area under the precision-recall curve made monotone
decreasing); a class with positives but no detection has AP 0. A class without positives
(no ground truth, or only difficult boxes) has AP NaN, and its detections count nowhere.
mAP is the mean AP over the classes whose AP is not NaN (NaN when there is none).

Weighted (`weighted=True`, metrics set weighted_pascal_voc_detection_metrics): mAP is the AP
of one precision-recall curve over the pooled detections of every class with positives, with
P = the sum of their positives (close to, but not the same as, the per-class APs weighted by
their positives); per-category APs are the same as unweighted.

Metric names are the OD API's: "PascalBoxes_Precision/mAP@0.5IOU" and, with
include_metrics_per_category, "PascalBoxes_PerformanceByCategory/AP@0.5IOU/<name>" for every
label-map category (NaN without positives); "WeightedPascalBoxes_" when weighted. The
threshold is written as Python prints the float ("0.5"), the name NFKD-normalized.
"""
from __future__ import annotations

import unicodedata
from typing import Any, Mapping, Sequence

import numpy as np

from object_detection.core.standard_fields import CLASS_ID_OFFSET
from object_detection.evaluation.coco_evaluation import image_key
from object_detection.utils.log import console_line

PREFIX = "PascalBoxes"
WEIGHTED_PREFIX = "WeightedPascalBoxes"


def voc_average_precision(precision: np.ndarray, recall: np.ndarray) -> float:
    """All-point interpolated AP of a precision-recall curve (see the module docstring).

    Args:
      precision: float [n], precision after each of n detections sorted by decreasing score.
      recall: float [n], non-decreasing, in [0, 1].

    Returns:
      The area under the curve made monotone decreasing; 0 when n = 0.
    """
    precision, recall = np.asarray(precision, np.float64), np.asarray(recall, np.float64)
    if not precision.size:
        return 0.0
    recall = np.concatenate([[0.0], recall, [1.0]])
    precision = np.concatenate([[0.0], precision, [0.0]])
    precision = np.maximum.accumulate(precision[::-1])[::-1]  # max precision at >= this rank
    changed = np.flatnonzero(recall[1:] != recall[:-1]) + 1
    return float(np.sum((recall[changed] - recall[changed - 1]) * precision[changed]))


def _average_precision(true_positive: np.ndarray, num_positives: int) -> float:
    """AP of detections sorted by decreasing score (bool [n]: TP, else FP) for P positives."""
    if not true_positive.size:
        return 0.0
    tp = np.cumsum(true_positive)
    precision = tp / np.arange(1, true_positive.size + 1)
    return voc_average_precision(precision, tp / num_positives)


def _iou(boxes1: np.ndarray, boxes2: np.ndarray) -> np.ndarray:
    """float [N, 4], [M, 4] yxyx -> [N, M] IoU (areas without +1); 0 where the union is 0."""
    ymin = np.maximum(boxes1[:, None, 0], boxes2[None, :, 0])
    xmin = np.maximum(boxes1[:, None, 1], boxes2[None, :, 1])
    ymax = np.minimum(boxes1[:, None, 2], boxes2[None, :, 2])
    xmax = np.minimum(boxes1[:, None, 3], boxes2[None, :, 3])
    intersection = np.maximum(ymax - ymin, 0.0) * np.maximum(xmax - xmin, 0.0)  # [N, M]
    area = lambda b: (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])  # noqa: E731
    union = area(boxes1)[:, None] + area(boxes2)[None, :] - intersection
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, intersection / union, 0.0)


class PascalEvaluator:
    """Accumulates evaluated images; computes PASCAL VOC AP (see the module docstring).

    Args:
      categories: [{"id": 1-based id, "name": str}, ...] (from the label map).
      weighted: the weighted_pascal_voc_detection_metrics mAP (one pooled PR curve).
      matching_iou_threshold: IoU at or above which a detection matches a box.
      include_metrics_per_category: also report (and print) the AP of every category.

    Raises:
      ValueError: no category, an id < 1, or a threshold outside (0, 1].
    """

    def __init__(self, categories: Sequence[Mapping[str, Any]], *, weighted: bool = False,
                 matching_iou_threshold: float = 0.5,
                 include_metrics_per_category: bool = False):
        self.categories = [dict(id=int(c["id"]), name=str(c["name"])) for c in categories]
        if not self.categories or min(c["id"] for c in self.categories) < 1:
            raise ValueError("Pascal evaluation: categories need ids >= 1 (label-map ids), got "
                             f"{[c['id'] for c in self.categories]}.")
        if not 0 < matching_iou_threshold <= 1:
            raise ValueError("Pascal evaluation: matching_iou_threshold must be in (0, 1], got "
                             f"{matching_iou_threshold}.")
        self.weighted = weighted
        self.matching_iou_threshold = matching_iou_threshold
        self.include_metrics_per_category = include_metrics_per_category
        self.num_classes = max(c["id"] for c in self.categories)  # K: classes 0..K-1
        self._images: dict[Any, dict] = {}

    @property
    def name(self) -> str:
        """Its eval_config.metrics_set name."""
        return ("weighted_pascal_voc_detection_metrics" if self.weighted
                else "pascal_voc_detection_metrics")

    @property
    def prefix(self) -> str:
        return WEIGHTED_PREFIX if self.weighted else PREFIX

    def empty_copy(self) -> PascalEvaluator:
        """A new evaluator with the same settings and no image (to merge gathered states)."""
        return PascalEvaluator(self.categories, weighted=self.weighted,
                               matching_iou_threshold=self.matching_iou_threshold,
                               include_metrics_per_category=self.include_metrics_per_category)

    def add_image(self, *, source_id, original_shape: Sequence[int], groundtruth_boxes,
                  groundtruth_classes, num_groundtruth_boxes: int, detection_boxes,
                  detection_scores, detection_classes, num_detections: int,
                  groundtruth_is_crowd=None, groundtruth_area=None,
                  groundtruth_difficult=None) -> None:
        """Matches one image's detections to its ground truth (see the module docstring).

        Args:
          source_id: the image id (bytes or str); an image seen twice counts once.
          original_shape: (height, width, ...) of the original image, in pixels.
          groundtruth_boxes: float [N, 4] yxyx normalized; rows >= num_groundtruth_boxes are
            padding.
          groundtruth_classes: int [N], 0-based.
          num_groundtruth_boxes: boxes present.
          detection_boxes: float [D, 4] yxyx normalized; rows >= num_detections are padding.
          detection_scores: float [D].
          detection_classes: int or float [D], 0-based.
          num_detections: detections present.
          groundtruth_is_crowd: accepted and not used (see the module docstring).
          groundtruth_area: accepted and not used.
          groundtruth_difficult: bool [N] or None (no box is difficult).
        """
        del groundtruth_is_crowd, groundtruth_area  # not part of the PASCAL protocol
        image_id = image_key(source_id)
        if image_id in self._images:
            return  # an image seen twice (padded last batch) counts once
        height, width = (float(s) for s in original_shape[:2])
        scale = np.array([height, width, height, width])
        n, d = int(num_groundtruth_boxes), int(num_detections)
        gt_boxes = np.asarray(groundtruth_boxes, np.float64).reshape(-1, 4)[:n] * scale
        gt_classes = np.asarray(groundtruth_classes).astype(np.int64).reshape(-1)[:n]
        difficult = (np.zeros([n], bool) if groundtruth_difficult is None
                     else np.asarray(groundtruth_difficult).astype(bool).reshape(-1)[:n])
        boxes = np.asarray(detection_boxes, np.float64).reshape(-1, 4)[:d] * scale
        scores = np.asarray(detection_scores, np.float64).reshape(-1)[:d]
        classes = np.asarray(detection_classes).astype(np.int64).reshape(-1)[:d]
        valid = ((boxes[:, 0] < boxes[:, 2]) & (boxes[:, 1] < boxes[:, 3])
                 & (classes >= 0) & (classes < self.num_classes))
        kept_scores, kept_classes, kept_tp = [], [], []
        for c in np.unique(classes[valid]):
            index = np.flatnonzero(valid & (classes == c))
            index = index[np.argsort(-scores[index], kind="stable")]  # decreasing score
            true_positive, ignored = self._match(boxes[index], gt_boxes[gt_classes == c],
                                                 difficult[gt_classes == c])
            kept_scores.append(scores[index][~ignored])
            kept_classes.append(np.full([int(np.sum(~ignored))], c, np.int64))
            kept_tp.append(true_positive[~ignored])
        positives = gt_classes[~difficult]
        self._images[image_id] = {
            "id": image_id,
            "scores": np.concatenate(kept_scores) if kept_scores else np.zeros([0]),
            "classes": (np.concatenate(kept_classes) if kept_classes
                        else np.zeros([0], np.int64)),
            "true_positive": np.concatenate(kept_tp) if kept_tp else np.zeros([0], bool),
            "positive_classes": positives[(positives >= 0) & (positives < self.num_classes)],
        }

    def _match(self, boxes: np.ndarray, gt_boxes: np.ndarray, difficult: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
        """One class of one image: detections [d, 4] in decreasing score, its gt [g, 4].

        Returns:
          (true_positive bool [d], ignored bool [d]); the rest are false positives.
        """
        true_positive = np.zeros([len(boxes)], bool)
        ignored = np.zeros([len(boxes)], bool)
        if not len(gt_boxes):
            return true_positive, ignored
        iou = _iou(boxes, gt_boxes)  # [d, g]
        best = np.argmax(iou, axis=1)  # each detection's best box, taken or not
        taken = np.zeros([len(gt_boxes)], bool)
        for i, j in enumerate(best):
            if iou[i, j] < self.matching_iou_threshold:
                continue
            if difficult[j]:
                ignored[i] = True
            elif not taken[j]:
                true_positive[i] = taken[j] = True
        return true_positive, ignored

    def state(self) -> dict:
        """This worker's images: a picklable value for `merge` on another evaluator."""
        return {"images": list(self._images.values())}

    def merge(self, states: Sequence[Mapping[str, Any]]) -> None:
        """Adds the images of other workers (their `state()`), skipping images already held."""
        for state in states:
            for image in state["images"]:
                self._images.setdefault(image["id"], image)

    @property
    def num_images(self) -> int:
        return len(self._images)

    def evaluate(self, print_summary: bool = True) -> dict[str, float]:
        """Computes the APs; prints a short summary.

        Returns:
          {"<prefix>_Precision/mAP@<t>IOU": mAP} and, with include_metrics_per_category,
          {"<prefix>_PerformanceByCategory/AP@<t>IOU/<name>": AP} for every category (NaN for
          a category without positives); see the module docstring.
        """
        if not self._images:
            raise ValueError("Pascal evaluation: no image was evaluated (is the eval input "
                             "empty?)")
        images = sorted(self._images.values(), key=lambda image: str(image["id"]))
        scores = np.concatenate([image["scores"] for image in images])
        classes = np.concatenate([image["classes"] for image in images])
        true_positive = np.concatenate([image["true_positive"] for image in images])
        positives = np.bincount(np.concatenate([image["positive_classes"] for image in images]),
                                minlength=self.num_classes)  # [K]
        order = np.argsort(-scores, kind="stable")  # decreasing score; ties in image order
        classes, true_positive = classes[order], true_positive[order]
        per_class = np.full([self.num_classes], np.nan)
        for c in np.flatnonzero(positives):
            per_class[c] = _average_precision(true_positive[classes == c], int(positives[c]))
        if self.weighted:
            pooled = positives[classes] > 0  # detections of classes with positives
            mean_ap = (_average_precision(true_positive[pooled], int(positives.sum()))
                       if positives.sum() else float("nan"))
        else:
            evaluated = per_class[~np.isnan(per_class)]
            mean_ap = float(np.mean(evaluated)) if evaluated.size else float("nan")
        threshold = f"{self.matching_iou_threshold}"
        mean_key = f"{self.prefix}_Precision/mAP@{threshold}IOU"
        metrics = {mean_key: float(mean_ap)}
        rows = []  # (category name, AP, positives)
        if self.include_metrics_per_category:
            for category in sorted(self.categories, key=lambda c: c["id"]):
                name = unicodedata.normalize("NFKD", category["name"])
                k = category["id"] - CLASS_ID_OFFSET
                ap = float(per_class[k])
                metrics[f"{self.prefix}_PerformanceByCategory/AP@{threshold}IOU/{name}"] = ap
                rows.append((category["name"], ap, int(positives[k])))
        if print_summary:
            lines = [f"{mean_key} = {mean_ap:.4f} ({int(np.count_nonzero(positives))} of "
                     f"{self.num_classes} classes with positives, {self.num_images} images)"]
            width = max([len(name) for name, _, _ in rows], default=0)
            for name, ap, count in rows:
                note = f"{count} positives" if count else "no positives: left out of the mAP"
                lines.append(f"  {name:<{width}}  {ap:6.4f}  ({note})")
            console_line("\n".join(lines))
        return metrics

    def tensorboard_names(self, metrics: Mapping[str, float]) -> dict[str, float]:
        """`metrics` under the OD API's names: they already are."""
        return dict(metrics)
