"""MobileNet v2 backbone, named as `keras.applications.MobileNetV2`.

Architecture (Sandler et al. 2018): `Conv1` 3x3/2 -> 17 inverted residual blocks
(`expanded_conv`, `block_1` .. `block_16`: 1x1 expand -> 3x3 depthwise -> 1x1 linear projection,
with a residual add when shapes allow) -> `Conv_1` 1x1 -> ReLU6 (`out_relu`). Convs have no bias.
Every layer carries its `keras.applications.MobileNetV2` name (`block_5_expand`,
`block_5_depthwise_BN`, `block_5_project`, `block_5_add`, ...), so its ImageNet weights copy in by
name.

All convs use 'same' padding (the Keras application's `correct_pad` + 'valid' is the same thing
for a known input size); a side of n pixels gives ceil(n / 2**l) at stride 2**l.

Widths follow Keras: `_make_divisible(32 * alpha, 8)` for `Conv1`,
`_make_divisible(int(c * alpha), 8)` for projections, `expansion * in_channels` for expansions;
then, as in the OD API wrapper, every non-expansion conv gets at least `min_depth` channels, and
`alpha` also scales `Conv_1` when it is below 1 (Keras keeps 1280 there).
"""
from __future__ import annotations

import keras

from object_detection.models import hyperparams as hp

# (expansion, filters, stride) of expanded_conv (block 0) and block_1 .. block_16.
_BLOCKS = (
    (1, 16, 1),
    (6, 24, 2), (6, 24, 1),
    (6, 32, 2), (6, 32, 1), (6, 32, 1),
    (6, 64, 2), (6, 64, 1), (6, 64, 1), (6, 64, 1),
    (6, 96, 1), (6, 96, 1), (6, 96, 1),
    (6, 160, 2), (6, 160, 1), (6, 160, 1),
    (6, 320, 1),
)

# C2..C5 as in the OD API's MobileNet v2 FPN (its layer_4, layer_7, layer_14 and layer_19).
OUTPUT_LAYER_NAMES = ["block_2_add", "block_5_add", "block_12_add", "out_relu"]

LAST_CONV_FILTERS = 1280
# The OD API's "detection friendly" variant used with use_depthwise FPNs.
DEPTHWISE_FPN_LAST_CONV_FILTERS = 256

# The OD API Keras MobileNet v2 without override: Keras L2(2e-5) (slim 4e-5), truncated normal
# stddev 0.09, ReLU6, batch norm momentum 0.9997, epsilon 1e-3, learned scale.
DEFAULT_HYPERPARAMS = hp.ConvHyperparams(
    activation="RELU_6",
    l2_weight=4e-5,
    initializer={"kind": "truncated_normal", "mean": 0.0, "stddev": 0.09},
    batch_norm=hp.BatchNormParams(decay=0.9997, epsilon=1e-3, center=True, scale=True),
)


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Rounds to the nearest multiple of `divisor`, never more than 10% down (slim/Keras)."""
    min_value = divisor if min_value is None else min_value
    new_value = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new_value < 0.9 * value:
        new_value += divisor
    return new_value


def mobilenet_v2(
    *,
    depth_multiplier: float = 1.0,
    min_depth: int = 8,
    conv_hyperparams: hp.ConvHyperparams | None = None,
    freeze_batchnorm: bool = False,
    last_conv_filters: int = LAST_CONV_FILTERS,
    name: str = "mobilenet_v2",
) -> keras.Model:
    """Builds MobileNet v2 without its classification top.

    Args:
      depth_multiplier: width multiplier `alpha` (> 0).
      min_depth: lower bound of every non-expansion conv's channel count.
      conv_hyperparams: replaces `DEFAULT_HYPERPARAMS` of every layer; `batch_norm` required.
      freeze_batchnorm: every batch norm runs in inference mode with frozen variables.
      last_conv_filters: width of `Conv_1` before `alpha` (1280; 256 in the OD API's depthwise
        FPN variant).
      name: model name.

    Returns:
      A functional `keras.Model`: float [B, H, W, 3] in [-1, 1] -> `out_relu`
      [B, ceil(H/32), ceil(W/32), C].
    """
    if depth_multiplier <= 0:
        raise ValueError(f"depth_multiplier must be > 0, got {depth_multiplier}.")
    params = conv_hyperparams or DEFAULT_HYPERPARAMS
    if params.batch_norm is None:
        raise ValueError("MobileNet v2 needs batch norm: conv_hyperparams.batch_norm is None.")
    alpha = depth_multiplier

    def conv(x, filters: int, kernel_size: int, name: str, strides: int = 1):
        return keras.layers.Conv2D(
            filters, kernel_size, strides=strides, padding="same", name=name,
            **params.conv_kwargs(use_bias=False))(x)

    def bn(x, name: str):
        return params.make_batch_norm(name, freeze=freeze_batchnorm)(x)

    inputs = keras.Input(shape=(None, None, 3), name="input_image")
    x = conv(inputs, max(make_divisible(32 * alpha, 8), min_depth), 3, "Conv1", strides=2)
    x = bn(x, "bn_Conv1")
    x = params.make_activation("Conv1_relu")(x)

    for block_id, (expansion, filters, stride) in enumerate(_BLOCKS):
        prefix = f"block_{block_id}_" if block_id else "expanded_conv_"
        block_input = x
        in_channels = x.shape[-1]
        pointwise = make_divisible(int(filters * alpha), 8)
        out_channels = max(pointwise, min_depth)
        if block_id:
            x = conv(x, expansion * in_channels, 1, f"{prefix}expand")
            x = bn(x, f"{prefix}expand_BN")
            x = params.make_activation(f"{prefix}expand_relu")(x)
        x = keras.layers.DepthwiseConv2D(
            3, strides=stride, padding="same", name=f"{prefix}depthwise",
            **params.depthwise_conv_kwargs(use_bias=False))(x)
        x = bn(x, f"{prefix}depthwise_BN")
        x = params.make_activation(f"{prefix}depthwise_relu")(x)
        x = conv(x, out_channels, 1, f"{prefix}project")
        x = bn(x, f"{prefix}project_BN")
        # The keras.applications rule on the width before min_depth, as the OD API (whose
        # min_depth override acts after Keras decided): at alpha 0.5, min_depth 16 the first
        # block maps 16 -> 16 channels and still has no residual add.
        if in_channels == pointwise and stride == 1:
            x = keras.layers.Add(name=f"{prefix}add")([block_input, x])

    # Keras scales Conv_1 only for alpha > 1; the OD API for alpha < 1 too.
    last = make_divisible(last_conv_filters * alpha, 8) if alpha != 1.0 else last_conv_filters
    x = conv(x, max(last, min_depth), 1, "Conv_1")
    x = bn(x, "Conv_1_bn")
    x = params.make_activation("out_relu")(x)
    return keras.Model(inputs, x, name=name)
