"""Hand-computed checks of object_detection.core.matcher.ArgMaxMatcher."""
from __future__ import annotations

import tensorflow as tf

from object_detection.core.matcher import IGNORED, UNMATCHED, ArgMaxMatcher

U, I = UNMATCHED, IGNORED

# One image, rows = 3 ground-truth boxes (row 2 is padding), columns = 5 anchors.
SIMILARITY = tf.constant([[
    [0.70, 0.45, 0.20, 0.10, 0.05],   # row 0
    [0.10, 0.30, 0.55, 0.35, 0.00],   # row 1
    [0.90, 0.90, 0.90, 0.90, 0.90],   # row 2: padded, would win everything if not masked
]])
VALID = tf.constant([[True, True, False]])
# Column maxima over the valid rows 0-1: 0.70 (row 0), 0.45 (row 0), 0.55 (row 1),
# 0.35 (row 1), 0.05 (row 0).


class ArgMaxMatcherTest(tf.test.TestCase):

    def test_zero_rows_leave_every_column_unmatched(self):
        # The docstring's promise, for a ground-truth tensor with no row at all (N = 0), static
        # or only known at run time, with and without forced matches.
        matcher = ArgMaxMatcher(0.5, 0.4, force_match_for_each_row=True)
        empty = tf.zeros([2, 0, 5])
        self.assertAllEqual(matcher.match(empty, valid_rows=tf.zeros([2, 0], tf.bool)),
                            [[U] * 5] * 2)
        dynamic = tf.function(lambda s: matcher.match(s), input_signature=[
            tf.TensorSpec([None, None, 5], tf.float32)])
        self.assertAllEqual(dynamic(empty), [[U] * 5] * 2)
        self.assertAllEqual(dynamic(SIMILARITY[:, :2]),
                            matcher.match(SIMILARITY, valid_rows=VALID))

    def test_constants(self):
        self.assertEqual((UNMATCHED, IGNORED), (-1, -2))

    def test_thresholds_with_ignore_band(self):
        matcher = ArgMaxMatcher(matched_threshold=0.5, unmatched_threshold=0.4)
        # 0.70 >= 0.5 -> row 0;  0.4 <= 0.45 < 0.5 -> IGNORED;  0.55 -> row 1;
        # 0.35 < 0.4 -> UNMATCHED;  0.05 -> UNMATCHED.  Padded row 2 (0.9) never wins.
        match = matcher.match(SIMILARITY, VALID)
        self.assertEqual(match.dtype, tf.int32)
        self.assertAllEqual(match, [[0, I, 1, U, U]])

    def test_negatives_between_thresholds(self):
        matcher = ArgMaxMatcher(0.5, 0.4, negatives_lower_than_unmatched=False)
        # The rule flips: the band [0.4, 0.5) is negative, below 0.4 is ignored.
        self.assertAllEqual(matcher.match(SIMILARITY, VALID), [[0, U, 1, I, I]])

    def test_unmatched_threshold_none_defaults_to_matched_threshold(self):
        matcher = ArgMaxMatcher(matched_threshold=0.5, unmatched_threshold=None)
        self.assertEqual(matcher.unmatched_threshold, 0.5)
        # No ignore band: 0.45 is UNMATCHED.
        self.assertAllEqual(matcher.match(SIMILARITY, VALID), [[0, U, 1, U, U]])

    def test_without_thresholds_every_column_takes_its_argmax_row(self):
        matcher = ArgMaxMatcher(matched_threshold=None)
        # argmax over rows 0-1: 0.70>0.10, 0.45>0.30, 0.55>0.20, 0.35>0.10, 0.05>0.00
        self.assertAllEqual(matcher.match(SIMILARITY, VALID), [[0, 0, 1, 1, 0]])

    def test_force_match_for_each_row(self):
        matcher = ArgMaxMatcher(0.6, 0.6, force_match_for_each_row=True)
        # Thresholds alone: only column 0 (0.70) matches. Forcing: row 0's best column is
        # 0 (already its own), row 1's best column is 2 (0.55 < 0.6) -> forced to row 1.
        # Padded row 2 is never forced.
        self.assertAllEqual(matcher.match(SIMILARITY, VALID), [[0, U, 1, U, U]])

    def test_padded_row_is_never_forced(self):
        similarity = tf.constant([[[0.7, 0.1, 0.0],
                                   [0.0, 0.0, 0.9]]])  # row 1 padded, best column 2
        matcher = ArgMaxMatcher(0.5, 0.5, force_match_for_each_row=True)
        self.assertAllEqual(matcher.match(similarity, tf.constant([[True, False]])),
                            [[0, U, U]])

    def test_force_match_rows_excludes_rows_from_forcing_only(self):
        matcher = ArgMaxMatcher(0.6, 0.6, force_match_for_each_row=True)
        # Row 1 (e.g. a crowd box) stays valid for the argmax but is not forced: column 2
        # (0.55 < 0.6) stays UNMATCHED.
        match = matcher.match(SIMILARITY, VALID,
                              force_match_rows=tf.constant([[True, False, True]]))
        self.assertAllEqual(match, [[0, U, U, U, U]])

    def test_two_rows_forcing_the_same_column_lower_row_wins(self):
        similarity = tf.constant([[[0.3, 0.2],
                                   [0.4, 0.1]]])  # both rows' best column is 0
        matcher = ArgMaxMatcher(0.5, 0.5, force_match_for_each_row=True)
        # OD API one-hot scatter: argmax over rows of the indicators [1, 1] -> row 0, although
        # row 1 has the higher similarity. Column 1 stays UNMATCHED.
        self.assertAllEqual(matcher.match(similarity, tf.constant([[True, True]])), [[0, U]])

    def test_image_without_ground_truth_is_all_unmatched(self):
        similarity = tf.constant([[[0.9, 0.3]], [[0.9, 0.3]]])  # [B=2, N=1, A=2]
        valid = tf.constant([[False], [True]])
        for matcher in (ArgMaxMatcher(0.5, 0.4),
                        ArgMaxMatcher(0.5, 0.4, negatives_lower_than_unmatched=False),
                        ArgMaxMatcher(None),
                        ArgMaxMatcher(0.5, 0.4, force_match_for_each_row=True)):
            match = matcher.match(similarity, valid)
            self.assertAllEqual(match[0], [U, U], msg=str(matcher))
        # Image 1 (one valid row) under the first matcher: 0.9 -> row 0, 0.3 < 0.4 -> U.
        self.assertAllEqual(ArgMaxMatcher(0.5, 0.4).match(similarity, valid)[1], [0, U])

    def test_valid_rows_default_to_all(self):
        similarity = tf.constant([[[0.2, 0.8], [0.6, 0.1]]])
        self.assertAllEqual(ArgMaxMatcher(0.5, 0.5).match(similarity), [[1, 0]])

    def test_invalid_thresholds_raise(self):
        with self.assertRaisesRegex(ValueError, r"unmatched_threshold \(0.6\) <= "
                                                r"matched_threshold \(0.5\)"):
            ArgMaxMatcher(0.5, 0.6)
        with self.assertRaisesRegex(ValueError, r"cannot be equal"):
            ArgMaxMatcher(0.5, 0.5, negatives_lower_than_unmatched=False)

    def test_wrong_rank_raises(self):
        with self.assertRaisesRegex(ValueError, r"similarity: expected rank 3"):
            ArgMaxMatcher().match(tf.zeros([2, 3]), tf.ones([2], tf.bool))


if __name__ == "__main__":
    tf.test.main()
