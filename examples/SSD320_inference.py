r"""Inference benchmark of a detector (the seed's examples/SSD320_inference.py, on TF 2).

    python examples/SSD320_inference.py --pipeline_config_path=configs/ssd320_full_1gpus.config \
        [--checkpoint_dir=/results/SSD320_FP16_1GPU] --batch_size=8 --warmup_iters=100 \
        --benchmark_iters=300 [--amp] [--allow_xla] [--raport_file=summary.json]

Times the full inference of a batch of random uint8 images at the model's input size: the cast,
the network (preprocessing, backbone, FPN, box predictor) and the post-processing (box decoding,
sigmoid and batched multiclass NMS), in one tf.function, waiting for the results of every
iteration. Without --checkpoint_dir the weights are random (the speed does not depend on them).
`--amp` sets the mixed dtype policy (mixed_bfloat16 on Ampere+ GPUs and CPUs with native
bfloat16, mixed_float16 on older GPUs, float32 on other CPUs); `--allow_xla` compiles the network with XLA (NMS stays outside, as in training).

Prints and writes to the DLLogger report (`--raport_file`) the seed's keys: `infer_throughput`
(img/s = batch_size x benchmark_iters / total time), `eval_avg_latency` and
`eval_{p}%_latency` (ms per batch) for p = 50 and each of `--percentiles`. `--breakdown` also
times the pieces separately (backbone+FPN, box predictor, post-processing).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Sequence

if __package__ in (None, ""):  # run as a script path: make the package importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="examples/SSD320_inference.py",
        description="Inference throughput and latency of a detector on random input.")
    parser.add_argument("--pipeline_config_path", required=True, help="Pipeline config file.")
    parser.add_argument("--checkpoint_dir", default=None,
                        help="Directory holding a checkpoint; omitted: random weights.")
    parser.add_argument("--batch_size", type=int, default=1, help="Images per batch.")
    parser.add_argument("--warmup_iters", type=int, default=100,
                        help="Iterations run before timing (tracing included).")
    parser.add_argument("--benchmark_iters", type=int, default=300,
                        help="Iterations timed.")
    parser.add_argument("--percentiles", default="90,95,99",
                        help="Comma-separated latency percentiles (50 is always reported).")
    parser.add_argument("--raport_file", default="summary.json",
                        help="DLLogger JSON-lines report (appended to).")
    parser.add_argument("--amp", action="store_true", help="Mixed precision dtype policy.")
    parser.add_argument("--allow_xla", action="store_true",
                        help="Compile the network (not NMS) with XLA.")
    parser.add_argument("--breakdown", action="store_true",
                        help="Also time backbone+FPN, box predictor and post-processing alone.")
    parser.add_argument("--config_override", action="append", default=[],
                        help="Dotted override of the pipeline config (repeatable).")
    args = parser.parse_args(argv)
    if args.batch_size < 1 or args.benchmark_iters < 1 or args.warmup_iters < 0:
        parser.error("need --batch_size >= 1, --benchmark_iters >= 1, --warmup_iters >= 0.")
    try:
        args.percentiles = [float(p) for p in args.percentiles.split(",") if p.strip()]
    except ValueError:
        parser.error(f"--percentiles {args.percentiles!r}: expected numbers like 90,95,99.")
    if not all(0 < p < 100 for p in args.percentiles):
        parser.error("--percentiles must be in (0, 100).")
    return args


def _pname(p: float) -> str:
    return f"{p:g}"


def latency_summary(times_s: Sequence[float], batch_size: int,
                    percentiles: Sequence[float]) -> dict[str, float]:
    """The seed's report keys from per-iteration wall times (seconds)."""
    import numpy as np

    ms = 1000.0 * np.asarray(times_s, np.float64)
    summary = {
        "infer_throughput": batch_size * len(ms) / max(ms.sum() / 1000.0, 1e-12),
        "eval_avg_latency": float(ms.mean()),
    }
    for p in sorted({50.0, *percentiles}):
        summary[f"eval_{_pname(p)}%_latency"] = float(np.percentile(ms, p))
    return summary


def _time(fn, args, iters: int) -> list[float]:
    import tensorflow as tf

    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        out = fn(*args)
        for t in tf.nest.flatten(out):  # wait for every output
            t.numpy()
        times.append(time.perf_counter() - t0)
    return times


def breakdown(model, images, iters: int) -> dict[str, float]:
    """Mean ms per batch of each piece run alone (every piece in its own tf.function)."""
    import tensorflow as tf

    extractor, predictor = model.feature_extractor, model.box_predictor

    @tf.function
    def features_fn(x):
        return extractor(extractor.preprocess(tf.cast(x, tf.float32)), training=False)

    @tf.function
    def predictor_fn(features):
        return predictor(features, training=False)

    @tf.function
    def postprocess_fn(predictions):
        return model.postprocess(predictions)

    features = features_fn(images)
    raw = predictor_fn(features)
    predictions = {k: tf.cast(v, tf.float32) for k, v in raw.items()}
    postprocess_fn(predictions)
    result = {}
    for name, fn, arg in (("backbone_fpn", features_fn, images),
                          ("box_predictor", predictor_fn, features),
                          ("postprocess_nms", postprocess_fn, predictions)):
        result[f"{name}_ms"] = 1000.0 * float(sum(_time(fn, (arg,), iters))) / iters
    return result


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from object_detection.utils.log import configure_cli_logging
    configure_cli_logging()
    import numpy as np
    import tensorflow as tf

    from object_detection.export import exporter_lib
    from object_detection.training import precision
    from object_detection.builders import config_rules
    from object_detection.utils.dllogger import DLLogger
    from object_detection.utils.errors import ConfigError

    policy = precision.set_policy(args.amp)
    try:
        configs = config_rules.load_pipeline_configs(
            args.pipeline_config_path, config_override=args.config_override)
        model = exporter_lib.build_model(configs)
        if args.checkpoint_dir:
            exporter_lib.restore_model(model, args.checkpoint_dir)
    except (ConfigError, FileNotFoundError, exporter_lib.CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    height, width = model.image_size
    rng = np.random.default_rng(0)
    images = tf.constant(rng.integers(0, 256, [args.batch_size, height, width, 3], np.uint8))

    @tf.function(jit_compile=args.allow_xla)
    def network(x):
        return model(tf.cast(x, tf.float32), training=False)

    @tf.function
    def infer(x):
        return model.postprocess(network(x))

    report = DLLogger(args.raport_file)
    report.log("PARAMETER", {
        "pipeline_config_path": args.pipeline_config_path,
        "checkpoint_dir": args.checkpoint_dir or "", "batch_size": args.batch_size,
        "warmup_iters": args.warmup_iters, "benchmark_iters": args.benchmark_iters,
        "dtype_policy": policy, "allow_xla": args.allow_xla, "image_size": f"{height}x{width}",
        "devices": ",".join(d.device_type for d in tf.config.list_logical_devices())})
    t0 = time.perf_counter()
    warmup = _time(infer, (images,), max(args.warmup_iters, 1))  # >= 1: the trace is not timed
    print(f"warm-up: {len(warmup)} iterations in {time.perf_counter() - t0:.1f} s "
          f"(first, with tracing: {warmup[0]:.2f} s)", flush=True)
    times = _time(infer, (images,), args.benchmark_iters)
    summary = latency_summary(times, args.batch_size, args.percentiles)
    if args.breakdown:
        summary.update(breakdown(model, images, max(1, min(args.benchmark_iters, 10))))
    report.log([], summary)

    print(f"Benchmark result: {summary['infer_throughput']:.2f} img/s "
          f"(batch {args.batch_size}, {policy}{', XLA' if args.allow_xla else ''})")
    print(f"Latency avg: {summary['eval_avg_latency']:.2f} ms")
    for key, value in summary.items():
        if key.startswith("eval_") and key != "eval_avg_latency":
            print(f"Latency {key[len('eval_'):-len('_latency')]}: {value:.2f} ms")
        elif key.endswith("_ms"):
            print(f"{key[:-3]}: {value:.2f} ms per batch")
    if args.raport_file:
        print(f"report: {args.raport_file}", flush=True)
    return 0


if __name__ == "__main__":
    from object_detection.utils import malloc

    malloc.keep_freed_memory()  # each batch reuses the memory the last one freed
    sys.exit(main())
