r"""Converts a CSV of boxes (the OD API tutorials' format) + images into TFRecords of tf.Examples.

Usage:

  python -m object_detection.dataset_tools.create_csv_tf_record \
      --csv_input=/data/train_labels.csv --images_dir=/data/images \
      --output_path=/data/train.record --num_shards=10 \
      [--label_map_path=/data/label_map.pbtxt]

The CSV has a header row naming its columns, then one row per box, in pixels of the image:

  filename,width,height,class,xmin,ymin,xmax,ymax
  BloodImage_00000.jpg,640,480,WBC,260,177,491,376

Columns are found by their header name (any order, names case-insensitive, other columns
ignored); `width` and `height` may be left out (then nothing is checked against them). An image
has as many rows as boxes; a row whose class and coordinates are all empty lists an image
without boxes. The image is `images_dir/<filename>`; images in `images_dir` that the CSV does
not name are not converted (train and test CSVs often share one folder).

Class ids: from `--label_map_path` when given (classes it does not list are dropped and
reported); else the class names of the CSV, sorted, get ids 1..N, and that label map is written
to `--label_map_output_path` (default: `label_map.pbtxt` beside the output). An existing file
there that gives other ids is not replaced: the conversion stops, so converting the test split
after the train split cannot renumber the classes silently; pass the train split's label map
as --label_map_path instead.

Checked, counted and named in the summary by row (`file:line`): a row with another number of
fields than the header, an empty filename or class, a coordinate that is not a number, a width
or height that is not a positive integer (such rows are dropped; their image is still converted
from its other rows, or without boxes); rows of one image giving different sizes, and a size
differing from the image file (the image is skipped, as the COCO and VOC converters skip it: its
pixel boxes may belong to another version of the picture, and scaling them would be a guess).
Boxes then follow the rules of `conversion.py` (boxes partly outside the image are clipped,
degenerate and entirely outside ones dropped). The records have the COCO converter's features;
`image/source_id` and `image/filename` are the CSV's filename.
"""
from __future__ import annotations

import csv
import dataclasses
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

REQUIRED_COLUMNS = ("filename", "class", "xmin", "ymin", "xmax", "ymax")
SIZE_COLUMNS = ("width", "height")
LABEL_MAP_HINT = ("pass it as --label_map_path to convert with its ids, or remove it (or choose "
                  "another --label_map_output_path) to write this data's.")


class CsvFormatError(ValueError):
    """A CSV that is broken as a whole (no usable header, not text): the file is named, and
    nothing is written."""


@dataclasses.dataclass
class CsvImage:
    """The rows of one image, gathered while the CSV is read."""

    filename: str
    where: str  # file:line of its first row
    boxes: list[conversion.BoxAnnotation] = dataclasses.field(default_factory=list)
    size: tuple[int, int] | None = None  # (width, height) of its first row giving one
    size_where: str = ""
    size_conflict: str = ""  # rows giving different sizes


@dataclasses.dataclass
class CsvContents:
    """A CSV read: its images in order of first appearance and its rejected rows."""

    images: list[CsvImage]
    rejected: list[tuple[str, str, str]]  # (file:line, reason, detail)
    classes: list[str]  # class names of the well-formed rows, sorted


def _header(path: str, row: list[str]) -> dict[str, int]:
    """{column name: index} of the header, checked."""
    names = [cell.strip().lower() for cell in row]
    columns: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in columns and name in REQUIRED_COLUMNS + SIZE_COLUMNS:
            raise CsvFormatError(f"{path}:1: the header names the column {name!r} twice.")
        columns.setdefault(name, i)
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    sizes = [c for c in SIZE_COLUMNS if c in columns]
    if missing or len(sizes) == 1:
        missing += [c for c in SIZE_COLUMNS if c not in columns] if sizes else []
        raise CsvFormatError(
            f"{path}:1: the header has no {', '.join(missing)} column; expected "
            f"filename,width,height,class,xmin,ymin,xmax,ymax (any order; width and height "
            f"together or not at all), got {','.join(row)!r}.")
    return columns


def _positive_int(text: str) -> int | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return int(value) if value.is_integer() and value > 0 else None


def read_csv(path: str) -> CsvContents:
    """Reads the rows of a box CSV (see the module docstring); labels are left unset.

    Raises:
      CsvFormatError: the file cannot be read, is not UTF-8 text or not CSV, is empty, or its
        header lacks a column or names one twice.
    """
    images: dict[str, CsvImage] = {}
    rejected: list[tuple[str, str, str]] = []
    classes: set[str] = set()
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:  # -sig: Excel's BOM
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None:
                raise CsvFormatError(f"{path}: the file is empty; expected a header row "
                                     "filename,width,height,class,xmin,ymin,xmax,ymax.")
            columns = _header(path, header)
            for row in reader:
                where = f"{path}:{reader.line_num}"
                if not any(cell.strip() for cell in row):
                    continue  # a blank line
                if len(row) != len(header):
                    rejected.append((where, conversion.DROP_MALFORMED_FIELDS,
                                     f"{len(row)} fields, the header has {len(header)}"))
                    continue
                cell = {name: row[i].strip() for name, i in columns.items()}
                filename = cell["filename"]
                if not filename:
                    rejected.append((where, conversion.DROP_MALFORMED_VALUE, "empty filename"))
                    continue
                image = images.setdefault(filename, CsvImage(filename=filename, where=where))
                if "width" in columns:
                    size = (_positive_int(cell["width"]), _positive_int(cell["height"]))
                    if None in size:
                        bad = "width" if size[0] is None else "height"
                        rejected.append((where, conversion.DROP_MALFORMED_VALUE,
                                         f"{bad} {cell[bad]!r} is not a positive integer"))
                        continue
                    if image.size is None:
                        image.size, image.size_where = size, where
                    elif size != image.size and not image.size_conflict:
                        image.size_conflict = (
                            f"rows give {image.size[0]}x{image.size[1]} at {image.size_where} "
                            f"and {size[0]}x{size[1]} at {where}")
                coords = [cell[c] for c in ("xmin", "ymin", "xmax", "ymax")]
                name = cell["class"]
                if not name and not any(coords):
                    continue  # lists an image without boxes
                if not name:
                    rejected.append((where, conversion.DROP_MALFORMED_VALUE, "empty class"))
                    continue
                classes.add(name)
                values = []
                for column, text in zip(("xmin", "ymin", "xmax", "ymax"), coords):
                    try:
                        values.append(float(text))
                    except ValueError:
                        rejected.append((where, conversion.DROP_MALFORMED_VALUE,
                                         f"{column} {text!r} is not a number"))
                        break
                else:
                    xmin, ymin, xmax, ymax = values
                    image.boxes.append(conversion.BoxAnnotation(
                        xmin=xmin, ymin=ymin, xmax=xmax, ymax=ymax, label=None, text=name,
                        where=where))
    except UnicodeDecodeError as e:
        raise CsvFormatError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start}).") from None
    except OSError as e:
        raise CsvFormatError(f"{path}: cannot be read ({e.strerror}).") from None
    except csv.Error as e:
        raise CsvFormatError(f"{path}: not a readable CSV ({e}).") from None
    return CsvContents(images=list(images.values()), rejected=rejected,
                       classes=sorted(classes))


def csv_tasks(contents: CsvContents, images_dir: str,
              label_ids: dict[str, int]) -> list[conversion.ExampleTask]:
    """One task per image of the CSV, with labels looked up in `label_ids` ({name: id})."""
    tasks = []
    for image in contents.images:
        for box in image.boxes:
            box.label = label_ids.get(box.text)
        size = image.size or (None, None)
        tasks.append(conversion.ExampleTask(
            image_path=os.path.join(images_dir, image.filename), source_id=image.filename,
            filename=image.filename, boxes=image.boxes, width=size[0], height=size[1],
            skip_reason=conversion.SKIP_SIZE_MISMATCH if image.size_conflict else None,
            skip_detail=image.size_conflict, where=image.where))
    return tasks


def convert_csv(csv_input: str, images_dir: str, output_path: str, *,
                label_map_path: str | None = None, label_map_output_path: str | None = None,
                num_shards: int = 1, num_workers: int = 1,
                show_progress: bool = False) -> conversion.Summary:
    """Converts a box CSV; see the module docstring.

    Args:
      csv_input: the CSV file.
      images_dir: folder the CSV's filenames are relative to.
      output_path: output TFRecord path (base path of the shards when `num_shards` > 1).
      label_map_path: label map giving the class ids; None: sorted class names get 1..N.
      label_map_output_path: where that label map is written when `label_map_path` is None
        (default: `label_map.pbtxt` beside `output_path`).
      num_shards: number of output files.
      num_workers: processes reading and checking images.
      show_progress: show a tqdm progress bar.

    Returns:
      The conversion summary (also logged).

    Raises:
      CsvFormatError: the CSV is broken as a whole; nothing is written.
      conversion.InputError: the label map to read is not one, or the one to write exists
        with other ids; nothing is written.
    """
    contents = read_csv(csv_input)
    if label_map_path:
        label_ids = conversion.label_map_ids(label_map_path)
        label_map_note = f"{label_map_path} (given)"
    else:
        label_ids = {name: i + 1 for i, name in enumerate(contents.classes)}
        label_map_output_path = (label_map_output_path
                                 or conversion.default_label_map_output_path(output_path))
        conversion.check_label_map_output("label_map_output_path", label_map_output_path,
                                          label_ids, LABEL_MAP_HINT)
        label_map_note = (f"{label_map_output_path} (written: "
                          f"{conversion.describe_ids(label_ids) or 'no classes'})")
    tasks = csv_tasks(contents, images_dir, label_ids)
    # Imported here, not at the top: worker processes re-import this module, and they need
    # neither TensorFlow's start-up time nor its memory.
    from object_detection.dataset_tools import dataset_util

    summary = conversion.Summary(name=os.path.basename(output_path), label_map=label_map_note)
    for where, reason, detail in contents.rejected:
        summary.reject(where, reason, detail)
    progress = functools.partial(tqdm.tqdm, total=len(tasks), desc=summary.name,
                                 disable=not show_progress, unit="img")
    with dataset_util.ShardedTFRecordWriter(output_path, num_shards, single_file=True) as w:
        dataset_util.write_examples(conversion.prepare_all(tasks, num_workers, progress), w,
                                    summary)
    if not label_map_path:
        conversion.write_label_map(label_map_output_path, label_ids)
    logger.info("\n%s", summary.format())
    return summary


def main(argv):
    del argv
    configure_cli_logging()
    for flag in ("csv_input", "images_dir", "output_path"):
        if not FLAGS[flag].value:
            raise app.UsageError(f"--{flag} is required.")
    try:  # checked before anything is read
        conversion.require_file("csv_input", FLAGS.csv_input)
        conversion.require_dir("images_dir", FLAGS.images_dir)
        if FLAGS.label_map_path:
            conversion.require_file("label_map_path", FLAGS.label_map_path)
            conversion.label_map_ids(FLAGS.label_map_path)
        conversion.require_at_least("num_shards", FLAGS.num_shards)
        conversion.require_output("output_path", FLAGS.output_path)
        summary = convert_csv(
            FLAGS.csv_input, FLAGS.images_dir, FLAGS.output_path,
            label_map_path=FLAGS.label_map_path or None,
            label_map_output_path=FLAGS.label_map_output_path or None,
            num_shards=FLAGS.num_shards, num_workers=FLAGS.num_workers,
            show_progress=FLAGS.progress)
    except (conversion.InputError, CsvFormatError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    error = summary.nothing_written(FLAGS.output_path)
    if error:
        print(error, file=sys.stderr)
        return 1
    return 0


def _define_flags() -> None:
    """Command-line flags; defined only when run as a program, so modules import cleanly."""
    flags.DEFINE_string("csv_input", "", "CSV of boxes: filename,width,height,class,xmin,ymin,"
                        "xmax,ymax (pixels), one row per box.")
    flags.DEFINE_string("images_dir", "", "Folder the CSV's filenames are relative to.")
    flags.DEFINE_alias("image_dir", "images_dir")  # the OD API tutorials' generate_tfrecord name
    flags.DEFINE_string("label_map_path", "", "Label map (StringIntLabelMap text format) giving "
                        "the class ids; without it, sorted class names get ids 1..N.")
    flags.DEFINE_string("label_map_output_path", "", "Where the label map is written when "
                        "--label_map_path is not given (default: label_map.pbtxt beside "
                        "--output_path).")
    conversion.define_output_flags(flags)


if __name__ == "__main__":
    _define_flags()
    app.run(main)
