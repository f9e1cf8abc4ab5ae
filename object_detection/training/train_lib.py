"""The custom TF 2 training and evaluation loops behind `model_main`.

One code path for every engine (see `distribution.py`):

    batch -> assign_targets (anchors x ground truth; jit with --allow_xla)
          -> global number of matches (sum over replicas)
          -> forward + losses + gradients (jit with --allow_xla)
          -> gradients summed over replicas -> optimizer update

Per-replica loss = (local classification + localization sums) / global matches
                   + regularization / num_replicas_in_sync;
gradients are summed over replicas, so an update does not depend on how the global batch is
split. The loss is checked on the host after every step: a NaN or infinite value stops the run
with the step named, before any checkpoint of the diverged weights is written.

Checkpoints live in `model_dir` (CheckpointManager, keep N, written by the chief only; the
`checkpoint` index file is replaced atomically after the data files are complete, so a process
killed while saving leaves the previous checkpoint usable). Training resumes from the newest one
by itself; `fine_tune_checkpoint` is read only when `model_dir` has none.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import os
import shutil
import time
from typing import Any, Mapping

import keras
import numpy as np
import tensorflow as tf

from object_detection.builders import dataset_builder, model_builder, optimizer_builder
from object_detection.core.standard_fields import InputFields as F
from object_detection.core.standard_fields import LossFields
from object_detection.data import inputs, label_map_util
from object_detection.evaluation import coco_evaluation
from object_detection.meta_architectures import odapi_checkpoint
from object_detection.training import checkpoints as ckpt_lib
from object_detection.training import distribution
from object_detection.training.dllogger import DLLogger
from object_detection.utils import config_util
from object_detection.utils.errors import ConfigError, DataError

logger = logging.getLogger("object_detection")


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite."""


@dataclasses.dataclass
class RunOptions:
    """What `model_main` asks of a run (flags of the seed plus ours)."""

    model_dir: str
    num_train_steps: int | None = None  # None: train_config.num_steps
    eval_count: int = 1  # evaluations spread over training (0: none)
    amp: bool = False
    allow_xla: bool = False
    raport_file: str | None = None
    sample_1_of_n_eval_examples: int = 1
    checkpoint_every_n: int = 1000
    keep_checkpoint_max: int = 5
    log_every_n: int = 10
    on_corrupt: str = "skip"
    include_metrics_per_category: bool = False
    random_data: bool = False  # benchmark: synthetic batches, no dataset needed
    benchmark_last_k: int = 0  # report the mean img/s of the last K steps (0: all but the first)


# --------------------------------------------------------------------------------------------
# Model, optimizer and checkpoint state.


class Session:
    """Everything a run holds: engine, model, optimizer, checkpoint, logs."""

    def __init__(self, configs: Mapping[str, Any], options: RunOptions,
                 engine: distribution.Engine):
        self.configs = configs
        self.options = options
        self.engine = engine
        self.sync_batch_norm = sync_batch_norm_fields(configs["model"])  # field paths
        synced = self.sync_batch_norm and engine.num_replicas_in_sync > 1
        if synced and not engine.optimizer_sums_gradients:
            raise ConfigError(
                f"{self.sync_batch_norm[0]}: synchronized batch norm runs under tf.distribute (--engine tf, "
                f"one process per host with MirroredStrategy or MultiWorkerMirroredStrategy); "
                f"with {engine.name} each of the {engine.num_replicas_in_sync} ranks would "
                "normalize with its own batch only. Use --engine tf, or batch_norm.")
        with engine.scope():
            self.model = model_builder.build(configs["model"], is_training=True)
            self.model.build()
            self.optimizer = optimizer_builder.build(
                configs["train_config"],
                amp_float16=options.amp and keras.mixed_precision.global_policy().name
                == "mixed_float16")
            self.optimizer.build(self.model.trainable_variables)
        self.checkpoint = ckpt_lib.model_checkpoint(self.model, optimizer=self.optimizer)
        self.report = DLLogger(options.raport_file if engine.is_chief else None)

    @property
    def global_batch_size(self) -> int:
        return int(self.configs["train_config"].batch_size) * self.engine.num_replicas_in_sync

    @property
    def step(self) -> int:
        return int(self.optimizer.iterations.numpy())


def _chief_or_temp_dir(model_dir: str, engine: distribution.Engine) -> str:
    """tf.distribute workers all take part in saving; only the chief writes into model_dir."""
    if engine.is_chief:
        return model_dir
    return os.path.join(model_dir, ".tmp_worker_%d" % engine.worker_index)


# --------------------------------------------------------------------------------------------
# Train step.


def make_train_step(session: Session):
    """Builds the tf.function that runs one step on every replica and sums their losses."""
    model, optimizer, engine = session.model, session.optimizer, session.engine
    num_replicas = float(engine.num_replicas_in_sync)
    jit = bool(session.options.allow_xla)
    loss_scaling = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)

    @tf.function(jit_compile=jit)
    def assign(groundtruth):
        return model.assign_targets(groundtruth)

    # A synchronized batch norm all-reduces inside the forward pass, which tf.distribute
    # cannot do from a nested tf.function: the pass is then traced into the train step itself.
    sync_bn = engine.num_replicas_in_sync > 1 and bool(session.sync_batch_norm)
    if sync_bn and jit:
        logger.warning("--allow_xla: the forward and backward pass is not compiled with "
                       "sync_batch_norm across %d replicas.", engine.num_replicas_in_sync)
    nested = (lambda fn: fn) if sync_bn else tf.function(jit_compile=jit)

    @nested
    def forward_backward(images, targets, num_matches):
        with tf.GradientTape() as tape:
            predictions = model(images, training=True)
            losses = model.losses_from_targets(predictions, targets, num_matches)
            regularization = tf.add_n([tf.cast(l, tf.float32) for l in model.losses]) \
                if model.losses else tf.constant(0.0)
            losses[LossFields.regularization_loss] = regularization / num_replicas
            total = tf.add_n(list(losses.values()))
            losses[LossFields.total_loss] = total
            if loss_scaling:
                total = optimizer.scale_loss(total)
        grads = tape.gradient(total, model.trainable_variables)
        return losses, grads

    groundtruth_keys = (F.groundtruth_boxes, F.groundtruth_classes, F.groundtruth_weights,
                        F.num_groundtruth_boxes)

    clip_norm = float(session.configs["train_config"].gradient_clipping_by_norm)
    clip_before_keras_sums = (clip_norm > 0 and engine.optimizer_sums_gradients
                              and engine.num_replicas_in_sync > 1)

    def replica_step(batch):
        targets = assign({k: batch[k] for k in groundtruth_keys if k in batch})
        num_matches = engine.sum_across_replicas(targets.pop("num_matches"))
        losses, grads = forward_backward(batch[F.image], targets, num_matches)
        grads = engine.aggregate_gradients(grads)
        if clip_before_keras_sums:
            grads = _clip_global_gradient(grads, engine, clip_norm, optimizer)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return losses

    @tf.function
    def train_step(iterator):
        per_replica = engine.run(replica_step, next(iterator))
        return {k: engine.reduce_sum(v) for k, v in per_replica.items()}

    return train_step


def sync_batch_norm_fields(config, path: str = "model") -> list[str]:
    """The field paths of every `sync_batch_norm` set in a config message (e.g. the model)."""
    found = []
    for field, value in config.ListFields():
        if field.name == "sync_batch_norm":
            found.append(f"{path}.sync_batch_norm")
        elif field.message_type is not None:
            if hasattr(value, "ListFields"):
                found += sync_batch_norm_fields(value, f"{path}.{field.name}")
            else:  # repeated
                for i, item in enumerate(value):
                    found += sync_batch_norm_fields(item, f"{path}.{field.name}[{i}]")
    return found


def _clip_global_gradient(grads, engine: distribution.Engine, clip_norm: float, optimizer):
    """`gradient_clipping_by_norm` on the sum of every replica's gradient (tf.distribute).

    Keras clips (`global_clipnorm`) before it sums the replicas' gradients, so each replica's
    clip would see only its share. Here the gradients are summed first and the global gradient
    is clipped; each replica then hands 1/N of it to the optimizer, whose own clip is a no-op
    on it (norm <= clip_norm / N) and whose sum gives back the clipped global gradient. The
    price is one more all-reduce per step, only when clipping with several replicas.
    Under float16 loss scaling the gradients are still scaled, and so is the norm bound.
    """
    present = [i for i, g in enumerate(grads) if g is not None]
    summed = engine.sum_across_replicas([grads[i] for i in present])
    bound = clip_norm
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        bound = clip_norm * tf.cast(optimizer.dynamic_scale, tf.float32)
    clipped, _ = tf.clip_by_global_norm(summed, bound)
    share = 1.0 / engine.num_replicas_in_sync
    out = list(grads)
    for i, g in zip(present, clipped):
        out[i] = g * tf.cast(share, g.dtype)
    return out


def _random_dataset_fn(session: Session):
    """Synthetic batches (benchmarks): random images, one random box per image."""
    height, width = session.model.image_size
    batch = int(session.configs["train_config"].batch_size)
    max_boxes = int(session.configs["train_config"].max_number_of_boxes) or 100

    def dataset_fn(input_context=None):
        rng = np.random.default_rng(0)
        images = rng.uniform(0, 255, [batch, height, width, 3]).astype(np.float32)
        boxes = np.zeros([batch, max_boxes, 4], np.float32)
        boxes[:, 0] = [0.2, 0.2, 0.7, 0.6]
        example = {
            F.image: images,
            F.groundtruth_boxes: boxes,
            F.groundtruth_classes: np.zeros([batch, max_boxes], np.int32),
            F.groundtruth_weights: np.ones([batch, max_boxes], np.float32),
            F.num_groundtruth_boxes: np.ones([batch], np.int32),
        }
        return tf.data.Dataset.from_tensors(example).repeat()

    return dataset_fn


# --------------------------------------------------------------------------------------------
# Training loop.


def _eval_steps(num_steps: int, start: int, eval_count: int) -> list[int]:
    """Steps after which to evaluate: `eval_count` points spread evenly up to num_steps."""
    if eval_count <= 0:
        return []
    points = sorted({max(1, round(num_steps * i / eval_count)) for i in range(1, eval_count + 1)})
    return [p for p in points if p > start]


def check_inputs(configs: Mapping[str, Any], options: RunOptions, *,
                 training: bool = True):
    """What the run will read, checked before anything is built, so a wrong path fails in
    seconds rather than after the model is built (or, for the eval reader, hours later).

    Checks the training reader (unless `random_data`), the eval reader (when the run
    evaluates) and, for a fresh `model_dir`, `train_config.fine_tune_checkpoint`.

    Returns:
      The training dataset_fn (checking the reader builds it), or None (`random_data`, or
      not `training`).

    Raises:
      ConfigError / FileNotFoundError: naming the field or flag at fault.
    """
    dataset_fn = None
    if training and not options.random_data:
        dataset_fn = dataset_builder.train_dataset_fn(configs, on_corrupt=options.on_corrupt)
    if not training or options.eval_count > 0:
        dataset_builder.check_eval_input(configs)
    fine_tune = configs["train_config"].fine_tune_checkpoint
    if training and fine_tune and not tf.train.latest_checkpoint(options.model_dir):
        ckpt_lib.resolve_fine_tune_checkpoint(fine_tune)
    return dataset_fn


def train(configs: Mapping[str, Any], options: RunOptions,
          engine: distribution.Engine) -> dict[str, Any]:
    """Trains to `num_train_steps`, evaluating `eval_count` times; returns the last metrics."""
    dataset_fn = check_inputs(configs, options)
    session = Session(configs, options, engine)
    train_config = configs["train_config"]
    num_steps = int(options.num_train_steps or train_config.num_steps)
    if num_steps <= 0:
        raise ConfigError(
            "train_config.num_steps: is 0 and --num_train_steps is not given; set one of them.")
    os.makedirs(options.model_dir, exist_ok=True)
    manager = tf.train.CheckpointManager(
        session.checkpoint, _chief_or_temp_dir(options.model_dir, engine),
        max_to_keep=options.keep_checkpoint_max, step_counter=session.optimizer.iterations)
    restored = ckpt_lib.restore_or_initialize(session, options.model_dir)
    engine.broadcast_initial_state(
        list(session.model.variables) + list(session.optimizer.variables))
    start = session.step
    if engine.is_chief:
        config_util.save_pipeline_config(
            config_util.create_pipeline_proto_from_configs(configs), options.model_dir)
        session.report.log("PARAMETER", {
            "num_train_steps": num_steps,
            "global_batch_size": session.global_batch_size, "engine": engine.name,
            "replicas": engine.num_replicas_in_sync, "amp": options.amp,
            "dtype_policy": keras.mixed_precision.global_policy().name,
            "allow_xla": options.allow_xla, "resumed_from_step": start if restored else 0})
    if start >= num_steps:
        logger.info("model_dir already holds step %d >= %d: nothing to train.", start, num_steps)
        return {}

    if options.random_data:
        dataset_fn = _random_dataset_fn(session)
    iterator = iter(engine.distribute_dataset(dataset_fn))
    train_step = make_train_step(session)
    eval_at = _eval_steps(num_steps, start, options.eval_count)
    writer = tf.summary.create_file_writer(os.path.join(options.model_dir, "train")) \
        if engine.is_chief else tf.summary.create_noop_writer()

    metrics: dict[str, Any] = {}
    step_times: list[float] = []
    interval_start, interval_steps = time.perf_counter(), 0
    run_start = time.perf_counter()
    learning_rate = optimizer_builder.learning_rate_fn(session.optimizer)
    step = start
    while step < num_steps:
        t0 = time.perf_counter()
        losses = train_step(iterator)
        total = float(losses[LossFields.total_loss])  # waits for the step: times are honest
        step = session.step
        step_times.append(time.perf_counter() - t0)
        if not math.isfinite(total):
            last = manager.latest_checkpoint
            raise TrainingDivergedError(
                f"training stopped: the total loss is {total} at step {step} "
                f"({ {k: float(v) for k, v in losses.items()} }); no checkpoint was written "
                f"after it; the last good checkpoint is {last or 'none'}. Lower the learning "
                f"rate, add gradient_clipping_by_norm, or check the input data.")
        interval_steps += 1
        if step == start + 1:
            logger.info("first step (tracing and compilation included) took %.1f s",
                        step_times[-1])
        if step % options.log_every_n == 0 or step == num_steps:
            elapsed = time.perf_counter() - interval_start
            throughput = session.global_batch_size * interval_steps / max(elapsed, 1e-9)
            lr = float(learning_rate(step))
            recent = step_times[-min(len(step_times), 50):]
            eta = (num_steps - step) * float(np.median(recent))
            record = {k.split("/")[-1]: float(v) for k, v in losses.items()}
            record.update(learning_rate=lr, train_throughput=throughput)
            session.report.log(step, record)
            with writer.as_default(step=step):
                for k, v in losses.items():
                    tf.summary.scalar(k, v)
                tf.summary.scalar("learning_rate", lr)
                tf.summary.scalar("train_throughput", throughput)
            if engine.is_chief:
                print(f"step {step}/{num_steps}  loss {total:.4f} "
                      f"(cls {record['classification_loss']:.4f} "
                      f"loc {record['localization_loss']:.4f} "
                      f"reg {record['regularization_loss']:.4f})  lr {lr:.5g}  "
                      f"{throughput:.1f} img/s  left {_hms(eta)}", flush=True)
            interval_start, interval_steps = time.perf_counter(), 0
        if step % options.checkpoint_every_n == 0 or step in eval_at or step == num_steps:
            manager.save(checkpoint_number=step)
            engine.barrier()
        if step in eval_at:
            metrics = evaluate(session, step=step)
            if engine.is_chief and metrics:
                ckpt_lib.keep_best(options.model_dir, manager.latest_checkpoint, step, metrics)
    _cleanup_temp_dir(options.model_dir, engine)

    skipped = inputs.DEFAULT_CORRUPT_RECORD_COUNTER
    timed = step_times[1:] or step_times
    if options.benchmark_last_k:
        timed = step_times[-options.benchmark_last_k:]
    summary = {
        "train_throughput": session.global_batch_size * len(timed) / max(sum(timed), 1e-9),
        "train_first_step_s": step_times[0] if step_times else 0.0,
        "train_elapsed_s": time.perf_counter() - run_start,
        "steps": step - start,
        "corrupt_records_skipped": skipped.by_reason.get(inputs.SKIP_CORRUPT, 0),
        "bad_label_records_skipped": skipped.by_reason.get(inputs.SKIP_BAD_LABELS, 0),
    }
    session.report.log([], summary)
    if engine.is_chief:
        print(f"trained steps {start}..{step}: {summary['train_throughput']:.2f} img/s "
              f"(median step {np.median(timed):.3f} s), first step "
              f"{summary['train_first_step_s']:.1f} s", flush=True)
        if skipped.count:
            print(f"records skipped {skipped.count} times (the input repeats): "
                  f"{_skipped_reasons(skipped.by_reason)}; {len(skipped.records)} distinct: "
                  f"{_first_records(skipped)}", flush=True)
    return {**metrics, **summary}


def _skipped_reasons(by_reason: Mapping[str, int]) -> str:
    return ", ".join(f"{reason}: {n}" for reason, n in sorted(by_reason.items()))


def _first_records(counter: inputs.CorruptRecordCounter, k: int = 5) -> str:
    distinct = sorted(counter.records)  # distinct already
    return ", ".join(f"{f} record {i}" for f, i in distinct[:k]) + (
        " ..." if len(distinct) > k else "")


def _cleanup_temp_dir(model_dir: str, engine: distribution.Engine) -> None:
    if not engine.is_chief:
        shutil.rmtree(_chief_or_temp_dir(model_dir, engine), ignore_errors=True)


def _hms(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


# --------------------------------------------------------------------------------------------
# Evaluation.


def _categories(configs) -> list[dict]:
    path = configs["eval_input_config"].label_map_path
    num_classes = configs["model"].ssd.num_classes
    if path and os.path.exists(path):
        return label_map_util.create_categories_from_labelmap(path)
    return [{"id": i + 1, "name": str(i + 1)} for i in range(num_classes)]


def evaluate(session: Session, step: int) -> dict[str, float]:
    """COCO evaluation of the current weights on this worker's share of the eval data.

    Every worker runs the detector on its own shard; the per-image ground truth and detections
    are gathered on every worker, and the chief computes and prints the metrics.
    """
    configs, options, engine = session.configs, session.options, session.engine
    model = session.model
    skipped = inputs.CorruptRecordCounter()
    dataset = dataset_builder.eval_dataset(
        configs, num_shards=engine.num_workers, shard_index=engine.worker_index,
        sample_1_of_n=options.sample_1_of_n_eval_examples, on_corrupt=options.on_corrupt,
        corrupt_counter=skipped)
    num_examples = int(configs["eval_config"].num_examples or 0)

    @tf.function(reduce_retracing=True)  # the last batch of an epoch may be partial
    def detect(images):
        return model.postprocess(model(images, training=False))

    evaluator = coco_evaluation.CocoEvaluator(
        _categories(configs), include_metrics_per_category=options.include_metrics_per_category
        or configs["eval_config"].include_metrics_per_category)
    t0 = time.perf_counter()
    with ckpt_lib.moving_average_weights(session.optimizer,
                                         configs["eval_config"].use_moving_averages):
        for batch in dataset:
            detections = {k: v.numpy() for k, v in detect(batch[F.image]).items()}
            _add_batch(evaluator, batch, detections)
            if num_examples and evaluator.num_images * engine.num_workers >= num_examples:
                break
    gathered = engine.allgather_object((evaluator.state(), skipped.by_reason))
    evaluator = coco_evaluation.CocoEvaluator(evaluator.categories,
                                              evaluator.include_metrics_per_category)
    evaluator.merge([state for state, _ in gathered])
    by_reason: dict[str, int] = {}  # every worker's skips
    for _, worker_skips in gathered:
        for reason, n in worker_skips.items():
            by_reason[reason] = by_reason.get(reason, 0) + n
    if not evaluator.num_images:
        raise DataError(
            "eval_input_reader: no image to evaluate: "
            + (f"every record was skipped ({_skipped_reasons(by_reason)}; see the warnings)."
               if by_reason else "the input holds no record."))
    if not engine.is_chief:
        return {}
    skips = (f", {sum(by_reason.values())} records skipped ({_skipped_reasons(by_reason)})"
             if by_reason else "")
    print(f"evaluation at step {step}: {evaluator.num_images} images{skips} "
          f"({time.perf_counter() - t0:.1f} s)", flush=True)
    metrics = evaluator.evaluate(print_summary=True)
    eval_dir = os.path.join(options.model_dir, "eval")
    os.makedirs(eval_dir, exist_ok=True)
    evaluator.write_detections(os.path.join(eval_dir, f"detections_step_{step}.json"))
    session.report.log(step, metrics)
    with tf.summary.create_file_writer(eval_dir).as_default(step=step):
        for name, value in coco_evaluation.od_api_metric_names(metrics).items():
            tf.summary.scalar(name, value)
    return metrics


def _add_batch(evaluator, batch, detections) -> None:
    valid = batch.get("valid")
    images = batch[F.source_id].numpy()
    for i in range(len(images)):
        if valid is not None and not bool(valid[i]):
            continue
        evaluator.add_image(
            source_id=images[i],
            original_shape=batch[F.original_image_spatial_shape][i].numpy(),
            groundtruth_boxes=batch[F.groundtruth_boxes][i].numpy(),
            groundtruth_classes=batch[F.groundtruth_classes][i].numpy(),
            num_groundtruth_boxes=int(batch[F.num_groundtruth_boxes][i]),
            groundtruth_is_crowd=batch[F.groundtruth_is_crowd][i].numpy()
            if F.groundtruth_is_crowd in batch else None,
            groundtruth_area=batch[F.groundtruth_area][i].numpy()
            if F.groundtruth_area in batch else None,
            detection_boxes=detections["detection_boxes"][i],
            detection_scores=detections["detection_scores"][i],
            detection_classes=detections["detection_classes"][i],
            num_detections=int(detections["num_detections"][i]),
        )


def evaluate_checkpoints(configs: Mapping[str, Any], options: RunOptions,
                         engine: distribution.Engine, checkpoint_dir: str,
                         run_once: bool, timeout_s: float = 3600.0) -> dict[str, float]:
    """Eval-only mode: the newest checkpoint once, or each new one until the last step."""
    check_inputs(configs, options, training=False)
    if run_once and tf.train.latest_checkpoint(checkpoint_dir) is None:
        raise FileNotFoundError(f"--checkpoint_dir {checkpoint_dir}: no checkpoint found.")
    session = Session(configs, options, engine)
    num_steps = int(options.num_train_steps or configs["train_config"].num_steps)
    metrics: dict[str, float] = {}
    if run_once:
        path = tf.train.latest_checkpoint(checkpoint_dir)
        _restore_for_evaluation(session, path)
        return evaluate(session, step=session.step)
    for path in tf.train.checkpoints_iterator(checkpoint_dir, timeout=timeout_s):
        _restore_for_evaluation(session, path)
        metrics = evaluate(session, step=session.step)
        if engine.is_chief and metrics:
            ckpt_lib.keep_best(options.model_dir, path, session.step, metrics)
        if num_steps and session.step >= num_steps:
            break
    return metrics


def _restore_for_evaluation(session: Session, path: str) -> None:
    """Model weights (and the step) of a checkpoint of this project or of the OD API's."""
    if odapi_checkpoint.is_odapi_checkpoint(path):
        report = odapi_checkpoint.restore(session.model, path)
        logger.info("evaluating the OD API checkpoint %s: %s", path, report.summary())
        if report.step is not None:
            session.optimizer.iterations.assign(report.step)
        return
    session.checkpoint.restore(path).expect_partial()
