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
import dataclasses
import os
import time
from typing import Any, ContextManager, Mapping

import numpy as np
import tensorflow as tf

from object_detection.builders import dataset_builder, plan_builder
from object_detection.core.standard_fields import CLASS_ID_OFFSET
from object_detection.core.standard_fields import InputFields as F
from object_detection.core.standard_fields import LossFields
from object_detection.core.standard_fields import TargetFields as T
from object_detection.data import inputs, label_map_util
from object_detection.evaluation import coco_evaluation, eval_images, evaluators
from object_detection.meta_architectures.ssd_meta_arch import GROUNDTRUTH_KEYS
from object_detection.utils.errors import DataError
from object_detection.utils.log import console_line


def skipped_reasons(by_reason: Mapping[str, int]) -> str:
    """`reason: n, ...` of skipped records, sorted by reason."""
    return ", ".join(f"{reason}: {n}" for reason, n in sorted(by_reason.items()))


def categories(plans: plan_builder.RunPlans) -> list[dict]:
    """The eval label map's categories, or ids 1..num_classes named by their number."""
    path = plans.eval_input.label_map_path if plans.eval_input is not None else ""
    if path and os.path.exists(path):
        return label_map_util.create_categories_from_labelmap(path)
    return [{"id": i + CLASS_ID_OFFSET, "name": str(i + CLASS_ID_OFFSET)}
            for i in range(plans.num_classes)]


@dataclasses.dataclass
class _Totals:
    """A worker's share of a pass (or every worker's, summed): the validation-loss sums
    (image-weighted), the images they cover and the skipped records by reason."""

    loss_sums: dict[str, float] = dataclasses.field(default_factory=dict)
    num_images: int = 0
    skipped: dict[str, int] = dataclasses.field(default_factory=dict)

    def add(self, other: _Totals) -> None:
        for k, v in other.loss_sums.items():
            self.loss_sums[k] = self.loss_sums.get(k, 0.0) + v
        self.num_images += other.num_images
        for reason, n in other.skipped.items():
            self.skipped[reason] = self.skipped.get(reason, 0) + n


def evaluate(model, configs: Mapping[str, Any], plans: plan_builder.RunPlans, *, step: int,
             engine, report, model_dir: str, sample_1_of_n: int = 1, on_corrupt: str = "skip",
             include_metrics_per_category: bool = False, backend: str = "pycocotools",
             weights: ContextManager | None = None) -> dict[str, float]:
    """Evaluates `model` on this worker's share of the eval data; the chief's metrics.

    Args:
      configs: the pipeline's configs, for the eval input's builder (`dataset_builder`).
      plans: `plan_builder.build(configs)`: what `eval_config` asks and the label map.
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

    Raises:
      DataError: no worker had an image to evaluate.
    """
    skipped = inputs.CorruptRecordCounter()
    dataset = dataset_builder.eval_dataset(
        configs, num_shards=engine.num_workers, shard_index=engine.worker_index,
        sample_1_of_n=sample_1_of_n, on_corrupt=on_corrupt, corrupt_counter=skipped)
    category_list = categories(plans)
    metric_sets = evaluators.build(
        list(plans.eval.metrics_set), category_list,
        include_metrics_per_category=include_metrics_per_category
        or plans.eval.include_metrics_per_category, backend=backend)
    pictures = eval_images.SideBySide(plans.eval.visualization,
                                      label_map_util.create_category_index(category_list))
    t0 = time.perf_counter()
    with weights or contextlib.nullcontext():
        local = _run_detector(model, dataset, metric_sets, pictures,
                              stop_after=plans.eval.num_examples,
                              num_workers=engine.num_workers)
    local.skipped = dict(skipped.by_reason)
    merged, totals = _gather(engine, metric_sets, local)
    if not merged[0].num_images:
        raise DataError(
            "eval_input_reader: no image to evaluate: "
            + (f"every record was skipped ({skipped_reasons(totals.skipped)}; see the "
               "warnings)." if totals.skipped else "the input holds no record."))
    if not engine.is_chief:
        return {}
    skips = (f", {sum(totals.skipped.values())} records skipped "
             f"({skipped_reasons(totals.skipped)})" if totals.skipped else "")
    console_line(f"evaluation at step {step}: {merged[0].num_images} images{skips} "
                 f"({time.perf_counter() - t0:.1f} s)")
    metrics = _metrics_and_outputs(merged, totals, step, report,
                                   os.path.join(model_dir, "eval"))
    pictures.write(os.path.join(model_dir, "eval"), step)
    return metrics


def _run_detector(model, dataset: tf.data.Dataset, metric_sets: list,
                  pictures: eval_images.SideBySide, *, stop_after: int,
                  num_workers: int) -> _Totals:
    """Runs the detector over `dataset` into every evaluator and the pictures; this worker's
    validation-loss sums. Stops once the workers have seen `stop_after` images (0: never)."""

    # Traced as written (no AutoGraph, like the train step); the last batch may be partial.
    @tf.function(reduce_retracing=True, autograph=False)
    def detect(images, groundtruth):
        predictions = model(images, training=False)
        targets = model.assign_targets(groundtruth)
        losses = model.losses_from_targets(predictions, targets, targets[T.num_matches])
        losses[LossFields.regularization_loss] = model.regularization_loss()
        losses[LossFields.total_loss] = tf.add_n(list(losses.values()))
        return model.postprocess(predictions), losses

    totals = _Totals()
    for batch in dataset:
        detections, losses = detect(batch[F.image],
                                    {k: batch[k] for k in GROUNDTRUTH_KEYS if k in batch})
        detections = {k: v.numpy() for k, v in detections.items()}
        batch = {k: v.numpy() for k, v in batch.items()}  # once, for every consumer
        size = len(batch[F.source_id])
        totals.num_images += size
        for k, v in losses.items():  # image-weighted: a partial last batch counts less
            totals.loss_sums[k] = totals.loss_sums.get(k, 0.0) + size * float(v)
        for evaluator in metric_sets:
            _add_batch(evaluator, batch, detections)
        if pictures.wanted:
            _add_pictures(pictures, batch, detections)
        if stop_after and metric_sets[0].num_images * num_workers >= stop_after:
            break
    return totals


def _gather(engine, metric_sets: list, local: _Totals) -> tuple[list, _Totals]:
    """Every worker's evaluator states merged into fresh evaluators (one per metrics set),
    and every worker's totals summed; the same on every worker."""
    gathered = engine.allgather_object(([e.state() for e in metric_sets], local))
    merged = []
    for i, evaluator in enumerate(metric_sets):
        fresh = evaluators.rebuild(evaluator)
        fresh.merge([states[i] for states, _ in gathered])
        merged.append(fresh)
    totals = _Totals()
    for _, worker_totals in gathered:
        totals.add(worker_totals)
    return merged, totals


def _metrics_and_outputs(merged: list, totals: _Totals, step: int, report,
                         eval_dir: str) -> dict[str, float]:
    """The chief's metrics: validation loss and every metrics set, printed, recorded in the
    report and TensorBoard, and the COCO detections (and PR curves) written to `eval_dir`."""
    validation_loss = {k: v / max(totals.num_images, 1) for k, v in totals.loss_sums.items()}
    console_line("validation loss " + "  ".join(
        f"{k.split('/')[-1]} {v:.4f}" for k, v in validation_loss.items()))
    metrics: dict[str, float] = dict(validation_loss)
    tensorboard: dict[str, float] = dict(validation_loss)
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
