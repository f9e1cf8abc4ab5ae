"""model_summary: the command line on the SSD320 config (JSON and text), overrides, and config
errors reported as one `error:` line with exit code 2 instead of a traceback."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import text_format

from object_detection import model_summary
from object_detection.protos import model_pb2

REPO = Path(__file__).resolve().parents[1]
SSD320_CONFIG = "configs/ssd320_full_1gpus.config"
SSD320_ANCHORS = 6 * (40**2 + 20**2 + 10**2 + 5**2 + 3**2)  # 12,804


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run([sys.executable, "-m", "object_detection.model_summary", *args],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


@pytest.fixture(scope="module")
def ssd320_json():
    result = _run("--pipeline_config_path", SSD320_CONFIG, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # the whole of stdout is one JSON object


def test_json_summary_of_ssd320(ssd320_json):
    summary = ssd320_json
    assert summary["anchors"] == SSD320_ANCHORS
    assert summary["parameters"] == 32_916_218  # the OD API's count for the same config
    # 90 classes + the implicit background slot (add_background_class, OD API default).
    assert summary["outputs"] == {"box_encodings": [1, SSD320_ANCHORS, 4],
                                  "class_predictions_with_background": [1, SSD320_ANCHORS, 91]}
    assert summary["image_size"] == [320, 320]
    assert summary["num_classes"] == 90
    assert summary["anchors_per_location"] == 6
    # ceil(320 / 2**l) grids, 256 channels.
    assert summary["levels"] == {"3": [40, 40, 256], "4": [20, 20, 256], "5": [10, 10, 256],
                                 "6": [5, 5, 256], "7": [3, 3, 256]}
    # Frozen batch norm: only the moving mean and variance of the 97 batch norms (backbone
    # 26,560 channels; FPN 2 smoothing + 2 coarse, predictor 2 towers x 4 layers x 5 levels of
    # 256) do not train; gamma and beta do (OD API): 75,648 scalars.
    assert summary["parameters"] - summary["trainable_parameters"] == 2 * (
        26_560 + 256 * (2 + 2 + 2 * 4 * 5)) == 75_648


def test_text_summary_of_ssd320():
    result = _run("--pipeline_config_path", SSD320_CONFIG)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("anchors: 12804") for line in lines), result.stdout
    assert any(line.startswith("parameters:") for line in lines), result.stdout


def test_config_override_changes_the_class_output():
    result = _run("--pipeline_config_path", SSD320_CONFIG, "--json",
                  "--config_override", "model.ssd.num_classes=3")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["num_classes"] == 3
    assert summary["outputs"] == {"box_encodings": [1, SSD320_ANCHORS, 4],
                                  "class_predictions_with_background": [1, SSD320_ANCHORS, 4]}


def test_typo_in_config_is_one_error_line_with_exit_code_2(tmp_path):
    text = (REPO / SSD320_CONFIG).read_text()
    assert text.count("num_classes: 90") == 1
    line = text[:text.index("num_classes: 90")].count("\n") + 1
    bad = tmp_path / "bad.config"
    bad.write_text(text.replace("num_classes: 90", "num_clases: 90"))
    result = _run("--pipeline_config_path", str(bad))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    errors = _error_lines(result.stderr)
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith(f"error: {bad}:{line}:")
    assert '"num_clases"' in errors[0] and 'did you mean "num_classes"' in errors[0]
    assert result.stdout == ""


def test_builder_error_is_one_error_line_with_exit_code_2():
    result = _run("--pipeline_config_path", SSD320_CONFIG,
                  "--config_override", "model.ssd.feature_extractor.type=ssd_mobilenet_v2_keras")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    errors = _error_lines(result.stderr)
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith("error: model.ssd.feature_extractor.type: "
                                "'ssd_mobilenet_v2_keras' is not implemented; supported:")


def test_summarize_a_tiny_model_in_process():
    config = text_format.Parse("""
      ssd {
        num_classes: 2
        image_resizer { fixed_shape_resizer { height: 64 width: 96 } }
        feature_extractor {
          type: "ssd_mobilenet_v1_fpn_keras"
          depth_multiplier: 0.25
          min_depth: 16
          fpn { min_level: 3 max_level: 5 additional_layer_depth: 32 }
          conv_hyperparams { initializer { truncated_normal_initializer { stddev: 0.03 } } }
        }
        anchor_generator { multiscale_anchor_generator {
          min_level: 3 max_level: 5 aspect_ratios: [1.0] scales_per_octave: 1 } }
        box_predictor { weight_shared_convolutional_box_predictor {
          depth: 16 num_layers_before_predictor: 1
          conv_hyperparams { initializer { random_normal_initializer { stddev: 0.01 } } } } }
        box_coder { faster_rcnn_box_coder {} }
        matcher { argmax_matcher {} }
        encode_background_as_zeros: true
        loss { classification_loss { weighted_sigmoid_focal { alpha: 0.25 } }
               localization_loss { weighted_smooth_l1 {} } }
      }""", model_pb2.DetectionModel())
    summary = model_summary.summarize(config)
    # Grids ceil(64 / 2**l) x ceil(96 / 2**l): 8x12, 4x6, 2x3; 1 anchor per location;
    # FPN depth max(32 * 0.25, 16) = 16 (the OD API depth rule).
    assert summary["levels"] == {"3": [8, 12, 16], "4": [4, 6, 16], "5": [2, 3, 16]}
    assert summary["anchors_per_location"] == 1
    assert summary["anchors"] == 96 + 24 + 6
    assert summary["outputs"] == {"box_encodings": [1, 126, 4],
                                  "class_predictions_with_background": [1, 126, 3]}
    assert summary["trainable_parameters"] <= summary["parameters"]
