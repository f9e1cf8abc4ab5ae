"""Hand-designed checks of object_detection.core.post_processing."""
from __future__ import annotations

import math

import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from object_detection.core import post_processing
from object_detection.core import standard_fields as fields

D = fields.DetectionResultFields

B0 = [0.0, 0.0, 0.4, 0.4]
B1 = [0.0, 0.0, 0.4, 0.38]   # IoU with B0 = 0.152 / 0.16 = 0.95 -> suppressed in one class
B2 = [0.5, 0.5, 0.9, 0.9]    # disjoint from B0, B1, B3
B3 = [0.0, 0.6, 0.3, 0.9]    # disjoint from B0, B1, B2
# Image 0: 4 boxes x 2 classes. Image 1: nothing above the threshold.
BOXES = tf.constant([[B0, B1, B2, B3], [B0, B1, B2, B3]])
SCORES = tf.constant([
    [[0.9, 0.1],     # B0: class 0 0.9; class 1 0.1 is not > 0.1 (strict threshold)
     [0.8, 0.75],    # B1: class 0 suppressed by B0; class 1 kept (NMS is per class)
     [0.3, 0.6],     # B2
     [0.05, 0.2]],   # B3: class 0 below the threshold
    [[0.05, 0.05]] * 4,
])
# Kept, by descending score: (0.9, B0, c0), (0.75, B1, c1), (0.6, B2, c1), (0.3, B2, c0),
# (0.2, B3, c1).


def _nms(**overrides):
    kwargs = dict(score_threshold=0.1, iou_threshold=0.5, max_detections_per_class=10,
                  max_total_detections=8)
    kwargs.update(overrides)
    return post_processing.batch_multiclass_non_max_suppression(BOXES, SCORES, **kwargs)


class BatchMulticlassNmsTest(parameterized.TestCase, tf.test.TestCase):

    def test_keep_set_and_padding(self):
        out = _nms()
        self.assertEqual(out[D.detection_boxes].shape, (2, 8, 4))
        self.assertEqual(out[D.detection_scores].shape, (2, 8))
        self.assertEqual(out[D.detection_classes].shape, (2, 8))
        self.assertEqual(out[D.num_detections].dtype, tf.int32)
        self.assertEqual(out[D.detection_classes].dtype, tf.float32)
        self.assertAllEqual(out[D.num_detections], [5, 0])
        self.assertAllClose(out[D.detection_scores][0], [0.9, 0.75, 0.6, 0.3, 0.2, 0, 0, 0])
        self.assertAllClose(out[D.detection_classes][0], [0, 1, 1, 0, 1, 0, 0, 0])
        self.assertAllClose(out[D.detection_boxes][0], [B0, B1, B2, B2, B3] + [[0.0] * 4] * 3)
        # Image 1 is all padding.
        self.assertAllClose(out[D.detection_boxes][1], np.zeros([8, 4]))
        self.assertAllClose(out[D.detection_scores][1], np.zeros([8]))
        self.assertAllClose(out[D.detection_classes][1], np.zeros([8]))

    def test_max_detections_per_class(self):
        out = _nms(max_detections_per_class=1)
        # Best of each class: (0.9, B0, c0), (0.75, B1, c1).
        self.assertAllEqual(out[D.num_detections], [2, 0])
        self.assertAllClose(out[D.detection_scores][0, :3], [0.9, 0.75, 0.0])
        self.assertAllClose(out[D.detection_classes][0, :2], [0, 1])

    def test_max_total_detections(self):
        out = _nms(max_total_detections=3)
        self.assertEqual(out[D.detection_scores].shape, (2, 3))
        self.assertAllEqual(out[D.num_detections], [3, 0])
        self.assertAllClose(out[D.detection_scores][0], [0.9, 0.75, 0.6])
        self.assertAllClose(out[D.detection_boxes][0], [B0, B1, B2])

    def test_high_iou_threshold_keeps_overlapping_boxes(self):
        out = _nms(iou_threshold=0.96)  # 0.95 < 0.96: B1 survives in class 0 too
        self.assertAllEqual(out[D.num_detections], [6, 0])
        self.assertAllClose(out[D.detection_scores][0, :6], [0.9, 0.8, 0.75, 0.6, 0.3, 0.2])

    def test_clip_window_drops_boxes_clipped_to_zero_area(self):
        out = _nms(clip_window=tf.constant([0.0, 0.0, 0.5, 0.5]))
        # B2 clips to [0.5, 0.5, 0.5, 0.5] and B3 to [0, 0.5, 0.3, 0.5]: zero area, dropped.
        # Left: (0.9, B0, c0) (B1 still suppressed in c0), (0.75, B1, c1).
        self.assertAllEqual(out[D.num_detections], [2, 0])
        self.assertAllClose(out[D.detection_scores][0, :3], [0.9, 0.75, 0.0])

    def test_nms_runs_on_the_unclipped_boxes_then_clips(self):
        # Two same-class boxes crossing the right border of the window: unclipped IoU
        # 1.0 / 2.5 = 0.4 (both kept at threshold 0.6, as the OD API keeps them); clipped they
        # would both be [0, 0.5, 1, 1] (IoU 1.0, one suppressed).
        boxes = tf.constant([[[0.0, 0.5, 1.0, 1.5], [0.0, 0.5, 1.0, 3.0]]])
        scores = tf.constant([[[0.9], [0.8]]])
        out = post_processing.batch_multiclass_non_max_suppression(
            boxes, scores, score_threshold=0.1, iou_threshold=0.6, max_detections_per_class=10,
            max_total_detections=4, clip_window=tf.constant([0.0, 0.0, 1.0, 1.0]))
        self.assertAllEqual(out[D.num_detections], [2])
        self.assertAllClose(out[D.detection_scores][0], [0.9, 0.8, 0.0, 0.0])
        self.assertAllClose(out[D.detection_boxes][0, :2], [[0.0, 0.5, 1.0, 1.0]] * 2)
        self.assertAllClose(out[D.detection_boxes][0, 2:], np.zeros([2, 4]))

    def test_boxes_pruned_after_clipping_are_replaced_by_the_next_best(self):
        # The best box lies outside the window: clipped to zero area it is dropped after NMS
        # and the two next survivors fill max_total_detections = 2.
        boxes = tf.constant([[[1.2, 1.2, 1.5, 1.5], B0, B2]])
        scores = tf.constant([[[0.95], [0.9], [0.8]]])
        out = post_processing.batch_multiclass_non_max_suppression(
            boxes, scores, score_threshold=0.1, iou_threshold=0.5, max_detections_per_class=10,
            max_total_detections=2, clip_window=tf.constant([0.0, 0.0, 1.0, 1.0]))
        self.assertAllEqual(out[D.num_detections], [2])
        self.assertAllClose(out[D.detection_scores][0], [0.9, 0.8])
        self.assertAllClose(out[D.detection_boxes][0], [B0, B2])

    def test_accepts_boxes_with_a_class_axis_of_one(self):
        out = post_processing.batch_multiclass_non_max_suppression(
            BOXES[:, :, tf.newaxis, :], SCORES, 0.1, 0.5, 10, 8)
        self.assertAllEqual(out[D.num_detections], [5, 0])

    @parameterized.named_parameters(
        ("negative_score_threshold", dict(score_threshold=-0.1), r"score_threshold.*\[0, 1\]"),
        ("score_threshold_above_one", dict(score_threshold=1.5), r"score_threshold.*\[0, 1\]"),
        ("iou_threshold_above_one", dict(iou_threshold=1.1), r"iou_threshold.*\[0, 1\]"),
        ("zero_total", dict(max_total_detections=0), r"max_total_detections.*>= 1, got 0"),
        ("zero_per_class", dict(max_detections_per_class=0),
         r"max_detections_per_class.*>= 1, got 0"),
    )
    def test_invalid_arguments_raise(self, overrides, message):
        with self.assertRaisesRegex(ValueError, message):
            _nms(**overrides)


class ScoreConverterTest(tf.test.TestCase):

    def test_kinds(self):
        logits = tf.constant([[0.0, math.log(3.0)]])
        # sigmoid(0) = 0.5, sigmoid(ln 3) = 0.75;  softmax: 1 / (1 + 3), 3 / (1 + 3)
        self.assertAllClose(post_processing.score_converter(logits, "SIGMOID"), [[0.5, 0.75]])
        self.assertAllClose(post_processing.score_converter(logits, "SOFTMAX"), [[0.25, 0.75]])
        self.assertAllClose(post_processing.score_converter(logits, "IDENTITY"), logits)

    def test_logit_scale_divides_logits(self):
        logits = tf.constant([[2 * math.log(3.0)]])
        # (2 ln 3) / 2 = ln 3 -> 0.75
        self.assertAllClose(post_processing.score_converter(logits, "SIGMOID", logit_scale=2.0),
                            [[0.75]])

    def test_invalid_arguments_raise(self):
        with self.assertRaisesRegex(ValueError, r"kind 'RELU' is not supported"):
            post_processing.score_converter(tf.zeros([1, 2]), "RELU")
        with self.assertRaisesRegex(ValueError, r"logit_scale must be > 0"):
            post_processing.score_converter(tf.zeros([1, 2]), "SIGMOID", logit_scale=0.0)


if __name__ == "__main__":
    tf.test.main()
