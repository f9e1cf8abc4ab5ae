"""Config overrides: `path=value` and text-proto fragments applied to a pipeline config.

Two forms (the `config_util` module docstring gives the full syntax):
  * dotted `path=value`: `train_config.batch_size=8`, `eval_input_reader.0.shuffle=false`,
    `model.ssd.feature_extractor.fpn={min_level: 3}`; numbers index repeated messages, a
    repeated message without an index applies the override to every entry;
  * a text proto, used when a `{` comes before any `=`: `train_config { batch_size: 8 }`,
    merged with `text_format.Merge` as the OD API's `--config_override`.
A list of overrides is applied all-or-nothing: on error the config is left unchanged. Errors
are `ConfigError`s naming the override, the full dotted path, the value and the expected type
or the valid field names.
"""
from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from typing import Any

from google.protobuf import descriptor as _descriptor
from google.protobuf import message, text_format

from object_detection.protos import pipeline_pb2
from object_detection.utils.config_util import parse_errors
from object_detection.utils.errors import ConfigError

__all__ = ["merge_overrides"]

_FD = _descriptor.FieldDescriptor
_INT_RANGES = {
    _FD.CPPTYPE_INT32: (-(2**31), 2**31 - 1, "a 32-bit integer (int32)"),
    _FD.CPPTYPE_INT64: (-(2**63), 2**63 - 1, "a 64-bit integer (int64)"),
    _FD.CPPTYPE_UINT32: (0, 2**32 - 1, "an unsigned 32-bit integer (uint32, >= 0)"),
    _FD.CPPTYPE_UINT64: (0, 2**64 - 1, "an unsigned 64-bit integer (uint64, >= 0)"),
}


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
        raise ConfigError(parse_errors.describe(
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
        f"(message {msg.DESCRIPTOR.full_name}){parse_errors.suggest(name, valid) or '.'} "
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
        detail = parse_errors.explain(parse_errors.strip_location(str(error)))
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
        raise bad(f"one of the {enum.full_name} values {names}{parse_errors.suggest(text, names)}")
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
