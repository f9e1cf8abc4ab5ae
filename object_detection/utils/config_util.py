"""Reads, overrides, validates and writes pipeline configs (`TrainEvalPipelineConfig` text protos).

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
      * range errors (`validate_pipeline_config`) name the field path, the value and the rule.
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
  - `get_configs_from_pipeline_file` (and `check_for_training`) also applies
    `config_fields.check_pipeline_config`: a field the project does not support is refused by
    name, one it accepts without effect is logged once (docs/CONFIG_FIELDS.md lists them all).
  - `validate_pipeline_config` checks the value rules of every message, all at once; the rules
    live with the builders (`builders/config_rules.py`, which imports protobuf only, so a config
    is checked before TensorFlow is imported). Unsigned proto fields (`train_config.num_steps`,
    `batch_size`, ...) cannot hold negative values: the parser and the override converter
    already reject them.

Provenance: the dictionary keys and function names follow the OD API's `utils/config_util.py`.
"""
from __future__ import annotations

import dataclasses
import difflib
import os
import pathlib
import re
import tempfile
from collections.abc import Mapping, Sequence
from typing import Any

from google.protobuf import descriptor as _descriptor
from google.protobuf import descriptor_pool, message, text_format

from object_detection.builders import config_rules
from object_detection.protos import pipeline_pb2
from object_detection.utils import config_fields
from object_detection.utils.errors import ConfigError

__all__ = [
    "PIPELINE_CONFIG_NAME",
    "check_for_training",
    "create_configs_from_pipeline_proto",
    "create_pipeline_proto_from_configs",
    "get_configs_from_pipeline_file",
    "load_pipeline_config",
    "merge_overrides",
    "parse_pipeline_config_text",
    "save_pipeline_config",
    "validate_pipeline_config",
]

PIPELINE_CONFIG_NAME = "pipeline.config"

_FD = _descriptor.FieldDescriptor
_INT_RANGES = {
    _FD.CPPTYPE_INT32: (-(2**31), 2**31 - 1, "a 32-bit integer (int32)"),
    _FD.CPPTYPE_INT64: (-(2**63), 2**63 - 1, "a 64-bit integer (int64)"),
    _FD.CPPTYPE_UINT32: (0, 2**32 - 1, "an unsigned 32-bit integer (uint32, >= 0)"),
    _FD.CPPTYPE_UINT64: (0, 2**64 - 1, "an unsigned 64-bit integer (uint64, >= 0)"),
}


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
            _describe_parse_error(error, text, source, pipeline_config.DESCRIPTOR)) from None
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
        without effect logged once) and `validate_pipeline_config` on the result.

    Returns:
      The dictionary of `create_configs_from_pipeline_proto`.

    Raises:
      ConfigError: the file cannot be read or parsed, an override is invalid, the config sets
        a field that is not supported, or a rule of `validate_pipeline_config` is broken.
    """
    pipeline_config = load_pipeline_config(pipeline_config_path)
    if config_override:
        merge_overrides(pipeline_config, config_override)
    if validate:
        config_fields.check_pipeline_config(pipeline_config)
        validate_pipeline_config(pipeline_config)
    return create_configs_from_pipeline_proto(pipeline_config)


# What `train_config.fine_tune_checkpoint_type` may say (builders/plan_builder resolves it).
FINE_TUNE_CHECKPOINT_TYPES = config_rules.FINE_TUNE_CHECKPOINT_TYPES


def check_for_training(configs: Mapping[str, Any]) -> None:
    """Checks that a configs dict holds what a training run needs beyond valid ranges.

    Needs a model (`model { ssd { ... } }`), an optimizer with a learning-rate schedule
    (`train_config { optimizer { momentum_optimizer { learning_rate { ... } } } }`) and a known
    `fine_tune_checkpoint_type` (`builders.config_rules.check_for_training`), and no field
    the project does not support (`config_fields.check_pipeline_config`, for configs built
    without `get_configs_from_pipeline_file`). Input paths are not checked here: the input
    pipeline reports missing files, and synthetic-data runs need none.

    Args:
      configs: as returned by `get_configs_from_pipeline_file`.

    Raises:
      ConfigError: naming the missing part and what to write, or the unsupported fields.
    """
    config_fields.check_pipeline_config(create_pipeline_proto_from_configs(configs))
    config_rules.check_for_training(configs)


# ------------------------------------------------------------------------------------------------
# Overrides.


def merge_overrides(pipeline_config: pipeline_pb2.TrainEvalPipelineConfig,
                    overrides: str | Sequence[str]) -> pipeline_pb2.TrainEvalPipelineConfig:
    """Applies overrides to `pipeline_config` in place (see the module docstring for the syntax).

    Args:
      pipeline_config: the config to change.
      overrides: one override string or a sequence of them, applied in order. Empty strings are
        skipped.

    Returns:
      `pipeline_config`, for chaining.

    Raises:
      ConfigError: an override does not parse, names an unknown field or index, or gives a value
        of the wrong type. `pipeline_config` is then left unchanged.
    """
    if isinstance(overrides, str):
        overrides = [overrides]
    work = type(pipeline_config)()
    work.CopyFrom(pipeline_config)
    for override in overrides:
        if not isinstance(override, str):
            raise TypeError(f"overrides must be strings, got {type(override).__name__}: "
                            f"{override!r}.")
        text = override.strip()
        if not text:
            continue
        brace, equals = text.find("{"), text.find("=")
        if brace != -1 and (equals == -1 or brace < equals):
            _merge_text_override(work, text)
        elif equals != -1:
            _apply_dotted_override(work, text)
        else:
            raise ConfigError(
                f"override {text!r}: expected 'path=value' (e.g. 'train_config.batch_size=8') or "
                f"a text proto (e.g. 'train_config {{ batch_size: 8 }}').")
    pipeline_config.CopyFrom(work)
    return pipeline_config


def _merge_text_override(config: message.Message, text: str) -> None:
    try:
        text_format.Merge(text, config)
    except text_format.ParseError as error:
        raise ConfigError(_describe_parse_error(
            error, text, f"override {text!r}", config.DESCRIPTOR, is_file=False)) from None


def _apply_dotted_override(config: message.Message, override: str) -> None:
    path_text, _, value = override.partition("=")
    parts = [part.strip() for part in path_text.strip().split(".")]
    if not path_text.strip() or any(not part for part in parts):
        raise ConfigError(f"override {override!r}: the path {path_text.strip()!r} is not a "
                          f"dotted field path like 'train_config.batch_size'.")
    _set_path(config, parts, value.strip(), "", _OverrideContext(override, ".".join(parts)))


@dataclasses.dataclass(frozen=True)
class _OverrideContext:
    """What an override error message needs besides the local path."""

    override: str
    full_path: str

    def error(self, path: str, text: str) -> ConfigError:
        return ConfigError(f"override {self.override!r}: {path}: {text}")


def _set_path(msg: message.Message, parts: list[str], value: str, done: str,
              ctx: _OverrideContext) -> None:
    name, rest = parts[0], parts[1:]
    field = _lookup_field(msg, name, done, ctx)
    path = f"{done}.{name}" if done else name

    if _is_map(field):
        raise ctx.error(path, "is a map field; set it with the text-proto form, e.g. "
                              f"'{_text_proto_example(path)}'.")

    if field.cpp_type == _FD.CPPTYPE_MESSAGE:
        if not field.is_repeated:
            sub = getattr(msg, name)
            if rest:
                _set_path(sub, rest, value, path, ctx)
            else:
                _assign_message(sub, value, path, ctx)
            return
        container = getattr(msg, name)
        if rest and _is_index(rest[0]):
            index = _checked_index(rest[0], len(container), path, ctx)
            element = container.add() if index == len(container) else container[index]
            element_path = f"{path}.{index}"
            if len(rest) == 1:
                _assign_message(element, value, element_path, ctx)
            else:
                _set_path(element, rest[1:], value, element_path, ctx)
            return
        if not rest:
            raise ctx.error(path, "is a repeated message; address one entry by index "
                                  f"(e.g. '{path}.0.<field>=...') or use the text-proto form.")
        if not container:
            raise ctx.error(path, f"has no entries to apply '{'.'.join(rest)}' to; add one "
                                  f"with an index, e.g. '{path}.0.{'.'.join(rest)}=...'.")
        for index, element in enumerate(container):
            _set_path(element, rest, value, f"{path}.{index}", ctx)
        return

    if field.is_repeated:
        container = getattr(msg, name)
        if not rest:
            values = [_convert_scalar(field, item, path, ctx) for item in _split_list(value)]
            del container[:]
            container.extend(values)
            return
        if len(rest) == 1 and _is_index(rest[0]):
            index = _checked_index(rest[0], len(container), path, ctx)
            converted = _convert_scalar(field, value, f"{path}.{index}", ctx)
            if index == len(container):
                container.append(converted)
            else:
                container[index] = converted
            return
        raise ctx.error(path, f"is a repeated scalar field ({_type_name(field)}); it has no "
                              f"field {rest[0]!r} (give a list, or one index).")

    if rest:
        raise ctx.error(path, f"is a scalar field ({_type_name(field)}); it has no field "
                              f"{rest[0]!r}.")
    setattr(msg, name, _convert_scalar(field, value, path, ctx))


def _lookup_field(msg: message.Message, name: str, done: str,
                  ctx: _OverrideContext) -> _descriptor.FieldDescriptor:
    fields = msg.DESCRIPTOR.fields_by_name
    if name in fields:
        return fields[name]
    valid = sorted(fields)
    where = done or "the top level"
    raise ConfigError(
        f"override {ctx.override!r}: {ctx.full_path}: unknown field {name!r} in {where} "
        f"(message {msg.DESCRIPTOR.full_name}){_suggest(name, valid) or '.'} "
        f"Valid fields in {where}: {', '.join(valid)}.")


def _assign_message(sub: message.Message, value: str, path: str, ctx: _OverrideContext) -> None:
    """Replaces `sub` with the text-proto body `value` and marks it present (selecting a oneof)."""
    body = value.strip()
    if body.startswith("{") and body.endswith("}"):
        body = body[1:-1]
    replacement = type(sub)()
    try:
        text_format.Merge(body, replacement)
    except text_format.ParseError as error:
        detail = _explain(_strip_location(str(error)))
        raise ctx.error(path, f"cannot use {value!r}: expected a text proto of "
                              f"{sub.DESCRIPTOR.full_name} such as '{{}}' or "
                              f"'{{ field: value }}' ({detail}).") from None
    sub.Clear()
    sub.MergeFrom(replacement)
    sub.SetInParent()


def _convert_scalar(field: _descriptor.FieldDescriptor, raw: str, path: str,
                    ctx: _OverrideContext) -> Any:
    text = raw.strip()
    cpp_type = field.cpp_type

    def bad(expected: str) -> ConfigError:
        end = "" if expected.endswith("?") else "."
        return ctx.error(path, f"cannot use {raw!r}: expected {expected}{end}")

    if cpp_type == _FD.CPPTYPE_BOOL:
        if text.lower() in ("true", "false"):
            return text.lower() == "true"
        raise bad("a bool (true or false)")
    if cpp_type in _INT_RANGES:
        low, high, description = _INT_RANGES[cpp_type]
        try:
            number = int(text, 10)
        except ValueError:
            raise bad(description) from None
        if not low <= number <= high:
            raise bad(description)
        return number
    if cpp_type in (_FD.CPPTYPE_FLOAT, _FD.CPPTYPE_DOUBLE):
        try:
            return float(text)
        except ValueError:
            raise bad("a number (float)") from None
    if cpp_type == _FD.CPPTYPE_ENUM:
        enum = field.enum_type
        if text in enum.values_by_name:
            return enum.values_by_name[text].number
        if re.fullmatch(r"[+-]?\d+", text) and int(text) in enum.values_by_number:
            return int(text)
        names = [v.name for v in enum.values]
        raise bad(f"one of the {enum.full_name} values {names}{_suggest(text, names)}")
    if cpp_type == _FD.CPPTYPE_STRING:
        if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
            text = text[1:-1]
        return text.encode("utf-8") if field.type == _FD.TYPE_BYTES else text
    raise bad(f"a value of protobuf type {field.type}")  # not reached for declared scalar types


def _split_list(value: str) -> list[str]:
    """`a, b` or `[a, b]` -> ['a', 'b']; `[]` -> []. Commas inside quotes do not split."""
    text = value.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if not text.strip():
        return []
    items, current, quote = [], [], None
    for char in text:
        if quote:
            current.append(char)
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
            current.append(char)
        elif char == ",":
            items.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    items.append("".join(current).strip())
    return items


def _is_index(part: str) -> bool:
    return re.fullmatch(r"-?\d+", part) is not None


def _checked_index(part: str, length: int, path: str, ctx: _OverrideContext) -> int:
    """An index into a repeated field of `length` entries; `length` itself appends one."""
    index = int(part)
    if not 0 <= index <= length:
        raise ctx.error(path, f"index {index} is out of range: it has {length} entries "
                              f"(use 0..{length}; {length} appends a new entry).")
    return index


def _is_map(field: _descriptor.FieldDescriptor) -> bool:
    return (field.cpp_type == _FD.CPPTYPE_MESSAGE and field.is_repeated
            and field.message_type.GetOptions().map_entry)


def _type_name(field: _descriptor.FieldDescriptor) -> str:
    if field.cpp_type == _FD.CPPTYPE_ENUM:
        return f"enum {field.enum_type.name}"
    names = {_FD.CPPTYPE_BOOL: "bool", _FD.CPPTYPE_FLOAT: "float", _FD.CPPTYPE_DOUBLE: "double",
             _FD.CPPTYPE_STRING: "string", _FD.CPPTYPE_INT32: "int32", _FD.CPPTYPE_INT64: "int64",
             _FD.CPPTYPE_UINT32: "uint32", _FD.CPPTYPE_UINT64: "uint64"}
    return names.get(field.cpp_type, "scalar")


def _text_proto_example(path: str) -> str:
    parts = [p for p in path.split(".") if not _is_index(p)]
    return " { ".join(parts[:-1] + [f"{parts[-1]} {{ key: ... value: ... }}"]) + " }" * (
        len(parts) - 1)


def _suggest(name: str, candidates: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


# ------------------------------------------------------------------------------------------------
# Parse error messages.

_LOCATION_PREFIX = re.compile(r"^\d+:\d+ : ")
_NO_FIELD = re.compile(r'^Message type "([\w.]+)" has no field named "([^"]+)"\.?$')
_NO_ENUM_VALUE = re.compile(r'^Enum type "([\w.]+)" has no value named ([^ .]+)\.?$')
_TOKEN = re.compile(r"""
    (?P<comment>\#[^\n]*)
  | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
  | (?P<number>[-+]?(?:\d|\.\d)[\w.+-]*)
  | (?P<ident>[A-Za-z_]\w*)
  | (?P<open>[{<])
  | (?P<close>[}>])
  | (?P<colon>:)
  | (?P<lbracket>\[)
  | (?P<rbracket>\])
  | (?P<other>\S)
""", re.X)


def _strip_location(text: str) -> str:
    return _LOCATION_PREFIX.sub("", text)


def _describe_parse_error(error: text_format.ParseError, text: str, source: str,
                          root: _descriptor.Descriptor, is_file: bool = True) -> str:
    """Turns a ParseError into 'source:line:col: what; did you mean ...? (at path)' + source line.

    For a string that is not a file (`is_file=False`) the location reads
    'source, line L, column C: ...'.
    """
    line, column = error.GetLine(), error.GetColumn()
    lines = text.splitlines()
    source_line = lines[line - 1] if line and 0 < line <= len(lines) else None
    detail = _strip_location(str(error))
    if source_line is not None:
        quoted = re.match(r"^'(.*)': ", detail, re.S)
        if quoted and quoted.group(1).strip() == source_line.strip():
            detail = detail[quoted.end():]
    detail = _explain(detail)
    if not line:
        location = source
    elif is_file:
        location = f"{source}:{line}:{column}"
    else:
        location = f"{source}, line {line}, column {column}"
    context = _context_path(text, line, column, root) if line else ""
    message_text = f"{location}: {detail}" + (f" (at {context})" if context else "")
    if source_line is not None and column:
        caret = " " * (max(column, 1) - 1) + "^"
        message_text += f"\n    {source_line.rstrip()}\n    {caret}"
    return message_text


def _explain(detail: str) -> str:
    """Rewrites protobuf's wording of the two common mistakes and adds a suggestion."""
    detail = detail.strip()
    match = _NO_FIELD.match(detail)
    if match:
        type_name, field_name = match.groups()
        names = _message_field_names(type_name)
        suggestion = _suggest(field_name, names).replace("'", '"')
        text = f'message "{type_name}" has no field named "{field_name}"{suggestion}'
        if not suggestion and names:
            text += f"; its fields are: {', '.join(names)}"
        return text
    match = _NO_ENUM_VALUE.match(detail)
    if match:
        type_name, value = match.groups()
        names = _enum_value_names(type_name)
        suggestion = _suggest(value, names).replace("'", '"')
        text = f'enum "{type_name}" has no value named "{value}"{suggestion}'
        if names:
            text += (" Valid" if suggestion else "; valid") + f" values: {', '.join(names)}"
        return text
    return detail.rstrip(".")


def _message_field_names(full_name: str) -> list[str]:
    try:
        return sorted(descriptor_pool.Default().FindMessageTypeByName(full_name).fields_by_name)
    except KeyError:
        return []


def _enum_value_names(full_name: str) -> list[str]:
    try:
        return [v.name for v in descriptor_pool.Default().FindEnumTypeByName(full_name).values]
    except KeyError:
        return []


def _context_path(text: str, line: int, column: int, root: _descriptor.Descriptor) -> str:
    """Dotted path of the field being parsed at (line, column), e.g. 'model.ssd' or
    'train_config.batch_size', with indices for repeated messages as overrides write them."""
    lines = text.splitlines(keepends=True)
    offset = sum(len(l) for l in lines[:line - 1]) + max(column - 1, 0)
    # Each frame: (path parts, descriptor or None, counts of repeated children seen).
    stack: list[tuple[list[str], _descriptor.Descriptor | None, dict[str, int]]] = [
        ([], root, {})]
    last_ident = None
    value_field = None  # field whose value follows a ':' (or is inside its [...] list)
    in_list = False
    for token in _TOKEN.finditer(text, 0, offset):
        kind = token.lastgroup
        if kind == "comment":
            continue
        if kind == "ident":
            if in_list:
                continue
            if value_field is not None:
                value_field = None  # the identifier was a value (e.g. an enum name)
                last_ident = None
                continue
            last_ident = token.group()
        elif kind == "colon":
            value_field = last_ident
        elif kind == "lbracket":
            in_list = value_field is not None
        elif kind == "rbracket":
            in_list = False
            value_field = None
            last_ident = None
        elif kind == "open":
            parts, desc, counts = stack[-1]
            name = last_ident or "?"
            child_desc = None
            child_parts = parts + [name]
            if desc is not None and name in desc.fields_by_name:
                field = desc.fields_by_name[name]
                child_desc = field.message_type
                if field.is_repeated and child_desc is not None and \
                        not child_desc.GetOptions().map_entry:
                    index = counts.get(name, 0)
                    counts[name] = index + 1
                    child_parts = parts + [name, str(index)]
            stack.append((child_parts, child_desc, {}))
            last_ident = None
            value_field = None
        elif kind == "close":
            if len(stack) > 1:
                stack.pop()
            last_ident = None
            value_field = None
        else:  # a string, number or other value token ends the pending value
            if not in_list and value_field is not None:
                value_field = None
                last_ident = None
    parts = list(stack[-1][0])
    if value_field is not None:
        parts.append(value_field)
    return ".".join(parts)


# ------------------------------------------------------------------------------------------------
# Validation.


def validate_pipeline_config(pipeline_config: pipeline_pb2.TrainEvalPipelineConfig) -> None:
    """Checks every value rule of a pipeline config, reporting all broken rules at once.

    The rules live with the builders of the messages they constrain
    (`builders.config_rules.validate_pipeline_config`; docs/CONFIG_RULES.md lists them), so a
    builder called directly gives the same message; they need no TensorFlow.

    Raises:
      ConfigError: one line per broken rule, each naming the field path, the value and the rule.
    """
    config_rules.validate_pipeline_config(pipeline_config)
