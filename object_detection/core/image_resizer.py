"""The model's fixed-shape image resize, with the OD API's sampling grid.

The OD API's `fixed_shape_resizer` resizes with `tf.compat.v1.image.resize_images(...,
align_corners=False)`: output pixel i samples input position i * in / out (corner-aligned grid,
no half-pixel centres). TF 2's `tf.image.resize` samples (i + 0.5) * in / out - 0.5 instead, a
different image (up to 17 grey levels apart on a 640x480 photo resized to 320x320). Training,
evaluation and the exported model all resize through `resize_images`, so they see the same input.
"""
from __future__ import annotations

import tensorflow as tf

# OD API `ResizeType` names, in enum order (BILINEAR = 0, ...).
RESIZE_METHODS = ("BILINEAR", "NEAREST_NEIGHBOR", "BICUBIC", "AREA")

_V1_METHODS = {
    "BILINEAR": tf.compat.v1.image.ResizeMethod.BILINEAR,
    "NEAREST_NEIGHBOR": tf.compat.v1.image.ResizeMethod.NEAREST_NEIGHBOR,
    "BICUBIC": tf.compat.v1.image.ResizeMethod.BICUBIC,
    "AREA": tf.compat.v1.image.ResizeMethod.AREA,
}


def resize_images(images: tf.Tensor, height: int, width: int,
                  method: str = "BILINEAR") -> tf.Tensor:
    """Resizes to height x width, aspect ratio not kept (OD API `fixed_shape_resizer`).

    Args:
      images: [H, W, C] or [B, H, W, C], any real or integer dtype.
      height, width: output size, > 0.
      method: one of `RESIZE_METHODS`.

    Returns:
      float32 [height, width, C] or [B, height, width, C].

    Raises:
      ValueError: for an unknown method or a non-positive size.
    """
    if method not in _V1_METHODS:
        raise ValueError(f"resize method {method!r} is not supported; expected one of "
                         f"{list(RESIZE_METHODS)}.")
    if height <= 0 or width <= 0:
        raise ValueError(f"resize size must be > 0, got {height}x{width}.")
    images = tf.cast(images, tf.float32)
    resized = tf.compat.v1.image.resize_images(
        images, [int(height), int(width)], method=_V1_METHODS[method], align_corners=False)
    return tf.cast(resized, tf.float32)
