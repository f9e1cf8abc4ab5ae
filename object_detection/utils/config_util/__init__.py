"""Reads, overrides and writes pipeline configs (`TrainEvalPipelineConfig` text protos).

Contract:
  - A pipeline config file is an OD API text proto. It is merged with `text_format.Merge` into a
    fresh `TrainEvalPipelineConfig`, as the OD API does, so existing `pipeline.config` files load
    unchanged (a singular field given twice keeps the last value).
  - Every problem with a config raises `ConfigError` (a `ValueError`) whose message alone locates
    it, so callers can print `str(error)` instead of a traceback:
      * syntax errors name `file:line:column`, the enclosing field path, the unknown name and the
        closest valid one ("did you mean"), followed by the offending source line;
      * override errors name the override, the full dotted path, the value and the expected type
        or the valid field names;
      * range errors (the builders' `config_rules.validate_pipeline_config`, run by
        `config_rules.load_pipeline_configs`) name the field path, the value and the rule.
  - Overrides (`merge_overrides`) come in two forms:
      * dotted `path=value`: `train_config.batch_size=8`, `model.ssd.num_classes=3`,
        `eval_input_reader.0.shuffle=false`, `model.ssd.post_processing.score_converter=SIGMOID`.
        A path step that is a number indexes a repeated message (the index equal to the length
        appends an entry); a repeated message without an index applies the override to every
        entry. A repeated scalar field takes a list (`a,b` or `[a, b]`) that replaces its values.
        A message field takes a text-proto body (`...weighted_l2={}`, `...fpn={min_level: 3}`)
        that replaces it. Setting a field inside a oneof selects that oneof member. Bools are
        `true`/`false`, enums are given by name.
      * a text proto, used when a `{` comes before any `=`: `train_config { batch_size: 8 }`,
        merged with `text_format.Merge` as in the OD API's `--config_override` (so a repeated
        message given there is appended, a singular one is merged field by field).
    A list of overrides is applied all-or-nothing: on error the config is left unchanged.
  - `get_configs_from_pipeline_file` also applies `config_fields.check_pipeline_config`: a
    field the project does not support is refused by name, one it accepts without effect is
    logged once (docs/CONFIG_FIELDS.md lists them all).
  - Value rules are not checked here: each lives with the builder of the message it constrains
    (`builders/config_rules.py`, protobuf only), runs when that message is built, and the
    command-line entry points check them all at load, before TensorFlow is imported
    (`config_rules.load_pipeline_configs`). Unsigned proto fields (`train_config.num_steps`,
    `batch_size`, ...) cannot hold negative values: the parser and the override converter
    already reject them.

The package by job: this module is the OD API surface (read, split, join, write);
`overrides.py` applies overrides; `parse_errors.py` words parse errors.

Provenance: the dictionary keys and function names follow the OD API's `utils/config_util.py`.
"""
from __future__ import annotations

import os
import pathlib
import tempfile
from collections.abc import Mapping, Sequence
from typing import Any

from google.protobuf import text_format

from object_detection.protos import pipeline_pb2
from object_detection.utils import config_fields
from object_detection.utils.config_util import parse_errors
from object_detection.utils.config_util.overrides import merge_overrides
from object_detection.utils.errors import ConfigError

__all__ = [
    "PIPELINE_CONFIG_NAME",
    "create_configs_from_pipeline_proto",
    "create_pipeline_proto_from_configs",
    "get_configs_from_pipeline_file",
    "load_pipeline_config",
    "merge_overrides",
    "parse_pipeline_config_text",
    "save_pipeline_config",
]

PIPELINE_CONFIG_NAME = "pipeline.config"



# ------------------------------------------------------------------------------------------------
# Reading and writing.


def parse_pipeline_config_text(
        text: str, source: str = "<string>") -> pipeline_pb2.TrainEvalPipelineConfig:
    """Parses the text of a pipeline config.

    Args:
      text: a `TrainEvalPipelineConfig` in protobuf text format.
      source: name used in error messages, normally the file path.

    Returns:
      The parsed config.

    Raises:
      ConfigError: the text does not parse; the message gives `source:line:column`, the field path
        around the error, a close-match suggestion for a misspelt name, and the source line.
    """
    pipeline_config = pipeline_pb2.TrainEvalPipelineConfig()
    try:
        text_format.Merge(text, pipeline_config)
    except text_format.ParseError as error:
        raise ConfigError(
            parse_errors.describe(error, text, source, pipeline_config.DESCRIPTOR)) from None
    return pipeline_config


def load_pipeline_config(path: str | os.PathLike[str]) -> pipeline_pb2.TrainEvalPipelineConfig:
    """Reads a pipeline config file.

    Args:
      path: path of a text-format `TrainEvalPipelineConfig` (usually `pipeline.config`).

    Returns:
      The parsed config.

    Raises:
      ConfigError: the file cannot be read or does not parse (see `parse_pipeline_config_text`).
    """
    path = os.fspath(path)
    try:
        text = pathlib.Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: pipeline config file not found.") from None
    except IsADirectoryError:
        raise ConfigError(
            f"{path}: is a directory; expected a pipeline config file "
            f"(e.g. {os.path.join(path, PIPELINE_CONFIG_NAME)}).") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not a UTF-8 text file ({error.reason} at byte "
                          f"{error.start}).") from None
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the pipeline config: {error.strerror}.") from None
    return parse_pipeline_config_text(text, source=path)


def save_pipeline_config(pipeline_config: pipeline_pb2.TrainEvalPipelineConfig,
                         directory: str | os.PathLike[str]) -> pathlib.Path:
    """Writes `pipeline_config` as `<directory>/pipeline.config` in text format.

    The directory is created if needed, and the file is replaced atomically (written beside it,
    then renamed), so a reader never sees a partial file.

    Args:
      pipeline_config: the config to write.
      directory: output directory, e.g. the model directory.

    Returns:
      The path of the written file.

    Raises:
      TypeError: `pipeline_config` is not a `TrainEvalPipelineConfig`.
    """
    if not isinstance(pipeline_config, pipeline_pb2.TrainEvalPipelineConfig):
        raise TypeError(f"pipeline_config must be a TrainEvalPipelineConfig, got "
                        f"{type(pipeline_config).__name__}.")
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / PIPELINE_CONFIG_NAME
    text = text_format.MessageToString(pipeline_config)
    fd, tmp_name = tempfile.mkstemp(dir=directory, prefix=f".{PIPELINE_CONFIG_NAME}.",
                                    suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as tmp:
            tmp.write(text)
        os.replace(tmp_name, target)
    except BaseException:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
        raise
    return target


def create_configs_from_pipeline_proto(
        pipeline_config: pipeline_pb2.TrainEvalPipelineConfig) -> dict[str, Any]:
    """Splits a pipeline config into the OD API's dictionary of sub-configs.

    Args:
      pipeline_config: the whole config.

    Returns:
      A dict with `model` (DetectionModel), `train_config` (TrainConfig), `train_input_config`
      (InputReader), `eval_config` (EvalConfig), `eval_input_configs` (list of InputReader),
      `eval_input_config` (the first of those, or None if there is none) and, when the config has
      one, `graph_rewriter_config`. The values are the sub-messages of `pipeline_config` itself,
      not copies.
    """
    eval_input_configs = list(pipeline_config.eval_input_reader)
    configs: dict[str, Any] = {
        "model": pipeline_config.model,
        "train_config": pipeline_config.train_config,
        "train_input_config": pipeline_config.train_input_reader,
        "eval_config": pipeline_config.eval_config,
        "eval_input_configs": eval_input_configs,
        "eval_input_config": eval_input_configs[0] if eval_input_configs else None,
    }
    if pipeline_config.HasField("graph_rewriter"):
        configs["graph_rewriter_config"] = pipeline_config.graph_rewriter
    return configs


def create_pipeline_proto_from_configs(
        configs: Mapping[str, Any]) -> pipeline_pb2.TrainEvalPipelineConfig:
    """Builds a pipeline config from a dictionary as returned by `get_configs_from_pipeline_file`.

    Args:
      configs: keys as in `create_configs_from_pipeline_proto`; all are optional. When
        `eval_input_configs` is absent, `eval_input_config` (if not None) is used as the only eval
        input.

    Returns:
      A new config holding copies of the given messages.

    Raises:
      ConfigError: a key is not one of the known keys.
    """
    known = {"model", "train_config", "train_input_config", "eval_config", "eval_input_configs",
             "eval_input_config", "graph_rewriter_config"}
    unknown = sorted(set(configs) - known)
    if unknown:
        raise ConfigError(f"configs: unknown keys {unknown}; expected some of {sorted(known)}.")
    pipeline_config = pipeline_pb2.TrainEvalPipelineConfig()
    for key, field in (("model", "model"), ("train_config", "train_config"),
                       ("train_input_config", "train_input_reader"),
                       ("eval_config", "eval_config"),
                       ("graph_rewriter_config", "graph_rewriter")):
        if configs.get(key) is not None:
            getattr(pipeline_config, field).CopyFrom(configs[key])
    if "eval_input_configs" in configs:
        eval_inputs = list(configs["eval_input_configs"] or [])
    elif configs.get("eval_input_config") is not None:
        eval_inputs = [configs["eval_input_config"]]
    else:
        eval_inputs = []
    for reader in eval_inputs:
        pipeline_config.eval_input_reader.add().CopyFrom(reader)
    return pipeline_config


def get_configs_from_pipeline_file(
        pipeline_config_path: str | os.PathLike[str],
        config_override: str | Sequence[str] | None = None,
        *,
        validate: bool = True) -> dict[str, Any]:
    """Reads a pipeline config file, applies overrides, validates it and splits it.

    Args:
      pipeline_config_path: path of the text-format pipeline config.
      config_override: None, one override string, or a sequence of them, in either form accepted
        by `merge_overrides` (a text proto as in the OD API's `--config_override`, or `path=value`).
      validate: run `config_fields.check_pipeline_config` (unsupported fields refused, fields
        without effect logged once) on the result. The value rules belong to the builders
        (`builders.config_rules`): they run when a message is built, and the command-line
        entry points check them all at load (`config_rules.load_pipeline_configs`).

    Returns:
      The dictionary of `create_configs_from_pipeline_proto`.

    Raises:
      ConfigError: the file cannot be read or parsed, an override is invalid, or the config
        sets a field that is not supported.
    """
    pipeline_config = load_pipeline_config(pipeline_config_path)
    if config_override:
        merge_overrides(pipeline_config, config_override)
    if validate:
        config_fields.check_pipeline_config(pipeline_config)
    return create_configs_from_pipeline_proto(pipeline_config)


