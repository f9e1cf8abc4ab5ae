"""Builds the matcher of `model.ssd.matcher`."""
from __future__ import annotations


from object_detection.builders import config_rules
from object_detection.core import matcher
from object_detection.protos import matcher_pb2
from object_detection.utils.errors import ConfigError
from object_detection.utils.log import logger

SUPPORTED = ("argmax_matcher",)


def build(config: matcher_pb2.Matcher, path: str = "model.ssd.matcher") -> matcher.ArgMaxMatcher:
    which = config.WhichOneof("matcher_oneof")
    if which not in SUPPORTED:
        raise ConfigError(f"{path}: {which!r} is not supported; expected one of {list(SUPPORTED)}.")
    m = config.argmax_matcher
    path = f"{path}.{which}"
    if m.use_matmul_gather:
        logger.info(
            "%s.use_matmul_gather: a performance hint; gathers here are already static-shape.",
            path)
    if m.ignore_thresholds:
        return matcher.ArgMaxMatcher(matched_threshold=None, unmatched_threshold=None,
                                     force_match_for_each_row=m.force_match_for_each_row)
    config_rules.raise_first(config_rules.argmax_matcher_problems(m, path))
    return matcher.ArgMaxMatcher(
        matched_threshold=m.matched_threshold,
        unmatched_threshold=m.unmatched_threshold,
        negatives_lower_than_unmatched=m.negatives_lower_than_unmatched,
        force_match_for_each_row=m.force_match_for_each_row)
