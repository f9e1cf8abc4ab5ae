"""Hand-computed checks of object_detection.core.box_ops."""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from object_detection.core import box_ops


class BoxOpsTest(tf.test.TestCase):

    def test_area_including_degenerate(self):
        boxes = tf.constant([[0.0, 0.0, 2.0, 2.0],    # 2 * 2 = 4
                             [1.0, 1.0, 3.0, 4.0],    # 2 * 3 = 6
                             [1.0, 1.0, 1.0, 1.0],    # empty: 0
                             [2.0, 2.0, 1.0, 1.0]])   # inverted: 0, not (-1) * (-1) = 1
        self.assertAllClose(box_ops.area(boxes), [4.0, 6.0, 0.0, 0.0])

    def test_intersection_and_iou(self):
        boxes1 = tf.constant([[0.0, 0.0, 2.0, 2.0],   # area 4
                              [0.0, 0.0, 1.0, 1.0]])  # area 1
        boxes2 = tf.constant([[1.0, 1.0, 3.0, 3.0],   # area 4
                              [0.0, 0.0, 1.0, 1.0],   # area 1
                              [5.0, 5.0, 6.0, 6.0]])  # area 1, far away
        # [0,0,2,2] ∩ [1,1,3,3] = [1,1,2,2]: 1;  [0,0,2,2] ∩ [0,0,1,1] = 1;  far: 0
        # [0,0,1,1] ∩ [1,1,3,3] touches at a corner: 0;  with itself: 1;  far: 0
        self.assertAllClose(box_ops.intersection(boxes1, boxes2),
                            [[1.0, 1.0, 0.0], [0.0, 1.0, 0.0]])
        # iou: 1 / (4 + 4 - 1) = 1/7;  1 / (4 + 1 - 1) = 1/4;  0
        #      0;  1 / (1 + 1 - 1) = 1;  0
        self.assertAllClose(box_ops.iou(boxes1, boxes2),
                            [[1.0 / 7.0, 0.25, 0.0], [0.0, 1.0, 0.0]])

    def test_iou_is_zero_for_empty_union(self):
        point = tf.constant([[0.5, 0.5, 0.5, 0.5]])  # area 0 with itself: union 0, not NaN
        self.assertAllEqual(box_ops.iou(point, point), [[0.0]])

    def test_iou_batched_with_broadcast_anchors(self):
        boxes = tf.constant([[[0.0, 0.0, 0.5, 0.5]],
                             [[0.0, 0.0, 1.0, 1.0]]])  # [2, 1, 4]
        anchors = tf.constant([[[0.0, 0.0, 0.5, 0.5], [0.0, 0.0, 0.5, 1.0]]])  # [1, 2, 4]
        # image 0: 1;  0.25 / (0.25 + 0.5 - 0.25) = 0.5
        # image 1: 0.25 / 1 = 0.25;  0.5 / 1 = 0.5
        result = box_ops.iou(boxes, anchors)
        self.assertEqual(result.shape, (2, 1, 2))
        self.assertAllClose(result, [[[1.0, 0.5]], [[0.25, 0.5]]])

    def test_clip_to_window(self):
        boxes = tf.constant([[-0.1, 0.2, 0.5, 1.3],
                             [1.2, 1.1, 1.5, 1.4]])  # entirely outside: collapses on the corner
        self.assertAllClose(box_ops.clip_to_window(boxes, [0.0, 0.0, 1.0, 1.0]),
                            [[0.0, 0.2, 0.5, 1.0], [1.0, 1.0, 1.0, 1.0]])

    def test_clip_to_window_one_window_per_image(self):
        boxes = tf.constant([[[0.0, 0.0, 1.0, 1.0]], [[0.0, 0.0, 1.0, 1.0]]])  # [2, 1, 4]
        windows = tf.constant([[0.0, 0.0, 0.5, 1.0], [0.25, 0.25, 1.0, 0.75]])  # [2, 4]
        self.assertAllClose(box_ops.clip_to_window(boxes, windows),
                            [[[0.0, 0.0, 0.5, 1.0]], [[0.25, 0.25, 1.0, 0.75]]])

    def test_scale(self):
        # y * 2, x * 3: [0.1*2, 0.2*3, 0.3*2, 0.4*3]
        self.assertAllClose(box_ops.scale(tf.constant([[0.1, 0.2, 0.3, 0.4]]), 2.0, 3.0),
                            [[0.2, 0.6, 0.6, 1.2]])

    def test_to_absolute_and_back(self):
        normalized = tf.constant([[0.1, 0.2, 0.3, 0.4]])
        # height 100, width 200: [0.1*100, 0.2*200, 0.3*100, 0.4*200]
        absolute = box_ops.to_absolute(normalized, 100, 200)
        self.assertAllClose(absolute, [[10.0, 40.0, 30.0, 80.0]])
        self.assertAllClose(box_ops.to_normalized(absolute, 100, 200), normalized)

    def test_to_normalized_divides_by_the_size(self):
        # 41 * (1 / 41) is 0.99999994 in float32; 41 / 41 is exactly 1 (the image border).
        absolute = tf.constant([[0.0, 0.0, 41.0, 82.0]])
        self.assertAllEqual(box_ops.to_normalized(absolute, 41, 82), [[0.0, 0.0, 1.0, 1.0]])

    def test_yxyx_xywh_conversions(self):
        yxyx = tf.constant([[10.0, 40.0, 30.0, 80.0]])
        # x = xmin = 40, y = ymin = 10, w = 80 - 40 = 40, h = 30 - 10 = 20
        xywh = box_ops.yxyx_to_xywh(yxyx)
        self.assertAllClose(xywh, [[40.0, 10.0, 40.0, 20.0]])
        self.assertAllClose(box_ops.xywh_to_yxyx(xywh), yxyx)

    def test_casts_other_float_dtypes_to_float32(self):
        boxes = np.array([[0.0, 0.0, 2.0, 2.0]], dtype=np.float16)
        result = box_ops.iou(boxes, tf.constant(boxes, tf.bfloat16))
        self.assertEqual(result.dtype, tf.float32)
        self.assertAllClose(result, [[1.0]])

    def test_wrong_last_dimension_raises(self):
        with self.assertRaisesRegex(ValueError, r"boxes1.*last dimension to be 4"):
            box_ops.iou(tf.zeros([2, 3]), tf.zeros([2, 4]))


if __name__ == "__main__":
    tf.test.main()
