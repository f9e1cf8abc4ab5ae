r"""Converts COCO json + images into sharded TFRecords of OD API tf.Examples.

Usage (the OD API's flags; every split whose annotations file is given is converted):

  python -m object_detection.dataset_tools.create_coco_tf_record \
      --train_image_dir=/data/coco/train2017 --val_image_dir=/data/coco/val2017 \
      --test_image_dir=/data/coco/test2017 \
      --train_annotations_file=/data/coco/annotations/instances_train2017.json \
      --val_annotations_file=/data/coco/annotations/instances_val2017.json \
      --testdev_annotations_file=/data/coco/annotations/image_info_test-dev2017.json \
      --output_dir=/data/coco2017_tfrecords

writes `coco_train.record-?????-of-00100`, `coco_val.record-?????-of-00050` and
`coco_testdev.record-?????-of-00050` (shard counts set by --{train,val,testdev}_num_shards).

What is kept: COCO category ids as they are (1..90, `image/object/class/label`), their names
(`image/object/class/text`), the image id as `image/source_id` and the file name as
`image/filename` (evaluation maps detections back to the json with them), `iscrowd` as
`image/object/is_crowd` (the decoder gives crowd boxes weight 0) and COCO `area`. Images
without annotations are written (negatives). The box and image rules are those of
`conversion.py`; a summary at the end says what was read, written, skipped and dropped.
"""
from __future__ import annotations

import collections
import functools
import json
import os
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script path: make the package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from absl import app, flags
import tqdm

from object_detection.dataset_tools import conversion
from object_detection.utils.log import configure_cli_logging, logger

DROP_UNKNOWN_IMAGE = "image id not among the json's images"


class CocoFormatError(ValueError):
    """A COCO json that is broken as a whole (not a box to drop): the file and the first
    offending entry are named; nothing is written."""


def load_coco_json(path: str) -> dict:
    """Reads a COCO json and checks its structure before anything is converted.

    Raises:
      CocoFormatError: not JSON; no `images` list; an image without `id` or `file_name`; two
        images under one id; an annotation without `image_id`, `category_id` or a `bbox` of 4
        numbers; category id 0 (the background id of OD API label maps, which no class may
        take) in `categories` or in an annotation.
    """
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise CocoFormatError(f"{path}:{e.lineno}:{e.colno}: not valid JSON ({e.msg}).") from None
    except UnicodeDecodeError as e:
        raise CocoFormatError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start}).") from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise CocoFormatError(f"{path}: no \"images\" list at the top level (a COCO instances "
                              "or image-info json has one).")
    seen: dict = {}
    for i, image in enumerate(data["images"]):
        missing = [k for k in ("id", "file_name") if not isinstance(image, dict) or k not in image]
        if missing:
            raise CocoFormatError(f"{path}: images[{i}] has no {' or '.join(missing)}.")
        if image["id"] in seen:
            raise CocoFormatError(
                f"{path}: images[{seen[image['id']]}] and images[{i}] have the same id "
                f"{image['id']!r} ({image['file_name']!r}); image ids must be unique (annotations "
                "refer to images by id).")
        seen[image["id"]] = i
    for c in data.get("categories", []):
        if c.get("id") == 0:
            raise CocoFormatError(
                f"{path}: category id 0 ({c.get('name')!r}) is the background id of OD API "
                "label maps; number the classes from 1.")
    for i, a in enumerate(data.get("annotations", [])):
        where = f"{path}: annotations[{i}] (id {a.get('id')!r})" if isinstance(a, dict) else \
            f"{path}: annotations[{i}]"
        if not isinstance(a, dict) or "image_id" not in a or "category_id" not in a:
            raise CocoFormatError(f"{where} has no image_id or category_id.")
        box = a.get("bbox")
        if not (isinstance(box, list) and len(box) == 4
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in box)):
            raise CocoFormatError(f"{where}: bbox must be [x, y, width, height] (4 numbers), "
                                  f"got {box!r}.")
        if a["category_id"] == 0:
            raise CocoFormatError(f"{where}: category_id 0 is the background id of OD API label "
                                  "maps; number the classes from 1.")
    return data

FLAGS = flags.FLAGS


def coco_tasks(annotations: dict, image_dir: str
               ) -> tuple[list[conversion.ExampleTask], int]:
    """The per-image tasks of a COCO json dict, and the count of annotations on no image."""
    categories = {c["id"]: c["name"] for c in annotations.get("categories", [])}
    by_image = collections.defaultdict(list)
    for a in annotations.get("annotations", []):
        by_image[a["image_id"]].append(a)
    tasks = []
    for image in annotations["images"]:
        boxes = []
        for a in by_image.pop(image["id"], []):
            x, y, w, h = (float(v) for v in a["bbox"])
            category = a["category_id"]
            boxes.append(conversion.BoxAnnotation(
                xmin=x, ymin=y, xmax=x + w, ymax=y + h,
                label=category if category in categories else None,
                text=categories.get(category, str(category)),
                is_crowd=bool(a.get("iscrowd", 0)), area=a.get("area")))
        tasks.append(conversion.ExampleTask(
            image_path=os.path.join(image_dir, image["file_name"]),
            source_id=str(image["id"]), filename=image["file_name"], boxes=boxes,
            width=image.get("width"), height=image.get("height")))
    orphans = sum(len(v) for v in by_image.values())
    return tasks, orphans


def convert_coco(annotations_file: str, image_dir: str, output_path: str, *,
                 num_shards: int = 1, num_workers: int = 1,
                 show_progress: bool = False) -> conversion.Summary:
    """Converts one COCO split to `output_path-?????-of-{num_shards:05d}`.

    Args:
      annotations_file: COCO instances json (or image-info json without annotations).
      image_dir: folder holding the json's `file_name`s.
      output_path: base path of the shards, e.g. `.../coco_train.record`.
      num_shards: number of output files.
      num_workers: processes reading and checking images.
      show_progress: show a tqdm progress bar.

    Returns:
      The conversion summary (also logged).

    Raises:
      CocoFormatError: the json is broken as a whole (`load_coco_json`); nothing is written.
    """
    annotations = load_coco_json(annotations_file)
    tasks, orphans = coco_tasks(annotations, image_dir)
    # Imported here, not at the top: worker processes re-import this module, and they need
    # neither TensorFlow's start-up time nor its memory.
    from object_detection.dataset_tools import dataset_util

    summary = conversion.Summary(name=os.path.basename(output_path))
    summary.annotations_read = len(annotations.get("annotations", []))
    summary.annotations_orphaned = orphans
    summary.boxes_read += orphans
    if orphans:
        summary.boxes_dropped[DROP_UNKNOWN_IMAGE] += orphans
    progress = functools.partial(tqdm.tqdm, total=len(tasks), desc=summary.name,
                                 disable=not show_progress, unit="img")
    with dataset_util.ShardedTFRecordWriter(output_path, num_shards) as writer:
        dataset_util.write_examples(
            conversion.prepare_all(tasks, num_workers, progress), writer, summary)
    logger.info("\n%s", summary.format())
    return summary


def main(argv):
    del argv
    configure_cli_logging()
    splits = [
        ("train", FLAGS.train_annotations_file, FLAGS.train_image_dir, FLAGS.train_num_shards),
        ("val", FLAGS.val_annotations_file, FLAGS.val_image_dir, FLAGS.val_num_shards),
        ("testdev", FLAGS.testdev_annotations_file, FLAGS.test_image_dir,
         FLAGS.testdev_num_shards),
    ]
    todo = [s for s in splits if s[1]]
    if not todo:
        raise app.UsageError("Give at least one of --train_annotations_file, "
                             "--val_annotations_file, --testdev_annotations_file.")
    try:  # every split's flags are checked before the first split is converted
        for split, annotations_file, image_dir, num_shards in todo:
            image_flag = "test_image_dir" if split == "testdev" else f"{split}_image_dir"
            if not image_dir:
                raise app.UsageError(f"--{split}_annotations_file needs --{image_flag}.")
            conversion.require_file(f"{split}_annotations_file", annotations_file)
            conversion.require_dir(image_flag, image_dir)
            conversion.require_at_least(f"{split}_num_shards", num_shards)
        conversion.require_output("output_dir", os.path.join(FLAGS.output_dir, "coco.record"))
    except conversion.InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for split, annotations_file, image_dir, num_shards in todo:
        try:
            summary = convert_coco(
                annotations_file, image_dir,
                os.path.join(FLAGS.output_dir, f"coco_{split}.record"), num_shards=num_shards,
                num_workers=FLAGS.num_workers, show_progress=FLAGS.progress)
        except CocoFormatError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        error = summary.nothing_written(os.path.join(FLAGS.output_dir, f"coco_{split}.record"))
        if error:
            print(error, file=sys.stderr)
            return 1
    return 0


def _define_flags() -> None:
    """Command-line flags; defined only when run as a program, so modules import cleanly."""
    flags.DEFINE_string("train_image_dir", "", "Training image directory.")
    flags.DEFINE_string("val_image_dir", "", "Validation image directory.")
    flags.DEFINE_string("test_image_dir", "", "Test image directory.")
    flags.DEFINE_string("train_annotations_file", "", "Training annotations JSON file.")
    flags.DEFINE_string("val_annotations_file", "", "Validation annotations JSON file.")
    flags.DEFINE_string("testdev_annotations_file", "",
                        "Test-dev annotations (image info) JSON file.")
    flags.DEFINE_string("output_dir", "/tmp/", "Output data directory.")
    flags.DEFINE_integer("train_num_shards", 100, "Number of coco_train.record shards.")
    flags.DEFINE_integer("val_num_shards", 50, "Number of coco_val.record shards.")
    flags.DEFINE_integer("testdev_num_shards", 50, "Number of coco_testdev.record shards.")
    flags.DEFINE_integer("num_workers", os.cpu_count() or 1,
                         "Processes reading and checking images in parallel.")
    flags.DEFINE_boolean("progress", True, "Show a progress bar.")


if __name__ == "__main__":
    _define_flags()
    app.run(main)
