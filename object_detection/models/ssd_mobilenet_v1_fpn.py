"""SSD MobileNet v1 FPN feature extractor.

OD API `ssd_mobilenet_v1_fpn_keras_feature_extractor.py` semantics: C2..C5 are `conv_pw_3_relu`,
`conv_pw_5_relu`, `conv_pw_11_relu` and `conv_pw_13_relu` (its Conv2d_{3,5,11,13}_pointwise), an
FPN over min_level..min(max_level, 5) and stride-2 conv blocks up to max_level (see
`feature_extractor.SSDFpnFeatureExtractor`). With `use_depthwise` the FPN smoothing and coarse
convs are separable and the last two pointwise convs of the backbone get 512 and 256 channels
(OD API `_create_modified_mobilenet_config`). Inputs are scaled to [-1, 1].
"""
from __future__ import annotations

import keras
import tensorflow as tf

from object_detection.models import feature_extractor
from object_detection.models import mobilenet_v1


class SSDMobileNetV1FpnFeatureExtractor(feature_extractor.SSDFpnFeatureExtractor):
    """MobileNet v1 + FPN; output levels min_level..max_level of `feature_depth`."""

    def __init__(self, *, name: str = "MobilenetV1_FPN", **kwargs):
        """Constructor; arguments as in `feature_extractor.SSDFeatureExtractor`."""
        super().__init__(name=name, **kwargs)

    def _build_backbone(self) -> tuple[keras.Model, list[str]]:
        model = mobilenet_v1.mobilenet_v1(
            depth_multiplier=self.depth_multiplier, min_depth=self.min_depth,
            conv_hyperparams=self.backbone_hyperparams,
            freeze_batchnorm=self.backbone_freeze_batchnorm,
            filter_overrides=(
                mobilenet_v1.DEPTHWISE_FPN_FILTER_OVERRIDES if self.use_depthwise else None))
        return model, list(mobilenet_v1.OUTPUT_LAYER_NAMES)

    def _keras_application(self, path: str) -> tuple[keras.Model, tuple[str, ...]]:
        return keras.applications.MobileNet(
            include_top=False, weights=path, alpha=self.depth_multiplier,
            input_shape=(224, 224, 3)), ()

    def preprocess(self, images: tf.Tensor) -> tf.Tensor:
        """float [B, H, W, 3] in 0..255 -> [-1, 1]."""
        return (2.0 / 255.0) * tf.convert_to_tensor(images) - 1.0
