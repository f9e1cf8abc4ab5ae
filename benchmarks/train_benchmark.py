r"""Training benchmark: `model_main`'s train() on random data, img/s, first step, peak memory.

    python benchmarks/train_benchmark.py --pipeline_config_path=configs/ssd320_full_1gpus.config \
        --batch_size=8 --num_steps=8 --benchmark_last_k=4 [--amp] [--allow_xla] \
        [--steps_per_loop=N] [--raport_file=train_bench.json]

Runs the real training loop (train_lib.train with RunOptions(random_data=True, eval_count=0):
target assignment, forward, losses, backward, optimizer update; no input pipeline, no
evaluation) in a temporary model directory, and reports:

- `train_throughput`: mean img/s of the last K steps (K = --benchmark_last_k; 0: every step
  after the first), as train() measures it (each step timed until its loss is on the host);
- `time_to_first_step_s`: from the start of this process (Python startup, imports, model build,
  tracing and compilation included) to the end of the first training step;
- `first_step_s`: the first step alone (tracing and compilation included);
- `peak_rss_mib`: the peak resident memory of the process (resource.getrusage ru_maxrss);
- the start-up split (`startup_*_s`): before train() (Python, imports, config, engine), model
  and optimizer build, tracing the step, its first call (graph optimization, compilation and
  the first step or loop) and the rest (input pipeline, restore, reports).

With `--steps_per_loop N` the steps run N per call (`model_main --steps_per_loop`); a step's
time is then its loop's time / N.

`fine_tune_checkpoint` is ignored (random initial weights: the speed does not depend on them).
Printed, and appended to the DLLogger report as a `step: []` record.
"""
from __future__ import annotations

import time

_PROCESS_START = time.time()  # before the heavy imports: "process start" for the first step

import argparse  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from typing import Sequence  # noqa: E402

if __package__ in (None, ""):  # run as a script path: make the package importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _process_start_time() -> float:
    """Unix time the process started (from /proc on Linux; else when this module started)."""
    try:
        with open("/proc/self/stat") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])  # field 22: starttime
        with open("/proc/stat") as f:
            boot = next(int(line.split()[1]) for line in f if line.startswith("btime"))
        return boot + start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return _PROCESS_START


def peak_rss_mib() -> float:
    """Peak resident set size of this process in MiB (ru_maxrss is KiB on Linux, B on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="benchmarks/train_benchmark.py",
        description="Training throughput on random data (model_main's train loop).")
    parser.add_argument("--pipeline_config_path", required=True, help="Pipeline config file.")
    parser.add_argument("--batch_size", type=int, default=None,
                        help="Per-replica batch (default: train_config.batch_size).")
    parser.add_argument("--num_steps", type=int, default=20, help="Training steps to run.")
    parser.add_argument("--benchmark_last_k", type=int, default=0,
                        help="Throughput over the last K steps (0: all but the first).")
    parser.add_argument("--steps_per_loop", type=int, default=1,
                        help="Training steps per call of the compiled loop.")
    parser.add_argument("--amp", action="store_true", help="Mixed precision dtype policy.")
    parser.add_argument("--allow_xla", action="store_true", help="Compile the train step "
                        "with XLA.")
    parser.add_argument("--raport_file", default=None, help="DLLogger JSON-lines report.")
    parser.add_argument("--model_dir", default=None,
                        help="Where train() writes (default: a temporary directory, removed).")
    parser.add_argument("--config_override", action="append", default=[],
                        help="Dotted override of the pipeline config (repeatable).")
    args = parser.parse_args(argv)
    if args.num_steps < 1 or (args.batch_size is not None and args.batch_size < 1):
        parser.error("need --num_steps >= 1 and --batch_size >= 1.")
    if args.steps_per_loop < 1:
        parser.error("need --steps_per_loop >= 1.")
    if not 0 <= args.benchmark_last_k < args.num_steps + 1:
        parser.error("need 0 <= --benchmark_last_k <= --num_steps.")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    process_start = _process_start_time()
    from object_detection.utils.log import configure_cli_logging
    configure_cli_logging()
    from object_detection.training import distribution, precision, train_lib
    from object_detection.builders import config_rules
    from object_detection.utils.dllogger import DLLogger, read_report
    from object_detection.utils.errors import ConfigError

    overrides = list(args.config_override)
    if args.batch_size:
        overrides.append(f"train_config.batch_size={args.batch_size}")
    try:
        configs = config_rules.load_pipeline_configs(args.pipeline_config_path,
                                                             config_override=overrides)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    configs["train_config"].ClearField("fine_tune_checkpoint")  # random weights (see docstring)
    policy = precision.set_policy(args.amp)
    engine = distribution.make_engine("auto", "auto")
    model_dir = args.model_dir or tempfile.mkdtemp(prefix="train_benchmark_")
    # train() writes its per-step records here; the first one dates the end of step 1.
    steps_report = os.path.join(model_dir, "benchmark_steps.json")
    options = train_lib.RunOptions(
        model_dir=model_dir, num_train_steps=args.num_steps, eval_count=0, amp=policy != "float32",
        allow_xla=args.allow_xla, raport_file=steps_report, random_data=True,
        benchmark_last_k=args.benchmark_last_k, log_every_n=1,
        checkpoint_every_n=10 ** 9, keep_checkpoint_max=1, steps_per_loop=args.steps_per_loop)
    train_called = time.time()
    try:
        result = train_lib.train(configs, options, engine)
        step_records = [r for r in read_report(steps_report) if isinstance(r["step"], int)]
        first_step_end = step_records[0]["timestamp"] if step_records else time.time()
    finally:
        if not args.model_dir:
            shutil.rmtree(model_dir, ignore_errors=True)
    summary = {
        "train_throughput": float(result["train_throughput"]),
        "median_step_s": float(result["train_median_step_s"]),
        "time_to_first_step_s": first_step_end - process_start,
        "first_step_s": float(result["train_first_step_s"]),
        "peak_rss_mib": peak_rss_mib(),
        "global_batch_size": int(configs["train_config"].batch_size)
        * engine.num_replicas_in_sync,
        "steps": int(result["steps"]),
        "steps_per_loop": args.steps_per_loop,
        # Start-up, process start to the end of the first step: Python, imports, config and
        # engine; building the model and optimizer; tracing the step; its first call (graph
        # optimization, compilation, the first steps); the rest (restore, input, reports).
        "startup_before_train_s": train_called - process_start,
        **{k: float(v) for k, v in result.items() if k.startswith("startup_")},
    }
    summary["startup_rest_s"] = summary["time_to_first_step_s"] - sum(
        summary.get(f"startup_{k}_s", 0.0) for k in ("before_train", "build", "trace", "first_call"))
    report = DLLogger(args.raport_file)
    report.log("PARAMETER", {
        "pipeline_config_path": args.pipeline_config_path, "num_steps": args.num_steps,
        "benchmark_last_k": args.benchmark_last_k, "dtype_policy": policy,
        "allow_xla": args.allow_xla, "engine": engine.name,
        "replicas": engine.num_replicas_in_sync})
    report.log([], summary)
    last = args.benchmark_last_k or args.num_steps - 1
    print(f"train_throughput: {summary['train_throughput']:.2f} img/s (mean of the last {last} "
          f"steps, global batch {summary['global_batch_size']}, {policy}"
          f"{', XLA' if args.allow_xla else ''})")
    print(f"time to first step: {summary['time_to_first_step_s']:.1f} s from process start "
          f"(first step alone {summary['first_step_s']:.1f} s)")
    print("start-up split: " + ", ".join(
        f"{k[len('startup_'):-2]} {summary[k]:.1f} s" for k in (
            "startup_before_train_s", "startup_build_s", "startup_trace_s",
            "startup_first_call_s", "startup_rest_s") if k in summary))
    print(f"peak memory (RSS): {summary['peak_rss_mib']:.0f} MiB", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
