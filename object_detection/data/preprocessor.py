"""Data augmentation steps, named and parametrized as the OD API's preprocessor.

Every step has the signature

  step(image, boxes, mask, *, seed=None, **params) -> (image, boxes, mask)

  image: float32 [H, W, 3], pixel values 0..255 (steps that resize or pad change H, W).
  boxes: float32 [N, 4], yxyx normalized to the image. N never changes: a step that drops a
         box sets its `mask` entry to False instead (no data-dependent shapes), so per-box
         fields (classes, weights, is_crowd, area) need no gathering.
  mask:  bool [N]; True for boxes still present. Boxes whose mask is False may hold any value.
  seed:  int32/int64 [2], a stateless random seed (tf.random.stateless_*), so one element's
         augmentation depends only on its seed; None draws one from the global generator.

Steps take plain Python values; the builder that reads `train_config.data_augmentation_options`
maps proto fields to arguments as follows (OD API defaults in brackets):

  random_horizontal_flip    probability [0.5]      (keypoint_flip_permutation: not supported)
  random_vertical_flip      probability [0.5]      (keypoint_flip_permutation: not supported)
  random_rgb_to_gray        probability [0.1]
  random_adjust_brightness  max_delta [0.2]
  random_adjust_contrast    min_delta [0.8], max_delta [1.25]
  random_adjust_hue         max_delta [0.02]
  random_adjust_saturation  min_delta [0.8], max_delta [1.25]
  random_distort_color      color_ordering [0]
  random_jitter_boxes       ratio [0.05], jitter_mode ["default"]: RandomJitterBoxes.JitterMode
                            name lower-cased, one of DEFAULT, EXPAND, SHRINK
  random_crop_image         min_object_covered [1.0],
                            aspect_ratio_range = (min_aspect_ratio [0.75], max_aspect_ratio [1.33]),
                            area_range = (min_area [0.1], max_area [1.0]),
                            overlap_thresh [0.3], clip_boxes [True], random_coef [0.0]
  random_pad_image          min_image_size = (min_image_height, min_image_width) or None,
                            max_image_size = (max_image_height, max_image_width) or None,
                            pad_color = tuple(pad_color) or None (None: the image's mean colour)
  ssd_random_crop           one tuple per field over `operations`: min_object_covered,
                            aspect_ratio_range = ((min_aspect_ratio, max_aspect_ratio), ...),
                            area_range = ((min_area, max_area), ...), overlap_thresh,
                            clip_boxes, random_coef; no operations: the SSD paper's 7 defaults

`STEP_FUNCTIONS` maps each step name to its function. `fixed_shape_resizer` (the model's
`image_resizer`, not an augmentation) resizes to a fixed size; boxes, being normalized, stay.
Colour steps follow the OD API: they work on image / 255 and clip the result to 0..255.
"""
from __future__ import annotations

import inspect
from typing import Callable, Sequence

import tensorflow as tf

from object_detection.core import box_ops, image_resizer

Step = Callable[..., tuple[tf.Tensor, tf.Tensor, tf.Tensor]]


def _seed(seed: tf.Tensor | None, salt: int = 0) -> tf.Tensor:
    """A [2] stateless seed: `seed` folded with `salt`, or a fresh one when `seed` is None."""
    if seed is None:
        seed = tf.random.uniform([2], maxval=tf.int32.max, dtype=tf.int32)
    seed = tf.convert_to_tensor(seed)
    return tf.random.experimental.stateless_fold_in(seed, salt) if salt else seed


def _uniform(seed: tf.Tensor, minval: float = 0.0, maxval: float = 1.0,
             shape: Sequence[int] = ()) -> tf.Tensor:
    return tf.random.stateless_uniform(shape, seed, minval=minval, maxval=maxval)


def _random_integer(seed: tf.Tensor, minval: tf.Tensor, maxval: tf.Tensor) -> tf.Tensor:
    """int32 uniform in [minval, maxval)."""
    return tf.random.stateless_uniform([], seed, minval=minval, maxval=maxval, dtype=tf.int32)


def _float_image(image: tf.Tensor) -> tf.Tensor:
    return tf.cast(image, tf.float32)


# Geometry -----------------------------------------------------------------------------------


def random_horizontal_flip(image, boxes, mask, *, probability: float = 0.5, seed=None):
    """Mirrors left-right with `probability`: [y0, x0, y1, x1] -> [y0, 1-x1, y1, 1-x0]."""
    do_flip = _uniform(_seed(seed)) < probability
    image = tf.cond(do_flip, lambda: tf.image.flip_left_right(image), lambda: image)
    ymin, xmin, ymax, xmax = tf.unstack(boxes, axis=-1)
    flipped = tf.stack([ymin, 1.0 - xmax, ymax, 1.0 - xmin], axis=-1)
    return image, tf.where(do_flip, flipped, boxes), mask


def random_vertical_flip(image, boxes, mask, *, probability: float = 0.5, seed=None):
    """Mirrors top-bottom with `probability`: [y0, x0, y1, x1] -> [1-y1, x0, 1-y0, x1]."""
    do_flip = _uniform(_seed(seed)) < probability
    image = tf.cond(do_flip, lambda: tf.image.flip_up_down(image), lambda: image)
    ymin, xmin, ymax, xmax = tf.unstack(boxes, axis=-1)
    flipped = tf.stack([1.0 - ymax, xmin, 1.0 - ymin, xmax], axis=-1)
    return image, tf.where(do_flip, flipped, boxes), mask


def _change_coordinate_frame(boxes: tf.Tensor, window: tf.Tensor) -> tf.Tensor:
    """Boxes [N, 4] relative to `window` [4] (yxyx, normalized): (y - wy0) / (wy1 - wy0)."""
    height = window[2] - window[0]
    width = window[3] - window[1]
    return (boxes - tf.stack([window[0], window[1], window[0], window[1]])) / tf.stack(
        [height, width, height, width])


def _area(boxes: tf.Tensor) -> tf.Tensor:
    return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])


def _fraction_inside(boxes: tf.Tensor, window: tf.Tensor) -> tf.Tensor:
    """Intersection of boxes [N, 4] with `window` [4] over the box area (IoA); 0 if empty."""
    ymin = tf.maximum(boxes[:, 0], window[0])
    xmin = tf.maximum(boxes[:, 1], window[1])
    ymax = tf.minimum(boxes[:, 2], window[2])
    xmax = tf.minimum(boxes[:, 3], window[3])
    intersection = tf.maximum(ymax - ymin, 0.0) * tf.maximum(xmax - xmin, 0.0)
    return tf.math.divide_no_nan(intersection, _area(boxes))


def _boxes_for_sampler(boxes: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """[1, N, 4] for sample_distorted_bounding_box: masked-out rows replaced by a present box.

    The sampler accepts a crop that covers `min_object_covered` of *any* box, so repeating a
    present box changes nothing; with no present box every row is the whole image, as the
    OD API's `use_image_if_no_bounding_boxes=True` does for an image without boxes.
    """
    boxes = tf.clip_by_value(boxes, 0.0, 1.0)
    first = mask & tf.equal(tf.cumsum(tf.cast(mask, tf.int32)), 1)  # one-hot; works for N = 0
    fill = tf.reduce_sum(tf.where(first[:, tf.newaxis], boxes, 0.0), axis=0)  # [4]
    fill = tf.where(tf.reduce_any(mask), fill, tf.constant([0.0, 0.0, 1.0, 1.0]))
    return tf.where(mask[:, tf.newaxis], boxes, fill)[tf.newaxis]  # [1, N, 4]


def _strict_random_crop_image(image, boxes, mask, *, min_object_covered, aspect_ratio_range,
                              area_range, overlap_thresh, clip_boxes, seed):
    image_shape = tf.shape(image)
    begin, size, window = tf.image.stateless_sample_distorted_bounding_box(
        image_shape, _boxes_for_sampler(boxes, mask), seed=seed,
        min_object_covered=min_object_covered, aspect_ratio_range=aspect_ratio_range,
        area_range=area_range, max_attempts=100, use_image_if_no_bounding_boxes=True)
    window = tf.reshape(window, [4])  # [1, 1, 4] -> [4], yxyx normalized
    new_image = tf.slice(image, begin, size)
    ymin, xmin, ymax, xmax = tf.unstack(boxes, axis=-1)
    # OD API: prune_completely_outside_window, then prune_non_overlapping_boxes (IoA).
    outside = (ymin >= window[2]) | (ymax <= window[0]) | (xmin >= window[3]) | (xmax <= window[1])
    keep = ~outside & (_fraction_inside(boxes, window) >= overlap_thresh)
    new_boxes = _change_coordinate_frame(boxes, window)
    if clip_boxes:
        new_boxes = tf.clip_by_value(new_boxes, 0.0, 1.0)
    return new_image, new_boxes, mask & keep


def random_crop_image(image, boxes, mask, *, min_object_covered: float = 1.0,
                      aspect_ratio_range: Sequence[float] = (0.75, 1.33),
                      area_range: Sequence[float] = (0.1, 1.0), overlap_thresh: float = 0.3,
                      clip_boxes: bool = True, random_coef: float = 0.0, seed=None):
    """Random crop with the OD API's semantics.

    A window is drawn by `tf.image.stateless_sample_distorted_bounding_box` (aspect ratio
    w/h in `aspect_ratio_range`, area fraction in `area_range`, covering at least
    `min_object_covered` of some box; 100 attempts, then the whole image). Boxes entirely
    outside the window, or with less than `overlap_thresh` of their area inside it, are
    dropped (mask False); the rest move to the window's frame and, with `clip_boxes`, are
    clipped to [0, 1]. With probability `random_coef` the image is left uncropped.
    """
    seed = _seed(seed)

    def crop():
        return _strict_random_crop_image(
            image, boxes, mask, min_object_covered=min_object_covered,
            aspect_ratio_range=aspect_ratio_range, area_range=area_range,
            overlap_thresh=overlap_thresh, clip_boxes=clip_boxes, seed=_seed(seed, 1))

    if random_coef <= 0.0:
        return crop()
    keep_original = _uniform(_seed(seed, 2)) < random_coef
    return tf.cond(keep_original, lambda: (image, boxes, mask), crop)


_SSD_MIN_OBJECT_COVERED = (0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0)


def ssd_random_crop(image, boxes, mask, *,
                    min_object_covered: Sequence[float] = _SSD_MIN_OBJECT_COVERED,
                    aspect_ratio_range: Sequence[Sequence[float]] = ((0.5, 2.0),) * 7,
                    area_range: Sequence[Sequence[float]] = ((0.1, 1.0),) * 7,
                    overlap_thresh: Sequence[float] = _SSD_MIN_OBJECT_COVERED,
                    clip_boxes: Sequence[bool] = (True,) * 7,
                    random_coef: Sequence[float] = (0.15,) * 7, seed=None):
    """The SSD paper's crop: one of the operations, drawn uniformly, is `random_crop_image`.

    Operation i uses min_object_covered[i], aspect_ratio_range[i], ... random_coef[i]; the
    defaults are the OD API's.
    """
    params = list(zip(min_object_covered, aspect_ratio_range, area_range, overlap_thresh,
                      clip_boxes, random_coef))
    if not params or len({len(min_object_covered), len(aspect_ratio_range), len(area_range),
                          len(overlap_thresh), len(clip_boxes), len(random_coef)}) != 1:
        raise ValueError("ssd_random_crop: every argument needs one value per operation.")
    seed = _seed(seed)
    index = _random_integer(_seed(seed, 1), 0, len(params))

    def branch(p):
        return lambda: random_crop_image(
            image, boxes, mask, min_object_covered=p[0], aspect_ratio_range=p[1],
            area_range=p[2], overlap_thresh=p[3], clip_boxes=p[4], random_coef=p[5],
            seed=_seed(seed, 2))

    return tf.switch_case(index, [branch(p) for p in params])


def random_pad_image(image, boxes, mask, *, min_image_size: Sequence[int] | None = None,
                     max_image_size: Sequence[int] | None = None,
                     pad_color: Sequence[float] | None = None, seed=None):
    """Pads to a random size in [min_image_size, max_image_size] at a random offset (OD API).

    The size defaults run from the image size to twice it; boxes move to the padded frame.
    """
    seed = _seed(seed)
    image_height, image_width = tf.shape(image)[0], tf.shape(image)[1]
    image_size = tf.stack([image_height, image_width])
    if pad_color is None:
        pad_color = tf.reduce_mean(image, axis=[0, 1])
    max_size = image_size * 2 if max_image_size is None else tf.constant(max_image_size, tf.int32)
    max_size = tf.maximum(max_size, image_size)
    min_size = image_size if min_image_size is None else tf.constant(min_image_size, tf.int32)
    min_size = tf.maximum(min_size, image_size)

    def draw(low, high, salt):
        return tf.cond(high > low, lambda: _random_integer(_seed(seed, salt), low, high),
                       lambda: high)

    target_height = draw(min_size[0], max_size[0], 1)
    target_width = draw(min_size[1], max_size[1], 2)
    offset_height = draw(0, target_height - image_height, 3)
    offset_width = draw(0, target_width - image_width, 4)
    padded = tf.image.pad_to_bounding_box(image - pad_color, offset_height, offset_width,
                                          target_height, target_width) + pad_color
    window = tf.cast(tf.stack([-offset_height, -offset_width, target_height - offset_height,
                               target_width - offset_width]), tf.float32)  # pixels
    window = box_ops.to_normalized(window, image_height, image_width)
    return padded, _change_coordinate_frame(boxes, window), mask


def random_jitter_boxes(image, boxes, mask, *, ratio: float = 0.05,
                        jitter_mode: str = "default", seed=None):
    """Moves each box edge by a random fraction of the box size, about its centre (OD API).

    Each of the 4 extents is scaled by 1 + u, u uniform in [-ratio, ratio] ('default'),
    [0, ratio] ('expand') or [-ratio, 0] ('shrink'); results clipped to [0, 1].
    """
    ranges = {"default": (-ratio, ratio), "expand": (0.0, ratio), "shrink": (-ratio, 0.0)}
    if jitter_mode not in ranges:
        raise ValueError(f"random_jitter_boxes: jitter_mode {jitter_mode!r} is not supported; "
                         f"expected one of {sorted(ranges)}.")
    low, high = ranges[jitter_mode]
    ymin, xmin, ymax, xmax = tf.unstack(boxes, axis=-1)
    ycenter, xcenter = (ymin + ymax) / 2.0, (xmin + xmax) / 2.0
    height = tf.maximum(tf.abs(ymax - ymin), 1e-6)
    width = tf.maximum(tf.abs(xmax - xmin), 1e-6)
    distortion = 1.0 + _uniform(_seed(seed), low, high, tf.shape(boxes))  # [N, 4]
    jittered = tf.stack([ycenter - height * distortion[:, 0] / 2.0,
                         xcenter - width * distortion[:, 1] / 2.0,
                         ycenter + height * distortion[:, 2] / 2.0,
                         xcenter + width * distortion[:, 3] / 2.0], axis=-1)
    return image, tf.clip_by_value(jittered, 0.0, 1.0), mask


# Colour -------------------------------------------------------------------------------------


def _on_unit_scale(image: tf.Tensor, fn: Callable[[tf.Tensor], tf.Tensor]) -> tf.Tensor:
    """fn applied to image / 255, scaled back and clipped to 0..255 (the OD API's way)."""
    return tf.clip_by_value(fn(image / 255.0) * 255.0, 0.0, 255.0)


def random_adjust_brightness(image, boxes, mask, *, max_delta: float = 0.2, seed=None):
    """Adds delta * 255, delta uniform in [-max_delta, max_delta]."""
    delta = _uniform(_seed(seed), -max_delta, max_delta)
    return _on_unit_scale(image, lambda x: x + delta), boxes, mask


def random_adjust_contrast(image, boxes, mask, *, min_delta: float = 0.8,
                           max_delta: float = 1.25, seed=None):
    """tf.image.adjust_contrast by a factor uniform in [min_delta, max_delta]."""
    factor = _uniform(_seed(seed), min_delta, max_delta)
    return _on_unit_scale(image, lambda x: tf.image.adjust_contrast(x, factor)), boxes, mask


def random_adjust_hue(image, boxes, mask, *, max_delta: float = 0.02, seed=None):
    """tf.image.adjust_hue by a delta uniform in [-max_delta, max_delta]."""
    delta = _uniform(_seed(seed), -max_delta, max_delta)
    return _on_unit_scale(image, lambda x: tf.image.adjust_hue(x, delta)), boxes, mask


def random_adjust_saturation(image, boxes, mask, *, min_delta: float = 0.8,
                             max_delta: float = 1.25, seed=None):
    """tf.image.adjust_saturation by a factor uniform in [min_delta, max_delta]."""
    factor = _uniform(_seed(seed), min_delta, max_delta)
    return _on_unit_scale(image, lambda x: tf.image.adjust_saturation(x, factor)), boxes, mask


def random_distort_color(image, boxes, mask, *, color_ordering: int = 0, seed=None):
    """The OD API's colour distortion: brightness (32/255), saturation (0.5-1.5), hue (0.2)
    and contrast (0.5-1.5), in that order for color_ordering 0, or brightness, contrast,
    saturation, hue for 1."""
    seed = _seed(seed)
    brightness = lambda x, s: random_adjust_brightness(x, boxes, mask, max_delta=32.0 / 255.0,
                                                       seed=s)[0]
    saturation = lambda x, s: random_adjust_saturation(x, boxes, mask, min_delta=0.5,
                                                       max_delta=1.5, seed=s)[0]
    hue = lambda x, s: random_adjust_hue(x, boxes, mask, max_delta=0.2, seed=s)[0]
    contrast = lambda x, s: random_adjust_contrast(x, boxes, mask, min_delta=0.5,
                                                   max_delta=1.5, seed=s)[0]
    orders = {0: (brightness, saturation, hue, contrast),
              1: (brightness, contrast, saturation, hue)}
    if color_ordering not in orders:
        raise ValueError(f"random_distort_color: color_ordering must be 0 or 1, got "
                         f"{color_ordering}.")
    for i, op in enumerate(orders[color_ordering]):
        image = op(image, _seed(seed, i + 1))
    return image, boxes, mask


def random_rgb_to_gray(image, boxes, mask, *, probability: float = 0.1, seed=None):
    """With `probability`, replaces the image by its grey version (three equal channels)."""
    do_gray = _uniform(_seed(seed)) < probability
    image = tf.cond(do_gray,
                    lambda: tf.image.grayscale_to_rgb(tf.image.rgb_to_grayscale(image)),
                    lambda: image)
    return image, boxes, mask


STEP_FUNCTIONS: dict[str, Step] = {
    "random_horizontal_flip": random_horizontal_flip,
    "random_vertical_flip": random_vertical_flip,
    "random_rgb_to_gray": random_rgb_to_gray,
    "random_adjust_brightness": random_adjust_brightness,
    "random_adjust_contrast": random_adjust_contrast,
    "random_adjust_hue": random_adjust_hue,
    "random_adjust_saturation": random_adjust_saturation,
    "random_distort_color": random_distort_color,
    "random_jitter_boxes": random_jitter_boxes,
    "random_crop_image": random_crop_image,
    "random_pad_image": random_pad_image,
    "ssd_random_crop": ssd_random_crop,
}


def check_steps(steps: Sequence[tuple[str, dict]]) -> None:
    """Raises ValueError naming the step if a name or argument is unknown (before tracing)."""
    for i, (name, kwargs) in enumerate(steps):
        if name not in STEP_FUNCTIONS:
            raise ValueError(f"augmentation {i}: {name!r} is not supported; expected one of "
                             f"{sorted(STEP_FUNCTIONS)}.")
        allowed = [p for p in inspect.signature(STEP_FUNCTIONS[name]).parameters
                   if p not in ("image", "boxes", "mask", "seed")]
        unknown = sorted(set(kwargs) - set(allowed))
        if unknown:
            raise ValueError(f"augmentation {i} ({name}): unknown arguments {unknown}; "
                             f"expected some of {allowed}.")


def apply_steps(image, boxes, mask, steps: Sequence[tuple[str, dict]], seed=None):
    """Applies `steps` [(name, kwargs)] in order, each with its own seed folded from `seed`."""
    image = _float_image(image)
    seed = _seed(seed)
    for i, (name, kwargs) in enumerate(steps):
        image, boxes, mask = STEP_FUNCTIONS[name](image, boxes, mask, seed=_seed(seed, i + 1),
                                                  **kwargs)
    return image, boxes, mask


def fixed_shape_resizer(image: tf.Tensor, *, height: int, width: int,
                        method: str = "BILINEAR") -> tf.Tensor:
    """float32 [height, width, 3]: the image resized, aspect ratio not kept.

    The OD API's sampling grid (`core.image_resizer.resize_images`); `method` is one of its
    `ResizeType` names. Boxes are normalized, so they need no change.
    """
    image = image_resizer.resize_images(_float_image(image), height, width, method)
    image.set_shape([height, width, 3])
    return image
