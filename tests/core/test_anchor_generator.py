"""Hand-computed checks of object_detection.core.anchor_generator."""
from __future__ import annotations

import math

import numpy as np
from absl.testing import parameterized

from object_detection.core.anchor_generator import MultiscaleGridAnchorGenerator

S2 = math.sqrt(2.0)


def _retinanet_320() -> MultiscaleGridAnchorGenerator:
    return MultiscaleGridAnchorGenerator(
        min_level=3, max_level=7, anchor_scale=4.0, aspect_ratios=(1.0, 2.0, 0.5),
        scales_per_octave=2)


class MultiscaleGridAnchorGeneratorTest(parameterized.TestCase):

    @parameterized.named_parameters(
        # 64 x 64, level 5: stride 32, base 1 * 32 = 32, grid ceil(64/32) = 2 x 2,
        # 64 % 32 == 0 -> centers 16, 48; boxes center +- 16, divided by 64.
        ("single_level_single_scale", (64, 64),
         [[0.0, 0.0, 0.5, 0.5],     # row 0, col 0: center (16, 16) -> [0, 0, 32, 32] / 64
          [0.0, 0.5, 0.5, 1.0],     # row 0, col 1: center (16, 48)
          [0.5, 0.0, 1.0, 0.5],     # row 1, col 0: center (48, 16)
          [0.5, 0.5, 1.0, 1.0]]),   # row 1, col 1: center (48, 48)
        # 40 x 32, level 5: grid ceil(40/32) = 2 rows x 1 col; 40 % 32 = 8 != 0 -> y centers
        # 0, 32 (no offset); 32 % 32 == 0 -> x center 16. Boxes center +- 16, y / 40, x / 32.
        ("indivisible_by_stride", (40, 32),
         [[-16 / 40, 0.0, 16 / 40, 1.0],    # center (0, 16): [-16, 0, 16, 32]
          [16 / 40, 0.0, 48 / 40, 1.0]]),   # center (32, 16): [16, 0, 48, 32]
    )
    def test_anchor_grid_matches_hand_computed_boxes(self, image_size, expected):
        generator = MultiscaleGridAnchorGenerator(
            min_level=5, max_level=5, anchor_scale=1.0, aspect_ratios=(1.0,),
            scales_per_octave=1)
        anchors = generator.generate(*image_size)
        self.assertEqual(anchors.dtype, np.float32)
        np.testing.assert_allclose(anchors, np.array(expected), atol=1e-6)

    def test_order_within_location_is_aspect_ratio_major_then_scale(self):
        # 8 x 8, level 3: one cell, center (4, 4). Base 4 * 8 = 32; scales 1, sqrt(2).
        # height = 32 * s / sqrt(r), width = 32 * s * sqrt(r).
        generator = MultiscaleGridAnchorGenerator(
            min_level=3, max_level=3, anchor_scale=4.0, aspect_ratios=(1.0, 2.0, 0.5),
            scales_per_octave=2, normalize_coordinates=False)
        half = 16.0  # half of 32
        expected = [
            [4 - half, 4 - half, 4 + half, 4 + half],                    # r=1,   s=1: 32 x 32
            [4 - half * S2, 4 - half * S2, 4 + half * S2, 4 + half * S2],  # r=1, s=√2: 45.25²
            [4 - half / S2, 4 - half * S2, 4 + half / S2, 4 + half * S2],  # r=2, s=1: 22.6 x 45.3
            [4 - half, 4 - 2 * half, 4 + half, 4 + 2 * half],            # r=2,   s=√2: 32 x 64
            [4 - half * S2, 4 - half / S2, 4 + half * S2, 4 + half / S2],  # r=.5, s=1: 45.3 x 22.6
            [4 - 2 * half, 4 - half, 4 + 2 * half, 4 + half],            # r=.5,  s=√2: 64 x 32
        ]
        np.testing.assert_allclose(generator.generate(8, 8), np.array(expected), atol=1e-4)

    def test_retinanet_320_counts_and_grids(self):
        generator = _retinanet_320()
        self.assertEqual(generator.num_anchors_per_location(), 6)  # 3 ratios x 2 scales
        # ceil(320 / 8, 16, 32, 64, 128) = 40, 20, 10, 5, 3 (320 / 128 = 2.5 -> 3)
        self.assertEqual(generator.grid_shapes(320, 320),
                         {3: (40, 40), 4: (20, 20), 5: (10, 10), 6: (5, 5), 7: (3, 3)})
        anchors = generator.generate(320, 320)
        # (1600 + 400 + 100 + 25 + 9) * 6 = 2134 * 6 = 12804
        self.assertEqual(anchors.shape, (12804, 4))
        self.assertEqual(generator.num_anchors(320, 320), 12804)

    def test_retinanet_320_row_major_order_and_level_offsets(self):
        anchors = _retinanet_320().generate(320, 320)
        # Level 3, first 3 locations use anchors 0, 6 (row 0, col 1) and 240 (row 1, col 0):
        # centers (4, 4), (4, 12), (12, 4); r=1, s=1 box is center +- 16, divided by 320.
        np.testing.assert_allclose(anchors[0], np.array([-12, -12, 20, 20]) / 320, atol=1e-6)
        np.testing.assert_allclose(anchors[6], np.array([-12, -4, 20, 28]) / 320, atol=1e-6)
        np.testing.assert_allclose(anchors[240], np.array([-4, -12, 28, 20]) / 320, atol=1e-6)
        # Level 6 starts at (1600 + 400 + 100) * 6 = 12600; stride 64, 320 % 64 == 0 -> center
        # 32; base 4 * 64 = 256: [32 - 128, .., 32 + 128] / 320 = [-0.3, -0.3, 0.5, 0.5].
        np.testing.assert_allclose(anchors[12600], [-0.3, -0.3, 0.5, 0.5], atol=1e-6)
        # Level 7 starts at 2125 * 6 = 12750; stride 128, 320 % 128 = 64 != 0 -> NO offset
        # (OD API rule): center (0, 0); base 512: [-256, -256, 256, 256] / 320 = +-0.8.
        np.testing.assert_allclose(anchors[12750], [-0.8, -0.8, 0.8, 0.8], atol=1e-6)
        # Last level-7 location is row 2, col 2: center (256, 256); last anchor r=0.5, s=√2:
        # height 512 * √2 / √0.5 = 1024, width 512 * √2 * √0.5 = 512.
        np.testing.assert_allclose(
            anchors[-1], np.array([256 - 512, 256 - 256, 256 + 512, 256 + 256]) / 320,
            atol=1e-6)

    def test_is_frozen_hashable_and_accepts_a_list_of_ratios(self):
        generator = MultiscaleGridAnchorGenerator(3, 7, 4.0, [1.0, 2.0, 0.5], 2)
        self.assertEqual(generator.aspect_ratios, (1.0, 2.0, 0.5))
        self.assertEqual(hash(generator), hash(_retinanet_320()))

    @parameterized.named_parameters(
        ("levels_reversed", dict(min_level=5, max_level=3), r"min_level \(5\) <= max_level"),
        ("zero_scale", dict(anchor_scale=0.0), r"anchor_scale must be > 0"),
        ("no_ratios", dict(aspect_ratios=()), r"aspect_ratios"),
        ("negative_ratio", dict(aspect_ratios=(1.0, -2.0)), r"aspect_ratios"),
        ("zero_scales", dict(scales_per_octave=0), r"scales_per_octave"),
    )
    def test_invalid_arguments_raise(self, overrides, message):
        kwargs = dict(min_level=3, max_level=7, anchor_scale=4.0, aspect_ratios=(1.0,),
                      scales_per_octave=2)
        kwargs.update(overrides)
        with self.assertRaisesRegex(ValueError, message):
            MultiscaleGridAnchorGenerator(**kwargs)

    def test_non_integer_image_size_raises(self):
        with self.assertRaisesRegex(ValueError, r"image_height must be a Python int >= 1"):
            _retinanet_320().generate(320.0, 320)
