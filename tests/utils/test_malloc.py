"""malloc.keep_freed_memory: a block freed by the process serves the next one of its size."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from object_detection.utils.malloc import GLIBC_SETTINGS
from tests.conftest import REPO

# Prints the setting's result, then the page faults of three 64 MiB blocks, each touched and
# freed before the next: every fault is a fresh page the kernel had to map and zero.
PROBE = """
import resource, sys
import numpy as np
from object_detection.utils import malloc
took = malloc.keep_freed_memory() if sys.argv[1] == "on" else None
def faults_of_a_block():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    block = np.ones(8 << 20)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    del block
    return faults
print(took, *[faults_of_a_block() for _ in range(3)])
"""


def _probe(mode: str, **env: str) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, timeout=120,
        env={**{k: v for k, v in os.environ.items() if k not in GLIBC_SETTINGS},
             "PYTHONPATH": str(REPO), **env})
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
def test_freed_blocks_are_reused_instead_of_mapped_again():
    took, first, *again = _probe("on")
    if took == "False":
        pytest.skip("this C library has no mallopt (not glibc)")
    assert took == "True"
    first, again = int(first), [int(n) for n in again]
    assert first > 0  # the first block maps fresh pages
    assert max(again) <= first // 10, (first, again)  # the next ones reuse them

    # Without the settings the process maps every block again (what the test above rules out).
    _, first, *again = _probe("off")
    assert min(int(n) for n in again) > int(first) // 2, (first, again)


def test_the_environment_settings_of_glibc_win():
    took, *_ = _probe("on", MALLOC_TRIM_THRESHOLD_="131072")
    assert took == "False"
