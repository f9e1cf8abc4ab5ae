"""Builds the run plans: `train_config`, `eval_config` and the input readers as plain values.

Contract:
  - `training/`, `evaluation/` and `export/` read what a run does from these frozen dataclasses,
    never from the proto messages; every default is resolved here, once (a 0 or unset
    `max_number_of_boxes` is 100, an unset `eval_config.batch_size` is the training batch size,
    an unset `fine_tune_checkpoint_type` follows `from_detection_checkpoint`, ...).
  - `build` checks the rules of these messages first (`config_rules`), and the fine-tune kind is
    resolved and checked here, so a bad value (`train_config.fine_tune_checkpoint_type:
    "backbone"`) is a `ConfigError` naming the field when the plans are built (and at load
    time, by `config_rules.check_for_training`), before any model is built.
  - This module imports protobuf messages only (no TensorFlow), like `config_rules`.

Proto fields and the plan attributes that replace them (`configs` is the dict of
`config_util.get_configs_from_pipeline_file`; `plans = plan_builder.build(configs)`):

  configs["train_config"].batch_size                   plans.train.batch_size
  configs["train_config"].num_steps                    plans.train.num_steps
  configs["train_config"].max_number_of_boxes or 100   plans.train.max_number_of_boxes
  configs["train_config"].gradient_clipping_by_norm    plans.train.gradient_clipping_by_norm
  configs["train_config"].update_trainable_variables   plans.train.update_trainable_variables
  configs["train_config"].freeze_variables             plans.train.freeze_variables
  configs["train_config"].fine_tune_checkpoint         plans.train.fine_tune.checkpoint
  configs["train_config"].fine_tune_checkpoint_type    plans.train.fine_tune.kind (resolved)
  configs["train_config"].use_bfloat16                 plans.train.use_bfloat16
  configs["eval_config"].num_examples                  plans.eval.num_examples
  configs["eval_config"].metrics_set                   plans.eval.metrics_set
  configs["eval_config"].include_metrics_per_category  plans.eval.include_metrics_per_category
    (or all_metrics_per_category)
  configs["eval_config"].use_moving_averages           plans.eval.use_moving_averages
  configs["eval_config"].eval_interval_secs            plans.eval.eval_interval_secs
  configs["eval_config"].batch_size (or train's)       plans.eval.batch_size
  configs["eval_config"].num_visualizations, ...       plans.eval.visualization.<same name>
  configs["eval_input_config"].label_map_path          plans.eval_input.label_map_path
  configs["eval_input_config"].max_number_of_boxes     plans.eval_input.max_number_of_boxes
  configs["model"].ssd.num_classes                     plans.num_classes
  sync_batch_norm_fields(configs["model"])             plans.sync_batch_norm_fields

The model, optimizer and input pipelines are built by their own builders (`model_builder`,
`optimizer_builder`, `dataset_builder`) from the same `configs`.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from google.protobuf import message

from object_detection.builders import config_rules
from object_detection.protos import eval_pb2, input_reader_pb2, train_pb2

__all__ = ["DEFAULT_MAX_NUMBER_OF_BOXES", "FINE_TUNE_CHECKPOINT_TYPES", "EvalPlan",
           "FineTunePlan", "InputPlan", "RunPlans", "TrainPlan", "VisualizationPlan", "build",
           "eval_plan", "fine_tune_plan", "input_plan", "sync_batch_norm_fields", "train_plan"]

FINE_TUNE_CHECKPOINT_TYPES = config_rules.FINE_TUNE_CHECKPOINT_TYPES
DEFAULT_MAX_NUMBER_OF_BOXES = 100  # the proto default, also for an explicit 0


@dataclasses.dataclass(frozen=True)
class FineTunePlan:
    """`train_config.fine_tune_checkpoint` and what to load from it.

    checkpoint: the path as written (a checkpoint prefix or directory, or a Keras weights
      file); `training/checkpoints.resolve_fine_tune_checkpoint` finds the file.
    kind: one of FINE_TUNE_CHECKPOINT_TYPES: `classification` (the backbone only), `detection`
      or `full` (every variable).
    """

    checkpoint: str
    kind: str


@dataclasses.dataclass(frozen=True)
class TrainPlan:
    """What `train_config` asks of a training run (the optimizer: `optimizer_builder`)."""

    batch_size: int  # per replica, as in the seed's configs
    num_steps: int  # 0: not set (the run needs --num_train_steps)
    max_number_of_boxes: int  # ground truth padded to this many boxes
    gradient_clipping_by_norm: float  # 0: no clipping
    update_trainable_variables: tuple[str, ...]
    freeze_variables: tuple[str, ...]
    fine_tune: FineTunePlan | None  # None: no fine_tune_checkpoint
    use_bfloat16: bool


@dataclasses.dataclass(frozen=True)
class VisualizationPlan:
    """What `eval_config` asks of the side-by-side pictures (same field names)."""

    num_visualizations: int = 10
    min_score_threshold: float = 0.5
    max_num_boxes_to_visualize: int = 20
    skip_scores: bool = False
    skip_labels: bool = False
    visualize_groundtruth_boxes: bool = False
    groundtruth_box_visualization_color: str = "black"
    visualization_export_dir: str = ""
    keep_image_id_for_visualization_export: bool = False

    @classmethod
    def from_eval_config(cls, eval_config: eval_pb2.EvalConfig) -> VisualizationPlan:
        return cls(**{f.name: getattr(eval_config, f.name) for f in dataclasses.fields(cls)})


@dataclasses.dataclass(frozen=True)
class EvalPlan:
    """What `eval_config` asks of an evaluation."""

    batch_size: int  # eval_config.batch_size when set, else train_config.batch_size
    num_examples: int  # 0: every example
    metrics_set: tuple[str, ...]  # empty: the default set (evaluators.DEFAULT_METRICS_SET)
    include_metrics_per_category: bool  # include_ or all_metrics_per_category
    use_moving_averages: bool
    eval_interval_secs: int
    visualization: VisualizationPlan


@dataclasses.dataclass(frozen=True)
class InputPlan:
    """The plain values of one input reader that code outside `dataset_builder` needs."""

    path: str  # its config path, for messages: "train_input_reader", "eval_input_reader"
    label_map_path: str  # "" when none
    max_number_of_boxes: int
    sample_1_of_n_examples: int


@dataclasses.dataclass(frozen=True)
class RunPlans:
    """Every plan of a pipeline config."""

    train: TrainPlan
    eval: EvalPlan
    train_input: InputPlan
    eval_input: InputPlan | None  # None: the config has no eval_input_reader
    eval_inputs: tuple[InputPlan, ...]  # every eval_input_reader
    num_classes: int  # model.ssd.num_classes (0 for a config without an SSD model)
    sync_batch_norm_fields: tuple[str, ...]  # field paths of every sync_batch_norm in `model`


def build(configs: Mapping[str, Any], validate: bool = True) -> RunPlans:
    """The plans of a configs dict (`config_util.get_configs_from_pipeline_file`).

    Args:
      configs: the OD API dictionary of sub-configs.
      validate: check the rules of train_config, eval_config and the input readers first
        (`config_util` reports every broken rule at load; this raises the first). An unknown
        `fine_tune_checkpoint_type` is refused either way.

    Raises:
      ConfigError: a rule is broken, naming the field path.
    """
    train_config = configs.get("train_config") or train_pb2.TrainConfig()
    eval_config = configs.get("eval_config") or eval_pb2.EvalConfig()
    train_input = configs.get("train_input_config") or input_reader_pb2.InputReader()
    eval_input = configs.get("eval_input_config")
    eval_inputs = configs.get("eval_input_configs")
    if eval_inputs is None:
        eval_inputs = [eval_input] if eval_input is not None else []
    if validate:
        readers = [(train_input, "train_input_reader")] + [
            (r, f"eval_input_reader.{i}") for i, r in enumerate(eval_inputs)]
        config_rules.raise_first(
            config_rules.train_config_problems(train_config)
            + sum((config_rules.input_reader_problems(r, p) for r, p in readers), [])
            + config_rules.eval_config_problems(eval_config))
    model = configs.get("model")
    num_classes = model.ssd.num_classes if model is not None and \
        model.WhichOneof("model") == "ssd" else 0
    return RunPlans(
        train=train_plan(train_config),
        eval=eval_plan(eval_config, train_config),
        train_input=input_plan(train_input, "train_input_reader"),
        eval_input=None if eval_input is None else input_plan(eval_input, "eval_input_reader"),
        eval_inputs=tuple(input_plan(r, f"eval_input_reader.{i}")
                          for i, r in enumerate(eval_inputs)),
        num_classes=int(num_classes),
        sync_batch_norm_fields=tuple(sync_batch_norm_fields(model)) if model is not None
        else ())


def sync_batch_norm_fields(config: message.Message, path: str = "model") -> list[str]:
    """The field paths of every `sync_batch_norm` set in a config message (e.g. the model),
    with `[i]` for entries of repeated messages."""
    found = []
    for field, value in config.ListFields():
        if field.name == "sync_batch_norm":
            found.append(f"{path}.sync_batch_norm")
        elif field.message_type is not None:
            if hasattr(value, "ListFields"):
                found += sync_batch_norm_fields(value, f"{path}.{field.name}")
            else:  # repeated
                for i, item in enumerate(value):
                    found += sync_batch_norm_fields(item, f"{path}.{field.name}[{i}]")
    return found


def train_plan(train_config: train_pb2.TrainConfig, path: str = "train_config") -> TrainPlan:
    """TrainConfig -> TrainPlan (the fine-tune kind resolved and checked)."""
    return TrainPlan(
        batch_size=int(train_config.batch_size),
        num_steps=int(train_config.num_steps),
        max_number_of_boxes=int(train_config.max_number_of_boxes) or DEFAULT_MAX_NUMBER_OF_BOXES,
        gradient_clipping_by_norm=float(train_config.gradient_clipping_by_norm),
        update_trainable_variables=tuple(train_config.update_trainable_variables),
        freeze_variables=tuple(train_config.freeze_variables),
        fine_tune=fine_tune_plan(train_config, path),
        use_bfloat16=bool(train_config.use_bfloat16))


def fine_tune_plan(train_config: train_pb2.TrainConfig,
                   path: str = "train_config") -> FineTunePlan | None:
    """`fine_tune_checkpoint` and its kind; None without a checkpoint.

    The kind is `fine_tune_checkpoint_type` when given, else (OD API TF1)
    `detection` when `from_detection_checkpoint`, else `classification`.

    Raises:
      ConfigError: `fine_tune_checkpoint_type` is not one of FINE_TUNE_CHECKPOINT_TYPES.
    """
    config_rules.raise_first(config_rules.fine_tune_problems(train_config, path))
    if not train_config.fine_tune_checkpoint:
        return None
    kind = train_config.fine_tune_checkpoint_type or (
        "detection" if train_config.from_detection_checkpoint else "classification")
    return FineTunePlan(checkpoint=train_config.fine_tune_checkpoint, kind=kind)


def eval_plan(eval_config: eval_pb2.EvalConfig,
              train_config: train_pb2.TrainConfig | None = None) -> EvalPlan:
    """EvalConfig -> EvalPlan; an unset batch size is the training batch size."""
    train_config = train_config if train_config is not None else train_pb2.TrainConfig()
    batch_size = eval_config.batch_size if eval_config.HasField("batch_size") \
        else train_config.batch_size
    return EvalPlan(
        batch_size=max(1, int(batch_size)),
        num_examples=int(eval_config.num_examples or 0),
        metrics_set=tuple(eval_config.metrics_set),
        include_metrics_per_category=bool(eval_config.include_metrics_per_category
                                          or eval_config.all_metrics_per_category),
        use_moving_averages=bool(eval_config.use_moving_averages),
        eval_interval_secs=int(eval_config.eval_interval_secs),
        visualization=VisualizationPlan.from_eval_config(eval_config))


def input_plan(reader: input_reader_pb2.InputReader, path: str) -> InputPlan:
    """InputReader -> InputPlan; `path` names it in messages."""
    return InputPlan(
        path=path,
        label_map_path=reader.label_map_path,
        max_number_of_boxes=int(reader.max_number_of_boxes) or DEFAULT_MAX_NUMBER_OF_BOXES,
        sample_1_of_n_examples=max(1, int(reader.sample_1_of_n_examples or 1)))
