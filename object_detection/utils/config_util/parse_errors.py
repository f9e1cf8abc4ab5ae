"""Parse errors of pipeline configs and overrides, rewritten to locate the mistake.

`describe` turns protobuf's `text_format.ParseError` into 'file:line:column: what; did you mean
...? (at field.path)' followed by the source line and a caret: the two common mistakes (an
unknown field, an unknown enum value) are reworded with the closest valid name (`explain`), and
the dotted path of the field being parsed is recovered from the text (`context_path`), with
indices for repeated messages as overrides write them.
"""
from __future__ import annotations

import difflib
import re
from collections.abc import Sequence

from google.protobuf import descriptor as _descriptor
from google.protobuf import descriptor_pool, text_format

__all__ = ["context_path", "describe", "explain", "strip_location", "suggest"]

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


def strip_location(text: str) -> str:
    return _LOCATION_PREFIX.sub("", text)


def describe(error: text_format.ParseError, text: str, source: str,
                          root: _descriptor.Descriptor, is_file: bool = True) -> str:
    """Turns a ParseError into 'source:line:col: what; did you mean ...? (at path)' + source line.

    For a string that is not a file (`is_file=False`) the location reads
    'source, line L, column C: ...'.
    """
    line, column = error.GetLine(), error.GetColumn()
    lines = text.splitlines()
    source_line = lines[line - 1] if line and 0 < line <= len(lines) else None
    detail = strip_location(str(error))
    if source_line is not None:
        quoted = re.match(r"^'(.*)': ", detail, re.S)
        if quoted and quoted.group(1).strip() == source_line.strip():
            detail = detail[quoted.end():]
    detail = explain(detail)
    if not line:
        location = source
    elif is_file:
        location = f"{source}:{line}:{column}"
    else:
        location = f"{source}, line {line}, column {column}"
    context = context_path(text, line, column, root) if line else ""
    message_text = f"{location}: {detail}" + (f" (at {context})" if context else "")
    if source_line is not None and column:
        caret = " " * (max(column, 1) - 1) + "^"
        message_text += f"\n    {source_line.rstrip()}\n    {caret}"
    return message_text


def explain(detail: str) -> str:
    """Rewrites protobuf's wording of the two common mistakes and adds a suggestion."""
    detail = detail.strip()
    match = _NO_FIELD.match(detail)
    if match:
        type_name, field_name = match.groups()
        names = _message_field_names(type_name)
        suggestion = suggest(field_name, names).replace("'", '"')
        text = f'message "{type_name}" has no field named "{field_name}"{suggestion}'
        if not suggestion and names:
            text += f"; its fields are: {', '.join(names)}"
        return text
    match = _NO_ENUM_VALUE.match(detail)
    if match:
        type_name, value = match.groups()
        names = _enum_value_names(type_name)
        suggestion = suggest(value, names).replace("'", '"')
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


def context_path(text: str, line: int, column: int, root: _descriptor.Descriptor) -> str:
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


def suggest(name: str, candidates: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""
