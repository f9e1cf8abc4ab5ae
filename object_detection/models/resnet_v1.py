"""ResNet v1 (50/101/152) backbones: the OD API TF2 network, with `keras.applications` names.

Architecture (He et al. 2015, "v1" bottleneck), as the OD API's Keras ResNet v1
(`models/keras_models/resnet_v1.py`) computes it: `conv1_pad` (3 px) -> 7x7/2 `conv1_conv` ->
BN -> ReLU -> 3x3/2 max pool with 'same' padding (`pool1_pool`), then four stages
`conv2..conv5` of bottleneck blocks `1x1 -> 3x3 -> 1x1 (x4)` whose stride sits on the first
1x1 conv of the first block of stages 3-5. No conv has a bias (batch norm follows every one).
Every layer has the `keras.applications` name (`conv4_block6_2_conv`, `conv4_block6_2_bn`, ...),
so the OD API's checkpoints map by layer and Keras ImageNet `.h5` weights map by name once
adapted (`weight_loading.load_keras_application_weights`: conv1's input channels reversed,
conv biases folded into the batch norms). With 'same' padding, a side of n pixels gives
ceil(n / 2**l) at stride 2**l for every n, odd included.

Where `keras.applications.ResNet50` differs (and the OD API follows the slim recipe instead):
its pool1 zero-pads 1 px on every side then pools 'valid' (the window starts one pixel earlier),
its convs have biases, its batch norm epsilon is 1.001e-5 (here 1e-5) and it expects BGR input.

Options (defaults are the OD API's):
- `depth_multiplier` / `min_depth` scale every conv to `max(int(c * depth_multiplier), min_depth)`
  (the OD API's reduced-depth ResNets);
- `conv_hyperparams` (the OD API's `override_base_feature_extractor_hyperparams`) replaces the
  initializer, regularizer, batch norm and activation of every layer; convs stay bias-free;
- `freeze_batchnorm` freezes the statistics of every batch norm (`hyperparams.FreezableBatchNorm`).
"""
from __future__ import annotations

import keras

from object_detection.models import hyperparams as hp

# Blocks per stage conv2..conv5.
RESNET_V1_BLOCKS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}

# Without override, the OD API Keras ResNet uses Keras L2(1e-4) (slim weight 2e-4), TF's default
# variance scaling initializer and batch norm momentum 0.997, epsilon 1e-5, with a learned scale.
DEFAULT_HYPERPARAMS = hp.ConvHyperparams(
    activation="RELU",
    l2_weight=2e-4,
    initializer={"kind": "variance_scaling", "factor": 1.0, "mode": "FAN_IN", "uniform": False},
    batch_norm=hp.BatchNormParams(decay=0.997, epsilon=1e-5, center=True, scale=True),
)


def output_layer_names(depth: int) -> list[str]:
    """Names of the last layer of stages conv2..conv5 (C2..C5, strides 4..32)."""
    blocks = blocks_per_stage(depth)
    return [f"conv{stage}_block{n}_out" for stage, n in zip((2, 3, 4, 5), blocks)]


def resnet_v1(
    depth: int,
    *,
    depth_multiplier: float = 1.0,
    min_depth: int = 8,
    conv_hyperparams: hp.ConvHyperparams | None = None,
    freeze_batchnorm: bool = False,
    name: str | None = None,
) -> keras.Model:
    """Builds a ResNet v1 backbone without its classification top.

    Args:
      depth: 50, 101 or 152.
      depth_multiplier: scales every conv's channel count (> 0).
      min_depth: lower bound of every scaled channel count.
      conv_hyperparams: replaces the default layer hyperparameters (`DEFAULT_HYPERPARAMS`); its
        `batch_norm` must not be None.
      freeze_batchnorm: every batch norm normalizes with its frozen moving statistics.
      name: model name (default `resnet{depth}`).

    Returns:
      A functional `keras.Model` taking float [B, H, W, 3] (RGB minus the ImageNet means, as
      the OD API feeds it) and returning the `conv5_block{n}_out` map, [B, ceil(H/32), ceil(W/32),
      2048 * depth_multiplier]. Intermediate maps are reachable with `get_layer(...).output`.
    """
    blocks = blocks_per_stage(depth)
    params = checked_hyperparams(depth_multiplier, conv_hyperparams, DEFAULT_HYPERPARAMS)
    layers = _Layers(params, depth_multiplier, min_depth, freeze_batchnorm)

    inputs = keras.Input(shape=(None, None, 3), name="input_image")
    x = keras.layers.ZeroPadding2D(padding=((3, 3), (3, 3)), name="conv1_pad")(inputs)
    x = layers.conv_bn(x, 64, 7, strides=2, padding="valid", name="conv1_conv",
                       bn_name="conv1_bn")
    x = layers.activation("conv1_relu")(x)
    # OD API (slim recipe): 'same' pooling, no zero padding (keras.applications: pad 1, 'valid').
    x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name="pool1_pool")(x)

    for stage, (filters, num_blocks) in enumerate(zip((64, 128, 256, 512), blocks), start=2):
        stride = 1 if stage == 2 else 2
        x = _bottleneck(x, layers, filters, stride, True, f"conv{stage}_block1")
        for i in range(2, num_blocks + 1):
            x = _bottleneck(x, layers, filters, 1, False, f"conv{stage}_block{i}")
    return keras.Model(inputs, x, name=name or f"resnet{depth}")


def checked_hyperparams(depth_multiplier: float, conv_hyperparams: hp.ConvHyperparams | None,
                        default: hp.ConvHyperparams) -> hp.ConvHyperparams:
    """The hyperparameters a ResNet v1 is built with (`default` without an override), after
    the checks both layouts share: depth_multiplier > 0, batch norm present."""
    if depth_multiplier <= 0:
        raise ValueError(f"depth_multiplier must be > 0, got {depth_multiplier}.")
    params = conv_hyperparams or default
    if params.batch_norm is None:
        raise ValueError(
            "ResNet v1 needs batch norm: conv_hyperparams.batch_norm is None (set batch_norm, or "
            "do not override the base feature extractor hyperparams).")
    return params


def blocks_per_stage(depth: int) -> tuple[int, ...]:
    """Bottleneck blocks of stages conv2..conv5; a clear error for an unsupported depth."""
    if depth not in RESNET_V1_BLOCKS:
        raise ValueError(
            f"ResNet v1 depth {depth!r} is not supported; expected one of "
            f"{sorted(RESNET_V1_BLOCKS)}.")
    return RESNET_V1_BLOCKS[depth]


def _bottleneck(x, layers: "_Layers", filters: int, stride: int, conv_shortcut: bool, name: str):
    """keras.applications `residual_block_v1`: stride on the first 1x1 conv."""
    if conv_shortcut:
        shortcut = layers.conv_bn(x, 4 * filters, 1, strides=stride, name=f"{name}_0_conv",
                                  bn_name=f"{name}_0_bn")
    else:
        shortcut = x
    x = layers.conv_bn(x, filters, 1, strides=stride, name=f"{name}_1_conv",
                       bn_name=f"{name}_1_bn")
    x = layers.activation(f"{name}_1_relu")(x)
    x = layers.conv_bn(x, filters, 3, padding="same", name=f"{name}_2_conv",
                       bn_name=f"{name}_2_bn")
    x = layers.activation(f"{name}_2_relu")(x)
    x = layers.conv_bn(x, 4 * filters, 1, name=f"{name}_3_conv", bn_name=f"{name}_3_bn")
    x = keras.layers.Add(name=f"{name}_add")([shortcut, x])
    return layers.activation(f"{name}_out")(x)


class _Layers:
    """Makes the backbone's layers from one set of hyperparameters."""

    def __init__(self, params: hp.ConvHyperparams, depth_multiplier: float, min_depth: int,
                 freeze_batchnorm: bool):
        self._params = params
        self._depth_multiplier = depth_multiplier
        self._min_depth = min_depth
        self._freeze = freeze_batchnorm

    def depth(self, channels: int) -> int:
        return max(int(channels * self._depth_multiplier), self._min_depth)

    def conv_bn(self, x, filters: int, kernel_size: int, *, strides: int = 1,
                padding: str = "valid", name: str, bn_name: str):
        """Conv `name` then batch norm `bn_name` on `x`, folded in training steps when frozen."""
        # No bias, as the OD API builds it (batch norm follows every conv).
        conv, norm = self._params.make_conv_and_batch_norm(
            self.depth(filters), kernel_size, strides=strides, padding=padding, name=name,
            bn_name=bn_name, freeze=self._freeze, use_bias=False)
        return norm(conv(x))

    def activation(self, name: str) -> keras.layers.Layer:
        return self._params.make_activation(name)
