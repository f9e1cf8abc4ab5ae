"""Weight-shared convolutional box predictor (RetinaNet head, https://arxiv.org/abs/1708.02002).

OD API `WeightSharedConvolutionalBoxPredictor` (Keras) semantics. For every level l:

    box_tower_l   = [act(BN_{i,l}(conv_i(.)))  for i < num_layers_before_predictor](F_l)
    class_tower_l = the same with its own convs (or box_tower_l with share_prediction_tower)
    box_l   = BoxPredictor(box_tower_l)                      # [B, H_l, W_l, A * 4]
    class_l = ClassPredictor(dropout(class_tower_l))         # [B, H_l, W_l, A * K]

The convolutions (tower convs and the two predictor convs) are SHARED by all levels: one set of
kernels whatever the number of levels. Each level has its OWN batch normalization layers
(`..._bn_l{level}`), because activation statistics differ between levels; this is what the OD
API and Model Garden do. All levels must therefore have the same channel count.

The class predictor's bias starts at `class_prediction_bias_init`; RetinaNet configs use
-4.6 = -log((1 - 0.01) / 0.01), so that sigmoid(logit) = 0.01 (the prior probability of an object)
at initialization and the focal loss is not swamped by the background at the first steps.

Outputs are flattened level by level (in `levels` order), then row, column and anchor within the
location (the anchor generator's order), and cast to float32: under a mixed precision policy the
convs run in the compute dtype and the head outputs, as everything after them, are float32.

Differences from the OD API: the tower activation comes from `conv_hyperparams` (the OD API's
Keras predictor hard-codes ReLU6, which SSD320 configs use anyway); a tower conv has a bias exactly
when no batch norm follows it (or `force_use_bias`); feature maps with different channel counts
are rejected instead of getting extra projection layers.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import keras
import tensorflow as tf

from object_detection.core import standard_fields as fields
from object_detection.models import hyperparams as hp

BOX_CODE_SIZE = 4


class WeightSharedConvolutionalBoxPredictor(keras.layers.Layer):
    """RetinaNet-style predictor: conv weights shared across levels, batch norm per level."""

    def __init__(
        self,
        *,
        num_classes: int,
        num_anchors_per_location: int,
        depth: int,
        num_layers_before_predictor: int,
        kernel_size: int = 3,
        class_prediction_bias_init: float = 0.0,
        conv_hyperparams: hp.ConvHyperparams,
        freeze_batchnorm: bool = False,
        levels: Sequence[int],
        use_dropout: bool = False,
        dropout_keep_prob: float = 0.8,
        share_prediction_tower: bool = False,
        apply_batch_norm: bool = True,
        use_depthwise: bool = False,
        apply_conv_hyperparams_to_heads: bool = True,
        apply_conv_hyperparams_pointwise: bool = True,
        box_code_size: int = BOX_CODE_SIZE,
        name: str = "WeightSharedConvolutionalBoxPredictor",
        **kwargs,
    ):
        """Constructor.

        Args:
          num_classes: K, the class output width (includes background if the model encodes
            it; `add_background_class` is the caller's business).
          num_anchors_per_location: A, anchors per grid cell (the same on every level).
          depth: channels of the tower convs.
          num_layers_before_predictor: tower convs per head (0 is allowed).
          kernel_size: kernel size of tower and predictor convs.
          class_prediction_bias_init: initial class logit bias; -4.6 gives sigmoid 0.01.
          conv_hyperparams: initializer, regularizer, batch norm and activation of all convs.
          freeze_batchnorm: freeze every batch norm of the towers.
          levels: pyramid levels the predictor is called on, finest first.
          use_dropout: dropout before the class predictor conv (training only).
          dropout_keep_prob: keep probability of that dropout.
          share_prediction_tower: one tower feeds both predictor convs.
          apply_batch_norm: batch norm in the towers (when `conv_hyperparams.batch_norm` is set).
          use_depthwise: separable convs in towers and predictors.
          apply_conv_hyperparams_to_heads: with `use_depthwise`, the two predictor convs take
            their initializers and regularizers from `conv_hyperparams`; False leaves Keras'
            defaults (glorot_uniform, no regularizer), as the OD API does by default.
          apply_conv_hyperparams_pointwise: with `use_depthwise`, the tower convs' pointwise
            kernels take them too; False: only the depthwise kernels (the OD API default).
            The builder passes the config's values (both false unless set); the defaults here
            keep every kernel on `conv_hyperparams`.
          box_code_size: box code length (4 for [ty, tx, th, tw]).
          name: layer name.
        """
        super().__init__(name=name, **kwargs)
        if not isinstance(conv_hyperparams, hp.ConvHyperparams):
            raise TypeError(
                f"conv_hyperparams must be a ConvHyperparams, got {type(conv_hyperparams)}.")
        for arg, value, low in (("num_classes", num_classes, 1),
                                ("num_anchors_per_location", num_anchors_per_location, 1),
                                ("depth", depth, 1),
                                ("num_layers_before_predictor", num_layers_before_predictor, 0),
                                ("kernel_size", kernel_size, 1)):
            if int(value) != value or value < low:
                raise ValueError(f"{arg} must be an integer >= {low}, got {value!r}.")
        if not 0.0 < dropout_keep_prob <= 1.0:
            raise ValueError(f"dropout_keep_prob must be in (0, 1], got {dropout_keep_prob}.")
        levels = tuple(int(level) for level in levels)
        if not levels or len(set(levels)) != len(levels):
            raise ValueError(f"levels must be non-empty and distinct, got {levels}.")
        if use_depthwise and kernel_size == 1:
            raise ValueError("use_depthwise needs kernel_size > 1.")
        self.num_classes = int(num_classes)
        self.num_anchors_per_location = int(num_anchors_per_location)
        self.box_code_size = int(box_code_size)
        self.levels = levels
        self.share_prediction_tower = bool(share_prediction_tower)
        self._apply_batch_norm = bool(apply_batch_norm) and conv_hyperparams.use_batch_norm
        use_bias = conv_hyperparams.force_use_bias or not self._apply_batch_norm

        def conv(filters: int, layer_name: str, conv_use_bias: bool, head: bool = False,
                 **extra):
            if use_depthwise:
                kwargs = conv_hyperparams.separable_conv_kwargs(use_bias=conv_use_bias)
                # OD API: a head's separable conv keeps Keras' defaults unless
                # apply_conv_hyperparams_to_heads; a tower's, its pointwise kernel unless
                # apply_conv_hyperparams_pointwise.
                if head and not apply_conv_hyperparams_to_heads:
                    keras_defaults = ("depthwise", "pointwise")
                elif not head and not apply_conv_hyperparams_pointwise:
                    keras_defaults = ("pointwise",)
                else:
                    keras_defaults = ()
                for kernel in keras_defaults:
                    kwargs[f"{kernel}_initializer"] = "glorot_uniform"
                    kwargs[f"{kernel}_regularizer"] = None
                return keras.layers.SeparableConv2D(
                    filters, kernel_size, padding="same", depth_multiplier=1, name=layer_name,
                    **kwargs, **extra)
            return keras.layers.Conv2D(
                filters, kernel_size, padding="same", name=layer_name,
                **conv_hyperparams.conv_kwargs(use_bias=conv_use_bias), **extra)

        def tower(prefix: str) -> tuple[list, dict[int, list]]:
            convs = [conv(depth, f"{prefix}_conv_{i}", use_bias)
                     for i in range(num_layers_before_predictor)]
            # One normalization (and activation) per level and per conv: not shared.
            per_level = {
                level: [(conv_hyperparams.make_batch_norm(
                             f"{prefix}_conv_{i}_bn_l{level}", freeze=freeze_batchnorm)
                         if self._apply_batch_norm else None,
                         conv_hyperparams.make_activation(f"{prefix}_conv_{i}_act_l{level}"))
                        for i in range(num_layers_before_predictor)]
                for level in levels
            }
            return convs, per_level

        if self.share_prediction_tower:
            self._box_tower = tower("prediction_tower")
            self._class_tower = None
        else:
            self._box_tower = tower("box_tower")
            self._class_tower = tower("class_tower")
        self._box_predictor = conv(
            self.num_anchors_per_location * self.box_code_size, "box_predictor", True,
            head=True)
        self._dropout = keras.layers.Dropout(1.0 - dropout_keep_prob) if use_dropout else None
        # Bias init -4.6 == -log((1 - 0.01) / 0.01): initial sigmoid 0.01.
        self._class_predictor = conv(
            self.num_anchors_per_location * self.num_classes, "class_predictor", True,
            head=True, bias_initializer=keras.initializers.Constant(class_prediction_bias_init))

    def _check_levels(self, shapes: Mapping[int, Sequence]) -> int:
        """Validates the per-level inputs; returns their common channel count."""
        missing = [level for level in self.levels if level not in shapes]
        if missing:
            raise ValueError(
                f"{self.name}: feature maps for levels {missing} are missing; got "
                f"{sorted(shapes)}, expected {list(self.levels)}.")
        channels = {level: shapes[level][-1] for level in self.levels}
        if len(set(channels.values())) > 1 or None in channels.values():
            raise ValueError(
                f"{self.name}: all feature maps must have the same, known channel count to "
                f"share weights, got {channels}.")
        return channels[self.levels[0]]

    def build(self, input_shape: Mapping[int, Sequence]):
        """Creates the shared convs and the per-level batch norms for C input channels."""
        channels = self._check_levels(input_shape)
        tower_out = channels
        for tower in (self._box_tower, self._class_tower):
            if tower is None:
                continue
            convs, per_level = tower
            depth_in = channels
            for i, conv in enumerate(convs):
                conv.build((None, None, None, depth_in))
                depth_in = conv.filters
                for level in self.levels:
                    norm, activation = per_level[level][i]
                    if norm is not None:
                        norm.build((None, None, None, depth_in))
                    activation.build((None, None, None, depth_in))
            tower_out = depth_in
        self._box_predictor.build((None, None, None, tower_out))
        self._class_predictor.build((None, None, None, tower_out))
        self.built = True

    def _apply_tower(self, tower, level: int, features: tf.Tensor, training) -> tf.Tensor:
        convs, per_level = tower
        for conv, (norm, activation) in zip(convs, per_level[level]):
            if hp.foldable(conv, norm, training):  # frozen batch norm: one conv
                features = hp.folded_conv(conv, norm, features)
            else:
                features = conv(features)
                if norm is not None:
                    features = norm(features, training=training)
            features = activation(features)
        return features

    def call(self, features: Mapping[int, tf.Tensor], training=None) -> dict[str, tf.Tensor]:
        """Predicts box encodings and class logits for every anchor.

        Args:
          features: {level: float [B, H_l, W_l, C]} for every level of `levels` (same C).
          training: batch norm and dropout mode.

        Returns:
          box_encodings: float32 [B, A, box_code_size], A = sum_l H_l * W_l * anchors/location.
          class_predictions_with_background: float32 [B, A, K] logits.

        Raises:
          ValueError: a level is missing or channel counts differ.
        """
        self._check_levels({level: feature.shape for level, feature in features.items()})
        box_encodings, class_predictions = [], []
        for level in self.levels:
            feature = features[level]
            batch = tf.shape(feature)[0]
            box_tower = self._apply_tower(self._box_tower, level, feature, training)
            class_tower = (box_tower if self._class_tower is None
                           else self._apply_tower(self._class_tower, level, feature, training))
            boxes = self._box_predictor(box_tower)  # [B, H_l, W_l, A_l * 4]
            if self._dropout is not None:
                class_tower = self._dropout(class_tower, training=training)
            logits = self._class_predictor(class_tower)  # [B, H_l, W_l, A_l * K]
            boxes = tf.reshape(boxes, [batch, -1, self.box_code_size])  # [B, H_l*W_l*A_l, 4]
            logits = tf.reshape(logits, [batch, -1, self.num_classes])  # [B, H_l*W_l*A_l, K]
            box_encodings.append(tf.cast(boxes, tf.float32))
            class_predictions.append(tf.cast(logits, tf.float32))
        return {
            fields.PredictionFields.box_encodings: tf.concat(box_encodings, axis=1),
            fields.PredictionFields.class_predictions_with_background:
                tf.concat(class_predictions, axis=1),
        }
