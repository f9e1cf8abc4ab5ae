"""Base classes of the SSD feature extractors: image -> multi-level feature maps.

Contract (every extractor):
- `preprocess(images)` maps float [B, H, W, 3] RGB pixel values in 0..255 to what the backbone
  expects (mean subtraction, scaling);
- `call(preprocessed_images, training)` returns {level: float [B, ceil(H'/2**level),
  ceil(W'/2**level), feature_depth]} for level = min_level..max_level, in that order, where H', W'
  are the input sides rounded up to a multiple of `pad_to_multiple` (1: unchanged);
- `feature_depth = max(int(additional_layer_depth * depth_multiplier), min_depth)` for every
  level, as in the OD API's FPN extractors;
- `freeze_batchnorm` freezes the statistics of every batch norm (backbone and added layers):
  they normalize with their moving statistics and never update them. That is the OD API TF2
  meaning. The TF1 OD API (`ODAPI_LAYOUT = "tf1"`) sets slim's batch norm mode from an outer
  scope that the `conv_hyperparams` scope overrides: there `freeze_batchnorm` reaches only the
  layers built without `conv_hyperparams` (a backbone without
  `override_base_feature_extractor_hyperparams`); the rest follow `batch_norm.train`.

`SSDFpnFeatureExtractor` implements that for any backbone exposing C2..C5 (strides 4..32): an FPN
top-down pathway over levels min_level..min(max_level, 5), then stride-2 3x3 conv + BN +
activation blocks on the previous level for levels 6..max_level (OD API semantics,
`ssd_*_fpn_keras_feature_extractor.py`).
"""
from __future__ import annotations

import abc

import keras
import tensorflow as tf

from object_detection.models import feature_map_generators
from object_detection.models import hyperparams as hp
from object_detection.models import weight_loading

BACKBONE_LEVELS = (2, 3, 4, 5)  # C2..C5 of every supported backbone


class SSDFeatureExtractor(keras.layers.Layer, abc.ABC):
    """Abstract SSD feature extractor (see the module docstring for the contract)."""

    def __init__(
        self,
        *,
        conv_hyperparams: hp.ConvHyperparams,
        depth_multiplier: float = 1.0,
        min_depth: int = 16,
        freeze_batchnorm: bool = False,
        min_level: int = 3,
        max_level: int = 7,
        additional_layer_depth: int = 256,
        pad_to_multiple: int = 1,
        use_explicit_padding: bool = False,
        use_depthwise: bool = False,
        override_base_feature_extractor_hyperparams: bool = False,
        name: str | None = None,
        **kwargs,
    ):
        """Constructor.

        Args:
          depth_multiplier: scales the channel counts of the backbone and of the added layers.
          min_depth: lower bound of every scaled channel count.
          conv_hyperparams: hyperparameters of the layers added on top of the backbone (and of
            the backbone too with `override_base_feature_extractor_hyperparams`).
          freeze_batchnorm: freeze every batch norm.
          min_level: finest output level (stride 2**min_level).
          max_level: coarsest output level.
          additional_layer_depth: channels of every output level before `depth_multiplier`.
          pad_to_multiple: zero-pad the input's bottom and right up to a multiple of this.
          use_explicit_padding: OD API flag; see the subclasses.
          use_depthwise: OD API flag; see the subclasses.
          override_base_feature_extractor_hyperparams: build the backbone with
            `conv_hyperparams` instead of its own defaults.
          name: layer name.
        """
        super().__init__(name=name, **kwargs)
        if not isinstance(conv_hyperparams, hp.ConvHyperparams):
            raise TypeError(
                f"conv_hyperparams must be a ConvHyperparams, got {type(conv_hyperparams)}.")
        if depth_multiplier <= 0:
            raise ValueError(f"depth_multiplier must be > 0, got {depth_multiplier}.")
        if min_depth < 1 or additional_layer_depth < 1:
            raise ValueError(
                f"min_depth ({min_depth}) and additional_layer_depth ({additional_layer_depth}) "
                "must be >= 1.")
        if max_level < min_level:
            raise ValueError(f"need min_level ({min_level}) <= max_level ({max_level}).")
        if pad_to_multiple < 1:
            raise ValueError(f"pad_to_multiple must be >= 1, got {pad_to_multiple}.")
        self.depth_multiplier = float(depth_multiplier)
        self.min_depth = int(min_depth)
        self.conv_hyperparams = conv_hyperparams
        self.freeze_batchnorm = bool(freeze_batchnorm)
        self.min_level = int(min_level)
        self.max_level = int(max_level)
        self.additional_layer_depth = int(additional_layer_depth)
        self.pad_to_multiple = int(pad_to_multiple)
        self.use_explicit_padding = bool(use_explicit_padding)
        self.use_depthwise = bool(use_depthwise)
        self.override_base_feature_extractor_hyperparams = bool(
            override_base_feature_extractor_hyperparams)

    # Which OD API network the extractor computes, and so which checkpoints map onto it: "tf2"
    # (the `_keras` extractors: object-based TF2 checkpoints, Keras `.h5` backbones) or "tf1"
    # (the TF-slim extractors: name-based TF1 checkpoints and TF-slim classifiers).
    ODAPI_LAYOUT = "tf2"

    @property
    def added_layers_freeze_batchnorm(self) -> bool:
        """Whether the batch norms of the layers built with `conv_hyperparams` are frozen."""
        return self.freeze_batchnorm if self.ODAPI_LAYOUT == "tf2" else False

    @property
    def backbone_freeze_batchnorm(self) -> bool:
        """Whether the backbone's batch norms are frozen (see the module docstring)."""
        if self.ODAPI_LAYOUT == "tf1" and self.override_base_feature_extractor_hyperparams:
            return False
        return self.freeze_batchnorm

    @property
    def levels(self) -> tuple[int, ...]:
        """Output levels, finest first."""
        return tuple(range(self.min_level, self.max_level + 1))

    @property
    def feature_depth(self) -> int:
        """Channels of every output level."""
        return self.depth_fn(self.additional_layer_depth)

    def depth_fn(self, depth: int) -> int:
        """OD API `depth_fn`: max(int(depth * depth_multiplier), min_depth)."""
        return max(int(depth * self.depth_multiplier), self.min_depth)

    @abc.abstractmethod
    def preprocess(self, images: tf.Tensor) -> tf.Tensor:
        """Maps float [B, H, W, 3] RGB in 0..255 to the backbone's input range."""

    def pad(self, images: tf.Tensor) -> tf.Tensor:
        """Zero-pads bottom and right so that H and W are multiples of `pad_to_multiple`."""
        if self.pad_to_multiple == 1:
            return images
        multiple = self.pad_to_multiple
        height, width = images.shape[1], images.shape[2]
        if height is None or width is None:
            shape = tf.shape(images)
            height, width = shape[1], shape[2]
        pad_h = (-height) % multiple
        pad_w = (-width) % multiple
        return tf.pad(images, [[0, 0], [0, pad_h], [0, pad_w], [0, 0]])


class SSDFpnFeatureExtractor(SSDFeatureExtractor):
    """FPN extractor over a backbone with C2..C5 (see the module docstring).

    Subclasses implement `preprocess` and `_build_backbone`, which returns the full backbone
    model and the names of its C2..C5 layers. The backbone is built in the constructor (its
    functional graph needs no data); the added layers are built on the first call.

    With `ODAPI_LAYOUT = "tf1"` the FPN passes the unsmoothed sums down its top-down pathway
    (`FpnTopDownFeatureMaps`), as the TF1 OD API's does.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        if self.min_level not in BACKBONE_LEVELS:
            raise ValueError(
                f"min_level must be one of {list(BACKBONE_LEVELS)} (a backbone level), got "
                f"{self.min_level}.")
        if self.use_explicit_padding:
            raise NotImplementedError(
                "use_explicit_padding is not implemented: convolutions use 'same' padding and "
                "the FPN crops upsampled maps, which gives ceil(H / 2**level) grids for any "
                "input size; set use_explicit_padding: false.")
        self.base_max_level = min(self.max_level, BACKBONE_LEVELS[-1])
        base_levels = tuple(range(self.min_level, self.base_max_level + 1))
        full_backbone, output_names = self._build_backbone()
        outputs = [full_backbone.get_layer(output_names[level - BACKBONE_LEVELS[0]]).output
                   for level in base_levels]
        self._base_levels = base_levels
        # Only the layers up to the last map used; same layer objects and names as the full model.
        self.backbone = keras.Model(full_backbone.input, outputs, name=full_backbone.name)
        depth = self.feature_depth
        self.fpn = feature_map_generators.FpnTopDownFeatureMaps(
            levels=base_levels, depth=depth, conv_hyperparams=self.conv_hyperparams,
            freeze_batchnorm=self.added_layers_freeze_batchnorm,
            use_depthwise=self.use_depthwise, smoothed_top_down=self.ODAPI_LAYOUT == "tf2", name="FeatureMaps")
        self._coarse_blocks = {
            level: feature_map_generators.conv_block(
                depth=depth, kernel_size=3, strides=2, conv_hyperparams=self.conv_hyperparams,
                freeze_batchnorm=self.added_layers_freeze_batchnorm, use_depthwise=self.use_depthwise,
                name=f"bottom_up_l{level}")
            for level in range(self.base_max_level + 1, self.max_level + 1)
        }

    @property
    def backbone_hyperparams(self) -> hp.ConvHyperparams | None:
        """Hyperparams handed to the backbone: None means the backbone's own defaults."""
        if self.override_base_feature_extractor_hyperparams:
            return self.conv_hyperparams
        return None

    @abc.abstractmethod
    def _build_backbone(self) -> tuple[keras.Model, list[str]]:
        """Returns (full backbone model, names of its C2, C3, C4, C5 layers)."""

    def load_keras_application_weights(self, path: str) -> weight_loading.WeightLoadReport:
        """Copies a `keras.applications` ImageNet weights file (`.h5`) into the backbone.

        The file is read by the matching `keras.applications` model (nothing is downloaded)
        and copied by layer name with the adaptations of `weight_loading` (the report says
        which were made).
        """
        reference, reverse_input_channels = self._keras_application(path)
        return weight_loading.load_keras_application_weights(
            self.backbone, reference, reverse_input_channels=reverse_input_channels)

    def _keras_application(self, path: str) -> tuple[keras.Model, tuple[str, ...]]:
        """(the keras.applications model loaded from `path`, convs to reverse the input
        channels of). Subclasses with a keras.applications counterpart override this."""
        raise ValueError(f"{type(self).__name__} has no keras.applications counterpart to "
                         f"read {path!r} with.")

    def build(self, input_shape):
        """Creates the FPN and coarse-level variables (the backbone is built already)."""
        self.fpn.build({level: tuple(output.shape)
                        for level, output in zip(self._base_levels, self.backbone.outputs)})
        for block in self._coarse_blocks.values():
            feature_map_generators.build_block(block, self.feature_depth)
        self.built = True

    def call(self, images: tf.Tensor, training=None) -> dict[int, tf.Tensor]:
        """Computes the feature pyramid.

        Args:
          images: float [B, H, W, 3], already `preprocess`ed.
          training: batch norm mode (frozen batch norms ignore it).

        Returns:
          {level: float [B, ceil(H'/2**level), ceil(W'/2**level), feature_depth]} for
          min_level..max_level (H', W': sides padded to `pad_to_multiple`).
        """
        images = self.pad(images)
        maps = self.backbone(images, training=training)
        if not isinstance(maps, (list, tuple)):
            maps = [maps]
        outputs = self.fpn(dict(zip(self._base_levels, maps)), training=training)
        outputs = dict(outputs)
        last = outputs[self.base_max_level]
        for level, block in self._coarse_blocks.items():
            for layer in block:
                last = layer(last, training=training)
            outputs[level] = last
        return {level: outputs[level] for level in self.levels}
