"""Grappler, TensorFlow's graph optimizer, limited to the passes that pay for themselves here.

Every compiled function (the train step, the evaluation step) is optimized by Grappler on its
first call, and a training run pays that before its first step. By default Grappler runs its
passes twice, runs the MLIR "TFG" passes around them, and runs the layout pass even when there
is no GPU. On the full SSD320 train step (2 cores, AVX2 CPU, `TF_CPP_VMODULE=meta_optimizer=1`):

- the default takes 1.7-2.3 s: a first round takes the graph from 5,532 to 4,473 nodes, and
  the second round, 0.5 s, removes 22 more (common subexpressions);
- the TFG passes take 0.3 s and change no node;
- the layout pass takes 0.12 s and changes no node without a GPU (it rewrites convolutions for
  GPUs only);
- the memory pass takes 0.46-0.92 s (0.21-0.28 s on the small CPU config's step) and adds 96
  nodes; without a GPU it buys neither speed nor memory: the step time is the same (one
  process, the step compiled with and without it, calls interleaved: full SSD320 median 9.67
  and 10.31 s with it, 9.51 and 10.63 s without; small config 0.1934 s and 0.1943 s over 148
  calls each), and so is peak memory (2,660-2,806 MiB with it, 2,628-2,704 MiB without, 3 runs
  each). Its swapping rewrites are for GPU memory.

`lean()` keeps one round, without TFG, and the layout and memory passes only where a GPU is
visible. Every pass that rewrites the graph for speed (constant folding, arithmetic, remapper
fusions) still runs.

TensorFlow exposes these switches (`RewriterConfig.meta_optimizer_iterations`,
`disable_tfg_optimizer`) only in the config proto that function calls carry, so this sets that
proto for the calling thread through `tensorflow.python.eager.context`; where a TensorFlow
version lacks it, Grappler keeps its defaults and training is unaffected.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import tensorflow as tf

from object_detection.utils.log import logger


def lean_config(config, has_gpu: bool):
    """A copy of the `ConfigProto` `config` with Grappler's lean passes."""
    from tensorflow.core.protobuf import rewriter_config_pb2

    lean = type(config)()
    lean.CopyFrom(config)
    rewrite = lean.graph_options.rewrite_options
    rewrite.meta_optimizer_iterations = rewriter_config_pb2.RewriterConfig.ONE
    rewrite.disable_tfg_optimizer = True
    if not has_gpu:
        rewrite.layout_optimizer = rewriter_config_pb2.RewriterConfig.OFF
        rewrite.memory_optimization = rewriter_config_pb2.RewriterConfig.NO_MEM_OPT
    return lean


def _lean_call_options():
    """(eager context, its options for this thread, the lean options), or None where this
    TensorFlow has no function call options."""
    try:
        from tensorflow.core.protobuf import config_pb2
        from tensorflow.python.eager import context
        ctx = context.context()
        own = ctx.function_call_options
        config = config_pb2.ConfigProto.FromString(own.config_proto_serialized)
        # Physical devices: listing the logical ones would start the runtime, after which a
        # multi-worker strategy can no longer configure its collectives.
        has_gpu = bool(tf.config.list_physical_devices("GPU"))
        return ctx, own, context.FunctionCallOptions(
            executor_type=own.executor_type, config_proto=lean_config(config, has_gpu))
    except (ImportError, AttributeError, TypeError) as e:  # another TensorFlow's internals
        logger.debug("Grappler keeps its default passes: no function call options here (%s).", e)
        return None


@contextlib.contextmanager
def lean() -> Iterator[None]:
    """Functions called in this thread inside the block are optimized (on their first call
    there) with `lean_config` of the config they would have had; the thread's own options
    come back on exit."""
    found = _lean_call_options()
    if found is None:
        yield
        return
    ctx, own, lean_options = found
    ctx.function_call_options = lean_options
    try:
        yield
    finally:
        ctx.function_call_options = own
