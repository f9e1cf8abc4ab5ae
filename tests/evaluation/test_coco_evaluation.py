"""CocoEvaluator: per-category table, PR curves, backends (faster-coco-eval = pycocotools)."""
from __future__ import annotations

import importlib.util
import logging
import os

import numpy as np
import pytest
from PIL import Image

from object_detection.evaluation import coco_evaluation
from object_detection.evaluation.coco_evaluation import CocoEvaluator
from object_detection.utils.errors import ConfigError
from object_detection.utils.log import console_text

CATEGORIES = [{"id": 1, "name": "person"}, {"id": 2, "name": "traffic light"},
              {"id": 3, "name": "a/b"}]  # "a/b" has no ground truth below
HAS_FASTER = importlib.util.find_spec("faster_coco_eval") is not None
needs_faster = pytest.mark.skipif(
    not HAS_FASTER, reason="faster-coco-eval is not installed (setup.py installs it: "
                           "pip install -e .)")


def _add(evaluator, source_id, gt_boxes, gt_classes, det_boxes, det_classes, scores,
         is_crowd=None, shape=(100, 200)):
    evaluator.add_image(
        source_id=source_id, original_shape=shape,
        groundtruth_boxes=np.asarray(gt_boxes, float).reshape(-1, 4),
        groundtruth_classes=np.asarray(gt_classes), num_groundtruth_boxes=len(gt_classes),
        detection_boxes=np.asarray(det_boxes, float).reshape(-1, 4),
        detection_scores=np.asarray(scores, float),
        detection_classes=np.asarray(det_classes, float), num_detections=len(scores),
        groundtruth_is_crowd=None if is_crowd is None else np.asarray(is_crowd))


def _perfect(evaluator):
    """2 images, detections equal to the ground truth; 3 persons (one crowd), 1 traffic light."""
    boxes = [[0.1, 0.1, 0.5, 0.4], [0.5, 0.5, 0.9, 0.9], [0.0, 0.6, 0.3, 0.9]]
    _add(evaluator, b"1", boxes, [0, 0, 1], boxes, [0, 0, 1], [0.9, 0.8, 0.7])
    crowd = [[0.2, 0.2, 0.8, 0.8], [0.1, 0.1, 0.3, 0.3]]
    _add(evaluator, b"2", crowd, [0, 0], crowd[1:], [0], [0.6], is_crowd=[True, False])


def test_per_category_table_for_perfect_detections(caplog):
    e = CocoEvaluator(CATEGORIES, include_metrics_per_category=True)
    _perfect(e)
    with caplog.at_level(logging.INFO, logger="object_detection"):
        metrics = e.evaluate()
    assert metrics["mAP"] == pytest.approx(1.0) and metrics["AR@100"] == pytest.approx(1.0)
    for name in ("person", "traffic light"):
        for key in ("AP", "AP@0.5", "AP@0.75", "AR@100"):
            assert metrics[f"{key}/{name}"] == pytest.approx(1.0), (key, name)
    assert metrics["num_groundtruth/person"] == 3  # the crowd box is not a positive
    assert metrics["num_groundtruth/traffic light"] == 1
    for key in ("AP", "AP@0.5", "AP@0.75", "AR@100"):
        assert metrics[f"{key}/a/b"] == -1.0  # no ground truth: COCOeval's -1
    assert metrics["num_groundtruth/a/b"] == 0
    assert len(metrics) == 12 + 3 * 5
    out = console_text(caplog.records).splitlines()
    assert len(out) == 12 + 2 + 3  # summary, title and header, one row per category
    assert out[13].split() == ["category", "AP", "AP@0.5", "AP@0.75", "AR@100", "num_gt"]
    assert out[14].split() == ["person", "1.000", "1.000", "1.000", "1.000", "3"]
    assert out[15].startswith("traffic light ") and out[16].split()[-1] == "0"
    assert len({len(line) for line in out[13:]}) == 1  # aligned


def test_per_category_values_for_a_simple_imperfect_case():
    e = CocoEvaluator(CATEGORIES[:1], include_metrics_per_category=True)
    # two persons; one detected exactly, one missed; one FP scored below the TP
    _add(e, "1", [[0.1, 0.1, 0.5, 0.4], [0.5, 0.5, 0.9, 0.9]], [0, 0],
         [[0.1, 0.1, 0.5, 0.4], [0.0, 0.9, 0.1, 1.0]], [0, 0], [0.9, 0.5])
    metrics = e.evaluate(print_summary=False)
    # COCO's 101-point AP: precision 1 up to recall 0.5 (51 points of 101), then 0
    assert metrics["AP@0.5/person"] == pytest.approx(51 / 101)
    assert metrics["AP/person"] == pytest.approx(51 / 101)  # the same at every IoU
    assert metrics["AR@100/person"] == pytest.approx(0.5)
    assert metrics["AP/person"] == pytest.approx(metrics["mAP"])  # one category


def test_od_api_names_of_the_per_category_keys():
    names = coco_evaluation.od_api_metric_names(
        {"mAP": 0.1, "AP/a/b": 0.2, "AP@0.5/a/b": 0.3, "AP@0.75/cat": 0.4, "AR@100/cat": 0.5,
         "num_groundtruth/cat": 6.0})
    assert names == {
        "DetectionBoxes_Precision/mAP": 0.1,
        "DetectionBoxes_PerformanceByCategory/mAP/a/b": 0.2,
        "DetectionBoxes_Precision mAP@.50IOU ByCategory/a/b": 0.3,
        "DetectionBoxes_Precision mAP@.75IOU ByCategory/cat": 0.4,
        "DetectionBoxes_Recall AR@100 ByCategory/cat": 0.5,
        "DetectionBoxes_PerformanceByCategory/num_groundtruth/cat": 6.0,
    }
    e = CocoEvaluator(CATEGORIES)
    assert e.tensorboard_names({"AR@100": 0.5}) == {"DetectionBoxes_Recall/AR@100": 0.5}


def test_pr_curves_one_png_per_category_with_ground_truth(tmp_path):
    e = CocoEvaluator(CATEGORIES, include_metrics_per_category=True)
    with pytest.raises(RuntimeError, match="evaluate"):
        e.write_pr_curves(str(tmp_path))
    _perfect(e)
    e.evaluate(print_summary=False)
    paths = e.write_pr_curves(str(tmp_path / "curves"))
    assert [os.path.basename(p) for p in paths] == ["pr_curve_1_person.png",
                                                    "pr_curve_2_traffic_light.png"]
    assert sorted(os.listdir(tmp_path / "curves")) == sorted(os.path.basename(p) for p in paths)
    for path in paths:
        with Image.open(path) as image:
            assert image.format == "PNG" and image.size == (500, 400)


def test_detections_file_stays_a_coco_results_file(tmp_path):
    e = CocoEvaluator(CATEGORIES)
    _perfect(e)
    e.evaluate(print_summary=False)  # COCO.loadRes adds fields to what it is given
    e.write_detections(str(tmp_path / "d.json"))
    import json
    detections = json.loads((tmp_path / "d.json").read_text())
    assert {tuple(sorted(d)) for d in detections} == {
        ("bbox", "category_id", "image_id", "score")}


def test_unknown_backend_is_a_config_error():
    with pytest.raises(ConfigError, match=r"--eval_backend: 'fast' is not supported; supported: "
                                          r"\['pycocotools', 'faster_coco_eval'\]"):
        CocoEvaluator(CATEGORIES, backend="fast")
    assert coco_evaluation.BACKENDS == ("pycocotools", "faster_coco_eval")


def _random_case(evaluators, seed=0, num_images=25):
    """Several images and classes, string ids, crowd boxes, tied (rounded) scores."""
    rng = np.random.default_rng(seed)
    for i in range(num_images):
        n = int(rng.integers(0, 9))
        centers, sizes = rng.uniform(0.1, 0.9, (n, 2)), rng.uniform(0.02, 0.4, (n, 2))
        gt = np.clip(np.concatenate([centers - sizes / 2, centers + sizes / 2], 1), 0, 1)
        classes = rng.integers(0, 3, n)
        d = int(rng.integers(0, 40))
        near = rng.integers(0, max(n, 1), d)
        det = (gt[near] if n else rng.uniform(0.2, 0.4, (d, 4))) + rng.normal(0, 0.03, (d, 4))
        det = np.concatenate([np.minimum(det[:, :2], det[:, 2:]),
                              np.maximum(det[:, :2], det[:, 2:])], 1)
        det_classes = np.where(rng.uniform(size=d) < 0.8, classes[near] if n else 0,
                               rng.integers(0, 3, d))
        scores = np.round(rng.uniform(size=d), 2)  # ties
        crowd = rng.uniform(size=n) < 0.1
        shape = (int(rng.integers(100, 600)), 640)
        for e in evaluators:
            _add(e, f"image_{i:03d}".encode(), gt, classes, det, det_classes, scores,
                 is_crowd=crowd, shape=shape)


@needs_faster
def test_faster_coco_eval_numbers_equal_pycocotools(caplog):
    reference = CocoEvaluator(CATEGORIES, include_metrics_per_category=True)
    faster = CocoEvaluator(CATEGORIES, include_metrics_per_category=True,
                           backend="faster_coco_eval")
    _random_case([reference, faster])
    with caplog.at_level(logging.INFO, logger="object_detection"):
        expected = reference.evaluate()
        printed = console_text(caplog.records)
        caplog.clear()
        got = faster.evaluate()
    assert console_text(caplog.records) == printed  # the same 12 lines and table
    assert got.keys() == expected.keys()
    for key in expected:
        assert abs(got[key] - expected[key]) <= 1e-12, key
    assert 0.05 < expected["mAP"] < 0.9  # not a trivial case
    np.testing.assert_allclose(faster.coco_eval.eval["precision"],
                               reference.coco_eval.eval["precision"], rtol=0, atol=1e-12)


@needs_faster
def test_faster_coco_eval_without_detections_and_empty_copy():
    e = CocoEvaluator(CATEGORIES, backend="faster_coco_eval")
    _add(e, "7", [[0.1, 0.1, 0.5, 0.5]], [0], [], [], [])
    assert e.evaluate(print_summary=False)["mAP"] == 0.0
    copy = e.empty_copy()
    assert copy.backend == "faster_coco_eval" and copy.num_images == 0
