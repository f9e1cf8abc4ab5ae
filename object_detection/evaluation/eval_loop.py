"""The evaluation pass: the detector over the eval data, into every metrics set, on every worker.

Every worker runs the detector on its own shard; the per-image ground truth and detections and
the validation-loss sums are gathered on every worker, and the chief computes, prints and
records the metrics of every `eval_config.metrics_set` (COCO by default), the validation loss
(`Loss/...`: the training loss terms on the evaluation data, batch by batch, averaged over
images) and the side-by-side pictures (`eval_images`).

The caller owns the model, the distribution engine (anything with `num_workers`,
`worker_index`, `is_chief` and `allgather_object`) and the report (`log(step, record)`).
"""
from __future__ import annotations

import contextlib
import os
import time
from typing import Any, ContextManager, Mapping

import numpy as np
import tensorflow as tf

from object_detection.builders import dataset_builder
from object_detection.core.standard_fields import InputFields as F
from object_detection.core.standard_fields import LossFields
from object_detection.data import inputs, label_map_util
from object_detection.evaluation import coco_evaluation, eval_images, evaluators
from object_detection.meta_architectures.ssd_meta_arch import GROUNDTRUTH_KEYS
from object_detection.utils.errors import DataError


def skipped_reasons(by_reason: Mapping[str, int]) -> str:
    """`reason: n, ...` of skipped records, sorted by reason."""
    return ", ".join(f"{reason}: {n}" for reason, n in sorted(by_reason.items()))


def categories(configs) -> list[dict]:
    """The eval label map's categories, or ids 1..num_classes named by their number."""
    path = configs["eval_input_config"].label_map_path
    num_classes = configs["model"].ssd.num_classes
    if path and os.path.exists(path):
        return label_map_util.create_categories_from_labelmap(path)
    return [{"id": i + 1, "name": str(i + 1)} for i in range(num_classes)]


def evaluate(model, configs: Mapping[str, Any], *, step: int, engine, report, model_dir: str,
             sample_1_of_n: int = 1, on_corrupt: str = "skip",
             include_metrics_per_category: bool = False, backend: str = "pycocotools",
             weights: ContextManager | None = None) -> dict[str, float]:
    """Evaluates `model` on this worker's share of the eval data; the chief's metrics.

    Args:
      step: the training step the metrics are recorded at (report, TensorBoard, file names).
      model_dir: the eval summaries, detections and pictures go to `model_dir/eval`.
      sample_1_of_n: evaluate one example out of every n.
      on_corrupt: what a corrupt record does (`skip` or `stop`, as in training).
      include_metrics_per_category: per-category COCO metrics (also on when eval_config asks).
      backend: the COCO metrics backend (pycocotools or faster_coco_eval).
      weights: a context manager the pass runs inside (e.g. one that swaps in the moving
        averages of the weights).

    Returns:
      The metrics (validation loss included) on the chief; {} on the other workers.
    """
    eval_config = configs["eval_config"]
    skipped = inputs.CorruptRecordCounter()
    dataset = dataset_builder.eval_dataset(
        configs, num_shards=engine.num_workers, shard_index=engine.worker_index,
        sample_1_of_n=sample_1_of_n, on_corrupt=on_corrupt, corrupt_counter=skipped)
    num_examples = int(eval_config.num_examples or 0)

    @tf.function(reduce_retracing=True)  # the last batch of an epoch may be partial
    def detect(images, groundtruth):
        predictions = model(images, training=False)
        targets = model.assign_targets(groundtruth)
        losses = model.losses_from_targets(predictions, targets, targets["num_matches"])
        losses[LossFields.regularization_loss] = tf.add_n(
            [tf.cast(l, tf.float32) for l in model.losses]) if model.losses else tf.constant(0.0)
        losses[LossFields.total_loss] = tf.add_n(list(losses.values()))
        return model.postprocess(predictions), losses

    category_list = categories(configs)
    metric_sets = evaluators.build(
        list(eval_config.metrics_set), category_list,
        include_metrics_per_category=include_metrics_per_category
        or eval_config.include_metrics_per_category or eval_config.all_metrics_per_category,
        backend=backend)
    pictures = eval_images.SideBySide(eval_images.DrawOptions.from_eval_config(eval_config),
                                      label_map_util.create_category_index(category_list))
    loss_sums: dict[str, float] = {}
    num_images = 0
    t0 = time.perf_counter()
    with weights or contextlib.nullcontext():
        for batch in dataset:
            detections, losses = detect(batch[F.image],
                                        {k: batch[k] for k in GROUNDTRUTH_KEYS if k in batch})
            detections = {k: v.numpy() for k, v in detections.items()}
            batch = {k: v.numpy() for k, v in batch.items()}  # once, for every consumer
            size = len(batch[F.source_id])
            num_images += size
            for k, v in losses.items():  # image-weighted: a partial last batch counts less
                loss_sums[k] = loss_sums.get(k, 0.0) + size * float(v)
            for evaluator in metric_sets:
                _add_batch(evaluator, batch, detections)
            if pictures.wanted:
                _add_pictures(pictures, batch, detections)
            if num_examples and metric_sets[0].num_images * engine.num_workers >= num_examples:
                break
    gathered = engine.allgather_object(([e.state() for e in metric_sets], skipped.by_reason,
                                        loss_sums, num_images))
    merged = []
    for i, evaluator in enumerate(metric_sets):
        fresh = evaluators.rebuild(evaluator)
        fresh.merge([states[i] for states, _, _, _ in gathered])
        merged.append(fresh)
    by_reason: dict[str, int] = {}  # every worker's skips
    total_losses: dict[str, float] = {}
    total_images = 0
    for _, worker_skips, worker_losses, worker_images in gathered:
        for reason, n in worker_skips.items():
            by_reason[reason] = by_reason.get(reason, 0) + n
        for k, v in worker_losses.items():
            total_losses[k] = total_losses.get(k, 0.0) + v
        total_images += worker_images
    if not merged[0].num_images:
        raise DataError(
            "eval_input_reader: no image to evaluate: "
            + (f"every record was skipped ({skipped_reasons(by_reason)}; see the warnings)."
               if by_reason else "the input holds no record."))
    if not engine.is_chief:
        return {}
    skips = (f", {sum(by_reason.values())} records skipped ({skipped_reasons(by_reason)})"
             if by_reason else "")
    print(f"evaluation at step {step}: {merged[0].num_images} images{skips} "
          f"({time.perf_counter() - t0:.1f} s)", flush=True)
    validation_loss = {k: v / max(total_images, 1) for k, v in total_losses.items()}
    print("validation loss " + "  ".join(
        f"{k.split('/')[-1]} {v:.4f}" for k, v in validation_loss.items()), flush=True)
    metrics: dict[str, float] = dict(validation_loss)
    tensorboard: dict[str, float] = dict(validation_loss)
    eval_dir = os.path.join(model_dir, "eval")
    os.makedirs(eval_dir, exist_ok=True)
    for evaluator in merged:
        values = evaluator.evaluate(print_summary=True)
        metrics.update(values)
        tensorboard.update(evaluators.tensorboard_names(evaluator, values))
        if isinstance(evaluator, coco_evaluation.CocoEvaluator):
            evaluator.write_detections(os.path.join(eval_dir, f"detections_step_{step}.json"))
            if evaluator.include_metrics_per_category:
                evaluator.write_pr_curves(os.path.join(eval_dir, f"pr_curves_step_{step}"))
    report.log(step, metrics)
    with tf.summary.create_file_writer(eval_dir).as_default(step=step):
        for name, value in tensorboard.items():
            tf.summary.scalar(name, value)
    pictures.write(eval_dir, step)
    return metrics


def _add_pictures(pictures: eval_images.SideBySide, batch: Mapping[str, np.ndarray],
                  detections: Mapping[str, np.ndarray]) -> None:
    for i in range(len(batch[F.source_id])):
        if not pictures.wanted:
            return
        pictures.add(
            source_id=batch[F.source_id][i], image=batch[F.image][i],
            groundtruth_boxes=batch[F.groundtruth_boxes][i],
            groundtruth_classes=batch[F.groundtruth_classes][i],
            num_groundtruth_boxes=int(batch[F.num_groundtruth_boxes][i]),
            detection_boxes=detections["detection_boxes"][i],
            detection_scores=detections["detection_scores"][i],
            detection_classes=detections["detection_classes"][i].astype(np.int64),
            num_detections=int(detections["num_detections"][i]))


def _add_batch(evaluator, batch: Mapping[str, np.ndarray],
               detections: Mapping[str, np.ndarray]) -> None:
    """Adds every image of a batch (numpy, already on the host) to an evaluator."""
    optional = {name: batch.get(key) for name, key in (
        ("groundtruth_is_crowd", F.groundtruth_is_crowd),
        ("groundtruth_area", F.groundtruth_area),
        ("groundtruth_difficult", F.groundtruth_difficult))}
    for i in range(len(batch[F.source_id])):
        evaluator.add_image(
            source_id=batch[F.source_id][i],
            original_shape=batch[F.original_image_spatial_shape][i],
            groundtruth_boxes=batch[F.groundtruth_boxes][i],
            groundtruth_classes=batch[F.groundtruth_classes][i],
            num_groundtruth_boxes=int(batch[F.num_groundtruth_boxes][i]),
            detection_boxes=detections["detection_boxes"][i],
            detection_scores=detections["detection_scores"][i],
            detection_classes=detections["detection_classes"][i],
            num_detections=int(detections["num_detections"][i]),
            **{name: None if value is None else value[i] for name, value in optional.items()})
