"""TfExampleDecoder: JPEG/PNG/grayscale -> RGB uint8, 0-based classes, crowd weight 0,
`difficult` decoded (weight unchanged)."""
from __future__ import annotations

import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from object_detection.core.standard_fields import CLASS_ID_OFFSET
from object_detection.core.standard_fields import InputFields as F
from object_detection.data.tf_example_decoder import TfExampleDecoder
from object_detection.dataset_tools import conversion, dataset_util


def _encode(array: np.ndarray, fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, fmt)
    return buffer.getvalue()


def _record(encoded: bytes, boxes, fmt="jpeg", width=8, height=6) -> bytes:
    return dataset_util.build_example_from_boxes(
        encoded, width=width, height=height, boxes=boxes, source_id="42", filename="x.jpg",
        image_format=fmt).SerializeToString()


@pytest.mark.parametrize("mode, fmt", [
    ("RGB", "JPEG"), ("RGB", "PNG"),
    ("L", "JPEG"), ("L", "PNG"),  # grayscale becomes 3 equal channels
    ("RGBA", "PNG"),  # alpha dropped
])
def test_images_decode_to_rgb_uint8(mode, fmt):
    channels = {"RGB": 3, "L": 1, "RGBA": 4}[mode]
    array = np.full((6, 8, channels), 100, np.uint8).squeeze()
    decoded = TfExampleDecoder().decode(tf.constant(_record(_encode(array, fmt), [], fmt.lower())))
    image = decoded[F.image]
    assert image.dtype == tf.uint8 and image.shape == (6, 8, 3)
    np.testing.assert_allclose(image.numpy(), 100, atol=2)
    assert decoded[F.original_image_spatial_shape].numpy().tolist() == [6, 8]
    assert decoded[F.true_image_shape].numpy().tolist() == [6, 8, 3]


def test_boxes_classes_weights_and_ids():
    boxes = [conversion.BoxAnnotation(2, 3, 6, 6, label=1, text="a", area=12.0),
             conversion.BoxAnnotation(0, 0, 8, 6, label=90, text="b", is_crowd=True),
             conversion.BoxAnnotation(1, 1, 3, 3, label=2, text="c", difficult=True)]
    encoded = _encode(np.zeros((6, 8, 3), np.uint8), "JPEG")
    decoded = TfExampleDecoder(num_classes=90).decode(tf.constant(_record(encoded, boxes)))
    np.testing.assert_allclose(decoded[F.groundtruth_boxes].numpy(),
                               [[0.5, 0.25, 1.0, 0.75], [0.0, 0.0, 1.0, 1.0],
                                [1 / 6, 0.125, 0.5, 0.375]])
    assert CLASS_ID_OFFSET == 1
    assert decoded[F.groundtruth_classes].numpy().tolist() == [0, 89, 1]
    assert decoded[F.groundtruth_classes].dtype == tf.int32
    assert decoded[F.groundtruth_is_crowd].numpy().tolist() == [False, True, False]
    assert decoded[F.groundtruth_difficult].dtype == tf.bool
    assert decoded[F.groundtruth_difficult].numpy().tolist() == [False, False, True]
    # difficult boxes keep weight 1: only evaluation leaves them out
    assert decoded[F.groundtruth_weights].numpy().tolist() == [1.0, 0.0, 1.0]
    np.testing.assert_allclose(decoded[F.groundtruth_area].numpy(), [12.0, 48.0, 4.0])
    assert int(decoded[F.num_groundtruth_boxes]) == 3
    assert decoded[F.source_id].numpy() == b"42" and decoded[F.filename].numpy() == b"x.jpg"


def test_record_without_boxes_gives_empty_tensors():
    encoded = _encode(np.zeros((6, 8, 3), np.uint8), "JPEG")
    decoded = TfExampleDecoder().decode(tf.constant(_record(encoded, [])))
    assert decoded[F.groundtruth_boxes].shape == (0, 4)
    assert decoded[F.groundtruth_classes].shape == (0,)
    assert decoded[F.groundtruth_difficult].shape == (0,)
    assert int(decoded[F.num_groundtruth_boxes]) == 0


def test_records_without_difficult_feature_decode_as_not_difficult():
    # Records written by other tools may lack image/object/difficult (and is_crowd): every box
    # is then not difficult, as in the OD API decoder.
    encoded = _encode(np.zeros((6, 8, 3), np.uint8), "JPEG")
    example = dataset_util.build_example_from_boxes(
        encoded, width=8, height=6, boxes=[conversion.BoxAnnotation(0, 0, 4, 4, label=1, text="a"),
                                           conversion.BoxAnnotation(2, 2, 8, 6, label=1, text="a")],
        source_id="1", filename="x.jpg")
    del example.features.feature["image/object/difficult"]
    del example.features.feature["image/object/is_crowd"]
    decoded = TfExampleDecoder().decode(tf.constant(example.SerializeToString()))
    assert decoded[F.groundtruth_difficult].numpy().tolist() == [False, False]
    assert decoded[F.groundtruth_is_crowd].numpy().tolist() == [False, False]


def test_labels_outside_num_classes_fail_with_a_message():
    encoded = _encode(np.zeros((6, 8, 3), np.uint8), "JPEG")
    record = _record(encoded, [conversion.BoxAnnotation(0, 0, 4, 4, label=5, text="x")])
    with pytest.raises(tf.errors.InvalidArgumentError, match="outside 1..num_classes"):
        TfExampleDecoder(num_classes=3).decode(tf.constant(record))


def test_decodes_inside_tf_function():
    encoded = _encode(np.zeros((6, 8, 3), np.uint8), "PNG")
    decode = tf.function(TfExampleDecoder().decode)
    decoded = decode(tf.constant(_record(encoded, [], "png")))
    assert decoded[F.image].shape == (6, 8, 3)
