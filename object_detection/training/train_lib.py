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
from object_detection.evaluation import coco_evaluation, eval_images, evaluators
from object_detection.meta_architectures import checkpoint_layout, odapi_checkpoint
from object_detection.training import checkpoints as ckpt_lib
from object_detection.training import distribution, preemption, trainable
from object_detection.utils import config_util
from object_detection.utils.dllogger import DLLogger
from object_detection.utils.errors import ConfigError, DataError

logger = logging.getLogger("object_detection")


# What target assignment reads of a batch.
GROUNDTRUTH_KEYS = (F.groundtruth_boxes, F.groundtruth_classes, F.groundtruth_weights,
                    F.num_groundtruth_boxes)
PREEMPTED = "preempted_replicas"  # train-step output: replicas told to stop (SIGTERM)


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
    eval_backend: str = "pycocotools"  # COCO metrics: pycocotools or faster_coco_eval
    early_stop_patience: int = 0  # stop after N evaluations without improvement (0: never)
    early_stop_metric: str = ""  # what early stopping and best/ watch ("": the headline mAP)
    eval_timeout_s: float = 3600.0  # continuous evaluation: give up after this long idle
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
            train_config = configs["train_config"]
            self.variables = trainable.select(
                self.model, list(train_config.update_trainable_variables),
                list(train_config.freeze_variables))
            if self.variables.frozen:
                logger.info("%s.", self.variables.summary())
            self.optimizer = optimizer_builder.build(
                configs["train_config"],
                amp_float16=options.amp and keras.mixed_precision.global_policy().name
                == "mixed_float16")
            self.optimizer.build(self.variables.trained)
        self.checkpoint = checkpoint_layout.model_checkpoint(self.model, optimizer=self.optimizer)
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
    variables = session.variables.trained
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
        grads = tape.gradient(total, variables)
        return losses, grads

    clip_norm = float(session.configs["train_config"].gradient_clipping_by_norm)
    clip_before_keras_sums = (clip_norm > 0 and engine.optimizer_sums_gradients
                              and engine.num_replicas_in_sync > 1)

    def replica_step(batch, stop):
        targets = assign({k: batch[k] for k in GROUNDTRUTH_KEYS if k in batch})
        num_matches = engine.sum_across_replicas(targets.pop("num_matches"))
        losses, grads = forward_backward(batch[F.image], targets, num_matches)
        grads = engine.aggregate_gradients(grads)
        if clip_before_keras_sums:
            grads = _clip_global_gradient(grads, engine, clip_norm, optimizer)
        optimizer.apply_gradients(zip(grads, variables))
        # Every replica's SIGTERM flag, summed: the same on every worker (see preemption.py).
        # (tf.identity places the flag on the replica's device, where all-reduces start.)
        losses[PREEMPTED] = engine.sum_across_replicas(tf.identity(stop))
        return losses

    @tf.function
    def train_step(iterator, stop=None):
        """One step; `stop`: float32 scalar, 1 when this worker was sent SIGTERM."""
        stop = tf.constant(0.0) if stop is None else stop
        per_replica = engine.run(lambda batch: replica_step(batch, stop), next(iterator))
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
    metric = options.early_stop_metric
    known = ({k for k, _ in coco_evaluation.METRICS} | set(HEADLINE_METRICS)
             | {getattr(LossFields, f) for f in vars(LossFields) if not f.startswith("_")})
    if metric and metric not in known and "/" not in metric:  # "/": a per-category key
        raise ConfigError(f"--early_stop_metric {metric!r}: not a metric of the evaluation; "
                          f"one of {', '.join(sorted(known))}.")
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
    progress = _Progress(session, num_steps, writer)
    stopper = EarlyStopping(options.early_stop_patience, options.early_stop_metric)
    stop_reason = "num_train_steps reached"
    run_start = time.perf_counter()
    step = start
    with preemption.SigtermWatch() as sigterm:
        while step < num_steps:
            t0 = time.perf_counter()
            losses = train_step(iterator, tf.constant(float(sigterm.requested)))
            preempted = float(losses.pop(PREEMPTED)) > 0
            total = float(losses[LossFields.total_loss])  # waits for the step: honest times
            step = session.step
            step_times.append(time.perf_counter() - t0)
            if not math.isfinite(total):
                raise TrainingDivergedError(
                    f"training stopped: the total loss is {total} at step {step} "
                    f"({ {k: float(v) for k, v in losses.items()} }); no checkpoint was "
                    f"written after it; the last good checkpoint is "
                    f"{manager.latest_checkpoint or 'none'}. Lower the learning rate, add "
                    "gradient_clipping_by_norm, or check the input data.")
            if step == start + 1:
                logger.info("first step (tracing and compilation included) took %.1f s",
                            step_times[-1])
            progress.step_done(step, losses, step_times)
            # One worker: stop at the step during which SIGTERM came. Several: at the step
            # whose all-reduce carried it, the same step on every worker.
            if preempted or (engine.num_workers == 1 and sigterm.requested):
                stop_reason = f"SIGTERM: checkpoint saved at step {step}"
                manager.save(checkpoint_number=step)
                engine.barrier()
                print(f"{stop_reason} in {options.model_dir}; exiting (a restart resumes "
                      "from it).", flush=True)
                break
            if step % options.checkpoint_every_n == 0 or step in eval_at or step == num_steps:
                manager.save(checkpoint_number=step)
                engine.barrier()
            if step in eval_at:
                metrics = evaluate(session, step=step)
                reason = stopper.update(step, metrics, options.model_dir,
                                        manager.latest_checkpoint, engine)
                if reason:
                    stop_reason = reason
                    break
    _cleanup_temp_dir(options.model_dir, engine)

    skipped = inputs.DEFAULT_CORRUPT_RECORD_COUNTER
    timed = step_times[1:] or step_times
    if options.benchmark_last_k:
        timed = step_times[-options.benchmark_last_k:]
    summary = {
        "stop_reason": stop_reason,
        "train_throughput": session.global_batch_size * len(timed) / max(sum(timed), 1e-9),
        "train_first_step_s": step_times[0] if step_times else 0.0,
        "train_elapsed_s": time.perf_counter() - run_start,
        "steps": step - start,
        "corrupt_records_skipped": skipped.by_reason.get(inputs.SKIP_CORRUPT, 0),
        "bad_label_records_skipped": skipped.by_reason.get(inputs.SKIP_BAD_LABELS, 0),
    }
    session.report.log([], summary)
    if engine.is_chief:
        if stop_reason != "num_train_steps reached" and not stop_reason.startswith("SIGTERM"):
            print(f"training stopped early: {stop_reason}", flush=True)
        print(f"trained steps {start}..{step}: {summary['train_throughput']:.2f} img/s "
              f"(median step {np.median(timed):.3f} s), first step "
              f"{summary['train_first_step_s']:.1f} s", flush=True)
        if skipped.count:
            print(f"records skipped {skipped.count} times (the input repeats): "
                  f"{_skipped_reasons(skipped.by_reason)}; {len(skipped.records)} distinct: "
                  f"{_first_records(skipped)}", flush=True)
    return {**metrics, **summary}


class _Progress:
    """The progress line, report record and TensorBoard scalars every `log_every_n` steps."""

    def __init__(self, session: Session, num_steps: int, writer):
        self.session, self.num_steps, self.writer = session, num_steps, writer
        self.learning_rate = optimizer_builder.learning_rate_fn(session.optimizer)
        self.interval_start, self.interval_steps = time.perf_counter(), 0

    def step_done(self, step: int, losses: Mapping[str, tf.Tensor],
                  step_times: list[float]) -> None:
        self.interval_steps += 1
        if step % self.session.options.log_every_n and step != self.num_steps:
            return
        session = self.session
        elapsed = time.perf_counter() - self.interval_start
        throughput = session.global_batch_size * self.interval_steps / max(elapsed, 1e-9)
        lr = float(self.learning_rate(step))
        eta = (self.num_steps - step) * float(np.median(step_times[-50:]))
        record = {k.split("/")[-1]: float(v) for k, v in losses.items()}
        record.update(learning_rate=lr, train_throughput=throughput)
        session.report.log(step, record)
        with self.writer.as_default(step=step):
            for k, v in losses.items():
                tf.summary.scalar(k, v)
            tf.summary.scalar("learning_rate", lr)
            tf.summary.scalar("train_throughput", throughput)
        if session.engine.is_chief:
            print(f"step {step}/{self.num_steps}  loss {record['total_loss']:.4f} "
                  f"(cls {record['classification_loss']:.4f} "
                  f"loc {record['localization_loss']:.4f} "
                  f"reg {record['regularization_loss']:.4f})  lr {lr:.5g}  "
                  f"{throughput:.1f} img/s  left {_hms(eta)}", flush=True)
        self.interval_start, self.interval_steps = time.perf_counter(), 0


# The headline number of each metrics set, in the order one is chosen when none is named.
HEADLINE_METRICS = ("mAP", "PascalBoxes_Precision/mAP@0.5IOU",
                    "WeightedPascalBoxes_Precision/mAP@0.5IOU")


def headline_metric(metrics: Mapping[str, float], requested: str = "") -> str | None:
    """The metric `best/` and early stopping watch: `requested`, or the first headline one."""
    if requested:
        return requested
    return next((k for k in HEADLINE_METRICS if k in metrics), None)


def lower_is_better(metric: str) -> bool:
    return "loss" in metric.lower()


class EarlyStopping:
    """Keeps `best/` and stops after `patience` evaluations without improvement (0: never).

    The watched metric is `metric` (a key of the evaluation's metrics, e.g. `mAP`,
    `mAP@0.5`, `PascalBoxes_Precision/mAP@0.5IOU` or `Loss/total_loss`, which is minimized)
    or, when empty, the first metrics set's headline number. The chief decides; every worker
    learns the decision, so all of them stop after the same evaluation.
    """

    def __init__(self, patience: int = 0, metric: str = ""):
        self.patience, self.metric = int(patience), metric
        self.best: float | None = None
        self.best_step: int | None = None
        self.since_best = 0

    def update(self, step: int, metrics: Mapping[str, float], model_dir: str,
               checkpoint: str | None, engine: distribution.Engine) -> str | None:
        """Records an evaluation; returns why training should stop, or None."""
        reason = None
        if engine.is_chief and metrics:
            key = headline_metric(metrics, self.metric)
            if key not in metrics:
                raise ConfigError(
                    f"--early_stop_metric {key!r}: not among the evaluation's metrics "
                    f"({', '.join(sorted(k for k in metrics if '/' not in k or 'Pascal' in k))}"
                    ", ...).")
            value, lower = float(metrics[key]), lower_is_better(key)
            improved = self.best is None or (value < self.best if lower else value > self.best)
            if improved:
                self.best, self.best_step, self.since_best = value, step, 0
                ckpt_lib.keep_best(model_dir, checkpoint, step, dict(metrics), key=key,
                                   higher_is_better=not lower)
            else:
                self.since_best += 1
            if self.patience and self.since_best >= self.patience:
                reason = (f"early stop at step {step}: {key} has not improved for "
                          f"{self.since_best} evaluations (best {self.best:.4f} at step "
                          f"{self.best_step}, kept in {os.path.join(model_dir, 'best')})")
        if engine.num_workers > 1:
            reason = engine.allgather_object(reason)[0]  # the chief's decision
        return reason


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
    """Evaluates the current weights on this worker's share of the eval data.

    Every worker runs the detector on its own shard; the per-image ground truth and detections
    and the validation-loss sums are gathered on every worker, and the chief computes, prints
    and records the metrics of every `eval_config.metrics_set` (COCO by default), the
    validation loss (`Loss/...`: the training loss terms on the evaluation data, batch by
    batch, averaged over images) and the side-by-side pictures (`eval_images`).
    """
    configs, options, engine = session.configs, session.options, session.engine
    model = session.model
    eval_config = configs["eval_config"]
    skipped = inputs.CorruptRecordCounter()
    dataset = dataset_builder.eval_dataset(
        configs, num_shards=engine.num_workers, shard_index=engine.worker_index,
        sample_1_of_n=options.sample_1_of_n_eval_examples, on_corrupt=options.on_corrupt,
        corrupt_counter=skipped)
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

    categories = _categories(configs)
    metric_sets = evaluators.build(
        list(eval_config.metrics_set), categories,
        include_metrics_per_category=options.include_metrics_per_category
        or eval_config.include_metrics_per_category or eval_config.all_metrics_per_category,
        backend=options.eval_backend)
    pictures = eval_images.SideBySide(eval_images.DrawOptions.from_eval_config(eval_config),
                                      label_map_util.create_category_index(categories))
    loss_sums: dict[str, float] = {}
    num_images = 0
    t0 = time.perf_counter()
    with ckpt_lib.moving_average_weights(session.optimizer, eval_config.use_moving_averages):
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
            + (f"every record was skipped ({_skipped_reasons(by_reason)}; see the warnings)."
               if by_reason else "the input holds no record."))
    if not engine.is_chief:
        return {}
    skips = (f", {sum(by_reason.values())} records skipped ({_skipped_reasons(by_reason)})"
             if by_reason else "")
    print(f"evaluation at step {step}: {merged[0].num_images} images{skips} "
          f"({time.perf_counter() - t0:.1f} s)", flush=True)
    validation_loss = {k: v / max(total_images, 1) for k, v in total_losses.items()}
    print("validation loss " + "  ".join(
        f"{k.split('/')[-1]} {v:.4f}" for k, v in validation_loss.items()), flush=True)
    metrics: dict[str, float] = dict(validation_loss)
    tensorboard: dict[str, float] = dict(validation_loss)
    eval_dir = os.path.join(options.model_dir, "eval")
    os.makedirs(eval_dir, exist_ok=True)
    for evaluator in merged:
        values = evaluator.evaluate(print_summary=True)
        metrics.update(values)
        tensorboard.update(evaluators.tensorboard_names(evaluator, values))
        if isinstance(evaluator, coco_evaluation.CocoEvaluator):
            evaluator.write_detections(os.path.join(eval_dir, f"detections_step_{step}.json"))
            if evaluator.include_metrics_per_category:
                evaluator.write_pr_curves(os.path.join(eval_dir, f"pr_curves_step_{step}"))
    session.report.log(step, metrics)
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


def evaluate_checkpoints(configs: Mapping[str, Any], options: RunOptions,
                         engine: distribution.Engine, checkpoint_dir: str,
                         run_once: bool) -> dict[str, float]:
    """Eval-only mode: the newest checkpoint once, or each new one until the last step.

    Continuous evaluation (the OD API's): looks for a new checkpoint at most every
    `eval_config.eval_interval_secs` and gives up after `options.eval_timeout_s` without one.
    """
    check_inputs(configs, options, training=False)
    if run_once and tf.train.latest_checkpoint(checkpoint_dir) is None:
        raise FileNotFoundError(f"--checkpoint_dir {checkpoint_dir}: no checkpoint found.")
    session = Session(configs, options, engine)
    num_steps = int(options.num_train_steps or configs["train_config"].num_steps)
    if run_once:
        path = tf.train.latest_checkpoint(checkpoint_dir)
        _restore_for_evaluation(session, path)
        return evaluate(session, step=session.step)
    metrics: dict[str, float] = {}
    best = EarlyStopping(metric=options.early_stop_metric)  # keeps best/, never stops
    interval = int(configs["eval_config"].eval_interval_secs)
    for path in tf.train.checkpoints_iterator(checkpoint_dir, min_interval_secs=interval,
                                              timeout=options.eval_timeout_s):
        _restore_for_evaluation(session, path)
        metrics = evaluate(session, step=session.step)
        best.update(session.step, metrics, options.model_dir, path, engine)
        if num_steps and session.step >= num_steps:
            break
    else:
        print(f"no new checkpoint in {checkpoint_dir} for {options.eval_timeout_s:.0f} s "
              "(--eval_timeout): evaluation ends.", flush=True)
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
