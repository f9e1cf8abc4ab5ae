"""The part of the TFRecord converters that does not need TensorFlow.

Converters (`create_{coco,pascal,csv,yolo}_tf_record.py`) turn one annotated image
into an `ExampleTask` (plain Python values), hand the tasks to worker processes that read and
check the image and clean its boxes (`prepare_example`), and write the resulting
`PreparedExample`s as tf.Example records in the main process. Workers import neither TensorFlow
nor protobuf, so they start fast under any multiprocessing start method.

Box rules (absolute pixel boxes `[xmin, ymin, xmax, ymax]` in, normalized boxes out):
- non-finite coordinates, zero or negative width or height: dropped;
- a box entirely outside the image: dropped;
- a box partly outside the image: clipped to the image and written (counted as clipped when it
  reaches out by more than `CLIP_TOLERANCE` pixels: less is the round-off of the annotation,
  e.g. YOLO's normalized coordinates written with 6 decimals, and not worth a report line);
- a class the converter does not know: dropped;
- a line of a text annotation (a CSV row, a YOLO label line) that is not a box (wrong number of
  fields, an empty or non-numeric field): dropped by the converter as it reads the file
  (`Summary.reject`), named by file and line;
- `is_crowd` boxes: written with `image/object/is_crowd = 1`; the decoder gives them weight 0,
  so they are left out of the training targets.
Every box read is either written or dropped with a reason, and every image read is either
written or skipped with a reason: `Summary.check()` verifies that the counts add up. Boxes read
from a text file carry their `file:line` (`BoxAnnotation.where`), and the summary names the line
of each box it drops.
"""
from __future__ import annotations

import collections
import dataclasses
import hashlib
import io
import math
import multiprocessing
import os
from typing import Callable, Iterable, Iterator, Mapping, Sequence

from PIL import Image

# Reasons, spelled once so the summary and the tests agree.
SKIP_MISSING_FILE = "missing image file"
SKIP_CORRUPT_IMAGE = "corrupt or unreadable image"
SKIP_SIZE_MISMATCH = "image size differs from the annotation"
SKIP_MISSING_ANNOTATION = "missing or unreadable annotation"
DROP_IMAGE_SKIPPED = "its image was skipped"
DROP_ZERO_AREA = "zero or negative width or height"
DROP_NON_FINITE = "non-finite coordinates"
DROP_OUTSIDE = "entirely outside the image"
DROP_UNKNOWN_CLASS = "unknown class (not in the json categories, label map or names file)"
DROP_MALFORMED_FIELDS = "malformed line: wrong number of fields"
DROP_MALFORMED_VALUE = "malformed line: empty or non-numeric field"

CLIP_TOLERANCE = 0.01  # pixels

_PASS_THROUGH_FORMATS = {"JPEG": "jpeg", "MPO": "jpeg", "PNG": "png"}


class InputError(ValueError):
    """A converter's flag names a missing file or folder, or holds a value out of range. The
    message names the flag; the converters check these before they read anything."""


def _local(path: str) -> bool:
    return "://" not in path  # gs://, s3://, ...: left to TensorFlow's file system to report


def require_file(flag: str, path: str) -> None:
    if _local(path) and not os.path.isfile(path):
        what = "is a folder, not a file" if os.path.isdir(path) else "does not exist"
        raise InputError(f"--{flag}: {path!r} {what}.")


def require_dir(flag: str, path: str) -> None:
    if _local(path) and not os.path.isdir(path):
        what = "is a file, not a folder" if os.path.exists(path) else "does not exist"
        raise InputError(f"--{flag}: {path!r} {what}.")


def require_output(flag: str, path: str) -> None:
    """The folder `path` is written into exists (or can be made) and is writable."""
    if not _local(path):
        return
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as e:
        raise InputError(f"--{flag}: cannot create the folder {folder!r} ({e.strerror}).") \
            from None
    if not os.access(folder, os.W_OK):
        raise InputError(f"--{flag}: the folder {folder!r} is not writable.")


def require_at_least(flag: str, value: int, least: int = 1) -> None:
    if value < least:
        raise InputError(f"--{flag}: must be >= {least}, got {value}.")


def label_map_ids(path: str) -> dict[str, int]:
    """{name: id} of a label map file; InputError (naming `path`) if it is not one."""
    from object_detection.data import label_map_util  # protobuf: main process only
    from object_detection.utils.errors import ConfigError

    try:
        return label_map_util.get_label_map_dict(path)
    except ConfigError as e:
        raise InputError(str(e)) from None


def check_label_map_output(flag: str, path: str, ids: Mapping[str, int], hint: str) -> None:
    """Refuses to replace a label map that gives other ids than `ids`.

    Converters that take their class ids from the data write them out as a label map; a second
    split converted into the same folder must not silently renumber the first one's classes.

    Raises:
      InputError: `path` exists and is not a label map, or maps other names or ids; `hint` says
        how to proceed.
    """
    require_output(flag, path)
    if not os.path.exists(path):
        return
    existing = label_map_ids(path)
    if existing != dict(ids):
        raise InputError(
            f"--{flag}: {path!r} exists with other classes or ids ({describe_ids(existing)}) "
            f"than this data ({describe_ids(ids)}); {hint}")


def write_label_map(path: str, ids: Mapping[str, int]) -> None:
    from object_detection.data import label_map_util  # protobuf: main process only

    label_map_util.write_label_map(path, dict(ids))


def default_label_map_output_path(output_path: str) -> str:
    """`label_map.pbtxt` beside the records a converter writes (its `--output_path`)."""
    return os.path.join(os.path.dirname(os.path.abspath(output_path)), "label_map.pbtxt")


def define_output_flags(flags_module) -> None:
    """The output flags every converter shares (`--output_path --num_shards --num_workers
    --progress`), defined on absl `flags_module`."""
    flags_module.DEFINE_string("output_path", "", "Output TFRecord path (base path when "
                               "sharded).")
    flags_module.DEFINE_integer("num_shards", 1, "Number of output shards.")
    flags_module.DEFINE_integer("num_workers", os.cpu_count() or 1,
                                "Processes reading and checking images in parallel.")
    flags_module.DEFINE_boolean("progress", True, "Show a progress bar.")


def describe_ids(ids: Mapping[str, int], limit: int = 10) -> str:
    """'WBC=1, RBC=2, ...' in id order, at most `limit` of them."""
    items = sorted(ids.items(), key=lambda item: item[1])
    text = ", ".join(f"{name}={i}" for name, i in items[:limit])
    return text + (f", ... ({len(items)} classes)" if len(items) > limit else "")


@dataclasses.dataclass
class BoxAnnotation:
    """One annotated box, in absolute pixels of the source image.

    `label` is the 1-based class id written to the record (None: the class is unknown and the box
    is dropped); `text` the class name.
    """

    xmin: float
    ymin: float
    xmax: float
    ymax: float
    label: int | None
    text: str
    is_crowd: bool = False
    area: float | None = None  # COCO 'area'; None: computed from the box
    difficult: bool = False
    truncated: bool = False
    where: str = ""  # "file:line" of a box read from a text file, for the summary; "": not known


@dataclasses.dataclass
class ExampleTask:
    """What a worker needs to prepare one image: plain values, picklable.

    With `normalized=True` the boxes are fractions of the image's width and height (YOLO labels),
    turned into pixels once the worker knows the image size.
    """

    image_path: str
    source_id: str
    filename: str
    boxes: list[BoxAnnotation]
    width: int | None = None  # from the annotation; None: not given
    height: int | None = None
    skip_reason: str | None = None  # set when the annotation itself is unusable
    skip_detail: str = ""  # what is wrong, with skip_reason
    normalized: bool = False
    where: str = ""  # where the annotation names the image ("file:line"), for the summary


@dataclasses.dataclass
class PreparedExample:
    """A checked image with cleaned, normalized boxes, or the reason it was skipped."""

    source_id: str
    filename: str
    skip_reason: str | None = None
    skip_detail: str = ""
    encoded: bytes = b""
    image_format: str = ""
    width: int = 0
    height: int = 0
    sha256: str = ""
    reencoded_from: str | None = None
    # Normalized yxyx coordinates, 1-based labels.
    ymin: list[float] = dataclasses.field(default_factory=list)
    xmin: list[float] = dataclasses.field(default_factory=list)
    ymax: list[float] = dataclasses.field(default_factory=list)
    xmax: list[float] = dataclasses.field(default_factory=list)
    labels: list[int] = dataclasses.field(default_factory=list)
    texts: list[str] = dataclasses.field(default_factory=list)
    is_crowd: list[int] = dataclasses.field(default_factory=list)
    area: list[float] = dataclasses.field(default_factory=list)
    difficult: list[int] = dataclasses.field(default_factory=list)
    truncated: list[int] = dataclasses.field(default_factory=list)
    boxes_read: int = 0
    boxes_clipped: int = 0
    dropped: dict[str, int] = dataclasses.field(default_factory=dict)
    # (file:line, reason) of the dropped boxes whose line is known (BoxAnnotation.where).
    dropped_at: list[tuple[str, str]] = dataclasses.field(default_factory=list)

    @property
    def num_boxes(self) -> int:
        return len(self.labels)


@dataclasses.dataclass
class Summary:
    """Counts of one conversion. Every image and box read is accounted for.

    images_read == images_written + sum(images_skipped.values())
    boxes_read == boxes_written + sum(boxes_dropped.values())
    annotations_read == boxes_read (COCO; orphaned annotations are boxes dropped)
    Lines of a text annotation that are not boxes are boxes read and dropped (`reject`).
    """

    name: str = ""
    images_read: int = 0
    images_written: int = 0
    images_skipped: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    images_without_boxes: int = 0
    images_reencoded: int = 0
    boxes_read: int = 0
    boxes_written: int = 0
    boxes_dropped: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    boxes_clipped: int = 0
    crowd_boxes_written: int = 0
    # COCO: annotations in the json; each is a box read, on one of its images or orphaned.
    annotations_read: int | None = None
    annotations_orphaned: int = 0
    # YOLO: images written without boxes because they have no label file (None: not counted).
    images_without_labels: int | None = None
    label_map: str = ""  # the label map used or written, as one line for the report
    output_files: list[str] = dataclasses.field(default_factory=list)
    # (file name, reason) of skipped images, and (file name, reason, count) of dropped boxes.
    skipped_images: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    dropped_boxes: list[tuple[str, str, int]] = dataclasses.field(default_factory=list)
    clipped_boxes: list[tuple[str, int]] = dataclasses.field(default_factory=list)
    # (file:line, reason) of dropped boxes and rejected lines whose line is known; those boxes
    # are named here rather than in `dropped_boxes`.
    dropped_lines: list[tuple[str, str]] = dataclasses.field(default_factory=list)

    def reject(self, where: str, reason: str, detail: str = "") -> None:
        """Counts a line of an annotation file that is not a box as a box read and dropped.

        Args:
          where: "file:line".
          reason: the counted reason (`DROP_MALFORMED_*`).
          detail: what is wrong on the line, for the report.
        """
        self.boxes_read += 1
        self.boxes_dropped[reason] += 1
        self.dropped_lines.append((where, f"{reason} ({detail})" if detail else reason))

    def add(self, example: PreparedExample) -> None:
        """Counts one prepared example (written unless it carries a skip reason)."""
        self.images_read += 1
        self.boxes_read += example.boxes_read
        named = collections.Counter(reason for _, reason in example.dropped_at)
        for reason, count in example.dropped.items():
            self.boxes_dropped[reason] += count
            if count > named[reason]:
                self.dropped_boxes.append((example.filename, reason, count - named[reason]))
        self.dropped_lines.extend(example.dropped_at)
        if example.skip_reason is not None:
            self.images_skipped[example.skip_reason] += 1
            reason = example.skip_reason
            if example.skip_detail:
                reason = f"{reason} ({example.skip_detail})"
            self.skipped_images.append((example.filename, reason))
            return
        self.images_written += 1
        self.boxes_written += example.num_boxes
        self.boxes_clipped += example.boxes_clipped
        if example.boxes_clipped:
            self.clipped_boxes.append((example.filename, example.boxes_clipped))
        self.crowd_boxes_written += sum(example.is_crowd)
        self.images_without_boxes += example.num_boxes == 0
        self.images_reencoded += example.reencoded_from is not None

    def check(self) -> None:
        """Raises RuntimeError if the counts do not add up (that would be a bug)."""
        images = self.images_written + sum(self.images_skipped.values())
        boxes = self.boxes_written + sum(self.boxes_dropped.values())
        annotations_ok = self.annotations_read in (None, self.boxes_read)
        if images != self.images_read or boxes != self.boxes_read or not annotations_ok:
            raise RuntimeError(f"conversion counts do not add up: {self}")

    def nothing_written(self, output: str) -> str | None:
        """An error line when images were read but none written to `output`, else None."""
        if self.images_read and not self.images_written:
            return (f"error: {output}: none of the {self.images_read} images was written "
                    "(see the summary above for why).")
        return None

    def format(self, max_details: int = 20) -> str:
        """A human-readable report, with up to `max_details` named images per list."""

        def reasons(counter: collections.Counter) -> str:
            if not counter:
                return ""
            return " (" + ", ".join(f"{r}: {n}" for r, n in sorted(counter.items())) + ")"

        lines = [
            f"{self.name} summary",
            f"  images: read {self.images_read}, written {self.images_written}, skipped "
            f"{sum(self.images_skipped.values())}{reasons(self.images_skipped)}",
            f"          written without boxes: {self.images_without_boxes}"
            + ("" if self.images_without_labels is None else
               f" ({self.images_without_labels} without a label file)")
            + f", re-encoded as JPEG: {self.images_reencoded}",
            f"  boxes:  read {self.boxes_read}, written {self.boxes_written}, dropped "
            f"{sum(self.boxes_dropped.values())}{reasons(self.boxes_dropped)}",
            f"          clipped to the image (and written): {self.boxes_clipped}, "
            f"crowd (written with is_crowd=1): {self.crowd_boxes_written}",
        ]
        if self.annotations_read is not None:
            lines.insert(3, f"  annotations: read {self.annotations_read}, on the json's images "
                            f"{self.annotations_read - self.annotations_orphaned}, orphaned "
                            f"(image id not among the images) {self.annotations_orphaned}")
        if self.output_files:
            lines.append(f"  output: {len(self.output_files)} file(s): {self.output_files[0]}"
                         + (" ..." if len(self.output_files) > 1 else ""))
        if self.label_map:
            lines.append(f"  label map: {self.label_map}")
        for title, items in (("skipped images", self.skipped_images),
                             ("dropped boxes", self.dropped_boxes),
                             ("dropped lines", self.dropped_lines),
                             ("clipped boxes", self.clipped_boxes)):
            if items:
                lines.append(f"  {title}:")
                for item in items[:max_details]:
                    lines.append("    " + ": ".join(str(x) for x in item))
                if len(items) > max_details:
                    lines.append(f"    ... and {len(items) - max_details} more")
        return "\n".join(lines)


def _skipped(task: ExampleTask, reason: str, detail: str = "") -> PreparedExample:
    if task.where:
        detail = f"{detail}, named at {task.where}" if detail else f"named at {task.where}"
    return PreparedExample(
        source_id=task.source_id, filename=task.filename, skip_reason=reason,
        skip_detail=detail, boxes_read=len(task.boxes),
        dropped={DROP_IMAGE_SKIPPED: len(task.boxes)} if task.boxes else {})


def read_image(path: str) -> tuple[bytes, str, int, int, str | None]:
    """Reads and fully decodes an image file to check it.

    Returns:
      (encoded bytes to store, format 'jpeg' or 'png', width, height, original format if the
      image was re-encoded as JPEG because TensorFlow cannot decode its format, else None).

    Raises:
      OSError / ValueError (PIL) when the file is not a readable image.
    """
    with open(path, "rb") as f:
        encoded = f.read()
    with Image.open(io.BytesIO(encoded)) as image:
        pil_format = image.format
        image.load()  # full decode: truncated or garbled files raise here
        width, height = image.size
        if pil_format in _PASS_THROUGH_FORMATS:
            return encoded, _PASS_THROUGH_FORMATS[pil_format], width, height, None
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, format="JPEG", quality=95)
        return buffer.getvalue(), "jpeg", width, height, pil_format


def clean_boxes(boxes: Sequence[BoxAnnotation], width: int, height: int,
                example: PreparedExample) -> None:
    """Applies the box rules of the module docstring, appending to `example`."""
    for box in boxes:
        example.boxes_read += 1
        coords = (box.xmin, box.ymin, box.xmax, box.ymax)
        if not all(math.isfinite(c) for c in coords):
            reason = DROP_NON_FINITE
        elif box.xmax <= box.xmin or box.ymax <= box.ymin:
            reason = DROP_ZERO_AREA
        elif box.xmax <= 0 or box.ymax <= 0 or box.xmin >= width or box.ymin >= height:
            reason = DROP_OUTSIDE
        elif box.label is None:
            reason = f"{DROP_UNKNOWN_CLASS}: {box.text!r}"
        else:
            reason = None
        if reason is not None:
            example.dropped[reason] = example.dropped.get(reason, 0) + 1
            if box.where:
                example.dropped_at.append((box.where, reason))
            continue
        xmin, ymin = max(box.xmin, 0.0), max(box.ymin, 0.0)
        xmax, ymax = min(box.xmax, float(width)), min(box.ymax, float(height))
        reach = max(-box.xmin, -box.ymin, box.xmax - width, box.ymax - height)
        example.boxes_clipped += reach > CLIP_TOLERANCE
        example.xmin.append(xmin / width)
        example.ymin.append(ymin / height)
        example.xmax.append(xmax / width)
        example.ymax.append(ymax / height)
        example.labels.append(int(box.label))
        example.texts.append(box.text)
        example.is_crowd.append(int(box.is_crowd))
        example.area.append(float(box.area) if box.area is not None
                            else (xmax - xmin) * (ymax - ymin))
        example.difficult.append(int(box.difficult))
        example.truncated.append(int(box.truncated))


def prepare_example(task: ExampleTask) -> PreparedExample:
    """Reads, checks and cleans one image (runs in a worker process)."""
    if task.skip_reason is not None:
        return _skipped(task, task.skip_reason, task.skip_detail)
    if not os.path.isfile(task.image_path):
        return _skipped(task, SKIP_MISSING_FILE, task.image_path)
    try:
        encoded, image_format, width, height, reencoded_from = read_image(task.image_path)
    except (OSError, ValueError, SyntaxError) as e:  # PIL raises these for bad files
        return _skipped(task, SKIP_CORRUPT_IMAGE, f"{type(e).__name__}: {e}")
    if (task.width, task.height) != (None, None) and (task.width, task.height) != (width, height):
        return _skipped(task, SKIP_SIZE_MISMATCH,
                        f"annotation {task.width}x{task.height}, file {width}x{height}")
    example = PreparedExample(
        source_id=task.source_id, filename=task.filename, encoded=encoded,
        image_format=image_format, width=width, height=height,
        sha256=hashlib.sha256(encoded).hexdigest(), reencoded_from=reencoded_from)
    boxes = task.boxes
    if task.normalized:
        boxes = [dataclasses.replace(b, xmin=b.xmin * width, xmax=b.xmax * width,
                                     ymin=b.ymin * height, ymax=b.ymax * height) for b in boxes]
    clean_boxes(boxes, width, height, example)
    return example


def prepare_all(tasks: Sequence[ExampleTask], num_workers: int,
                progress: Callable[[Iterable], Iterable] | None = None
                ) -> Iterator[PreparedExample]:
    """Prepares `tasks` in `num_workers` processes, yielding results in task order.

    Args:
      tasks: the images to prepare.
      num_workers: processes to use; <= 1 prepares in this process.
      progress: wraps the result iterator, e.g. `functools.partial(tqdm, total=len(tasks))`.
    """
    wrap = progress or (lambda it: it)
    if num_workers <= 1 or len(tasks) <= 1:
        yield from wrap(prepare_example(t) for t in tasks)
        return
    # forkserver/spawn: the parent may already run TensorFlow threads, which fork would copy.
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(method)
    chunksize = max(1, min(16, len(tasks) // (4 * num_workers)))
    with context.Pool(num_workers) as pool:
        yield from wrap(pool.imap(prepare_example, tasks, chunksize=chunksize))
