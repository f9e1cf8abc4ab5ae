"""ResNet v1 (50/101/152) in TF-slim's layout: the backbone of the OD API TF1 `ssd_resnet*_v1_fpn`
extractors, the seed's network, read from TF-slim's ImageNet checkpoints.

TF-slim's `nets/resnet_v1.py` as the OD API TF1 extractor calls it (`global_pool=False`,
`store_non_strided_activations=True`, `min_base_depth=min_depth`):

- root: `conv1`, a 7x7/2 `conv2d_same` (stride 2: 3 px of zeros on every side, then 'valid';
  stride 1: 'same') -> batch norm -> activation, then `pool1`, a 3x3/2 'same' max pool;
- four blocks of bottleneck units (`block{b}/unit_{u}/bottleneck_v1`): `conv1` 1x1 -> `conv2` 3x3
  `conv2d_same` with the unit's stride -> `conv3` 1x1 (no activation), plus a shortcut (a 1x1
  conv with the unit's stride when the depth changes, else the input subsampled), then ReLU;
- the stride of blocks 1-3 sits in their last unit (block 4 has none). With
  `store_non_strided_activations` that unit runs at stride 1, the block's end point (C2..C4) is
  its output, and the block subsamples it (a 1x1/2 'same' max pool keeps every other pixel)
  before the next block. Without it, the last unit's `conv2` and shortcut are strided;
- widths: the bottleneck ("base") depth of block b is `max(int(base * depth_multiplier),
  min_depth)` for base 64, 128, 256, 512 and the unit output 4 times that; `conv1` always has 64
  channels; no conv has a bias (batch norm follows each).

`store_non_strided_activations=True` computes the same function as the Keras layout
(`resnet_v1.resnet_v1`, stride in the first 1x1 conv of the next stage) given the same weights:
a stride-2 1x1 conv and a 1x1 conv after keeping every other pixel are the same operation, in
training as in inference (every batch norm sees the same tensor). What differs from the OD API
TF2 network, besides the variable names: the output ReLU of every unit is a plain ReLU (slim's
`tf.nn.relu`) even when `conv_hyperparams` overrides the activation of the convs (the TF2
network uses the config's activation there too), and `depth_multiplier` scales the bottleneck
depth and never `conv1`.

Layers are named after the slim scopes with `/` replaced by `_` (`block2_unit_4_conv3`,
`block2_unit_4_conv3_BatchNorm`); `slim_scope(layer_name)` gives the slim scope back, which
is how TF-slim and OD API TF1 checkpoints map onto the layers.
"""
from __future__ import annotations

import re

import keras

from object_detection.models import hyperparams as hp
from object_detection.models import resnet_v1

BLOCK_BASE_DEPTHS = (64, 128, 256, 512)
BLOCK_STRIDES = (2, 2, 2, 1)

# slim `resnet_arg_scope()`: weight decay 1e-4 (a slim l2 weight), variance scaling (factor 2),
# ReLU, batch norm decay 0.997, epsilon 1e-5, with a learned scale.
DEFAULT_HYPERPARAMS = hp.ConvHyperparams(
    activation="RELU",
    l2_weight=1e-4,
    initializer={"kind": "variance_scaling", "factor": 2.0, "mode": "FAN_IN", "uniform": False},
    batch_norm=hp.BatchNormParams(decay=0.997, epsilon=1e-5, center=True, scale=True),
)


def output_layer_names(depth: int) -> list[str]:
    """Names of the end points block1..block4 (C2..C5, strides 4..32): each block's last unit."""
    units = resnet_v1.blocks_per_stage(depth)
    return [f"block{b}_unit_{n}" for b, n in enumerate(units, start=1)]


def slim_scope(layer_name: str) -> str:
    """The TF-slim scope of a layer of this backbone, relative to `resnet_v1_{depth}/`.

    `conv1` -> `conv1`, `conv1_BatchNorm` -> `conv1/BatchNorm`,
    `block1_unit_2_conv3_BatchNorm` -> `block1/unit_2/bottleneck_v1/conv3/BatchNorm`.
    """
    match = re.fullmatch(r"(?:block(\d+)_unit_(\d+)_)?(conv[123]|shortcut)(_BatchNorm)?",
                         layer_name)
    if not match:
        raise ValueError(f"{layer_name!r} is not a layer with variables of the slim ResNet v1.")
    block, unit, conv, norm = match.groups()
    scope = conv if block is None else f"block{block}/unit_{unit}/bottleneck_v1/{conv}"
    return scope + ("/BatchNorm" if norm else "")


def resnet_v1_slim(
    depth: int,
    *,
    depth_multiplier: float = 1.0,
    min_depth: int = 8,
    conv_hyperparams: hp.ConvHyperparams | None = None,
    freeze_batchnorm: bool = False,
    store_non_strided_activations: bool = True,
    name: str | None = None,
) -> keras.Model:
    """Builds TF-slim's ResNet v1 without its classification top (see the module docstring).

    Args:
      depth: 50, 101 or 152.
      depth_multiplier: scales the bottleneck depth of every block (> 0).
      min_depth: lower bound of every scaled bottleneck depth (slim's `min_base_depth`).
      conv_hyperparams: replaces `DEFAULT_HYPERPARAMS` (slim's `resnet_arg_scope`) for every
        conv; its `batch_norm` must not be None.
      freeze_batchnorm: every batch norm normalizes with its frozen moving statistics.
      store_non_strided_activations: end points before the subsampling (the OD API TF1 way).
      name: model name (default `resnet_v1_{depth}`, slim's scope).

    Returns:
      A functional `keras.Model` taking float [B, H, W, 3] (RGB minus the ImageNet means) and
      returning block4's output, [B, ceil(H/32), ceil(W/32), 4 * depth(512)]. The end points
      are reachable with `get_layer(output_layer_names(depth)[i]).output`.
    """
    units = resnet_v1.blocks_per_stage(depth)
    params = resnet_v1.checked_hyperparams(depth_multiplier, conv_hyperparams, DEFAULT_HYPERPARAMS)
    layers = _Layers(params, freeze_batchnorm)

    inputs = keras.Input(shape=(None, None, 3), name="input_image")
    x = layers.conv_bn(inputs, 64, 7, 2, "conv1", activation=True)
    x = keras.layers.MaxPooling2D(3, strides=2, padding="same", name="pool1")(x)
    for b, (base, num_units, stride) in enumerate(
            zip(BLOCK_BASE_DEPTHS, units, BLOCK_STRIDES), start=1):
        base_depth = max(int(base * depth_multiplier), min_depth)
        for u in range(1, num_units + 1):
            unit_stride = stride if u == num_units and not store_non_strided_activations else 1
            x = _bottleneck(x, layers, 4 * base_depth, base_depth, unit_stride,
                            f"block{b}_unit_{u}")
        if store_non_strided_activations:
            x = _subsample(x, stride, f"block{b}_subsample")
    return keras.Model(inputs, x, name=name or f"resnet_v1_{depth}")


def _subsample(x, stride: int, name: str):
    """slim `resnet_utils.subsample`: a 1x1 max pool (every `stride`-th pixel) or nothing."""
    if stride == 1:
        return x
    return keras.layers.MaxPooling2D(1, strides=stride, padding="same", name=name)(x)


def _bottleneck(x, layers: "_Layers", depth: int, base_depth: int, stride: int, name: str):
    """slim `resnet_v1.bottleneck`; the unit's output ReLU is slim's fixed `tf.nn.relu`."""
    if x.shape[-1] == depth:
        shortcut = _subsample(x, stride, f"{name}_shortcut")
    else:
        shortcut = layers.conv_bn(x, depth, 1, stride, f"{name}_shortcut", activation=False)
    residual = layers.conv_bn(x, base_depth, 1, 1, f"{name}_conv1", activation=True)
    residual = layers.conv_bn(residual, base_depth, 3, stride, f"{name}_conv2", activation=True)
    residual = layers.conv_bn(residual, depth, 1, 1, f"{name}_conv3", activation=False)
    x = keras.layers.Add(name=f"{name}_add")([shortcut, residual])
    return keras.layers.ReLU(name=name)(x)


class _Layers:
    """Makes slim `conv2d` (+ batch norm + activation) blocks from one set of hyperparameters."""

    def __init__(self, params: hp.ConvHyperparams, freeze_batchnorm: bool):
        self._params = params
        self._freeze = freeze_batchnorm

    def conv_bn(self, x, filters: int, kernel_size: int, stride: int, name: str, *,
                activation: bool):
        """slim `conv2d` for 1x1 convs and `resnet_utils.conv2d_same` for larger ones: at
        stride > 1, `(k - 1) // 2` zeros before and the rest after, then 'valid'."""
        padding = "same"
        if stride > 1 and kernel_size > 1:
            total = kernel_size - 1
            x = keras.layers.ZeroPadding2D(
                ((total // 2, total - total // 2),) * 2, name=f"{name}_pad")(x)
            padding = "valid"
        # No bias: batch norm follows every conv.
        conv, norm = self._params.make_conv_and_batch_norm(
            filters, kernel_size, strides=stride, padding=padding, name=name,
            bn_name=f"{name}_BatchNorm", freeze=self._freeze, use_bias=False)
        x = norm(conv(x))
        if activation:
            x = self._params.make_activation(f"{name}_activation")(x)
        return x
