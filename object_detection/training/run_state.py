"""What a run is asked to do (`RunOptions`) and what it holds while it runs (`RunState`)."""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Mapping

import keras

from object_detection.builders import model_builder, optimizer_builder, plan_builder
from object_detection.meta_architectures import checkpoint_layout
from object_detection.training import distribution, trainable
from object_detection.utils.dllogger import DLLogger
from object_detection.utils.errors import ConfigError
from object_detection.utils.log import logger


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
    steps_per_loop: int = 1  # training steps per tf.function call (one host round trip each)


class RunState:
    """What a run holds: its plans, the engine, the model, the optimizer, its checkpoint and
    the report.

    `configs` (the OD API dictionary) goes only to the builders of the model and the optimizer;
    everything else the run reads comes from `plans` (`plan_builder.build(configs)`).
    """

    def __init__(self, configs: Mapping[str, Any], options: RunOptions,
                 engine: distribution.Engine, plans: plan_builder.RunPlans | None = None):
        self.configs = configs
        self.plans = plans if plans is not None else plan_builder.build(configs)
        self.options = options
        self.engine = engine
        self.sync_batch_norm = self.plans.sync_batch_norm_fields
        synced = self.sync_batch_norm and engine.num_replicas_in_sync > 1
        if synced and not engine.optimizer_sums_gradients:
            raise ConfigError(
                f"{self.sync_batch_norm[0]}: synchronized batch norm runs under tf.distribute "
                f"(--engine tf, one process per host with MirroredStrategy or "
                f"MultiWorkerMirroredStrategy); with {engine.name} each of the "
                f"{engine.num_replicas_in_sync} ranks would normalize with its own batch only. "
                "Use --engine tf, or batch_norm.")
        train = self.plans.train
        self.gradient_clipping_by_norm = train.gradient_clipping_by_norm
        with engine.scope():
            self.model = model_builder.build(configs["model"], is_training=True)
            self.model.build()
            self.variables = trainable.select(
                self.model, list(train.update_trainable_variables), list(train.freeze_variables))
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
        return self.plans.train.batch_size * self.engine.num_replicas_in_sync

    @property
    def step(self) -> int:
        return int(self.optimizer.iterations.numpy())


def chief_or_temp_dir(model_dir: str, engine: distribution.Engine) -> str:
    """tf.distribute workers all take part in saving; only the chief writes into model_dir."""
    if engine.is_chief:
        return model_dir
    return os.path.join(model_dir, ".tmp_worker_%d" % engine.worker_index)
