"""PascalEvaluator: AP on hand-computed cases (OD API PascalDetectionEvaluator semantics)."""
from __future__ import annotations

import logging
import math

import numpy as np
import pytest

from object_detection.evaluation.pascal_evaluation import PascalEvaluator, voc_average_precision
from object_detection.utils.log import console_text

SIZE = 64.0  # image side in pixels; coordinates below are pixels, exact in binary when / 64
MAP = "PascalBoxes_Precision/mAP@0.5IOU"
WEIGHTED_MAP = "WeightedPascalBoxes_Precision/mAP@0.5IOU"
CATEGORIES = [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}]


def ap_key(name: str, prefix: str = "PascalBoxes") -> str:
    return f"{prefix}_PerformanceByCategory/AP@0.5IOU/{name}"


def _box(ymin, xmin, ymax, xmax):
    return [ymin / SIZE, xmin / SIZE, ymax / SIZE, xmax / SIZE]


A, B, C = _box(0, 0, 16, 16), _box(20, 20, 36, 36), _box(40, 40, 60, 60)
D, E = _box(0, 40, 16, 56), _box(44, 0, 60, 16)  # used as (difficult) ground truth
NOWHERE1, NOWHERE2 = _box(24, 0, 32, 8), _box(0, 24, 8, 32)  # overlap no box above


def _add(evaluator, source_id, groundtruth, detections, difficult=None, padding=2):
    """groundtruth: [(box, class)]; detections: [(box, class, score)]; rows padded as a batch."""
    gt_boxes = np.array([b for b, _ in groundtruth] + [[0.0] * 4] * padding).reshape(-1, 4)
    gt_classes = np.array([c for _, c in groundtruth] + [0] * padding)
    det = np.array([b for b, _, _ in detections] + [[0.0] * 4] * padding).reshape(-1, 4)
    evaluator.add_image(
        source_id=source_id, original_shape=(64, 64), groundtruth_boxes=gt_boxes,
        groundtruth_classes=gt_classes, num_groundtruth_boxes=len(groundtruth),
        detection_boxes=det,
        detection_scores=np.array([s for _, _, s in detections] + [0.0] * padding),
        detection_classes=np.array([float(c) for _, c, _ in detections] + [0.0] * padding),
        num_detections=len(detections),
        groundtruth_difficult=(None if difficult is None
                               else np.array(list(difficult) + [False] * padding)))


def test_voc_average_precision_is_the_area_under_the_monotone_curve():
    # precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1: made monotone 1, 2/3, 2/3;
    # AP = (1/2 - 0) * 1 + (1 - 1/2) * 2/3 = 5/6
    assert voc_average_precision(np.array([1, 0.5, 2 / 3]), np.array([0.5, 0.5, 1])) \
        == pytest.approx(5 / 6)
    assert voc_average_precision(np.zeros([0]), np.zeros([0])) == 0.0


def test_one_class_three_boxes_four_detections():
    e = PascalEvaluator(CATEGORIES, include_metrics_per_category=True)
    # scores 0.9 TP (A), 0.8 FP, 0.7 TP (B), 0.6 FP; C is missed. 3 positives.
    _add(e, b"1", [(A, 0), (B, 0), (C, 0)],
         [(A, 0, 0.9), (NOWHERE1, 0, 0.8), (B, 0, 0.7), (NOWHERE2, 0, 0.6)])
    metrics = e.evaluate(print_summary=False)
    # precision 1, 1/2, 2/3, 1/2 at recall 1/3, 1/3, 2/3, 2/3 -> monotone 1, 2/3, 2/3, 1/2:
    # AP = 1/3 * 1 + (2/3 - 1/3) * 2/3 + (1 - 2/3) * 0 = 5/9
    assert metrics[ap_key("cat")] == pytest.approx(5 / 9)
    # dog has no ground truth: NaN, left out of the mean (OD API: np.nanmean)
    assert math.isnan(metrics[ap_key("dog")])
    assert metrics[MAP] == pytest.approx(5 / 9)
    assert set(metrics) == {MAP, ap_key("cat"), ap_key("dog")}


def test_detection_matched_to_a_difficult_box_is_neither_tp_nor_fp():
    e = PascalEvaluator(CATEGORIES)
    # A, B normal; D, E difficult. 0.9 on A, 0.8 on D (difficult), 0.7 on B.
    _add(e, "1", [(A, 0), (D, 0), (B, 0), (E, 0)],
         [(A, 0, 0.9), (D, 0, 0.8), (B, 0, 0.7)], difficult=[False, True, False, True])
    # Ignored: detections [TP, TP] for 2 positives -> AP 1. (As a FP it would be
    # [TP, FP, TP]: 1/2 * 1 + 1/2 * 2/3 = 5/6; with D, E counted as positives: 3/4 or 2/3.)
    assert e.evaluate(print_summary=False)[MAP] == pytest.approx(1.0)

    plain = PascalEvaluator(CATEGORIES)  # the same image without difficult flags
    _add(plain, "1", [(A, 0), (D, 0), (B, 0), (E, 0)], [(A, 0, 0.9), (D, 0, 0.8), (B, 0, 0.7)])
    # [TP, TP, TP] for 4 positives: recall 3/4 with precision 1 -> AP 3/4
    assert plain.evaluate(print_summary=False)[MAP] == pytest.approx(0.75)


def test_only_difficult_boxes_mean_no_positives():
    e = PascalEvaluator(CATEGORIES, include_metrics_per_category=True)
    _add(e, "1", [(A, 0), (B, 1)], [(A, 0, 0.9), (B, 1, 0.9)], difficult=[False, True])
    metrics = e.evaluate(print_summary=False)
    assert metrics[ap_key("cat")] == 1.0 and math.isnan(metrics[ap_key("dog")])
    assert metrics[MAP] == 1.0


def test_duplicate_detection_is_a_false_positive():
    e = PascalEvaluator(CATEGORIES)
    # 0.9 on A (TP), 0.8 on A again (duplicate: FP), 0.7 on B (TP); 2 positives.
    _add(e, "1", [(A, 0), (B, 0)], [(A, 0, 0.9), (A, 0, 0.8), (B, 0, 0.7)])
    # precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1: AP = 1/2 * 1 + 1/2 * 2/3 = 5/6
    assert e.evaluate(print_summary=False)[MAP] == pytest.approx(5 / 6)


def test_duplicate_is_a_false_positive_even_when_another_box_is_free():
    # VOC rule: a detection takes its best-IoU box; if that one is taken it is a FP, even
    # though it overlaps a free box enough (COCO would match the free box).
    e = PascalEvaluator(CATEGORIES)
    a, a_shifted = _box(0, 0, 10, 10), _box(0, 2, 10, 12)  # IoU 80/120
    second = _box(0, 0.5, 10, 10.5)  # IoU 95/105 with a, 85/115 with a_shifted
    _add(e, "1", [(a, 0), (a_shifted, 0)], [(a, 0, 0.9), (second, 0, 0.8)])
    # [TP, FP] for 2 positives: AP = 1/2 * 1 = 1/2
    assert e.evaluate(print_summary=False)[MAP] == pytest.approx(0.5)


def test_iou_threshold_is_inclusive_and_class_must_match():
    e = PascalEvaluator(CATEGORIES, include_metrics_per_category=True)
    half = _box(0, 0, 16, 8)  # IoU with A = 128 / 256 = 0.5 exactly: a match
    _add(e, "1", [(A, 0), (B, 1)], [(half, 0, 0.9), (B, 0, 0.8)])  # B detected as a cat
    metrics = e.evaluate(print_summary=False)
    # cat: [TP, FP] for 1 positive -> 1; dog: no detection -> 0; mAP (1 + 0) / 2
    assert metrics[ap_key("cat")] == 1.0 and metrics[ap_key("dog")] == 0.0
    assert metrics[MAP] == 0.5


def test_empty_detection_boxes_are_dropped():
    e = PascalEvaluator(CATEGORIES)
    _add(e, "1", [(A, 0)], [(_box(8, 8, 8, 12), 0, 0.95), (A, 0, 0.9)])  # zero height first
    assert e.evaluate(print_summary=False)[MAP] == 1.0  # not [FP, TP] (AP 1/2)


def test_detections_of_a_class_without_ground_truth_count_nowhere():
    for weighted, key in ((False, MAP), (True, WEIGHTED_MAP)):
        e = PascalEvaluator(CATEGORIES, weighted=weighted)
        _add(e, "1", [(A, 0)], [(A, 0, 0.5), (B, 1, 0.9), (C, 1, 0.8)])
        # dog has no ground truth: its two detections are not FPs of anything
        assert e.evaluate(print_summary=False)[key] == 1.0


def test_weighted_pools_every_class_into_one_curve():
    kwargs = dict(include_metrics_per_category=True)
    plain, weighted = PascalEvaluator(CATEGORIES, **kwargs), PascalEvaluator(
        CATEGORIES, weighted=True, **kwargs)
    for e in (plain, weighted):
        # cat: 1 box, 0.9 TP. dog: 3 boxes, 0.8 FP, 0.7 TP, 0.6 TP.
        _add(e, "1", [(A, 0), (B, 1), (C, 1), (D, 1)],
             [(A, 0, 0.9), (NOWHERE1, 1, 0.8), (B, 1, 0.7), (C, 1, 0.6)])
    p, w = plain.evaluate(print_summary=False), weighted.evaluate(print_summary=False)
    # dog: precision 0, 1/2, 2/3 at recall 0, 1/3, 2/3 -> AP = 1/3 * 2/3 + 1/3 * 2/3 = 4/9
    assert p[ap_key("dog")] == pytest.approx(4 / 9) and p[ap_key("cat")] == 1.0
    assert p[MAP] == pytest.approx((1 + 4 / 9) / 2)
    # pooled: TP FP TP TP for 4 positives: precision 1, 1/2, 2/3, 3/4 at recall
    # 1/4, 1/4, 1/2, 3/4 -> monotone 1, 3/4, 3/4, 3/4: AP = 1/4 + 1/4 * 3/4 + 1/4 * 3/4 = 5/8
    # (the positives-weighted mean of the per-class APs would be (1 + 3 * 4/9) / 4 = 7/12)
    assert w[WEIGHTED_MAP] == pytest.approx(5 / 8)
    assert w[ap_key("dog", "WeightedPascalBoxes")] == pytest.approx(4 / 9)


def test_images_pool_and_an_image_seen_twice_counts_once():
    e = PascalEvaluator(CATEGORIES)
    _add(e, b"7", [(A, 0)], [(A, 0, 0.9)])
    _add(e, b"7", [(A, 0)], [(NOWHERE1, 0, 0.95)])  # the same id again: ignored
    _add(e, b"8", [(B, 0)], [(NOWHERE1, 0, 0.8), (B, 0, 0.7)])
    assert e.num_images == 2
    # [TP 0.9, FP 0.8, TP 0.7] for 2 positives: AP = 1/2 + 1/2 * 2/3 = 5/6
    assert e.evaluate(print_summary=False)[MAP] == pytest.approx(5 / 6)


def _random_images(rng, count):
    images = []
    for i in range(count):
        n = int(rng.integers(0, 5))
        centers, sizes = rng.uniform(0.2, 0.8, (n, 2)), rng.uniform(0.05, 0.3, (n, 2))
        gt = np.concatenate([centers - sizes / 2, centers + sizes / 2], 1)
        classes = rng.integers(0, 2, n)
        dets = []
        for j in range(int(rng.integers(0, 7))):
            if n and rng.uniform() < 0.7:
                k = int(rng.integers(0, n))
                dets.append((gt[k] + rng.normal(0, 0.02, 4), int(classes[k]), rng.uniform()))
            else:
                y, x = rng.uniform(0, 0.7, 2)
                dets.append(([y, x, y + 0.2, x + 0.2], int(rng.integers(0, 2)), rng.uniform()))
        images.append((f"img{i}", list(zip(gt, classes)), dets, rng.uniform(size=n) < 0.2))
    return images


@pytest.mark.parametrize("weighted", [False, True])
def test_merged_states_equal_one_evaluator(weighted):
    rng = np.random.default_rng(3)
    images = _random_images(rng, 30)
    kwargs = dict(weighted=weighted, include_metrics_per_category=True)
    single, worker1, worker2 = (PascalEvaluator(CATEGORIES, **kwargs) for _ in range(3))
    for i, (source_id, gt, dets, difficult) in enumerate(images):
        _add(single, source_id, gt, dets, difficult)
        _add(worker1 if i % 2 else worker2, source_id, gt, dets, difficult)
    _add(worker2, *images[1])  # also on the other worker (a padded batch): counted once
    merged = worker1.empty_copy()
    merged.merge([worker2.state(), worker1.state()])  # any order
    assert merged.num_images == single.num_images == 30
    expected = single.evaluate(print_summary=False)
    assert merged.evaluate(print_summary=False) == pytest.approx(expected, nan_ok=True)
    assert 0 < expected[WEIGHTED_MAP if weighted else MAP] < 1


def test_summary_is_printed(caplog):
    e = PascalEvaluator(CATEGORIES, include_metrics_per_category=True)
    _add(e, "1", [(A, 0)], [(A, 0, 0.9)])
    with caplog.at_level(logging.INFO, logger="object_detection"):
        e.evaluate()
    out = console_text(caplog.records).splitlines()
    assert out[0].startswith(f"{MAP} = 1.0000 (1 of 2 classes with positives, 1 images)")
    assert out[1].split() == ["cat", "1.0000", "(1", "positives)"]
    assert out[2].split()[:2] == ["dog", "nan"]


def test_settings_errors():
    with pytest.raises(ValueError, match="ids >= 1"):
        PascalEvaluator([{"id": 0, "name": "background"}])
    with pytest.raises(ValueError, match="matching_iou_threshold"):
        PascalEvaluator(CATEGORIES, matching_iou_threshold=0.0)
    with pytest.raises(ValueError, match="no image"):
        PascalEvaluator(CATEGORIES).evaluate()
