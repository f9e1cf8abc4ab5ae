"""Tests for object_detection/utils/config_util/: load, override, validate, save."""
from __future__ import annotations

import pathlib
import textwrap

import pytest
from google.protobuf import text_format

from object_detection.protos import pipeline_pb2, post_processing_pb2
from object_detection.builders import config_rules
from object_detection.utils import config_util
from object_detection.utils.errors import ConfigError

SHARED = pathlib.Path(__file__).resolve().parents[2].parent / "shared"
SEED_CONFIGS = sorted((SHARED / "seed_configs").glob("*.config"))
_SEED_PARAMS = [pytest.param(p, id=p.name) for p in SEED_CONFIGS] or [
    pytest.param(None, id="no-seed-configs", marks=pytest.mark.skip(
        reason=f"{SHARED}/seed_configs not found (the shared folder sits beside the repo)"))]

# A small but complete SSD pipeline. Line numbers matter to the parse-error tests below.
MINIMAL = textwrap.dedent("""\
    model {
      ssd {
        num_classes: 3
        image_resizer { fixed_shape_resizer { height: 128 width: 128 } }
        feature_extractor {
          type: "ssd_resnet50_v1_fpn_keras"
          fpn { min_level: 3 max_level: 7 }
        }
        matcher {
          argmax_matcher { matched_threshold: 0.5 unmatched_threshold: 0.4 }
        }
        anchor_generator {
          multiscale_anchor_generator {
            min_level: 3
            max_level: 7
            aspect_ratios: [1.0, 2.0, 0.5]
          }
        }
        post_processing { score_converter: SIGMOID }
      }
    }
    train_config {
      batch_size: 2
      num_steps: 10
      data_augmentation_options { random_horizontal_flip {} }
      optimizer {
        momentum_optimizer {
          learning_rate {
            cosine_decay_learning_rate {
              learning_rate_base: 0.02
              total_steps: 10
              warmup_learning_rate: 0.01
              warmup_steps: 2
            }
          }
        }
      }
    }
    train_input_reader { tf_record_input_reader { input_path: "/data/train*" } }
    eval_config { metrics_set: "coco_detection_metrics" }
    eval_input_reader {
      shuffle: false
      tf_record_input_reader { input_path: "/data/val*" }
    }
    """)


def _minimal() -> pipeline_pb2.TrainEvalPipelineConfig:
    return config_util.parse_pipeline_config_text(MINIMAL, "minimal.config")


def _write(tmp_path: pathlib.Path, text: str, name: str = "pipeline.config") -> pathlib.Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------------
# Loading the configs users already have.


@pytest.mark.parametrize("path", _SEED_PARAMS)
def test_seed_config_loads_unchanged(path):
    configs = config_util.get_configs_from_pipeline_file(path)
    assert set(configs) >= {"model", "train_config", "train_input_config", "eval_config",
                            "eval_input_configs", "eval_input_config"}
    assert configs["model"].WhichOneof("model") == "ssd"
    assert configs["model"].ssd.num_classes == 90
    assert len(configs["eval_input_configs"]) == 1
    assert configs["eval_input_config"] is configs["eval_input_configs"][0]
    assert configs["train_config"].max_number_of_boxes == 100


@pytest.mark.skipif(not (SHARED / "seed_configs" / "ssd320_full_8gpus.config").exists(),
                    reason="../shared/seed_configs/ssd320_full_8gpus.config not found")
def test_seed_8gpu_config_values():
    # Values of the SSD320 v1.2 8-GPU recipe, as written in the file.
    configs = config_util.get_configs_from_pipeline_file(
        SHARED / "seed_configs" / "ssd320_full_8gpus.config")
    ssd = configs["model"].ssd
    assert ssd.feature_extractor.type == "ssd_resnet50_v1_fpn"
    assert (ssd.feature_extractor.fpn.min_level, ssd.feature_extractor.fpn.max_level) == (3, 7)
    assert ssd.image_resizer.fixed_shape_resizer.height == 320
    assert ssd.post_processing.score_converter == post_processing_pb2.PostProcessing.SIGMOID
    cosine = configs["train_config"].optimizer.momentum_optimizer.learning_rate \
        .cosine_decay_learning_rate
    assert cosine.learning_rate_base == pytest.approx(0.16)
    assert (cosine.total_steps, cosine.warmup_steps) == (12500, 1000)
    assert configs["train_config"].num_steps == 12500
    assert list(configs["eval_config"].metrics_set) == ["coco_detection_metrics"]


def test_get_configs_returns_od_api_keys(tmp_path):
    configs = config_util.get_configs_from_pipeline_file(_write(tmp_path, MINIMAL))
    assert configs["train_config"].batch_size == 2
    assert configs["train_input_config"].tf_record_input_reader.input_path[0] == "/data/train*"
    assert configs["eval_input_config"].shuffle is False
    assert "graph_rewriter_config" not in configs


def test_eval_input_config_is_none_without_eval_reader(tmp_path):
    text = MINIMAL.split("eval_input_reader {")[0]
    configs = config_util.get_configs_from_pipeline_file(_write(tmp_path, text))
    assert configs["eval_input_configs"] == []
    assert configs["eval_input_config"] is None


# ------------------------------------------------------------------------------------------------
# Writing.


def test_save_then_load_round_trip(tmp_path):
    original = _minimal()
    written = config_util.save_pipeline_config(original, tmp_path / "model_dir")
    assert written == tmp_path / "model_dir" / "pipeline.config"
    assert config_util.load_pipeline_config(written) == original
    # Saving again replaces the file and leaves no temporary file behind.
    original.train_config.batch_size = 7
    config_util.save_pipeline_config(original, tmp_path / "model_dir")
    assert config_util.load_pipeline_config(written).train_config.batch_size == 7
    assert [p.name for p in (tmp_path / "model_dir").iterdir()] == ["pipeline.config"]


@pytest.mark.parametrize("path", _SEED_PARAMS)
def test_seed_config_round_trip(path, tmp_path):
    original = config_util.load_pipeline_config(path)
    written = config_util.save_pipeline_config(original, tmp_path)
    assert config_util.load_pipeline_config(written) == original


def test_configs_dict_round_trip(tmp_path):
    original = _minimal()
    configs = config_util.create_configs_from_pipeline_proto(original)
    assert config_util.create_pipeline_proto_from_configs(configs) == original


def test_create_pipeline_proto_rejects_unknown_key():
    with pytest.raises(ConfigError, match=r"unknown keys \['modle'\]"):
        config_util.create_pipeline_proto_from_configs({"modle": None})


def test_save_rejects_wrong_type(tmp_path):
    with pytest.raises(TypeError, match="TrainEvalPipelineConfig"):
        config_util.save_pipeline_config(post_processing_pb2.PostProcessing(), tmp_path)


# ------------------------------------------------------------------------------------------------
# Overrides.


def test_override_scalar():
    config = config_util.merge_overrides(_minimal(), ["train_config.batch_size=8",
                                                      "model.ssd.num_classes=5"])
    assert config.train_config.batch_size == 8
    assert config.model.ssd.num_classes == 5


def test_override_float_inside_nested_oneof():
    config = config_util.merge_overrides(_minimal(), [
        "train_config.optimizer.momentum_optimizer.learning_rate."
        "cosine_decay_learning_rate.learning_rate_base=0.1"])
    lr = config.train_config.optimizer.momentum_optimizer.learning_rate
    assert lr.cosine_decay_learning_rate.learning_rate_base == pytest.approx(0.1)


def test_override_selects_other_oneof_member():
    config = config_util.merge_overrides(_minimal(), [
        "train_config.optimizer.momentum_optimizer.learning_rate."
        "constant_learning_rate.learning_rate=0.004"])
    lr = config.train_config.optimizer.momentum_optimizer.learning_rate
    assert lr.WhichOneof("learning_rate") == "constant_learning_rate"
    assert lr.constant_learning_rate.learning_rate == pytest.approx(0.004)


def test_override_message_with_text_proto_body_selects_oneof():
    config = config_util.merge_overrides(_minimal(), [
        "model.ssd.loss.localization_loss.weighted_l2={}",
        "model.ssd.feature_extractor.fpn={ min_level: 4 max_level: 6 }"])
    assert config.model.ssd.loss.localization_loss.WhichOneof("localization_loss") == "weighted_l2"
    fpn = config.model.ssd.feature_extractor.fpn
    # The body replaces the message: additional_layer_depth is back to its default.
    assert (fpn.min_level, fpn.max_level, fpn.HasField("additional_layer_depth")) == (4, 6, False)


@pytest.mark.parametrize("value, expected", [
    ("/a/b*", ["/a/b*"]),                 # one value replaces the list
    ("/a/b*,/c/d*", ["/a/b*", "/c/d*"]),  # comma separated
    ("[/a, '/b,c']", ["/a", "/b,c"]),     # bracketed, a quoted comma does not split
    ("[]", []),                           # empties the list
])
def test_override_repeated_scalar_replaces_list(value, expected):
    config = config_util.merge_overrides(
        _minimal(), [f"train_input_reader.tf_record_input_reader.input_path={value}"])
    assert list(config.train_input_reader.tf_record_input_reader.input_path) == expected


def test_override_repeated_scalar_element_by_index():
    config = config_util.merge_overrides(_minimal(), [
        "model.ssd.anchor_generator.multiscale_anchor_generator.aspect_ratios.1=3.0"])
    ratios = config.model.ssd.anchor_generator.multiscale_anchor_generator.aspect_ratios
    assert list(ratios) == [1.0, 3.0, 0.5]


def test_override_index_into_repeated_message():
    config = config_util.merge_overrides(_minimal(), ["eval_input_reader.0.shuffle=true",
                                                      "eval_input_reader.1.num_epochs=1"])
    assert config.eval_input_reader[0].shuffle is True
    # Index == length appends a new reader.
    assert len(config.eval_input_reader) == 2
    assert config.eval_input_reader[1].num_epochs == 1


def test_override_repeated_message_without_index_applies_to_all():
    config = _minimal()
    config.eval_input_reader.add()
    config_util.merge_overrides(config, ["eval_input_reader.sample_1_of_n_examples=10"])
    assert [r.sample_1_of_n_examples for r in config.eval_input_reader] == [10, 10]


def test_override_enum_and_bool_by_name():
    config = config_util.merge_overrides(_minimal(), [
        "model.ssd.post_processing.score_converter=SOFTMAX",
        "model.ssd.feature_extractor.use_depthwise=true",
        "train_config.fine_tune_checkpoint_version=V2",
        "train_config.fine_tune_checkpoint_type='classification'",
    ])
    assert config.model.ssd.post_processing.score_converter == \
        post_processing_pb2.PostProcessing.SOFTMAX
    assert config.model.ssd.feature_extractor.use_depthwise is True
    assert config.train_config.fine_tune_checkpoint_version == 2
    assert config.train_config.fine_tune_checkpoint_type == "classification"


def test_override_text_proto_form():
    config = config_util.merge_overrides(
        _minimal(), "train_config { batch_size: 8 } model { ssd { num_classes: 4 } }")
    assert config.train_config.batch_size == 8
    assert config.model.ssd.num_classes == 4
    assert config.train_config.num_steps == 10  # merged, not replaced


def test_config_override_argument_of_get_configs(tmp_path):
    path = _write(tmp_path, MINIMAL)
    configs = config_util.get_configs_from_pipeline_file(
        path, config_override="train_config { batch_size: 6 }")
    assert configs["train_config"].batch_size == 6
    configs = config_util.get_configs_from_pipeline_file(
        path, config_override=["train_config.batch_size=5", "eval_config.batch_size=3"])
    assert (configs["train_config"].batch_size, configs["eval_config"].batch_size) == (5, 3)


def test_failed_override_list_leaves_config_unchanged():
    config = _minimal()
    with pytest.raises(ConfigError):
        config_util.merge_overrides(config, ["train_config.batch_size=8",
                                             "train_config.batch_sise=9"])
    assert config == _minimal()


def test_unknown_override_path_names_path_part_and_valid_fields():
    with pytest.raises(
            ConfigError,
            match=r"override 'train_config\.batch_sise=8': train_config\.batch_sise: unknown "
                  r"field 'batch_sise' in train_config \(message object_detection\.protos\."
                  r"TrainConfig\); did you mean 'batch_size'\? Valid fields in train_config: "
                  r"add_regularization_loss, .*batch_size, .*use_multiclass_scores\."):
        config_util.merge_overrides(_minimal(), ["train_config.batch_sise=8"])


def test_unknown_override_deep_in_the_path():
    with pytest.raises(ConfigError, match=r"model\.ssd\.matcher\.argmax\.matched_threshold: "
                                          r"unknown field 'argmax' in model\.ssd\.matcher.*"
                                          r"Valid fields in model\.ssd\.matcher: argmax_matcher, "
                                          r"bipartite_matcher\."):
        config_util.merge_overrides(_minimal(), ["model.ssd.matcher.argmax.matched_threshold=0.6"])


@pytest.mark.parametrize("override, pattern", [
    ("train_config.batch_size=eight",
     r"train_config\.batch_size: cannot use 'eight': expected an unsigned 32-bit integer"),
    ("train_config.batch_size=-8",  # negative batch size: uint32 rejects it
     r"train_config\.batch_size: cannot use '-8': expected an unsigned 32-bit integer"),
    ("model.ssd.num_classes=3.5",
     r"model\.ssd\.num_classes: cannot use '3\.5': expected a 32-bit integer"),
    ("train_config.sync_replicas=yes",
     r"train_config\.sync_replicas: cannot use 'yes': expected a bool \(true or false\)"),
    ("model.ssd.post_processing.score_converter=SIGMIOD",
     r"score_converter: cannot use 'SIGMIOD': expected one of the .*ScoreConverter values "
     r"\['IDENTITY', 'SIGMOID', 'SOFTMAX'\]; did you mean 'SIGMOID'\?"),
    ("train_config.optimizer.momentum_optimizer.momentum_optimizer_value=high",
     r"momentum_optimizer_value: cannot use 'high': expected a number \(float\)"),
])
def test_override_with_wrong_value_type(override, pattern):
    with pytest.raises(ConfigError, match=pattern):
        config_util.merge_overrides(_minimal(), [override])


@pytest.mark.parametrize("override, pattern", [
    ("eval_input_reader.3.shuffle=true",
     r"eval_input_reader: index 3 is out of range: it has 1 entries"),
    ("eval_input_reader=x", r"eval_input_reader: is a repeated message; address one entry"),
    ("model.ssd.num_classes.x=1", r"model\.ssd\.num_classes: is a scalar field \(int32\); it "
                                  r"has no field 'x'"),
    ("eval_config.super_categories=a", r"eval_config\.super_categories: is a map field"),
    ("train_config.batch_size", r"expected 'path=value'"),
    ("train_config..batch_size=1", r"is not a dotted field path"),
    ("model.ssd.loss.localization_loss.weighted_l2={ x: 1 }",
     r"weighted_l2: cannot use '\{ x: 1 \}': expected a text proto of "
     r"object_detection\.protos\.WeightedL2LocalizationLoss"),
])
def test_override_structural_errors(override, pattern):
    with pytest.raises(ConfigError, match=pattern):
        config_util.merge_overrides(_minimal(), [override])


def test_text_proto_override_error_names_position_and_suggests():
    with pytest.raises(ConfigError, match=r"override 'train_config \{ batch_sise: 8 \}', line 1, "
                                          r"column 16: message \"object_detection\.protos\."
                                          r"TrainConfig\" has no field named \"batch_sise\"; "
                                          r"did you mean \"batch_size\"\?"):
        config_util.merge_overrides(_minimal(), "train_config { batch_sise: 8 }")


# ------------------------------------------------------------------------------------------------
# Errors in files.


def test_typo_in_file_names_file_line_column_field_and_suggestion(tmp_path):
    path = _write(tmp_path, MINIMAL.replace("num_classes: 3", "num_clases: 3"), "ssd320.config")
    with pytest.raises(ConfigError) as caught:
        config_util.load_pipeline_config(path)
    message = str(caught.value)
    assert message.startswith(
        f'{path}:3:5: message "object_detection.protos.Ssd" has no field named "num_clases"; '
        f'did you mean "num_classes"? (at model.ssd)')
    assert "    num_clases: 3\n        ^" in message  # the source line with a caret
    # The message is self-contained: no chained exception for the traceback to print.
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_typo_in_repeated_block_names_its_index(tmp_path):
    text = MINIMAL.replace("random_horizontal_flip {}", "random_horizontal_flop {}")
    with pytest.raises(ConfigError, match=r"pipeline\.config:25:31: message \"object_detection\."
                                          r"protos\.PreprocessingStep\" has no field named "
                                          r"\"random_horizontal_flop\"; did you mean "
                                          r"\"random_horizontal_flip\"\? \(at train_config\."
                                          r"data_augmentation_options\.0\)"):
        config_util.load_pipeline_config(_write(tmp_path, text))


def test_bad_enum_value_in_file_suggests(tmp_path):
    text = MINIMAL.replace("score_converter: SIGMOID", "score_converter: SIGMOD")
    with pytest.raises(ConfigError, match=r":19:40: enum \"object_detection\.protos\."
                                          r"PostProcessing\.ScoreConverter\" has no value named "
                                          r"\"SIGMOD\"; did you mean \"SIGMOID\"\? Valid values: "
                                          r"IDENTITY, SIGMOID, SOFTMAX \(at model\.ssd\."
                                          r"post_processing\.score_converter\)"):
        config_util.load_pipeline_config(_write(tmp_path, text))


def test_negative_batch_size_in_file(tmp_path):
    text = MINIMAL.replace("batch_size: 2", "batch_size: -2")
    with pytest.raises(ConfigError, match=r"pipeline\.config:23:15: .*-2.* \(at "
                                          r"train_config\.batch_size\)"):
        config_util.load_pipeline_config(_write(tmp_path, text))


def test_missing_brace_in_file(tmp_path):
    text = MINIMAL.rstrip().rstrip("}")
    with pytest.raises(ConfigError, match=r"pipeline\.config:\d+:\d+: Expected \"}\""):
        config_util.load_pipeline_config(_write(tmp_path, text))


def test_unsupported_model_is_a_parse_error(tmp_path):
    with pytest.raises(ConfigError, match=r"message \"object_detection\.protos\.DetectionModel\" "
                                          r"has no field named \"faster_rcnn\"; its fields are: "
                                          r"experimental_model, ssd \(at model\)"):
        config_util.load_pipeline_config(_write(tmp_path, "model { faster_rcnn { } }"))


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match=r"nope\.config: pipeline config file not found"):
        config_util.load_pipeline_config(tmp_path / "nope.config")


def test_directory_instead_of_file(tmp_path):
    with pytest.raises(ConfigError, match=r"is a directory; expected a pipeline config file"):
        config_util.load_pipeline_config(tmp_path)


# ------------------------------------------------------------------------------------------------
# Validation.


def _invalid(*overrides: str) -> pipeline_pb2.TrainEvalPipelineConfig:
    return config_util.merge_overrides(_minimal(), list(overrides))


def test_minimal_config_is_valid():
    config_rules.validate_pipeline_config(_minimal())


@pytest.mark.parametrize("overrides, pattern", [
    (["train_config.batch_size=0"], r"^train_config\.batch_size: got 0; must be > 0\.$"),
    (["train_config.max_number_of_boxes=0"],
     r"^train_config\.max_number_of_boxes: got 0; must be > 0\.$"),
    (["eval_input_reader.0.max_number_of_boxes=-1"],
     r"^eval_input_reader\.0\.max_number_of_boxes: got -1; must be > 0\.$"),
    (["eval_config.batch_size=0"], r"^eval_config\.batch_size: got 0; must be > 0\.$"),
    (["model.ssd.num_classes=0"], r"^model\.ssd\.num_classes: got 0; must be > 0"),
    (["model.ssd.matcher.argmax_matcher.unmatched_threshold=0.7"],  # thresholds out of order
     r"^model\.ssd\.matcher\.argmax_matcher: need 0 <= unmatched_threshold \(0\.7\) <= "
     r"matched_threshold \(0\.5\) <= 1\.$"),
    (["model.ssd.matcher.argmax_matcher.matched_threshold=1.5"],
     r"matched_threshold \(1\.5\) <= 1"),
    (["model.ssd.matcher.argmax_matcher.unmatched_threshold=-0.1"],
     r"need 0 <= unmatched_threshold \(-0\.1\)"),
    (["train_config.optimizer.momentum_optimizer.learning_rate.cosine_decay_learning_rate."
      "learning_rate_base=-0.1"],
     r"(?m)^  train_config\.optimizer\.momentum_optimizer\.learning_rate\."
     r"cosine_decay_learning_rate\.learning_rate_base: got -0\.1; must be >= 0\.$"),
    (["train_config.optimizer.momentum_optimizer.learning_rate.cosine_decay_learning_rate."
      "warmup_steps=20"],
     r"cosine_decay_learning_rate: need warmup_steps \(20\) <= total_steps \(10\)\.$"),
    (["train_config.optimizer.momentum_optimizer.learning_rate.constant_learning_rate."
      "learning_rate=-1"],
     r"constant_learning_rate\.learning_rate: got -1; must be >= 0\.$"),
    (["train_config.optimizer.momentum_optimizer.momentum_optimizer_value=1.5"],
     r"^train_config\.optimizer\.momentum_optimizer\.momentum_optimizer_value: got 1\.5; must "
     r"be in \[0, 1\]\.$"),
    (["train_config.optimizer.rms_prop_optimizer.learning_rate.constant_learning_rate."
      "learning_rate=0.1", "train_config.optimizer.rms_prop_optimizer.decay=-0.5"],
     r"^train_config\.optimizer\.rms_prop_optimizer\.decay: got -0\.5; must be in \[0, 1\]"),
    (["train_config.optimizer.adam_optimizer.learning_rate.constant_learning_rate."
      "learning_rate=0.1", "train_config.optimizer.adam_optimizer.epsilon=0"],
     r"^train_config\.optimizer\.adam_optimizer\.epsilon: got 0; must be > 0\.$"),
])
def test_validation_rule(overrides, pattern):
    with pytest.raises(ConfigError, match=pattern):
        config_rules.validate_pipeline_config(_invalid(*overrides))


def test_fpn_min_level_above_max_level():
    config = _invalid("model.ssd.feature_extractor.fpn.min_level=8")
    with pytest.raises(ConfigError) as caught:
        config_rules.validate_pipeline_config(config)
    message = str(caught.value)
    assert "model.ssd.feature_extractor.fpn: need min_level (8) <= max_level (7)." in message
    # The anchors (3..7) no longer match the pyramid either.
    assert message.startswith("2 problems in the pipeline config:")
    assert ("model.ssd.anchor_generator.multiscale_anchor_generator: levels 3..7 differ from "
            "model.ssd.feature_extractor.fpn levels 8..7") in message


def test_anchor_min_level_above_max_level():
    config = _invalid("model.ssd.anchor_generator.multiscale_anchor_generator.min_level=6",
                      "model.ssd.anchor_generator.multiscale_anchor_generator.max_level=4",
                      "model.ssd.feature_extractor.fpn={min_level: 6 max_level: 4}")
    with pytest.raises(ConfigError, match=r"^2 problems"):
        config_rules.validate_pipeline_config(config)
    with pytest.raises(ConfigError, match=r"model\.ssd\.anchor_generator\."
                                          r"multiscale_anchor_generator: need min_level \(6\) "
                                          r"<= max_level \(4\)\."):
        config_rules.validate_pipeline_config(config)


def test_manual_step_schedule_must_increase():
    config = config_util.merge_overrides(_minimal(), """
        train_config { optimizer { momentum_optimizer { learning_rate {
          manual_step_learning_rate {
            schedule { step: 5 learning_rate: 0.01 }
            schedule { step: 5 learning_rate: 0.001 }
          } } } } }""")
    with pytest.raises(ConfigError, match=r"manual_step_learning_rate\.schedule\.1\.step: got 5; "
                                          r"steps must be strictly increasing"):
        config_rules.validate_pipeline_config(config)


def test_ignore_thresholds_skips_threshold_order():
    config = _invalid("model.ssd.matcher.argmax_matcher.unmatched_threshold=0.9",
                      "model.ssd.matcher.argmax_matcher.ignore_thresholds=true")
    config_rules.validate_pipeline_config(config)


def test_loading_checks_the_value_rules_and_reading_alone_does_not(tmp_path):
    path = _write(tmp_path, MINIMAL.replace("num_classes: 3", "num_classes: 0"))
    with pytest.raises(ConfigError, match=r"model\.ssd\.num_classes: got 0"):
        config_rules.load_pipeline_configs(path)
    configs = config_util.get_configs_from_pipeline_file(path)  # the builders check it
    assert configs["model"].ssd.num_classes == 0


def test_saved_text_is_od_api_text_format(tmp_path):
    written = config_util.save_pipeline_config(_minimal(), tmp_path)
    parsed = pipeline_pb2.TrainEvalPipelineConfig()
    text_format.Parse(written.read_text(encoding="utf-8"), parsed)  # strict parser accepts it
    assert parsed == _minimal()


def test_check_for_training_accepts_minimal_config():
    config_rules.check_for_training(config_util.create_configs_from_pipeline_proto(_minimal()))


@pytest.mark.parametrize("cut, pattern", [
    ("model", r"^model: no model is set"),
    ("train_config.optimizer", r"^train_config\.optimizer: no optimizer is set"),
    ("train_config.optimizer.momentum_optimizer.learning_rate",
     r"^train_config\.optimizer\.momentum_optimizer\.learning_rate: no schedule is set"),
])
def test_check_for_training_names_missing_part(cut, pattern):
    config = _minimal()
    *parents, last = cut.split(".")
    holder = config
    for name in parents:
        holder = getattr(holder, name)
    holder.ClearField(last)
    with pytest.raises(ConfigError, match=pattern):
        config_rules.check_for_training(config_util.create_configs_from_pipeline_proto(config))


def test_a_matcher_rule_that_only_a_constructor_knew_is_found_at_load():
    config = _invalid("model.ssd.matcher.argmax_matcher.unmatched_threshold=0.5",
                      "model.ssd.matcher.argmax_matcher.negatives_lower_than_unmatched=false")
    with pytest.raises(ConfigError, match=r"^model\.ssd\.matcher\.argmax_matcher: with "
                                          r"negatives_lower_than_unmatched: false"):
        config_rules.validate_pipeline_config(config)
