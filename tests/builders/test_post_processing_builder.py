"""post_processing_builder: `PostProcessing` text protos -> PostprocessOptions."""
from __future__ import annotations

import pytest
from google.protobuf import text_format

from object_detection.builders import post_processing_builder
from object_detection.meta_architectures.ssd_meta_arch import PostprocessOptions
from object_detection.protos import post_processing_pb2
from object_detection.utils.errors import ConfigError

# The post_processing of the SSD320 v1.2 seed configs.
SEED = """
  batch_non_max_suppression {
    score_threshold: 1e-8
    iou_threshold: 0.6
    max_detections_per_class: 100
    max_total_detections: 100
  }
  score_converter: SIGMOID
"""


def _build(text: str):
    return post_processing_builder.build(
        text_format.Parse(text, post_processing_pb2.PostProcessing()))


def test_seed_post_processing():
    options = _build(SEED)
    assert options == PostprocessOptions(
        score_threshold=pytest.approx(1e-8), iou_threshold=pytest.approx(0.6),
        max_detections_per_class=100, max_total_detections=100, score_converter="SIGMOID",
        logit_scale=1.0)


def test_other_values():
    options = _build("""
      batch_non_max_suppression { score_threshold: 0.3 iou_threshold: 0.5
                                  max_detections_per_class: 10 max_total_detections: 20 }
      score_converter: SOFTMAX
      logit_scale: 2.0""")
    assert options.score_threshold == pytest.approx(0.3)
    assert options.iou_threshold == pytest.approx(0.5)
    assert (options.max_detections_per_class, options.max_total_detections) == (10, 20)
    assert options.score_converter == "SOFTMAX"
    assert options.logit_scale == 2.0


def test_od_api_defaults():
    # OD API defaults: score_threshold 0, iou 0.6, 100 / 100 detections, IDENTITY scores.
    assert _build("") == PostprocessOptions(
        score_threshold=0.0, iou_threshold=pytest.approx(0.6), max_detections_per_class=100,
        max_total_detections=100, score_converter="IDENTITY", logit_scale=1.0)


_NMS = "model\\.ssd\\.post_processing\\.batch_non_max_suppression"


@pytest.mark.parametrize("text, pattern", [
    ("batch_non_max_suppression { score_threshold: 1.5 }",
     rf"{_NMS}\.score_threshold: must be in \[0, 1\], got 1\.5"),
    ("batch_non_max_suppression { score_threshold: -0.1 }",
     rf"{_NMS}\.score_threshold: must be in \[0, 1\]"),
    ("batch_non_max_suppression { iou_threshold: 1.2 }",
     rf"{_NMS}\.iou_threshold: must be in \[0, 1\], got 1\.2"),
    ("batch_non_max_suppression { max_detections_per_class: 0 }",
     rf"{_NMS}: max_detections_per_class \(0\) and max_total_detections \(100\) must be >= 1"),
    ("batch_non_max_suppression { max_total_detections: -1 }",
     rf"{_NMS}: max_detections_per_class \(100\) and max_total_detections \(-1\) must be >= 1"),
    ("batch_non_max_suppression { use_class_agnostic_nms: true }",
     rf"{_NMS}\.use_class_agnostic_nms: is not supported"),
    ("batch_non_max_suppression { soft_nms_sigma: 0.5 }",
     rf"{_NMS}\.soft_nms_sigma: soft NMS is not supported"),
    ("logit_scale: 0.0", r"model\.ssd\.post_processing\.logit_scale: must be > 0, got 0"),
    # Calibration changes the scores; it must not be dropped silently.
    ("calibration_config { temperature_scaling_calibration { scaler: 2.0 } }",
     r"model\.ssd\.post_processing\.calibration_config: is not supported"),
])
def test_config_errors_name_the_field(text, pattern):
    with pytest.raises(ConfigError, match="^" + pattern):
        _build(text)
