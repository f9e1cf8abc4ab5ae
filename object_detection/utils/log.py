"""The package's one output channel: the `object_detection` logger.

Library modules log to `logger` (`logging.getLogger("object_detection")`), never with `print`
or absl logging. The lines that are a run's user-facing output (pycocotools' summary, the Pascal
summary) go through `console_line`, as INFO records of the child logger
`object_detection.console` whose message is the bare text.

Nothing is configured on import. A command-line program calls `configure_cli_logging()` once,
after parsing its arguments; then
- console lines are written to standard output exactly as given (no level, no prefix);
- every other record goes to the root logger's handlers: absl's (its `I1202 ... file.py:12]`
  prefix, on standard error) in absl programs, else one handler writing `LEVEL message` to
  standard error, at INFO.
Without it (the package used as a library, tests), console lines are ordinary INFO records of
the package logger, seen wherever the application sends its logs (pytest's `caplog`).
"""
from __future__ import annotations

import logging
import sys
from typing import Iterable

LOGGER_NAME = "object_detection"
logger = logging.getLogger(LOGGER_NAME)
console = logging.getLogger(f"{LOGGER_NAME}.console")

END_ATTRIBUTE = "console_end"  # of a console record: what follows its text on the console


def console_line(text: str, end: str = "\n") -> None:
    """Logs `text` as a user-facing line: on standard output, as is, under a CLI.

    Args:
      text: the line(s), without a trailing newline unless `end` is "".
      end: written after `text` on the console, as `print(text, end=end)` would.
    """
    console.info("%s", text, extra={END_ATTRIBUTE: end})


def console_text(records: Iterable[logging.LogRecord]) -> str:
    """The console output of `records` (e.g. pytest's `caplog.records`): the text of each
    console line followed by its `end`; other records are left out."""
    return "".join(r.getMessage() + getattr(r, END_ATTRIBUTE, "\n") for r in records
                   if r.name == console.name)


class _ConsoleHandler(logging.Handler):
    """Writes the bare message (and its `end`) to the current `sys.stdout`, flushed."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            stream = sys.stdout  # looked up on every record: redirections take effect
            stream.write(console_text([record]))
            stream.flush()
        except Exception:  # noqa: BLE001 (logging's own convention)
            self.handleError(record)


def configure_cli_logging() -> None:
    """Configures the package's logging for a command-line program (idempotent).

    Console lines go to standard output as is (and not to the root handlers as well); without
    a root handler yet (not an absl program), other records are written as `LEVEL message` to
    standard error from INFO up, as `logging.basicConfig` does.
    """
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    if not any(isinstance(h, _ConsoleHandler) for h in console.handlers):
        console.addHandler(_ConsoleHandler())
    console.setLevel(logging.INFO)
    console.propagate = False
