"""Hand-computed checks of object_detection.core.box_coder."""
from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from object_detection.core.box_coder import FasterRcnnBoxCoder


class FasterRcnnBoxCoderTest(tf.test.TestCase):

    def test_code_size(self):
        self.assertEqual(FasterRcnnBoxCoder().code_size, 4)

    def test_encode_with_default_scale_factors(self):
        anchors = tf.constant([[0.0, 0.0, 1.0, 1.0]])  # center (0.5, 0.5), h = w = 1
        boxes = tf.constant([[0.4, 0.45, 0.8, 0.65]])  # center (0.6, 0.55), h = 0.4, w = 0.2
        # ty = (0.6 - 0.5) / 1 * 10 = 1.0        tx = (0.55 - 0.5) / 1 * 10 = 0.5
        # th = log(0.4 / 1) * 5 = -4.5814537     tw = log(0.2 / 1) * 5 = -8.0471896
        expected = [[1.0, 0.5, 5 * math.log(0.4), 5 * math.log(0.2)]]
        self.assertAllClose(FasterRcnnBoxCoder().encode(boxes, anchors), expected, atol=1e-5)

    def test_encode_without_scale_factors(self):
        coder = FasterRcnnBoxCoder(scale_factors=None)
        anchors = tf.constant([[0.0, 0.0, 2.0, 2.0]])  # center (1, 1), h = w = 2
        boxes = tf.constant([[1.0, 1.0, 3.0, 3.0]])    # center (2, 2), h = w = 2
        # ty = tx = (2 - 1) / 2 = 0.5;  th = tw = log(2 / 2) = 0
        self.assertAllClose(coder.encode(boxes, anchors), [[0.5, 0.5, 0.0, 0.0]], atol=1e-6)

    def test_decode_zero_codes_gives_the_anchors(self):
        anchors = tf.constant([[0.1, 0.2, 0.3, 0.6], [0.0, 0.0, 1.0, 1.0]])
        self.assertAllClose(FasterRcnnBoxCoder().decode(tf.zeros([2, 4]), anchors), anchors)

    def test_round_trip_including_tiny_boxes_with_broadcast_anchors(self):
        coder = FasterRcnnBoxCoder()
        anchors = tf.constant([[0.4, 0.4, 0.6, 0.6], [0.0, 0.0, 0.5, 0.25]])  # [A=2, 4]
        boxes = tf.constant([[[0.5, 0.5, 0.5001, 0.5001],     # 1e-4 x 1e-4 box
                              [0.1, 0.05, 0.35, 0.3]],
                             [[0.2, 0.3, 0.9, 0.95],
                              [0.3, 0.2, 0.3001, 0.2001]]])   # [B=2, A=2, 4]
        decoded = coder.decode(coder.encode(boxes, anchors), anchors)
        self.assertEqual(decoded.shape, (2, 2, 4))
        self.assertAllClose(decoded, boxes, atol=1e-6)
        # The 1e-4 sizes survive to 1% (EPSILON = 1e-8 is added in encode only).
        heights = decoded[..., 2] - decoded[..., 0]
        self.assertAllClose(heights[0, 0], 1e-4, rtol=1e-2)
        self.assertAllClose(heights[1, 1], 1e-4, rtol=1e-2)

    def test_zero_size_box_encodes_finite(self):
        codes = FasterRcnnBoxCoder().encode(tf.zeros([1, 4]), tf.constant([[0.0, 0.0, 0.1, 0.1]]))
        # th = 5 * log(1e-8 / (0.1 + 1e-8)) = 5 * log(1e-7) ~ -80.6: large but finite.
        self.assertTrue(np.all(np.isfinite(codes.numpy())))
        self.assertAllClose(codes[0, 2], 5 * math.log(1e-8 / (0.1 + 1e-8)), rtol=1e-4)

    def test_decode_clips_huge_log_scales(self):
        anchors = tf.constant([[0.0, 0.0, 1.0, 1.0]])
        decoded = FasterRcnnBoxCoder().decode(tf.constant([[0.0, 0.0, 1e4, 1e4]]), anchors)
        # th / 5 = 2000 is clipped to log(1000 / 16): height = 62.5, centered at 0.5.
        self.assertAllClose(decoded, [[0.5 - 31.25, 0.5 - 31.25, 0.5 + 31.25, 0.5 + 31.25]])
        unclipped = FasterRcnnBoxCoder(decode_log_scale_clip=None).decode(
            tf.constant([[0.0, 0.0, 10.0, 0.0]]), anchors)  # th / 5 = 2: height e**2
        self.assertAllClose(unclipped[0, 2] - unclipped[0, 0], math.exp(2.0), rtol=1e-5)

    def test_casts_half_precision_to_float32(self):
        codes = FasterRcnnBoxCoder().encode(tf.constant([[0.0, 0.0, 1.0, 1.0]], tf.float16),
                                            tf.constant([[0.0, 0.0, 1.0, 1.0]], tf.bfloat16))
        self.assertEqual(codes.dtype, tf.float32)

    def test_invalid_scale_factors_raise(self):
        with self.assertRaisesRegex(ValueError, r"scale_factors must be 4 positive numbers"):
            FasterRcnnBoxCoder(scale_factors=(10.0, 10.0, 5.0))
        with self.assertRaisesRegex(ValueError, r"scale_factors must be 4 positive numbers"):
            FasterRcnnBoxCoder(scale_factors=(10.0, 0.0, 5.0, 5.0))


if __name__ == "__main__":
    tf.test.main()
