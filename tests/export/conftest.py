"""Shared fixtures: a small detector with distinctive weights, its detections, an export of it.

The model is the small CPU config made smaller (depth multiplier 0.25, 32-deep predictor),
freshly initialized (seeded), then given weights that make its outputs distinctive: class and
box heads scaled up and class biases randomized (scores spread over (0, 1) instead of all near
the 0.01 prior, so the top detections have no ties) and random batch-norm statistics everywhere
(a restore that misses any layer shows).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
SMALL_CONFIG = str(REPO / "configs" / "ssd_mobilenet_v2_fpn_shapes_128_cpu.config")
OVERRIDES = [
    "model.ssd.feature_extractor.depth_multiplier=0.25",
    "model.ssd.box_predictor.weight_shared_convolutional_box_predictor.depth=32",
]
IMAGE_HEIGHT, IMAGE_WIDTH = 150, 200  # not the model's 128x128


def run_python(args: list[str], timeout: float = 240.0) -> subprocess.CompletedProcess:
    """Runs `python args...` in a fresh process from the repository root; fails with its output."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    result = subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=timeout)
    assert result.returncode == 0, (
        f"python {' '.join(args)} exited {result.returncode}\n--- stdout\n{result.stdout[-3000:]}"
        f"\n--- stderr\n{result.stderr[-5000:]}")
    return result


def shapes_image(seed: int, height: int = IMAGE_HEIGHT, width: int = IMAGE_WIDTH) -> np.ndarray:
    """uint8 [H, W, 3]: a synthetic shapes image."""
    from object_detection.dataset_tools.create_shapes_dataset import draw_image

    image, _ = draw_image(np.random.default_rng(seed), height, width, max_shapes=4)
    return np.asarray(image, np.uint8)


def _make_distinctive(model) -> None:
    rng = np.random.default_rng(0)
    for v in model.variables:
        name = v.path
        value = v.numpy()
        if name.endswith("moving_mean"):
            v.assign(rng.normal(0.0, 0.1, value.shape).astype(value.dtype))
        elif name.endswith("moving_variance"):
            v.assign(rng.uniform(0.5, 2.0, value.shape).astype(value.dtype))
        elif "class_predictor/kernel" in name:
            v.assign(value * 40.0)
        elif "class_predictor/bias" in name:  # from the 0.01 prior to scores around 0.5
            v.assign(rng.normal(0.0, 1.0, value.shape).astype(value.dtype))
        elif "box_predictor/kernel" in name:
            v.assign(value * 5.0)


def reference_detections(model, image: np.ndarray) -> dict[str, np.ndarray]:
    """Detections of the in-process model on one uint8 image, computed without the exporter:
    bilinear resize to the model size, network, postprocess, classes made 1-based."""
    import tensorflow as tf

    height, width = model.image_size
    images = tf.image.resize(tf.cast(image[np.newaxis], tf.float32), [height, width],
                             method="bilinear")
    out = model.postprocess(model(images, training=False))
    result = {k: v.numpy()[0] for k, v in out.items()}
    result["detection_classes"] = result["detection_classes"] + 1
    return result


@pytest.fixture(scope="session")
def small_configs():
    from object_detection.utils import config_util

    return config_util.get_configs_from_pipeline_file(SMALL_CONFIG, config_override=OVERRIDES)


@pytest.fixture(scope="session")
def small_model(small_configs):
    import keras

    from object_detection.export import exporter_lib

    keras.utils.set_random_seed(0)  # the same model, and so the same detections, every run
    model = exporter_lib.build_model(small_configs)
    _make_distinctive(model)
    return model


@pytest.fixture(scope="session")
def test_image() -> np.ndarray:
    return shapes_image(seed=3)


@pytest.fixture(scope="session")
def reference(small_model, test_image) -> dict[str, np.ndarray]:
    return reference_detections(small_model, test_image)


@pytest.fixture(scope="session")
def checkpoint_dir(small_model, tmp_path_factory) -> str:
    """A checkpoint of the model as training writes one (`checkpoint_layout.model_checkpoint`)."""
    import tensorflow as tf

    from object_detection.meta_architectures import checkpoint_layout

    directory = tmp_path_factory.mktemp("ckpt")
    manager = tf.train.CheckpointManager(checkpoint_layout.model_checkpoint(small_model),
                                         str(directory), max_to_keep=1)
    manager.save(checkpoint_number=7)
    return str(directory)


@pytest.fixture(scope="session")
def exported_in_memory(small_model, small_configs, tmp_path_factory) -> str:
    """Export directory of the in-memory model (no checkpoint involved)."""
    from object_detection.export import exporter_lib

    out = tmp_path_factory.mktemp("export_mem")
    exporter_lib.export_model(small_model, small_configs, str(out))
    return str(out)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    ymin, xmin = np.maximum(a[:2], b[:2])
    ymax, xmax = np.minimum(a[2:], b[2:])
    inter = max(0.0, ymax - ymin) * max(0.0, xmax - xmin)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def assert_same_detections(expected: dict, actual: dict, min_score: float = 0.05,
                           top_k: int = 10, score_tol: float = 1e-4, box_tol: float = 2e-3,
                           tie_iou: float | None = None) -> int:
    """Every one of the top-k expected detections scoring >= min_score is in `actual` (same
    class, score and box within tolerance), and `actual` has no extra one clearly above the
    cut-off. Order is not compared, so near-equal scores may swap.

    With `tie_iou` (the NMS IoU threshold), a detection may also be missing when `actual` has,
    instead, one of the same class and score (within score_tol) overlapping it by more than
    `tie_iou`: of two overlapping boxes tied in score, round-off decides which one NMS keeps
    (another runtime may keep the other). Returns how many compared."""
    def rows(d):
        n = int(d["num_detections"])
        return [(float(s), int(round(float(c))), np.asarray(b, np.float64))
                for s, c, b in zip(d["detection_scores"][:n], d["detection_classes"][:n],
                                   d["detection_boxes"][:n])]

    def tied(r, others):
        return tie_iou is not None and any(
            o[1] == r[1] and abs(o[0] - r[0]) <= score_tol and _iou(o[2], r[2]) > tie_iou
            for o in others)

    exp = sorted(rows(expected), key=lambda r: -r[0])
    act = rows(actual)
    want = [r for r in exp[:top_k] if r[0] >= min_score]
    cutoff = max(min_score, exp[top_k][0] if len(exp) > top_k else 0.0)
    assert want, f"no expected detection scores >= {min_score}: {exp[:3]}"
    unused = list(act)
    for score, cls, box in want:
        index = next((i for i, r in enumerate(unused) if r[1] == cls
                      and abs(r[0] - score) <= score_tol
                      and np.max(np.abs(r[2] - box)) <= box_tol), None)
        if index is None and tied((score, cls, box), act):
            continue
        assert index is not None, (
            f"expected detection (score {score:.5f}, class {cls}, box {box.round(4)}) not "
            f"found; actual top: {sorted(act, key=lambda r: -r[0])[:5]}")
        del unused[index]  # by position: rows hold arrays, which `list.remove` cannot compare
    extra = [r for r in unused if r[0] > cutoff + score_tol and not tied(r, exp)]
    assert not extra, f"unexpected detections above {cutoff:.4f}: {extra[:5]}"
    return len(want)
