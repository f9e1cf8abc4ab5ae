"""label_map_util: StringIntLabelMap text read/write, categories, num_classes check."""
from __future__ import annotations

from pathlib import Path

import pytest

from object_detection.data import label_map_util
from object_detection.utils.errors import ConfigError

MSCOCO = (Path(__file__).resolve().parents[2] / "object_detection" / "data"
          / "mscoco_label_map.pbtxt")

TEXT = """
item { name: "/m/01g317" id: 1 display_name: "person" }
item { name: "/m/0k4j" id: 3 display_name: "car" }
item { name: "cat" id: 2 }
"""


@pytest.fixture
def label_map_path(tmp_path):
    path = tmp_path / "label_map.pbtxt"
    path.write_text(TEXT)
    return str(path)


def test_reads_names_ids_and_display_names(label_map_path):
    label_map = label_map_util.load_labelmap(label_map_path)
    assert [(i.name, i.id) for i in label_map.item] == [("/m/01g317", 1), ("/m/0k4j", 3),
                                                          ("cat", 2)]
    assert label_map_util.get_label_map_dict(label_map_path) == {
        "/m/01g317": 1, "/m/0k4j": 3, "cat": 2}
    assert label_map_util.get_label_map_dict(label_map_path, use_display_name=True) == {
        "person": 1, "car": 3, "cat": 2}
    assert label_map_util.create_categories_from_labelmap(label_map_path) == [
        {"id": 1, "name": "person"}, {"id": 2, "name": "cat"}, {"id": 3, "name": "car"}]
    assert label_map_util.create_category_index(label_map_path) == {
        1: {"id": 1, "name": "person"}, 2: {"id": 2, "name": "cat"},
        3: {"id": 3, "name": "car"}}
    assert label_map_util.get_max_label_map_index(label_map_path) == 3


def test_write_then_read_gives_the_same_categories(tmp_path):
    categories = [{"id": 2, "name": "b", "display_name": "Bee"}, {"id": 1, "name": "a"}]
    path = tmp_path / "sub" / "out.pbtxt"
    label_map_util.write_label_map(str(path), categories)
    assert label_map_util.get_label_map_dict(str(path)) == {"a": 1, "b": 2}
    assert label_map_util.create_categories_from_labelmap(str(path)) == [
        {"id": 1, "name": "a"}, {"id": 2, "name": "Bee"}]
    assert path.read_text().startswith('item {\n  name: "a"\n  id: 1\n}')


@pytest.mark.parametrize("text, pattern", [
    ('item { name: "a" id: 1 } item { name: "b" id: 1 }', r"id 1 is used by both 'a' and 'b'"),
    ('item { name: "a" id: -1 }', r"ids must be >= 1"),
    ('item { name: "a" }', r"has no id"),
    ('item { nme: "a" id: 1 }', r"not a StringIntLabelMap"),
])
def test_invalid_label_maps_raise_config_error_naming_the_file(tmp_path, text, pattern):
    path = tmp_path / "bad.pbtxt"
    path.write_text(text)
    with pytest.raises(ConfigError, match=pattern) as error:
        label_map_util.load_labelmap(str(path))
    assert "bad.pbtxt" in str(error.value)


def test_check_num_classes_names_both_numbers_and_the_file(label_map_path):
    label_map_util.check_num_classes(label_map_path, 3)
    with pytest.raises(ConfigError) as error:
        label_map_util.check_num_classes(label_map_path, 90)
    message = str(error.value)
    assert "90" in message and "largest id 3" in message and label_map_path in message


@pytest.mark.skipif(not MSCOCO.is_file(), reason="mscoco_label_map.pbtxt not written yet")
def test_coco_label_map_fits_num_classes_90():
    label_map_util.check_num_classes(str(MSCOCO), 90)
    categories = label_map_util.create_categories_from_labelmap(str(MSCOCO))
    assert len(categories) == 80 and categories[0] == {"id": 1, "name": "person"}
    with pytest.raises(ConfigError, match="80 classes with largest id 90"):
        label_map_util.check_num_classes(str(MSCOCO), 80)


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        label_map_util.load_labelmap(str(tmp_path / "nope.pbtxt"))
