"""Fixtures shared by every test folder: a small synthetic shapes dataset (TFRecords) and the
overrides that make the small CPU config read it."""
from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SMALL_CONFIG = str(REPO / "configs" / "ssd_mobilenet_v2_fpn_shapes_128_cpu.config")


@pytest.fixture(scope="session")
def shapes_dataset(tmp_path_factory) -> dict[str, str]:
    from object_detection.dataset_tools.create_shapes_dataset import create_shapes_dataset

    root = tmp_path_factory.mktemp("shapes")
    return create_shapes_dataset(str(root), num_train=32, num_val=8, image_size=128,
                                 tfrecords=True, num_shards=2)


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
