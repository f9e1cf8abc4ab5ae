"""evaluators: metrics_set names -> evaluators, errors, and the gather/rebuild/merge loop."""
from __future__ import annotations

import pickle

import numpy as np
import pytest

from object_detection.evaluation import evaluators
from object_detection.evaluation.coco_evaluation import CocoEvaluator
from object_detection.evaluation.pascal_evaluation import PascalEvaluator
from object_detection.utils.errors import ConfigError

CATEGORIES = [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}]


def test_empty_metrics_set_is_coco():
    (only,) = evaluators.build([], CATEGORIES)
    assert isinstance(only, CocoEvaluator) and only.name == "coco_detection_metrics"
    assert only.backend == "pycocotools" and not only.include_metrics_per_category


def test_names_in_order_duplicates_collapse_settings_reach_every_evaluator():
    built = evaluators.build(
        ["weighted_pascal_voc_detection_metrics", "coco_detection_metrics",
         "pascal_voc_detection_metrics", "coco_detection_metrics"], CATEGORIES,
        include_metrics_per_category=True, backend="faster_coco_eval")
    assert [e.name for e in built] == ["weighted_pascal_voc_detection_metrics",
                                       "coco_detection_metrics", "pascal_voc_detection_metrics"]
    weighted, coco, pascal = built
    assert isinstance(weighted, PascalEvaluator) and weighted.weighted
    assert isinstance(pascal, PascalEvaluator) and not pascal.weighted
    assert coco.backend == "faster_coco_eval"
    assert all(e.include_metrics_per_category for e in built)
    assert evaluators.METRICS_SETS == ("coco_detection_metrics", "pascal_voc_detection_metrics",
                                       "weighted_pascal_voc_detection_metrics")


@pytest.mark.parametrize("name, extra", [
    ("x", ""),
    ("coco_mask_metrics", r" \(an OD API metric set this project does not compute\)"),
    ("oid_V2_detection_metrics", r" \(an OD API metric set"),
    ("precision_at_recall_detection_metrics", r" \(an OD API metric set"),
])
def test_unsupported_metrics_set_is_a_config_error(name, extra):
    with pytest.raises(ConfigError, match=(
            rf"eval_config\.metrics_set: '{name}' is not supported{extra}.*; supported: "
            r"\['coco_detection_metrics', 'pascal_voc_detection_metrics', "
            r"'weighted_pascal_voc_detection_metrics'\]; OD API sets not computed here: "
            r"\[.*'coco_mask_metrics'")):
        evaluators.build(["coco_detection_metrics", name], CATEGORIES)


def test_unknown_backend_is_a_config_error_even_without_coco():
    with pytest.raises(ConfigError, match=r"--eval_backend: 'cocoapi' is not supported"):
        evaluators.build(["pascal_voc_detection_metrics"], CATEGORIES, backend="cocoapi")


def test_tensorboard_names():
    coco, pascal = evaluators.build(["coco_detection_metrics", "pascal_voc_detection_metrics"],
                                    CATEGORIES)
    assert evaluators.tensorboard_names(coco, {"mAP@0.5": 0.5, "AP/cat": 0.25}) == {
        "DetectionBoxes_Precision/mAP@.50IOU": 0.5,
        "DetectionBoxes_PerformanceByCategory/mAP/cat": 0.25}
    metrics = {"PascalBoxes_Precision/mAP@0.5IOU": 0.5}
    assert evaluators.tensorboard_names(pascal, metrics) == metrics  # already OD API names


def _image(rng, source_id):
    n = int(rng.integers(1, 4))
    gt = np.concatenate([rng.uniform(0, 0.5, (n, 2)), rng.uniform(0.5, 1, (n, 2))], 1)
    det = np.clip(gt + rng.normal(0, 0.05, gt.shape), 0, 1)
    pad = lambda a, rows: np.concatenate([a, np.zeros((rows - len(a),) + a.shape[1:], a.dtype)])
    classes = rng.integers(0, 2, n)
    return dict(  # the keyword arguments the evaluation loop gives every evaluator
        source_id=source_id, original_shape=np.array([120, 160]),
        groundtruth_boxes=pad(gt, 5), groundtruth_classes=pad(classes, 5),
        num_groundtruth_boxes=n, groundtruth_is_crowd=pad(rng.uniform(size=n) < 0.2, 5),
        groundtruth_area=np.zeros(5, np.float32),
        groundtruth_difficult=pad(rng.uniform(size=n) < 0.2, 5),
        detection_boxes=pad(det, 8), detection_scores=pad(rng.uniform(size=n), 8),
        detection_classes=pad(classes.astype(np.float32), 8), num_detections=n)


def test_gather_rebuild_merge_equals_one_process():
    rng = np.random.default_rng(0)
    images = [_image(rng, f"{i}".encode()) for i in range(12)]
    names = list(evaluators.METRICS_SETS)
    single = evaluators.build(names, CATEGORIES, include_metrics_per_category=True)
    workers = [evaluators.build(names, CATEGORIES, include_metrics_per_category=True)
               for _ in range(2)]
    for i, image in enumerate(images):
        for evaluator in single + workers[i % 2]:
            evaluator.add_image(**image)
    for evaluator in workers[1]:
        evaluator.add_image(**images[0])  # a repeated image of a padded batch: counted once
    gathered = pickle.loads(pickle.dumps([[e.state() for e in w] for w in workers]))
    for i, evaluator in enumerate(single):
        fresh = evaluators.rebuild(workers[0][i])
        assert fresh.num_images == 0 and fresh.name == evaluator.name
        fresh.merge([states[i] for states in gathered])
        assert fresh.num_images == 12
        assert fresh.evaluate(print_summary=False) == pytest.approx(
            evaluator.evaluate(print_summary=False), nan_ok=True)
