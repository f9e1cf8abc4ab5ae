"""One training step on fixed data, for the data-parallel equality tests.

    python dist_step_worker.py --mode single --out W.npz           # one replica, batch 2B
    TF_CONFIG=... python dist_step_worker.py --mode tf --out W.npz  # one of 2 workers, batch B
    horovodrun -np 2 -H localhost:2 --gloo python dist_step_worker.py --mode horovod --out W.npz

The global batch is the same 2B examples in every mode: worker i of 2 reads examples
[i*B, (i+1)*B). `--case` picks the setting (CASES): frozen batch norm, gradient clipping, or
synchronized batch norm. The initial weights come from a fixed seed on the chief and are
broadcast by the engine.
After one step the chief writes every trainable variable to --out.
"""
from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from object_detection.core.standard_fields import InputFields as F  # noqa: E402
from object_detection.training import distribution, grappler, train_lib, train_step  # noqa: E402
from object_detection.utils import config_util  # noqa: E402

CONFIG = os.path.join(os.path.dirname(__file__), "..", "..", "configs",
                      "ssd_mobilenet_v2_fpn_shapes_128_cpu.config")
PER_WORKER_BATCH = 2
# These tests check how replicas and workers combine a step, not the backbone: MobileNet v1
# has half the layers of the config's v2, so each process traces and optimizes half the graph.
OVERRIDES = [
    "model.ssd.feature_extractor.type=ssd_mobilenet_v1_fpn_keras",
    "model.ssd.feature_extractor.depth_multiplier=0.25",
    "model.ssd.image_resizer.fixed_shape_resizer.height=64",
    "model.ssd.image_resizer.fixed_shape_resizer.width=64",
    "train_config.max_number_of_boxes=4",
]
_BN = "scale: true decay: 0.99 epsilon: 0.001"
_PREDICTOR = "model.ssd.box_predictor.weight_shared_convolutional_box_predictor.conv_hyperparams"
# The cases whose update must not depend on how the global batch is split.
CASES = {
    # The seed's recipe: batch norm statistics frozen.
    "frozen": ["model.ssd.freeze_batchnorm=true"],
    # Clipping the global gradient (the clip is active: the gradient norm is far above 1e-3).
    "clip": ["model.ssd.freeze_batchnorm=true", "train_config.gradient_clipping_by_norm=0.001"],
    # Trainable, synchronized batch norm in the box predictor (the backbone's frozen: trained
    # from random weights at 1-2 images per replica, its gradient is so ill-conditioned that
    # two algebraically equal batch norm formulas on one device differ by 4% in the update).
    "sync_bn": [f"model.ssd.feature_extractor.conv_hyperparams.batch_norm={{ {_BN} train: false }}",
                f"{_PREDICTOR}.sync_batch_norm={{ {_BN} }}"],
}


def global_batch(size: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(123)
    boxes = np.zeros([size, 4, 4], np.float32)
    num = np.zeros([size], np.int32)
    classes = np.zeros([size, 4], np.int32)
    for i in range(size):
        n = 1 + i % 3
        num[i] = n
        for j in range(n):
            y, x = rng.uniform(0.0, 0.6, 2)
            h, w = rng.uniform(0.2, 0.4, 2)
            boxes[i, j] = [y, x, y + h, x + w]
            classes[i, j] = rng.integers(0, 3)
    return {
        F.image: rng.uniform(0, 255, [size, 64, 64, 3]).astype(np.float32),
        F.groundtruth_boxes: boxes,
        F.groundtruth_classes: classes,
        F.groundtruth_weights: (np.arange(4)[None] < num[:, None]).astype(np.float32),
        F.num_groundtruth_boxes: num,
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=["single", "tf", "horovod"], required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--case", choices=sorted(CASES), default="frozen")
    args = parser.parse_args()
    keras.utils.set_random_seed(0)
    engine = {"single": lambda: distribution.make_engine("tf", "default"),
              "tf": lambda: distribution.make_engine("tf", "multi_worker",
                                                     collective_timeout_s=120),
              "horovod": lambda: distribution.make_engine("horovod")}[args.mode]()
    workers = engine.num_workers
    batch = PER_WORKER_BATCH * (2 if args.mode == "single" else 1)
    configs = config_util.get_configs_from_pipeline_file(
        CONFIG, config_override=OVERRIDES + CASES[args.case]
        + [f"train_config.batch_size={batch}"])
    options = train_lib.RunOptions(model_dir=os.path.dirname(args.out), eval_count=0)
    session = train_lib.RunState(configs, options, engine)
    engine.broadcast_initial_state(
        list(session.model.variables) + list(session.optimizer.variables))
    data = global_batch(PER_WORKER_BATCH * 2)

    def dataset_fn(input_context=None):
        index = input_context.input_pipeline_id if (input_context and workers > 1) else 0
        lo = index * batch
        shard = {k: v[lo:lo + batch] for k, v in data.items()}
        return tf.data.Dataset.from_tensors(shard).repeat()

    initial = {f"init|{i:04d}": np.asarray(v.numpy())
               for i, v in enumerate(session.model.trainable_variables)}
    iterator = iter(engine.distribute_dataset(dataset_fn))
    with grappler.lean():  # the passes of a training run (train_lib.train)
        losses = train_step.make_train_step(session)(iterator)
    print(f"worker {engine.worker_index}/{workers}: total loss "
          f"{float(losses['Loss/total_loss']):.6f}", flush=True)
    if engine.is_chief:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        trained = {f"step1|{i:04d}": np.asarray(v.numpy())
                   for i, v in enumerate(session.model.trainable_variables)}
        np.savez(args.out, **initial, **trained,
                 total_loss=float(losses["Loss/total_loss"]))
    engine.barrier()
    return 0


if __name__ == "__main__":
    sys.exit(main())
