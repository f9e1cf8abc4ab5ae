"""WeightSharedConvolutionalBoxPredictor: shapes, order, sharing, bias prior, freezing, dtype."""
from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from object_detection.core import standard_fields as fields
from object_detection.models import hyperparams as hp
from object_detection.predictors.weight_shared_convolutional_box_predictor import (
    WeightSharedConvolutionalBoxPredictor)

BOXES = fields.PredictionFields.box_encodings
CLASSES = fields.PredictionFields.class_predictions_with_background

HYPERPARAMS = hp.ConvHyperparams(
    activation="RELU_6", l2_weight=0.0004,
    initializer={"kind": "random_normal", "mean": 0.0, "stddev": 0.01},
    batch_norm=hp.BatchNormParams(decay=0.997, epsilon=0.001, scale=True))


def _predictor(levels=(3, 4, 5), **kwargs) -> WeightSharedConvolutionalBoxPredictor:
    args = dict(num_classes=5, num_anchors_per_location=3, depth=8,
                num_layers_before_predictor=2, kernel_size=3, class_prediction_bias_init=-4.6,
                conv_hyperparams=HYPERPARAMS, freeze_batchnorm=False, levels=levels)
    args.update(kwargs)
    return WeightSharedConvolutionalBoxPredictor(**args)


def _features(levels=(3, 4, 5), size=64, channels=8, seed=0) -> dict[int, tf.Tensor]:
    return {level: tf.random.stateless_normal(
                [2, -(-size // 2**level), -(-size // 2**level), channels], seed=[seed, level])
            for level in levels}


def test_output_shapes_and_dtypes():
    features = _features(levels=(3, 4, 5, 6, 7), size=96)  # 12, 6, 3, 2, 1 rows
    outputs = _predictor(levels=range(3, 8))(features, training=True)
    anchors = 3 * (144 + 36 + 9 + 4 + 1)
    assert outputs[BOXES].shape == (2, anchors, 4)
    assert outputs[CLASSES].shape == (2, anchors, 5)
    assert outputs[BOXES].dtype == tf.float32 and outputs[CLASSES].dtype == tf.float32


def test_outputs_are_level_then_row_then_column_then_anchor():
    # No tower, 1x1 box predictor = identity on 4 channels: box_encodings are the features.
    predictor = _predictor(levels=(3, 4), num_anchors_per_location=1,
                           num_layers_before_predictor=0, kernel_size=1)
    features = {3: tf.reshape(tf.range(2 * 2 * 4, dtype=tf.float32), [1, 2, 2, 4]),
                4: tf.reshape(tf.range(100, 104, dtype=tf.float32), [1, 1, 1, 4])}
    predictor(features)
    predictor._box_predictor.set_weights([np.eye(4).reshape(1, 1, 4, 4), np.zeros(4)])
    boxes = predictor(features)[BOXES]
    expected = [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11], [12, 13, 14, 15],
                [100, 101, 102, 103]]
    assert np.array_equal(boxes[0], expected)


def test_anchor_within_location_is_the_fastest_index():
    # Two anchors per location, box code size 1: the output of one cell is [a0, a1].
    predictor = _predictor(levels=(3,), num_anchors_per_location=2, box_code_size=1,
                           num_layers_before_predictor=0, kernel_size=1)
    features = {3: tf.constant([[[[1.0, 2.0]]], [[[3.0, 4.0]]]])}  # B=2, 1x1, C=2
    predictor(features)
    predictor._box_predictor.set_weights([np.eye(2).reshape(1, 1, 2, 2), np.zeros(2)])
    assert np.array_equal(predictor(features)[BOXES][..., 0], [[1, 2], [3, 4]])


def test_initial_class_probability_is_the_prior():
    # bias -4.6 = -log((1 - 0.01) / 0.01): sigmoid ~ 0.01 while the weights are small.
    outputs = _predictor(levels=(3, 4, 5, 6, 7))(_features(levels=range(3, 8), size=128))
    mean = float(tf.reduce_mean(tf.sigmoid(outputs[CLASSES])))
    assert abs(mean - 0.01) < 0.001, mean


def test_shared_conv_kernels_do_not_depend_on_the_number_of_levels():
    def build(levels):
        predictor = _predictor(levels=levels)
        predictor(_features(levels=levels, size=128))
        kernels = [w for w in predictor.trainable_weights if w.path.endswith("kernel")]
        norms = [w for w in predictor.weights if w.path.endswith("moving_mean")]
        return kernels, norms

    kernels3, norms3 = build((3, 4, 5))
    kernels5, norms5 = build((3, 4, 5, 6, 7))
    # 2 towers x 2 convs + box and class predictors, whatever the number of levels.
    assert len(kernels3) == len(kernels5) == 6
    assert [tuple(k.shape) for k in kernels3] == [tuple(k.shape) for k in kernels5]
    # Batch norm is per level: 2 towers x 2 convs x levels.
    assert (len(norms3), len(norms5)) == (12, 20)


def test_share_prediction_tower_has_one_tower():
    predictor = _predictor(share_prediction_tower=True)
    predictor(_features())
    kernels = [w.path for w in predictor.weights if w.path.endswith("kernel")]
    assert len(kernels) == 4  # 2 tower convs + box and class predictors
    assert not [p for p in kernels if "class_tower" in p]


def test_freeze_batchnorm():
    predictor = _predictor(freeze_batchnorm=True)
    features = _features()
    training = predictor(features, training=True)
    inference = predictor(features, training=False)
    for key in (BOXES, CLASSES):
        np.testing.assert_allclose(training[key], inference[key], rtol=1e-6, atol=1e-6)
    trainable = {w.path for w in predictor.trainable_weights}
    statistics = [w.path for w in predictor.weights if "_bn_l" in w.path and "moving" in w.path]
    affine = [w.path for w in predictor.weights
              if "_bn_l" in w.path and w.path.endswith(("gamma", "beta"))]
    # OD API: frozen statistics, trainable gamma and beta.
    assert statistics and not trainable & set(statistics)
    assert affine and set(affine) <= trainable
    assert len(trainable) == 6 + 2 + len(affine)  # kernels, the two predictor biases, BN


def test_batch_norm_follows_the_hyperparams():
    no_bn = _predictor(conv_hyperparams=hp.ConvHyperparams(activation="RELU_6"))
    no_bn(_features())
    assert not [w for w in no_bn.weights if "_bn_l" in w.path]
    # Without batch norm the tower convs get a bias.
    assert any(w.path.endswith("box_tower_conv_0/bias") for w in no_bn.weights)
    with_bn = _predictor()
    with_bn(_features())
    assert not any(w.path.endswith("box_tower_conv_0/bias") for w in with_bn.weights)


def test_dropout_only_in_training():
    predictor = _predictor(use_dropout=True, dropout_keep_prob=0.5)
    features = _features()
    first = predictor(features, training=False)[CLASSES]
    second = predictor(features, training=False)[CLASSES]
    np.testing.assert_array_equal(first, second)


def test_regularization_losses():
    predictor = _predictor()
    predictor(_features())
    # One L2 term per shared kernel (not per level): 4 tower convs + 2 predictors.
    assert len(predictor.losses) == 6


def test_mixed_bfloat16_outputs_float32():
    policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        predictor = _predictor()
        features = {k: tf.cast(v, tf.bfloat16) for k, v in _features().items()}
        outputs = predictor(features, training=True)
        assert predictor.compute_dtype == "bfloat16"
        assert outputs[BOXES].dtype == tf.float32
        assert outputs[CLASSES].dtype == tf.float32
        assert all(w.dtype == "float32" for w in predictor.weights)
    finally:
        keras.mixed_precision.set_global_policy(policy)


def test_invalid_inputs_raise():
    predictor = _predictor()
    features = _features()
    features[5] = tf.zeros([2, 2, 2, 16])
    with pytest.raises(ValueError, match="same, known channel count"):
        predictor(features)
    with pytest.raises(ValueError, match=r"levels \[5\] are missing"):
        predictor(_features(levels=(3, 4)))
    with pytest.raises(ValueError, match="num_classes"):
        _predictor(num_classes=0)
    with pytest.raises(TypeError, match="ConvHyperparams"):
        _predictor(conv_hyperparams=None)


@pytest.mark.parametrize("to_heads, pointwise, regularized", [
    (False, False, 2),  # OD API defaults: only the towers' depthwise kernels
    (False, True, 4),  # + the towers' pointwise kernels
    (True, False, 6),  # + both kernels of the box and class predictor convs
    (True, True, 8),  # every separable kernel
])
def test_depthwise_conv_hyperparams_reach_heads_and_pointwise_as_asked(to_heads, pointwise,
                                                                       regularized):
    predictor = _predictor(levels=(3,), num_layers_before_predictor=1, use_depthwise=True,
                           apply_conv_hyperparams_to_heads=to_heads,
                           apply_conv_hyperparams_pointwise=pointwise)
    predictor(_features(levels=(3,)))
    assert len(predictor.losses) == regularized  # one L2 term per regularized kernel
