"""Backbones match keras.applications layer for layer: names, shapes and outputs.

Each test builds the keras.applications model with `weights=None` (random init, no download),
randomizes its batch norm statistics so that they matter, copies its weights into our backbone
by layer name and compares outputs on the same input. The ResNet is the OD API's network, which
keras.applications' differs from (pool1, conv biases, channel order): its test checks the
adaptation made at load time, and the OD API semantics themselves.
"""
from __future__ import annotations

import os

import h5py
import keras
import numpy as np
import tensorflow as tf
from keras.src.legacy.saving import legacy_h5_format

from object_detection.models import hyperparams as hp
from object_detection.models import mobilenet_v1
from object_detection.models import mobilenet_v2
from object_detection.models import resnet_v1
from object_detection.models.weight_loading import load_keras_application_weights

SIZE = 64  # every stride-2 input side is even at 64 px, where Keras' padding equals 'same'


def _randomize_batch_norms(model: keras.Model, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.moving_mean.shape[0]
            layer.moving_mean.assign(rng.normal(0.0, 0.2, n).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.5, 1.5, n).astype("float32"))
            if layer.scale:
                layer.gamma.assign(rng.uniform(0.5, 1.5, n).astype("float32"))
            if layer.center:
                layer.beta.assign(rng.normal(0.0, 0.2, n).astype("float32"))


def _images(value_range=(-1.0, 1.0)) -> np.ndarray:
    return np.random.default_rng(1).uniform(*value_range, (2, SIZE, SIZE, 3)).astype("float32")


class BackboneMatchesKerasApplicationsTest(tf.test.TestCase):

    def _check_same_outputs(self, ours, theirs, layer_names, images):
        _randomize_batch_norms(theirs)
        report = load_keras_application_weights(ours, theirs, strict=True)
        self.assertEmpty(report.missing)
        self.assertEmpty(report.mismatched)
        self.assertEmpty(report.unused)  # include_top=False: every Keras weight was taken
        self.assertLen(report.loaded, len([l for l in ours.layers if l.weights]))
        probe_ours = keras.Model(ours.input, [ours.get_layer(n).output for n in layer_names])
        probe_theirs = keras.Model(
            theirs.input, [theirs.get_layer(n).output for n in layer_names])
        for name, a, b in zip(layer_names, probe_ours(images), probe_theirs(images)):
            self.assertEqual(a.shape, b.shape, name)
            scale = float(np.max(np.abs(b))) or 1.0
            self.assertGreater(scale, 1e-3, f"{name} output is degenerate")
            self.assertAllClose(a / scale, b / scale, atol=1e-4, msg=name)

    def test_resnet50_keras_h5_is_adapted_to_the_od_api_network(self):
        # A legacy-format ImageNet file as keras.applications writes it (layer names, conv
        # biases, BGR input, epsilon 1.001e-5), read back by keras.applications.ResNet50.
        theirs = keras.applications.ResNet50(weights=None, include_top=False)
        _randomize_batch_norms(theirs)
        rng = np.random.default_rng(3)
        for layer in theirs.layers:
            if isinstance(layer, keras.layers.Conv2D):
                layer.bias.assign(rng.normal(0.0, 0.3, layer.bias.shape).astype("float32"))
        path = os.path.join(self.get_temp_dir(), "resnet50_notop.h5")
        with h5py.File(path, "w") as f:
            legacy_h5_format.save_weights_to_hdf5_group(f, theirs)
        reloaded = keras.applications.ResNet50(weights=path, include_top=False)

        ours = resnet_v1.resnet_v1(50)
        report = load_keras_application_weights(
            ours, reloaded, strict=True, reverse_input_channels=("conv1_conv",))
        self.assertTrue(report.ok)
        self.assertEmpty(report.unused)
        self.assertLen(report.loaded, len([l for l in ours.layers if l.weights]))
        self.assertEqual(report.adapted, (
            "input channels of conv1_conv reversed (BGR-trained weights, RGB input)",
            "53 conv biases folded into the moving mean of the batch norm after them",
            "batch norm epsilon 1.001e-05 -> 1e-05 folded into the moving variance of 53 "
            "batch norms"))
        # No conv bias here: the parameter count is Keras' minus its 53 conv biases.
        biases = sum(int(np.prod(l.bias.shape)) for l in theirs.layers
                     if isinstance(l, keras.layers.Conv2D))
        self.assertEqual(ours.count_params(), theirs.count_params() - biases)

        rgb = np.random.default_rng(1).uniform(0.0, 255.0, (2, SIZE, SIZE, 3)).astype("float32")
        ours_in = rgb - np.array([123.68, 116.779, 103.939], np.float32)  # OD API preprocess
        theirs_in = keras.applications.resnet.preprocess_input(rgb.copy())  # BGR, caffe means
        # The first block (conv1 + BN + ReLU): same numbers on the same image.
        a = keras.Model(ours.input, ours.get_layer("conv1_relu").output)(ours_in)
        b = keras.Model(reloaded.input, reloaded.get_layer("conv1_relu").output)(theirs_in)
        scale = float(np.max(np.abs(b)))
        self.assertGreater(scale, 1e-3)
        self.assertAllClose(a / scale, b / scale, atol=1e-4)
        # pool1 differs by design (OD API 'same' pooling); from the same pool1 output on, every
        # stage of the adapted weights computes what keras.applications computes.
        pool = keras.Model(ours.input, ours.get_layer("pool1_pool").output)(ours_in)
        names = resnet_v1.output_layer_names(50)
        rest_ours = keras.Model(ours.get_layer("pool1_pool").output,
                                [ours.get_layer(n).output for n in names])
        rest_theirs = keras.Model(reloaded.get_layer("pool1_pool").output,
                                  [reloaded.get_layer(n).output for n in names])
        for name, x, y in zip(names, rest_ours(pool), rest_theirs(pool)):
            scale = float(np.max(np.abs(y)))
            self.assertGreater(scale, 1e-3, name)
            self.assertAllClose(x / scale, y / scale, atol=1e-4, msg=name)

    def test_mobilenet_v1(self):
        ours = mobilenet_v1.mobilenet_v1()
        theirs = keras.applications.MobileNet(
            weights=None, include_top=False, input_shape=(SIZE, SIZE, 3))
        self._check_same_outputs(ours, theirs, mobilenet_v1.OUTPUT_LAYER_NAMES, _images())

    def test_mobilenet_v2(self):
        ours = mobilenet_v2.mobilenet_v2()
        theirs = keras.applications.MobileNetV2(
            weights=None, include_top=False, input_shape=(SIZE, SIZE, 3))
        self._check_same_outputs(ours, theirs, mobilenet_v2.OUTPUT_LAYER_NAMES, _images())

    def test_mobilenet_v2_alpha_below_one_reports_the_od_api_last_conv(self):
        # The OD API scales Conv_1 by alpha < 1 (640 channels at 0.5); Keras keeps 1280.
        ours = mobilenet_v2.mobilenet_v2(depth_multiplier=0.5)
        theirs = keras.applications.MobileNetV2(
            alpha=0.5, weights=None, include_top=False, input_shape=(SIZE, SIZE, 3))
        report = load_keras_application_weights(ours, theirs)
        self.assertEmpty(report.missing)
        self.assertEqual([m.split(":")[0] for m in report.mismatched], ["Conv_1", "Conv_1_bn"])
        self.assertIn("(1, 1, 160, 640) vs (1, 1, 160, 1280)", report.mismatched[0])
        self.assertFalse(report.ok)
        with self.assertRaisesRegex(ValueError, "mismatched.*Conv_1"):
            load_keras_application_weights(ours, theirs, strict=True)

    def test_missing_layers_are_reported(self):
        ours = mobilenet_v1.mobilenet_v1(depth_multiplier=0.25)
        theirs = keras.Sequential([keras.Input((8,)), keras.layers.Dense(2, name="predictions")])
        report = load_keras_application_weights(ours, theirs)
        self.assertIn("conv_pw_13", report.missing)
        self.assertEqual(report.unused, ("predictions",))
        self.assertEmpty(report.loaded)


class BackboneOptionsTest(tf.test.TestCase):

    def test_resnet_depth_multiplier_and_min_depth(self):
        model = resnet_v1.resnet_v1(50, depth_multiplier=0.25, min_depth=32)
        # conv2 bottleneck: max(int(64 * 0.25), 32) = 32; conv5 output: int(2048 * 0.25) = 512.
        self.assertEqual(model.get_layer("conv2_block1_1_conv").filters, 32)
        self.assertEqual(model.get_layer("conv3_block1_1_conv").filters, 32)
        self.assertEqual(model.output.shape[-1], 512)

    def test_resnet_grid_is_ceil_for_odd_sizes(self):
        model = resnet_v1.resnet_v1(50, depth_multiplier=0.0625, min_depth=8)
        probe = keras.Model(model.input,
                            [model.get_layer(n).output for n in resnet_v1.output_layer_names(50)])
        outputs = probe(tf.zeros([1, 100, 75, 3]))
        # ceil(100 / 4, 8, 16, 32) = 25, 13, 7, 4; ceil(75 / ...) = 19, 10, 5, 3.
        self.assertEqual([tuple(o.shape[1:3]) for o in outputs],
                         [(25, 19), (13, 10), (7, 5), (4, 3)])

    def test_resnet_pool1_is_the_od_api_same_padded_max_pool(self):
        # 4x4 input 0..15 row-major; 3x3/2 'same' pads 0 before, 1 after: windows start at
        # rows/cols 0 and 2 -> [[10, 11], [14, 15]]. keras.applications' zero pad 1 + 'valid'
        # windows start at -1 and 1 -> [[5, 7], [13, 15]].
        model = resnet_v1.resnet_v1(50, depth_multiplier=0.0625, min_depth=8)
        pool = model.get_layer("pool1_pool")
        self.assertEqual(pool.padding, "same")
        self.assertNotIn("pool1_pad", [layer.name for layer in model.layers])
        x = tf.reshape(tf.range(16, dtype=tf.float32), [1, 4, 4, 1])
        self.assertAllEqual(pool(x)[0, :, :, 0], [[10.0, 11.0], [14.0, 15.0]])

    def test_resnet_convs_have_no_bias(self):
        model = resnet_v1.resnet_v1(50, depth_multiplier=0.0625, min_depth=8)
        convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
        self.assertLen(convs, 53)
        self.assertEqual([c.name for c in convs if c.use_bias], [])
        self.assertEqual([v.path for v in model.weights if v.path.endswith("/bias")], [])
        bns = [layer for layer in model.layers
               if isinstance(layer, keras.layers.BatchNormalization)]
        self.assertEqual({bn.epsilon for bn in bns}, {1e-5})  # OD API, not Keras' 1.001e-5

    def test_mobilenet_v2_residual_rule_uses_the_width_before_min_depth(self):
        # OD API (alpha 0.5, min_depth 16): the first block is 16 -> 16 channels only because
        # min_depth raised its 8; Keras decided on 8, so there is no residual add.
        model = mobilenet_v2.mobilenet_v2(depth_multiplier=0.5, min_depth=16)
        names = [layer.name for layer in model.layers]
        self.assertEqual(model.get_layer("expanded_conv_project").filters, 16)
        self.assertNotIn("expanded_conv_add", names)
        self.assertIn("block_2_add", names)

    def test_resnet_101_and_152_output_layers(self):
        self.assertEqual(resnet_v1.output_layer_names(101),
                         ["conv2_block3_out", "conv3_block4_out", "conv4_block23_out",
                          "conv5_block3_out"])
        self.assertEqual(resnet_v1.output_layer_names(152),
                         ["conv2_block3_out", "conv3_block8_out", "conv4_block36_out",
                          "conv5_block3_out"])
        model = resnet_v1.resnet_v1(101, depth_multiplier=0.0625, min_depth=8)
        self.assertEqual(model.layers[-1].name, "conv5_block3_out")
        self.assertEqual(model.get_layer("conv4_block23_out").output.shape[-1], 64)
        with self.assertRaisesRegex(ValueError, r"depth 34.*\[50, 101, 152\]"):
            resnet_v1.resnet_v1(34)

    def test_override_hyperparams_reach_every_layer(self):
        params = hp.ConvHyperparams(
            activation="RELU_6", l2_weight=0.0004,
            batch_norm=hp.BatchNormParams(decay=0.997, epsilon=0.001, scale=True))
        model = resnet_v1.resnet_v1(50, depth_multiplier=0.0625, min_depth=8,
                                    conv_hyperparams=params, freeze_batchnorm=True)
        bn = model.get_layer("conv3_block2_2_bn")
        self.assertEqual((bn.epsilon, bn.momentum, bn.frozen), (0.001, 0.997, True))
        self.assertEqual(model.get_layer("conv3_block2_out").max_value, 6.0)
        self.assertLen(model.losses, len([l for l in model.layers
                                          if isinstance(l, keras.layers.Conv2D)]))
        default = resnet_v1.resnet_v1(50, depth_multiplier=0.0625, min_depth=8)
        self.assertAllClose(default.get_layer("conv3_block2_2_bn").epsilon, 1.001e-5)
        with self.assertRaisesRegex(ValueError, "batch_norm is None"):
            resnet_v1.resnet_v1(50, conv_hyperparams=hp.ConvHyperparams())

    def test_mobilenet_widths(self):
        v1 = mobilenet_v1.mobilenet_v1(depth_multiplier=0.25, min_depth=16)
        # OD API: alpha applied by keras.applications, then again by its layer override.
        self.assertEqual(v1.get_layer("conv1").filters, 16)  # max(int(8 * 0.25), 16)
        self.assertEqual(v1.get_layer("conv_pw_13").filters, 64)  # int(int(1024 * 0.25) * 0.25)
        self.assertEqual(v1.get_layer("conv_pw_1").filters, 16)  # max(int(16 * 0.25), 16)
        half = mobilenet_v1.mobilenet_v1(depth_multiplier=0.5, min_depth=16)
        self.assertEqual(half.get_layer("conv_pw_2").filters, 32)  # int(int(128 * 0.5) * 0.5)
        v1_fpn = mobilenet_v1.mobilenet_v1(
            filter_overrides=mobilenet_v1.DEPTHWISE_FPN_FILTER_OVERRIDES)
        self.assertEqual(v1_fpn.get_layer("conv_pw_12").filters, 512)
        self.assertEqual(v1_fpn.get_layer("conv_pw_13").filters, 256)
        v2 = mobilenet_v2.mobilenet_v2(depth_multiplier=0.35, min_depth=16)
        self.assertEqual(v2.get_layer("Conv1").filters, 16)  # make_divisible(11.2) = 16
        self.assertEqual(v2.get_layer("block_1_project").filters, 16)  # max(8, 16)
        self.assertEqual(v2.get_layer("block_1_expand").filters, 6 * 16)  # expansion: no min
        self.assertEqual(v2.get_layer("Conv_1").filters, 448)  # make_divisible(1280 * 0.35)
        self.assertEqual(mobilenet_v2.make_divisible(1280 * 0.35), 448)
