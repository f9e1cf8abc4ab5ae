"""Argmax matcher: assigns every anchor (column) to at most one ground-truth box (row).

Reimplements the semantics of the OD API's `matchers/argmax_matcher.py`, batched and with static
shapes: the similarity is [B, N, A] (N padded ground-truth rows, A anchors) and padded rows are
described by `valid_rows` instead of being sliced off.

For every column a, with m = max over valid rows n of similarity[n, a] and its argmax row n*:
  matched_threshold is None        -> match[a] = n*                  (ignore_thresholds)
  m >= matched_threshold           -> match[a] = n*                  (positive)
  unmatched_threshold <= m < matched_threshold
                                   -> IGNORED   if negatives_lower_than_unmatched
                                      UNMATCHED otherwise
  m < unmatched_threshold          -> UNMATCHED if negatives_lower_than_unmatched
                                      IGNORED   otherwise
  no valid row at all              -> UNMATCHED (the OD API's empty-ground-truth case)
Ties in the argmax go to the lowest row index.

force_match_for_each_row: every row that is valid (and allowed by `force_match_rows`) picks its
best column c*(n) = argmax_a similarity[n, a] and that column is matched to n, whatever its
threshold outcome (the OD API's one-hot scatter: one_hot(c*) over columns, masked by the valid
rows, then argmax over rows). When two rows pick the same column, the lower row index wins.
Invalid (padded) rows never win the argmax and are never forced, so they never match.

The output is int32 [B, A]: >= 0 is a row index, or the sentinels UNMATCHED / IGNORED.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import tensorflow as tf

from object_detection.core._tensor_utils import as_float32, check_rank

UNMATCHED = -1  # max similarity < unmatched_threshold: background, gets classification loss
IGNORED = -2  # between thresholds: no loss


@dataclasses.dataclass(frozen=True)
class ArgMaxMatcher:
    """Matches each column of a similarity matrix to its best row, with thresholds.

    Attributes:
      matched_threshold: a column is positive if its max similarity >= this. None means
        ignore_thresholds: every column with a valid row is matched to its argmax row.
      unmatched_threshold: below this a column is negative (or ignored, see
        `negatives_lower_than_unmatched`). None means equal to `matched_threshold` (the OD API
        default). Ignored when `matched_threshold` is None.
      negatives_lower_than_unmatched: True (default): negatives are below `unmatched_threshold`
        and the band [unmatched, matched) is ignored. False: the band is negative and
        everything below `unmatched_threshold` is ignored.
      force_match_for_each_row: if True, every valid row is matched to at least its best column.

    Raises:
      ValueError: if unmatched_threshold > matched_threshold, or if they are equal while
        negatives_lower_than_unmatched is False (the negative band would be empty).
    """

    matched_threshold: Optional[float] = 0.5
    unmatched_threshold: Optional[float] = 0.5
    negatives_lower_than_unmatched: bool = True
    force_match_for_each_row: bool = False

    def __post_init__(self):
        if self.matched_threshold is None:
            return
        if self.unmatched_threshold is None:
            object.__setattr__(self, "unmatched_threshold", self.matched_threshold)
        if self.unmatched_threshold > self.matched_threshold:
            raise ValueError(
                f"ArgMaxMatcher: need unmatched_threshold ({self.unmatched_threshold}) <= "
                f"matched_threshold ({self.matched_threshold}).")
        if (not self.negatives_lower_than_unmatched
                and self.unmatched_threshold == self.matched_threshold):
            raise ValueError(
                f"ArgMaxMatcher: with negatives_lower_than_unmatched=False negatives lie between "
                f"the thresholds, so they cannot be equal (matched_threshold = "
                f"unmatched_threshold = {self.matched_threshold}).")

    def match(self,
              similarity: tf.Tensor,
              valid_rows: Optional[tf.Tensor] = None,
              force_match_rows: Optional[tf.Tensor] = None) -> tf.Tensor:
        """Matches every column (anchor) to a row (ground-truth box) or a sentinel.

        Args:
          similarity: float [B, N, A]; higher is more similar (e.g. IoU of gt n and anchor a).
          valid_rows: bool [B, N]; False marks padded rows, which can neither win a column nor
            be forced. None means all rows are valid.
          force_match_rows: optional bool [B, N], the rows allowed a forced match when
            `force_match_for_each_row` (ANDed with `valid_rows`). The OD API's target assigner
            passes `groundtruth_weights > 0` here, so weight-0 (crowd) boxes can still win an
            anchor by argmax but never steal one by forcing. None means `valid_rows`.

        Returns:
          int32 [B, A]: >= 0 is the matched row index n, UNMATCHED (-1) or IGNORED (-2).
        """
        similarity = as_float32(similarity, "similarity")
        check_rank(similarity, (3,), "similarity")
        if valid_rows is None:
            valid_rows = tf.ones(tf.shape(similarity)[:2], dtype=tf.bool)
        valid_rows = tf.cast(valid_rows, tf.bool)
        check_rank(valid_rows, (2,), "valid_rows")
        if similarity.shape[1] is None or similarity.shape[1] == 0:
            # N may be 0: add one invalid sentinel row so that no reduction over rows is empty
            # (it can never win a column nor be forced; indices of the real rows are kept).
            similarity, valid_rows, force_match_rows = _with_sentinel_row(
                similarity, valid_rows, force_match_rows)

        # Padded rows must not win the argmax: give them -inf.
        masked = tf.where(valid_rows[:, :, tf.newaxis], similarity,
                          tf.constant(-float("inf"), tf.float32))  # [B, N, A]
        matches = tf.argmax(masked, axis=1, output_type=tf.int32)  # [B, A]
        if self.matched_threshold is not None:
            max_vals = tf.reduce_max(masked, axis=1)  # [B, A]
            below_unmatched = max_vals < self.unmatched_threshold
            between = tf.logical_and(max_vals >= self.unmatched_threshold,
                                     max_vals < self.matched_threshold)
            if self.negatives_lower_than_unmatched:
                below_value, between_value = UNMATCHED, IGNORED
            else:
                below_value, between_value = IGNORED, UNMATCHED
            matches = tf.where(below_unmatched, below_value, matches)
            matches = tf.where(between, between_value, matches)

        # No valid row (an image without ground truth): every column is background.
        has_rows = tf.reduce_any(valid_rows, axis=1, keepdims=True)  # [B, 1]
        matches = tf.where(has_rows, matches, UNMATCHED)

        if self.force_match_for_each_row:
            forced_rows = valid_rows
            if force_match_rows is not None:
                check_rank(tf.convert_to_tensor(force_match_rows), (2,), "force_match_rows")
                forced_rows = tf.logical_and(forced_rows, tf.cast(force_match_rows, tf.bool))
            num_columns = similarity.shape[2] if similarity.shape[2] is not None else tf.shape(
                similarity)[2]
            best_columns = tf.argmax(similarity, axis=2, output_type=tf.int32)  # [B, N]
            indicators = tf.one_hot(best_columns, depth=num_columns,
                                    dtype=tf.float32)  # [B, N, A]
            indicators *= tf.cast(forced_rows, tf.float32)[:, :, tf.newaxis]
            forced_row_ids = tf.argmax(indicators, axis=1, output_type=tf.int32)  # [B, A]
            forced_mask = tf.reduce_max(indicators, axis=1) > 0.0  # [B, A]
            matches = tf.where(forced_mask, forced_row_ids, matches)
        return matches


def _with_sentinel_row(similarity, valid_rows, force_match_rows):
    """Appends an invalid row (similarity -inf, not valid, not forced) at index N."""
    batch, columns = tf.shape(similarity)[0], tf.shape(similarity)[2]
    similarity = tf.concat(
        [similarity, tf.fill([batch, 1, columns], tf.constant(-float("inf"), tf.float32))], 1)
    invalid = tf.zeros([batch, 1], tf.bool)
    valid_rows = tf.concat([valid_rows, invalid], 1)
    if force_match_rows is not None:
        force_match_rows = tf.concat([tf.cast(force_match_rows, tf.bool), invalid], 1)
    return similarity, valid_rows, force_match_rows
