"""MobileNet v1 backbone, named as `keras.applications.MobileNet`.

Architecture (Howard et al. 2017): a 3x3/2 conv `conv1`, then 13 depthwise separable blocks
(`conv_dw_i` 3x3 depthwise -> BN -> ReLU6 -> `conv_pw_i` 1x1 -> BN -> ReLU6) with stride 2 at
blocks 2, 4, 6 and 12. Convs have no bias. Layer names (`conv_dw_5`, `conv_pw_5_bn`,
`conv_pw_5_relu`, ...) are those of `keras.applications.MobileNet`, so its ImageNet weights copy in
by name.

Like the OD API's Keras MobileNet, every conv uses 'same' padding (the Keras application pads
stride-2 layers by ((0, 1), (0, 1)) and then uses 'valid'): outputs are identical on even sides,
and a side of n pixels gives ceil(n / 2**l) at stride 2**l for every n.

`depth_multiplier` (Keras' `alpha`) and `min_depth` give the OD API's widths for `conv1` and
every pointwise conv: `max(int(int(c * alpha) * alpha), min_depth)`. Its Keras wrapper applies
`alpha` a second time on top of `keras.applications` (at alpha 0.5, conv_pw_1 has 16 channels,
not 32), so at alpha != 1 Keras ImageNet weights of the same alpha do not fit; at alpha 1 the
widths are those of `keras.applications`.

TF-slim's MobileNet v1 (the OD API TF1 backbone) is the same network with `keras_widths=False`
(alpha applied once); `slim_scope` maps the layer names onto its scopes (`conv1` ->
`Conv2d_0`, `conv_dw_5_bn` -> `Conv2d_5_depthwise/BatchNorm`, `conv_pw_5` ->
`Conv2d_5_pointwise`).
"""
from __future__ import annotations

import re
from typing import Mapping

import keras

from object_detection.models import hyperparams as hp

# (pointwise filters, stride) of blocks 1..13.
_BLOCKS = (
    (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
    (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1),
)

# Outputs the OD API's MobileNet v1 FPN uses for C2..C5 (its Conv2d_{3,5,11,13}_pointwise).
OUTPUT_LAYER_NAMES = ["conv_pw_3_relu", "conv_pw_5_relu", "conv_pw_11_relu", "conv_pw_13_relu"]

# The OD API Keras MobileNet v1 without override: Keras L2(2e-5) (slim 4e-5), truncated normal
# stddev 0.09, ReLU6, batch norm momentum 0.9997, epsilon 1e-3 (that of keras.applications),
# learned scale.
DEFAULT_HYPERPARAMS = hp.ConvHyperparams(
    activation="RELU_6",
    l2_weight=4e-5,
    initializer={"kind": "truncated_normal", "mean": 0.0, "stddev": 0.09},
    batch_norm=hp.BatchNormParams(decay=0.9997, epsilon=1e-3, center=True, scale=True),
)

# The OD API's "detection friendly" variant used with use_depthwise FPNs: the last two pointwise
# convs get these (unscaled) widths.
DEPTHWISE_FPN_FILTER_OVERRIDES = {"conv_pw_12": 512, "conv_pw_13": 256}


def mobilenet_v1(
    *,
    depth_multiplier: float = 1.0,
    min_depth: int = 8,
    conv_hyperparams: hp.ConvHyperparams | None = None,
    freeze_batchnorm: bool = False,
    filter_overrides: Mapping[str, int] | None = None,
    keras_widths: bool = True,
    name: str = "mobilenet_v1",
) -> keras.Model:
    """Builds MobileNet v1 without its classification top.

    Args:
      depth_multiplier: width multiplier `alpha` (> 0).
      min_depth: lower bound of every scaled channel count.
      conv_hyperparams: replaces `DEFAULT_HYPERPARAMS` (initializer, regularizer, batch norm,
        activation) of every layer; its `batch_norm` must not be None.
      freeze_batchnorm: every batch norm runs in inference mode with frozen variables.
      filter_overrides: {pointwise conv name: filters} replacing the width before
        `depth_multiplier` applies (OD API `conv_defs`), e.g. `DEPTHWISE_FPN_FILTER_OVERRIDES`.
      keras_widths: the OD API TF2 widths (alpha applied twice, see the module docstring);
        False gives TF-slim's (the TF1 OD API's) `max(int(c * alpha), min_depth)`.
      name: model name.

    Returns:
      A functional `keras.Model`: float [B, H, W, 3] in [-1, 1] -> `conv_pw_13_relu`
      [B, ceil(H/32), ceil(W/32), C].
    """
    if depth_multiplier <= 0:
        raise ValueError(f"depth_multiplier must be > 0, got {depth_multiplier}.")
    params = conv_hyperparams or DEFAULT_HYPERPARAMS
    if params.batch_norm is None:
        raise ValueError("MobileNet v1 needs batch norm: conv_hyperparams.batch_norm is None.")
    overrides = dict(filter_overrides or {})

    def depth(filters: int, name: str | None = None) -> int:
        # The OD API's Keras MobileNet v1: keras.applications scales by alpha, then the OD API's
        # layer override scales the result by alpha again (a conv_defs override replaces the
        # Keras width first, so it is scaled once), then applies min_depth.
        if name in overrides:
            filters = overrides[name]
        elif keras_widths:
            filters = int(filters * depth_multiplier)
        return max(int(filters * depth_multiplier), min_depth)

    def bn(layer_name: str) -> keras.layers.Layer:
        return params.make_batch_norm(layer_name, freeze=freeze_batchnorm)

    inputs = keras.Input(shape=(None, None, 3), name="input_image")
    x = keras.layers.Conv2D(
        depth(32), 3, strides=2, padding="same", name="conv1",
        **params.conv_kwargs(use_bias=False))(inputs)
    x = bn("conv1_bn")(x)
    x = params.make_activation("conv1_relu")(x)
    for block_id, (filters, stride) in enumerate(_BLOCKS, start=1):
        x = keras.layers.DepthwiseConv2D(
            3, strides=stride, padding="same", name=f"conv_dw_{block_id}",
            **params.depthwise_conv_kwargs(use_bias=False))(x)
        x = bn(f"conv_dw_{block_id}_bn")(x)
        x = params.make_activation(f"conv_dw_{block_id}_relu")(x)
        pw_name = f"conv_pw_{block_id}"
        x = keras.layers.Conv2D(
            depth(filters, pw_name), 1, padding="same", name=pw_name,
            **params.conv_kwargs(use_bias=False))(x)
        x = bn(f"{pw_name}_bn")(x)
        x = params.make_activation(f"{pw_name}_relu")(x)
    return keras.Model(inputs, x, name=name)


def slim_scope(layer_name: str) -> str:
    """The TF-slim scope (below `MobilenetV1/`) of a layer with variables of this backbone."""
    match = re.fullmatch(r"(?:conv1|conv_(dw|pw)_(\d+))(_bn)?", layer_name)
    if not match:
        raise ValueError(f"{layer_name!r} is not a layer with variables of MobileNet v1.")
    kind, block, norm = match.groups()
    scope = "Conv2d_0" if kind is None else \
        f"Conv2d_{block}_{'depthwise' if kind == 'dw' else 'pointwise'}"
    return scope + ("/BatchNorm" if norm else "")
