"""Fixtures shared by every test folder: a small synthetic shapes dataset (TFRecords) and the
overrides that make the small CPU config read it."""
from __future__ import annotations

import logging
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SMALL_CONFIG = str(REPO / "configs" / "ssd_mobilenet_v2_fpn_shapes_128_cpu.config")
# The files whose tests take minutes (summed test time, 2026-12-06), longest first. They run
# first, so that with two workers (`make test`: --dist loadfile, one file per worker at a
# time) the short files fill in beside them instead of one long file running alone at the end.
LONGEST_FILES = ("training/test_train_lib.py", "training/test_distributed.py",
                 "test_bad_input.py", "training/test_run_features.py",
                 "meta_architectures/test_tf1_checkpoint.py", "export/test_tflite_export.py",
                 "export/test_exporter.py", "dataset_tools/test_download_scripts.py")


def pytest_collection_modifyitems(config, items):
    """Longest files first (LONGEST_FILES); every file's tests stay together, in order."""
    def rank(item) -> int:
        path = Path(str(item.fspath)).resolve()
        for i, name in enumerate(LONGEST_FILES):
            if path == REPO / "tests" / name:
                return i
        return len(LONGEST_FILES)

    items.sort(key=rank)


@pytest.fixture(autouse=True)
def _console_lines_unconfigured():
    """A CLI's main run in-process configures the console logger for standard output; undo
    it after the test, so that the next one sees console lines as log records (caplog)."""
    from object_detection.utils import log

    handlers, propagate, level = list(log.console.handlers), log.console.propagate, \
        log.console.level
    yield
    log.console.handlers[:] = handlers
    log.console.propagate = propagate
    log.console.setLevel(level)


@pytest.fixture
def console(caplog):
    """fn() -> the console lines logged so far in the test (`utils.log.console_line`), as a CLI
    would print them."""
    from object_detection.utils.log import console_text

    caplog.set_level(logging.INFO, logger="object_detection")
    return lambda: console_text(caplog.records)


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


@pytest.fixture(scope="session")
def tiny_overrides(small_overrides) -> list[str]:
    """`small_overrides` with MobileNet v1 (half the layers of the config's v2) and one tower
    layer: for tests of the training loop, its checkpoints, signals and inputs, not of the
    network. Each run traces and optimizes a graph half the size. The config's own v2 network
    is built and exported by the export tests, and trained by `make demo` and by
    tests/export/test_export_accuracy.py (`make test-slow`)."""
    return [*small_overrides, "model.ssd.feature_extractor.type=ssd_mobilenet_v1_fpn_keras",
            "model.ssd.box_predictor.weight_shared_convolutional_box_predictor."
            "num_layers_before_predictor=1"]
