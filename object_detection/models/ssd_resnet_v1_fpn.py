"""SSD ResNet v1 FPN feature extractors (RetinaNet backbone; SSD320 v1.2 uses ResNet50, P3-P7).

`SSDResNetV1FpnFeatureExtractor` (the `_keras` type names) has the OD API TF2
`ssd_resnet_v1_fpn_keras_feature_extractor.py` semantics: C2..C5 are the last block of each
ResNet stage (`conv2_block3_out`, `conv3_block4_out`, `conv4_block6_out`, `conv5_block3_out` for
ResNet50; `conv4_block23_out` for 101; `conv3_block8_out`, `conv4_block36_out` for 152), an FPN
over min_level..min(max_level, 5) and stride-2 conv blocks up to max_level (see
`feature_extractor.SSDFpnFeatureExtractor`).

Preprocessing is the OD API's: the ImageNet means [123.68, 116.779, 103.939] subtracted from the
RGB channels, no channel flip and no scaling. ImageNet weights of
`keras.applications.ResNet50/101/152` (trained on BGR input) are adapted to it when they are
loaded (`weight_loading.load_keras_application_weights` reverses conv1's input channels).

`SSDResNetV1SlimFpnFeatureExtractor` (the TF1 type names `ssd_resnet50_v1_fpn`, ..., the seed's)
has the OD API TF1 `ssd_resnet_v1_fpn_feature_extractor.py` semantics: TF-slim's ResNet v1
(`resnet_v1_slim`, end points block1..block4), the TF1 FPN (`fpn_top_down_feature_maps`: the
unsmoothed sums go down the top-down pathway) and stride-2 `bottom_up_block` levels above it;
the same preprocessing. Its ImageNet weights are TF-slim's `resnet_v1_{50,101,152}.ckpt`.
"""
from __future__ import annotations

import dataclasses

import keras
import tensorflow as tf

from object_detection.models import feature_extractor
from object_detection.models import hyperparams as hp
from object_detection.models import resnet_v1
from object_detection.models import resnet_v1_slim

IMAGENET_RGB_MEANS = (123.68, 116.779, 103.939)


class SSDResNetV1FpnFeatureExtractor(feature_extractor.SSDFpnFeatureExtractor):
    """ResNet v1 (50/101/152) + FPN; output levels min_level..max_level of `feature_depth`."""

    def __init__(self, depth: int = 50, *, use_depthwise: bool = False,
                 name: str | None = None, **kwargs):
        """Constructor.

        Args:
          depth: ResNet depth, 50, 101 or 152.
          use_depthwise: not supported with ResNet (the OD API rejects it too).
          name: layer name (default `ResNet{depth}V1_FPN`).
          **kwargs: see `feature_extractor.SSDFeatureExtractor`. Without
            `override_base_feature_extractor_hyperparams` the backbone uses
            `resnet_v1.DEFAULT_HYPERPARAMS` (the OD API's: batch norm epsilon 1e-5, momentum 0.997).
        """
        if depth not in resnet_v1.RESNET_V1_BLOCKS:
            raise ValueError(
                f"ResNet v1 depth {depth!r} is not supported; expected one of "
                f"{sorted(resnet_v1.RESNET_V1_BLOCKS)}.")
        if use_depthwise:
            raise NotImplementedError(
                "use_depthwise is not implemented for the ResNet v1 FPN extractor (the OD API "
                "rejects it as well); set use_depthwise: false.")
        self.resnet_depth = int(depth)
        super().__init__(name=name or f"ResNet{depth}V1_FPN", **kwargs)

    # The backbone: its builder and the names of its C2..C5 layers (the TF1 subclass swaps both).
    _resnet = staticmethod(resnet_v1.resnet_v1)
    _output_layer_names = staticmethod(resnet_v1.output_layer_names)

    def _build_backbone(self) -> tuple[keras.Model, list[str]]:
        model = self._resnet(
            self.resnet_depth, depth_multiplier=self.depth_multiplier, min_depth=self.min_depth,
            conv_hyperparams=self.backbone_hyperparams,
            freeze_batchnorm=self.backbone_freeze_batchnorm)
        return model, self._output_layer_names(self.resnet_depth)

    def _keras_application(self, path: str) -> tuple[keras.Model, tuple[str, ...]]:
        make = {50: keras.applications.ResNet50, 101: keras.applications.ResNet101,
                152: keras.applications.ResNet152}[self.resnet_depth]
        # keras.applications' ResNets were trained on BGR ('caffe' preprocessing).
        return make(include_top=False, weights=path), ("conv1_conv",)

    def preprocess(self, images: tf.Tensor) -> tf.Tensor:
        """float [B, H, W, 3] RGB 0..255 -> RGB minus the ImageNet means (OD API)."""
        images = tf.convert_to_tensor(images)
        return images - tf.constant(IMAGENET_RGB_MEANS, dtype=images.dtype)


class SSDResNetV1SlimFpnFeatureExtractor(SSDResNetV1FpnFeatureExtractor):
    """The OD API TF1 ResNet v1 FPN: TF-slim ResNet v1 backbone, TF1 top-down pathway."""

    ODAPI_LAYOUT = "tf1"
    _resnet = staticmethod(resnet_v1_slim.resnet_v1_slim)
    _output_layer_names = staticmethod(resnet_v1_slim.output_layer_names)

    def __init__(self, depth: int = 50, *, name: str | None = None, **kwargs):
        """Constructor; the arguments of `SSDResNetV1FpnFeatureExtractor`. Without
        `override_base_feature_extractor_hyperparams` the backbone uses
        `resnet_v1_slim.DEFAULT_HYPERPARAMS` (slim's `resnet_arg_scope`)."""
        super().__init__(depth, name=name or f"ResNet{depth}V1_FPN_slim", **kwargs)

    @property
    def slim_scope(self) -> str:
        """The backbone's TF-slim scope (`resnet_v1_50`, ...)."""
        return f"resnet_v1_{self.resnet_depth}"

    @property
    def backbone_hyperparams(self) -> hp.ConvHyperparams | None:
        """With the override, the TF1 OD API nests the `conv_hyperparams` scope inside slim's
        `resnet_arg_scope`, whose explicit batch norm parameters (decay 0.997, epsilon 1e-5,
        a learned scale) still win; initializer, regularizer, activation and `center` (and the
        batch norm mode, `train`) come from `conv_hyperparams`."""
        params = super().backbone_hyperparams
        if params is None or params.batch_norm is None:
            return params
        defaults = resnet_v1_slim.DEFAULT_HYPERPARAMS.batch_norm
        return dataclasses.replace(params, batch_norm=dataclasses.replace(
            params.batch_norm, decay=defaults.decay, epsilon=defaults.epsilon,
            scale=defaults.scale))

    @staticmethod
    def backbone_slim_scope(layer_name: str) -> str:
        """The TF-slim scope of a backbone layer, below `slim_scope`."""
        return resnet_v1_slim.slim_scope(layer_name)

    @staticmethod
    def coarse_slim_scope(level: int) -> str:
        """TF1 scope of the stride-2 block that makes `level`: `bottom_up_block{level - 1}`."""
        return f"bottom_up_block{level - 1}"

    def _keras_application(self, path: str) -> tuple[keras.Model, tuple[str, ...]]:
        raise ValueError(
            f"{path!r} is a keras.applications weights file, which fits the TF2 network "
            f"(feature_extractor.type ssd_resnet{self.resnet_depth}_v1_fpn_keras). The TF1 type "
            f"ssd_resnet{self.resnet_depth}_v1_fpn (TF-slim's ResNet) takes TF-slim's "
            f"{self.slim_scope}.ckpt (download_all.sh fetches it) or an OD API TF1 checkpoint.")
