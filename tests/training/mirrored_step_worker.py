"""One training step with 1, 2 and 4 replicas of MirroredStrategy on logical CPU devices (what
it does with several local GPUs), for the data-parallel equality tests.

    python mirrored_step_worker.py --replicas 1 --dir D   # first: writes the initial weights
    python mirrored_step_worker.py --replicas 2 --dir D   # then 2 and 4 (one process each:
    python mirrored_step_worker.py --replicas 4 --dir D   # strategies of other sizes clash)

The global batch (4 examples) and the initial weights are the same for every replica count;
replica r of n reads examples [r*4/n, (r+1)*4/n). For each case of dist_step_worker.CASES, and
for plain trainable batch norm ("plain_bn"), D/<case>_<n>.npz gets the update (weights after
the step minus before) and the moving statistics after it. With one replica, D/plain_bn_rule.npz
gets the rule for plain batch norm over 2 replicas: the sum over the 2 shards of the gradient
of each shard's share of the loss, each with its own batch statistics, applied once.
"""
from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 4)

import keras  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dist_step_worker import CASES, CONFIG, OVERRIDES, global_batch  # noqa: E402

from object_detection.core.standard_fields import InputFields as F  # noqa: E402
from object_detection.training import distribution, grappler, train_lib, train_step  # noqa: E402
from object_detection.utils import config_util  # noqa: E402

GLOBAL_BATCH = 4
# Fewer levels and layers: every replica count traces the whole step again.
SMALLER = ["model.ssd.feature_extractor.fpn.max_level=5",
           "model.ssd.anchor_generator.multiscale_anchor_generator.max_level=5",
           "model.ssd.feature_extractor.fpn.additional_layer_depth=32",
           "model.ssd.box_predictor.weight_shared_convolutional_box_predictor.depth=32",
           "model.ssd.box_predictor.weight_shared_convolutional_box_predictor."
           "num_layers_before_predictor=1"]
_STRATEGIES: dict[int, tf.distribute.Strategy] = {}
_GROUNDTRUTH = (F.groundtruth_boxes, F.groundtruth_classes, F.groundtruth_weights,
                F.num_groundtruth_boxes)


def _session(overrides: list[str], replicas: int, initial: list[np.ndarray] | None):
    configs = config_util.get_configs_from_pipeline_file(
        CONFIG, config_override=OVERRIDES + SMALLER + overrides
        + [f"train_config.batch_size={GLOBAL_BATCH // replicas}"])
    engine = distribution.TFDistributeEngine("default")
    if replicas > 1:  # what --strategy mirrored builds over several local GPUs
        # One strategy per process: a second one would reuse the first's collective keys.
        if replicas not in _STRATEGIES:
            _STRATEGIES[replicas] = tf.distribute.MirroredStrategy(
                [f"/cpu:{i}" for i in range(replicas)])
        engine.strategy = _STRATEGIES[replicas]
        engine.num_replicas_in_sync = replicas
    keras.utils.set_random_seed(0)
    session = train_lib.RunState(configs, train_lib.RunOptions(model_dir="/tmp/unused"), engine)
    if initial is not None:
        for variable, value in zip(session.model.variables, initial):
            variable.assign(value)
    return session


def _vector(variables) -> np.ndarray:
    return np.concatenate([np.asarray(v.numpy(), np.float64).ravel() for v in variables])


def _step(overrides: list[str], replicas: int, initial):
    """(update, moving statistics after the step, initial weights) of one step."""
    session = _session(overrides, replicas, initial)
    data = global_batch(GLOBAL_BATCH)
    share = GLOBAL_BATCH // replicas

    def dataset_fn(input_context=None):  # element r goes to replica r
        return tf.data.Dataset.from_tensor_slices(
            {k: np.stack([v[r * share:(r + 1) * share] for r in range(replicas)])
             for k, v in data.items()})

    model = session.model
    before = _vector(model.trainable_variables)
    start = [np.asarray(v.numpy()) for v in model.variables]
    with grappler.lean():  # the passes of a training run (train_lib.train)
        train_step.make_train_step(session)(iter(session.engine.distribute_dataset(dataset_fn)))
    return (_vector(model.trainable_variables) - before,
            _vector(model.non_trainable_variables), start)


def _split_reference(overrides: list[str], shards: int, initial) -> np.ndarray:
    """The rule for plain trainable batch norm over `shards` replicas, on one device."""
    session = _session(overrides, 1, initial)
    model, optimizer = session.model, session.optimizer
    data = global_batch(GLOBAL_BATCH)
    share = GLOBAL_BATCH // shards
    parts = [{k: tf.constant(v[i * share:(i + 1) * share]) for k, v in data.items()}
             for i in range(shards)]
    targets = [model.assign_targets({k: p[k] for k in _GROUNDTRUTH}) for p in parts]
    num_matches = tf.add_n([t.pop("num_matches") for t in targets])
    before = _vector(model.trainable_variables)
    total_grads = None
    for part, target in zip(parts, targets):
        with tf.GradientTape() as tape:
            losses = model.losses_from_targets(model(part[F.image], training=True), target,
                                               num_matches)
            loss = tf.add_n(list(losses.values())) + tf.add_n(model.losses) / shards
        grads = tape.gradient(loss, model.trainable_variables)
        total_grads = grads if total_grads is None else [
            a if b is None else a + b for a, b in zip(total_grads, grads)]
    optimizer.apply_gradients(zip(total_grads, model.trainable_variables))
    return _vector(model.trainable_variables) - before


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--replicas", type=int, choices=[1, 2, 4], required=True)
    parser.add_argument("--dir", required=True)
    args = parser.parse_args()
    # Plain trainable batch norm everywhere (the small config's own setting).
    cases = {**CASES, "plain_bn": []}
    for case, overrides in cases.items():
        init_path = os.path.join(args.dir, f"{case}_init.npz")
        initial = None
        if args.replicas > 1:
            stored = np.load(init_path)
            initial = [stored[k] for k in stored.files]
        update, moving, start = _step(overrides, args.replicas, initial)
        if args.replicas == 1:
            np.savez(init_path, *start)
            if case == "plain_bn":
                np.savez(os.path.join(args.dir, "plain_bn_rule.npz"),
                         update=_split_reference(overrides, 2, start))
        np.savez(os.path.join(args.dir, f"{case}_{args.replicas}.npz"), update=update,
                 moving=moving)
        print(f"{case}: {args.replicas} replica(s), update norm {np.linalg.norm(update):.6g}",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
