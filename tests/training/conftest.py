"""Paths of the training tests (the fixtures they share with other folders: tests/conftest.py)."""
from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SMALL_CONFIG = str(REPO / "configs" / "ssd_mobilenet_v2_fpn_shapes_128_cpu.config")
