"""SSD MobileNet v1 FPN feature extractor.

OD API `ssd_mobilenet_v1_fpn_keras_feature_extractor.py` semantics: C2..C5 are `conv_pw_3_relu`,
`conv_pw_5_relu`, `conv_pw_11_relu` and `conv_pw_13_relu` (its Conv2d_{3,5,11,13}_pointwise), an
FPN over min_level..min(max_level, 5) and stride-2 conv blocks up to max_level (see
`feature_extractor.SSDFpnFeatureExtractor`). With `use_depthwise` the FPN smoothing and coarse
convs are separable and the last two pointwise convs of the backbone get 512 and 256 channels
(OD API `_create_modified_mobilenet_config`). Inputs are scaled to [-1, 1].

`SSDMobileNetV1SlimFpnFeatureExtractor` (the TF1 type name `ssd_mobilenet_v1_fpn`) is the OD API
TF1 `ssd_mobilenet_v1_fpn_feature_extractor.py`: TF-slim's MobileNet v1 (the depth multiplier
applied once), the TF1 FPN (the unsmoothed sums go down its top-down pathway) and the TF1 batch
norm scoping (`feature_extractor`); TF1 checkpoints map by name.
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

    KERAS_WIDTHS = True

    def _build_backbone(self) -> tuple[keras.Model, list[str]]:
        model = mobilenet_v1.mobilenet_v1(
            depth_multiplier=self.depth_multiplier, min_depth=self.min_depth,
            conv_hyperparams=self.backbone_hyperparams,
            freeze_batchnorm=self.backbone_freeze_batchnorm,
            filter_overrides=(
                mobilenet_v1.DEPTHWISE_FPN_FILTER_OVERRIDES if self.use_depthwise else None),
            keras_widths=self.KERAS_WIDTHS)
        return model, list(mobilenet_v1.OUTPUT_LAYER_NAMES)

    def _keras_application(self, path: str) -> tuple[keras.Model, tuple[str, ...]]:
        return keras.applications.MobileNet(
            include_top=False, weights=path, alpha=self.depth_multiplier,
            input_shape=(224, 224, 3)), ()

    def preprocess(self, images: tf.Tensor) -> tf.Tensor:
        """float [B, H, W, 3] in 0..255 -> [-1, 1]."""
        return (2.0 / 255.0) * tf.convert_to_tensor(images) - 1.0


class SSDMobileNetV1SlimFpnFeatureExtractor(SSDMobileNetV1FpnFeatureExtractor):
    """The OD API TF1 MobileNet v1 FPN (see the module docstring)."""

    ODAPI_LAYOUT = "tf1"
    KERAS_WIDTHS = False
    slim_scope = "MobilenetV1"

    def __init__(self, *, name: str = "MobilenetV1_FPN_slim", **kwargs):
        super().__init__(name=name, **kwargs)

    @staticmethod
    def backbone_slim_scope(layer_name: str) -> str:
        """The TF-slim scope of a backbone layer, below `slim_scope`."""
        return mobilenet_v1.slim_scope(layer_name)

    def coarse_slim_scope(self, level: int) -> str:
        """TF1 scope of the stride-2 block that makes `level`: `bottom_up_Conv2d_{14,15}`."""
        return f"bottom_up_Conv2d_{level - self.base_max_level + 13}"

    def _keras_application(self, path: str) -> tuple[keras.Model, tuple[str, ...]]:
        raise ValueError(
            f"{path!r} is a keras.applications weights file, which fits the TF2 network "
            "(feature_extractor.type ssd_mobilenet_v1_fpn_keras). The TF1 type "
            "ssd_mobilenet_v1_fpn takes a TF-slim MobilenetV1 or an OD API TF1 checkpoint.")
