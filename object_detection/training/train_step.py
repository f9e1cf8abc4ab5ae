"""The compiled training step, and the loop of N steps that runs inside one `tf.function` call.

    batch -> assign_targets (anchors x ground truth; jit with --allow_xla)
          -> global number of matches (sum over replicas)
          -> forward + losses + gradients (jit with --allow_xla)
          -> gradients summed over replicas -> optimizer update

Per-replica loss = (local classification + localization sums) / global matches
                   + regularization / num_replicas_in_sync;
gradients are summed over replicas, so an update does not depend on how the global batch is
split.

`make_train_step` returns one step per call (`--steps_per_loop 1`, the default).
Both are traced without AutoGraph (`autograph=False`): the step has no Python control flow on
tensors (the loop is an explicit `tf.while_loop`), and converting the source of every function
it calls (this package's and Keras's) cost a third of the tracing time.
`make_train_loop` returns a function that runs `n` steps in a `tf.while_loop` and hands back
every step's losses, stacked: the host waits once per loop instead of once per step, and the
caller still sees (and checks) the loss of every step.
"""
from __future__ import annotations


import keras
import numpy as np
import tensorflow as tf

from object_detection.core.standard_fields import InputFields as F
from object_detection.core.standard_fields import LossFields
from object_detection.meta_architectures.ssd_meta_arch import GROUNDTRUTH_KEYS
from object_detection.utils.log import logger


PREEMPTED = "preempted_replicas"  # train-step output: replicas told to stop (SIGTERM)
# What one step returns, besides PREEMPTED (the loop stacks these, one row per step).
LOSS_KEYS = (LossFields.localization_loss, LossFields.classification_loss,
             LossFields.regularization_loss, LossFields.total_loss)


def _replica_step_fn(run):
    """The per-replica work of one step: `fn(batch, stop) -> losses` (PREEMPTED included)."""
    model, optimizer, engine = run.model, run.optimizer, run.engine
    variables = run.variables.trained
    num_replicas = float(engine.num_replicas_in_sync)
    jit = bool(run.options.allow_xla)
    loss_scaling = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)

    @tf.function(jit_compile=jit, autograph=False)
    def assign(groundtruth):
        return model.assign_targets(groundtruth)

    # A synchronized batch norm all-reduces inside the forward pass, which tf.distribute
    # cannot do from a nested tf.function: the pass is then traced into the train step itself.
    sync_bn = engine.num_replicas_in_sync > 1 and bool(run.sync_batch_norm)
    if sync_bn and jit:
        logger.warning("--allow_xla: the forward and backward pass is not compiled with "
                       "sync_batch_norm across %d replicas.", engine.num_replicas_in_sync)
    # Nested functions also keep `--steps_per_loop N` exact: the loop and the single step call
    # the same function, where traced into each they are optimized apart and their float32
    # round-off differs (the losses then drift apart over the steps).
    nested = (lambda fn: fn) if sync_bn else tf.function(jit_compile=jit, autograph=False)

    @nested
    def forward_backward(images, targets, num_matches):
        with tf.GradientTape() as tape:
            predictions = model(images, training=True)
            losses = model.losses_from_targets(predictions, targets, num_matches)
            losses[LossFields.regularization_loss] = model.regularization_loss() / num_replicas
            total = tf.add_n(list(losses.values()))
            losses[LossFields.total_loss] = total
            if loss_scaling:
                total = optimizer.scale_loss(total)
        grads = tape.gradient(total, variables)
        return losses, grads

    clip_norm = run.gradient_clipping_by_norm
    clip_before_keras_sums = (clip_norm > 0 and engine.optimizer_sums_gradients
                              and engine.num_replicas_in_sync > 1)

    def replica_step(batch, stop):
        targets = assign({k: batch[k] for k in GROUNDTRUTH_KEYS if k in batch})
        num_matches = engine.sum_across_replicas(targets.pop("num_matches"))
        losses, grads = forward_backward(batch[F.image], targets, num_matches)
        grads = engine.aggregate_gradients(grads)
        if clip_before_keras_sums:
            grads = clip_global_gradient(grads, engine, clip_norm, optimizer)
        optimizer.apply_gradients(zip(grads, variables))
        # Every replica's SIGTERM flag, summed: the same on every worker (see preemption.py).
        # (tf.identity places the flag on the replica's device, where all-reduces start.)
        losses[PREEMPTED] = engine.sum_across_replicas(tf.identity(stop))
        return losses

    return replica_step


def _one_step(run, replica_step, iterator, stop):
    per_replica = run.engine.run(lambda batch: replica_step(batch, stop), next(iterator))
    return {k: run.engine.reduce_sum(v) for k, v in per_replica.items()}


def make_train_step(run):
    """`train_step(iterator, stop=None) -> losses`: one step on every replica, losses summed.

    `stop`: a float32 scalar, 1 when this worker was sent SIGTERM; the returned
    `losses[PREEMPTED]` is the number of replicas told to stop.
    """
    replica_step = _replica_step_fn(run)

    @tf.function(autograph=False)
    def train_step(iterator, stop=None):
        stop = tf.constant(0.0) if stop is None else stop
        return _one_step(run, replica_step, iterator, stop)

    return train_step


def make_train_loop(run):
    """`train_loop(iterator, stop, num_steps) -> losses`: `num_steps` steps in one call.

    The steps run in a `tf.while_loop` inside one `tf.function` (traced once for every
    `num_steps`, an int32 scalar), with no host round trip between them. Each `LOSS_KEYS`
    entry of the result is a [num_steps] vector, step by step; `PREEMPTED` is the largest
    count of any step (`stop` is read once, when the loop starts).
    """
    replica_step = _replica_step_fn(run)

    @tf.function(autograph=False)
    def train_loop(iterator, stop, num_steps):
        def body(i, preempted, rows):
            losses = _one_step(run, replica_step, iterator, stop)
            preempted = tf.maximum(preempted, tf.cast(losses[PREEMPTED], tf.float32))
            rows = [row.write(i, tf.cast(losses[k], tf.float32))
                    for k, row in zip(LOSS_KEYS, rows)]
            return i + 1, preempted, rows

        rows = [tf.TensorArray(tf.float32, size=num_steps) for _ in LOSS_KEYS]
        _, preempted, rows = tf.while_loop(
            lambda i, *_: i < num_steps, body, (tf.constant(0), tf.constant(0.0), rows))
        out = {k: row.stack() for k, row in zip(LOSS_KEYS, rows)}
        out[PREEMPTED] = preempted
        return out

    return train_loop


def clip_global_gradient(grads, engine, clip_norm: float, optimizer):
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


def random_dataset_fn(image_size: tuple[int, int], batch: int, max_boxes: int):
    """Synthetic batches (benchmarks): random images, one random box per image."""
    height, width = image_size

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
