"""Multiscale grid anchors (RetinaNet), with the OD API's `MultiscaleGridAnchorGenerator` semantics.

Reimplemented in numpy from the semantics of the TF Object Detection API's
`anchor_generators/multiscale_grid_anchor_generator.py` and `grid_anchor_generator.py`. The
input size is fixed, so anchors are computed once, in Python, and used as a constant [A, 4].

For each level l in min_level..max_level:
  stride_l    = 2**l
  base_l      = anchor_scale * 2**l                       (pixels)
  scales      = 2**(i / scales_per_octave), i = 0..scales_per_octave - 1
  for aspect ratio r and scale s:
    height    = base_l * s / sqrt(r)
    width     = base_l * s * sqrt(r)                      (so r = width / height)
  grid        = ceil(H / stride_l) rows x ceil(W / stride_l) columns
  offset_y    = stride_l / 2 if H % stride_l == 0 else 0  (offset_x likewise with W)
  center(i,j) = (i * stride_l + offset_y, j * stride_l + offset_x)
  box         = [yc - height / 2, xc - width / 2, yc + height / 2, xc + width / 2]
and, if normalize_coordinates, y is divided by H and x by W (no clipping: anchors may extend
past the image).

The offset rule is the OD API's: the half-stride offset is applied only when the image size is
divisible by the stride; otherwise the first center sits at 0. At 320 x 320 this makes level 7
(stride 128, 320 % 128 != 0) have centers 0, 128, 256 while levels 3-6 are centered in their cells.

Ordering (the OD API's, which the box predictor's output layout must follow): level by level,
then grid row, then grid column, then anchor-within-location, where within a location the
aspect ratio is the outer loop and the scale the inner loop (the OD API's
`meshgrid(scales, aspect_ratios)` flattened):
  (r0, s0), (r0, s1), ..., (r1, s0), (r1, s1), ...
"""
from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class MultiscaleGridAnchorGenerator:
    """Generates RetinaNet anchors over the levels min_level..max_level of a feature pyramid.

    Attributes:
      min_level: first pyramid level (stride 2**min_level), >= 0.
      max_level: last pyramid level, >= min_level.
      anchor_scale: base anchor size relative to the stride (base = anchor_scale * 2**level), > 0.
      aspect_ratios: width / height ratios placed at every location, each > 0.
      scales_per_octave: number of intermediate scales 2**(i / scales_per_octave), >= 1.
      normalize_coordinates: if True (default) boxes are normalized by the image height/width;
        otherwise they are in absolute pixels.
    """

    min_level: int
    max_level: int
    anchor_scale: float
    aspect_ratios: tuple[float, ...]
    scales_per_octave: int
    normalize_coordinates: bool = True

    def __post_init__(self):
        # Accept any sequence but store a tuple, so the frozen dataclass stays hashable.
        object.__setattr__(self, "aspect_ratios", tuple(float(r) for r in self.aspect_ratios))
        if not 0 <= self.min_level <= self.max_level:
            raise ValueError(
                f"MultiscaleGridAnchorGenerator: need 0 <= min_level ({self.min_level}) <= "
                f"max_level ({self.max_level}).")
        if not self.anchor_scale > 0:
            raise ValueError(
                f"MultiscaleGridAnchorGenerator: anchor_scale must be > 0, got "
                f"{self.anchor_scale}.")
        if not self.aspect_ratios or any(not r > 0 for r in self.aspect_ratios):
            raise ValueError(
                f"MultiscaleGridAnchorGenerator: aspect_ratios must be a non-empty list of "
                f"positive numbers, got {list(self.aspect_ratios)}.")
        if int(self.scales_per_octave) != self.scales_per_octave or self.scales_per_octave < 1:
            raise ValueError(
                f"MultiscaleGridAnchorGenerator: scales_per_octave must be an integer >= 1, got "
                f"{self.scales_per_octave}.")

    @property
    def levels(self) -> tuple[int, ...]:
        """Pyramid levels min_level..max_level, in generation order."""
        return tuple(range(self.min_level, self.max_level + 1))

    def num_anchors_per_location(self) -> int:
        """Number of anchors at every grid location: len(aspect_ratios) * scales_per_octave."""
        return len(self.aspect_ratios) * int(self.scales_per_octave)

    def grid_shapes(self, image_height: int, image_width: int) -> dict[int, tuple[int, int]]:
        """Feature-map grid of every level.

        Args:
          image_height: model input height in pixels, int >= 1.
          image_width: model input width in pixels, int >= 1.

        Returns:
          {level: (ceil(image_height / 2**level), ceil(image_width / 2**level))}, keyed by int
          level in min_level..max_level order.
        """
        _check_image_size(image_height, image_width)
        return {
            level: (-(-image_height // 2**level), -(-image_width // 2**level))  # exact int ceil
            for level in self.levels
        }

    def num_anchors(self, image_height: int, image_width: int) -> int:
        """Total number of anchors A for an image of this size."""
        per_location = self.num_anchors_per_location()
        return sum(h * w * per_location
                   for h, w in self.grid_shapes(image_height, image_width).values())

    def generate(self, image_height: int, image_width: int) -> np.ndarray:
        """Generates all anchors for a fixed input size.

        Args:
          image_height: model input height in pixels, int >= 1.
          image_width: model input width in pixels, int >= 1.

        Returns:
          float32 numpy array [A, 4], yxyx, normalized by (image_height, image_width) if
          `normalize_coordinates`, else absolute pixels. Ordered level, row, column,
          anchor-within-location (aspect ratio outer, scale inner). A = sum over levels of
          H_l * W_l * num_anchors_per_location().
        """
        per_level = [
            self._generate_level(level, grid, image_height, image_width)
            for level, grid in self.grid_shapes(image_height, image_width).items()
        ]
        anchors = np.concatenate(per_level, axis=0)  # [A, 4]
        if self.normalize_coordinates:
            anchors = anchors / np.array(
                [image_height, image_width, image_height, image_width], dtype=np.float64)
        return anchors.astype(np.float32)

    def _generate_level(self, level: int, grid: tuple[int, int], image_height: int,
                        image_width: int) -> np.ndarray:
        """Absolute-pixel float64 anchors [H_l * W_l * anchors_per_location, 4] of one level."""
        stride = 2.0**level
        base = self.anchor_scale * stride
        scales = np.array([2.0**(i / self.scales_per_octave)
                           for i in range(int(self.scales_per_octave))])
        ratio_sqrts = np.sqrt(np.array(self.aspect_ratios))
        # Aspect ratio outer, scale inner: the OD API's meshgrid(scales, aspect_ratios) flattened.
        heights = (base * scales[np.newaxis, :] / ratio_sqrts[:, np.newaxis]).reshape(-1)  # [R*S]
        widths = (base * scales[np.newaxis, :] * ratio_sqrts[:, np.newaxis]).reshape(-1)  # [R*S]

        # OD API rule: half-stride offset only when the image size is divisible by the stride.
        offset_y = stride / 2.0 if image_height % stride == 0 else 0.0
        offset_x = stride / 2.0 if image_width % stride == 0 else 0.0
        grid_h, grid_w = grid
        y_centers = np.arange(grid_h) * stride + offset_y  # [H_l]
        x_centers = np.arange(grid_w) * stride + offset_x  # [W_l]

        shape = (grid_h, grid_w, heights.size)
        yc = np.broadcast_to(y_centers[:, np.newaxis, np.newaxis], shape)  # [H_l, W_l, R*S]
        xc = np.broadcast_to(x_centers[np.newaxis, :, np.newaxis], shape)
        h = np.broadcast_to(heights[np.newaxis, np.newaxis, :], shape)
        w = np.broadcast_to(widths[np.newaxis, np.newaxis, :], shape)
        boxes = np.stack([yc - h / 2, xc - w / 2, yc + h / 2, xc + w / 2], axis=-1)
        return boxes.reshape(-1, 4)  # [H_l * W_l * R*S, 4], row-major: row, column, anchor


def _check_image_size(image_height: int, image_width: int) -> None:
    for name, value in (("image_height", image_height), ("image_width", image_width)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(
                f"MultiscaleGridAnchorGenerator: {name} must be a Python int >= 1 (anchors are "
                f"computed once for a fixed input size), got {value!r}.")

