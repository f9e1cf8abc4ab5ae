"""glibc malloc settings for the inference commands: memory freed by one batch serves the next.

glibc gives every block above its mmap threshold (128 KiB at start, raised up to 32 MiB as
large blocks are freed) a mapping of its own, and unmaps it when the block is freed; it also
returns the top of the heap to the system beyond 128 KiB. A detector's activations are blocks
of 1-50 MiB, so every batch maps fresh memory again and the kernel zeroes each page at its first
touch. Raising both thresholds to their maximum (`mallopt`) keeps freed blocks in the process,
and the next batch reuses them.

Measured on a 2-core AMD EPYC (Zen 3, AVX2): `examples/SSD320_inference.py`, SSD320, batch 8,
float32, p50 latency 2,528-2,750 ms with the settings against 2,835-3,054 ms without (five
alternating pairs: 3-15% off); peak RSS 1,193-1,385 MiB against 1,117-1,180 MiB. Training
(batch 8) was not faster with them, and its peak memory grew, so only the inference commands
take them.

The settings are left alone when the environment sets glibc's own `MALLOC_MMAP_THRESHOLD_`,
`MALLOC_TRIM_THRESHOLD_` or `GLIBC_TUNABLES` (those then decide), and on other C libraries.
"""
from __future__ import annotations

import ctypes
import os

_M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers (malloc.h)
_M_MMAP_THRESHOLD = -3
_LARGEST = 2**31 - 1  # mallopt takes an int
# glibc's own settings: when the environment has one, it decides.
GLIBC_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")


def keep_freed_memory() -> bool:
    """Keeps freed memory in this process (see the module). Call it once, at the start of a
    command: it changes the allocator of the whole process.

    Returns:
      True when glibc took both settings; False when the environment sets its own or the C
      library has no `mallopt` (macOS, musl).
    """
    if any(name in os.environ for name in GLIBC_SETTINGS):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the process's own C library
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, _LARGEST)) and bool(
        mallopt(_M_TRIM_THRESHOLD, _LARGEST))
