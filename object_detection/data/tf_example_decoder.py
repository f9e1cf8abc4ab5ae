"""Decodes OD API detection tf.Examples into tensors with InputFields keys.

Contract (one serialized tf.Example in, one dict out; n = boxes in the record):
  image                         uint8 [H, W, 3]; JPEG or PNG; grayscale and RGBA become RGB
  source_id                     string []  (`image/source_id`: COCO image id, VOC image id)
  filename                      string []
  key                           string []  (`image/key/sha256`)
  original_image_spatial_shape  int32 [2]  (H, W) of the decoded image
  true_image_shape              int32 [3]  (H, W, 3)
  groundtruth_boxes             float32 [n, 4] yxyx, normalized as stored
  groundtruth_classes           int32 [n]  0-based: label - CLASS_ID_OFFSET
  groundtruth_weights           float32 [n] 0 for crowd boxes (left out of targets), else 1
  groundtruth_is_crowd          bool [n]
  groundtruth_difficult         bool [n]  (VOC `difficult`: left out of Pascal AP, kept in
                                training with weight 1; False where absent)
  groundtruth_area              float32 [n] (COCO area in pixels; 0 where absent)
  num_groundtruth_boxes         int32 []

Label ids are 1-based in records and label maps and 0-based inside the model; this module is
the one place that converts them.
"""
from __future__ import annotations

import tensorflow as tf

from object_detection.core.standard_fields import CLASS_ID_OFFSET, InputFields, TfExampleFields

_BOX_KEYS = (TfExampleFields.object_bbox_ymin, TfExampleFields.object_bbox_xmin,
             TfExampleFields.object_bbox_ymax, TfExampleFields.object_bbox_xmax)


class TfExampleDecoder:
    """Parses and decodes OD API detection tf.Examples (see the module docstring).

    Args:
      num_classes: foreground classes; when given, `check_labels` can verify that every label
        lies in 1..num_classes.
    """

    def __init__(self, num_classes: int | None = None):
        self.num_classes = num_classes
        scalar = lambda dtype, default: tf.io.FixedLenFeature((), dtype, default_value=default)
        self._features = {
            TfExampleFields.image_encoded: scalar(tf.string, ""),
            TfExampleFields.image_format: scalar(tf.string, "jpeg"),
            TfExampleFields.filename: scalar(tf.string, ""),
            TfExampleFields.source_id: scalar(tf.string, ""),
            TfExampleFields.key: scalar(tf.string, ""),
            TfExampleFields.object_class_label: tf.io.VarLenFeature(tf.int64),
            TfExampleFields.object_is_crowd: tf.io.VarLenFeature(tf.int64),
            TfExampleFields.object_difficult: tf.io.VarLenFeature(tf.int64),
            TfExampleFields.object_area: tf.io.VarLenFeature(tf.float32),
            **{k: tf.io.VarLenFeature(tf.float32) for k in _BOX_KEYS},
        }

    def parse(self, serialized: tf.Tensor) -> dict[str, tf.Tensor]:
        """Parses a record without decoding its image.

        Returns:
          The module's dict without `image`, `original_image_spatial_shape` and
          `true_image_shape`, plus `TfExampleFields.image_encoded` (string []). Raises
          InvalidArgumentError (at run time) if the per-box lists differ in length.
        """
        parsed = tf.io.parse_single_example(serialized, self._features)
        dense = {k: tf.sparse.to_dense(v) if isinstance(v, tf.SparseTensor) else v
                 for k, v in parsed.items()}
        boxes = tf.stack([dense[k] for k in _BOX_KEYS], axis=-1)  # [n, 4]; fails if ragged
        labels = tf.cast(dense[TfExampleFields.object_class_label], tf.int32)
        num_boxes = tf.shape(boxes)[0]
        check = tf.debugging.assert_equal(
            tf.shape(labels)[0], num_boxes,
            message="image/object/class/label and image/object/bbox/* differ in length")
        with tf.control_dependencies([check]):
            classes = labels - CLASS_ID_OFFSET
        is_crowd = _per_box(dense[TfExampleFields.object_is_crowd], num_boxes, 0) > 0
        difficult = _per_box(dense[TfExampleFields.object_difficult], num_boxes, 0) > 0
        area = _per_box(dense[TfExampleFields.object_area], num_boxes, 0.0)
        return {
            TfExampleFields.image_encoded: dense[TfExampleFields.image_encoded],
            InputFields.source_id: dense[TfExampleFields.source_id],
            InputFields.filename: dense[TfExampleFields.filename],
            InputFields.key: dense[TfExampleFields.key],
            InputFields.groundtruth_boxes: boxes,
            InputFields.groundtruth_classes: classes,
            InputFields.groundtruth_weights: tf.where(is_crowd, 0.0, 1.0),
            InputFields.groundtruth_is_crowd: is_crowd,
            InputFields.groundtruth_difficult: difficult,
            InputFields.groundtruth_area: area,
            InputFields.num_groundtruth_boxes: num_boxes,
        }

    def labels_in_range(self, classes: tf.Tensor) -> tf.Tensor:
        """bool []: whether 0 <= classes < num_classes (labels 1..num_classes); True without
        num_classes.

        Args:
          classes: int32 [n], 0-based.
        """
        if self.num_classes is None:
            return tf.constant(True)
        return tf.reduce_all((classes >= 0) & (classes < self.num_classes))

    def check_labels(self, classes: tf.Tensor, where: tf.Tensor | str = "") -> tf.Operation:
        """An assertion that 0 <= classes < num_classes (no-op without num_classes).

        Args:
          classes: int32 [n], 0-based.
          where: string naming the record, put in the error message.
        """
        if self.num_classes is None:
            return tf.no_op()
        ok = self.labels_in_range(classes)
        message = tf.strings.format(
            "{}: class labels {} are outside 1..num_classes ({}); the label map and "
            "num_classes do not match the records",
            (where, classes + CLASS_ID_OFFSET, self.num_classes))
        return tf.debugging.Assert(ok, [message])

    @staticmethod
    def decode_image(encoded: tf.Tensor) -> tf.Tensor:
        """uint8 [H, W, 3] of a JPEG, PNG (or GIF/BMP, first frame) string; raises if corrupt."""
        image = tf.io.decode_image(encoded, channels=3, dtype=tf.uint8, expand_animations=False)
        image.set_shape([None, None, 3])
        return image

    def decode(self, serialized: tf.Tensor) -> dict[str, tf.Tensor]:
        """Parses a record and decodes its image; see the module docstring for the dict."""
        tensors = self.parse(serialized)
        image = self.decode_image(tensors.pop(TfExampleFields.image_encoded))
        shape = tf.shape(image)
        tensors[InputFields.image] = image
        tensors[InputFields.original_image_spatial_shape] = shape[:2]
        tensors[InputFields.true_image_shape] = shape
        check = self.check_labels(tensors[InputFields.groundtruth_classes],
                                  tensors[InputFields.source_id])
        with tf.control_dependencies([check]):
            tensors[InputFields.groundtruth_classes] = tf.identity(
                tensors[InputFields.groundtruth_classes])
        return tensors


def _per_box(values: tf.Tensor, num_boxes: tf.Tensor, default) -> tf.Tensor:
    """`values` if it has one entry per box, else `default` for every box (feature absent)."""
    values = tf.reshape(values, [-1])
    return tf.cond(tf.equal(tf.shape(values)[0], num_boxes), lambda: values,
                   lambda: tf.fill([num_boxes], tf.cast(default, values.dtype)))
