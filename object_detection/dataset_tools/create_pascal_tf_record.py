r"""Converts Pascal VOC xml annotations + images into TFRecords of OD API tf.Examples.

Usage:

  python -m object_detection.dataset_tools.create_pascal_tf_record \
      --annotations_dir=/data/voc/Annotations --images_dir=/data/voc/JPEGImages \
      --image_list=/data/voc/ImageSets/Main/train.txt \
      --label_map_path=/data/voc/label_map.pbtxt \
      --output_path=/data/voc_train.record --num_shards=10

One xml per image: `annotations_dir/<image id>.xml`. `--image_list` (optional) names the image
ids to convert, one per line (the first word of each line, as VOC ImageSets files); without it,
every xml in `annotations_dir` is converted, sorted by name. The image is `images_dir/<the xml's
<filename>>`, or `images_dir/<image id>.{jpg,jpeg,png}` when that does not exist.

Classes are looked up by `<name>` in the label map (`name` field); unknown names are dropped
and reported. Boxes are written as the OD API's VOC converter writes them (`xmin / width`,
no 1-pixel offset); `difficult` and `truncated` are kept. `image/source_id` is the image id.
With --num_shards=1 the output is exactly --output_path, else `output_path-?????-of-?????`.
"""
from __future__ import annotations

import functools
import os
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

if __package__ in (None, ""):  # run as a script path: make the package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from absl import app, flags
import tqdm

from object_detection.data import label_map_util
from object_detection.dataset_tools import conversion
from object_detection.utils.errors import ConfigError
from object_detection.utils.log import configure_cli_logging, logger

FLAGS = flags.FLAGS

_IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".JPG", ".JPEG", ".PNG")


def _text(node: ET.Element | None, tag: str, default: str = "") -> str:
    child = node.find(tag) if node is not None else None
    return child.text.strip() if child is not None and child.text else default


def _number(node: ET.Element | None, tag: str) -> float:
    try:
        return float(_text(node, tag, "nan"))
    except ValueError:
        return float("nan")


def voc_task(xml_path: str, image_id: str, images_dir: str,
             label_map: dict[str, int]) -> conversion.ExampleTask:
    """The task of one VOC xml file; an unreadable xml gives a task that is skipped."""
    try:
        root = ET.parse(xml_path).getroot()
    except (OSError, ET.ParseError) as e:
        return conversion.ExampleTask(
            image_path="", source_id=image_id, filename=os.path.basename(xml_path), boxes=[],
            skip_reason=f"{conversion.SKIP_MISSING_ANNOTATION}: {type(e).__name__}")
    filename = _text(root, "filename")
    image_path = os.path.join(images_dir, filename) if filename else ""
    if not os.path.isfile(image_path):
        for ext in _IMAGE_EXTENSIONS:
            candidate = os.path.join(images_dir, image_id + ext)
            if os.path.isfile(candidate):
                image_path, filename = candidate, image_id + ext
                break
    size = root.find("size")
    width, height = (_number(size, "width"), _number(size, "height"))
    width = int(width) if width == width else 0  # NaN (missing) -> 0
    height = int(height) if height == height else 0
    boxes = []
    for obj in root.findall("object"):
        name = _text(obj, "name")
        bndbox = obj.find("bndbox")
        boxes.append(conversion.BoxAnnotation(
            xmin=_number(bndbox, "xmin"), ymin=_number(bndbox, "ymin"),
            xmax=_number(bndbox, "xmax"), ymax=_number(bndbox, "ymax"),
            label=label_map.get(name), text=name,
            difficult=_text(obj, "difficult", "0") == "1",
            truncated=_text(obj, "truncated", "0") == "1"))
    sizes_given = width > 0 and height > 0  # some tools write 0 x 0: trust the image then
    return conversion.ExampleTask(
        image_path=image_path, source_id=image_id, filename=filename or image_id,
        boxes=boxes, width=width if sizes_given else None,
        height=height if sizes_given else None)


def read_image_list(path: str) -> list[str]:
    with open(path) as f:
        return [line.split()[0] for line in f if line.strip()]


def convert_pascal(annotations_dir: str, images_dir: str, label_map_path: str,
                   output_path: str, *, image_list: str | None = None, num_shards: int = 1,
                   num_workers: int = 1, show_progress: bool = False) -> conversion.Summary:
    """Converts VOC xml annotations; see the module docstring.

    Returns:
      The conversion summary (also logged). A listed image id without an xml counts as a
      skipped image.
    """
    label_map = label_map_util.get_label_map_dict(label_map_path)
    if image_list:
        ids = read_image_list(image_list)
    else:
        ids = sorted(p[:-4] for p in os.listdir(annotations_dir) if p.endswith(".xml"))
    tasks = [voc_task(os.path.join(annotations_dir, i + ".xml"), i, images_dir, label_map)
             for i in ids]
    # Imported here, not at the top: worker processes re-import this module, and they need
    # neither TensorFlow's start-up time nor its memory.
    from object_detection.dataset_tools import dataset_util

    summary = conversion.Summary(name=os.path.basename(output_path))
    progress = functools.partial(tqdm.tqdm, total=len(tasks), desc=summary.name,
                                 disable=not show_progress, unit="img")
    with dataset_util.ShardedTFRecordWriter(output_path, num_shards, single_file=True) as w:
        dataset_util.write_examples(conversion.prepare_all(tasks, num_workers, progress), w,
                                    summary)
    logger.info("\n%s", summary.format())
    return summary


def main(argv):
    del argv
    configure_cli_logging()
    for flag in ("annotations_dir", "images_dir", "label_map_path", "output_path"):
        if not FLAGS[flag].value:
            raise app.UsageError(f"--{flag} is required.")
    try:  # checked before anything is read
        conversion.require_dir("annotations_dir", FLAGS.annotations_dir)
        conversion.require_dir("images_dir", FLAGS.images_dir)
        conversion.require_file("label_map_path", FLAGS.label_map_path)
        if FLAGS.image_list:
            conversion.require_file("image_list", FLAGS.image_list)
        conversion.require_at_least("num_shards", FLAGS.num_shards)
        conversion.require_output("output_path", FLAGS.output_path)
        label_map_util.get_label_map_dict(FLAGS.label_map_path)
    except (conversion.InputError, ConfigError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    summary = convert_pascal(
        FLAGS.annotations_dir, FLAGS.images_dir, FLAGS.label_map_path, FLAGS.output_path,
        image_list=FLAGS.image_list or None, num_shards=FLAGS.num_shards,
        num_workers=FLAGS.num_workers, show_progress=FLAGS.progress)
    error = summary.nothing_written(FLAGS.output_path)
    if error:
        print(error, file=sys.stderr)
        return 1
    return 0


def _define_flags() -> None:
    """Command-line flags; defined only when run as a program, so modules import cleanly."""
    flags.DEFINE_string("annotations_dir", "", "Folder of Pascal VOC xml files.")
    flags.DEFINE_string("images_dir", "", "Folder of the images.")
    flags.DEFINE_string("image_list", "", "Optional file of image ids, one per line.")
    flags.DEFINE_string("label_map_path", "", "Label map (StringIntLabelMap text format).")
    conversion.define_output_flags(flags)


if __name__ == "__main__":
    _define_flags()
    app.run(main)
