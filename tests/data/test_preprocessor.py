"""Preprocessor steps: hand-computed flips, crops and pads; boxes stay in [0, 1]; coverage."""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from object_detection.data import preprocessor

BOXES = tf.constant([[0.1, 0.2, 0.5, 0.6], [0.0, 0.0, 1.0, 1.0]])
MASK = tf.constant([True, True])


def _coordinate_image(height: int, width: int) -> tf.Tensor:
    """float32 [H, W, 3]: channel 0 is the row index, channel 1 the column index."""
    rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    return tf.constant(np.stack([rows, cols, np.zeros_like(rows)], -1), tf.float32)


def _window(cropped: tf.Tensor, height: int, width: int) -> np.ndarray:
    """The normalized yxyx window a crop of `_coordinate_image` came from."""
    y0, x0 = (float(v) for v in cropped[0, 0, :2])
    h, w = cropped.shape[0], cropped.shape[1]
    return np.array([y0 / height, x0 / width, (y0 + h) / height, (x0 + w) / width])


def test_horizontal_flip_boxes_and_pixels():
    image = _coordinate_image(4, 5)
    flipped, boxes, mask = preprocessor.random_horizontal_flip(image, BOXES, MASK,
                                                               probability=1.0)
    np.testing.assert_allclose(boxes, [[0.1, 0.4, 0.5, 0.8], [0.0, 0.0, 1.0, 1.0]], atol=1e-6)
    assert flipped[0, 0, 1] == 4.0  # column 4 now first
    assert mask.numpy().all()
    same, boxes, _ = preprocessor.random_horizontal_flip(image, BOXES, MASK, probability=0.0)
    np.testing.assert_allclose(boxes, BOXES)
    np.testing.assert_allclose(same, image)


def test_vertical_flip_boxes():
    _, boxes, _ = preprocessor.random_vertical_flip(_coordinate_image(4, 5), BOXES, MASK,
                                                    probability=1.0)
    np.testing.assert_allclose(boxes, [[0.5, 0.2, 0.9, 0.6], [0.0, 0.0, 1.0, 1.0]], atol=1e-6)


def test_flip_happens_about_half_the_time_with_probability_one_half():
    flips = sum(
        float(preprocessor.random_horizontal_flip(
            _coordinate_image(2, 2), BOXES, MASK, seed=tf.constant([s, 0]))[1][0, 1]) > 0.3
        for s in range(200))
    assert 70 < flips < 130


def test_crop_moves_boxes_to_the_window_and_drops_by_overlap():
    image = _coordinate_image(100, 100)
    boxes = tf.constant([
        [0.40, 0.40, 0.60, 0.60],  # central: inside or partly inside every 50x50 crop
        [0.00, 0.00, 0.10, 0.10],  # top-left corner
        [0.90, 0.90, 1.00, 1.00],  # bottom-right corner
    ])
    mask = tf.constant([True, True, True])
    for s in range(20):
        cropped, new_boxes, new_mask = preprocessor.random_crop_image(
            image, boxes, mask, min_object_covered=0.0, aspect_ratio_range=(1.0, 1.0),
            area_range=(0.25, 0.25), overlap_thresh=0.5, seed=tf.constant([s, 1]))
        assert cropped.shape[:2] == (50, 50)
        wy0, wx0, wy1, wx1 = _window(cropped, 100, 100)
        for box, new_box, kept in zip(boxes.numpy(), new_boxes.numpy(), new_mask.numpy()):
            y0, x0, y1, x1 = box
            inter = max(0, min(y1, wy1) - max(y0, wy0)) * max(0, min(x1, wx1) - max(x0, wx0))
            fraction = inter / ((y1 - y0) * (x1 - x0))
            assert kept == (fraction >= 0.5 and inter > 0), (s, box, fraction)
            if kept:  # hand computation: (y - wy0) / (wy1 - wy0), then clipped
                expected = np.clip([(y0 - wy0) / 0.5, (x0 - wx0) / 0.5, (y1 - wy0) / 0.5,
                                    (x1 - wx0) / 0.5], 0, 1)
                np.testing.assert_allclose(new_box, expected, atol=1e-5)


def test_crop_of_a_known_window():
    # A 4x4 image, crops of area 1/4 and aspect 1 (2x2); only the window [0.25, 0.25, 0.75,
    # 0.75] covers all of the first box (min_object_covered 1; the second box is too wide for
    # any 2x2 window). Seen from that window, by hand:
    boxes = tf.constant([
        [0.25, 0.25, 0.75, 0.75],  # -> [0, 0, 1, 1]
        [0.5, 0.0, 0.7, 0.9],      # 0.5 of its 0.9 width inside -> [0.5, -0.5, 0.9, 1.3]
        [0.0, 0.0, 0.2, 0.2],      # entirely outside: dropped
        [0.6, 0.0, 0.7, 0.3],      # 0.05 of its 0.3 width inside (< overlap_thresh 0.3): dropped
    ])
    kwargs = dict(min_object_covered=1.0, aspect_ratio_range=(1.0, 1.0),
                  area_range=(0.25, 0.25), overlap_thresh=0.3, seed=tf.constant([0, 7]))
    mask = tf.constant([True] * 4)
    cropped, clipped, new_mask = preprocessor.random_crop_image(
        _coordinate_image(4, 4), boxes, mask, **kwargs)
    np.testing.assert_allclose(_window(cropped, 4, 4), [0.25, 0.25, 0.75, 0.75])
    assert new_mask.numpy().tolist() == [True, True, False, False]
    np.testing.assert_allclose(clipped[:2], [[0.0, 0.0, 1.0, 1.0], [0.5, 0.0, 0.9, 1.0]],
                               atol=1e-6)
    _, unclipped, _ = preprocessor.random_crop_image(_coordinate_image(4, 4), boxes, mask,
                                                     clip_boxes=False, **kwargs)
    np.testing.assert_allclose(unclipped[1], [0.5, -0.5, 0.9, 1.3], atol=1e-6)


@pytest.mark.parametrize("min_object_covered", [0.3, 0.7, 1.0])
def test_crops_cover_min_object_covered_of_some_box(min_object_covered):
    image = _coordinate_image(60, 80)
    boxes = tf.constant([[0.1, 0.1, 0.5, 0.4], [0.5, 0.5, 0.9, 0.95], [0.0, 0.0, 0.0, 0.0]])
    mask = tf.constant([True, True, False])  # the masked-out row must not count
    for s in range(30):
        cropped, _, _ = preprocessor.random_crop_image(
            image, boxes, mask, min_object_covered=min_object_covered, area_range=(0.1, 1.0),
            seed=tf.constant([s, 2]))
        wy0, wx0, wy1, wx1 = _window(cropped, 60, 80)
        covered = []
        for y0, x0, y1, x1 in boxes.numpy()[:2]:
            inter = max(0, min(y1, wy1) - max(y0, wy0)) * max(0, min(x1, wx1) - max(x0, wx0))
            covered.append(inter / ((y1 - y0) * (x1 - x0)))
        assert max(covered) >= min_object_covered - 0.03, (s, covered)  # pixel rounding


def test_crop_without_boxes_and_random_coef_one():
    image = _coordinate_image(30, 40)
    empty = tf.zeros([0, 4])
    cropped, boxes, mask = preprocessor.random_crop_image(image, empty, tf.zeros([0], tf.bool),
                                                          seed=tf.constant([1, 1]))
    assert boxes.shape == (0, 4) and mask.shape == (0,) and cropped.shape[2] == 3
    same, boxes, _ = preprocessor.random_crop_image(image, BOXES, MASK, random_coef=1.0)
    np.testing.assert_allclose(same, image)
    np.testing.assert_allclose(boxes, BOXES)


def test_pad_to_a_fixed_size_moves_boxes_by_the_offset():
    image = _coordinate_image(50, 100) + 1.0  # padding (pad_color 0) is told apart by 0
    padded, boxes, _ = preprocessor.random_pad_image(
        image, tf.constant([[0.0, 0.0, 1.0, 1.0], [0.2, 0.5, 0.4, 1.0]]), MASK,
        min_image_size=(100, 200), max_image_size=(100, 200), pad_color=(0.0, 0.0, 0.0),
        seed=tf.constant([3, 4]))
    assert padded.shape == (100, 200, 3)
    rows, cols = np.nonzero(padded.numpy()[:, :, 0] + padded.numpy()[:, :, 1] > 0)
    oy, ox = rows.min(), cols.min()  # where the image went
    assert padded[oy, ox, 0] == 1.0 and padded[oy, ox, 1] == 1.0
    np.testing.assert_allclose(boxes, [[oy / 100, ox / 200, (oy + 50) / 100, (ox + 100) / 200],
                                       [(oy + 10) / 100, (ox + 50) / 200, (oy + 20) / 100,
                                        (ox + 100) / 200]], atol=1e-6)


def test_jitter_with_ratio_zero_changes_nothing_and_stays_in_unit_square():
    _, boxes, _ = preprocessor.random_jitter_boxes(None, BOXES, MASK, ratio=0.0)
    np.testing.assert_allclose(boxes, BOXES, atol=1e-6)
    _, boxes, _ = preprocessor.random_jitter_boxes(None, BOXES, MASK, ratio=0.5,
                                                   seed=tf.constant([1, 2]))
    assert (boxes.numpy() >= 0).all() and (boxes.numpy() <= 1).all()


ALL_STEPS = [
    ("random_horizontal_flip", {}), ("random_vertical_flip", {}),
    ("random_rgb_to_gray", {"probability": 0.5}), ("random_adjust_brightness", {}),
    ("random_adjust_contrast", {}), ("random_adjust_hue", {}),
    ("random_adjust_saturation", {}), ("random_distort_color", {"color_ordering": 1}),
    ("random_jitter_boxes", {"ratio": 0.2}), ("random_pad_image", {}),
    ("random_crop_image", {"min_object_covered": 0.0, "overlap_thresh": 0.0}),
    ("ssd_random_crop", {}),
]


def test_step_functions_cover_the_od_api_names():
    assert sorted(preprocessor.STEP_FUNCTIONS) == sorted(name for name, _ in ALL_STEPS)


def test_no_box_leaves_the_unit_square_and_pixels_stay_in_range():
    rng = np.random.default_rng(0)
    steps = ALL_STEPS + [("random_crop_image", {})]
    # Traced as the input pipeline traces it: without AutoGraph.
    apply = tf.function(lambda image, boxes, mask, seed: preprocessor.apply_steps(
        image, boxes, mask, steps, seed), autograph=False)
    for s in range(15):
        corners = np.sort(rng.uniform(0, 1, size=(6, 2, 2)), axis=1)  # [N, (min, max), (y, x)]
        boxes = tf.constant(corners.transpose(0, 2, 1).reshape(6, 4)[:, [0, 2, 1, 3]],
                            tf.float32)
        image = tf.constant(rng.uniform(0, 255, size=(40, 60, 3)), tf.float32)
        out_image, out_boxes, out_mask = apply(image, boxes, tf.ones([6], tf.bool),
                                               tf.constant([s, 9]))
        kept = out_boxes.numpy()[out_mask.numpy()]
        assert (kept >= 0).all() and (kept <= 1).all(), kept
        assert (kept[:, 2] >= kept[:, 0]).all() and (kept[:, 3] >= kept[:, 1]).all()
        assert out_image.dtype == tf.float32 and out_image.shape[2] == 3
        assert 0 <= float(tf.reduce_min(out_image)) and float(tf.reduce_max(out_image)) <= 255


def test_same_seed_same_result():
    image = _coordinate_image(30, 40)
    run = lambda s: preprocessor.apply_steps(image, BOXES, MASK, ALL_STEPS, tf.constant(s))
    a, b, c = run([1, 2]), run([1, 2]), run([2, 2])
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert a[0].shape != c[0].shape or not np.array_equal(a[0], c[0])


def test_colour_steps_follow_the_od_api_formulas():
    image = tf.fill([2, 2, 3], 100.0)
    bright, _, _ = preprocessor.random_adjust_brightness(image, BOXES, MASK, max_delta=0.2,
                                                         seed=tf.constant([5, 5]))
    delta = float(bright[0, 0, 0]) - 100.0
    assert -51.0 <= delta <= 51.0 and delta != 0.0  # 0.2 * 255
    gray, _, _ = preprocessor.random_rgb_to_gray(
        tf.constant([[[255.0, 0.0, 0.0]]]), BOXES, MASK, probability=1.0)
    np.testing.assert_allclose(gray, [[[76.2, 76.2, 76.2]]], atol=0.5)  # 0.2989 * 255


def test_fixed_shape_resizer_gives_a_static_shape():
    resized = tf.function(lambda x: preprocessor.fixed_shape_resizer(x, height=32, width=48),
                          input_signature=[tf.TensorSpec([None, None, 3], tf.uint8)])
    out = resized(tf.zeros([10, 7, 3], tf.uint8))
    assert out.dtype == tf.float32 and out.shape == (32, 48, 3)
    concrete = resized.get_concrete_function()
    assert concrete.structured_outputs.shape.as_list() == [32, 48, 3]


@pytest.mark.parametrize("steps, pattern", [
    ([("random_rotation90", {})], r"augmentation 0: 'random_rotation90' is not supported"),
    ([("random_horizontal_flip", {}), ("random_crop_image", {"min_area": 0.1})],
     r"augmentation 1 \(random_crop_image\): unknown arguments \['min_area'\]"),
])
def test_check_steps_names_the_bad_step(steps, pattern):
    with pytest.raises(ValueError, match=pattern):
        preprocessor.check_steps(steps)
