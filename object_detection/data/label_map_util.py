"""Label maps: the OD API StringIntLabelMap text format, read and written.

A label map lists the dataset's classes with 1-based ids (0 is reserved for background):

  item { name: "/m/01g317" id: 1 display_name: "person" }

Ids may have gaps (COCO uses 1..90 for 80 classes). Inside the model classes are 0-based and
`num_classes` counts foreground classes, so a label map fits a config when its largest id equals
`num_classes` (`check_num_classes`). The decoder turns a label `l` into class `l - 1`.
"""
from __future__ import annotations

import os
from typing import Mapping, Sequence

from google.protobuf import text_format

from object_detection.protos import string_int_label_map_pb2
from object_detection.utils.errors import ConfigError

_BACKGROUND_ID = 0


def _validate(label_map: string_int_label_map_pb2.StringIntLabelMap, path: str) -> None:
    seen: dict[int, str] = {}
    for item in label_map.item:
        if not item.HasField("id"):
            raise ConfigError(f"{path}: item {item.name!r} has no id.")
        if item.id < _BACKGROUND_ID:
            raise ConfigError(f"{path}: item {item.name!r} has id {item.id}; ids must be >= 1 "
                              "(0 is background).")
        if item.id == _BACKGROUND_ID and item.name != "background":
            raise ConfigError(f"{path}: id 0 is reserved for 'background', got {item.name!r}.")
        if item.id in seen:
            raise ConfigError(f"{path}: id {item.id} is used by both {seen[item.id]!r} and "
                              f"{item.name!r}.")
        seen[item.id] = item.name


def parse_labelmap(text: str, path: str = "<string>"
                   ) -> string_int_label_map_pb2.StringIntLabelMap:
    """Parses label map text and checks that ids are unique and >= 1 (0 only for background)."""
    label_map = string_int_label_map_pb2.StringIntLabelMap()
    try:
        text_format.Merge(text, label_map)
    except text_format.ParseError as e:
        raise ConfigError(f"{path}: not a StringIntLabelMap text proto: {e}") from e
    _validate(label_map, path)
    return label_map


def load_labelmap(path: str) -> string_int_label_map_pb2.StringIntLabelMap:
    """Reads a label map file (StringIntLabelMap text format)."""
    if not os.path.isfile(path):
        raise ConfigError(f"label map {path!r} does not exist.")
    with open(path, encoding="utf8") as f:
        return parse_labelmap(f.read(), path)


def _as_label_map(label_map) -> string_int_label_map_pb2.StringIntLabelMap:
    if isinstance(label_map, string_int_label_map_pb2.StringIntLabelMap):
        return label_map
    return load_labelmap(os.fspath(label_map))


def get_label_map_dict(label_map_path_or_proto, use_display_name: bool = False
                       ) -> dict[str, int]:
    """{name: id} (or {display_name: id}) of a label map file or proto."""
    label_map = _as_label_map(label_map_path_or_proto)
    result = {}
    for item in label_map.item:
        key = item.display_name if use_display_name and item.display_name else item.name
        result[key] = item.id
    return result


def convert_label_map_to_categories(label_map, max_num_classes: int | None = None,
                                    use_display_name: bool = True) -> list[dict]:
    """[{"id": id, "name": name}] of the items with 1 <= id <= max_num_classes, ordered by id.

    `name` is the display_name when `use_display_name` and it is set, else the name. With
    `label_map=None`, the OD API's placeholder categories `category_1..max_num_classes`.
    """
    if label_map is None:
        if max_num_classes is None:
            raise ValueError("label_map=None needs max_num_classes.")
        return [{"id": i, "name": f"category_{i}"} for i in range(1, max_num_classes + 1)]
    label_map = _as_label_map(label_map)
    categories = []
    for item in sorted(label_map.item, key=lambda i: i.id):
        if item.id == _BACKGROUND_ID or (max_num_classes is not None
                                         and item.id > max_num_classes):
            continue
        name = item.display_name if use_display_name and item.display_name else item.name
        categories.append({"id": item.id, "name": name})
    return categories


def create_categories_from_labelmap(label_map_path: str, use_display_name: bool = True
                                    ) -> list[dict]:
    """[{"id", "name"}] of every foreground item of the label map file, ordered by id."""
    return convert_label_map_to_categories(load_labelmap(label_map_path),
                                           use_display_name=use_display_name)


def create_category_index(categories_or_path) -> dict[int, dict]:
    """{id: {"id", "name"}} from a list of category dicts (OD API) or a label map path."""
    if isinstance(categories_or_path, (str, os.PathLike)):
        categories_or_path = create_categories_from_labelmap(os.fspath(categories_or_path))
    return {c["id"]: c for c in categories_or_path}


def create_category_index_from_labelmap(label_map_path: str, use_display_name: bool = True
                                        ) -> dict[int, dict]:
    return create_category_index(
        create_categories_from_labelmap(label_map_path, use_display_name))


def get_max_label_map_index(label_map_path_or_proto) -> int:
    label_map = _as_label_map(label_map_path_or_proto)
    return max((item.id for item in label_map.item), default=0)


def label_map_to_text(categories: Sequence[Mapping] | Mapping[str, int]) -> str:
    """StringIntLabelMap text of `[{"id", "name"[, "display_name"]}]` or `{name: id}`."""
    if isinstance(categories, Mapping):
        categories = [{"id": i, "name": n} for n, i in categories.items()]
    label_map = string_int_label_map_pb2.StringIntLabelMap()
    for c in sorted(categories, key=lambda c: c["id"]):
        item = label_map.item.add(name=c["name"], id=int(c["id"]))
        if c.get("display_name"):
            item.display_name = c["display_name"]
    _validate(label_map, "<categories>")
    return text_format.MessageToString(label_map)


def write_label_map(path: str, categories: Sequence[Mapping] | Mapping[str, int]) -> None:
    """Writes `[{"id", "name"[, "display_name"]}]` or `{name: id}` as a label map file."""
    text = label_map_to_text(categories)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    with open(path, "w", encoding="utf8") as f:
        f.write(text)


def check_num_classes(label_map_path: str, num_classes: int, field: str = "") -> None:
    """Raises ConfigError unless the label map's largest id equals `num_classes`.

    Labels 1..num_classes become classes 0..num_classes-1 in the decoder, so a larger id
    would index past the class head and a smaller one leaves untrainable outputs. `field`
    (e.g. "train_input_reader.label_map_path") names where the label map path comes from.
    """
    label_map = load_labelmap(label_map_path)
    ids = [item.id for item in label_map.item if item.id != _BACKGROUND_ID]
    largest = max(ids, default=0)
    if largest != num_classes:
        source = f" ({field})" if field else ""
        raise ConfigError(
            f"model.ssd.num_classes: is {num_classes} but the label map {label_map_path!r}"
            f"{source} has "
            f"{len(ids)} classes with largest id {largest}; ids 1..num_classes must cover the "
            f"label map, so set num_classes: {largest} (or fix the label map).")

