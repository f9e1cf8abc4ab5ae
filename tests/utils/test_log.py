"""utils/log: console lines are records of the package logger; a CLI writes them bare to stdout."""
from __future__ import annotations

import logging

from object_detection.utils import log


def test_without_a_cli_console_lines_are_info_records_of_the_package_logger(caplog, capsys):
    with caplog.at_level(logging.INFO, logger="object_detection"):
        log.console_line("summary 1\nsummary 2")
        log.console_line("table", end="")
        log.logger.info("not a console line")
    assert [r.name for r in caplog.records] == ["object_detection.console"] * 2 + [
        "object_detection"]
    assert log.console_text(caplog.records) == "summary 1\nsummary 2\ntable"
    assert capsys.readouterr().out == ""


def test_a_cli_writes_console_lines_to_stdout_as_print_would_and_only_there(caplog, capsys):
    log.configure_cli_logging()
    log.configure_cli_logging()  # idempotent: one handler
    with caplog.at_level(logging.INFO, logger="object_detection"):
        log.console_line("100%")
        log.console_line(" Average Precision\n", end="")
    assert capsys.readouterr().out == "100%\n Average Precision\n"
    assert not caplog.records  # not to the root handlers as well (no second copy)
