"""Faster R-CNN box coder: boxes <-> `[ty, tx, th, tw]` codes relative to anchors.

Reimplements the semantics of the OD API's `box_coders/faster_rcnn_box_coder.py`.

With (yc, xc, h, w) the center and size of a box, (yca, xca, ha, wa) those of its anchor,
scale factors (sy, sx, sh, sw) (default (10, 10, 5, 5), the OD API RetinaNet configs) and
EPSILON = 1e-8:

  encode:  ha' = ha + EPSILON, wa' = wa + EPSILON, h' = h + EPSILON, w' = w + EPSILON
           ty = (yc - yca) / ha' * sy        tx = (xc - xca) / wa' * sx
           th = log(h' / ha') * sh           tw = log(w' / wa') * sw
  decode:  h  = exp(min(th / sh, clip)) * ha    w  = exp(min(tw / sw, clip)) * wa
           yc = ty / sy * ha + yca            xc = tx / sx * wa + xca
           box = [yc - h / 2, xc - w / 2, yc + h / 2, xc + w / 2]

EPSILON keeps the divide and the log finite for zero-size boxes (e.g. padded ground truth); as in
the OD API it is added in encode only, so decode(encode(b)) equals b up to ~EPSILON.
`clip` (`decode_log_scale_clip`, default log(1000 / 16) as in torchvision / Detectron2) is an
addition to the OD API: it only bounds a decoded box at 62.5x its anchor's size so that untrained
heads cannot produce inf boxes (exp overflows float32 above ~88); set it to None to disable.

Inputs of any float dtype are cast to float32; all ops are elementwise over [..., 4] and compile
with XLA.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Optional

import tensorflow as tf

from object_detection.core._tensor_utils import as_float32, check_last_dim

EPSILON = 1e-8


def _center_size(boxes: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
    """[..., 4] yxyx -> (ycenter, xcenter, height, width), each [...]."""
    ymin, xmin, ymax, xmax = tf.unstack(boxes, axis=-1)
    return (ymin + ymax) / 2.0, (xmin + xmax) / 2.0, ymax - ymin, xmax - xmin


@dataclasses.dataclass(frozen=True)
class FasterRcnnBoxCoder:
    """Encodes boxes as scaled center offsets and log size ratios relative to anchors.

    Attributes:
      scale_factors: (sy, sx, sh, sw) multiplying (ty, tx, th, tw), each > 0; None for no
        scaling (the OD API's behaviour when the proto leaves them unset).
      decode_log_scale_clip: upper bound on th / sh and tw / sw before exp in `decode`; None
        disables it.
    """

    scale_factors: Optional[tuple[float, float, float, float]] = (10.0, 10.0, 5.0, 5.0)
    decode_log_scale_clip: Optional[float] = math.log(1000.0 / 16.0)

    def __post_init__(self):
        if self.scale_factors is not None:
            factors = tuple(float(f) for f in self.scale_factors)
            if len(factors) != 4 or any(not f > 0 for f in factors):
                raise ValueError(
                    f"FasterRcnnBoxCoder: scale_factors must be 4 positive numbers (ty, tx, th, "
                    f"tw), got {list(self.scale_factors)}.")
            object.__setattr__(self, "scale_factors", factors)

    @property
    def code_size(self) -> int:
        """Length of a code: 4 ([ty, tx, th, tw])."""
        return 4

    def encode(self, boxes: tf.Tensor, anchors: tf.Tensor) -> tf.Tensor:
        """Encodes boxes relative to anchors.

        Args:
          boxes: float [..., 4], yxyx (normalized or absolute, same units as `anchors`).
          anchors: float [..., 4], yxyx, broadcastable to `boxes` (e.g. [A, 4] against
            [B, A, 4]).

        Returns:
          float32 [..., 4] codes `[ty, tx, th, tw]` (the broadcast shape). Finite for
          zero-size boxes and anchors thanks to EPSILON.
        """
        boxes = as_float32(boxes, "boxes")
        anchors = as_float32(anchors, "anchors")
        check_last_dim(boxes, 4, "boxes")
        check_last_dim(anchors, 4, "anchors")
        ycenter_a, xcenter_a, ha, wa = _center_size(anchors)
        ycenter, xcenter, h, w = _center_size(boxes)
        # Avoid NaN in the divide and the log below (OD API: EPSILON on all four sizes).
        ha += EPSILON
        wa += EPSILON
        h += EPSILON
        w += EPSILON
        ty = (ycenter - ycenter_a) / ha
        tx = (xcenter - xcenter_a) / wa
        th = tf.math.log(h / ha)
        tw = tf.math.log(w / wa)
        if self.scale_factors is not None:
            sy, sx, sh, sw = self.scale_factors
            ty, tx, th, tw = ty * sy, tx * sx, th * sh, tw * sw
        return tf.stack([ty, tx, th, tw], axis=-1)

    def decode(self, codes: tf.Tensor, anchors: tf.Tensor) -> tf.Tensor:
        """Decodes codes relative to anchors back to boxes (inverse of `encode`).

        Args:
          codes: float [..., 4], `[ty, tx, th, tw]`.
          anchors: float [..., 4], yxyx, broadcastable to `codes`.

        Returns:
          float32 [..., 4] boxes, yxyx, in the units of `anchors` (not clipped).
        """
        codes = as_float32(codes, "codes")
        anchors = as_float32(anchors, "anchors")
        check_last_dim(codes, 4, "codes")
        check_last_dim(anchors, 4, "anchors")
        ycenter_a, xcenter_a, ha, wa = _center_size(anchors)
        ty, tx, th, tw = tf.unstack(codes, axis=-1)
        if self.scale_factors is not None:
            sy, sx, sh, sw = self.scale_factors
            ty, tx, th, tw = ty / sy, tx / sx, th / sh, tw / sw
        if self.decode_log_scale_clip is not None:
            th = tf.minimum(th, self.decode_log_scale_clip)
            tw = tf.minimum(tw, self.decode_log_scale_clip)
        h = tf.exp(th) * ha
        w = tf.exp(tw) * wa
        ycenter = ty * ha + ycenter_a
        xcenter = tx * wa + xcenter_a
        return tf.stack(
            [ycenter - h / 2.0, xcenter - w / 2.0, ycenter + h / 2.0, xcenter + w / 2.0], axis=-1)
