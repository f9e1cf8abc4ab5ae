"""XLA parity: every TF function of `core/` (NMS excepted) gives the same result eagerly and
under `tf.function(jit_compile=True)` with fixed shapes (the learning-rate schedules included).

The anchor generator is numpy (computed once, used as a constant) and has no compiled form.
Inputs are random but seeded; the values under test are the eager ones, not hand-computed (the
hand-computed checks live in the per-module tests).
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from object_detection.core import box_ops, learning_schedules, losses, post_processing
from object_detection.core.anchor_generator import MultiscaleGridAnchorGenerator
from object_detection.core.box_coder import FasterRcnnBoxCoder
from object_detection.core.matcher import ArgMaxMatcher
from object_detection.core.target_assigner import TargetAssigner


def _boxes(rng: np.random.RandomState, shape) -> tf.Tensor:
    """Random valid yxyx boxes in the unit square, float32 [*shape, 4]."""
    corner = rng.uniform(0.0, 0.8, size=tuple(shape) + (2,))
    size = rng.uniform(0.01, 0.5, size=tuple(shape) + (2,))
    return tf.constant(np.concatenate([corner, corner + size], axis=-1), tf.float32)


def _similarity(rng: np.random.RandomState) -> tf.Tensor:
    # Rounded to 0.1 so that ties (argmax tie-breaking) are exercised too.
    return tf.constant(np.round(rng.uniform(0.0, 1.0, size=(2, 5, 16)), 1), tf.float32)


_VALID_ROWS = tf.constant([[True, True, True, False, False],
                           [False, False, False, False, False]])  # image 1: no ground truth


def _matcher_case(**kwargs):
    def build(rng):
        matcher = ArgMaxMatcher(**kwargs)
        return matcher.match, (_similarity(rng), _VALID_ROWS)
    return build


def _target_assigner_case(rng):
    anchors = tf.constant(MultiscaleGridAnchorGenerator(3, 4, 4.0, (1.0, 2.0, 0.5), 2)
                          .generate(64, 64))  # (8*8 + 4*4) * 6 = 480 anchors
    assigner = TargetAssigner(ArgMaxMatcher(0.5, 0.4, force_match_for_each_row=True),
                              FasterRcnnBoxCoder())
    gt_boxes = _boxes(rng, (2, 4))
    gt_classes = tf.constant([[0, 2, 1, 0], [1, 0, 0, 0]])
    num_gt = tf.constant([3, 0])
    gt_weights = tf.constant([[1.0, 0.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0]])

    def fn(anchors, gt_boxes, gt_classes, num_gt, gt_weights):
        return assigner.assign(anchors, gt_boxes, gt_classes, num_gt, num_classes=3,
                               groundtruth_weights=gt_weights)
    return fn, (anchors, gt_boxes, gt_classes, num_gt, gt_weights)


def _loss_inputs(rng, weights_shape=(2, 10)):
    logits = tf.constant(rng.normal(0.0, 3.0, size=(2, 10, 3)), tf.float32)
    targets = tf.one_hot(rng.randint(0, 3, size=(2, 10)), 3)
    weights = tf.constant(rng.randint(0, 2, size=weights_shape), tf.float32)
    return logits, targets, weights


def _localization_inputs(rng):
    predictions = tf.constant(rng.normal(0.0, 2.0, size=(2, 10, 4)), tf.float32)
    targets = tf.constant(rng.normal(0.0, 2.0, size=(2, 10, 4)), tf.float32)
    weights = tf.constant(rng.randint(0, 2, size=(2, 10)), tf.float32)
    return predictions, targets, weights


_CODER = FasterRcnnBoxCoder()


def _schedule_case(schedule):
    """The schedule at steps before, inside and after its phases (each step a scalar, as the
    optimizer's counter is)."""
    def build(rng):
        def fn(steps):
            return tf.stack([schedule(steps[i]) for i in range(steps.shape[0])])
        return fn, (tf.constant([0, 3, 10, 12, 50, 99, 100, 120], tf.int64),)
    return build

CASES = (
    ("area", lambda rng: (box_ops.area, (_boxes(rng, (2, 7)),))),
    ("intersection", lambda rng: (box_ops.intersection, (_boxes(rng, (2, 7)),
                                                         _boxes(rng, (1, 9))))),
    ("iou", lambda rng: (box_ops.iou, (_boxes(rng, (2, 7)), _boxes(rng, (1, 9))))),
    ("clip_to_window", lambda rng: (box_ops.clip_to_window,
                                    (_boxes(rng, (2, 7)) * 1.5 - 0.25,
                                     tf.constant([[0.0, 0.0, 1.0, 1.0], [0.1, 0.2, 0.8, 0.9]])))),
    ("scale", lambda rng: (lambda b: box_ops.scale(b, 2.0, 0.5), (_boxes(rng, (2, 7)),))),
    ("to_normalized", lambda rng: (lambda b: box_ops.to_normalized(b, 320, 480),
                                   (_boxes(rng, (2, 7)) * 300.0,))),
    ("to_absolute", lambda rng: (lambda b: box_ops.to_absolute(b, 320, 480),
                                 (_boxes(rng, (2, 7)),))),
    ("yxyx_to_xywh", lambda rng: (box_ops.yxyx_to_xywh, (_boxes(rng, (2, 7)),))),
    ("xywh_to_yxyx", lambda rng: (box_ops.xywh_to_yxyx, (_boxes(rng, (2, 7)),))),
    ("box_coder_encode", lambda rng: (_CODER.encode, (_boxes(rng, (2, 9)),
                                                      _boxes(rng, (9,))))),
    ("box_coder_decode", lambda rng: (
        _CODER.decode, (tf.constant(rng.normal(0.0, 2.0, size=(2, 9, 4)), tf.float32),
                        _boxes(rng, (9,))))),
    ("matcher_ignore_band", _matcher_case(matched_threshold=0.5, unmatched_threshold=0.4)),
    ("matcher_negatives_between", _matcher_case(matched_threshold=0.5, unmatched_threshold=0.4,
                                                negatives_lower_than_unmatched=False)),
    ("matcher_no_thresholds", _matcher_case(matched_threshold=None)),
    ("matcher_force_match", _matcher_case(matched_threshold=0.7, unmatched_threshold=0.7,
                                          force_match_for_each_row=True)),
    ("matcher_force_match_same_best_column", lambda rng: (
        ArgMaxMatcher(0.5, 0.5, force_match_for_each_row=True).match,
        (tf.constant([[[0.3, 0.2], [0.4, 0.1]]]), tf.constant([[True, True]])))),  # tie -> row 0
    ("target_assigner", _target_assigner_case),
    ("sigmoid_focal_loss", lambda rng: (losses.sigmoid_focal_loss, _loss_inputs(rng))),
    ("sigmoid_focal_loss_per_class_weights", lambda rng: (
        losses.sigmoid_focal_loss, _loss_inputs(rng, weights_shape=(2, 10, 3)))),
    ("sigmoid_cross_entropy", lambda rng: (losses.sigmoid_cross_entropy, _loss_inputs(rng))),
    ("smooth_l1_loss", lambda rng: (losses.smooth_l1_loss, _localization_inputs(rng))),
    ("l2_loss", lambda rng: (losses.l2_loss, _localization_inputs(rng))),
    ("score_converter_sigmoid", lambda rng: (
        lambda x: post_processing.score_converter(x, "SIGMOID"), _loss_inputs(rng)[:1])),
    ("score_converter_softmax", lambda rng: (
        lambda x: post_processing.score_converter(x, "SOFTMAX", logit_scale=2.0),
        _loss_inputs(rng)[:1])),
    ("score_converter_identity", lambda rng: (
        lambda x: post_processing.score_converter(x, "IDENTITY"), _loss_inputs(rng)[:1])),
    ("constant_learning_rate", _schedule_case(learning_schedules.ConstantLearningRate(0.01))),
    ("exponential_decay", _schedule_case(learning_schedules.ExponentialDecayLearningRate(
        0.1, 10, 0.5, burnin_learning_rate=0.01, burnin_steps=5, min_learning_rate=0.001))),
    ("manual_step_warmup", _schedule_case(learning_schedules.ManualStepLearningRate(
        [10, 50], [0.01, 0.1, 0.001], warmup=True))),
    ("cosine_decay_with_warmup", _schedule_case(learning_schedules.CosineDecayWithWarmup(
        0.04, 100, warmup_learning_rate=0.01, warmup_steps=10, hold_base_rate_steps=2))),
)


class XlaParityTest(parameterized.TestCase, tf.test.TestCase):

    @parameterized.named_parameters(*CASES)
    def test_eager_equals_jit_compiled(self, build):
        fn, inputs = build(np.random.RandomState(0))
        eager = fn(*inputs)
        compiled = tf.function(fn, jit_compile=True)(*inputs)
        tf.nest.assert_same_structure(eager, compiled)
        for expected, actual in zip(tf.nest.flatten(eager), tf.nest.flatten(compiled)):
            self.assertEqual(expected.shape, actual.shape)
            self.assertEqual(expected.dtype, actual.dtype)
            self.assertTrue(actual.shape.is_fully_defined())
            self.assertAllClose(expected, actual, atol=1e-5, rtol=1e-5)


if __name__ == "__main__":
    tf.test.main()
