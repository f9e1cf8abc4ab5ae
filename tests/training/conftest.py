"""Shared fixtures: the small CPU config's overrides (the shapes dataset: tests/conftest.py)."""
from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SMALL_CONFIG = str(REPO / "configs" / "ssd_mobilenet_v2_fpn_shapes_128_cpu.config")


@pytest.fixture(scope="session")
def small_overrides(shapes_dataset) -> list[str]:
    """The small CPU config made smaller still (tests), reading the synthetic dataset."""
    d = shapes_dataset
    return [
        f"train_input_reader.tf_record_input_reader.input_path={d['train_records']}",
        f"eval_input_reader.0.tf_record_input_reader.input_path={d['val_records']}",
        f"train_input_reader.label_map_path={d['label_map']}",
        f"eval_input_reader.0.label_map_path={d['label_map']}",
        "train_config.batch_size=4",
        "eval_config.batch_size=4",
        "train_input_reader.shuffle_buffer_size=16",
        "model.ssd.feature_extractor.depth_multiplier=0.25",
        "model.ssd.box_predictor.weight_shared_convolutional_box_predictor.depth=32",
    ]
