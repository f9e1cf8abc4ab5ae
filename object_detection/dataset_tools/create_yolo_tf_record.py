r"""Converts YOLO txt labels + images into TFRecords of OD API tf.Examples.

Usage:

  python -m object_detection.dataset_tools.create_yolo_tf_record \
      --images_dir=/data/yolo/images/train --labels_dir=/data/yolo/labels/train \
      --names=/data/yolo/classes.txt --output_path=/data/yolo_train.record --num_shards=10

Each image `images_dir/<stem>.<ext>` (jpg, jpeg, png, bmp, gif, tif, tiff, webp; the folder
itself, not its subfolders) has its boxes in `labels_dir/<stem>.txt` (`--labels_dir` defaults
to `--images_dir`, darknet's layout; ultralytics keeps them in a sibling `labels/` tree), one
line per box:

  <class_id> <x_center> <y_center> <width> <height>

with the box normalized to 0..1 of the image's width and height and `class_id` 0-based, an
index into `--names`: a text file with one class name per line (YOLO's classes.txt /
obj.names). Class `k` becomes label map id `k + 1`, and that label map is written to
`--label_map_output_path` (default: `label_map.pbtxt` beside the output; an existing file
there with other ids stops the conversion instead of being replaced). data.yaml is not read:
PyYAML is not a dependency of this package; its `names:` list written one per line is the names
file.

An image without a label file, or with an empty one, is written without boxes (a negative; the
summary counts those without a label file). A label file without an image is a skipped image
(missing image file). Checked, counted and named in the summary by `file:line`: a line with
other than 5 values (segmentation polygons included), a value that is not a number, a class id
that is not an integer or not among the names. Boxes then follow the rules of `conversion.py`
(boxes partly outside the image are clipped, degenerate and entirely outside ones dropped). The
records have the COCO converter's features; `image/source_id` and `image/filename` are the image
file's name.
"""
from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script path: make the package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from absl import app, flags
import tqdm

from object_detection.dataset_tools import conversion
from object_detection.utils.log import configure_cli_logging, logger

FLAGS = flags.FLAGS

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
# labelImg writes the class names into the label folder under this name; it is not a label file.
CLASSES_FILE = "classes.txt"
LABEL_MAP_HINT = ("remove it, or choose another --label_map_output_path (the names file "
                  "fixes the ids: name k is id k + 1).")


def read_names(path: str) -> list[str]:
    """The class names of a YOLO names file, one per line (trailing blank lines ignored).

    Raises:
      conversion.InputError: a YAML file, unreadable or not UTF-8 text, a blank line among the names (it
        would shift every later id), a name given twice, or no names.
    """
    if path.lower().endswith((".yaml", ".yml")):
        raise conversion.InputError(
            f"--names: {path!r} is a YAML file, which is not read (PyYAML is not a dependency); "
            "give a names file instead: its names: list, one class per line (YOLO's classes.txt "
            "/ obj.names).")
    try:
        with open(path, encoding="utf-8-sig") as f:
            lines = [line.strip() for line in f.read().splitlines()]
    except UnicodeDecodeError as e:
        raise conversion.InputError(
            f"--names: {path!r} is not UTF-8 text ({e.reason} at byte {e.start}).") from None
    except OSError as e:
        raise conversion.InputError(f"--names: {path!r} cannot be read ({e.strerror}).") from None
    while lines and not lines[-1]:
        lines.pop()
    seen: dict[str, int] = {}
    for number, name in enumerate(lines, start=1):
        if not name:
            raise conversion.InputError(
                f"--names: {path}:{number}: blank line; line k names class id k - 1, so a "
                "blank line would shift every later class.")
        if name in seen:
            raise conversion.InputError(
                f"--names: {path}:{number}: {name!r} is also on line {seen[name]}.")
        seen[name] = number
    if not lines:
        raise conversion.InputError(f"--names: {path!r} names no class.")
    return lines


def _class_index(text: str) -> int | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return int(value) if value.is_integer() else None  # some tools write "0.0"


def read_label_file(path: str, names: list[str], summary: conversion.Summary
                    ) -> list[conversion.BoxAnnotation]:
    """The boxes of one label file, normalized corners; lines that are not boxes go to
    `summary.reject`. OSError / UnicodeDecodeError propagate (the caller skips the image)."""
    with open(path, encoding="utf-8-sig") as f:
        lines = f.read().splitlines()
    boxes = []
    for number, line in enumerate(lines, start=1):
        where = f"{path}:{number}"
        values = line.split()
        if not values:
            continue
        if len(values) != 5:
            polygon = " (a segmentation polygon?)" if len(values) > 5 and len(values) % 2 else ""
            summary.reject(where, conversion.DROP_MALFORMED_FIELDS,
                           f"{len(values)} values, expected 5: class_id x_center y_center "
                           f"width height{polygon}")
            continue
        class_id = _class_index(values[0])
        if class_id is None:
            summary.reject(where, conversion.DROP_MALFORMED_VALUE,
                           f"class_id {values[0]!r} is not an integer")
            continue
        try:
            x, y, w, h = (float(v) for v in values[1:])
        except ValueError:
            bad = next(v for v in values[1:] if not _is_number(v))
            summary.reject(where, conversion.DROP_MALFORMED_VALUE, f"{bad!r} is not a number")
            continue
        known = 0 <= class_id < len(names)
        boxes.append(conversion.BoxAnnotation(
            xmin=x - w / 2, ymin=y - h / 2, xmax=x + w / 2, ymax=y + h / 2,
            label=class_id + 1 if known else None,
            text=names[class_id] if known else str(class_id), where=where))
    return boxes


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def yolo_tasks(images_dir: str, labels_dir: str, names: list[str], names_path: str,
               summary: conversion.Summary) -> list[conversion.ExampleTask]:
    """One task per image of `images_dir` and per label file without an image, sorted by name.

    Lines that are not boxes are counted in `summary`, as are images without a label file.
    """
    images = sorted(n for n in os.listdir(images_dir)
                    if n.lower().endswith(IMAGE_EXTENSIONS)
                    and os.path.isfile(os.path.join(images_dir, n)))
    stems = {os.path.splitext(n)[0] for n in images}
    not_labels = {os.path.abspath(names_path)}
    orphans = sorted(
        n for n in os.listdir(labels_dir)
        if n.endswith(".txt") and n[:-4] not in stems and n != CLASSES_FILE
        and os.path.abspath(os.path.join(labels_dir, n)) not in not_labels)
    summary.images_without_labels = 0
    tasks = []
    for name, is_label in [(n, False) for n in images] + [(n, True) for n in orphans]:
        stem = os.path.splitext(name)[0]
        label_path = os.path.join(labels_dir, stem + ".txt")
        task = conversion.ExampleTask(
            image_path=os.path.join(images_dir, name), source_id=name, filename=name,
            boxes=[], normalized=True)
        if is_label:
            task.skip_reason = conversion.SKIP_MISSING_FILE
            task.skip_detail = f"no image {stem}.* in {images_dir} for the label file {label_path}"
        if not os.path.isfile(label_path):
            summary.images_without_labels += 1
        else:
            try:
                task.boxes = read_label_file(label_path, names, summary)
            except (OSError, UnicodeDecodeError) as e:
                task.skip_reason = f"{conversion.SKIP_MISSING_ANNOTATION}: {type(e).__name__}"
                task.skip_detail = label_path
        tasks.append(task)
    return tasks


def convert_yolo(images_dir: str, names_path: str, output_path: str, *,
                 labels_dir: str | None = None, label_map_output_path: str | None = None,
                 num_shards: int = 1, num_workers: int = 1,
                 show_progress: bool = False) -> conversion.Summary:
    """Converts YOLO labels; see the module docstring.

    Args:
      images_dir: folder of the images.
      names_path: names file, one class per line (class id k is line k + 1).
      output_path: output TFRecord path (base path of the shards when `num_shards` > 1).
      labels_dir: folder of the `<image stem>.txt` label files; None: `images_dir`.
      label_map_output_path: where the label map (name k: id k + 1) is written; None:
        `label_map.pbtxt` beside `output_path`.
      num_shards: number of output files.
      num_workers: processes reading and checking images.
      show_progress: show a tqdm progress bar.

    Returns:
      The conversion summary (also logged).

    Raises:
      conversion.InputError: the names file is unusable, or the label map to write exists with
        other ids; nothing is written.
    """
    names = read_names(names_path)
    label_ids = {name: k + 1 for k, name in enumerate(names)}
    label_map_output_path = label_map_output_path or conversion.default_label_map_output_path(output_path)
    conversion.check_label_map_output("label_map_output_path", label_map_output_path,
                                      label_ids, LABEL_MAP_HINT)
    summary = conversion.Summary(
        name=os.path.basename(output_path),
        label_map=f"{label_map_output_path} (written: {conversion.describe_ids(label_ids)})")
    tasks = yolo_tasks(images_dir, labels_dir or images_dir, names, names_path, summary)
    if tasks and summary.images_without_labels == len(tasks):
        logger.warning("no image in %s has a label file in %s; is --labels_dir right?",
                       images_dir, labels_dir or images_dir)
    # Imported here, not at the top: worker processes re-import this module, and they need
    # neither TensorFlow's start-up time nor its memory.
    from object_detection.dataset_tools import dataset_util

    progress = functools.partial(tqdm.tqdm, total=len(tasks), desc=summary.name,
                                 disable=not show_progress, unit="img")
    with dataset_util.ShardedTFRecordWriter(output_path, num_shards, single_file=True) as w:
        dataset_util.write_examples(conversion.prepare_all(tasks, num_workers, progress), w,
                                    summary)
    conversion.write_label_map(label_map_output_path, label_ids)
    logger.info("\n%s", summary.format())
    return summary


def main(argv):
    del argv
    configure_cli_logging()
    for flag in ("images_dir", "names", "output_path"):
        if not FLAGS[flag].value:
            raise app.UsageError(f"--{flag} is required.")
    try:  # checked before anything is read
        conversion.require_dir("images_dir", FLAGS.images_dir)
        if FLAGS.labels_dir:
            conversion.require_dir("labels_dir", FLAGS.labels_dir)
        conversion.require_file("names", FLAGS.names)
        conversion.require_at_least("num_shards", FLAGS.num_shards)
        conversion.require_output("output_path", FLAGS.output_path)
        summary = convert_yolo(
            FLAGS.images_dir, FLAGS.names, FLAGS.output_path,
            labels_dir=FLAGS.labels_dir or None,
            label_map_output_path=FLAGS.label_map_output_path or None,
            num_shards=FLAGS.num_shards, num_workers=FLAGS.num_workers,
            show_progress=FLAGS.progress)
    except conversion.InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    error = summary.nothing_written(FLAGS.output_path)
    if error:
        print(error, file=sys.stderr)
        return 1
    return 0


def _define_flags() -> None:
    """Command-line flags; defined only when run as a program, so modules import cleanly."""
    flags.DEFINE_string("images_dir", "", "Folder of the images.")
    flags.DEFINE_string("labels_dir", "", "Folder of the <image stem>.txt label files "
                        "(default: --images_dir).")
    flags.DEFINE_string("names", "", "Class names, one per line (YOLO's classes.txt / "
                        "obj.names); line k is class id k - 1.")
    flags.DEFINE_string("label_map_output_path", "", "Where the label map is written (default: "
                        "label_map.pbtxt beside --output_path).")
    conversion.define_output_flags(flags)


if __name__ == "__main__":
    _define_flags()
    app.run(main)
