r"""Speed of COCO evaluation backends on synthetic COCO val2017-sized data (not a test).

  python benchmarks/coco_eval_benchmark.py                      # 5,000 images, both backends
  python benchmarks/coco_eval_benchmark.py --num_images 300 --repeats 3

Makes `--num_images` images (fixed seed) at COCO val2017 scale: 640 px wide, 360-640 px high,
`--num_classes` classes, Poisson(7.3) ground-truth boxes per image with log-uniform sizes (small,
medium and large boxes all present) and 2 % crowd boxes, and `--detections_per_image`
detections per image: most near a ground-truth box (position and size noise proportional to the
box, the right class 80 % of the time, higher scores), the rest anywhere with any class (lower
scores), so that the APs are neither 0 nor 1. The same images go into one CocoEvaluator per
backend; then each backend's `evaluate()` call (building the COCO objects, evaluate,
accumulate, summarize) is timed `--repeats` times, the backends interleaved, and the median
is reported, with the speed-up over pycocotools and whether the 12 numbers are identical
(the largest absolute difference).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from typing import Sequence

if __package__ in (None, ""):  # run as a script path: make the package importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from object_detection.evaluation import coco_evaluation  # noqa: E402


def synthetic_images(num_images: int, num_classes: int, detections_per_image: int,
                     seed: int = 0):
    """Yields the add_image keyword arguments of each synthetic image (see the docstring)."""
    rng = np.random.default_rng(seed)
    for i in range(num_images):
        height, width = int(rng.integers(360, 641)), 640
        n = int(rng.poisson(7.3))
        # box sides log-uniform in 8..400 px, aspect ratio 1/3..3
        area = np.exp(rng.uniform(np.log(8 ** 2), np.log(400 ** 2), n))
        aspect = np.exp(rng.uniform(np.log(1 / 3), np.log(3), n))
        h = np.minimum(np.sqrt(area * aspect), height - 1)
        w = np.minimum(np.sqrt(area / aspect), width - 1)
        y, x = rng.uniform(0, height - h), rng.uniform(0, width - w)
        gt = np.stack([y, x, y + h, x + w], 1) / [height, width, height, width]  # [n, 4]
        classes = rng.integers(0, num_classes, n)
        d = detections_per_image
        near = min(d, int(rng.integers(2, 5)) * n)  # detections near a ground-truth box
        k = rng.integers(0, max(n, 1), near)
        if n:
            size = np.stack([gt[k, 2] - gt[k, 0], gt[k, 3] - gt[k, 1]] * 2, 1)  # [near, 4]
            near_boxes = gt[k] + rng.normal(0, 0.12, (near, 4)) * size
            near_classes = np.where(rng.uniform(size=near) < 0.8, classes[k],
                                    rng.integers(0, num_classes, near))
            near_scores = rng.beta(4, 2, near)
        else:
            near_boxes, near_classes, near_scores = np.zeros([0, 4]), np.zeros([0]), np.zeros([0])
        far = d - len(near_boxes)
        corner = rng.uniform(0, 0.9, (far, 2))
        far_boxes = np.concatenate([corner, corner + rng.uniform(0.02, 0.4, (far, 2))], 1)
        boxes = np.clip(np.concatenate([near_boxes, far_boxes]), 0, 1)
        boxes = np.concatenate([np.minimum(boxes[:, :2], boxes[:, 2:]),
                                np.maximum(boxes[:, :2], boxes[:, 2:])], 1)
        scores = np.concatenate([near_scores, rng.beta(1, 4, far)])
        order = np.argsort(-scores, kind="stable")  # as post-processing gives them
        yield dict(
            source_id=str(i + 1).encode(), original_shape=(height, width),
            groundtruth_boxes=gt, groundtruth_classes=classes, num_groundtruth_boxes=n,
            groundtruth_is_crowd=rng.uniform(size=n) < 0.02,
            detection_boxes=boxes[order], detection_scores=scores[order].astype(np.float32),
            detection_classes=np.concatenate([near_classes, rng.integers(0, num_classes, far)]
                                             )[order].astype(np.float32),
            num_detections=d)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num_images", type=int, default=5000)
    parser.add_argument("--num_classes", type=int, default=80)
    parser.add_argument("--detections_per_image", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=1, help="timed evaluate() calls each")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backends", default=",".join(coco_evaluation.BACKENDS),
                        help="comma-separated; the first is the reference")
    args = parser.parse_args(argv)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    categories = [{"id": c + 1, "name": f"class_{c + 1}"} for c in range(args.num_classes)]
    evaluators = {b: coco_evaluation.CocoEvaluator(categories, backend=b) for b in backends}
    t0 = time.perf_counter()
    for image in synthetic_images(args.num_images, args.num_classes,
                                  args.detections_per_image, args.seed):
        for evaluator in evaluators.values():
            evaluator.add_image(**image)
    first = evaluators[backends[0]]
    print(f"{first.num_images} images, {len(first.groundtruth)} ground-truth boxes, "
          f"{len(first.detections)} detections, {args.num_classes} classes "
          f"(made and added in {time.perf_counter() - t0:.1f} s)", flush=True)
    seconds: dict[str, list[float]] = {b: [] for b in backends}
    numbers: dict[str, list[float]] = {}
    for _ in range(args.repeats):
        for backend in backends:  # interleaved: a slow moment of the machine hits both
            start = time.perf_counter()
            metrics = evaluators[backend].evaluate(print_summary=False)
            seconds[backend].append(time.perf_counter() - start)
            numbers[backend] = [metrics[key] for key, _ in coco_evaluation.METRICS]
    reference = backends[0]
    base = statistics.median(seconds[reference])
    print(f"mAP {numbers[reference][0]:.4f}, mAP@0.5 {numbers[reference][1]:.4f}, "
          f"AR@100 {numbers[reference][8]:.4f} ({reference})")
    print(f"{'backend':<18} {'seconds':>9} {'speed-up':>9}  12 numbers vs {reference}")
    for backend in backends:
        median = statistics.median(seconds[backend])
        diff = max(abs(a - b) for a, b in zip(numbers[backend], numbers[reference]))
        if backend == reference:
            note = "(reference)"
        elif diff == 0:
            note = "identical (max |diff| 0)"
        else:
            note = f"NOT identical: max |diff| {diff:.3g}"
        print(f"{backend:<18} {median:>9.2f} {base / median:>8.2f}x  {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
