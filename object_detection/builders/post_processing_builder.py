"""Builds `PostprocessOptions` from `model.ssd.post_processing`."""
from __future__ import annotations

from object_detection.meta_architectures.ssd_meta_arch import PostprocessOptions
from object_detection.protos import post_processing_pb2
from object_detection.utils.errors import ConfigError


def build(config: post_processing_pb2.PostProcessing,
          path: str = "model.ssd.post_processing") -> PostprocessOptions:
    nms = config.batch_non_max_suppression
    p = f"{path}.batch_non_max_suppression"
    if not 0.0 <= nms.score_threshold <= 1.0:
        raise ConfigError(f"{p}.score_threshold: must be in [0, 1], got {nms.score_threshold}.")
    if not 0.0 <= nms.iou_threshold <= 1.0:
        raise ConfigError(f"{p}.iou_threshold: must be in [0, 1], got {nms.iou_threshold}.")
    if nms.max_detections_per_class < 1 or nms.max_total_detections < 1:
        raise ConfigError(
            f"{p}: max_detections_per_class ({nms.max_detections_per_class}) and "
            f"max_total_detections ({nms.max_total_detections}) must be >= 1.")
    fields = nms.DESCRIPTOR.fields_by_name
    if "use_class_agnostic_nms" in fields and nms.use_class_agnostic_nms:
        raise ConfigError(f"{p}.use_class_agnostic_nms: is not supported (per-class NMS only).")
    if "soft_nms_sigma" in fields and nms.soft_nms_sigma > 0:
        raise ConfigError(f"{p}.soft_nms_sigma: soft NMS is not supported (hard NMS only).")
    converter = post_processing_pb2.PostProcessing.ScoreConverter.Name(config.score_converter)
    if converter not in ("SIGMOID", "IDENTITY", "SOFTMAX"):
        raise ConfigError(f"{path}.score_converter: {converter} is not supported.")
    if config.HasField("calibration_config"):
        raise ConfigError(f"{path}.calibration_config: is not supported (scores are not "
                          "calibrated).")
    if config.logit_scale <= 0:
        raise ConfigError(f"{path}.logit_scale: must be > 0, got {config.logit_scale}.")
    return PostprocessOptions(
        score_threshold=nms.score_threshold, iou_threshold=nms.iou_threshold,
        max_detections_per_class=nms.max_detections_per_class,
        max_total_detections=nms.max_total_detections, score_converter=converter,
        logit_scale=config.logit_scale)
