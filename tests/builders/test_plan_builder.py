"""Tests for object_detection/builders/plan_builder.py: configs -> frozen plain-value plans."""
from __future__ import annotations

import dataclasses

import pytest
from google.protobuf import text_format

from object_detection.builders import plan_builder
from object_detection.protos import pipeline_pb2
from object_detection.utils import config_util
from object_detection.utils.errors import ConfigError


def _configs(text: str = "") -> dict:
    config = text_format.Parse(text, pipeline_pb2.TrainEvalPipelineConfig())
    return config_util.create_configs_from_pipeline_proto(config)


def test_defaults_are_resolved_once():
    plans = plan_builder.build(_configs("""
        model { ssd { num_classes: 3 } }
        train_config { batch_size: 8 }
        eval_input_reader { label_map_path: "/x/label_map.pbtxt" }"""))
    assert plans.train.batch_size == 8
    assert plans.train.max_number_of_boxes == 100  # proto default
    assert plans.train.fine_tune is None
    assert plans.eval.batch_size == 8  # unset eval_config.batch_size: the training batch
    assert plans.eval_input.label_map_path == "/x/label_map.pbtxt"
    assert plans.eval_input.max_number_of_boxes == 100
    assert plans.num_classes == 3
    with pytest.raises(dataclasses.FrozenInstanceError):
        plans.train.batch_size = 2  # plans are frozen


def test_zero_max_boxes_without_validation_is_the_default():
    plans = plan_builder.build(_configs("""
        train_config { max_number_of_boxes: 0 }
        eval_input_reader { max_number_of_boxes: 0 }"""), validate=False)
    assert plans.train.max_number_of_boxes == 100
    assert plans.eval_input.max_number_of_boxes == 100


def test_a_set_eval_batch_size_wins():
    plans = plan_builder.build(_configs("train_config { batch_size: 8 } "
                                        "eval_config { batch_size: 1 }"))
    assert plans.eval.batch_size == 1


def test_eval_reader_max_boxes_is_its_own():
    plans = plan_builder.build(_configs("""
        train_config { max_number_of_boxes: 20 }
        eval_input_reader { max_number_of_boxes: 50 }"""))
    assert (plans.train.max_number_of_boxes, plans.eval_input.max_number_of_boxes) == (20, 50)


@pytest.mark.parametrize("train, kind", [
    ('fine_tune_checkpoint: "/c" fine_tune_checkpoint_type: "detection"', "detection"),
    ('fine_tune_checkpoint: "/c" fine_tune_checkpoint_type: "full"', "full"),
    ('fine_tune_checkpoint: "/c" from_detection_checkpoint: true', "detection"),  # TF1 switch
    ('fine_tune_checkpoint: "/c"', "classification"),  # the OD API default
])
def test_fine_tune_kind_is_resolved(train, kind):
    plans = plan_builder.build(_configs(f"train_config {{ {train} }}"))
    assert plans.train.fine_tune == plan_builder.FineTunePlan(checkpoint="/c", kind=kind)


def test_unknown_fine_tune_kind_is_a_config_error_naming_the_field():
    configs = _configs('train_config { fine_tune_checkpoint: "/c" '
                       'fine_tune_checkpoint_type: "backbone" }')
    with pytest.raises(ConfigError, match=r"^train_config\.fine_tune_checkpoint_type: "
                                          r"'backbone' is not supported"):
        plan_builder.build(configs, validate=False)


def test_a_broken_rule_names_the_field():
    with pytest.raises(ConfigError, match=r"^eval_input_reader\.0\.max_number_of_boxes: got 0"):
        plan_builder.build(_configs("eval_input_reader { max_number_of_boxes: 0 }"))


def test_sync_batch_norm_fields_are_named_by_path():
    plans = plan_builder.build(_configs("""
        model { ssd {
          feature_extractor { conv_hyperparams { sync_batch_norm { } } }
          box_predictor { weight_shared_convolutional_box_predictor {
            conv_hyperparams { batch_norm { } } } }
        } }"""))
    assert plans.sync_batch_norm_fields == (
        "model.ssd.feature_extractor.conv_hyperparams.sync_batch_norm",)
