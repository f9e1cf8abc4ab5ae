r"""Where a training step (or an inference call) spends its time, op type by op type, against
the matmul roof measured in the same process (not a test).

    python benchmarks/op_profile.py [--pipeline_config_path=configs/ssd320_full_1gpus.config] \
        [--mode=train|infer] [--batch_size=8] [--steps=3] [--amp] [--top=25]

Builds the model of the config with random weights, on random data (as `train_benchmark.py`),
warms the compiled step up, then records `--steps` steps with the TensorFlow profiler and sums
the kernel time of every op by type (the graph as it runs, after Grappler: `_FusedConv2D` is a
convolution with its bias and activation). FLOPs come from the traced graph's static shapes
(2 per multiply-add, for convolutions, their two gradients and matmuls); their rate is
compared with a float32 (or bfloat16 with --amp) 4096x4096 matmul timed in the same process,
and with a 3x3 convolution of the FPN's size (the rate the network's convolutions can reach).
Printed: per op type, calls and ms per step, share of the summed kernel time, GFLOP per step,
GFLOP/s and % of the conv roof; then the totals by family (convolutions, element-wise and
reductions, data movement, the rest).

By default ops run one at a time (`--inter_op_threads 1`; each still uses every core), so the
kernel times add up to the step; with TensorFlow's default, ops that overlap on different
threads are each charged their whole time. Name the CPU with the figures (printed first).
"""
from __future__ import annotations

import argparse
import collections
import glob
import os
import re
import sys
import tempfile
from typing import Sequence

if __package__ in (None, ""):  # run as a script path: make the package importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from benchmarks.export_latency_benchmark import cpu_description, time_runs  # noqa: E402

# Op types by family (post-Grappler names included); anything else is "other".
CONV_OPS = {"Conv2D", "_FusedConv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter",
            "DepthwiseConv2dNative", "_FusedDepthwiseConv2dNative",
            "DepthwiseConv2dNativeBackpropInput", "DepthwiseConv2dNativeBackpropFilter",
            "MatMul", "_FusedMatMul", "BatchMatMulV2", "BatchMatMulV3"}
MOVEMENT_OPS = {"Transpose", "ConcatV2", "Slice", "StridedSlice", "Pad", "PadV2", "Reshape",
                "Tile", "GatherV2", "Pack", "Unpack", "Split", "SplitV", "Identity", "Cast",
                "_MklToTf", "Fill", "BroadcastTo", "ResizeBilinear", "ResizeNearestNeighbor",
                "ResizeNearestNeighborGrad", "ResizeBilinearGrad", "TensorScatterUpdate",
                "ScatterNd", "StridedSliceGrad", "Select", "SelectV2", "OneHot"}
ELEMENTWISE_HINTS = ("Add", "Sub", "Mul", "Div", "Relu", "Sigmoid", "Exp", "Log", "Square",
                     "Sqrt", "Rsqrt", "Maximum", "Minimum", "Abs", "Neg", "Sum", "Mean",
                     "Max", "Min", "Prod", "BiasAdd", "FusedBatchNorm", "Softplus", "Pow",
                     "Greater", "Less", "Equal", "Where", "LogicalAnd", "LogicalOr",
                     "ArgMax", "Apply", "Tanh", "Reciprocal", "Floor", "Round", "Clip",
                     "SquaredDifference", "Cumsum", "L2Loss")


def family(op_type: str) -> str:
    if op_type in CONV_OPS:
        return "convolution / matmul"
    if op_type in MOVEMENT_OPS:
        return "data movement"
    if any(h in op_type for h in ELEMENTWISE_HINTS):
        return "element-wise / reduction / optimizer"
    return "other"


# Convolutions and their gradients: (the forward output, the kernel, the kernel axis multiplied
# in: input depth for a convolution, the depth multiplier for a depthwise one).
_OUT, _GRAD_OUT = (lambda op: op.outputs[0]), (lambda op: op.inputs[2])
_KERNEL_IN, _KERNEL_OUT = (lambda op: op.inputs[1]), (lambda op: op.outputs[0])
CONV_SHAPES = {
    "Conv2D": (_OUT, _KERNEL_IN, 2),
    "Conv2DBackpropInput": (_GRAD_OUT, _KERNEL_IN, 2),
    "Conv2DBackpropFilter": (_GRAD_OUT, _KERNEL_OUT, 2),
    "DepthwiseConv2dNative": (_OUT, _KERNEL_IN, 3),
    "DepthwiseConv2dNativeBackpropInput": (_GRAD_OUT, _KERNEL_IN, 3),
    "DepthwiseConv2dNativeBackpropFilter": (_GRAD_OUT, _KERNEL_OUT, 3),
}


def graph_flops(graph) -> dict[str, float]:
    """FLOPs (2 per multiply-add) by op type of a traced graph, from static shapes; also
    inside the functions it calls (the train step nests tf.functions)."""
    flops: dict[str, float] = collections.defaultdict(float)

    def shape(t):
        s = t.shape
        return None if s.rank is None or None in s.as_list() else s.as_list()

    def visit(g, seen):
        for op in g.get_operations():
            t = op.type
            try:
                if t in CONV_SHAPES:  # 2 x (forward output size) x (kernel h x w x depth)
                    output_of, kernel_of, depth = CONV_SHAPES[t]
                    out, kernel = shape(output_of(op)), shape(kernel_of(op))
                    if out and kernel:
                        flops[t] += 2.0 * np.prod(out) * kernel[0] * kernel[1] * kernel[depth]
                elif t in ("MatMul", "BatchMatMulV2", "BatchMatMulV3"):
                    a, out = shape(op.inputs[0]), shape(op.outputs[0])
                    if a and out:
                        transpose_a = op.get_attr("transpose_a") if t == "MatMul" \
                            else op.get_attr("adj_x")
                        k = a[-2] if transpose_a else a[-1]
                        flops[t] += 2.0 * np.prod(out) * k
            except (ValueError, TypeError):
                pass
            for attr in ("f", "then_branch", "else_branch", "body", "cond"):
                try:
                    name = op.get_attr(attr).name
                except (ValueError, AttributeError):
                    continue
                fn = g._functions.get(name) if hasattr(g, "_functions") else None
                if fn is not None and name not in seen:
                    seen.add(name)
                    visit(fn.graph, seen)

    visit(graph, set())
    return dict(flops)


# Grappler fuses a forward convolution with its bias and activation (_FusedConv2D): rows are
# op types with the fused forms counted under the plain one, whose FLOPs they carry.
FUSED_AS = {"_FusedConv2D": "Conv2D", "_FusedDepthwiseConv2dNative": "DepthwiseConv2dNative",
            "_FusedMatMul": "MatMul"}


def _rate(fn, x, flop: float, runs: int) -> float:
    """GFLOP/s of fn(x): `flop` over the median of `runs` timed calls."""
    return flop / float(np.median(time_runs(lambda: fn(x).numpy(), runs, warmup=1))) * 1e3 / 1e9


def roofs(dtype: str, runs: int = 5) -> tuple[float, float]:
    """GFLOP/s in `dtype` of a 4096x4096 matmul and of a 3x3 convolution 256 -> 256 channels on
    8 x 40 x 40 (the size of the FPN's P3 level at 320x320, batch 8), medians of `runs`."""
    import tensorflow as tf

    a = tf.cast(tf.random.uniform([4096, 4096]), dtype)
    matmul = _rate(tf.function(lambda x: tf.linalg.matmul(x, x)), a, 2.0 * 4096 ** 3, runs)
    x = tf.cast(tf.random.uniform([8, 40, 40, 256]), dtype)
    w = tf.cast(tf.random.uniform([3, 3, 256, 256]), dtype)
    conv = _rate(tf.function(lambda x: tf.nn.conv2d(x, w, 1, "SAME")), x,
                 2.0 * 8 * 40 * 40 * 256 * 9 * 256, runs * 4)
    return matmul, conv


def op_times(logdir: str) -> tuple[dict[str, float], dict[str, int]]:
    """Summed kernel microseconds and call counts by op type, from the profiler's XPlane."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    paths = glob.glob(os.path.join(logdir, "plugins", "profile", "*", "*.xplane.pb"))
    if not paths:
        raise SystemExit(f"no profile written under {logdir}")
    space = xplane_pb2.XSpace()
    with open(paths[0], "rb") as f:
        space.ParseFromString(f.read())
    pattern = re.compile(r"^[^\s:]+:([A-Za-z_][A-Za-z0-9_]*)$")  # "op/name:OpType"
    micros: dict[str, float] = collections.defaultdict(float)
    calls: dict[str, int] = collections.defaultdict(int)
    for plane in space.planes:
        if not plane.name.startswith("/host:CPU"):
            continue
        names = {k: m.name for k, m in plane.event_metadata.items()}
        for line in plane.lines:
            for event in line.events:
                match = pattern.match(names.get(event.metadata_id, ""))
                if match:
                    micros[match.group(1)] += event.duration_ps / 1e6
                    calls[match.group(1)] += 1
    return dict(micros), dict(calls)


def build_step(args):
    """(a call of the compiled step or inference, the traced graph to count FLOPs in)."""
    import keras
    import tensorflow as tf

    from object_detection.builders import config_rules
    from object_detection.training import distribution, precision, train_lib, train_step

    overrides = list(args.config_override) + [f"train_config.batch_size={args.batch_size}"]
    configs = config_rules.load_pipeline_configs(args.pipeline_config_path,
                                                 config_override=overrides)
    configs["train_config"].ClearField("fine_tune_checkpoint")
    precision.set_policy(args.amp)
    engine = distribution.make_engine("tf", "default")
    keras.utils.set_random_seed(0)
    # The run state holds the model, optimizer and variables; nothing is written.
    run = train_lib.RunState(configs, train_lib.RunOptions(model_dir="unused", amp=args.amp),
                             engine)
    image_size = run.model.image_size
    if args.mode == "train":
        dataset_fn = train_step.random_dataset_fn(image_size, args.batch_size,
                                                  run.plans.train.max_number_of_boxes)
        iterator = iter(engine.distribute_dataset(dataset_fn))
        step = train_step.make_train_step(run)
        stop = tf.constant(0.0)
        concrete = step.get_concrete_function(iterator, stop)
        return (lambda: step(iterator, stop)), concrete.graph
    model = run.model
    images = tf.random.uniform([args.batch_size, *image_size, 3], 0, 255)

    @tf.function(autograph=False)
    def infer(x):
        return model.postprocess(model(x, training=False))

    concrete = infer.get_concrete_function(images)
    return (lambda: infer(images)), concrete.graph


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pipeline_config_path", default="configs/ssd320_full_1gpus.config")
    parser.add_argument("--mode", choices=["train", "infer"], default="train")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3, help="profiled steps (after 2 warm-up)")
    parser.add_argument("--amp", action="store_true", help="bfloat16 / float16 policy")
    parser.add_argument("--top", type=int, default=25, help="op types listed")
    parser.add_argument("--config_override", action="append", default=[])
    parser.add_argument("--inter_op_threads", type=int, default=1,
                        help="ops run one at a time (1, the default) so that kernel times add "
                             "up to the step; 0: TensorFlow's default (overlapping kernels)")
    args = parser.parse_args(argv)
    import tensorflow as tf

    if args.inter_op_threads:
        tf.config.threading.set_inter_op_parallelism_threads(args.inter_op_threads)

    print(f"CPU: {cpu_description()}; inter-op threads: {args.inter_op_threads or 'default'}")
    call, graph = build_step(args)
    flops = graph_flops(graph)
    fetch = lambda: tf.nest.map_structure(np.asarray, call())  # noqa: E731 (waits for it)
    for _ in range(2):  # warm-up: graph optimization, first-run allocations
        fetch()
    with tempfile.TemporaryDirectory(prefix="op_profile_") as logdir:
        tf.profiler.experimental.start(logdir)
        step_ms = float(np.median(time_runs(fetch, args.steps, warmup=0)))
        tf.profiler.experimental.stop()
        micros, calls = op_times(logdir)
    dtype = "bfloat16" if args.amp else "float32"
    roof, conv_roof = roofs(dtype)
    time_of: dict[str, float] = collections.defaultdict(float)
    calls_of: dict[str, int] = collections.defaultdict(int)
    for t, us in micros.items():
        time_of[FUSED_AS.get(t, t)] += us / 1e3 / args.steps
        calls_of[FUSED_AS.get(t, t)] += calls[t] // args.steps
    total_ms = sum(time_of.values())
    print(f"{args.mode}, batch {args.batch_size}, {dtype}: step {step_ms:.0f} ms (median of "
          f"{args.steps}, profiler on), kernels summed {total_ms:.0f} ms/step")
    print(f"roofs in this process ({dtype}): matmul 4096x4096 {roof:.0f} GFLOP/s, "
          f"conv 3x3 256->256 on 8x40x40 {conv_roof:.0f} GFLOP/s")
    print(f"{'op type (fused forms included)':34s} {'calls':>6s} {'ms/step':>8s} {'share':>6s} "
          f"{'GFLOP':>7s} {'GFLOP/s':>8s} {'% conv roof':>11s}")
    for t in sorted(time_of, key=time_of.get, reverse=True)[:args.top]:
        ms, g = time_of[t], flops.get(t, 0.0) / 1e9
        row = f"{t:34s} {calls_of[t]:6d} {ms:8.1f} {100 * ms / total_ms:5.1f}%"
        if g and ms:
            rate = g / (ms / 1e3)
            row += f" {g:7.1f} {rate:8.1f} {100 * rate / conv_roof:10.0f}%"
        print(row)
    by_family: dict[str, float] = collections.defaultdict(float)
    for t, ms in time_of.items():
        by_family[family(t)] += ms
    conv_gflop = sum(flops.values()) / 1e9
    print("by family:")
    for name, ms in sorted(by_family.items(), key=lambda kv: -kv[1]):
        extra = ""
        if name == "convolution / matmul" and ms:
            rate = conv_gflop / (ms / 1e3)
            extra = (f"  {conv_gflop:.1f} GFLOP at {rate:.0f} GFLOP/s = "
                     f"{100 * rate / conv_roof:.0f}% of the conv roof")
        print(f"  {name:38s} {ms:8.1f} ms/step {100 * ms / total_ms:5.1f}%{extra}")
    at_roof_ms = 1e3 * conv_gflop / conv_roof
    print(f"the step's {conv_gflop:.1f} GFLOP at the conv roof: {at_roof_ms:.0f} ms; the step "
          f"took {step_ms:.0f} ms ({100 * at_roof_ms / step_ms:.0f}% of the roof)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
