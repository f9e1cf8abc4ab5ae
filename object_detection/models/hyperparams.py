"""Convolution hyperparameters: initializer, regularizer, batch norm and activation.

The plain-value counterpart of the OD API `Hyperparams` proto and of its
`hyperparams_builder.KerasLayerHyperparams`. Builders translate the proto into a `ConvHyperparams`;
layers call its helpers, so a layer never sees a proto.

Relations to the OD API that are not obvious from the field names:

- `l2_weight` is the proto's `l2_regularizer.weight`, which was a *slim* weight: slim adds
  `w * tf.nn.l2_loss(x) = w * sum(x**2) / 2`. Keras' `L2(a)` adds `a * sum(x**2)`, so the OD API
  Keras builder (and this module) uses `keras.regularizers.L2(0.5 * w)`; the loss is the same.
- `l1_weight` maps to `keras.regularizers.L1(w)` unchanged (slim and Keras agree).
- `BatchNormParams.decay` is Keras' `momentum` (slim's "decay" is the moving-average momentum).
- A conv followed by batch norm has no bias unless `force_use_bias` (the BN `beta` plays that
  role), exactly as `KerasLayerHyperparams.use_bias()`: `force_use_bias or not (bn and center)`.
- `freeze_batchnorm` (and `BatchNormParams.train = False`) freeze the *statistics* only, as
  the OD API's `FreezableBatchNorm(training=False)` does: the layer always normalizes with its
  moving mean and variance and never updates them, while `gamma` and `beta` stay trainable
  variables and train with the rest of the model.
- Such a frozen batch norm is folded into the conv before it inside a training step
  (`fold_batch_norm`): `conv(x, W * scale) + offset` instead of `conv(x, W) * scale + offset`.
  Same variables, same gradients, float32 round-off apart; the multiply-add on the whole
  activation and its two activation-sized gradient ops disappear (the SSD320 step: 1.13x).
"""
from __future__ import annotations

import dataclasses
import weakref
from typing import Any, Mapping

import keras
import tensorflow as tf

ACTIVATIONS = ("NONE", "RELU", "RELU_6", "SWISH")
INITIALIZER_KINDS = ("truncated_normal", "random_normal", "variance_scaling")
VARIANCE_SCALING_MODES = ("FAN_IN", "FAN_OUT", "FAN_AVG")


@dataclasses.dataclass(frozen=True)
class BatchNormParams:
    """Batch normalization settings; defaults are those of the OD API `BatchNorm` proto."""

    decay: float = 0.999  # Keras `momentum` of the moving averages
    epsilon: float = 0.001
    center: bool = True  # learn a `beta` offset
    scale: bool = False  # learn a `gamma` multiplier
    train: bool = True  # False: never update (same as freezing this layer)
    # `sync_batch_norm`: batch statistics over the whole global batch (every replica and
    # worker under tf.distribute) instead of each replica's share.
    synchronized: bool = False

    def __post_init__(self):
        if not 0.0 <= self.decay <= 1.0:
            raise ValueError(f"BatchNormParams.decay must be in [0, 1], got {self.decay}.")
        if self.epsilon <= 0.0:
            raise ValueError(f"BatchNormParams.epsilon must be > 0, got {self.epsilon}.")


class FreezableBatchNorm(keras.layers.BatchNormalization):
    """`BatchNormalization` whose statistics can be frozen for good.

    A frozen layer always normalizes with its moving mean and variance (inference mode,
    whatever `training` says) and never updates them; its `gamma` and `beta` remain trainable
    (the OD API's `FreezableBatchNorm(training=False)`, which is what `freeze_batchnorm: true`
    asks for there). `layer.trainable = False` stops `gamma` and `beta` as usual.
    """

    def __init__(self, frozen: bool = False, synchronized: bool = False, **kwargs):
        super().__init__(**kwargs)
        self._frozen = bool(frozen)
        self._sync = bool(synchronized)
        # {id: output} of the folded conv's outputs not yet seen here (`fold_batch_norm`).
        self._folded_outputs = {}

    @property
    def sync_statistics(self) -> bool:
        """True for `sync_batch_norm`: training statistics over every replica's batch."""
        return self._sync

    @property
    def frozen(self) -> bool:
        """True when the statistics are frozen (normalization always in inference mode)."""
        return self._frozen

    def call(self, inputs, training=None, mask=None):
        if mask is not None or len(inputs.shape) != 4 or self.axis not in (-1, 3):
            return super().call(inputs, training=False if self._frozen else training, mask=mask)
        if self._frozen and training:
            if self._folded_outputs.pop(id(inputs), None) is inputs:
                return inputs  # the conv before it has applied it (`fold_batch_norm`)
            return self._affine_with_moving_statistics(inputs)
        if training and self.trainable:
            context = tf.distribute.get_replica_context()
            if self._sync and context is not None and context.num_replicas_in_sync > 1:
                return self._with_global_batch_statistics(inputs, context)
            return self._fused_with_batch_statistics(inputs)
        return self._fused_with_moving_statistics(inputs)

    def _with_global_batch_statistics(self, inputs, context):
        """Training-mode batch norm with the statistics of the global batch (sync_batch_norm).

        Two all-reduces per layer: the per-channel count and sum give the global mean, then the
        sum of squared deviations from it gives the global (biased) variance. The one-pass
        E[x^2] - E[x]^2 would need one all-reduce but cancels badly where a channel's mean is
        large against its spread, and its gradient then depends on the summation order (how
        the batch is split). Gradients flow back through the all-reduces, so every replica's
        input gets the gradient of the global normalization. The moving averages get the global
        mean and the Bessel-corrected global variance, as `_fused_with_batch_statistics` does
        for one replica.
        """
        x = tf.cast(inputs, tf.float32)
        total, count = context.all_reduce(
            tf.distribute.ReduceOp.SUM,
            [tf.reduce_sum(x, [0, 1, 2]), tf.cast(tf.reduce_prod(tf.shape(x)[:3]), tf.float32)])
        mean = total / count
        squares = context.all_reduce(tf.distribute.ReduceOp.SUM,
                                     tf.reduce_sum(tf.square(x - mean), [0, 1, 2]))
        variance = squares / count
        gamma = tf.cast(self.gamma, tf.float32) if self.scale else None
        beta = tf.cast(self.beta, tf.float32) if self.center else None
        outputs = tf.nn.batch_normalization(x, mean, variance, beta, gamma, self.epsilon)
        momentum = self.momentum
        bessel = count / tf.maximum(count - 1.0, 1.0)
        self.moving_mean.assign(tf.cast(
            momentum * tf.cast(self.moving_mean, tf.float32) + (1.0 - momentum) * mean,
            self.moving_mean.dtype))
        self.moving_variance.assign(tf.cast(
            momentum * tf.cast(self.moving_variance, tf.float32)
            + (1.0 - momentum) * variance * bessel, self.moving_variance.dtype))
        return tf.cast(outputs, inputs.dtype)

    def _fused_with_batch_statistics(self, inputs):
        """Training-mode batch norm as tf-keras (the OD API's Keras) computes it.

        One FusedBatchNormV3 in the activation dtype: normalized with the batch mean and
        (biased) variance, and the moving averages updated with the batch mean and the
        Bessel-corrected variance (n / (n - 1)), where Keras 3's own layer uses the biased one;
        the difference is large at small levels (a 3x3 map at batch 1: 9 / 8).
        """
        outputs, moving_mean, moving_variance = self._fused(
            inputs, is_training=True, exponential_avg_factor=1.0 - self.momentum)
        self.moving_mean.assign(tf.cast(moving_mean, self.moving_mean.dtype))
        self.moving_variance.assign(tf.cast(moving_variance, self.moving_variance.dtype))
        return outputs

    def _moving_statistics(self, channels: int):
        """(scale, offset) float32 [C] such that batch norm is x * scale + offset."""
        gamma = self.gamma if self.scale else tf.ones([channels], tf.float32)
        beta = self.beta if self.center else tf.zeros([channels], tf.float32)
        scale = tf.cast(gamma, tf.float32) * tf.math.rsqrt(
            tf.cast(self.moving_variance, tf.float32) + self.epsilon)
        return scale, tf.cast(beta, tf.float32) - tf.cast(self.moving_mean, tf.float32) * scale

    def _affine_with_moving_statistics(self, inputs):
        """Frozen batch norm inside a training step: one multiply-add in the activation dtype.

        Keras would cast bfloat16/float16 activations to float32 and back around every batch
        norm; here only the [C] scale and offset are cast. The gradient with respect to the
        input needs only `scale`, so the layer keeps no activation alive for the backward pass
        beyond the input itself (for the gradients of `gamma` and `beta`).
        """
        scale, offset = self._moving_statistics(inputs.shape[-1])
        return inputs * tf.cast(scale, inputs.dtype) + tf.cast(offset, inputs.dtype)

    def _fused_with_moving_statistics(self, inputs):
        """Inference-mode batch norm as one FusedBatchNormV3 in the activation dtype.

        The fused op takes the activations in their own dtype with float32 statistics, and
        TensorFlow's graph optimizer folds it, with the ReLU that follows, into the preceding
        convolution (Conv2D + FusedBatchNorm + Relu6 -> one _FusedConv2D). Same arithmetic as
        Keras: (x - mean) / sqrt(var + eps) * gamma + beta.
        """
        outputs, _, _ = self._fused(inputs, is_training=False)
        return outputs

    def _fused(self, inputs, **kwargs):
        """FusedBatchNormV3 of `inputs` (own dtype) with float32 gamma, beta and statistics."""
        channels = inputs.shape[-1]
        scale = self.gamma if self.scale else tf.ones([channels], tf.float32)
        offset = self.beta if self.center else tf.zeros([channels], tf.float32)
        return tf.compat.v1.nn.fused_batch_norm(
            inputs, tf.cast(scale, tf.float32), tf.cast(offset, tf.float32),
            mean=tf.cast(self.moving_mean, tf.float32),
            variance=tf.cast(self.moving_variance, tf.float32), epsilon=self.epsilon, **kwargs)

    def get_config(self):
        config = super().get_config()
        config["frozen"] = self._frozen
        config["synchronized"] = self._sync
        return config


def foldable(conv: keras.layers.Layer, norm: keras.layers.Layer | None, training) -> bool:
    """True when `norm(conv(x))` is a training step's frozen batch norm after a plain conv,
    which `folded_conv` computes in one conv."""
    return (training is True and isinstance(norm, FreezableBatchNorm) and norm.frozen
            and norm.axis in (-1, 3) and isinstance(conv, keras.layers.Conv2D)
            and conv.data_format == "channels_last" and not conv.lora_enabled
            and conv.activation in (None, keras.activations.linear))


def folded_conv(conv: keras.layers.Conv2D, norm: FreezableBatchNorm, inputs: tf.Tensor
                ) -> tf.Tensor:
    """`norm(conv(inputs))` for a frozen `norm` as one conv: the scale of the moving statistics
    multiplies the kernel's output channels, the offset (plus the scaled conv bias) is the bias.
    Gradients reach the kernel, `gamma` and `beta` through the folding, at the cost of ops on
    weights instead of activations. The kernel is folded in float32 and cast to the activation
    dtype."""
    scale, offset = norm._moving_statistics(conv.filters)
    kernel = tf.cast(tf.cast(conv.kernel, tf.float32) * scale, inputs.dtype)
    if conv.use_bias:
        offset = offset + tf.cast(conv.bias, tf.float32) * scale
    return tf.nn.bias_add(conv.convolution_op(inputs, kernel), tf.cast(offset, inputs.dtype))


class FoldingConv2D(keras.layers.Conv2D):
    """`Conv2D` that applies the frozen batch norm after it (`fold_batch_norm`) in a training
    step, by `folded_conv`; elsewhere it is a plain `Conv2D` and the batch norm runs itself."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._norm = None  # weakref: the layer must not own (checkpoint) the batch norm

    def call(self, inputs, training=None):
        norm = self._norm() if self._norm is not None else None
        if norm is None or not foldable(self, norm, training):
            return super().call(inputs)
        outputs = folded_conv(self, norm, inputs)
        if len(norm._folded_outputs) > 16:  # outputs that never reached the batch norm
            norm._folded_outputs.clear()
        norm._folded_outputs[id(outputs)] = outputs
        return outputs


def fold_batch_norm(conv: keras.layers.Layer, norm: keras.layers.Layer) -> None:
    """Makes the frozen batch norm `norm` that follows `conv` part of the conv in training
    steps: `conv` (a `FoldingConv2D`) computes both, and `norm` passes the very tensors the
    conv folded it into through unchanged (anything else it normalizes as usual). Nothing
    happens for other layers or a batch norm that is not frozen."""
    if isinstance(conv, FoldingConv2D) and foldable(conv, norm, True):
        conv._norm = weakref.ref(norm)


def make_initializer(spec: Mapping[str, Any]) -> keras.initializers.Initializer:
    """A fresh Keras initializer from an initializer dict (see `ConvHyperparams.initializer`)."""
    kind = spec.get("kind")
    if kind == "truncated_normal":
        return keras.initializers.TruncatedNormal(
            mean=float(spec.get("mean", 0.0)), stddev=float(spec.get("stddev", 1.0)))
    if kind == "random_normal":
        return keras.initializers.RandomNormal(
            mean=float(spec.get("mean", 0.0)), stddev=float(spec.get("stddev", 1.0)))
    if kind == "variance_scaling":
        # OD API: slim variance_scaling_initializer(factor, mode, uniform) == Keras
        # VarianceScaling(scale=factor, mode=mode.lower(), uniform / truncated_normal).
        mode = str(spec.get("mode", "FAN_IN")).upper()
        if mode not in VARIANCE_SCALING_MODES:
            raise ValueError(
                f"initializer.mode: {mode!r} is not one of {list(VARIANCE_SCALING_MODES)}.")
        return keras.initializers.VarianceScaling(
            scale=float(spec.get("factor", 2.0)),
            mode=mode.lower(),
            distribution="uniform" if spec.get("uniform", False) else "truncated_normal")
    raise ValueError(
        f"initializer.kind: {kind!r} is not supported; expected one of "
        f"{list(INITIALIZER_KINDS)}.")


@dataclasses.dataclass(frozen=True)
class ConvHyperparams:
    """Hyperparameters of the convolutions a config describes (OD API `Hyperparams`).

    Attributes:
      activation: "NONE" | "RELU" | "RELU_6" | "SWISH", applied after the (optional) batch norm.
      l2_weight: slim-convention L2 weight (see the module docstring: Keras L2(0.5 * l2_weight)).
      l1_weight: L1 weight.
      initializer: {"kind": "truncated_normal" | "random_normal", "mean", "stddev"} or
        {"kind": "variance_scaling", "factor" (2.0), "mode" ("FAN_IN" | "FAN_OUT" | "FAN_AVG"),
        "uniform" (False)}.
      batch_norm: None for no normalization (convs then get a bias).
      force_use_bias: give convs a bias even when batch norm follows them.
    """

    activation: str = "RELU"
    l2_weight: float = 0.0
    l1_weight: float = 0.0
    initializer: Mapping[str, Any] = dataclasses.field(
        default_factory=lambda: {"kind": "truncated_normal", "mean": 0.0, "stddev": 1.0})
    batch_norm: BatchNormParams | None = None
    force_use_bias: bool = False

    def __post_init__(self):
        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"ConvHyperparams.activation: {self.activation!r} is not one of "
                f"{list(ACTIVATIONS)}.")
        if self.l2_weight < 0 or self.l1_weight < 0:
            raise ValueError(
                f"ConvHyperparams: regularizer weights must be >= 0, got l2_weight="
                f"{self.l2_weight}, l1_weight={self.l1_weight}.")
        make_initializer(self.initializer)  # validates the dict early
        # A frozen dataclass cannot own a mutable dict safely; keep a read-only copy.
        object.__setattr__(self, "initializer", _FrozenDict(self.initializer))

    @property
    def use_batch_norm(self) -> bool:
        return self.batch_norm is not None

    def default_use_bias(self) -> bool:
        """OD API `use_bias()`: no bias when a centered batch norm follows, unless forced."""
        return self.force_use_bias or not (self.use_batch_norm and self.batch_norm.center)

    def make_regularizer(self) -> keras.regularizers.Regularizer | None:
        """Keras regularizer with the slim-equivalent loss, or None when both weights are 0."""
        l2 = 0.5 * self.l2_weight  # slim w * sum(x^2) / 2 == Keras L2(w / 2)
        if self.l1_weight and l2:
            return keras.regularizers.L1L2(l1=self.l1_weight, l2=l2)
        if l2:
            return keras.regularizers.L2(l2)
        if self.l1_weight:
            return keras.regularizers.L1(self.l1_weight)
        return None

    def conv_kwargs(self, use_bias: bool | None = None) -> dict[str, Any]:
        """Keyword arguments for `keras.layers.Conv2D` (no activation: see `make_activation`).

        Args:
          use_bias: None for the OD API default (`default_use_bias()`), else forced.
        """
        return {
            "kernel_initializer": make_initializer(self.initializer),
            "kernel_regularizer": self.make_regularizer(),
            "use_bias": self.default_use_bias() if use_bias is None else bool(use_bias),
        }

    def depthwise_conv_kwargs(self, use_bias: bool | None = None) -> dict[str, Any]:
        """Keyword arguments for `keras.layers.DepthwiseConv2D`."""
        return {
            "depthwise_initializer": make_initializer(self.initializer),
            "depthwise_regularizer": self.make_regularizer(),
            "use_bias": self.default_use_bias() if use_bias is None else bool(use_bias),
        }

    def separable_conv_kwargs(self, use_bias: bool | None = None) -> dict[str, Any]:
        """Keyword arguments for `keras.layers.SeparableConv2D` (both kernels regularized)."""
        return {
            "depthwise_initializer": make_initializer(self.initializer),
            "depthwise_regularizer": self.make_regularizer(),
            "pointwise_initializer": make_initializer(self.initializer),
            "pointwise_regularizer": self.make_regularizer(),
            "use_bias": self.default_use_bias() if use_bias is None else bool(use_bias),
        }

    def make_batch_norm(self, name: str, freeze: bool = False) -> keras.layers.Layer:
        """The normalization layer that follows a conv.

        Args:
          name: layer name.
          freeze: always normalize with the moving statistics and never update them
            (`freeze_batchnorm`); `batch_norm.train = False` does the same. `gamma` and `beta`
            stay trainable either way (OD API semantics).

        Returns:
          A `FreezableBatchNorm`, or `keras.layers.Identity` when `batch_norm` is None.
        """
        if self.batch_norm is None:
            return keras.layers.Identity(name=name)
        bn = self.batch_norm
        return FreezableBatchNorm(
            frozen=freeze or not bn.train,
            synchronized=bn.synchronized,
            momentum=bn.decay,
            epsilon=bn.epsilon,
            center=bn.center,
            scale=bn.scale,
            name=name)

    def make_conv_and_batch_norm(self, filters: int, kernel_size: int, *, name: str,
                                 bn_name: str, freeze: bool, use_bias: bool | None = None,
                                 **conv_args) -> tuple[FoldingConv2D, keras.layers.Layer]:
        """A conv (`conv_kwargs`; `conv_args` such as strides and padding) and the batch norm
        that follows it (`make_batch_norm`), folded into the conv in training steps when frozen
        (`fold_batch_norm`). Apply them as `norm(conv(x))`."""
        conv = FoldingConv2D(filters, kernel_size, name=name,
                             **self.conv_kwargs(use_bias=use_bias), **conv_args)
        norm = self.make_batch_norm(bn_name, freeze=freeze)
        fold_batch_norm(conv, norm)
        return conv, norm

    def make_activation(self, name: str) -> keras.layers.Layer:
        """The activation layer (`keras.layers.Identity` for "NONE")."""
        return make_activation(self.activation, name)


def make_activation(activation: str, name: str) -> keras.layers.Layer:
    """A Keras layer for an OD API activation name."""
    if activation == "RELU":
        return keras.layers.ReLU(name=name)
    if activation == "RELU_6":
        return keras.layers.ReLU(6.0, name=name)
    if activation == "SWISH":
        return keras.layers.Activation("swish", name=name)
    if activation == "NONE":
        return keras.layers.Identity(name=name)
    raise ValueError(f"activation: {activation!r} is not one of {list(ACTIVATIONS)}.")


class _FrozenDict(dict):
    """A read-only dict, so that a frozen `ConvHyperparams` stays hashable and immutable."""

    def _readonly(self, *args, **kwargs):
        raise TypeError("ConvHyperparams.initializer is read-only.")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _readonly

    def __hash__(self):
        return hash(tuple(sorted((k, repr(v)) for k, v in self.items())))

    def __reduce__(self):
        return (_FrozenDict, (dict(self),))
