"""Mixed precision: the Keras dtype policy, set once at the entry point.

`--amp` picks `mixed_float16` on GPUs without bfloat16 (compute capability < 8.0; dynamic loss
scaling through keras.optimizers.LossScaleOptimizer) and `mixed_bfloat16` everywhere else (GPUs
from Ampere on, and CPUs: bfloat16 runs about 1.4x faster than float32 on AVX-512-BF16 CPUs).
Heads, box math and losses run in float32 whatever the policy.

`train_config.use_bfloat16` (the OD API's switch for bfloat16 compute, a TPU feature there) asks
for `mixed_bfloat16` on any device that has bfloat16; on a GPU older than Ampere it is refused
in favour of `--amp`.
"""
from __future__ import annotations

import logging

import keras
import tensorflow as tf

from object_detection.utils.errors import ConfigError


def _gpu_compute_capability() -> int | None:
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return None
    details = tf.config.experimental.get_device_details(gpus[0])
    return (details.get("compute_capability") or (0, 0))[0]


def choose_policy(amp: bool, use_bfloat16: bool = False) -> str:
    """The Keras policy name for `--amp` and `train_config.use_bfloat16`.

    Raises:
      ConfigError: use_bfloat16 on a GPU without bfloat16 (compute capability < 8.0).
    """
    major = _gpu_compute_capability()
    if use_bfloat16:
        if major is not None and major < 8:
            raise ConfigError(
                f"train_config.use_bfloat16: true, but this GPU (compute capability {major}.x) "
                "has no bfloat16 arithmetic; remove the field and pass --amp (float16 with "
                "loss scaling).")
        return "mixed_bfloat16"
    if not amp:
        return "float32"
    if major is not None:
        return "mixed_bfloat16" if major >= 8 else "mixed_float16"
    return "mixed_bfloat16"


def set_policy(amp: bool, use_bfloat16: bool = False) -> str:
    """Sets the global Keras dtype policy for `--amp` / use_bfloat16; returns its name."""
    name = choose_policy(amp, use_bfloat16)
    keras.mixed_precision.set_global_policy(name)
    logging.getLogger("object_detection").info(
        "dtype policy: %s%s", name, " (train_config.use_bfloat16)" if use_bfloat16 else "")
    return name
