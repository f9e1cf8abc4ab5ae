"""data/mscoco_label_map.pbtxt parses as a StringIntLabelMap: 80 classes, ids in 1..90."""
from __future__ import annotations

import pathlib

from google.protobuf import text_format

from object_detection.protos import string_int_label_map_pb2

LABEL_MAP = (pathlib.Path(__file__).resolve().parents[2]
             / "object_detection" / "data" / "mscoco_label_map.pbtxt")


def _load() -> string_int_label_map_pb2.StringIntLabelMap:
    label_map = string_int_label_map_pb2.StringIntLabelMap()
    text_format.Parse(LABEL_MAP.read_text(encoding="utf-8"), label_map)
    return label_map


def test_has_80_unique_ids_between_1_and_90():
    ids = [item.id for item in _load().item]
    assert len(ids) == 80
    assert len(set(ids)) == 80
    assert all(1 <= i <= 90 for i in ids)
    assert (min(ids), max(ids)) == (1, 90)


def test_known_entries():
    by_id = {item.id: item for item in _load().item}
    # Hand-checked against the COCO category list: ids 12, 26, 29, 30, 45, 66, 68, 69, 71, 83
    # are unused.
    assert (by_id[1].name, by_id[1].display_name) == ("/m/01g317", "person")
    assert by_id[90].display_name == "toothbrush"
    assert by_id[13].display_name == "stop sign"
    for unused in (12, 26, 29, 30, 45, 66, 68, 69, 71, 83):
        assert unused not in by_id


def test_every_item_has_name_and_display_name():
    for item in _load().item:
        assert item.name.startswith("/m/"), item
        assert item.display_name, item
