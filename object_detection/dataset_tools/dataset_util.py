"""tf.Example building and sharded TFRecord writing, with the OD API's feature keys.

Shard `i` of `n` of an output path `base` is `base-0000i-of-0000n` (the OD API's
`open_sharded_output_tfrecords` naming), so `base-?????-of-?????` or `base*` globs them all.
Example `j` goes to shard `j % n`.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
from typing import Sequence

import tensorflow as tf

from object_detection.core.standard_fields import TfExampleFields as F
from object_detection.dataset_tools import conversion


def int64_feature(value: int) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))


def int64_list_feature(values: Sequence[int]) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=values))


def _utf8(value: bytes | str) -> bytes:
    """UTF-8 bytes of a string. A name read from the file system that is not valid UTF-8
    (Python keeps its undecodable bytes as surrogate escapes) is written as its original bytes:
    lossless, and `parse_example` reads it back to the same string."""
    return value.encode("utf8", "surrogateescape") if isinstance(value, str) else value


def bytes_feature(value: bytes | str) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[_utf8(value)]))


def bytes_list_feature(values: Sequence[bytes | str]) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[_utf8(v) for v in values]))


def float_list_feature(values: Sequence[float]) -> tf.train.Feature:
    return tf.train.Feature(float_list=tf.train.FloatList(value=values))


def build_tf_example(example: conversion.PreparedExample) -> tf.train.Example:
    """The OD API detection tf.Example of one prepared image.

    Boxes are written normalized (`image/object/bbox/{ymin,xmin,ymax,xmax}` in [0, 1]) with
    1-based `image/object/class/label`, as the OD API's converters do.
    """
    feature = {
        F.height: int64_feature(example.height),
        F.width: int64_feature(example.width),
        F.filename: bytes_feature(example.filename),
        F.source_id: bytes_feature(example.source_id),
        F.key: bytes_feature(example.sha256),
        F.image_encoded: bytes_feature(example.encoded),
        F.image_format: bytes_feature(example.image_format),
        F.object_bbox_xmin: float_list_feature(example.xmin),
        F.object_bbox_xmax: float_list_feature(example.xmax),
        F.object_bbox_ymin: float_list_feature(example.ymin),
        F.object_bbox_ymax: float_list_feature(example.ymax),
        F.object_class_text: bytes_list_feature(example.texts),
        F.object_class_label: int64_list_feature(example.labels),
        F.object_is_crowd: int64_list_feature(example.is_crowd),
        F.object_area: float_list_feature(example.area),
        F.object_difficult: int64_list_feature(example.difficult),
        F.object_truncated: int64_list_feature(example.truncated),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature))


def sharded_paths(base_path: str, num_shards: int) -> list[str]:
    """`base-00000-of-0000n` ... for `num_shards` shards."""
    if num_shards < 1:
        raise ValueError(f"num_shards must be >= 1, got {num_shards}.")
    return [f"{base_path}-{i:05d}-of-{num_shards:05d}" for i in range(num_shards)]


class ShardedTFRecordWriter(contextlib.AbstractContextManager):
    """Writes serialized records round-robin into shards: record j into shard j % n.

    With `single_file=True` and one shard, writes exactly `base_path` instead. The shards are
    written under temporary names and renamed when the `with` block ends without an error; an
    error or an interrupt (Ctrl-C) removes them, so no half-written output is left that a glob
    would pick up. Shards of an earlier run under the same names are replaced only on success.
    """

    def __init__(self, base_path: str, num_shards: int, single_file: bool = False):
        if single_file and num_shards == 1:
            self.paths = [base_path]
        else:
            self.paths = sharded_paths(base_path, num_shards)
        directory = os.path.dirname(os.path.abspath(base_path))
        tf.io.gfile.makedirs(directory)
        self._temporary = [os.path.join(os.path.dirname(p), f".{os.path.basename(p)}.partial")
                           for p in self.paths]
        self._writers = [tf.io.TFRecordWriter(p) for p in self._temporary]
        self._count = 0

    def write(self, serialized: bytes) -> None:
        self._writers[self._count % len(self._writers)].write(serialized)
        self._count += 1

    def close(self) -> None:
        for writer in self._writers:
            writer.close()

    def __exit__(self, exc_type, *exc) -> None:
        self.close()
        for temporary, path in zip(self._temporary, self.paths):
            if exc_type is None:
                tf.io.gfile.rename(temporary, path, overwrite=True)
            elif tf.io.gfile.exists(temporary):
                tf.io.gfile.remove(temporary)


def write_examples(examples, writer: ShardedTFRecordWriter,
                   summary: conversion.Summary) -> conversion.Summary:
    """Counts every prepared example in `summary` and writes those not skipped."""
    for example in examples:
        summary.add(example)
        if example.skip_reason is None:
            writer.write(build_tf_example(example).SerializeToString())
    summary.output_files = list(writer.paths)
    summary.check()
    return summary


def build_example_from_boxes(encoded: bytes, *, width: int, height: int,
                             boxes: Sequence[conversion.BoxAnnotation], source_id: str,
                             filename: str, image_format: str = "jpeg") -> tf.train.Example:
    """A detection tf.Example from encoded image bytes and absolute pixel boxes.

    The boxes go through the converters' box rules (`conversion.clean_boxes`); the image bytes
    are written as given, unchecked (tests use this to write corrupt images).
    """
    example = conversion.PreparedExample(
        source_id=source_id, filename=filename, encoded=encoded, image_format=image_format,
        width=width, height=height, sha256=hashlib.sha256(encoded).hexdigest())
    conversion.clean_boxes(boxes, width, height, example)
    return build_tf_example(example)


def parse_example(serialized: bytes) -> dict:
    """The fields of a detection tf.Example as Python values (for checks and inspection).

    Returns:
      {"source_id", "filename", "format": str; "height", "width": int; "encoded": bytes;
       "boxes": [(ymin, xmin, ymax, xmax)] normalized; "labels": [int]; "texts": [str];
       "is_crowd": [int]; "area": [float]}
    """
    feature = tf.train.Example.FromString(serialized).features.feature

    def values(key, kind):
        return list(getattr(feature[key], kind).value) if key in feature else []

    def text(key):
        found = values(key, "bytes_list")
        return found[0].decode("utf8", "surrogateescape") if found else ""

    boxes = list(zip(values(F.object_bbox_ymin, "float_list"),
                     values(F.object_bbox_xmin, "float_list"),
                     values(F.object_bbox_ymax, "float_list"),
                     values(F.object_bbox_xmax, "float_list")))
    return {
        "source_id": text(F.source_id), "filename": text(F.filename),
        "format": text(F.image_format),
        "height": values(F.height, "int64_list")[0], "width": values(F.width, "int64_list")[0],
        "encoded": values(F.image_encoded, "bytes_list")[0],
        "boxes": boxes, "labels": values(F.object_class_label, "int64_list"),
        "texts": [t.decode("utf8", "surrogateescape")
                  for t in values(F.object_class_text, "bytes_list")],
        "is_crowd": values(F.object_is_crowd, "int64_list"),
        "area": values(F.object_area, "float_list"),
    }


def read_examples(file_pattern: str) -> list[dict]:
    """`parse_example` of every record of every file matching the glob, files sorted."""
    out = []
    for path in sorted(tf.io.gfile.glob(file_pattern)):
        for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
            out.append(parse_example(record))
    return out
