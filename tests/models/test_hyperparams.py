"""Checks of object_detection.models.hyperparams against hand-computed values."""
from __future__ import annotations

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from object_detection.models import hyperparams as hp


class ConvHyperparamsTest(tf.test.TestCase):

    def test_defaults_follow_the_od_api_protos(self):
        bn = hp.BatchNormParams()
        self.assertEqual((bn.decay, bn.epsilon, bn.center, bn.scale, bn.train),
                         (0.999, 0.001, True, False, True))
        params = hp.ConvHyperparams()
        self.assertEqual(params.activation, "RELU")
        self.assertEqual(dict(params.initializer),
                         {"kind": "truncated_normal", "mean": 0.0, "stddev": 1.0})
        self.assertIsNone(params.batch_norm)

    def test_use_bias_follows_batch_norm(self):
        no_bn = hp.ConvHyperparams()
        with_bn = hp.ConvHyperparams(batch_norm=hp.BatchNormParams())
        uncentered = hp.ConvHyperparams(batch_norm=hp.BatchNormParams(center=False))
        forced = hp.ConvHyperparams(batch_norm=hp.BatchNormParams(), force_use_bias=True)
        self.assertTrue(no_bn.conv_kwargs()["use_bias"])
        self.assertFalse(with_bn.conv_kwargs()["use_bias"])  # BN beta replaces the bias
        self.assertTrue(uncentered.conv_kwargs()["use_bias"])  # no beta: keep the bias
        self.assertTrue(forced.conv_kwargs()["use_bias"])
        self.assertTrue(with_bn.conv_kwargs(use_bias=True)["use_bias"])

    def test_l2_weight_is_the_slim_weight(self):
        # Kernel of nine ones: slim l2_regularizer(w) adds w * sum(x^2) / 2 = 0.0004 * 9 / 2.
        params = hp.ConvHyperparams(l2_weight=0.0004)
        regularizer = params.conv_kwargs()["kernel_regularizer"]
        self.assertAllClose(regularizer(tf.ones([3, 3, 1, 1])), 0.0018)

    def test_l1_weight_and_no_regularizer(self):
        self.assertAllClose(hp.ConvHyperparams(l1_weight=0.5).make_regularizer()(
            tf.constant([[-1.0, 2.0]])), 1.5)  # 0.5 * (1 + 2)
        self.assertIsNone(hp.ConvHyperparams().conv_kwargs()["kernel_regularizer"])

    def test_regularizer_loss_reaches_the_layer(self):
        layer = keras.layers.Conv2D(
            1, 3, kernel_initializer="ones",
            **{k: v for k, v in hp.ConvHyperparams(l2_weight=0.0004).conv_kwargs().items()
               if k != "kernel_initializer"})
        layer(tf.zeros([1, 4, 4, 1]))
        self.assertAllClose(tf.add_n(layer.losses), 0.0018)

    def test_initializers(self):
        vs = hp.make_initializer(
            {"kind": "variance_scaling", "factor": 1.0, "mode": "FAN_AVG", "uniform": True})
        self.assertIsInstance(vs, keras.initializers.VarianceScaling)
        self.assertEqual((vs.scale, vs.mode, vs.distribution), (1.0, "fan_avg", "uniform"))
        vs = hp.make_initializer({"kind": "variance_scaling"})  # proto defaults
        self.assertEqual((vs.scale, vs.mode, vs.distribution), (2.0, "fan_in", "truncated_normal"))
        rn = hp.make_initializer({"kind": "random_normal", "mean": 1.0, "stddev": 0.01})
        self.assertIsInstance(rn, keras.initializers.RandomNormal)
        values = rn(shape=[10000])
        self.assertAllClose(np.mean(values), 1.0, atol=1e-3)
        tn = hp.ConvHyperparams().conv_kwargs()["kernel_initializer"]
        self.assertIsInstance(tn, keras.initializers.TruncatedNormal)

    def test_invalid_values_raise(self):
        with self.assertRaisesRegex(ValueError, r"activation.*'TANH'"):
            hp.ConvHyperparams(activation="TANH")
        with self.assertRaisesRegex(ValueError, r"initializer\.kind.*'orthogonal'"):
            hp.ConvHyperparams(initializer={"kind": "orthogonal"})
        with self.assertRaisesRegex(ValueError, r"mode.*'FAN_MAX'"):
            hp.make_initializer({"kind": "variance_scaling", "mode": "FAN_MAX"})
        with self.assertRaisesRegex(ValueError, "regularizer weights"):
            hp.ConvHyperparams(l2_weight=-1.0)
        with self.assertRaisesRegex(ValueError, "decay"):
            hp.BatchNormParams(decay=1.5)

    def test_frozen_and_hashable(self):
        params = hp.ConvHyperparams(initializer={"kind": "random_normal", "stddev": 0.01})
        with self.assertRaises(dataclasses.FrozenInstanceError):
            params.activation = "NONE"
        with self.assertRaises(TypeError):
            params.initializer["stddev"] = 1.0
        self.assertEqual(hash(params), hash(dataclasses.replace(params)))

    def test_activations(self):
        x = tf.constant([-1.0, 3.0, 8.0])
        self.assertAllClose(hp.ConvHyperparams(activation="RELU").make_activation("a")(x),
                            [0.0, 3.0, 8.0])
        self.assertAllClose(hp.ConvHyperparams(activation="RELU_6").make_activation("a")(x),
                            [0.0, 3.0, 6.0])
        self.assertAllClose(hp.ConvHyperparams(activation="NONE").make_activation("a")(x), x)
        self.assertAllClose(hp.ConvHyperparams(activation="SWISH").make_activation("a")(x),
                            x * tf.sigmoid(x))


class BatchNormTest(tf.test.TestCase):

    def test_batch_norm_settings(self):
        params = hp.ConvHyperparams(batch_norm=hp.BatchNormParams(
            decay=0.997, epsilon=0.01, center=True, scale=True))
        bn = params.make_batch_norm("bn")
        self.assertIsInstance(bn, hp.FreezableBatchNorm)
        self.assertEqual((bn.momentum, bn.epsilon, bn.center, bn.scale, bn.name),
                         (0.997, 0.01, True, True, "bn"))
        self.assertFalse(bn.frozen)

    def test_no_batch_norm_is_identity(self):
        layer = hp.ConvHyperparams().make_batch_norm("bn")
        x = tf.constant([[1.0, 2.0]])
        self.assertAllClose(layer(x, training=True), x)

    def test_frozen_batch_norm_ignores_training_and_keeps_gamma_beta_trainable(self):
        bn = hp.ConvHyperparams(batch_norm=hp.BatchNormParams(scale=True)).make_batch_norm(
            "bn", freeze=True)
        x = tf.random.stateless_normal([8, 3], seed=[1, 2]) * 5.0 + 2.0
        inference = bn(x, training=False)
        bn.moving_mean.assign([1.0, 2.0, 3.0])
        bn.moving_variance.assign([4.0, 1.0, 0.25])
        bn.gamma.assign([2.0, 1.0, 0.5])
        bn.beta.assign([0.0, 1.0, -1.0])
        with tf.GradientTape() as tape:
            training = bn(x, training=True)
            loss = tf.reduce_sum(training)
        # Moving statistics, not batch statistics: gamma * (x - m) / sqrt(v + 1e-3) + beta.
        expected = (np.array([2.0, 1.0, 0.5]) * (x.numpy() - [1.0, 2.0, 3.0])
                    / np.sqrt(np.array([4.0, 1.0, 0.25]) + 1e-3) + [0.0, 1.0, -1.0])
        self.assertAllClose(training, expected, atol=1e-5)
        self.assertAllClose(bn(x, training=False), expected, atol=1e-5)
        self.assertAllClose(bn.moving_mean, [1.0, 2.0, 3.0])  # not updated
        # OD API: only the statistics are frozen; gamma and beta train.
        self.assertEqual(sorted(w.path.split("/")[-1] for w in bn.trainable_weights),
                         ["beta", "gamma"])
        d_gamma, d_beta = tape.gradient(loss, [bn.gamma, bn.beta])
        self.assertAllClose(d_beta, [8.0, 8.0, 8.0])
        self.assertAllClose(d_gamma, np.sum((x.numpy() - [1.0, 2.0, 3.0])
                                            / np.sqrt(np.array([4.0, 1.0, 0.25]) + 1e-3), 0),
                            atol=1e-4)
        del inference

    def test_train_false_freezes(self):
        bn = hp.ConvHyperparams(batch_norm=hp.BatchNormParams(train=False)).make_batch_norm("bn")
        self.assertTrue(bn.frozen)

    def test_training_updates_the_moving_variance_with_the_bessel_corrected_variance(self):
        # tf-keras (the OD API's Keras) semantics: 9 values per channel, decay 0.5:
        # moving_mean = 0.5 * 0 + 0.5 * mean, moving_variance = 0.5 * 1 + 0.5 * var * 9 / 8.
        bn = hp.ConvHyperparams(batch_norm=hp.BatchNormParams(decay=0.5)).make_batch_norm("bn")
        x = np.arange(18, dtype=np.float32).reshape(1, 3, 3, 2) ** 1.5
        out = bn(tf.constant(x), training=True)
        flat = x.reshape(-1, 2)
        mean, var = flat.mean(0), flat.var(0)
        self.assertAllClose(out, (x - mean) / np.sqrt(var + 1e-3), atol=1e-4)  # biased var
        self.assertAllClose(bn.moving_mean, 0.5 * mean, rtol=1e-6)
        self.assertAllClose(bn.moving_variance, 0.5 + 0.5 * var * 9.0 / 8.0, rtol=1e-5)

    def test_unfrozen_batch_norm_uses_batch_statistics(self):
        bn = hp.ConvHyperparams(batch_norm=hp.BatchNormParams()).make_batch_norm("bn")
        x = tf.constant([[1.0], [3.0]])
        # Batch mean 2, variance 1: (x - 2) / sqrt(1 + 0.001).
        self.assertAllClose(bn(x, training=True), [[-0.9995], [0.9995]], atol=1e-4)
        self.assertNotEmpty(bn.trainable_weights)


class FoldBatchNormTest(tf.test.TestCase):
    """A frozen batch norm folded into its conv computes what the two layers compute."""

    def _pair(self, fold: bool, use_bias: bool, freeze: bool = True, seed: int = 0):
        params = hp.ConvHyperparams(batch_norm=hp.BatchNormParams(scale=True, epsilon=1e-3))
        conv = hp.FoldingConv2D(6, 3, strides=2, padding="same", name="conv",
                                **params.conv_kwargs(use_bias=use_bias))
        norm = params.make_batch_norm("bn", freeze=freeze)
        if fold:
            hp.fold_batch_norm(conv, norm)
        conv.build((None, None, None, 4))
        norm.build((None, None, None, 6))
        rng = np.random.default_rng(seed)
        for layer in (conv, norm):
            for w in layer.weights:
                w.assign(rng.uniform(0.5, 2.0, w.shape).astype(np.float32) if "variance" in w.path
                         else rng.normal(size=w.shape).astype(np.float32))
        return conv, norm

    def _run(self, conv, norm, x, training):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = norm(conv(x, training=training), training=training)
            loss = tf.reduce_sum(tf.cast(y, tf.float32) * tf.cast(tf.range(y.shape[-1]) + 1,
                                                                   tf.float32))
        variables = conv.trainable_weights + norm.trainable_weights
        return [y, *tape.gradient(loss, [x, *variables])], variables

    def test_values_and_gradients_match_the_two_layers(self):
        x = tf.random.stateless_normal([2, 9, 7, 4], seed=[3, 4])
        for use_bias in (False, True):
            with self.subTest(use_bias=use_bias):
                folded, variables = self._run(*self._pair(True, use_bias), x, training=True)
                plain, _ = self._run(*self._pair(False, use_bias), x, training=True)
                self.assertLen(variables, 4 if use_bias else 3)  # kernel, (bias), gamma, beta
                for a, b in zip(folded, plain):
                    self.assertAllClose(a, b, rtol=1e-5, atol=1e-5)

    def test_the_folded_step_has_no_activation_sized_multiply(self):
        conv, norm = self._pair(True, use_bias=False)
        x = tf.random.stateless_normal([2, 9, 7, 4], seed=[3, 4])
        graph = tf.function(lambda x: self._run(conv, norm, x, True)[0]).get_concrete_function(
            x).graph
        sizes = [int(np.prod(op.outputs[0].shape)) for op in graph.get_operations()
                 if op.type == "Mul" and ("conv" in op.name or "bn" in op.name)]
        self.assertTrue(sizes)  # the kernel is scaled ...
        self.assertLess(max(sizes), 2 * 5 * 4 * 6)  # ... and nothing the size of y [2, 5, 4, 6]

    def test_inference_and_unfrozen_batch_norms_are_not_folded(self):
        x = tf.random.stateless_normal([2, 9, 7, 4], seed=[5, 6])
        conv, norm = self._pair(True, use_bias=False)
        plain_conv, plain_norm = self._pair(False, use_bias=False)
        self.assertAllClose(norm(conv(x), training=False),
                            plain_norm(plain_conv(x), training=False), rtol=1e-5, atol=1e-5)
        conv, norm = self._pair(True, use_bias=False, freeze=False)
        plain_conv, plain_norm = self._pair(False, use_bias=False, freeze=False)
        self.assertIsNone(conv._norm)  # batch statistics cannot be folded
        self.assertAllClose(norm(conv(x), training=True),
                            plain_norm(plain_conv(x), training=True), rtol=1e-4, atol=1e-4)

    def test_a_conv_output_it_did_not_fold_is_normalized(self):
        # The conv folds only in training mode; the batch norm still normalizes what it got.
        x = tf.random.stateless_normal([2, 9, 7, 4], seed=[5, 6])
        conv, norm = self._pair(True, use_bias=False)
        plain_conv, plain_norm = self._pair(False, use_bias=False)
        self.assertAllClose(norm(conv(x, training=False), training=True),
                            plain_norm(plain_conv(x), training=True), rtol=1e-5, atol=1e-5)

    def test_mixed_bfloat16(self):
        x = tf.random.stateless_normal([2, 9, 7, 4], seed=[7, 8])
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
        try:
            folded, _ = self._run(*self._pair(True, use_bias=True), x, training=True)
            plain, _ = self._run(*self._pair(False, use_bias=True), x, training=True)
        finally:
            keras.mixed_precision.set_global_policy("float32")
        self.assertEqual(folded[0].dtype, tf.bfloat16)
        scale = float(tf.reduce_max(tf.abs(tf.cast(plain[0], tf.float32))))
        self.assertAllClose(tf.cast(folded[0], tf.float32), tf.cast(plain[0], tf.float32),
                            atol=0.02 * scale)

    def test_the_batch_norm_is_not_tracked_by_the_conv(self):
        # Checkpoints and Keras see the same layers as without folding.
        conv, norm = self._pair(True, use_bias=False)
        self.assertEqual([w.path for w in conv.weights], ["conv/kernel"])
        self.assertEmpty(conv._layers)
        children = conv._trackable_children(save_type="checkpoint")
        self.assertFalse(any(child is norm for child in children.values()))
