"""Feature Pyramid Network top-down pathway (Lin et al. 2017, https://arxiv.org/abs/1612.03144).

Semantics of the OD API's `KerasFpnTopDownFeatureMaps`, keyed by pyramid level instead of block
name. For backbone maps C_l, levels l = min_level..max_level (each C_l has stride 2**l):

    T_max = P_max = proj_max(C_max)                           # 1x1 conv, bias, no BN/activation
    T_l   = up2(P_{l+1})[:H_l, :W_l] + proj_l(C_l)                         for l < max
    P_l   = act(BN(smooth_l(T_l)))

That is the OD API TF2 `KerasFpnTopDownFeatureMaps`, which passes the smoothed map P_{l+1} down.
The TF1 `fpn_top_down_feature_maps` (the seed's network, `smoothed_top_down=False`) passes the
unsmoothed sum instead: T_l = up2(T_{l+1})[:H_l, :W_l] + proj_l(C_l), with the same P_l = act(BN(
smooth_l(T_l))) as outputs.

`up2` is nearest-neighbour 2x upsampling, cropped to the lateral map's size: with 'same' padding
a side of n pixels is ceil(n / 2**l) at level l, and 2 * ceil(m / 2) exceeds m by one when m is
odd (a 100 px input has 7 rows at level 4 and 4 at level 5, which upsample to 8). The coarsest map
gets no smoothing conv, as in the OD API. All outputs have `depth` channels.

`coarse_feature_block` builds the stride-2 3x3 conv + BN + activation blocks that the extractors
stack above the backbone's last level (P6, P7 of RetinaNet).
"""
from __future__ import annotations

from typing import Mapping, Sequence

import keras
import tensorflow as tf

from object_detection.models import hyperparams as hp


def nearest_neighbor_upsampling(features: tf.Tensor, scale: int = 2) -> tf.Tensor:
    """Nearest-neighbour upsampling by reshape and broadcast (no gather; XLA/TPU friendly).

    Columns, then rows, are repeated with tensors of rank 4 at most, which every TFLite kernel
    and the int8 calibrator take (a [B, H, 1, W, 1, C] broadcast is rank 6).

    Args:
      features: [B, H, W, C].
      scale: integer factor.

    Returns:
      [B, H * scale, W * scale, C], each input pixel repeated in a scale x scale square.
    """
    shape = tf.shape(features)
    static = features.shape
    batch = static[0] if static[0] is not None else shape[0]
    height = static[1] if static[1] is not None else shape[1]
    width = static[2] if static[2] is not None else shape[2]
    channels = static[3] if static[3] is not None else shape[3]
    ones = tf.ones([1, 1, scale, 1], dtype=features.dtype)
    columns = tf.reshape(features, [batch * height, width, 1, channels]) * ones
    rows = tf.reshape(columns, [batch, height, 1, width * scale * channels]) * ones
    return tf.reshape(rows, [batch, height * scale, width * scale, channels])


def _crop_to(features: tf.Tensor, reference: tf.Tensor) -> tf.Tensor:
    """Crops [B, H', W', C] to the spatial size of `reference` [B, H, W, C'] (H <= H')."""
    height, width = reference.shape[1], reference.shape[2]
    if height is None or width is None:
        ref_shape = tf.shape(reference)
        height, width = ref_shape[1], ref_shape[2]
    elif features.shape[1] == height and features.shape[2] == width:
        return features
    return features[:, :height, :width, :]


def conv_block(
    *,
    depth: int,
    kernel_size: int,
    strides: int,
    conv_hyperparams: hp.ConvHyperparams,
    freeze_batchnorm: bool,
    use_depthwise: bool,
    name: str,
) -> list[keras.layers.Layer]:
    """[conv ('same' padding), batch norm, activation] as in OD API `create_conv_block`.

    With `use_depthwise` the conv is a `SeparableConv2D` (depth multiplier 1). Apply the layers
    in order, each on the previous one's output (the conv applies a frozen batch norm itself
    in training steps: `hyperparams.fold_batch_norm`).
    """
    if use_depthwise:
        conv = keras.layers.SeparableConv2D(
            depth, kernel_size, strides=strides, padding="same", depth_multiplier=1,
            name=f"{name}_depthwise_conv", **conv_hyperparams.separable_conv_kwargs())
        norm = conv_hyperparams.make_batch_norm(f"{name}_batchnorm", freeze=freeze_batchnorm)
    else:
        conv, norm = conv_hyperparams.make_conv_and_batch_norm(
            depth, kernel_size, strides=strides, padding="same", name=f"{name}_conv",
            bn_name=f"{name}_batchnorm", freeze=freeze_batchnorm)
    return [conv, norm, conv_hyperparams.make_activation(f"{name}_activation")]


def build_block(block: Sequence[keras.layers.Layer], channels: int) -> int:
    """Builds the layers of a `conv_block` for `channels` inputs; returns its output channels."""
    shape = (None, None, None, channels)
    for layer in block:
        layer.build(shape)
        if hasattr(layer, "filters"):  # Conv2D or SeparableConv2D
            shape = (None, None, None, layer.filters)
    return shape[-1]


class FpnTopDownFeatureMaps(keras.layers.Layer):
    """FPN top-down pathway over levels `levels` (see the module docstring for the formula).

    Layers: `projection_l{l}` (1x1 conv with bias, for every level) and, for every level but the
    coarsest, `smoothing_l{l}_conv` (3x3) -> `smoothing_l{l}_batchnorm` ->
    `smoothing_l{l}_activation`.
    """

    def __init__(
        self,
        *,
        levels: Sequence[int],
        depth: int,
        conv_hyperparams: hp.ConvHyperparams,
        freeze_batchnorm: bool = False,
        use_depthwise: bool = False,
        smoothed_top_down: bool = True,
        name: str = "FeatureMaps",
        **kwargs,
    ):
        """Constructor.

        Args:
          levels: consecutive pyramid levels, finest first (e.g. [3, 4, 5]).
          depth: channel count of every output map.
          conv_hyperparams: initializer/regularizer of all convs; BN and activation of the
            smoothing convs.
          freeze_batchnorm: freeze the smoothing batch norms.
          use_depthwise: separable 3x3 smoothing convs.
          smoothed_top_down: pass each level's smoothed output down the pathway (OD API TF2);
            False passes the unsmoothed sum (OD API TF1).
          name: layer name.
        """
        super().__init__(name=name, **kwargs)
        self.smoothed_top_down = bool(smoothed_top_down)
        levels = [int(level) for level in levels]
        if not levels or levels != list(range(levels[0], levels[0] + len(levels))):
            raise ValueError(f"levels must be consecutive and increasing, got {levels}.")
        self.levels = tuple(levels)
        self.depth = int(depth)
        self._projections = {
            level: keras.layers.Conv2D(
                self.depth, 1, padding="same", name=f"projection_l{level}",
                **conv_hyperparams.conv_kwargs(use_bias=True))
            for level in self.levels
        }
        self._smoothing = {
            level: conv_block(
                depth=self.depth, kernel_size=3, strides=1, conv_hyperparams=conv_hyperparams,
                freeze_batchnorm=freeze_batchnorm, use_depthwise=use_depthwise,
                name=f"smoothing_l{level}")
            for level in self.levels[:-1]
        }

    def build(self, input_shape: Mapping[int, Sequence]):
        """Creates the projection and smoothing variables for the per-level channel counts."""
        missing = [level for level in self.levels if level not in input_shape]
        if missing:
            raise ValueError(f"FPN input lacks levels {missing}; got {sorted(input_shape)}.")
        for level in self.levels:
            self._projections[level].build((None, None, None, input_shape[level][-1]))
        for block in self._smoothing.values():
            build_block(block, self.depth)
        self.built = True

    def call(self, features: Mapping[int, tf.Tensor], training=None) -> dict[int, tf.Tensor]:
        """Runs the top-down pathway.

        Args:
          features: {level: float [B, H_l, W_l, C_l]} for every level in `levels`, with
            H_l = ceil(H_{l-1} / 2) (each finer map at most twice as large).
          training: batch norm mode.

        Returns:
          {level: float [B, H_l, W_l, depth]} in `levels` order.
        """
        missing = [level for level in self.levels if level not in features]
        if missing:
            raise ValueError(f"FPN input lacks levels {missing}; got {sorted(features)}.")
        top = self.levels[-1]
        top_down = self._projections[top](features[top])
        outputs = {top: top_down}
        for level in reversed(self.levels[:-1]):
            lateral = self._projections[level](features[level])
            top_down = _crop_to(nearest_neighbor_upsampling(top_down, 2), lateral)
            top_down = top_down + lateral
            smoothed = top_down
            for layer in self._smoothing[level]:
                smoothed = layer(smoothed, training=training)
            outputs[level] = smoothed
            if self.smoothed_top_down:
                top_down = smoothed
        return {level: outputs[level] for level in self.levels}
