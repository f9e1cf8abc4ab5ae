"""Grappler's lean passes (training/grappler.py): what they change, where, and for how long."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import config_pb2, rewriter_config_pb2
from tensorflow.python.eager import context

from object_detection.training import grappler

from .conftest import REPO

RewriterConfig = rewriter_config_pb2.RewriterConfig


def _thread_config() -> config_pb2.ConfigProto:
    serialized = context.context().function_call_options.config_proto_serialized
    return config_pb2.ConfigProto.FromString(serialized)


@pytest.mark.parametrize("has_gpu", [False, True])
def test_one_round_without_tfg_and_layout_and_memory_only_with_a_gpu(has_gpu):
    config = config_pb2.ConfigProto(allow_soft_placement=True, inter_op_parallelism_threads=3)
    config.graph_options.rewrite_options.constant_folding = RewriterConfig.AGGRESSIVE
    lean = grappler.lean_config(config, has_gpu)
    rewrite = lean.graph_options.rewrite_options
    assert rewrite.meta_optimizer_iterations == RewriterConfig.ONE
    assert rewrite.disable_tfg_optimizer
    assert rewrite.layout_optimizer == (RewriterConfig.DEFAULT if has_gpu else RewriterConfig.OFF)
    assert rewrite.memory_optimization == (
        RewriterConfig.DEFAULT_MEM_OPT if has_gpu else RewriterConfig.NO_MEM_OPT)
    # Everything else is the caller's config, which is left as it was.
    assert lean.allow_soft_placement and lean.inter_op_parallelism_threads == 3
    assert rewrite.constant_folding == RewriterConfig.AGGRESSIVE
    assert config.graph_options.rewrite_options.meta_optimizer_iterations == 0


def test_the_block_sets_the_thread_options_and_gives_them_back():
    before = _thread_config()
    with grappler.lean():
        inside = _thread_config()
    after = _thread_config()
    assert inside.graph_options.rewrite_options.meta_optimizer_iterations == RewriterConfig.ONE
    assert inside.graph_options.rewrite_options.disable_tfg_optimizer
    assert inside.allow_soft_placement == before.allow_soft_placement
    assert after == before


def test_a_function_first_called_inside_computes_what_it_computes_outside():
    x = tf.constant(np.arange(24, dtype=np.float32).reshape(2, 3, 4))

    def f(t):  # foldable constants, a common subexpression, a transpose pair
        a = tf.reduce_sum(tf.transpose(tf.transpose(t, [0, 2, 1]), [0, 2, 1]) * 2.0, axis=-1)
        return a + tf.reduce_sum(t * 2.0, axis=-1) + tf.constant(1.0) * 3.0

    outside = tf.function(f)(x)
    with grappler.lean():
        inside = tf.function(f)(x)
    np.testing.assert_array_equal(inside.numpy(), outside.numpy())


def test_a_failure_inside_the_block_still_gives_the_options_back():
    before = _thread_config()
    with pytest.raises(ValueError, match="user"):
        with grappler.lean():
            raise ValueError("user mistake")
    assert _thread_config() == before


def test_the_block_leaves_the_runtime_unstarted():
    # A multi-worker strategy configures its collectives before the runtime starts: lean()
    # may come first. Virtual devices, too, can only be set before the runtime starts.
    script = ("import tensorflow as tf\n"
              "from object_detection.training import grappler\n"
              "with grappler.lean():\n"
              "    pass\n"
              "cpu = tf.config.list_physical_devices('CPU')[0]\n"
              "tf.config.set_logical_device_configuration(\n"
              "    cpu, [tf.config.LogicalDeviceConfiguration()] * 2)\n"
              "print(len(tf.config.list_logical_devices('CPU')), 'CPU devices')\n")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(REPO))
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2 CPU devices" in result.stdout
