"""Post-processing: score conversion and batched multiclass non-max suppression with padding.

Mirrors the OD API's `core/post_processing.batch_multiclass_non_max_suppression` for the SSD case
(one box per anchor shared by all classes), built on `tf.image.combined_non_max_suppression`.

Contract of `batch_multiclass_non_max_suppression`:
- boxes float [B, A, 4] yxyx normalized (one box shared by the K classes), scores float [B, A, K]
  in the converted (e.g. sigmoid) space, foreground classes only;
- a (box, class) candidate survives if score > score_threshold (strictly, as the OD API's
  `filter_greater_than`), then per class greedy NMS suppresses candidates whose IoU with a
  higher-scoring kept box of the same class exceeds iou_threshold, keeping at most
  max_detections_per_class per class; the survivors of all classes are sorted by score and the
  first max_total_detections are returned;
- output is padded to D = max_total_detections with zeros (boxes, scores and classes) and
  `num_detections` (int32) counts the valid leading entries; classes are 0-based floats;
- with a clip_window, NMS runs on the boxes as given; then, as the OD API's
  `multiclass_non_max_suppression` does, every survivor is clipped to the window, those whose
  clipped box has zero area are dropped, and the first max_total_detections of the rest are
  returned (clipping first would change which boxes suppress which);
- with `return_anchor_indices`, `detection_anchor_indices` (int32 [B, D], 0 as padding) names
  the anchor each detection came from: `tf.image.combined_non_max_suppression` returns no
  indices, so each survivor is found among the inputs by its exact (unclipped) box and its
  class score, both copied bit for bit by the NMS.

NMS has data-dependent work, so it stays outside the XLA-compiled train step;
`score_converter` is elementwise and does compile with XLA.
"""
from __future__ import annotations

from typing import Optional

import tensorflow as tf

from object_detection.core import box_ops
from object_detection.core import standard_fields as fields
from object_detection.core._tensor_utils import as_float32, check_last_dim, check_rank

SCORE_CONVERTERS = ("IDENTITY", "SIGMOID", "SOFTMAX")


def score_converter(logits: tf.Tensor, kind: str, logit_scale: float = 1.0) -> tf.Tensor:
    """Converts class logits to scores (OD API `SSD.post_processing.score_converter`).

    Args:
      logits: float [..., K], raw class predictions.
      kind: "SIGMOID" (per-class probabilities), "SOFTMAX" (over the last axis) or "IDENTITY".
      logit_scale: logits are divided by this before the conversion (OD API `logit_scale`), > 0.

    Returns:
      float32 [..., K] scores.

    Raises:
      ValueError: for an unknown `kind` or a non-positive `logit_scale`.
    """
    if kind not in SCORE_CONVERTERS:
        raise ValueError(
            f"score_converter: kind {kind!r} is not supported; expected one of "
            f"{list(SCORE_CONVERTERS)}.")
    if not logit_scale > 0:
        raise ValueError(f"score_converter: logit_scale must be > 0, got {logit_scale}.")
    logits = as_float32(logits, "logits")
    if logit_scale != 1.0:
        logits = logits / logit_scale
    if kind == "SIGMOID":
        return tf.sigmoid(logits)
    if kind == "SOFTMAX":
        return tf.nn.softmax(logits, axis=-1)
    return tf.identity(logits)


def _validate_nms_arguments(score_threshold, iou_threshold, max_detections_per_class,
                            max_total_detections) -> None:
    if not 0.0 <= score_threshold <= 1.0:
        raise ValueError(
            f"batch_multiclass_non_max_suppression: score_threshold must be in [0, 1], got "
            f"{score_threshold}.")
    if not 0.0 <= iou_threshold <= 1.0:
        raise ValueError(
            f"batch_multiclass_non_max_suppression: iou_threshold must be in [0, 1], got "
            f"{iou_threshold}.")
    for name, value in (("max_detections_per_class", max_detections_per_class),
                        ("max_total_detections", max_total_detections)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(
                f"batch_multiclass_non_max_suppression: {name} must be an int >= 1, got "
                f"{value!r}.")


def batch_multiclass_non_max_suppression(
        boxes: tf.Tensor,
        scores: tf.Tensor,
        score_threshold: float,
        iou_threshold: float,
        max_detections_per_class: int,
        max_total_detections: int,
        clip_window: Optional[tf.Tensor] = None,
        return_anchor_indices: bool = False) -> dict[str, tf.Tensor]:
    """Per-class NMS over a batch, padded to a fixed number of detections.

    Args:
      boxes: float [B, A, 4] (or [B, A, 1, 4]), yxyx normalized, shared by all classes.
      scores: float [B, A, K], per-class scores (already converted, e.g. sigmoid), foreground
        classes only.
      score_threshold: candidates with score <= this are dropped; in [0, 1].
      iou_threshold: same-class candidates with IoU > this with a kept box are suppressed;
        in [0, 1].
      max_detections_per_class: at most this many kept boxes per class and image, >= 1.
      max_total_detections: D, the padded number of detections per image, >= 1.
      clip_window: optional float [4] or [B, 4], yxyx normalized; NMS survivors are clipped to
        it afterwards and those of zero clipped area dropped.
      return_anchor_indices: also return `detection_anchor_indices` (see the module docstring).

    Returns:
      Dict keyed by `standard_fields.DetectionResultFields`:
        detection_boxes: float32 [B, D, 4], yxyx normalized, zeros past num_detections.
        detection_scores: float32 [B, D], descending, zeros past num_detections.
        detection_classes: float32 [B, D], 0-based foreground class ids, zeros as padding.
        num_detections: int32 [B], the number of valid leading detections, <= D.
        detection_anchor_indices: int32 [B, D], with `return_anchor_indices`.

    Raises:
      ValueError: for out-of-range thresholds or counts, or inconsistent shapes.
    """
    _validate_nms_arguments(score_threshold, iou_threshold, max_detections_per_class,
                            max_total_detections)
    boxes = as_float32(boxes, "boxes")
    scores = as_float32(scores, "scores")
    check_rank(boxes, (3, 4), "boxes")
    check_last_dim(boxes, 4, "boxes")
    check_rank(scores, (3,), "scores")
    if boxes.shape.rank == 4:
        if boxes.shape[2] not in (None, 1):
            raise ValueError(
                f"batch_multiclass_non_max_suppression: boxes must be shared by all classes "
                f"([B, A, 4] or [B, A, 1, 4]), got shape {boxes.shape}.")
        boxes = boxes[:, :, 0, :]  # [B, A, 4]

    num_classes = scores.shape[-1]
    candidates = max_total_detections
    if clip_window is not None:
        # Every survivor of the per-class NMS, so that the ones pruned after clipping are
        # replaced by the next best, as in the OD API.
        if num_classes is None:
            raise ValueError("batch_multiclass_non_max_suppression: with a clip_window the "
                             "number of classes (scores.shape[-1]) must be static.")
        candidates = max(max_total_detections, max_detections_per_class * num_classes)
    nmsed = tf.image.combined_non_max_suppression(
        boxes[:, :, tf.newaxis, :],  # [B, A, 1, 4]: one box for every class
        scores,
        max_output_size_per_class=max_detections_per_class,
        max_total_size=candidates,
        iou_threshold=iou_threshold,
        score_threshold=score_threshold,
        pad_per_class=False,
        clip_boxes=False)
    out_boxes, out_scores, out_classes = nmsed.nmsed_boxes, nmsed.nmsed_scores, nmsed.nmsed_classes
    num_valid = tf.cast(nmsed.valid_detections, tf.int32)
    unclipped = out_boxes
    if clip_window is not None:
        out_boxes, out_scores, out_classes, num_valid, unclipped = _clip_and_prune(
            out_boxes, out_scores, out_classes, num_valid, clip_window, max_total_detections)
    result = {
        fields.DetectionResultFields.detection_boxes: out_boxes,
        fields.DetectionResultFields.detection_scores: out_scores,
        fields.DetectionResultFields.detection_classes: out_classes,
        fields.DetectionResultFields.num_detections: num_valid,
    }
    if return_anchor_indices:
        result[fields.DetectionResultFields.detection_anchor_indices] = _anchor_indices(
            boxes, scores, unclipped[:, :max_total_detections],
            out_scores[:, :max_total_detections], out_classes[:, :max_total_detections],
            num_valid)
    return result


def _anchor_indices(boxes, scores, out_boxes, out_scores, out_classes, num_valid):
    """int32 [B, D]: for each survivor, the first anchor with its box and class score (0 past
    num_valid). boxes [B, A, 4], scores [B, A, K]; out_* [B, D, ...] unclipped survivors."""
    class_scores = tf.gather(scores, tf.cast(out_classes, tf.int32), axis=2,
                             batch_dims=1)  # [B, A, D]: every anchor's score in each class
    same = (tf.reduce_all(tf.equal(boxes[:, tf.newaxis], out_boxes[:, :, tf.newaxis]), axis=-1)
            & tf.equal(tf.transpose(class_scores, [0, 2, 1]), out_scores[:, :, tf.newaxis]))
    index = tf.argmax(tf.cast(same, tf.int8), axis=-1, output_type=tf.int32)  # [B, D]
    valid = tf.range(tf.shape(out_scores)[1])[tf.newaxis] < num_valid[:, tf.newaxis]
    return tf.where(valid, index, 0)


def _clip_and_prune(boxes, scores, classes, num_valid, clip_window, max_total_detections):
    """Clips sorted NMS survivors [B, N, ...] to the window, drops zero-area ones, keeps D.

    The survivors keep their score order (a stable top-k over scores with dropped and padding
    rows set to -1); rows past the new count are zeros, like the unclipped output. Also returns
    the kept boxes unclipped.
    """
    unclipped = boxes
    boxes = box_ops.clip_to_window(boxes, clip_window)
    rows = tf.range(tf.shape(scores)[1])[tf.newaxis, :]
    keep = (rows < num_valid[:, tf.newaxis]) & (box_ops.area(boxes) > 0.0)  # [B, N]
    ranked = tf.where(keep, scores, -1.0)
    _, order = tf.math.top_k(ranked, k=max_total_detections, sorted=True)  # ties: lower index
    keep = tf.gather(keep, order, batch_dims=1)
    num_valid = tf.reduce_sum(tf.cast(keep, tf.int32), axis=1)
    mask = tf.cast(keep, tf.float32)
    boxes = tf.gather(boxes, order, batch_dims=1) * mask[..., tf.newaxis]
    scores = tf.gather(scores, order, batch_dims=1) * mask
    classes = tf.gather(classes, order, batch_dims=1) * mask
    unclipped = tf.gather(unclipped, order, batch_dims=1)
    return boxes, scores, classes, num_valid, unclipped
