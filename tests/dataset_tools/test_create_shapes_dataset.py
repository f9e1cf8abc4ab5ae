"""create_shapes_dataset: exact boxes, seedable, label map, records, a few ms per image."""
from __future__ import annotations

import json
import time

import numpy as np
from PIL import Image

from object_detection.data import label_map_util
from object_detection.dataset_tools import dataset_util
from object_detection.dataset_tools.create_shapes_dataset import (
    CLASSES, create_shapes_dataset, draw_image)


def test_boxes_are_the_exact_extent_of_each_shape():
    rng = np.random.default_rng(3)
    for _ in range(30):
        image, shapes = draw_image(rng, 64, 96, max_shapes=1)
        (kind, (x0, y0, x1, y1)), = shapes
        assert 0 <= x0 < x1 <= 96 and 0 <= y0 < y1 <= 64 and 0 <= kind < len(CLASSES)
        # Every shape covers the middle of its box's bottom row; the pixels of its (exact,
        # un-noised) colour span the box: from x0 to x1 - 1 and from y0 to y1 - 1.
        pixels = np.asarray(image)
        colour = pixels[y1 - 1, (x0 + x1 - 1) // 2]
        ys, xs = np.nonzero(np.all(pixels == colour, axis=-1))
        assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (x0, y0, x1, y1), CLASSES[kind]


def test_same_seed_same_dataset_and_counts(tmp_path):
    a = create_shapes_dataset(str(tmp_path / "a"), num_train=6, num_val=3, image_size=64, seed=5)
    b = create_shapes_dataset(str(tmp_path / "b"), num_train=6, num_val=3, image_size=64, seed=5)
    c = create_shapes_dataset(str(tmp_path / "c"), num_train=6, num_val=3, image_size=64, seed=6)
    ja, jb, jc = (json.loads(open(p["train_annotations"]).read()) for p in (a, b, c))
    assert ja == jb and ja != jc
    assert len(ja["images"]) == 6
    assert [c["id"] for c in ja["categories"]] == [1, 2, 3]
    assert [c["name"] for c in ja["categories"]] == list(CLASSES)
    for ann in ja["annotations"]:
        x, y, w, h = ann["bbox"]
        assert w > 0 and h > 0 and x >= 0 and y >= 0 and x + w <= 64 and y + h <= 64
    image = Image.open(f"{a['train_images']}/000000.jpg")
    assert (image.format, image.size, image.mode) == ("JPEG", (64, 64), "RGB")
    assert label_map_util.get_label_map_dict(a["label_map"]) == {
        "rectangle": 1, "ellipse": 2, "triangle": 3}
    val = json.loads(open(a["val_annotations"]).read())
    assert min(i["id"] for i in val["images"]) == 7  # ids unique across splits


def test_writes_tfrecords_matching_the_json(tmp_path):
    paths = create_shapes_dataset(str(tmp_path), num_train=5, num_val=2, image_size=48,
                                  seed=1, tfrecords=True, num_shards=2)
    records = dataset_util.read_examples(paths["train_records"])
    coco = json.loads(open(paths["train_annotations"]).read())
    assert len(records) == 5
    assert sum(len(r["labels"]) for r in records) == len(coco["annotations"])


def test_a_few_milliseconds_per_image(tmp_path):
    start = time.perf_counter()
    create_shapes_dataset(str(tmp_path), num_train=40, num_val=0, image_size=128, seed=0)
    per_image = (time.perf_counter() - start) / 40
    assert per_image < 0.05, f"{per_image * 1000:.1f} ms per image"  # loose: shared CPUs
