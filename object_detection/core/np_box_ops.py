"""Numpy twin of `box_ops`' conversion to COCO boxes, for the host-side edges.

The COCO evaluator and the inference runner turn detections into COCO's absolute `[x, y, w, h]`
on the host, in float64 numpy and without TensorFlow: this is
`box_ops.yxyx_to_xywh(box_ops.to_absolute(boxes, height, width))` computed in float64:

  [x, y, w, h] = [xmin * width, ymin * height, (xmax - xmin) * width, (ymax - ymin) * height]

For float32 boxes (model outputs, decoded records) and integer image sizes, `(xmax - xmin) *
width` and `xmax * width - xmin * width` are the same float64 number (the products and the
difference are exact before the one rounding), so the order of the two conversions does not
show.
"""
from __future__ import annotations

import numpy as np


def normalized_yxyx_to_absolute_xywh(boxes, height: float, width: float) -> np.ndarray:
    """Normalized `[ymin, xmin, ymax, xmax]` to COCO's absolute `[x, y, w, h]`.

    Args:
      boxes: float [..., 4], yxyx normalized to [0, 1] of the image.
      height: image height in pixels.
      width: image width in pixels.

    Returns:
      float64 [..., 4], `[x, y, w, h]` in pixels, x, y the top-left corner.
    """
    boxes = np.asarray(boxes, dtype=np.float64)
    ymin, xmin, ymax, xmax = (boxes[..., i] for i in range(4))
    return np.stack([xmin * width, ymin * height, (xmax - xmin) * width, (ymax - ymin) * height],
                    axis=-1)
