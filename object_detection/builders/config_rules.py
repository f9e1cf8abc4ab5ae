"""The value rules of the pipeline config: one function per message, each rule once.

Contract:
  - Every function here takes a config message and its dotted field path and returns the list of
    broken rules, one message each, naming the field path, the value and the rule. It never
    raises, never builds anything and imports protobuf messages only, so the config front end
    (`utils/config_util`) checks a whole config at load time, before TensorFlow is imported, and
    reports every broken rule at once (`validate_pipeline_config`).
  - The builder of each message calls the function of its message before it builds, and raises
    the first problem (`raise_first`): `model_builder` (`ssd_problems`), `anchor_generator_builder`
    (`multiscale_anchor_generator_problems`), `matcher_builder` (`argmax_matcher_problems`),
    `optimizer_builder` (`optimizer_problems`, `learning_rate_problems`) and `plan_builder`
    (`train_config_problems`, `eval_config_problems`, `input_reader_problems`,
    `fine_tune_problems`). So a rule gives the same message whether the config is loaded or a
    builder is called directly.
  - Rules that need what a builder builds or reads (a registry of extractors, input files, a
    label map) stay in that builder. docs/CONFIG_RULES.md lists every rule and its one home.
  - Constructors of plain objects (core/, models/, core/learning_schedules) keep their own
    argument checks for callers that do not come from a config; they agree with the rules here.

Unsigned proto fields (`train_config.num_steps`, `batch_size`, ...) cannot hold negative values:
the parser and the override converter already reject them.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from object_detection.protos import (argmax_matcher_pb2, eval_pb2, input_reader_pb2,
                                     model_pb2, multiscale_anchor_generator_pb2, optimizer_pb2,
                                     pipeline_pb2, ssd_pb2, train_pb2)
from object_detection.utils import config_fields, config_util
from object_detection.utils.errors import ConfigError

__all__ = [
    "FINE_TUNE_CHECKPOINT_TYPES",
    "argmax_matcher_problems",
    "check_for_training",
    "eval_config_problems",
    "fine_tune_problems",
    "input_reader_problems",
    "learning_rate_problems",
    "model_problems",
    "multiscale_anchor_generator_problems",
    "optimizer_problems",
    "raise_all",
    "raise_first",
    "ssd_problems",
    "train_config_problems",
    "validate_pipeline_config",
]

# What `train_config.fine_tune_checkpoint_type` may say (`plan_builder` resolves it).
FINE_TUNE_CHECKPOINT_TYPES = ("classification", "detection", "full")

OPTIMIZERS = ("momentum_optimizer", "rms_prop_optimizer", "adam_optimizer")
LEARNING_RATES = ("constant_learning_rate", "exponential_decay_learning_rate",
                  "manual_step_learning_rate", "cosine_decay_learning_rate")


# ------------------------------------------------------------------------------------------------
# Raising.


def raise_first(problems: list[str]) -> None:
    """Raises ConfigError with the first problem, if any (what a builder does)."""
    if problems:
        raise ConfigError(problems[0])


def raise_all(problems: list[str]) -> None:
    """Raises ConfigError listing every problem, if any (what the front end does at load)."""
    if len(problems) == 1:
        raise ConfigError(problems[0])
    if problems:
        raise ConfigError(f"{len(problems)} problems in the pipeline config:\n"
                          + "\n".join(f"  {p}" for p in problems))


def _fmt(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _require(problems: list[str], ok: bool, path: str, value: Any, rule: str) -> None:
    if not ok:
        problems.append(f"{path}: got {_fmt(value)}; must be {rule}.")


def _levels(problems: list[str], path: str, config: Any) -> None:
    if config.min_level > config.max_level:
        problems.append(f"{path}: need min_level ({config.min_level}) <= max_level "
                        f"({config.max_level}).")


# ------------------------------------------------------------------------------------------------
# The whole config.


def validate_pipeline_config(pipeline_config: pipeline_pb2.TrainEvalPipelineConfig) -> None:
    """Checks every value rule of a pipeline config; what the front end runs at load time.

    Rules: those of `train_config_problems` and `optimizer_problems` (train_config),
    `input_reader_problems` (train and every eval input reader), `eval_config_problems` and,
    for an SSD model, `ssd_problems`. An optimizer or a schedule need not be set here (export
    and evaluation need none); `check_for_training` asks for them.

    Raises:
      ConfigError: one line per broken rule, each naming the field path, the value and the rule.
    """
    problems: list[str] = []
    train = pipeline_config.train_config
    problems += train_config_problems(train)
    problems += optimizer_problems(train.optimizer, required=False)
    readers = [("train_input_reader", pipeline_config.train_input_reader)] + [
        (f"eval_input_reader.{i}", reader)
        for i, reader in enumerate(pipeline_config.eval_input_reader)]
    for path, reader in readers:
        problems += input_reader_problems(reader, path)
    problems += eval_config_problems(pipeline_config.eval_config)
    if pipeline_config.model.WhichOneof("model") == "ssd":
        problems += ssd_problems(pipeline_config.model.ssd)
    raise_all(problems)


def check_for_training(configs: Mapping[str, Any]) -> None:
    """The parts a training run needs beyond valid values: a model, an optimizer with a
    learning-rate schedule, and a known `fine_tune_checkpoint_type`; and no field the project
    does not support (`config_fields.check_pipeline_config`, for configs built without
    `get_configs_from_pipeline_file`).

    Args:
      configs: the OD API dictionary of sub-configs (`model`, `train_config`, ...).

    Raises:
      ConfigError: the unsupported fields, or the first missing or unknown part, naming it
        and what to write.
    """
    config_fields.check_pipeline_config(config_util.create_pipeline_proto_from_configs(configs))
    problems = model_problems(configs.get("model"))
    train_config = configs.get("train_config")
    if train_config is None:
        problems += optimizer_problems(None)
    else:
        problems += optimizer_problems(train_config.optimizer)
        problems += fine_tune_problems(train_config)
    raise_first(problems)


# ------------------------------------------------------------------------------------------------
# train_config, eval_config, input readers (plan_builder).


def train_config_problems(train: train_pb2.TrainConfig, path: str = "train_config") -> list[str]:
    """`batch_size > 0`; `max_number_of_boxes > 0`."""
    problems: list[str] = []
    _require(problems, train.batch_size > 0, f"{path}.batch_size", train.batch_size, "> 0")
    _require(problems, train.max_number_of_boxes > 0, f"{path}.max_number_of_boxes",
             train.max_number_of_boxes, "> 0")
    return problems


def fine_tune_problems(train: train_pb2.TrainConfig, path: str = "train_config") -> list[str]:
    """With a `fine_tune_checkpoint`, a `fine_tune_checkpoint_type` (when given) that is one of
    FINE_TUNE_CHECKPOINT_TYPES."""
    kind = train.fine_tune_checkpoint_type
    if train.fine_tune_checkpoint and kind and kind not in FINE_TUNE_CHECKPOINT_TYPES:
        return [f"{path}.fine_tune_checkpoint_type: {kind!r} is not supported; expected one "
                f"of {list(FINE_TUNE_CHECKPOINT_TYPES)}."]
    return []


def eval_config_problems(eval_config: eval_pb2.EvalConfig,
                         path: str = "eval_config") -> list[str]:
    """`batch_size > 0`."""
    problems: list[str] = []
    _require(problems, eval_config.batch_size > 0, f"{path}.batch_size", eval_config.batch_size,
             "> 0")
    return problems


def input_reader_problems(reader: input_reader_pb2.InputReader, path: str) -> list[str]:
    """`max_number_of_boxes > 0`."""
    problems: list[str] = []
    _require(problems, reader.max_number_of_boxes > 0, f"{path}.max_number_of_boxes",
             reader.max_number_of_boxes, "> 0")
    return problems


# ------------------------------------------------------------------------------------------------
# model (model_builder, anchor_generator_builder, matcher_builder).


def model_problems(model: model_pb2.DetectionModel | None, path: str = "model") -> list[str]:
    """A model is set (training needs one; `model_builder` says which kinds it builds)."""
    if model is None or not model.WhichOneof("model"):
        return [f"{path}: no model is set; expected e.g. 'model {{ ssd {{ ... }} }}'."]
    return []


def ssd_problems(ssd: ssd_pb2.Ssd, path: str = "model.ssd") -> list[str]:
    """`num_classes > 0`; the pyramid's and the anchors' `min_level <= max_level`, and the same
    levels for both (one anchor grid per feature map); the argmax matcher's thresholds."""
    problems: list[str] = []
    _require(problems, ssd.num_classes > 0, f"{path}.num_classes", ssd.num_classes,
             "> 0 (foreground classes, background excluded)")

    extractor = ssd.feature_extractor
    # No pyramid message: model_builder builds an fpn with its default levels.
    pyramid_name = extractor.WhichOneof("feature_pyramid_oneof") or "fpn"
    pyramid = getattr(extractor, pyramid_name)
    pyramid_path = f"{path}.feature_extractor.{pyramid_name}"
    _levels(problems, pyramid_path, pyramid)

    if ssd.anchor_generator.WhichOneof("anchor_generator_oneof") == "multiscale_anchor_generator":
        anchors = ssd.anchor_generator.multiscale_anchor_generator
        anchors_path = f"{path}.anchor_generator.multiscale_anchor_generator"
        problems += multiscale_anchor_generator_problems(anchors, anchors_path)
        if (anchors.min_level, anchors.max_level) != (pyramid.min_level, pyramid.max_level):
            problems.append(
                f"{anchors_path}: levels {anchors.min_level}..{anchors.max_level} differ from "
                f"{pyramid_path} levels {pyramid.min_level}..{pyramid.max_level}; each feature "
                f"map needs its own anchor grid, so the levels must be the same.")

    if ssd.matcher.WhichOneof("matcher_oneof") == "argmax_matcher":
        problems += argmax_matcher_problems(ssd.matcher.argmax_matcher,
                                            f"{path}.matcher.argmax_matcher")
    return problems


def multiscale_anchor_generator_problems(
        anchors: multiscale_anchor_generator_pb2.MultiscaleAnchorGenerator, path: str) -> list[str]:
    """`min_level <= max_level`."""
    problems: list[str] = []
    _levels(problems, path, anchors)
    return problems


def argmax_matcher_problems(matcher: argmax_matcher_pb2.ArgMaxMatcher, path: str) -> list[str]:
    """`0 <= unmatched_threshold <= matched_threshold <= 1`, and the two different with
    `negatives_lower_than_unmatched: false` (negatives then lie between them); unless
    `ignore_thresholds`."""
    unmatched, matched = matcher.unmatched_threshold, matcher.matched_threshold
    if matcher.ignore_thresholds:
        return []
    if not 0.0 <= unmatched <= matched <= 1.0:
        return [f"{path}: need 0 <= unmatched_threshold ({_fmt(unmatched)}) <= "
                f"matched_threshold ({_fmt(matched)}) <= 1."]
    if not matcher.negatives_lower_than_unmatched and unmatched == matched:
        return [f"{path}: with negatives_lower_than_unmatched: false the negatives lie between "
                f"the thresholds, so need unmatched_threshold ({_fmt(unmatched)}) < "
                f"matched_threshold ({_fmt(matched)})."]
    return []


# ------------------------------------------------------------------------------------------------
# train_config.optimizer (optimizer_builder).


def optimizer_problems(optimizer: optimizer_pb2.Optimizer | None,
                       path: str = "train_config.optimizer", required: bool = True
                       ) -> list[str]:
    """An optimizer and a schedule are set (when `required`); averaging factors
    (`momentum_optimizer_value`, `decay`) in [0, 1]; `epsilon > 0`; with `use_moving_average`,
    `moving_average_decay` in (0, 1); the rules of `learning_rate_problems`."""
    which = optimizer.WhichOneof("optimizer") if optimizer is not None else None
    if not which:
        if not required:
            return []
        return [f"{path}: no optimizer is set; expected one of {', '.join(OPTIMIZERS)}, e.g. "
                "'train_config { optimizer { momentum_optimizer { learning_rate { "
                "cosine_decay_learning_rate { ... } } } } }'."]
    problems: list[str] = []
    settings = getattr(optimizer, which)
    for field in ("momentum_optimizer_value", "decay"):  # averaging factors
        if field in settings.DESCRIPTOR.fields_by_name:
            value = getattr(settings, field)
            _require(problems, 0.0 <= value <= 1.0, f"{path}.{which}.{field}", value,
                     "in [0, 1]")
    if "epsilon" in settings.DESCRIPTOR.fields_by_name:
        _require(problems, settings.epsilon > 0.0, f"{path}.{which}.epsilon", settings.epsilon,
                 "> 0")
    problems += learning_rate_problems(settings.learning_rate, f"{path}.{which}.learning_rate",
                                       required=required)
    if optimizer.use_moving_average and not 0.0 < optimizer.moving_average_decay < 1.0:
        problems.append(f"{path}.moving_average_decay: must be in (0, 1), got "
                        f"{optimizer.moving_average_decay}.")
    return problems


def learning_rate_problems(learning_rate: optimizer_pb2.LearningRate, path: str,
                           required: bool = True) -> list[str]:
    """A schedule is set (when `required`); rates `>= 0`; exponential decay `decay_steps > 0`;
    manual-step steps strictly increasing; cosine decay `total_steps > 0`,
    `warmup_steps + hold_base_rate_steps <= total_steps` and, with a warm-up,
    `warmup_learning_rate <= learning_rate_base`."""
    schedule = learning_rate.WhichOneof("learning_rate")
    if not schedule:
        if not required:
            return []
        return [f"{path}: no schedule is set; expected one of {', '.join(LEARNING_RATES)}."]
    problems: list[str] = []
    config = getattr(learning_rate, schedule)
    lr_path = f"{path}.{schedule}"

    def non_negative(field: str, value: float | None = None, field_path: str | None = None):
        value = getattr(config, field) if value is None else value
        _require(problems, value >= 0.0, field_path or f"{lr_path}.{field}", value, ">= 0")

    if schedule == "constant_learning_rate":
        non_negative("learning_rate")
    elif schedule == "exponential_decay_learning_rate":
        for field in ("initial_learning_rate", "burnin_learning_rate", "min_learning_rate"):
            non_negative(field)
        _require(problems, config.decay_steps > 0, f"{lr_path}.decay_steps", config.decay_steps,
                 "> 0")
    elif schedule == "manual_step_learning_rate":
        non_negative("initial_learning_rate")
        previous = None
        for i, entry in enumerate(config.schedule):
            non_negative("learning_rate", entry.learning_rate,
                         f"{lr_path}.schedule.{i}.learning_rate")
            if previous is not None and entry.step <= previous:
                problems.append(f"{lr_path}.schedule.{i}.step: got {entry.step}; steps must be "
                                f"strictly increasing (previous step is {previous}).")
            previous = entry.step
    elif schedule == "cosine_decay_learning_rate":
        non_negative("learning_rate_base")
        non_negative("warmup_learning_rate")
        if config.total_steps <= 0:
            problems.append(f"{lr_path}.total_steps: must be > 0, got {config.total_steps}.")
        # The decay starts after the warm-up and the hold: both must fit in total_steps.
        warmup, hold = config.warmup_steps, config.hold_base_rate_steps
        if warmup + hold > config.total_steps:
            held = f" + hold_base_rate_steps ({hold})" if hold else ""
            problems.append(f"{lr_path}: need warmup_steps ({warmup}){held} <= total_steps "
                            f"({config.total_steps}).")
        if warmup > 0 and config.warmup_learning_rate > config.learning_rate_base:
            problems.append(
                f"{lr_path}: need warmup_learning_rate ({_fmt(config.warmup_learning_rate)}) "
                f"<= learning_rate_base ({_fmt(config.learning_rate_base)}) when warmup_steps "
                "> 0.")
    return problems


def load_pipeline_configs(pipeline_config_path, config_override=None) -> dict[str, Any]:
    """Reads a pipeline config (`config_util.get_configs_from_pipeline_file`: syntax,
    overrides, supported fields) and checks every value rule (`validate_pipeline_config`):
    what the command-line entry points call, so that a bad value is reported at load time,
    before TensorFlow is imported, with all broken rules at once.

    Raises:
      ConfigError: as `get_configs_from_pipeline_file` and `validate_pipeline_config`.
    """
    configs = config_util.get_configs_from_pipeline_file(pipeline_config_path,
                                                         config_override=config_override)
    validate_pipeline_config(config_util.create_pipeline_proto_from_configs(configs))
    return configs
