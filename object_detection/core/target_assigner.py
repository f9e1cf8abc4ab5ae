"""Target assigner: ground truth + anchors -> per-anchor classification and regression targets.

Follows the OD API's `core/target_assigner.py` (its `TargetAssigner.assign` and
`batch_assign_targets`), batched over padded ground truth with static shapes.

Assumes:
- anchors float [A, 4] and groundtruth_boxes float [B, N, 4], both yxyx in the same (normalized)
  coordinates; rows n >= num_groundtruth_boxes[b] are padding (their content is never read into a
  target);
- groundtruth_classes are 0-based foreground ids in [0, K); an id outside that range gives an
  all-zero one-hot row.

Computes, for image b and anchor a:
  similarity[b, n, a] = IoU(groundtruth_boxes[b, n], anchors[a])          [B, N, A]
  match[b, a]         = matcher.match(similarity, valid_rows = n < num_gt,
                                      force_match_rows = valid and weight > 0)
and with n = match[b, a], w = groundtruth_weights[b, n] (1 when not given):
                     matched (n >= 0)            UNMATCHED (-1)     IGNORED (-2)
  cls_targets        one_hot(classes[b, n], K)   0                  0
  cls_weights        w                           negative weight    0
  reg_targets        encode(gt box n, anchor a)  0                  0
  reg_weights        w                           0                  0
so anchors matched to a weight-0 box (e.g. COCO crowd) get no loss at all, as in the OD API
(where `valid_rows = groundtruth_weights > 0` also keeps such boxes out of forced matches).

Guarantees: static output shapes, finite values for any input (including images with zero ground
truth: every anchor is background with cls_weight 1), and XLA compilation.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import tensorflow as tf

from object_detection.core import box_ops
from object_detection.core import standard_fields as fields
from object_detection.core._tensor_utils import as_float32, check_last_dim, check_rank
from object_detection.core.box_coder import FasterRcnnBoxCoder
from object_detection.core.matcher import UNMATCHED, ArgMaxMatcher

_SIMILARITIES = {"iou": box_ops.iou}


@dataclasses.dataclass(frozen=True)
class TargetAssigner:
    """Assigns classification and regression targets to anchors.

    Attributes:
      matcher: decides which ground-truth box (if any) each anchor is assigned to.
      box_coder: encodes the matched box relative to its anchor.
      similarity: name of the pairwise similarity used by the matcher; only "iou" (the OD API's
        `IouSimilarity`, used by every SSD config) is supported.
      negative_class_weight: classification weight of UNMATCHED (background) anchors (OD API
        default 1.0).
    """

    matcher: ArgMaxMatcher
    box_coder: FasterRcnnBoxCoder
    similarity: str = "iou"
    negative_class_weight: float = 1.0

    def __post_init__(self):
        if self.similarity not in _SIMILARITIES:
            raise ValueError(
                f"TargetAssigner: similarity {self.similarity!r} is not supported; expected one "
                f"of {sorted(_SIMILARITIES)}.")

    def assign(self,
               anchors: tf.Tensor,
               groundtruth_boxes: tf.Tensor,
               groundtruth_classes: tf.Tensor,
               num_groundtruth_boxes: tf.Tensor,
               num_classes: int,
               groundtruth_weights: Optional[tf.Tensor] = None) -> dict[str, tf.Tensor]:
        """Computes the training targets of a batch.

        Args:
          anchors: float [A, 4], yxyx normalized.
          groundtruth_boxes: float [B, N, 4], yxyx normalized, padded to N rows.
          groundtruth_classes: int [B, N], 0-based foreground class ids (padding: any value).
          num_groundtruth_boxes: int [B], number of valid leading rows of every image, in [0, N].
          num_classes: K, the number of foreground classes (background excluded), >= 1.
          groundtruth_weights: optional float [B, N]; 0 marks boxes to ignore (e.g. crowd).
            None means 1 for every valid row.

        Returns:
          Dict keyed by `standard_fields.TargetFields`:
            cls_targets: float32 [B, A, K], one-hot of the matched class, zeros for background
              and ignored anchors.
            cls_weights: float32 [B, A]; matched: gt weight, UNMATCHED: negative_class_weight,
              IGNORED: 0.
            reg_targets: float32 [B, A, 4], `[ty, tx, th, tw]` of the matched box; 0 elsewhere.
            reg_weights: float32 [B, A]; matched: gt weight, else 0.
            match: int32 [B, A]; gt row index >= 0, UNMATCHED (-1) or IGNORED (-2).

        Raises:
          ValueError: if num_classes < 1 or the static shapes are inconsistent.
        """
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"TargetAssigner.assign: num_classes must be an int >= 1, got "
                             f"{num_classes!r}.")
        anchors, groundtruth_boxes, groundtruth_classes, valid_rows, weights = _checked_inputs(
            anchors, groundtruth_boxes, groundtruth_classes, num_groundtruth_boxes,
            groundtruth_weights)
        similarity = _SIMILARITIES[self.similarity](
            groundtruth_boxes, anchors[tf.newaxis])  # [B, N, A]
        match = self.matcher.match(
            similarity, valid_rows=valid_rows,
            force_match_rows=tf.logical_and(valid_rows, weights > 0.0))  # [B, A]
        return self._targets(anchors, groundtruth_boxes, groundtruth_classes, weights, match,
                             num_classes)

    def _targets(self, anchors: tf.Tensor, groundtruth_boxes: tf.Tensor,
                 groundtruth_classes: tf.Tensor, weights: tf.Tensor, match: tf.Tensor,
                 num_classes: int) -> dict[str, tf.Tensor]:
        """The targets of `assign` (its Returns) from the match: anchors [A, 4], boxes
        [B, N, 4], classes int32 [B, N], weights float32 [B, N] (0 on padding), match [B, A]."""
        matched = match >= 0  # [B, A]
        gather_ids = tf.maximum(match, 0)  # [B, A]; sentinel columns read row 0, then masked
        matched_boxes = tf.gather(groundtruth_boxes, gather_ids, batch_dims=1)  # [B, A, 4]
        matched_classes = tf.gather(groundtruth_classes, gather_ids, batch_dims=1)  # [B, A]
        matched_weights = tf.gather(weights, gather_ids, batch_dims=1)  # [B, A]

        # Encode anchors against themselves where unmatched, so no garbage row is ever encoded.
        anchors_b = tf.broadcast_to(anchors[tf.newaxis], tf.shape(matched_boxes))  # [B, A, 4]
        boxes_to_encode = tf.where(matched[..., tf.newaxis], matched_boxes, anchors_b)
        reg_targets = tf.where(matched[..., tf.newaxis],
                               self.box_coder.encode(boxes_to_encode, anchors_b),
                               0.0)  # [B, A, 4]
        reg_weights = tf.where(matched, matched_weights, 0.0)  # [B, A]

        cls_targets = tf.one_hot(matched_classes, depth=num_classes,
                                 dtype=tf.float32)  # [B, A, K]
        cls_targets *= tf.cast(matched, tf.float32)[..., tf.newaxis]
        unmatched_weight = tf.where(match == UNMATCHED, float(self.negative_class_weight), 0.0)
        cls_weights = tf.where(matched, matched_weights, unmatched_weight)  # [B, A]

        return {
            fields.TargetFields.cls_targets: cls_targets,
            fields.TargetFields.cls_weights: cls_weights,
            fields.TargetFields.reg_targets: reg_targets,
            fields.TargetFields.reg_weights: reg_weights,
            fields.TargetFields.match: match,
        }


def _checked_inputs(anchors, groundtruth_boxes, groundtruth_classes, num_groundtruth_boxes,
                    groundtruth_weights):
    """`assign`'s inputs checked and cast: (anchors float32 [A, 4], boxes float32 [B, N, 4],
    classes int32 [B, N], valid_rows bool [B, N], weights float32 [B, N], 0 on padding rows).

    N = 0 gets one padding row (beyond every count, so never valid), which keeps the gathers
    non-empty; every anchor is then background.
    """
    anchors = as_float32(anchors, "anchors")
    groundtruth_boxes = as_float32(groundtruth_boxes, "groundtruth_boxes")
    check_rank(anchors, (2,), "anchors")
    check_last_dim(anchors, 4, "anchors")
    check_rank(groundtruth_boxes, (3,), "groundtruth_boxes")
    check_last_dim(groundtruth_boxes, 4, "groundtruth_boxes")
    groundtruth_classes = tf.cast(groundtruth_classes, tf.int32)
    check_rank(groundtruth_classes, (2,), "groundtruth_classes")
    num_groundtruth_boxes = tf.cast(num_groundtruth_boxes, tf.int32)
    if groundtruth_boxes.shape[1] is None or groundtruth_boxes.shape[1] == 0:
        groundtruth_boxes = tf.pad(groundtruth_boxes, [[0, 0], [0, 1], [0, 0]])
        groundtruth_classes = tf.pad(groundtruth_classes, [[0, 0], [0, 1]])
        if groundtruth_weights is not None:
            groundtruth_weights = tf.pad(
                as_float32(groundtruth_weights, "groundtruth_weights"), [[0, 0], [0, 1]])
    max_boxes = groundtruth_boxes.shape[1]
    if max_boxes is None:
        max_boxes = tf.shape(groundtruth_boxes)[1]

    valid_rows = tf.sequence_mask(num_groundtruth_boxes, max_boxes)  # [B, N]
    if groundtruth_weights is None:
        weights = tf.cast(valid_rows, tf.float32)
    else:
        weights = as_float32(groundtruth_weights, "groundtruth_weights")
        weights = tf.where(valid_rows, weights, 0.0)  # padding never carries a weight
    return anchors, groundtruth_boxes, groundtruth_classes, valid_rows, weights
