"""The OD API's fixed_shape_resizer grid, hand-computed on tiny images."""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from object_detection.core import image_resizer
from object_detection.data import preprocessor


def _row(values):
    return tf.constant(np.array(values, np.float32).reshape(1, len(values), 1))


def test_bilinear_upsampling_samples_at_i_times_in_over_out():
    # 2 -> 4: output pixel i samples input position i * 2 / 4 = 0, 0.5, 1, 1.5 (the last
    # clamped to the border): [0, 5, 10, 10]. tf.image.resize (half-pixel centres) would give
    # [0, 2.5, 7.5, 10].
    out = image_resizer.resize_images(_row([0.0, 10.0]), 1, 4)
    np.testing.assert_allclose(out.numpy().ravel(), [0.0, 5.0, 10.0, 10.0])
    half_pixel = tf.image.resize(_row([0.0, 10.0]), [1, 4]).numpy().ravel()
    np.testing.assert_allclose(half_pixel, [0.0, 2.5, 7.5, 10.0])


def test_bilinear_downsampling_picks_every_other_pixel():
    # 4 -> 2: positions 0 and 2 exactly.
    out = image_resizer.resize_images(_row([1.0, 2.0, 4.0, 8.0]), 1, 2)
    np.testing.assert_allclose(out.numpy().ravel(), [1.0, 4.0])


@pytest.mark.parametrize("method, expected", [
    ("NEAREST_NEIGHBOR", [0.0, 0.0, 10.0, 10.0]),  # floor(i * 0.5)
    ("AREA", [0.0, 0.0, 10.0, 10.0]),
])
def test_other_methods(method, expected):
    out = image_resizer.resize_images(_row([0.0, 10.0]), 1, 4, method)
    np.testing.assert_allclose(out.numpy().ravel(), expected)
    assert out.dtype == tf.float32


def test_batched_uint8_input_and_the_preprocessor_entry_point():
    images = tf.constant(np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3))
    batched = image_resizer.resize_images(images, 2, 2)
    assert batched.shape == (2, 2, 2, 3) and batched.dtype == tf.float32
    single = preprocessor.fixed_shape_resizer(images[1], height=2, width=2)
    np.testing.assert_allclose(single.numpy(), batched[1].numpy())
    np.testing.assert_allclose(single.numpy()[0, 0], images.numpy()[1, 0, 0])  # position 0


def test_unknown_method_is_refused():
    with pytest.raises(ValueError, match=r"'LANCZOS' is not supported.*BILINEAR"):
        image_resizer.resize_images(_row([0.0]), 1, 1, "LANCZOS")
