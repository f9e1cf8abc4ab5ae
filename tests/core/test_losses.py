"""Hand-computed checks of object_detection.core.losses."""
from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from object_detection.core import losses

LN3 = math.log(3.0)  # sigmoid(ln 3) = 3 / 4
LN2 = math.log(2.0)  # sigmoid cross entropy at logit 0, for either target


class SigmoidFocalLossTest(tf.test.TestCase):

    def test_hand_computed_values(self):
        logits = tf.constant([[[0.0, 0.0, LN3, LN3]]])    # p = 0.5, 0.5, 0.75, 0.75
        targets = tf.constant([[[1.0, 0.0, 1.0, 0.0]]])
        loss = losses.sigmoid_focal_loss(logits, targets, tf.ones([1, 1]))
        expected = [[[
            (1 - 0.5)**2 * 0.25 * LN2,                     # p_t 0.5, alpha 0.25: 0.0433217
            (1 - 0.5)**2 * 0.75 * LN2,                     # p_t 0.5, 1 - alpha:   0.1299651
            (1 - 0.75)**2 * 0.25 * -math.log(0.75),        # p_t 0.75, CE 0.2876821: 0.0044950
            (1 - 0.25)**2 * 0.75 * -math.log(0.25),        # p_t 0.25, CE 1.3862944: 0.5848430
        ]]]
        self.assertAllClose(loss, expected, atol=1e-6)
        self.assertAllClose(expected[0][0], [0.0433217, 0.1299651, 0.0044950, 0.5848430],
                            atol=1e-6)

    def test_gamma_zero_without_alpha_is_cross_entropy(self):
        logits = tf.constant([[[0.0, LN3]]])
        targets = tf.constant([[[0.0, 1.0]]])
        loss = losses.sigmoid_focal_loss(logits, targets, tf.ones([1, 1]), alpha=None, gamma=0.0)
        self.assertAllClose(loss, [[[LN2, -math.log(0.75)]]], atol=1e-6)

    def test_anchor_and_class_weights(self):
        logits = tf.zeros([1, 2, 2])
        targets = tf.constant([[[1.0, 0.0], [1.0, 0.0]]])
        # Per-anchor weights [2, 0] broadcast over K.
        per_anchor = losses.sigmoid_focal_loss(logits, targets, tf.constant([[2.0, 0.0]]))
        self.assertAllClose(per_anchor, [[[2 * 0.25 * 0.25 * LN2, 2 * 0.25 * 0.75 * LN2],
                                          [0.0, 0.0]]], atol=1e-6)
        # Per-class weights [B, A, K].
        per_class = losses.sigmoid_focal_loss(logits, targets,
                                              tf.constant([[[1.0, 0.0], [0.0, 1.0]]]))
        self.assertAllClose(per_class, [[[0.25 * 0.25 * LN2, 0.0], [0.0, 0.25 * 0.75 * LN2]]],
                            atol=1e-6)

    def test_extreme_logits_are_finite(self):
        logits = tf.constant([[[100.0, -100.0, 100.0, -100.0]]])
        targets = tf.constant([[[1.0, 0.0, 0.0, 1.0]]])
        loss = losses.sigmoid_focal_loss(logits, targets, tf.ones([1, 1]))
        self.assertTrue(np.all(np.isfinite(loss.numpy())))
        self.assertAllClose(loss[0, 0, :2], [0.0, 0.0])
        # Confidently wrong: p_t ~ 0, CE ~ 100: 0.75 * 100 and 0.25 * 100.
        self.assertAllClose(loss[0, 0, 2:], [75.0, 25.0], rtol=1e-4)


class SigmoidCrossEntropyTest(tf.test.TestCase):

    def test_hand_computed_values(self):
        logits = tf.constant([[[0.0, LN3], [LN3, 0.0]]])
        targets = tf.constant([[[1.0, 1.0], [0.0, 0.0]]])
        loss = losses.sigmoid_cross_entropy(logits, targets, tf.constant([[1.0, 3.0]]))
        # -log 0.5;  -log 0.75;  3 * -log 0.25;  3 * -log 0.5
        self.assertAllClose(loss, [[[LN2, -math.log(0.75)],
                                    [3 * -math.log(0.25), 3 * LN2]]], atol=1e-6)


class LocalizationLossTest(tf.test.TestCase):

    def test_smooth_l1_delta_one(self):
        predictions = tf.constant([[[0.5, -2.0, 0.0, 1.0], [0.5, -2.0, 0.0, 1.0]]])
        targets = tf.zeros([1, 2, 4])
        loss = losses.smooth_l1_loss(predictions, targets, tf.constant([[1.0, 2.0]]))
        # |d| = 0.5: 0.5 * 0.25 = 0.125;  2: 1 * (2 - 0.5) = 1.5;  0: 0;  1: 0.5 (either branch)
        # sum 2.125; weight 2 -> 4.25
        self.assertAllClose(loss, [[2.125, 4.25]])

    def test_smooth_l1_small_delta(self):
        predictions = tf.constant([[[0.5, -2.0, 0.0, 1.0]]])
        loss = losses.smooth_l1_loss(predictions, tf.zeros([1, 1, 4]), tf.ones([1, 1]),
                                     delta=0.5)
        # delta 0.5: 0.5 -> 0.5 * 0.25 = 0.125;  2 -> 0.5 * (2 - 0.25) = 0.875;  0;
        # 1 -> 0.5 * (1 - 0.25) = 0.375;  sum 1.375
        self.assertAllClose(loss, [[1.375]])

    def test_smooth_l1_rejects_non_positive_delta(self):
        with self.assertRaisesRegex(ValueError, r"delta must be > 0, got 0.0"):
            losses.smooth_l1_loss(tf.zeros([1, 1, 4]), tf.zeros([1, 1, 4]), tf.ones([1, 1]),
                                  delta=0.0)

    def test_l2(self):
        predictions = tf.constant([[[1.0, 2.0, 0.0, -1.0], [1.0, 2.0, 0.0, -1.0]]])
        loss = losses.l2_loss(predictions, tf.zeros([1, 2, 4]), tf.constant([[1.0, 2.0]]))
        # 0.5 * (1 + 4 + 0 + 1) = 3;  weight 2 multiplies d (OD API): 0.5 * (4 + 16 + 4) = 12
        self.assertAllClose(loss, [[3.0, 12.0]])


if __name__ == "__main__":
    tf.test.main()
