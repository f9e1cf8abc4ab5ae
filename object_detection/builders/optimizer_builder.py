"""Builds the Keras optimizer and learning-rate schedule of `train_config.optimizer`.

OD API optimizers map onto Keras ones: momentum_optimizer -> SGD(momentum), rms_prop_optimizer
-> RMSprop, adam_optimizer -> Adam (core/optimizers.py: the same Keras classes with fused
per-variable kernels for SGD and the EMA). `use_moving_average` turns on the optimizer's EMA
(`moving_average_decay`); `train_config.gradient_clipping_by_norm` becomes `global_clipnorm`.
With float16 mixed precision the optimizer is wrapped in a LossScaleOptimizer (dynamic loss
scaling); bfloat16 needs none.
"""
from __future__ import annotations

import keras

from object_detection.builders import config_rules
from object_detection.core import learning_schedules, optimizers
from object_detection.protos import optimizer_pb2, train_pb2
from object_detection.utils.errors import ConfigError

_PATH = "train_config.optimizer"


def build_learning_rate(config: optimizer_pb2.LearningRate, path: str):
    """LearningRate message -> Keras LearningRateSchedule (see learning_schedules.py).

    Raises:
      ConfigError: a rule of `config_rules.learning_rate_problems` is broken.
    """
    config_rules.raise_first(config_rules.learning_rate_problems(config, path))
    which = config.WhichOneof("learning_rate")
    c = getattr(config, which)
    path = f"{path}.{which}"
    try:
        if which == "constant_learning_rate":
            return learning_schedules.ConstantLearningRate(c.learning_rate)
        if which == "exponential_decay_learning_rate":
            return learning_schedules.ExponentialDecayLearningRate(
                c.initial_learning_rate, c.decay_steps, c.decay_factor, c.staircase,
                c.burnin_learning_rate, c.burnin_steps, c.min_learning_rate)
        if which == "manual_step_learning_rate":
            boundaries = [s.step for s in c.schedule]
            rates = [c.initial_learning_rate] + [s.learning_rate for s in c.schedule]
            return learning_schedules.ManualStepLearningRate(boundaries, rates, c.warmup)
        if which == "cosine_decay_learning_rate":
            return learning_schedules.CosineDecayWithWarmup(
                c.learning_rate_base, c.total_steps, c.warmup_learning_rate, c.warmup_steps,
                c.hold_base_rate_steps)
    except ValueError as e:  # the schedules' own argument checks (the rules above agree)
        raise ConfigError(f"{path}: {e}") from None
    raise ConfigError(f"{path}: {which!r} is not supported; expected one of "
                      "constant_learning_rate, exponential_decay_learning_rate, "
                      "manual_step_learning_rate, cosine_decay_learning_rate.")


def build(train_config: train_pb2.TrainConfig,
          amp_float16: bool = False) -> keras.optimizers.Optimizer:
    """TrainConfig -> Keras optimizer (EMA, clipping and loss scaling applied).

    Args:
      train_config: the TrainConfig message (its `optimizer` and `gradient_clipping_by_norm`).
        Learning rates are taken as written, as in the seed, whose configs set them for their
        GPU count.
      amp_float16: wrap in a LossScaleOptimizer (float16 mixed precision).
    """
    config = train_config.optimizer
    # An optimizer and a schedule, value ranges (config_rules.optimizer_problems).
    config_rules.raise_first(config_rules.optimizer_problems(config, _PATH))
    which = config.WhichOneof("optimizer")
    c = getattr(config, which)
    path = f"{_PATH}.{which}"
    lr = build_learning_rate(c.learning_rate, f"{path}.learning_rate")
    common = {}
    if config.use_moving_average:
        common.update(use_ema=True, ema_momentum=config.moving_average_decay,
                      ema_overwrite_frequency=None)
    if train_config.gradient_clipping_by_norm > 0:
        common["global_clipnorm"] = train_config.gradient_clipping_by_norm
    if which == "momentum_optimizer":
        optimizer = optimizers.SGD(lr, momentum=c.momentum_optimizer_value, **common)
    elif which == "rms_prop_optimizer":
        optimizer = optimizers.RMSprop(lr, rho=c.decay, momentum=c.momentum_optimizer_value,
                                             epsilon=c.epsilon, **common)
    elif which == "adam_optimizer":
        optimizer = optimizers.Adam(lr, epsilon=c.epsilon, **common)
    else:
        raise ConfigError(f"{_PATH}: {which!r} is not supported; expected one of "
                          "momentum_optimizer, rms_prop_optimizer, adam_optimizer.")
    if amp_float16:
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def learning_rate_fn(optimizer: keras.optimizers.Optimizer):
    """step -> learning rate of `optimizer` (unwrapping a LossScaleOptimizer)."""
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    schedule = inner._learning_rate
    if isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule):
        return schedule
    return lambda step: float(inner.learning_rate)
