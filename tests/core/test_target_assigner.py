"""Hand-computed checks of object_detection.core.target_assigner."""
from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from object_detection.core import standard_fields as fields
from object_detection.core.box_coder import FasterRcnnBoxCoder
from object_detection.core.matcher import IGNORED, UNMATCHED, ArgMaxMatcher
from object_detection.core.target_assigner import TargetAssigner

U, I = UNMATCHED, IGNORED
T = fields.TargetFields

# Four quadrant anchors of the unit square, each 0.5 x 0.5 (area 0.25).
ANCHORS = tf.constant([[0.0, 0.0, 0.5, 0.5],    # a0 top-left
                       [0.0, 0.5, 0.5, 1.0],    # a1 top-right
                       [0.5, 0.0, 1.0, 0.5],    # a2 bottom-left
                       [0.5, 0.5, 1.0, 1.0]])   # a3 bottom-right

GT_BOXES = tf.constant([
    # Image 0: 2 boxes + 1 padded row.
    [[0.0, 0.0, 0.5, 0.5],      # = a0: IoU 1 with a0, 0 elsewhere (edges touch)
     [0.5, 0.5, 1.0, 0.9],      # vs a3: inter 0.5 * 0.4 = 0.2, union 0.25 -> IoU 0.8
     [0.5, 0.0, 1.0, 0.5]],     # padding (= a2, IoU 1) must never match
    # Image 1: a crowd box, a normal box, a box in the ignore band.
    [[0.5, 0.0, 1.0, 0.5],      # = a2, weight 0 (crowd)
     [0.0, 0.5, 0.5, 1.0],      # = a1
     [0.0, 0.0, 0.5, 0.225]],   # vs a0: inter 0.5 * 0.225 = 0.1125 / 0.25 -> IoU 0.45
    # Image 2: no ground truth at all (all rows padding).
    [[0.0, 0.0, 0.5, 0.5],
     [0.0, 0.0, 0.5, 0.5],
     [0.0, 0.0, 0.5, 0.5]],
])
GT_CLASSES = tf.constant([[2, 0, 1], [1, 0, 2], [0, 0, 0]])
NUM_GT = tf.constant([2, 3, 0])
GT_WEIGHTS = tf.constant([[1.0, 1.0, 1.0], [0.0, 1.0, 1.0], [1.0, 1.0, 1.0]])


def _assigner(**matcher_kwargs) -> TargetAssigner:
    kwargs = dict(matched_threshold=0.5, unmatched_threshold=0.4)
    kwargs.update(matcher_kwargs)
    return TargetAssigner(ArgMaxMatcher(**kwargs), FasterRcnnBoxCoder())


class TargetAssignerTest(tf.test.TestCase):

    def test_assign_two_gt_crowd_ignore_band_and_empty_image(self):
        targets = _assigner().assign(ANCHORS, GT_BOXES, GT_CLASSES, NUM_GT, num_classes=3,
                                     groundtruth_weights=GT_WEIGHTS)
        self.assertEqual(targets[T.cls_targets].shape, (3, 4, 3))
        self.assertEqual(targets[T.cls_weights].shape, (3, 4))
        self.assertEqual(targets[T.reg_targets].shape, (3, 4, 4))
        self.assertEqual(targets[T.reg_weights].shape, (3, 4))

        # Image 0: a0 -> gt 0 (IoU 1), a3 -> gt 1 (IoU 0.8); a1, a2 overlap nothing valid.
        # Image 1: a0 IoU 0.45 -> IGNORED; a1 -> gt 1; a2 -> gt 0 (crowd, by argmax); a3 -> U.
        # Image 2: no ground truth -> all UNMATCHED.
        self.assertAllEqual(targets[T.match], [[0, U, U, 1], [I, 1, 0, U], [U, U, U, U]])

        self.assertAllClose(targets[T.cls_targets], [
            [[0, 0, 1], [0, 0, 0], [0, 0, 0], [1, 0, 0]],   # classes 2 and 0
            [[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 0]],   # class 0; crowd class 1 (weight 0)
            [[0, 0, 0]] * 4,
        ])
        # cls_weights: matched -> gt weight, UNMATCHED -> 1, IGNORED -> 0, crowd -> 0.
        self.assertAllClose(targets[T.cls_weights], [[1, 1, 1, 1], [0, 1, 0, 1], [1, 1, 1, 1]])
        # reg_weights: 1 only for anchors matched to a weight-1 box.
        self.assertAllClose(targets[T.reg_weights], [[1, 0, 0, 1], [0, 1, 0, 0], [0, 0, 0, 0]])

        # a3 (center (0.75, 0.75), 0.5 x 0.5) vs gt 1 (center (0.75, 0.7), 0.5 x 0.4):
        # ty = 0;  tx = (0.7 - 0.75) / 0.5 * 10 = -1;  th = 5 log(1) = 0;
        # tw = 5 log(0.4 / 0.5) = 5 log(0.8) = -1.1157178.  Identical boxes encode to 0.
        expected_reg = np.zeros([3, 4, 4], np.float32)
        expected_reg[0, 3] = [0.0, -1.0, 0.0, 5 * math.log(0.8)]
        self.assertAllClose(targets[T.reg_targets], expected_reg, atol=1e-5)
        for value in targets.values():
            self.assertTrue(np.all(np.isfinite(value.numpy())))

    def test_zero_groundtruth_rows_make_every_anchor_background(self):
        targets = _assigner(force_match_for_each_row=True).assign(
            ANCHORS, tf.zeros([2, 0, 4]), tf.zeros([2, 0], tf.int32), tf.constant([0, 0]),
            num_classes=3, groundtruth_weights=tf.zeros([2, 0]))
        self.assertAllEqual(targets[T.match], [[U] * 4] * 2)
        self.assertAllEqual(targets[T.cls_targets], np.zeros([2, 4, 3]))
        self.assertAllEqual(targets[T.cls_weights], np.ones([2, 4]))  # background, weight 1
        self.assertAllEqual(targets[T.reg_weights], np.zeros([2, 4]))
        self.assertAllEqual(targets[T.reg_targets], np.zeros([2, 4, 4]))

    def test_weights_default_to_one_for_valid_rows(self):
        targets = _assigner().assign(ANCHORS, GT_BOXES, GT_CLASSES, NUM_GT, num_classes=3)
        # Without weights the crowd box of image 1 is a normal positive for a2.
        self.assertAllClose(targets[T.cls_weights][1], [0, 1, 1, 1])
        self.assertAllClose(targets[T.reg_weights][1], [0, 1, 1, 0])

    def test_force_match_gives_small_box_an_anchor_but_not_a_crowd_box(self):
        gt_boxes = tf.constant([[[0.0, 0.0, 0.25, 0.25],     # vs a0: 0.0625 / 0.25 = 0.25
                                 [0.5, 0.5, 0.75, 0.75]]])   # vs a3: 0.25, weight 0 (crowd)
        targets = _assigner(force_match_for_each_row=True).assign(
            ANCHORS, gt_boxes, tf.constant([[1, 0]]), tf.constant([2]), num_classes=2,
            groundtruth_weights=tf.constant([[1.0, 0.0]]))
        # Both IoUs are below 0.4 -> UNMATCHED; forcing gives a0 to gt 0, the crowd box is
        # not forced (OD API: valid_rows = weights > 0), so a3 stays UNMATCHED.
        self.assertAllEqual(targets[T.match], [[0, U, U, U]])
        self.assertAllClose(targets[T.cls_targets][0, 0], [0, 1])
        self.assertAllClose(targets[T.reg_weights], [[1, 0, 0, 0]])

    def test_unsupported_similarity_raises(self):
        with self.assertRaisesRegex(ValueError, r"similarity 'ioa' is not supported.*'iou'"):
            TargetAssigner(ArgMaxMatcher(), FasterRcnnBoxCoder(), similarity="ioa")

    def test_invalid_num_classes_raises(self):
        with self.assertRaisesRegex(ValueError, r"num_classes must be an int >= 1"):
            _assigner().assign(ANCHORS, GT_BOXES, GT_CLASSES, NUM_GT, num_classes=0)


if __name__ == "__main__":
    tf.test.main()
