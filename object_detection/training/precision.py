"""Mixed precision: the Keras dtype policy, set once at the entry point.

`--amp` picks `mixed_float16` on GPUs without bfloat16 (compute capability < 8.0; dynamic loss
scaling through keras.optimizers.LossScaleOptimizer) and `mixed_bfloat16` everywhere else (GPUs
from Ampere on, and CPUs: bfloat16 runs about 1.4x faster than float32 on AVX-512-BF16 CPUs).
Heads, box math and losses run in float32 whatever the policy.
"""
from __future__ import annotations

import logging

import keras
import tensorflow as tf


def choose_policy(amp: bool) -> str:
    if not amp:
        return "float32"
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        major = (details.get("compute_capability") or (0, 0))[0]
        return "mixed_bfloat16" if major >= 8 else "mixed_float16"
    return "mixed_bfloat16"


def set_policy(amp: bool) -> str:
    """Sets the global Keras dtype policy for `--amp`; returns its name."""
    name = choose_policy(amp)
    keras.mixed_precision.set_global_policy(name)
    logging.getLogger("object_detection").info("dtype policy: %s", name)
    return name
