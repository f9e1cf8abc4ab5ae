"""A DLLogger-style JSON-lines report (`--raport_file`), as the seed's scripts wrote it.

Each line is `DLLL {json}` with the keys of NVIDIA's DLLogger JSON backend: `timestamp` (Unix
seconds), `datetime`, `elapsedtime` (seconds since the logger started), `type` ("LOG"), `step`
(an int, or "PARAMETER" / [] for run-level records) and `data` (a flat dict of numbers or
strings). `read_report` parses such a file back.
"""
from __future__ import annotations

import datetime
import json
import os
import time
from typing import Any, Mapping

PREFIX = "DLLL "


def _jsonable(value: Any) -> Any:
    if hasattr(value, "numpy"):
        value = value.numpy()
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return value


class DLLogger:
    """Appends records to a JSON-lines file; a no-op when `path` is None (non-chief workers)."""

    def __init__(self, path: str | None):
        self.path = path
        self._start = time.time()
        if path:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)

    def log(self, step: int | str | list, data: Mapping[str, Any]) -> None:
        if not self.path:
            return
        now = time.time()
        record = {
            "timestamp": now,
            "datetime": datetime.datetime.fromtimestamp(now).isoformat(),
            "elapsedtime": now - self._start,
            "type": "LOG",
            "step": step,
            "data": {k: _jsonable(v) for k, v in data.items()},
        }
        with open(self.path, "a") as f:
            f.write(PREFIX + json.dumps(record) + "\n")


def read_report(path: str) -> list[dict]:
    """Records of a report written by `DLLogger` (lines without the prefix are skipped)."""
    records = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith(PREFIX):
                records.append(json.loads(line[len(PREFIX):]))
    return records
