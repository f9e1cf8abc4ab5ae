"""SSD MobileNet v2 FPN feature extractor (also the OD API's "FPNLite" with `use_depthwise`).

OD API `ssd_mobilenet_v2_fpn_keras_feature_extractor.py` semantics: C2..C5 are `block_2_add`,
`block_5_add`, `block_12_add` and `out_relu` (its layer_4, layer_7, layer_14 and layer_19), an FPN
over min_level..min(max_level, 5) and stride-2 conv blocks up to max_level (see
`feature_extractor.SSDFpnFeatureExtractor`). With `use_depthwise` the FPN smoothing and coarse
convs are separable and the backbone's last conv `Conv_1` has 256 channels instead of 1280 (OD API
`_create_modified_mobilenet_config`). Inputs are scaled to [-1, 1].
"""
from __future__ import annotations

import keras
import tensorflow as tf

from object_detection.models import feature_extractor
from object_detection.models import mobilenet_v2


class SSDMobileNetV2FpnFeatureExtractor(feature_extractor.SSDFpnFeatureExtractor):
    """MobileNet v2 + FPN; output levels min_level..max_level of `feature_depth`."""

    def __init__(self, *, name: str = "MobilenetV2_FPN", **kwargs):
        """Constructor; arguments as in `feature_extractor.SSDFeatureExtractor`."""
        super().__init__(name=name, **kwargs)

    def _build_backbone(self) -> tuple[keras.Model, list[str]]:
        model = mobilenet_v2.mobilenet_v2(
            depth_multiplier=self.depth_multiplier, min_depth=self.min_depth,
            conv_hyperparams=self.backbone_hyperparams,
            freeze_batchnorm=self.backbone_freeze_batchnorm,
            last_conv_filters=(
                mobilenet_v2.DEPTHWISE_FPN_LAST_CONV_FILTERS if self.use_depthwise
                else mobilenet_v2.LAST_CONV_FILTERS))
        names = list(mobilenet_v2.OUTPUT_LAYER_NAMES)
        layer_names = {layer.name for layer in model.layers}
        # With an unusual min_depth a block may lose its residual add: take its projection then.
        for i, layer_name in enumerate(names[:3]):
            if layer_name not in layer_names:
                names[i] = layer_name.replace("_add", "_project_BN")
        return model, names

    def _keras_application(self, path: str) -> tuple[keras.Model, tuple[str, ...]]:
        return keras.applications.MobileNetV2(
            include_top=False, weights=path, alpha=self.depth_multiplier,
            input_shape=(224, 224, 3)), ()

    def preprocess(self, images: tf.Tensor) -> tf.Tensor:
        """float [B, H, W, 3] in 0..255 -> [-1, 1]."""
        return (2.0 / 255.0) * tf.convert_to_tensor(images) - 1.0
