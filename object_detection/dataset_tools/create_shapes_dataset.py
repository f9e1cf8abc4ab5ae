r"""Writes a synthetic detection dataset of simple shapes, for demos and tests.

  python -m object_detection.dataset_tools.create_shapes_dataset \
      --output_dir=/tmp/shapes --num_train=200 --num_val=50 --image_size=128 --seed=0

Layout of --output_dir:
  train/000000.jpg ...                  JPEG images (image_size x image_size)
  val/000000.jpg ...
  annotations/instances_{train,val}.json COCO json: exact boxes, category ids 1..K with names
  label_map.pbtxt                        the K classes (StringIntLabelMap text format)
  coco_{train,val}.record-?????-of-?????  (with --tfrecords, the default) the same data
                                         converted by create_coco_tf_record

Each image has 1..max_shapes filled shapes (CLASSES: rectangle, ellipse, triangle), each in one
of a few colours, on a noisy colour-gradient background. A shape's box is its exact extent in
pixels ([x, y, w, h] in the json, integer corners), drawn so that every shape lies inside the
image and at most a tenth of any shape is hidden by another (the boxes stay meaningful).
Same seed, same dataset.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script path: make the package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from absl import app, flags
import numpy as np
from PIL import Image, ImageDraw

from object_detection.utils.log import configure_cli_logging, logger

CLASSES = ("rectangle", "ellipse", "triangle")
COLOURS = ((220, 40, 40), (40, 170, 60), (40, 80, 220), (230, 200, 40), (200, 60, 200),
           (250, 250, 250))
_MAX_OVERLAP = 0.1  # largest fraction of a box that another box may cover

FLAGS = flags.FLAGS


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """uint8 [H, W, 3]: a random colour gradient plus noise (texture for the detector)."""
    top, bottom = rng.integers(30, 200, size=(2, 3))
    t = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]  # [H, 1, 1]
    image = top * (1 - t) + bottom * t + np.zeros((1, width, 1), np.float32)  # [H, W, 3]
    image += rng.normal(0.0, 12.0, size=(height, width, 3)).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)


def _overlap_fraction(box: tuple[int, int, int, int], other: tuple[int, int, int, int]) -> float:
    x0, y0 = max(box[0], other[0]), max(box[1], other[1])
    x1, y1 = min(box[2], other[2]), min(box[3], other[3])
    inter = max(0, x1 - x0) * max(0, y1 - y0)
    return inter / ((box[2] - box[0]) * (box[3] - box[1]))


def draw_image(rng: np.random.Generator, height: int, width: int, max_shapes: int
               ) -> tuple[Image.Image, list[tuple[int, tuple[int, int, int, int]]]]:
    """One image and its shapes [(class index 0..K-1, (xmin, ymin, xmax, ymax) exclusive)]."""
    image = Image.fromarray(_background(rng, height, width))
    draw = ImageDraw.Draw(image)
    shapes: list[tuple[int, tuple[int, int, int, int]]] = []
    min_side = max(4, min(height, width) // 8)
    max_side = max(min_side + 1, min(height, width) // 2)
    for _ in range(int(rng.integers(1, max_shapes + 1))):
        for _attempt in range(10):
            w, h = (int(v) for v in rng.integers(min_side, max_side, size=2))
            x0, y0 = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
            box = (x0, y0, x0 + w, y0 + h)
            if all(max(_overlap_fraction(box, b), _overlap_fraction(b, box)) <= _MAX_OVERLAP
                   for _, b in shapes):
                break
        else:
            continue
        kind = int(rng.integers(len(CLASSES)))
        colour = COLOURS[int(rng.integers(len(COLOURS)))]
        # PIL's inclusive corner convention: pixels x0..x1-1 are covered.
        corners = (box[0], box[1], box[2] - 1, box[3] - 1)
        if CLASSES[kind] == "rectangle":
            draw.rectangle(corners, fill=colour)
        elif CLASSES[kind] == "ellipse":
            draw.ellipse(corners, fill=colour)
        else:  # apex on the top edge, base on the bottom edge: the box is exact
            apex = int(rng.integers(box[0], box[2]))
            draw.polygon([(apex, box[1]), (box[0], box[3] - 1), (box[2] - 1, box[3] - 1)],
                         fill=colour)
        shapes.append((kind, box))
    return image, shapes


def write_split(output_dir: str, split: str, num_images: int, image_size: int,
                max_shapes: int, rng: np.random.Generator, first_image_id: int = 1) -> str:
    """Writes `split/*.jpg` and `annotations/instances_{split}.json`; returns the json path."""
    image_dir = os.path.join(output_dir, split)
    os.makedirs(image_dir, exist_ok=True)
    images, annotations = [], []
    for i in range(num_images):
        image, shapes = draw_image(rng, image_size, image_size, max_shapes)
        file_name = f"{i:06d}.jpg"
        image.save(os.path.join(image_dir, file_name), format="JPEG", quality=90)
        image_id = first_image_id + i
        images.append({"id": image_id, "file_name": file_name, "width": image_size,
                       "height": image_size})
        for kind, (x0, y0, x1, y1) in shapes:
            annotations.append({
                "id": len(annotations) + 1, "image_id": image_id, "category_id": kind + 1,
                "bbox": [x0, y0, x1 - x0, y1 - y0], "area": (x1 - x0) * (y1 - y0),
                "iscrowd": 0})
    categories = [{"id": k + 1, "name": name, "supercategory": "shape"}
                  for k, name in enumerate(CLASSES)]
    os.makedirs(os.path.join(output_dir, "annotations"), exist_ok=True)
    path = os.path.join(output_dir, "annotations", f"instances_{split}.json")
    with open(path, "w") as f:
        json.dump({"info": {"description": f"synthetic shapes {split}"}, "licenses": [],
                   "images": images, "annotations": annotations, "categories": categories}, f)
    return path


def create_shapes_dataset(output_dir: str, *, num_train: int = 200, num_val: int = 50,
                          image_size: int = 128, max_shapes: int = 4, seed: int = 0,
                          tfrecords: bool = False, num_shards: int = 2) -> dict[str, str]:
    """Writes the dataset (module docstring) and returns its paths.

    Returns:
      {"label_map", "train_annotations", "val_annotations", "train_images", "val_images"}
      and, with tfrecords, "train_records" and "val_records" (glob patterns).
    """
    if image_size < 16 or max_shapes < 1:
        raise ValueError(f"need image_size >= 16 and max_shapes >= 1, got {image_size}, "
                         f"{max_shapes}.")
    from object_detection.data import label_map_util

    rng = np.random.default_rng(seed)
    paths = {
        "train_annotations": write_split(output_dir, "train", num_train, image_size, max_shapes,
                                         rng, first_image_id=1),
        "val_annotations": write_split(output_dir, "val", num_val, image_size, max_shapes, rng,
                                       first_image_id=num_train + 1),
        "train_images": os.path.join(output_dir, "train"),
        "val_images": os.path.join(output_dir, "val"),
        "label_map": os.path.join(output_dir, "label_map.pbtxt"),
    }
    label_map_util.write_label_map(
        paths["label_map"], [{"id": k + 1, "name": n} for k, n in enumerate(CLASSES)])
    if tfrecords:
        from object_detection.dataset_tools import create_coco_tf_record

        for split in ("train", "val"):
            base = os.path.join(output_dir, f"coco_{split}.record")
            create_coco_tf_record.convert_coco(paths[f"{split}_annotations"],
                                               paths[f"{split}_images"], base,
                                               num_shards=num_shards)
            paths[f"{split}_records"] = f"{base}-?????-of-{num_shards:05d}"
    return paths


def main(argv):
    del argv
    configure_cli_logging()
    paths = create_shapes_dataset(
        FLAGS.output_dir, num_train=FLAGS.num_train, num_val=FLAGS.num_val,
        image_size=FLAGS.image_size, max_shapes=FLAGS.max_shapes, seed=FLAGS.seed,
        tfrecords=FLAGS.tfrecords, num_shards=FLAGS.num_shards)
    for key, path in sorted(paths.items()):
        logger.info("%s: %s", key, path)


def _define_flags() -> None:
    """Command-line flags; defined only when run as a program, so modules import cleanly."""
    flags.DEFINE_string("output_dir", "/tmp/shapes_dataset", "Where to write the dataset.")
    flags.DEFINE_integer("num_train", 200, "Training images.")
    flags.DEFINE_integer("num_val", 50, "Validation images.")
    flags.DEFINE_integer("image_size", 128, "Image height and width in pixels.")
    flags.DEFINE_integer("max_shapes", 4, "Most shapes per image.")
    flags.DEFINE_integer("seed", 0, "Random seed.")
    flags.DEFINE_boolean("tfrecords", True, "Also write coco_{train,val}.record shards.")
    flags.DEFINE_integer("num_shards", 2, "Shards per split for --tfrecords.")


if __name__ == "__main__":
    _define_flags()
    app.run(main)
