"""Hand-computed checks of object_detection.core.np_box_ops (the host-side COCO conversion)."""
from __future__ import annotations

import numpy as np

from object_detection.core import box_ops, np_box_ops


def test_normalized_yxyx_to_absolute_xywh_by_hand():
    boxes = np.array([[0.1, 0.2, 0.5, 1.0], [0.0, 0.0, 0.0, 0.0]], np.float32)
    # height 100, width 200: x = 0.2*200 = 40, y = 0.1*100 = 10, w = 0.8*200 = 160,
    # h = 0.4*100 = 40; an empty box stays at the origin with size 0.
    xywh = np_box_ops.normalized_yxyx_to_absolute_xywh(boxes, 100, 200)
    assert xywh.dtype == np.float64 and xywh.shape == (2, 4)
    np.testing.assert_allclose(xywh, [[40.0, 10.0, 160.0, 40.0], [0.0, 0.0, 0.0, 0.0]],
                               rtol=1e-6)


def test_float32_boxes_give_the_same_number_whichever_conversion_comes_first():
    rng = np.random.default_rng(0)
    corners = np.sort(rng.random((1000, 2, 2)), axis=1)  # [N, (min, max), (y, x)]
    boxes = corners.reshape(-1, 4).astype(np.float32)  # [N, 4] ymin, xmin, ymax, xmax
    height, width = 427, 640
    xywh = np_box_ops.normalized_yxyx_to_absolute_xywh(boxes, height, width)
    absolute = boxes.astype(np.float64) * [height, width, height, width]  # to_absolute first
    first_absolute = np.stack([absolute[:, 1], absolute[:, 0], absolute[:, 3] - absolute[:, 1],
                               absolute[:, 2] - absolute[:, 0]], axis=-1)
    np.testing.assert_array_equal(xywh, first_absolute)
    # and the TF converters (float32) agree to float32 round-off
    expected = box_ops.yxyx_to_xywh(box_ops.to_absolute(boxes, height, width)).numpy()
    np.testing.assert_allclose(xywh, expected, rtol=1e-6, atol=1e-3)


def test_leading_dims_and_no_boxes():
    assert np_box_ops.normalized_yxyx_to_absolute_xywh(np.zeros([0, 4]), 10, 10).shape == (0, 4)
    assert np_box_ops.normalized_yxyx_to_absolute_xywh(np.zeros([2, 3, 4]), 10, 10).shape == (
        2, 3, 4)
