"""SSD FPN feature extractors: level grids, depths, preprocessing, freezing and the R50 size."""
from __future__ import annotations

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from object_detection.core import standard_fields as fields
from object_detection.models import feature_map_generators
from object_detection.models import hyperparams as hp
from object_detection.models.ssd_mobilenet_v1_fpn import SSDMobileNetV1FpnFeatureExtractor
from object_detection.models.ssd_mobilenet_v2_fpn import SSDMobileNetV2FpnFeatureExtractor
from object_detection.models.ssd_resnet_v1_fpn import SSDResNetV1FpnFeatureExtractor
from object_detection.models.weight_loading import load_keras_application_weights
from object_detection.predictors.weight_shared_convolutional_box_predictor import (
    WeightSharedConvolutionalBoxPredictor)

# The SSD320 v1.2 config's conv_hyperparams.
SSD320_HYPERPARAMS = hp.ConvHyperparams(
    activation="RELU_6", l2_weight=0.0004,
    initializer={"kind": "random_normal", "mean": 0.0, "stddev": 0.01},
    batch_norm=hp.BatchNormParams(decay=0.997, epsilon=0.001, scale=True))

TINY = dict(depth_multiplier=0.125, min_depth=8, conv_hyperparams=SSD320_HYPERPARAMS)


def _extractor(kind: str, **kwargs):
    if kind == "resnet50":
        return SSDResNetV1FpnFeatureExtractor(50, **{**TINY, **kwargs})
    if kind == "mobilenet_v1":
        return SSDMobileNetV1FpnFeatureExtractor(**{**TINY, **kwargs})
    return SSDMobileNetV2FpnFeatureExtractor(**{**TINY, **kwargs})


@pytest.mark.parametrize("kind", ["resnet50", "mobilenet_v1", "mobilenet_v2"])
@pytest.mark.parametrize("size", [
    (128, 128),  # every level even down to P7 = 1
    (100, 75),  # odd grids: ceil at every level, FPN crops the upsampled maps
])
def test_levels_have_ceil_grids_and_feature_depth(kind, size):
    extractor = _extractor(kind)
    images = tf.random.stateless_uniform([2, *size, 3], seed=[0, 1], maxval=255.0)
    features = extractor(extractor.preprocess(images), training=False)
    assert list(features) == [3, 4, 5, 6, 7]
    depth = max(int(256 * 0.125), 8)  # OD API depth_fn(additional_layer_depth) = 32
    assert extractor.feature_depth == depth
    for level, feature in features.items():
        expected = (2, math.ceil(size[0] / 2**level), math.ceil(size[1] / 2**level), depth)
        assert tuple(feature.shape) == expected, (kind, level)
        assert feature.dtype == tf.float32
        assert np.all(np.isfinite(feature.numpy()))


def test_resnet50_fpn_ssd320_size_and_keras_weights(capsys):
    """Full SSD320 v1.2 model (depth multiplier 1) at 320 px with the 90-class predictor."""
    extractor = SSDResNetV1FpnFeatureExtractor(
        50, depth_multiplier=1.0, min_depth=16, conv_hyperparams=SSD320_HYPERPARAMS,
        override_base_feature_extractor_hyperparams=True)
    predictor = WeightSharedConvolutionalBoxPredictor(
        num_classes=90, num_anchors_per_location=6, depth=256, num_layers_before_predictor=4,
        kernel_size=3, class_prediction_bias_init=-4.6, conv_hyperparams=SSD320_HYPERPARAMS,
        levels=range(3, 8))
    features = extractor(extractor.preprocess(tf.zeros([1, 320, 320, 3])))
    assert {level: tuple(f.shape) for level, f in features.items()} == {
        3: (1, 40, 40, 256), 4: (1, 20, 20, 256), 5: (1, 10, 10, 256), 6: (1, 5, 5, 256),
        7: (1, 3, 3, 256)}
    predictions = predictor(features)
    # A = 6 * (40^2 + 20^2 + 10^2 + 5^2 + 3^2) = 6 * 2134 = 12,804 anchors.
    assert predictions[fields.PredictionFields.box_encodings].shape == (1, 12804, 4)
    assert predictions[fields.PredictionFields.class_predictions_with_background].shape == (
        1, 12804, 90)

    backbone = extractor.backbone.count_params()
    total = extractor.count_params() + predictor.count_params()
    trainable = sum(int(np.prod(v.shape)) for v in
                    extractor.trainable_weights + predictor.trainable_weights)
    with capsys.disabled():
        print(f"\nR50-FPN SSD320, 90 classes x 6 anchors: backbone {backbone:,}, "
              f"FPN {extractor.count_params() - backbone:,}, "
              f"predictor {predictor.count_params():,}, total {total:,} "
              f"(trainable {trainable:,})")
    # keras.applications.ResNet50(include_top=False) has 23,587,712, of which 26,560 are the
    # conv biases the OD API's ResNet does not have.
    assert backbone == 23_587_712 - 26_560
    # RetinaNet R50-FPN (91 classes, 9 anchors) is ~33.4M; 90 x 6 here has a smaller class conv.
    assert abs(total - 33.4e6) / 33.4e6 < 0.04

    # ImageNet weights of keras.applications.ResNet50 copy into the backbone by name, adapted.
    keras_resnet = keras.applications.ResNet50(weights=None, include_top=False)
    report = load_keras_application_weights(extractor.backbone, keras_resnet,
                                            reverse_input_channels=("conv1_conv",))
    assert not report.missing
    # With override (scale: true) every variable has its Keras counterpart.
    assert not report.mismatched
    assert len(report.loaded) == len([l for l in extractor.backbone.layers if l.weights])


def test_resnet_preprocess_subtracts_the_rgb_means_without_a_channel_flip():
    extractor = _extractor("resnet50")
    rgb = tf.constant([[[[255.0, 0.0, 10.0]]]])
    # OD API ssd_resnet_v1_fpn: RGB minus [123.68, 116.779, 103.939], channels kept in order.
    expected = [[[[255.0 - 123.68, 0.0 - 116.779, 10.0 - 103.939]]]]
    assert np.allclose(extractor.preprocess(rgb), expected)
    # keras.applications' 'caffe' mode is the same numbers in reversed channel order.
    assert np.allclose(keras.applications.resnet.preprocess_input(rgb.numpy())[..., ::-1],
                       expected)


@pytest.mark.parametrize("kind", ["mobilenet_v1", "mobilenet_v2"])
def test_mobilenet_preprocess_maps_to_minus_one_one(kind):
    extractor = _extractor(kind)
    assert np.allclose(extractor.preprocess(tf.constant([0.0, 127.5, 255.0])), [-1.0, 0.0, 1.0])


def test_freeze_batchnorm_freezes_the_statistics_and_trains_gamma_and_beta():
    # OD API semantics: FreezableBatchNorm(training=False) normalizes with the moving
    # statistics, while gamma and beta stay trainable variables.
    extractor = _extractor("mobilenet_v2", freeze_batchnorm=True)
    images = extractor.preprocess(
        tf.random.stateless_uniform([2, 64, 64, 3], seed=[3, 4], maxval=255.0))
    inference = extractor(images, training=False)
    with tf.GradientTape() as tape:
        training = extractor(images, training=True)
        loss = tf.add_n([tf.reduce_sum(f) for f in training.values()])
    for level in inference:
        np.testing.assert_allclose(training[level], inference[level], rtol=1e-5, atol=1e-5)
    norms = [w for w in extractor.weights if "moving_mean" in w.path]
    assert len(norms) > 50  # backbone, FPN smoothing and coarse levels
    trainable = {w.path for w in extractor.trainable_weights}
    affine = [w for w in extractor.weights if w.path.rsplit("/", 1)[-1] in ("gamma", "beta")]
    assert affine and all(w.path in trainable for w in affine)
    statistics = [w for w in extractor.weights
                  if w.path.rsplit("/", 1)[-1] in ("moving_mean", "moving_variance")]
    assert not {w.path for w in statistics} & trainable
    before = [w.numpy() for w in statistics]
    gammas = [w for w in extractor.trainable_weights if w.path.endswith("gamma")]
    grads = tape.gradient(loss, gammas)
    assert all(g is not None for g in grads) and any(float(tf.reduce_max(tf.abs(g))) > 0
                                                     for g in grads)
    for w, value in zip(statistics, before):  # a training call updated no statistic
        np.testing.assert_array_equal(w.numpy(), value)


def test_unfrozen_batchnorm_uses_batch_statistics():
    extractor = _extractor("mobilenet_v1")
    images = extractor.preprocess(
        tf.random.stateless_uniform([2, 64, 64, 3], seed=[3, 4], maxval=255.0))
    inference = extractor(images, training=False)
    training = extractor(images, training=True)
    assert not np.allclose(training[3], inference[3])


def test_override_hyperparams_reach_the_backbone():
    default = _extractor("resnet50", max_level=5)
    overridden = _extractor("resnet50", max_level=5,
                            override_base_feature_extractor_hyperparams=True)
    assert np.isclose(default.backbone.get_layer("conv1_bn").epsilon, 1.001e-5)
    assert np.isclose(overridden.backbone.get_layer("conv1_bn").epsilon, 0.001)
    assert overridden.backbone.get_layer("conv1_bn").momentum == 0.997


def test_levels_below_and_above_the_backbone():
    extractor = _extractor("mobilenet_v2", min_level=2, max_level=4)
    features = extractor(extractor.preprocess(tf.zeros([1, 64, 64, 3])))
    assert {level: tuple(f.shape[1:3]) for level, f in features.items()} == {
        2: (16, 16), 3: (8, 8), 4: (4, 4)}


def test_pad_to_multiple():
    extractor = _extractor("mobilenet_v1", pad_to_multiple=32, max_level=5)
    features = extractor(extractor.preprocess(tf.zeros([1, 100, 64, 3])))
    # 100 -> 128 rows.
    assert [tuple(f.shape[1:3]) for f in features.values()] == [(16, 8), (8, 4), (4, 2)]


def test_use_depthwise_mobilenet_v2_is_fpnlite():
    extractor = _extractor("mobilenet_v2", use_depthwise=True, depth_multiplier=1.0)
    extractor(extractor.preprocess(tf.zeros([1, 64, 64, 3])))
    assert extractor.backbone.get_layer("Conv_1").filters == 256
    separable = [w.path for w in extractor.weights if "smoothing" in w.path
                 and "pointwise_kernel" in w.path]
    assert separable


def test_unsupported_options_raise():
    with pytest.raises(NotImplementedError, match="use_explicit_padding"):
        _extractor("mobilenet_v2", use_explicit_padding=True)
    with pytest.raises(NotImplementedError, match="use_depthwise"):
        _extractor("resnet50", use_depthwise=True)
    with pytest.raises(ValueError, match=r"min_level must be one of \[2, 3, 4, 5\].*6"):
        _extractor("mobilenet_v1", min_level=6, max_level=7)
    with pytest.raises(ValueError, match=r"min_level \(5\) <= max_level \(4\)"):
        _extractor("mobilenet_v1", min_level=5, max_level=4)
    with pytest.raises(ValueError, match="depth 18"):
        SSDResNetV1FpnFeatureExtractor(18, **TINY)
    with pytest.raises(TypeError, match="ConvHyperparams"):
        SSDMobileNetV1FpnFeatureExtractor(conv_hyperparams={"activation": "RELU"})


def test_nearest_neighbor_upsampling_hand_computed():
    x = tf.constant([[1.0, 2.0], [3.0, 4.0]])[tf.newaxis, :, :, tf.newaxis]
    expected = [[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]]
    up = feature_map_generators.nearest_neighbor_upsampling(x, 2)
    assert np.array_equal(up[0, :, :, 0], expected)


def test_fpn_top_down_crops_and_adds():
    # Projections are identity (1x1, one channel, kernel 1, bias 0), no smoothing BN effect.
    params = hp.ConvHyperparams(activation="NONE", initializer={"kind": "truncated_normal"})
    fpn = feature_map_generators.FpnTopDownFeatureMaps(
        levels=[4, 5], depth=1, conv_hyperparams=params)
    c4 = tf.ones([1, 3, 3, 1])
    c5 = tf.constant([[1.0, 2.0], [3.0, 4.0]])[tf.newaxis, :, :, tf.newaxis]
    fpn({4: c4, 5: c5})
    for level in (4, 5):
        fpn._projections[level].set_weights([np.ones([1, 1, 1, 1]), np.zeros([1])])
    smoothing = fpn._smoothing[4][0]
    kernel = np.zeros([3, 3, 1, 1])
    kernel[1, 1] = 1.0  # identity 3x3
    smoothing.set_weights([kernel, np.zeros([1])])  # no batch norm: conv has a bias
    out = fpn({4: c4, 5: c5})
    assert out[5].shape == (1, 2, 2, 1) and out[4].shape == (1, 3, 3, 1)
    # P4 = up2(P5)[:3, :3] + C4.
    assert np.array_equal(out[4][0, :, :, 0], [[2, 2, 3], [2, 2, 3], [4, 4, 5]])


@pytest.mark.parametrize("smoothed_top_down", [True, False])
def test_fpn_top_down_passes_the_smoothed_map_tf2_or_the_sum_tf1(smoothed_top_down):
    # Identity projections, smoothing = 2 x identity, 1x1 maps at levels 3, 4, 5 (values 1, 10,
    # 100). Sums: T5 = 100; T4 = up(X5) + 10; T3 = up(X4) + 1, where X is what goes down:
    # TF2 passes P4 = 2 T4, TF1 passes T4 itself. Outputs P4 = 2 T4, P3 = 2 T3 either way.
    params = hp.ConvHyperparams(activation="NONE", initializer={"kind": "truncated_normal"})
    fpn = feature_map_generators.FpnTopDownFeatureMaps(
        levels=[3, 4, 5], depth=1, conv_hyperparams=params, smoothed_top_down=smoothed_top_down)
    maps = {3: tf.fill([1, 4, 4, 1], 1.0), 4: tf.fill([1, 2, 2, 1], 10.0),
            5: tf.fill([1, 1, 1, 1], 100.0)}
    fpn(maps)
    for level in (3, 4, 5):
        fpn._projections[level].set_weights([np.ones([1, 1, 1, 1]), np.zeros([1])])
    for level in (3, 4):
        kernel = np.zeros([3, 3, 1, 1])
        kernel[1, 1] = 2.0
        fpn._smoothing[level][0].set_weights([kernel, np.zeros([1])])
    out = fpn(maps)
    p4 = 2 * (100 + 10)
    p3 = 2 * ((p4 if smoothed_top_down else 110) + 1)
    assert float(out[5][0, 0, 0, 0]) == 100
    assert np.all(out[4].numpy() == p4) and np.all(out[3].numpy() == p3)  # 442 (TF2), 222 (TF1)


def test_extractor_and_predictor_compile_with_xla():
    # Odd sides exercise the FPN crop; the train step must compile with XLA (DESIGN.md).
    extractor = _extractor("resnet50")
    predictor = WeightSharedConvolutionalBoxPredictor(
        num_classes=3, num_anchors_per_location=2, depth=8, num_layers_before_predictor=1,
        class_prediction_bias_init=-4.6, conv_hyperparams=SSD320_HYPERPARAMS,
        levels=extractor.levels)
    images = tf.random.stateless_uniform([2, 100, 75, 3], seed=[5, 6], maxval=255.0)

    def forward(x):
        return predictor(extractor(extractor.preprocess(x), training=False), training=False)

    eager = forward(images)
    compiled = tf.function(forward, jit_compile=True)(images)
    for key in eager:
        assert compiled[key].shape == eager[key].shape
        np.testing.assert_allclose(compiled[key], eager[key], rtol=1e-4, atol=1e-4)


def test_mixed_bfloat16_extractor_computes_in_bfloat16():
    policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        extractor = _extractor("mobilenet_v2")
        features = extractor(extractor.preprocess(tf.zeros([1, 64, 64, 3])), training=True)
        assert all(f.dtype == tf.bfloat16 for f in features.values())
        assert all(w.dtype == "float32" for w in extractor.weights)
    finally:
        keras.mixed_precision.set_global_policy(policy)


@pytest.mark.parametrize("override", [True, False])
def test_tf1_extractor_batch_norm_scoping(override):
    # TF1 OD API: the conv_hyperparams scope sets slim's batch norm mode inside the scope that
    # freeze_batchnorm sets, so freeze_batchnorm reaches only a backbone built without the
    # override; under the override the backbone keeps slim's epsilon 1e-5 and decay 0.997.
    from object_detection.models.ssd_resnet_v1_fpn import SSDResNetV1SlimFpnFeatureExtractor

    extractor = SSDResNetV1SlimFpnFeatureExtractor(
        50, freeze_batchnorm=True, override_base_feature_extractor_hyperparams=override, **TINY)
    backbone = [l for l in extractor.backbone.layers if isinstance(l, hp.FreezableBatchNorm)]
    added = [l for block in extractor._coarse_blocks.values() for l in block
             if isinstance(l, hp.FreezableBatchNorm)]
    added += [l for block in extractor.fpn._smoothing.values() for l in block
              if isinstance(l, hp.FreezableBatchNorm)]
    assert len(backbone) == 53 and len(added) == 4
    assert all(l.frozen != override for l in backbone)
    assert not any(l.frozen for l in added)
    assert {l.epsilon for l in backbone} == {1e-5} and {l.momentum for l in backbone} == {0.997}
    assert {l.epsilon for l in added} == {SSD320_HYPERPARAMS.batch_norm.epsilon}
    # The TF2 extractor: freeze_batchnorm freezes everything.
    tf2 = SSDResNetV1FpnFeatureExtractor(
        50, freeze_batchnorm=True, override_base_feature_extractor_hyperparams=override, **TINY)
    assert all(l.frozen for l in tf2.backbone.layers if isinstance(l, hp.FreezableBatchNorm))


def test_tf1_mobilenet_v1_applies_the_multiplier_once_and_has_slim_names():
    from object_detection.models import mobilenet_v1

    keras_layout = mobilenet_v1.mobilenet_v1(depth_multiplier=0.5, min_depth=8)
    slim_layout = mobilenet_v1.mobilenet_v1(depth_multiplier=0.5, min_depth=8, keras_widths=False)
    # conv1: 32 channels; TF2 int(int(32 * .5) * .5) = 8, TF-slim int(32 * .5) = 16.
    assert keras_layout.get_layer("conv1").filters == 8
    assert slim_layout.get_layer("conv1").filters == 16
    assert slim_layout.get_layer("conv_pw_13").filters == 512
    assert mobilenet_v1.slim_scope("conv1") == "Conv2d_0"
    assert mobilenet_v1.slim_scope("conv1_bn") == "Conv2d_0/BatchNorm"
    assert mobilenet_v1.slim_scope("conv_dw_5_bn") == "Conv2d_5_depthwise/BatchNorm"
    assert mobilenet_v1.slim_scope("conv_pw_13") == "Conv2d_13_pointwise"
    scopes = {mobilenet_v1.slim_scope(l.name) for l in slim_layout.layers if l.weights}
    assert len(scopes) == 2 * 27  # conv1 + 13 x (depthwise, pointwise), each with a batch norm
