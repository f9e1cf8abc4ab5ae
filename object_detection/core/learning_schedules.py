"""Learning-rate schedules of the OD API's `LearningRate` message, as Keras schedules.

Each schedule maps the optimizer's step counter (the number of updates applied so far) to a
float32 learning rate. Formulas (step s):

- constant: lr.
- exponential decay: max(initial * factor^(s / decay_steps), min_lr) (floor(s / decay_steps) when
  staircase); during burn-in (s < burnin_steps) the burn-in rate.
- manual step: the rate of the last boundary <= s; with `warmup`, a linear ramp from the first
  rate at 0 to the second rate at the first boundary.
- cosine decay with warm-up (Goyal et al. 2017; Loshchilov & Hutter 2016):
  base * 0.5 * (1 + cos(pi * (s - warmup - hold) / (total - warmup - hold))), held at base for
  `hold_base_rate_steps` after the warm-up, linear from warmup_lr to base during the warm-up,
  and 0 after total_steps.
"""
from __future__ import annotations

import math
from typing import Sequence

import keras
import tensorflow as tf


class ConstantLearningRate(keras.optimizers.schedules.LearningRateSchedule):
    def __init__(self, learning_rate: float):
        self.learning_rate = float(learning_rate)

    def __call__(self, step):
        return tf.constant(self.learning_rate, tf.float32)

    def get_config(self):
        return {"learning_rate": self.learning_rate}


class ExponentialDecayLearningRate(keras.optimizers.schedules.LearningRateSchedule):
    def __init__(self, initial_learning_rate: float, decay_steps: int, decay_factor: float,
                 staircase: bool = True, burnin_learning_rate: float = 0.0,
                 burnin_steps: int = 0, min_learning_rate: float = 0.0):
        self.initial_learning_rate = float(initial_learning_rate)
        self.decay_steps = int(decay_steps)
        self.decay_factor = float(decay_factor)
        self.staircase = bool(staircase)
        self.burnin_learning_rate = float(burnin_learning_rate) or float(initial_learning_rate)
        self.burnin_steps = int(burnin_steps)
        self.min_learning_rate = float(min_learning_rate)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        exponent = (step - self.burnin_steps) / self.decay_steps
        if self.staircase:
            exponent = tf.floor(exponent)
        lr = self.initial_learning_rate * tf.pow(self.decay_factor, tf.maximum(exponent, 0.0))
        lr = tf.maximum(lr, self.min_learning_rate)
        return tf.where(step < self.burnin_steps, self.burnin_learning_rate, lr)

    def get_config(self):
        return dict(vars(self))


class ManualStepLearningRate(keras.optimizers.schedules.LearningRateSchedule):
    """Piecewise constant: `rates[i]` from `boundaries[i-1]` on (`rates[0]` before the first)."""

    def __init__(self, boundaries: Sequence[int], rates: Sequence[float], warmup: bool = False):
        if len(rates) != len(boundaries) + 1:
            raise ValueError(f"need len(rates) == len(boundaries) + 1, got {len(rates)} rates "
                             f"and {len(boundaries)} boundaries.")
        if any(b1 >= b2 for b1, b2 in zip(boundaries, boundaries[1:])) or (
                boundaries and boundaries[0] < 0):
            raise ValueError(f"boundaries must be positive and increasing, got {list(boundaries)}.")
        self.boundaries = [int(b) for b in boundaries]
        self.rates = [float(r) for r in rates]
        self.warmup = bool(warmup)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        index = tf.reduce_sum(tf.cast(step >= tf.constant(self.boundaries, tf.float32)
                                      if self.boundaries else tf.zeros([0]), tf.int32))
        lr = tf.gather(tf.constant(self.rates, tf.float32), index)
        if self.warmup and self.boundaries:
            ramp = self.rates[0] + (self.rates[1] - self.rates[0]) * step / self.boundaries[0]
            lr = tf.where(step < self.boundaries[0], ramp, lr)
        return lr

    def get_config(self):
        return dict(vars(self))


class CosineDecayWithWarmup(keras.optimizers.schedules.LearningRateSchedule):
    def __init__(self, learning_rate_base: float, total_steps: int,
                 warmup_learning_rate: float = 0.0, warmup_steps: int = 0,
                 hold_base_rate_steps: int = 0):
        if warmup_steps + hold_base_rate_steps > total_steps:
            raise ValueError(
                f"warmup_steps ({warmup_steps}) + hold_base_rate_steps ({hold_base_rate_steps}) "
                f"must not exceed total_steps ({total_steps}).")
        if warmup_steps > 0 and learning_rate_base < warmup_learning_rate:
            raise ValueError(
                f"learning_rate_base ({learning_rate_base}) must be >= warmup_learning_rate "
                f"({warmup_learning_rate}).")
        self.learning_rate_base = float(learning_rate_base)
        self.total_steps = int(total_steps)
        self.warmup_learning_rate = float(warmup_learning_rate)
        self.warmup_steps = int(warmup_steps)
        self.hold_base_rate_steps = int(hold_base_rate_steps)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        decay_start = float(self.warmup_steps + self.hold_base_rate_steps)
        decay_len = max(float(self.total_steps) - decay_start, 1.0)
        progress = tf.clip_by_value((step - decay_start) / decay_len, 0.0, 1.0)
        lr = 0.5 * self.learning_rate_base * (1.0 + tf.cos(math.pi * progress))
        lr = tf.where(step < decay_start, self.learning_rate_base, lr)  # hold phase
        if self.warmup_steps > 0:
            slope = (self.learning_rate_base - self.warmup_learning_rate) / self.warmup_steps
            lr = tf.where(step < self.warmup_steps, self.warmup_learning_rate + slope * step, lr)
        return tf.where(step > self.total_steps, 0.0, lr)

    def get_config(self):
        return dict(vars(self))
