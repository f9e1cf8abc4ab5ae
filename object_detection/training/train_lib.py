"""The custom TF 2 training loop behind `model_main`, and its evaluation-only mode.

    train():  check the inputs -> build the run (RunState) -> restore or initialize
              -> loop: N steps (train_step.py) -> check and log every step's loss
                       -> checkpoint / evaluate (evaluation/eval_loop.py) at their cadence
              -> summary

One code path for every engine (see `distribution.py`). The loss of every step is checked on
the host: a NaN or infinite value stops the run with the step named, before any checkpoint of
the diverged weights is written. With `--steps_per_loop N` the host waits once per N steps
(fewer round trips); the loop ends at every checkpoint and evaluation step, and the losses of
all N steps are logged and checked as they would be one by one.

Checkpoints live in `model_dir` (CheckpointManager, keep N, written by the chief only; the
`checkpoint` index file is replaced atomically after the data files are complete, so a process
killed while saving leaves the previous checkpoint usable). Training resumes from the newest one
by itself; `fine_tune_checkpoint` is read only when `model_dir` has none.
"""
from __future__ import annotations

import math
import os
import shutil
import time
from typing import Any, Mapping

import keras
import numpy as np
import tensorflow as tf

from object_detection.builders import dataset_builder, optimizer_builder, plan_builder
from object_detection.core.standard_fields import LossFields
from object_detection.data import inputs
from object_detection.evaluation import coco_evaluation, eval_loop
from object_detection.meta_architectures import odapi_checkpoint
from object_detection.training import checkpoints as ckpt_lib
from object_detection.training import distribution, grappler, preemption, train_step
from object_detection.training.run_state import RunOptions, RunState, chief_or_temp_dir
from object_detection.training.train_step import PREEMPTED
from object_detection.utils import config_util
from object_detection.utils.errors import ConfigError, TrainingDivergedError
from object_detection.utils.log import console_line, logger

__all__ = ["RunOptions", "RunState", "TrainingDivergedError", "train", "evaluate",
           "evaluate_checkpoints", "check_inputs", "EarlyStopping"]


# --------------------------------------------------------------------------------------------
# Training.


@grappler.lean()
def train(configs: Mapping[str, Any], options: RunOptions,
          engine: distribution.Engine) -> dict[str, Any]:
    """Trains to `num_train_steps`, evaluating `eval_count` times; returns the last metrics."""
    plans = plan_builder.build(configs)
    dataset_fn = check_inputs(configs, options, plans=plans)
    num_steps = int(options.num_train_steps or plans.train.num_steps)
    if num_steps <= 0:
        raise ConfigError(
            "train_config.num_steps: is 0 and --num_train_steps is not given; set one of them.")
    if options.steps_per_loop < 1:
        raise ConfigError(f"--steps_per_loop: must be >= 1, got {options.steps_per_loop}.")
    t0 = time.perf_counter()
    run = RunState(configs, options, engine, plans)
    build_s = time.perf_counter() - t0
    os.makedirs(options.model_dir, exist_ok=True)
    manager = tf.train.CheckpointManager(
        run.checkpoint, chief_or_temp_dir(options.model_dir, engine),
        max_to_keep=options.keep_checkpoint_max, step_counter=run.optimizer.iterations)
    start = _restore(run, num_steps)
    if start >= num_steps:
        logger.info("model_dir already holds step %d >= %d: nothing to train.", start, num_steps)
        return {}
    skipped = inputs.CorruptRecordCounter()  # stays empty with random data
    if options.random_data:
        dataset_fn = train_step.random_dataset_fn(
            run.model.image_size, plans.train.batch_size, plans.train.max_number_of_boxes)
    else:
        skipped = dataset_fn.corrupt_records
    loop = _TrainLoop(run, iter(engine.distribute_dataset(dataset_fn)), manager,
                      start, num_steps)
    loop.timings["build_s"] = build_s
    with preemption.SigtermWatch() as sigterm:
        stop_reason = loop.run(sigterm)
    _cleanup_temp_dir(options.model_dir, engine)
    summary = _summary(run, loop, stop_reason, skipped)
    return {**loop.metrics, **summary}


def _restore(run: RunState, num_steps: int) -> int:
    """Restores (or initializes) the weights, syncs the workers, writes the run's header;
    returns the step training starts from."""
    options, engine = run.options, run.engine
    restored = ckpt_lib.restore_or_initialize(run, options.model_dir)
    engine.broadcast_initial_state(list(run.model.variables) + list(run.optimizer.variables))
    start = run.step
    if engine.is_chief:
        config_util.save_pipeline_config(
            config_util.create_pipeline_proto_from_configs(run.configs), options.model_dir)
        run.report.log("PARAMETER", {
            "num_train_steps": num_steps,
            "global_batch_size": run.global_batch_size, "engine": engine.name,
            "replicas": engine.num_replicas_in_sync, "amp": options.amp,
            "dtype_policy": keras.mixed_precision.global_policy().name,
            "allow_xla": options.allow_xla, "resumed_from_step": start if restored else 0,
            "steps_per_loop": options.steps_per_loop})
    return start


class _TrainLoop:
    """Steps to `num_steps`: runs them, checks and logs each one, checkpoints and evaluates.

    Each call into the compiled function runs up to `steps_per_loop` steps and stops short of
    the next checkpoint or evaluation step, so those happen at the same steps whatever N is.
    """

    def __init__(self, run: RunState, iterator, manager: tf.train.CheckpointManager,
                 start: int, num_steps: int):
        self.run_state, self.iterator, self.manager = run, iterator, manager
        self.start, self.num_steps = start, num_steps
        self.step = start
        self.options = run.options
        self.eval_at = set(_eval_steps(num_steps, start, self.options.eval_count))
        writer = tf.summary.create_file_writer(os.path.join(self.options.model_dir, "train")) \
            if run.engine.is_chief else tf.summary.create_noop_writer()
        self.progress = _Progress(run, num_steps, writer)
        self.stopper = EarlyStopping(self.options.early_stop_patience,
                                     self.options.early_stop_metric)
        self.metrics: dict[str, Any] = {}
        self.step_times: list[float] = []
        self.first_call_steps = 0
        self.timings: dict[str, float] = {}  # start-up: build, trace, first call
        self.started = time.perf_counter()
        self._fn = None

    def run(self, sigterm: preemption.SigtermWatch) -> str:
        """Trains until num_steps, SIGTERM or early stopping; returns why it stopped."""
        while self.step < self.num_steps:
            n = self._steps_to_next_stop()
            rows, preempted = self._call(n, float(sigterm.requested))
            for losses in rows:
                self._step_done(losses)
            # One worker: stop at the step during which SIGTERM came. Several: at the step
            # whose all-reduce carried it, the same step on every worker.
            if preempted or (self.run_state.engine.num_workers == 1 and sigterm.requested):
                return self._save_and_exit()
            reason = self._checkpoint_and_evaluate()
            if reason:
                return reason
        return "num_train_steps reached"

    def _steps_to_next_stop(self) -> int:
        every = self.options.checkpoint_every_n
        stops = [self.num_steps, (self.step // every + 1) * every]
        stops += [s for s in self.eval_at if s > self.step]
        return max(1, min(self.options.steps_per_loop, min(stops) - self.step))

    def _call(self, n: int, stop: float) -> tuple[list[dict[str, float]], bool]:
        """Runs n steps; returns each step's losses (floats, on the host) and the SIGTERM flag.

        The first call traces first (timed apart: `trace_s`), then runs (`first_call_s`:
        graph optimization and the first steps)."""
        first = self._fn is None
        loop = self.options.steps_per_loop > 1
        if first:
            t0 = time.perf_counter()
            self._fn = (train_step.make_train_loop if loop else train_step.make_train_step)(
                self.run_state)
            args = self._args(n, stop)
            self._fn.get_concrete_function(*args)
            self.timings["trace_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        out = self._fn(*self._args(n, stop))
        preempted = float(out.pop(PREEMPTED)) > 0
        values = {k: np.atleast_1d(v.numpy()) for k, v in out.items()}  # waits for the steps
        elapsed = time.perf_counter() - t0
        self.step_times += [elapsed / n] * n
        if first:
            self.first_call_steps = n
            self.timings["first_call_s"] = elapsed
            what = "first step" if n == 1 else f"first loop of {n} steps"
            logger.info("%s (compilation included) took %.1f s; tracing took %.1f s before it",
                        what, elapsed, self.timings["trace_s"])
        return [{k: float(v[i]) for k, v in values.items()} for i in range(n)], preempted

    def _args(self, n: int, stop: float) -> tuple:
        stop = tf.constant(stop, tf.float32)
        if self.options.steps_per_loop > 1:
            return self.iterator, stop, tf.constant(n, tf.int32)
        return self.iterator, stop

    def _step_done(self, losses: Mapping[str, float]) -> None:
        self.step += 1
        total = losses[LossFields.total_loss]
        if not math.isfinite(total):
            raise TrainingDivergedError(
                f"training stopped: the total loss is {total} at step {self.step} "
                f"({dict(losses)}); no checkpoint was written after it; the last good "
                f"checkpoint is {self.manager.latest_checkpoint or 'none'}. Lower the learning "
                "rate, add gradient_clipping_by_norm, or check the input data.")
        self.progress.step_done(self.step, losses, self.step_times)

    def _save(self) -> None:
        self.manager.save(checkpoint_number=self.step)
        self.run_state.engine.barrier()

    def _save_and_exit(self) -> str:
        reason = f"SIGTERM: checkpoint saved at step {self.step}"
        self._save()
        console_line(f"{reason} in {self.options.model_dir}; exiting (a restart resumes from it).")
        return reason

    def _checkpoint_and_evaluate(self) -> str | None:
        """Saves and evaluates when the step is due; returns why to stop early, or None."""
        step = self.step
        if (step % self.options.checkpoint_every_n == 0 or step in self.eval_at
                or step == self.num_steps):
            self._save()
        if step not in self.eval_at:
            return None
        self.metrics = evaluate(self.run_state, step=step)
        return self.stopper.update(step, self.metrics, self.options.model_dir,
                                   self.manager.latest_checkpoint, self.run_state.engine)


def _summary(run: RunState, loop: _TrainLoop, stop_reason: str,
             skipped: inputs.CorruptRecordCounter) -> dict[str, Any]:
    """The run's summary: recorded in the report and printed (chief). `skipped` counts the
    records the training input skipped."""
    options = run.options
    times = loop.step_times
    timed = times[loop.first_call_steps:] or times
    if options.benchmark_last_k:
        timed = times[-options.benchmark_last_k:]
    summary = {
        "stop_reason": stop_reason,
        "train_throughput": run.global_batch_size * len(timed) / max(sum(timed), 1e-9),
        "train_median_step_s": float(np.median(timed)) if timed else 0.0,
        "train_first_step_s": loop.timings.get("first_call_s", 0.0),
        "train_elapsed_s": time.perf_counter() - loop.started,
        "steps": loop.step - loop.start,
        "corrupt_records_skipped": skipped.by_reason.get(inputs.SKIP_CORRUPT, 0),
        "bad_label_records_skipped": skipped.by_reason.get(inputs.SKIP_BAD_LABELS, 0),
        **{f"startup_{k}": v for k, v in loop.timings.items()},
    }
    run.report.log([], summary)
    if run.engine.is_chief:
        if stop_reason != "num_train_steps reached" and not stop_reason.startswith("SIGTERM"):
            console_line(f"training stopped early: {stop_reason}")
        console_line(f"trained steps {loop.start}..{loop.step}: "
                     f"{summary['train_throughput']:.2f} img/s (median step "
                     f"{np.median(timed):.3f} s), first step "
                     f"{summary['train_first_step_s']:.1f} s")
        if skipped.count:
            console_line(f"records skipped {skipped.count} times (the input repeats): "
                         f"{eval_loop.skipped_reasons(skipped.by_reason)}; "
                         f"{len(skipped.records)} distinct: {_first_records(skipped)}")
    return summary


class _Progress:
    """The progress line, report record and TensorBoard scalars every `log_every_n` steps."""

    def __init__(self, run: RunState, num_steps: int, writer):
        self.run, self.num_steps, self.writer = run, num_steps, writer
        self.learning_rate = optimizer_builder.learning_rate_fn(run.optimizer)
        self.interval_time, self.interval_steps = 0.0, 0

    def step_done(self, step: int, losses: Mapping[str, float],
                  step_times: list[float]) -> None:
        self.interval_steps += 1
        self.interval_time += step_times[-1]
        if step % self.run.options.log_every_n and step != self.num_steps:
            return
        run = self.run
        throughput = run.global_batch_size * self.interval_steps / max(self.interval_time, 1e-9)
        lr = float(self.learning_rate(step))
        eta = (self.num_steps - step) * float(np.median(step_times[-50:]))
        record = {k.split("/")[-1]: float(v) for k, v in losses.items()}
        record.update(learning_rate=lr, train_throughput=throughput)
        run.report.log(step, record)
        with self.writer.as_default(step=step):
            for k, v in losses.items():
                tf.summary.scalar(k, v)
            tf.summary.scalar("learning_rate", lr)
            tf.summary.scalar("train_throughput", throughput)
        if run.engine.is_chief:
            console_line(f"step {step}/{self.num_steps}  loss {record['total_loss']:.4f} "
                         f"(cls {record['classification_loss']:.4f} "
                         f"loc {record['localization_loss']:.4f} "
                         f"reg {record['regularization_loss']:.4f})  lr {lr:.5g}  "
                         f"{throughput:.1f} img/s  left {_hms(eta)}")
        self.interval_time, self.interval_steps = 0.0, 0


def _eval_steps(num_steps: int, start: int, eval_count: int) -> list[int]:
    """Steps after which to evaluate: `eval_count` points spread evenly up to num_steps."""
    if eval_count <= 0:
        return []
    points = sorted({max(1, round(num_steps * i / eval_count)) for i in range(1, eval_count + 1)})
    return [p for p in points if p > start]


def check_inputs(configs: Mapping[str, Any], options: RunOptions, *,
                 training: bool = True, plans: plan_builder.RunPlans | None = None):
    """What the run will read, checked before anything is built, so a wrong path fails in
    seconds rather than after the model is built (or, for the eval reader, hours later).

    Checks the training reader (unless `random_data`), the eval reader (when the run
    evaluates) and, for a fresh `model_dir`, `train_config.fine_tune_checkpoint`.

    Args:
      plans: `plan_builder.build(configs)`, built here when not given.

    Returns:
      The training dataset_fn (checking the reader builds it; its `corrupt_records` counts what
      the input skips), or None (`random_data`, or not `training`).

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
    fine_tune = (plans or plan_builder.build(configs)).train.fine_tune
    if training and fine_tune and not tf.train.latest_checkpoint(options.model_dir):
        ckpt_lib.resolve_fine_tune_checkpoint(fine_tune.checkpoint)
    return dataset_fn


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


def _first_records(counter: inputs.CorruptRecordCounter, k: int = 5) -> str:
    distinct = sorted(counter.records)  # distinct already
    return ", ".join(f"{f} record {i}" for f, i in distinct[:k]) + (
        " ..." if len(distinct) > k else "")


def _cleanup_temp_dir(model_dir: str, engine: distribution.Engine) -> None:
    if not engine.is_chief:
        shutil.rmtree(chief_or_temp_dir(model_dir, engine), ignore_errors=True)


def _hms(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


# --------------------------------------------------------------------------------------------
# Evaluation.


def evaluate(run: RunState, step: int) -> dict[str, float]:
    """The evaluation pass (evaluation/eval_loop.py) on the run's current weights (their
    moving averages when eval_config.use_moving_averages)."""
    options = run.options
    return eval_loop.evaluate(
        run.model, run.configs, run.plans, step=step, engine=run.engine, report=run.report,
        model_dir=options.model_dir, sample_1_of_n=options.sample_1_of_n_eval_examples,
        on_corrupt=options.on_corrupt,
        include_metrics_per_category=options.include_metrics_per_category,
        backend=options.eval_backend,
        weights=ckpt_lib.moving_average_weights(
            run.optimizer, run.plans.eval.use_moving_averages))


@grappler.lean()
def evaluate_checkpoints(configs: Mapping[str, Any], options: RunOptions,
                         engine: distribution.Engine, checkpoint_dir: str,
                         run_once: bool) -> dict[str, float]:
    """Eval-only mode: the newest checkpoint once, or each new one until the last step.

    Continuous evaluation (the OD API's): looks for a new checkpoint at most every
    `eval_config.eval_interval_secs` and gives up after `options.eval_timeout_s` without one.
    """
    plans = plan_builder.build(configs)
    check_inputs(configs, options, training=False, plans=plans)
    if run_once and tf.train.latest_checkpoint(checkpoint_dir) is None:
        raise FileNotFoundError(f"--checkpoint_dir {checkpoint_dir}: no checkpoint found.")
    run = RunState(configs, options, engine, plans)
    num_steps = int(options.num_train_steps or plans.train.num_steps)
    if run_once:
        path = tf.train.latest_checkpoint(checkpoint_dir)
        _restore_for_evaluation(run, path)
        return evaluate(run, step=run.step)
    metrics: dict[str, float] = {}
    best = EarlyStopping(metric=options.early_stop_metric)  # keeps best/, never stops
    interval = plans.eval.eval_interval_secs
    for path in tf.train.checkpoints_iterator(checkpoint_dir, min_interval_secs=interval,
                                              timeout=options.eval_timeout_s):
        _restore_for_evaluation(run, path)
        metrics = evaluate(run, step=run.step)
        best.update(run.step, metrics, options.model_dir, path, engine)
        if num_steps and run.step >= num_steps:
            break
    else:
        console_line(f"no new checkpoint in {checkpoint_dir} for {options.eval_timeout_s:.0f} s "
                     "(--eval_timeout): evaluation ends.")
    return metrics


def _restore_for_evaluation(run: RunState, path: str) -> None:
    """Model weights (and the step) of a checkpoint of this project or of the OD API's."""
    if odapi_checkpoint.is_odapi_checkpoint(path):
        report = odapi_checkpoint.restore(run.model, path)
        logger.info("evaluating the OD API checkpoint %s: %s", path, report.summary())
        if report.step is not None:
            run.optimizer.iterations.assign(report.step)
        return
    run.checkpoint.restore(path).expect_partial()
