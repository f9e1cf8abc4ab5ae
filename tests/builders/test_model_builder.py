"""model_builder: pipeline configs users have (seed and repo configs) load unchanged and build;
the SSD320 v1.2 model has the published size; config errors name the field path."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format

from object_detection.builders import model_builder
from object_detection.core.standard_fields import PredictionFields as P
from object_detection.meta_architectures.ssd_meta_arch import SSDMetaArch
from object_detection.protos import model_pb2
from object_detection.utils import config_util
from object_detection.utils.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
SEED_DIR = REPO.parent / "shared" / "seed_configs"
SEED_CONFIGS = sorted(SEED_DIR.glob("*.config"))
REPO_CONFIGS = sorted((REPO / "configs").glob("*.config"))
CONFIG_PARAMS = [pytest.param(p, id=f"seed/{p.name}") for p in SEED_CONFIGS] or [
    pytest.param(None, id="seed-configs-missing", marks=pytest.mark.skip(
        reason=f"{SEED_DIR} not found (the shared folder sits beside the repo)"))]
CONFIG_PARAMS += [pytest.param(p, id=f"configs/{p.name}") for p in REPO_CONFIGS]

SSD320_CONFIG = REPO / "configs" / "ssd320_full_1gpus.config"
# SSD320: 6 anchors per location on the grids ceil(320 / 2**l), l = 3..7: 40, 20, 10, 5, 3.
SSD320_ANCHORS = 6 * (40**2 + 20**2 + 10**2 + 5**2 + 3**2)  # 6 * 2134 = 12,804
SSD320_CLASSES = 90


def _is_ssd320(path: Path) -> bool:
    return path.name.startswith("ssd320")


def _expected_num_anchors(ssd) -> int:
    """Anchor count from the config alone: per-location anchors times grid cells per level."""
    height = ssd.image_resizer.fixed_shape_resizer.height
    width = ssd.image_resizer.fixed_shape_resizer.width
    gen = ssd.anchor_generator.multiscale_anchor_generator
    per_location = len(gen.aspect_ratios) * gen.scales_per_octave
    cells = sum(math.ceil(height / 2**level) * math.ceil(width / 2**level)
                for level in range(gen.min_level, gen.max_level + 1))
    return per_location * cells


@pytest.mark.parametrize("path", CONFIG_PARAMS)
def test_config_loads_unchanged_and_builds(path):
    configs = config_util.get_configs_from_pipeline_file(path)
    assert {"model", "train_config", "train_input_config", "eval_config",
            "eval_input_config"} <= set(configs)
    model = model_builder.build(configs["model"], is_training=True)
    assert isinstance(model, SSDMetaArch)
    ssd = configs["model"].ssd
    assert model.num_classes == ssd.num_classes
    assert model.num_anchors == _expected_num_anchors(ssd)
    assert tuple(model.anchors.shape) == (model.num_anchors, 4)
    if _is_ssd320(path):
        assert model.num_anchors == SSD320_ANCHORS
        assert model.num_classes == SSD320_CLASSES
        assert model.image_size == (320, 320)
    if "640x640" in path.name:  # the OD API samples; grids 80, 40, 20, 10, 5
        assert model.num_anchors == 6 * (80**2 + 40**2 + 20**2 + 10**2 + 5**2) == 51150


@pytest.fixture(scope="module")
def ssd320():
    """The full SSD320 v1.2 model (ResNet50 v1 FPN, 90 classes) and its outputs at batch 2.

    Built once per module: creating and running the ResNet50 model is the slow part.
    """
    configs = config_util.get_configs_from_pipeline_file(SSD320_CONFIG)
    model = model_builder.build(configs["model"], is_training=True)
    images = tf.random.stateless_uniform([2, 320, 320, 3], seed=[3, 4], maxval=255.0)
    return model, model(images, training=False)


def test_ssd320_output_shapes(ssd320):
    model, outputs = ssd320
    assert model.num_anchors == 12804
    assert tuple(outputs[P.box_encodings].shape) == (2, 12804, 4)
    # 90 classes + the OD API's implicit background slot (add_background_class default).
    assert tuple(outputs[P.class_predictions_with_background].shape) == (2, 12804, 91)
    assert outputs[P.box_encodings].dtype == tf.float32
    assert np.all(np.isfinite(outputs[P.class_predictions_with_background].numpy()))


def test_ssd320_parameter_count(ssd320, capsys):
    model, _ = ssd320
    total = model.count_params()
    with capsys.disabled():
        print(f"\nSSD320 v1.2 (R50-FPN, 90 classes x 6 anchors): {total:,} parameters")
    # RetinaNet R50-FPN is ~33.4M; the OD API FPN has no 3x3 output conv on P5 and 90 x 6 is a
    # smaller class conv than 91 x 9, so ~32.9M is expected: within 3% of 33.4M.
    assert 32.0e6 <= total <= 34.0e6
    assert abs(total - 33.4e6) / 33.4e6 < 0.03
    # Exactly the OD API's model from the same config (its 463 variables, recorded from a real
    # OD API checkpoint in tools/odapi_parity/keys/ssd320_full_1gpus.txt): no backbone conv
    # biases, 91 class slots.
    assert total == 32_916_218


# ------------------------------------------------------------------------------------------------
# A tiny model from a text proto, and config errors.

TINY = """
ssd {
  num_classes: 3
  image_resizer { fixed_shape_resizer { height: 128 width: 128 } }
  feature_extractor {
    type: "ssd_mobilenet_v2_fpn_keras"
    depth_multiplier: 0.25
    min_depth: 16
    fpn { min_level: 3 max_level: 7 }
    conv_hyperparams {
      activation: RELU_6
      regularizer { l2_regularizer { weight: 0.0004 } }
      initializer { truncated_normal_initializer { mean: 0.0 stddev: 0.03 } }
      batch_norm { scale: true decay: 0.997 epsilon: 0.001 }
    }
    override_base_feature_extractor_hyperparams: true
  }
  anchor_generator {
    multiscale_anchor_generator {
      min_level: 3 max_level: 7 anchor_scale: 4.0 aspect_ratios: [1.0, 2.0, 0.5]
      scales_per_octave: 2
    }
  }
  box_predictor {
    weight_shared_convolutional_box_predictor {
      depth: 16
      num_layers_before_predictor: 2
      kernel_size: 3
      class_prediction_bias_init: -4.6
      conv_hyperparams {
        activation: RELU_6
        regularizer { l2_regularizer { weight: 0.0004 } }
        initializer { random_normal_initializer { mean: 0.0 stddev: 0.01 } }
        batch_norm { scale: true decay: 0.997 epsilon: 0.001 }
      }
    }
  }
  box_coder { faster_rcnn_box_coder { y_scale: 10.0 x_scale: 10.0 height_scale: 5.0
                                      width_scale: 5.0 } }
  matcher { argmax_matcher { matched_threshold: 0.5 unmatched_threshold: 0.4
                             force_match_for_each_row: true } }
  similarity_calculator { iou_similarity {} }
  encode_background_as_zeros: true
  negative_class_weight: 0.5
  loss {
    classification_loss { weighted_sigmoid_focal { alpha: 0.25 gamma: 2.0 } }
    localization_loss { weighted_smooth_l1 {} }
  }
  normalize_loss_by_num_matches: true
  normalize_loc_loss_by_codesize: true
  post_processing {
    batch_non_max_suppression { score_threshold: 1e-8 iou_threshold: 0.6
                                max_detections_per_class: 50 max_total_detections: 100 }
    score_converter: SIGMOID
  }
}
"""
# 6 anchors per location on the 128 px grids 16, 8, 4, 2, 1.
TINY_ANCHORS = 6 * (16**2 + 8**2 + 4**2 + 2**2 + 1**2)  # 2046


def _tiny(change: str | None = None) -> model_pb2.DetectionModel:
    config = text_format.Parse(TINY, model_pb2.DetectionModel())
    if change:
        text_format.Merge(change, config)  # singular fields replaced, oneofs switched
    return config


def test_tiny_model_from_text_proto():
    model = model_builder.build(_tiny(), is_training=True)
    assert model.num_classes == 3 and model.num_class_slots == 4  # + background (OD API)
    assert model.resize_method == "BILINEAR"
    assert model.num_anchors == TINY_ANCHORS
    assert model.image_size == (128, 128)
    # The sub-builders' values land in the model's public options.
    assert model.target_assigner.matcher.matched_threshold == pytest.approx(0.5)
    assert model.target_assigner.matcher.unmatched_threshold == pytest.approx(0.4)
    assert model.target_assigner.negative_class_weight == pytest.approx(0.5)
    assert model.target_assigner.box_coder.scale_factors == (10.0, 10.0, 5.0, 5.0)
    assert model.loss_options.classification_loss == "sigmoid_focal"
    assert model.loss_options.normalize_loc_by_codesize
    assert model.postprocess_options.max_detections_per_class == 50
    assert model.postprocess_options.score_converter == "SIGMOID"


def test_no_background_slot_with_add_background_class_false():
    model = model_builder.build(_tiny("ssd { add_background_class: false }"), is_training=False)
    assert model.num_class_slots == 3
    outputs = model(tf.zeros([1, 128, 128, 3]))
    assert tuple(outputs[P.class_predictions_with_background].shape) == (1, TINY_ANCHORS, 3)


@pytest.mark.parametrize("method", ["BILINEAR", "NEAREST_NEIGHBOR", "BICUBIC", "AREA"])
def test_resize_method_is_honoured(method):
    model = model_builder.build(_tiny(
        f"ssd {{ image_resizer {{ fixed_shape_resizer {{ height: 128 width: 128 "
        f"resize_method: {method} }} }} }}"), is_training=False)
    assert model.resize_method == method


def test_background_column_when_not_encoded_as_zeros():
    model = model_builder.build(_tiny("ssd { encode_background_as_zeros: false }"),
                                is_training=False)
    assert model.num_class_slots == 4  # K + 1
    outputs = model(tf.zeros([1, 128, 128, 3]))
    assert tuple(outputs[P.class_predictions_with_background].shape) == (1, TINY_ANCHORS, 4)


_SSD = r"^model\.ssd"
_FE = _SSD + r"\.feature_extractor"
_WS = _SSD + r"\.box_predictor\.weight_shared_convolutional_box_predictor"


def _clear_extractor_hyperparams(config):
    config.ssd.feature_extractor.ClearField("conv_hyperparams")


@pytest.mark.parametrize("change, pattern", [
    # Unsupported extractor (a non-FPN OD API extractor).
    ('ssd { feature_extractor { type: "ssd_mobilenet_v2_keras" } }',
     _FE + r"\.type: 'ssd_mobilenet_v2_keras' is not implemented; supported: \[.*"
           r"'ssd_resnet50_v1_fpn_keras'"),
    # Pyramid levels out of order, in the extractor and in the anchor generator.
    ("ssd { feature_extractor { fpn { min_level: 5 max_level: 4 } } }",
     _FE + r"\.fpn: need min_level \(5\) <= max_level \(4\)"),
    ("ssd { anchor_generator { multiscale_anchor_generator { min_level: 5 max_level: 4 } } }",
     _SSD + r"\.anchor_generator\.multiscale_anchor_generator: need min_level \(5\) <= "
            r"max_level \(4\)"),
    # One anchor grid per feature map: levels must agree.
    ("ssd { feature_extractor { fpn { max_level: 6 } } }",
     _SSD + r"\.anchor_generator\.multiscale_anchor_generator: levels 3\.\.7 differ from "
            r"model\.ssd\.feature_extractor\.fpn levels 3\.\.6"),
    ("ssd { feature_extractor { fpn { min_level: 1 } } anchor_generator { "
     "multiscale_anchor_generator { min_level: 1 } } }",
     _FE + r"\.fpn\.min_level: must be >= 2"),
    ("ssd { feature_extractor { bifpn { } } }", _FE + r"\.bifpn: is not supported"),
    # Resizers without a static size.
    ("ssd { image_resizer { keep_aspect_ratio_resizer { } } }",
     _SSD + r"\.image_resizer: 'keep_aspect_ratio_resizer' is not supported; expected "
            r"fixed_shape_resizer"),
    ("ssd { image_resizer { fixed_shape_resizer { height: 0 } } }",
     _SSD + r"\.image_resizer\.fixed_shape_resizer: height and width must be > 0, got 0x128"),
    # A grayscale input is a different model: not silently fed RGB.
    ("ssd { image_resizer { fixed_shape_resizer { convert_to_grayscale: true } } }",
     _SSD + r"\.image_resizer\.fixed_shape_resizer\.convert_to_grayscale: is not supported"),
    # Zero and negative values.
    ("ssd { num_classes: 0 }", _SSD + r"\.num_classes: got 0; must be > 0"),
    ("ssd { feature_extractor { depth_multiplier: 0.0 } }",
     _FE + r"\.depth_multiplier: must be > 0, got 0"),
    ("ssd { feature_extractor { depth_multiplier: -1.0 } }",
     _FE + r"\.depth_multiplier: must be > 0, got -1"),
    ("ssd { feature_extractor { min_depth: 0 } }", _FE + r"\.min_depth: must be >= 1, got 0"),
    ("ssd { feature_extractor { pad_to_multiple: 0 } }",
     _FE + r"\.pad_to_multiple: must be >= 1, got 0"),
    ("ssd { box_predictor { weight_shared_convolutional_box_predictor { depth: 0 } } }",
     _WS + r"\.depth: must be > 0, got 0"),
    ("ssd { box_predictor { weight_shared_convolutional_box_predictor { "
     "num_layers_before_predictor: -1 } } }",
     _WS + r"\.num_layers_before_predictor: must be >= 0, got -1"),
    ("ssd { box_predictor { weight_shared_convolutional_box_predictor { kernel_size: 0 } } }",
     _WS + r"\.kernel_size: must be >= 1, got 0"),
    ("ssd { box_predictor { weight_shared_convolutional_box_predictor { "
     "dropout_keep_probability: 0.0 } } }",
     _WS + r"\.dropout_keep_probability: must be in \(0, 1\], got 0"),
    ("ssd { box_predictor { weight_shared_convolutional_box_predictor { box_code_size: 5 } } }",
     _WS + r"\.box_code_size: must be 4"),
    ("ssd { anchor_generator { multiscale_anchor_generator { anchor_scale: 0.0 } } }",
     _SSD + r"\.anchor_generator\.multiscale_anchor_generator\.anchor_scale: must be > 0"),
    ("ssd { box_coder { faster_rcnn_box_coder { y_scale: -10.0 } } }",
     _SSD + r"\.box_coder\.faster_rcnn_box_coder\.y_scale: must be > 0, got -10"),
    # Matcher thresholds out of order.
    ("ssd { matcher { argmax_matcher { matched_threshold: 0.3 unmatched_threshold: 0.5 } } }",
     _SSD + r"\.matcher\.argmax_matcher: need 0 <= unmatched_threshold \(0\.5\) <= "
            r"matched_threshold \(0\.3"),
    # Unsupported heads, similarity, losses and options.
    ("ssd { box_predictor { convolutional_box_predictor { } } }",
     _SSD + r"\.box_predictor: 'convolutional_box_predictor' is not supported; expected one of "
            r"\['weight_shared_convolutional_box_predictor'\]"),
    ("ssd { similarity_calculator { ioa_similarity { } } }",
     _SSD + r"\.similarity_calculator: 'ioa_similarity' is not supported"),
    ("ssd { loss { classification_loss { weighted_softmax { } } } }",
     _SSD + r"\.loss\.classification_loss: 'weighted_softmax' is not supported"),
    ("ssd { mask_head_config { } }", _SSD + r"\.mask_head_config: instance masks are not"),
    ("ssd { use_confidences_as_targets: true }",
     _SSD + r"\.use_confidences_as_targets: is not supported"),
    ("ssd { add_background_class: false encode_background_as_zeros: false }",
     _SSD + r"\.add_background_class: false is only supported with encode_background_as_zeros"),
    ("ssd { post_processing { batch_non_max_suppression { score_threshold: 2.0 } } }",
     _SSD + r"\.post_processing\.batch_non_max_suppression\.score_threshold: must be in "
            r"\[0, 1\], got 2"),
    ("ssd { feature_extractor { conv_hyperparams { op: FC } } }",
     _FE + r"\.conv_hyperparams\.op: FC is not supported"),
    (_clear_extractor_hyperparams, _FE + r"\.conv_hyperparams: is required"),
])
def test_config_errors_name_the_field(change, pattern):
    if callable(change):
        config = _tiny()
        change(config)
    else:
        config = _tiny(change)
    with pytest.raises(ConfigError, match=pattern):
        model_builder.build(config, is_training=True)


def test_a_model_other_than_ssd_is_rejected():
    with pytest.raises(ConfigError, match=r"^model: None is not supported; expected one of "
                                          r"\['ssd'\]"):
        model_builder.build(model_pb2.DetectionModel(), is_training=True)


@pytest.mark.skipif(not SEED_CONFIGS, reason=f"{SEED_DIR} not found")
@pytest.mark.parametrize("gpus", [1, 4, 8])
def test_the_seed_exact_configs_have_the_seeds_model_and_recipe(gpus):
    ours = config_util.get_configs_from_pipeline_file(
        REPO / "configs" / f"ssd320_seed_{gpus}gpus.config")
    seed = config_util.get_configs_from_pipeline_file(
        SEED_DIR / f"ssd320_full_{gpus}gpus.config")
    assert ours["model"] == seed["model"]
    assert ours["model"].ssd.feature_extractor.type == "ssd_resnet50_v1_fpn"
    for field in ("fine_tune_checkpoint", "fine_tune_checkpoint_type", "batch_size",
                  "num_steps", "optimizer", "data_augmentation_options"):
        assert getattr(ours["train_config"], field) == getattr(seed["train_config"], field)
    # The TF2 variants differ in the extractor and its pretrained weights only.
    keras = config_util.get_configs_from_pipeline_file(
        REPO / "configs" / f"ssd320_full_{gpus}gpus.config")
    keras["model"].ssd.feature_extractor.type = "ssd_resnet50_v1_fpn"
    assert keras["model"] == seed["model"]
