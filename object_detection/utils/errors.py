"""Errors the product raises for bad user input."""
from __future__ import annotations


class ConfigError(ValueError):
    """A pipeline config (or an override of it) is invalid.

    The message names the field path (`model.ssd.matcher.argmax_matcher.matched_threshold`), the
    value received and the rule it breaks or the allowed set.
    """


class DataError(ValueError):
    """Input data (a record, an annotation file, an image) is invalid; the message names where."""
