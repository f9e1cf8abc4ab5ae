"""matcher_builder: `Matcher` text protos -> ArgMaxMatcher."""
from __future__ import annotations

import logging

import numpy as np
import pytest
from google.protobuf import text_format

from object_detection.builders import matcher_builder
from object_detection.core import matcher as matcher_lib
from object_detection.protos import matcher_pb2
from object_detection.utils.errors import ConfigError

# The matcher of the SSD320 v1.2 seed configs.
SEED = """
  argmax_matcher {
    matched_threshold: 0.5
    unmatched_threshold: 0.5
    ignore_thresholds: false
    negatives_lower_than_unmatched: true
    force_match_for_each_row: true
    use_matmul_gather: true
  }
"""


def _build(text: str):
    return matcher_builder.build(text_format.Parse(text, matcher_pb2.Matcher()))


def test_seed_matcher_values():
    matcher = _build(SEED)
    assert isinstance(matcher, matcher_lib.ArgMaxMatcher)
    assert matcher.matched_threshold == 0.5
    assert matcher.unmatched_threshold == 0.5
    assert matcher.negatives_lower_than_unmatched
    assert matcher.force_match_for_each_row


def test_thresholds_land_in_the_matcher_and_act():
    matcher = _build("argmax_matcher { matched_threshold: 0.7 unmatched_threshold: 0.3 }")
    assert matcher.matched_threshold == pytest.approx(0.7)
    assert matcher.unmatched_threshold == pytest.approx(0.3)
    assert not matcher.force_match_for_each_row  # proto default
    # One row, columns with IoU 0.8 (>= 0.7: matched to row 0), 0.5 (between: ignored),
    # 0.1 (< 0.3: background).
    match = matcher.match(np.array([[[0.8, 0.5, 0.1]]], np.float32))
    np.testing.assert_array_equal(match, [[0, matcher_lib.IGNORED, matcher_lib.UNMATCHED]])


def test_ignore_thresholds_means_no_threshold():
    matcher = _build("argmax_matcher { ignore_thresholds: true matched_threshold: 0.2 "
                     "unmatched_threshold: 0.9 }")  # thresholds out of order but unused
    assert matcher.matched_threshold is None
    # Every column goes to its argmax row, however low the IoU.
    match = matcher.match(np.array([[[0.01, 0.3], [0.02, 0.1]]], np.float32))
    np.testing.assert_array_equal(match, [[1, 0]])


def test_use_matmul_gather_is_a_logged_hint(caplog):
    with caplog.at_level(logging.INFO, logger="object_detection"):
        _build(SEED)
    assert any("model.ssd.matcher.argmax_matcher.use_matmul_gather" in r.getMessage()
               for r in caplog.records)


@pytest.mark.parametrize("matched, unmatched", [
    (0.4, 0.5),  # unmatched above matched
    (1.5, 0.5),  # matched above 1
    (0.5, -0.1),  # unmatched below 0
])
def test_thresholds_out_of_order(matched, unmatched):
    with pytest.raises(ConfigError, match=r"^model\.ssd\.matcher\.argmax_matcher: need 0 <= "
                                          r"unmatched_threshold \(.*\) <= matched_threshold"):
        _build(f"argmax_matcher {{ matched_threshold: {matched} "
               f"unmatched_threshold: {unmatched} }}")


def test_bipartite_matcher_is_rejected():
    with pytest.raises(ConfigError, match=r"^model\.ssd\.matcher: 'bipartite_matcher' is not "
                                          r"supported; expected one of \['argmax_matcher'\]"):
        _build("bipartite_matcher { }")


def test_equal_thresholds_need_negatives_below_unmatched():
    # Negatives lie between the thresholds when negatives_lower_than_unmatched is false.
    with pytest.raises(ConfigError, match=r"^model\.ssd\.matcher\.argmax_matcher: with "
                                          r"negatives_lower_than_unmatched: false .* need "
                                          r"unmatched_threshold \(0\.5\) < matched_threshold "
                                          r"\(0\.5\)\.$"):
        _build("argmax_matcher { matched_threshold: 0.5 unmatched_threshold: 0.5 "
               "negatives_lower_than_unmatched: false }")
