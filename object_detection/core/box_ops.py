"""Box arithmetic on `[ymin, xmin, ymax, xmax]` tensors (the OD API's `box_list_ops`, as pure ops).

Contract:
- Boxes are float `[..., N, 4]` in yxyx order, normalized to [0, 1] of the padded model input
  unless a function says otherwise (`to_absolute` / `to_normalized` convert at the edges; COCO's
  absolute `[x, y, w, h]` has its own named converters).
- Inputs of any float dtype are cast to float32; outputs are float32.
- Every function is shape-static and compiles under `tf.function(jit_compile=True)`.
- Degenerate boxes (ymax < ymin or xmax < xmin) have area 0, never a negative area.

Formulas (for boxes a and b):
  area(a)            = max(ymax - ymin, 0) * max(xmax - xmin, 0)
  intersection(a, b) = max(min(ymax_a, ymax_b) - max(ymin_a, ymin_b), 0)
                       * max(min(xmax_a, xmax_b) - max(xmin_a, xmin_b), 0)
  iou(a, b)          = intersection / (area(a) + area(b) - intersection), 0 when the union is 0
"""
from __future__ import annotations

import tensorflow as tf

from object_detection.core._tensor_utils import as_float32, check_last_dim


def area(boxes: tf.Tensor) -> tf.Tensor:
    """Area of each box.

    Args:
      boxes: float [..., N, 4], yxyx (any consistent unit).

    Returns:
      float32 [..., N]; 0 for degenerate (inverted or empty) boxes.
    """
    boxes = as_float32(boxes, "boxes")
    check_last_dim(boxes, 4, "boxes")
    ymin, xmin, ymax, xmax = tf.unstack(boxes, axis=-1)
    return tf.maximum(ymax - ymin, 0.0) * tf.maximum(xmax - xmin, 0.0)


def intersection(boxes1: tf.Tensor, boxes2: tf.Tensor) -> tf.Tensor:
    """Pairwise intersection areas.

    Args:
      boxes1: float [..., N, 4], yxyx.
      boxes2: float [..., M, 4], yxyx; batch dims broadcastable to those of `boxes1`.

    Returns:
      float32 [..., N, M]; entry (n, m) is the area of boxes1[n] ∩ boxes2[m], >= 0.
    """
    boxes1 = as_float32(boxes1, "boxes1")
    boxes2 = as_float32(boxes2, "boxes2")
    check_last_dim(boxes1, 4, "boxes1")
    check_last_dim(boxes2, 4, "boxes2")
    ymin1, xmin1, ymax1, xmax1 = tf.unstack(boxes1[..., :, tf.newaxis, :], axis=-1)  # [..., N, 1]
    ymin2, xmin2, ymax2, xmax2 = tf.unstack(boxes2[..., tf.newaxis, :, :], axis=-1)  # [..., 1, M]
    heights = tf.maximum(tf.minimum(ymax1, ymax2) - tf.maximum(ymin1, ymin2), 0.0)  # [..., N, M]
    widths = tf.maximum(tf.minimum(xmax1, xmax2) - tf.maximum(xmin1, xmin2), 0.0)  # [..., N, M]
    return heights * widths


def iou(boxes1: tf.Tensor, boxes2: tf.Tensor) -> tf.Tensor:
    """Pairwise intersection over union.

    Args:
      boxes1: float [..., N, 4], yxyx.
      boxes2: float [..., M, 4], yxyx; batch dims broadcastable to those of `boxes1`.

    Returns:
      float32 [..., N, M] in [0, 1]. 0 where the union is empty (both boxes degenerate), never NaN.
    """
    boxes1 = as_float32(boxes1, "boxes1")
    boxes2 = as_float32(boxes2, "boxes2")
    inter = intersection(boxes1, boxes2)  # [..., N, M]
    area1 = area(boxes1)[..., :, tf.newaxis]  # [..., N, 1]
    area2 = area(boxes2)[..., tf.newaxis, :]  # [..., 1, M]
    union = area1 + area2 - inter
    # divide_no_nan gives 0 for an empty union without a NaN gradient through the other branch.
    return tf.math.divide_no_nan(inter, union)


def clip_to_window(boxes: tf.Tensor, window: tf.Tensor) -> tf.Tensor:
    """Clips every box coordinate into a window.

    Boxes entirely outside the window become degenerate (zero area) boxes on its border; they
    are not removed (static shapes).

    Args:
      boxes: float [..., N, 4], yxyx.
      window: float [4] (one window for all boxes) or [..., 4] with the batch dims of `boxes`
        (one window per set of N boxes), yxyx in the same units as `boxes`.

    Returns:
      float32 [..., N, 4], yxyx, every coordinate inside the window.
    """
    boxes = as_float32(boxes, "boxes")
    window = as_float32(window, "window")
    check_last_dim(boxes, 4, "boxes")
    check_last_dim(window, 4, "window")
    if window.shape.rank is not None and window.shape.rank > 1:
        window = window[..., tf.newaxis, :]  # [..., 1, 4], broadcasts over N
    win_ymin, win_xmin, win_ymax, win_xmax = tf.unstack(window, axis=-1)
    ymin, xmin, ymax, xmax = tf.unstack(boxes, axis=-1)
    ymin = tf.clip_by_value(ymin, win_ymin, win_ymax)
    ymax = tf.clip_by_value(ymax, win_ymin, win_ymax)
    xmin = tf.clip_by_value(xmin, win_xmin, win_xmax)
    xmax = tf.clip_by_value(xmax, win_xmin, win_xmax)
    return tf.stack([ymin, xmin, ymax, xmax], axis=-1)


def scale(boxes: tf.Tensor, y_scale, x_scale) -> tf.Tensor:
    """Multiplies y coordinates by `y_scale` and x coordinates by `x_scale`.

    Args:
      boxes: float [..., N, 4], yxyx.
      y_scale: float scalar, or a tensor broadcastable to [..., N] (e.g. [..., 1] per image).
      x_scale: float scalar, or a tensor broadcastable to [..., N].

    Returns:
      float32 [..., N, 4], yxyx.
    """
    boxes = as_float32(boxes, "boxes")
    check_last_dim(boxes, 4, "boxes")
    y_scale = as_float32(y_scale, "y_scale")
    x_scale = as_float32(x_scale, "x_scale")
    ymin, xmin, ymax, xmax = tf.unstack(boxes, axis=-1)
    return tf.stack([ymin * y_scale, xmin * x_scale, ymax * y_scale, xmax * x_scale], axis=-1)


def to_normalized(boxes: tf.Tensor, height, width) -> tf.Tensor:
    """Converts absolute pixel boxes to coordinates normalized by the image size.

    Args:
      boxes: float [..., N, 4], yxyx in absolute pixels.
      height: image height in pixels; scalar or broadcastable to [..., N]; > 0.
      width: image width in pixels; scalar or broadcastable to [..., N]; > 0.

    Returns:
      float32 [..., N, 4], yxyx normalized (y / height, x / width; divided, not multiplied by
      the reciprocal, so pixel values that are multiples of the size stay exact). Not clipped
      to [0, 1].
    """
    boxes = as_float32(boxes, "boxes")
    check_last_dim(boxes, 4, "boxes")
    height = as_float32(height, "height")
    width = as_float32(width, "width")
    ymin, xmin, ymax, xmax = tf.unstack(boxes, axis=-1)
    return tf.stack([ymin / height, xmin / width, ymax / height, xmax / width], axis=-1)


def to_absolute(boxes: tf.Tensor, height, width) -> tf.Tensor:
    """Converts normalized boxes to absolute pixel coordinates.

    Args:
      boxes: float [..., N, 4], yxyx normalized to [0, 1].
      height: image height in pixels; scalar or broadcastable to [..., N].
      width: image width in pixels; scalar or broadcastable to [..., N].

    Returns:
      float32 [..., N, 4], yxyx in pixels (y * height, x * width).
    """
    return scale(boxes, height, width)


def yxyx_to_xywh(boxes: tf.Tensor) -> tf.Tensor:
    """Converts `[ymin, xmin, ymax, xmax]` to COCO's `[x, y, w, h]` (x, y = top-left corner).

    Args:
      boxes: float [..., 4], yxyx.

    Returns:
      float32 [..., 4], `[xmin, ymin, xmax - xmin, ymax - ymin]`, same units as the input.
    """
    boxes = as_float32(boxes, "boxes")
    check_last_dim(boxes, 4, "boxes")
    ymin, xmin, ymax, xmax = tf.unstack(boxes, axis=-1)
    return tf.stack([xmin, ymin, xmax - xmin, ymax - ymin], axis=-1)


def xywh_to_yxyx(boxes: tf.Tensor) -> tf.Tensor:
    """Converts COCO's `[x, y, w, h]` (x, y = top-left corner) to `[ymin, xmin, ymax, xmax]`.

    Args:
      boxes: float [..., 4], `[x, y, w, h]`.

    Returns:
      float32 [..., 4], `[y, x, y + h, x + w]`, same units as the input.
    """
    boxes = as_float32(boxes, "boxes")
    check_last_dim(boxes, 4, "boxes")
    x, y, w, h = tf.unstack(boxes, axis=-1)
    return tf.stack([y, x, y + h, x + w], axis=-1)
