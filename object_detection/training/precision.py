"""Mixed precision: the Keras dtype policy, set once at the entry point.

`--amp` picks what is fastest on the device: `mixed_float16` on GPUs without bfloat16 (compute
capability < 8.0; dynamic loss scaling through keras.optimizers.LossScaleOptimizer),
`mixed_bfloat16` on GPUs from Ampere on and on CPUs with native bfloat16 (avx512_bf16 or AMX:
there bfloat16 trains about 1.8x faster than float32), and float32 on other CPUs, where bfloat16
is emulated (4.3x slower training measured on an AVX2-only CPU), with one log line saying why;
`cpu_bfloat16="force"` (`--amp_on_cpu=bfloat16`) asks for bfloat16 there anyway. Heads, box
math and losses run in float32 whatever the policy.

`train_config.use_bfloat16` (the OD API's switch for bfloat16 compute, a TPU feature there) asks
for `mixed_bfloat16` on any device that has bfloat16; on a GPU older than Ampere it is refused
in favour of `--amp`.
"""
from __future__ import annotations

import keras
import tensorflow as tf

from object_detection.utils.errors import ConfigError
from object_detection.utils.log import logger


def _gpu_compute_capability() -> int | None:
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return None
    details = tf.config.experimental.get_device_details(gpus[0])
    return (details.get("compute_capability") or (0, 0))[0]


NATIVE_BFLOAT16_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo flags


def cpu_has_native_bfloat16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether the CPU computes bfloat16 natively (NATIVE_BFLOAT16_FLAGS); False when unknown."""
    try:
        with open(cpuinfo) as f:
            for line in f:
                if line.startswith("flags"):
                    return bool(set(line.split(":", 1)[1].split()) & set(NATIVE_BFLOAT16_FLAGS))
    except OSError:
        pass
    return False


def choose_policy(amp: bool, use_bfloat16: bool = False, cpu_bfloat16: str = "auto") -> str:
    """The Keras policy name for `--amp` and `train_config.use_bfloat16`.

    Args:
      amp: `--amp`.
      use_bfloat16: `train_config.use_bfloat16` (bfloat16 wherever the device has it).
      cpu_bfloat16: "auto" (with --amp on a CPU, bfloat16 only if it is native) or "force".

    Raises:
      ConfigError: use_bfloat16 on a GPU without bfloat16 (compute capability < 8.0), or an
        unknown cpu_bfloat16.
    """
    if cpu_bfloat16 not in ("auto", "force"):
        raise ConfigError(f"--amp_on_cpu: {cpu_bfloat16!r} is not auto or bfloat16.")
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
    if cpu_bfloat16 == "force" or cpu_has_native_bfloat16():
        return "mixed_bfloat16"
    return "float32"


def set_policy(amp: bool, use_bfloat16: bool = False, cpu_bfloat16: str = "auto") -> str:
    """Sets the global Keras dtype policy for `--amp` / use_bfloat16; returns its name."""
    name = choose_policy(amp, use_bfloat16, cpu_bfloat16)
    keras.mixed_precision.set_global_policy(name)
    why = " (train_config.use_bfloat16)" if use_bfloat16 else ""
    if amp and not use_bfloat16 and name == "float32":
        why = (" (--amp: this CPU has no native bfloat16 (" + ", ".join(NATIVE_BFLOAT16_FLAGS)
               + "), where bfloat16 trains ~4x slower than float32; --amp_on_cpu=bfloat16 "
               "forces it)")
    logger.info("dtype policy: %s%s", name, why)
    return name
