"""Errors the product raises for bad user input, and for runs that cannot go on.

Entry points recognise these by type and print their message as one line (`error: ...`)."""
from __future__ import annotations


class ConfigError(ValueError):
    """A pipeline config (or an override of it) is invalid.

    The message names the field path (`model.ssd.matcher.argmax_matcher.matched_threshold`), the
    value received and the rule it breaks or the allowed set.
    """


class DataError(ValueError):
    """Input data (a record, an annotation file, an image) is invalid; the message names where."""


class PeerFailureError(RuntimeError):
    """In a multi-worker run, a peer worker died or became unreachable: the collectives were
    aborted or timed out. The message names this worker and the cause."""


class TrainingDivergedError(RuntimeError):
    """The training loss became NaN or infinite; the message names the step and the last good
    checkpoint (none is written after the step)."""
