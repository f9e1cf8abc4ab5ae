"""Fixtures shared by every test folder: a small synthetic shapes dataset (TFRecords)."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def shapes_dataset(tmp_path_factory) -> dict[str, str]:
    from object_detection.dataset_tools.create_shapes_dataset import create_shapes_dataset

    root = tmp_path_factory.mktemp("shapes")
    return create_shapes_dataset(str(root), num_train=32, num_val=8, image_size=128,
                                 tfrecords=True, num_shards=2)
