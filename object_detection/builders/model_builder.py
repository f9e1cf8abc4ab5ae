"""Builds the detection model a `DetectionModel` message describes (OD API `model_builder`).

`build(model_config, is_training)` keeps the OD API's name and arguments for users' scripts.
Every sub-message is validated here, before anything is traced, and errors name the field path.
"""
from __future__ import annotations

import functools

from object_detection.builders import (anchor_generator_builder, box_coder_builder,
                                       config_rules, hyperparams_builder, losses_builder,
                                       matcher_builder, post_processing_builder)
from object_detection.core import target_assigner
from object_detection.meta_architectures import ssd_meta_arch
from object_detection.models import (ssd_mobilenet_v1_fpn, ssd_mobilenet_v2_fpn,
                                     ssd_resnet_v1_fpn)
from object_detection.predictors import weight_shared_convolutional_box_predictor as wscbp
from object_detection.protos import image_resizer_pb2, model_pb2, ssd_pb2
from object_detection.utils.errors import ConfigError
from object_detection.utils.log import logger


def _resnet(depth, extractor=ssd_resnet_v1_fpn.SSDResNetV1FpnFeatureExtractor):
    def make(**kwargs):
        return extractor(depth, **kwargs)
    return make


_slim_resnet = functools.partial(
    _resnet, extractor=ssd_resnet_v1_fpn.SSDResNetV1SlimFpnFeatureExtractor)

# OD API type names -> extractor constructors. The `_keras` names build the OD API TF2 network;
# the TF1 ResNet and MobileNet v1 names build the TF1 (TF-slim) networks (the seed's ResNet50);
# `ssd_mobilenet_v2_fpn` (TF1 name) still builds the TF2 network.
FEATURE_EXTRACTORS = {
    "ssd_resnet50_v1_fpn": _slim_resnet(50),
    "ssd_resnet50_v1_fpn_keras": _resnet(50),
    "ssd_resnet101_v1_fpn": _slim_resnet(101),
    "ssd_resnet101_v1_fpn_keras": _resnet(101),
    "ssd_resnet152_v1_fpn": _slim_resnet(152),
    "ssd_resnet152_v1_fpn_keras": _resnet(152),
    "ssd_mobilenet_v1_fpn": ssd_mobilenet_v1_fpn.SSDMobileNetV1SlimFpnFeatureExtractor,
    "ssd_mobilenet_v1_fpn_keras": ssd_mobilenet_v1_fpn.SSDMobileNetV1FpnFeatureExtractor,
    "ssd_mobilenet_v2_fpn": ssd_mobilenet_v2_fpn.SSDMobileNetV2FpnFeatureExtractor,
    "ssd_mobilenet_v2_fpn_keras": ssd_mobilenet_v2_fpn.SSDMobileNetV2FpnFeatureExtractor,
}


def build(model_config: model_pb2.DetectionModel, is_training: bool,
          add_summaries: bool = True) -> ssd_meta_arch.SSDMetaArch:
    """DetectionModel message -> SSDMetaArch (weights not yet created: call `model.build()`).

    Args:
      model_config: the `model` message of a pipeline config.
      is_training: accepted for OD API compatibility; training or inference is chosen per call.
      add_summaries: accepted for OD API compatibility; unused.
    """
    del is_training, add_summaries
    which = model_config.WhichOneof("model")
    if which != "ssd":
        raise ConfigError(f"model: {which!r} is not supported; expected one of ['ssd'].")
    return _build_ssd(model_config.ssd, "model.ssd")


def image_size(ssd_config: ssd_pb2.Ssd, path: str = "model.ssd") -> tuple[int, int]:
    """(height, width) of the model input, from the fixed_shape_resizer."""
    resizer = ssd_config.image_resizer
    which = resizer.WhichOneof("image_resizer_oneof")
    if which != "fixed_shape_resizer":
        raise ConfigError(
            f"{path}.image_resizer: {which!r} is not supported; expected fixed_shape_resizer "
            "(the train step needs a static input size).")
    r = resizer.fixed_shape_resizer
    if r.height <= 0 or r.width <= 0:
        raise ConfigError(f"{path}.image_resizer.fixed_shape_resizer: height and width must be "
                          f"> 0, got {r.height}x{r.width}.")
    if r.convert_to_grayscale:
        raise ConfigError(f"{path}.image_resizer.fixed_shape_resizer.convert_to_grayscale: is "
                          "not supported (the model takes RGB input).")
    return int(r.height), int(r.width)


def resize_method(ssd_config: ssd_pb2.Ssd) -> str:
    """`fixed_shape_resizer.resize_method` as a `core.image_resizer.RESIZE_METHODS` name."""
    r = ssd_config.image_resizer.fixed_shape_resizer
    return image_resizer_pb2.ResizeType.Name(r.resize_method)


def _build_ssd(config: ssd_pb2.Ssd, path: str) -> ssd_meta_arch.SSDMetaArch:
    # num_classes, pyramid and anchor levels, matcher thresholds (config_rules.ssd_problems).
    config_rules.raise_first(config_rules.ssd_problems(config, path))
    for name in ("use_confidences_as_targets", "explicit_background_class"):
        if getattr(config, name):
            raise ConfigError(f"{path}.{name}: is not supported.")
    if not config.add_background_class and not config.encode_background_as_zeros:
        raise ConfigError(f"{path}.add_background_class: false is only supported with "
                          "encode_background_as_zeros: true.")
    if config.HasField("mask_head_config"):
        raise ConfigError(f"{path}.mask_head_config: instance masks are not supported.")
    sim = config.similarity_calculator.WhichOneof("region_similarity")
    if sim not in (None, "iou_similarity"):
        raise ConfigError(f"{path}.similarity_calculator: {sim!r} is not supported; expected "
                          "one of ['iou_similarity'].")
    height, width = image_size(config, path)
    anchors = anchor_generator_builder.build(config.anchor_generator,
                                             f"{path}.anchor_generator")
    extractor = _build_feature_extractor(config, f"{path}.feature_extractor")
    # OD API: an implicit background slot (column 0) unless add_background_class is false.
    num_class_slots = config.num_classes + (1 if config.add_background_class else 0)
    # The TF1 OD API's slim predictor sets its batch norm mode inside its conv_hyperparams
    # scope, so freeze_batchnorm does not reach it there (batch_norm.train does).
    predictor = _build_box_predictor(config, num_class_slots, anchors.num_anchors_per_location(),
                                     extractor.levels, f"{path}.box_predictor",
                                     freeze_batchnorm=extractor.added_layers_freeze_batchnorm)
    coder = box_coder_builder.build(config.box_coder, f"{path}.box_coder")
    assigner = target_assigner.TargetAssigner(
        matcher=matcher_builder.build(config.matcher, f"{path}.matcher"), box_coder=coder,
        negative_class_weight=config.negative_class_weight)
    return ssd_meta_arch.SSDMetaArch(
        feature_extractor=extractor,
        box_predictor=predictor,
        anchors=anchors.generate(height, width),
        image_size=(height, width),
        resize_method=resize_method(config),
        num_classes=config.num_classes,
        encode_background_as_zeros=config.encode_background_as_zeros,
        add_background_class=config.add_background_class,
        target_assigner=assigner,
        loss_options=losses_builder.build(config, path),
        postprocess_options=post_processing_builder.build(config.post_processing,
                                                          f"{path}.post_processing"),
    )


def _build_feature_extractor(config: ssd_pb2.Ssd, path: str):
    fe = config.feature_extractor
    if fe.type not in FEATURE_EXTRACTORS:
        raise ConfigError(f"{path}.type: {fe.type!r} is not implemented; supported: "
                          f"{sorted(FEATURE_EXTRACTORS)}.")
    if fe.WhichOneof("feature_pyramid_oneof") == "bifpn":
        raise ConfigError(f"{path}.bifpn: is not supported; use fpn.")
    if not fe.HasField("conv_hyperparams"):
        raise ConfigError(f"{path}.conv_hyperparams: is required.")
    if fe.depth_multiplier <= 0:
        raise ConfigError(f"{path}.depth_multiplier: must be > 0, got {fe.depth_multiplier}.")
    if fe.min_depth < 1:
        raise ConfigError(f"{path}.min_depth: must be >= 1, got {fe.min_depth}.")
    if fe.pad_to_multiple < 1:
        raise ConfigError(f"{path}.pad_to_multiple: must be >= 1, got {fe.pad_to_multiple}.")
    fpn = fe.fpn
    if fpn.min_level < 2:
        raise ConfigError(f"{path}.fpn.min_level: must be >= 2 (C2 is the finest backbone "
                          f"level), got {fpn.min_level}.")
    if fe.replace_preprocessor_with_placeholder:
        logger.info("%s.replace_preprocessor_with_placeholder: ignored (the model "
                    "preprocesses its own input).", path)
    try:
        return FEATURE_EXTRACTORS[fe.type](
            depth_multiplier=fe.depth_multiplier,
            min_depth=fe.min_depth,
            conv_hyperparams=hyperparams_builder.build(fe.conv_hyperparams,
                                                       f"{path}.conv_hyperparams"),
            freeze_batchnorm=config.freeze_batchnorm,
            min_level=fpn.min_level,
            max_level=fpn.max_level,
            additional_layer_depth=fpn.additional_layer_depth,
            pad_to_multiple=fe.pad_to_multiple,
            use_explicit_padding=fe.use_explicit_padding,
            use_depthwise=fe.use_depthwise,
            override_base_feature_extractor_hyperparams=(
                fe.override_base_feature_extractor_hyperparams),
        )
    except NotImplementedError as e:
        raise ConfigError(f"{path}: {e}") from None
    except (ValueError, TypeError) as e:
        if isinstance(e, ConfigError):
            raise
        raise ConfigError(f"{path}: {e}") from None


def _build_box_predictor(config: ssd_pb2.Ssd, num_class_slots: int, anchors_per_location: int,
                         levels, path: str, freeze_batchnorm: bool):
    which = config.box_predictor.WhichOneof("box_predictor_oneof")
    if which != "weight_shared_convolutional_box_predictor":
        raise ConfigError(f"{path}: {which!r} is not supported; expected one of "
                          "['weight_shared_convolutional_box_predictor'].")
    p = config.box_predictor.weight_shared_convolutional_box_predictor
    path = f"{path}.{which}"
    if p.depth <= 0:
        raise ConfigError(f"{path}.depth: must be > 0, got {p.depth}.")
    if p.num_layers_before_predictor < 0:
        raise ConfigError(f"{path}.num_layers_before_predictor: must be >= 0, got "
                          f"{p.num_layers_before_predictor}.")
    if p.kernel_size < 1:
        raise ConfigError(f"{path}.kernel_size: must be >= 1, got {p.kernel_size}.")
    if p.box_code_size != 4:
        raise ConfigError(f"{path}.box_code_size: must be 4 for faster_rcnn_box_coder, got "
                          f"{p.box_code_size}.")
    if not 0.0 < p.dropout_keep_probability <= 1.0:
        raise ConfigError(f"{path}.dropout_keep_probability: must be in (0, 1], got "
                          f"{p.dropout_keep_probability}.")
    if p.HasField("box_encodings_clip_range"):
        raise ConfigError(f"{path}.box_encodings_clip_range: is not supported.")
    if p.score_converter != p.IDENTITY:
        raise ConfigError(f"{path}.score_converter: only IDENTITY is supported (scores are "
                          "converted in post_processing).")
    try:
        return wscbp.WeightSharedConvolutionalBoxPredictor(
            num_classes=num_class_slots,
            num_anchors_per_location=anchors_per_location,
            depth=p.depth,
            num_layers_before_predictor=p.num_layers_before_predictor,
            kernel_size=p.kernel_size,
            class_prediction_bias_init=p.class_prediction_bias_init,
            conv_hyperparams=hyperparams_builder.build(p.conv_hyperparams,
                                                       f"{path}.conv_hyperparams"),
            freeze_batchnorm=freeze_batchnorm,
            levels=levels,
            use_dropout=p.use_dropout,
            dropout_keep_prob=p.dropout_keep_probability,
            share_prediction_tower=p.share_prediction_tower,
            use_depthwise=p.use_depthwise,
            apply_conv_hyperparams_to_heads=p.apply_conv_hyperparams_to_heads,
            apply_conv_hyperparams_pointwise=p.apply_conv_hyperparams_pointwise,
        )
    except (ValueError, TypeError) as e:
        if isinstance(e, ConfigError):
            raise
        raise ConfigError(f"{path}: {e}") from None
