r"""Latency of every shipped form of one detector, side by side in one run, batch 1.

    python benchmarks/export_latency_benchmark.py [--pipeline_config_path=configs/ssd320_full_1gpus.config] \
        [--runs=30] [--threads=2] [--skip=onnx,bf16]

Builds the model of the config with random weights (latency does not depend on them) and
measures, on one 320x320 image, with `--threads` threads each:
  savedmodel_fp32   the SavedModel signature (exporter_lib), uint8 image in, NMS included;
  savedmodel_bf16   the same exported under mixed_bfloat16 (`--amp`, `--amp_on_cpu=bfloat16` on
                    a CPU without native bfloat16);
  tflite_fp32 / tflite_fp16 / tflite_int8   the .tflite (LiteRT, XNNPACK), fast NMS, 100
                    detections, normalized float input (int8 calibrated on random images:
                    enough for speed, meaningless for accuracy);
  onnx_fp32         ONNX Runtime (CPU provider), post-processing in the graph.
Each is warmed up, then run `--runs` times; printed: p50 and p90 in ms and the p50 ratio to
savedmodel_fp32. Name the CPU with the figures: it is printed first.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from typing import Callable, Sequence

if __package__ in (None, ""):  # run as a script path: make the package importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FORMS = ("savedmodel_fp32", "savedmodel_bf16", "tflite_fp32", "tflite_fp16", "tflite_int8",
         "onnx_fp32")


def cpu_description() -> str:
    """The CPU model and whether it has native bfloat16 (avx512_bf16 / AMX)."""
    name, flags = "unknown CPU", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and name == "unknown CPU":
                    name = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and not flags:
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    extras = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    return f"{name}, {os.cpu_count()} cores, {' '.join(extras) or 'no AVX2'}"


def time_runs(fn: Callable[[], object], runs: int, warmup: int = 3) -> np.ndarray:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return np.asarray(times) * 1000.0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="benchmarks/export_latency_benchmark.py",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline_config_path",
                        default=os.path.join(REPO, "configs", "ssd320_full_1gpus.config"))
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip", default="", help=f"Comma-separated forms to leave out of "
                        f"{', '.join(FORMS)} (substrings match: onnx, bf16, tflite).")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.threads < 1:
        parser.error("need --runs >= 1 and --threads >= 1.")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    skip = [s for s in args.skip.split(",") if s]
    forms = [f for f in FORMS if not any(s in f for s in skip)]
    print(f"CPU: {cpu_description()}", flush=True)
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from object_detection.export import exporter_lib, tflite_exporter
    from object_detection.training import precision
    from object_detection.utils import config_util

    configs = config_util.get_configs_from_pipeline_file(args.pipeline_config_path)
    work = tempfile.mkdtemp(prefix="export_latency_")
    rng = np.random.default_rng(0)
    model = exporter_lib.build_model(configs)
    height, width = model.image_size
    image = rng.integers(0, 256, (1, height, width, 3), dtype=np.uint8)
    runners: dict[str, Callable[[], object]] = {}

    def saved_model_runner(directory):
        loaded = tf.saved_model.load(os.path.join(directory, "saved_model"))
        signature = loaded.signatures["serving_default"]
        tensor = tf.constant(image)
        run = lambda: signature(input_tensor=tensor)["num_detections"].numpy()  # noqa: E731
        run.keep_alive = loaded
        return run

    start = time.perf_counter()
    if "savedmodel_fp32" in forms:
        exporter_lib.export_model(model, configs, os.path.join(work, "fp32"))
        runners["savedmodel_fp32"] = saved_model_runner(os.path.join(work, "fp32"))
    if "savedmodel_bf16" in forms:
        policy = precision.set_policy(True, cpu_bfloat16="force")
        amp_model = exporter_lib.build_model(configs)
        amp_model.set_weights(model.get_weights())
        exporter_lib.export_model(amp_model, configs, os.path.join(work, "amp"))
        precision.set_policy(False, False)
        print(f"savedmodel_bf16 policy: {policy}", flush=True)
        runners["savedmodel_bf16"] = saved_model_runner(os.path.join(work, "amp"))
    tflite_forms = [f for f in forms if f.startswith("tflite")]
    if tflite_forms:
        module = tflite_exporter.TFLiteDetectionModule(model, 100, use_regular_nms=False)
        tflite_saved = os.path.join(work, "tflite", "saved_model")
        tf.saved_model.save(module, tflite_saved,
                            signatures={"serving_default": module.serve.get_concrete_function()})
        normalized = tflite_exporter.normalized_input(model, image)

        def calibration():
            for _ in range(8):
                yield [tflite_exporter.normalized_input(
                    model, rng.integers(0, 256, image.shape, dtype=np.uint8))]

        for form in tflite_forms:
            quantize = {"tflite_fp32": "none", "tflite_fp16": "fp16", "tflite_int8": "int8"}[form]
            path = os.path.join(work, f"{form}.tflite")
            tflite_exporter.convert(tflite_saved, path, quantize,
                                    calibration if quantize == "int8" else None)
            detector = tflite_exporter.TFLiteDetector(path, num_threads=args.threads)
            runners[form] = (lambda d=detector: d(normalized))
    if "onnx_fp32" in forms:
        from object_detection.export import onnx_exporter

        path = onnx_exporter.convert_model(model, os.path.join(work, "model.onnx"),
                                           batch_size=1)
        runner = onnx_exporter.OnnxRunner(path, num_threads=args.threads)
        resized = image.astype(np.float32)
        runners["onnx_fp32"] = lambda: runner(resized)
    print(f"exports and conversions: {time.perf_counter() - start:.0f} s; measuring "
          f"{args.runs} runs each, interleaved", flush=True)

    # Interleaved rounds, so that a change of machine load hits every form alike.
    times = {form: [] for form in runners}
    for form, run in runners.items():
        time_runs(run, 0, warmup=3)
    for _ in range(args.runs):
        for form, run in runners.items():
            times[form].extend(time_runs(run, 1, warmup=0))
    base = np.median(times["savedmodel_fp32"]) if "savedmodel_fp32" in times else None
    print(f"\n| form (batch 1, {height}x{width}, {args.threads} threads) | p50 ms | p90 ms | "
          "p50 / savedmodel_fp32 |")
    print("|---|---|---|---|")
    for form, values in times.items():
        p50, p90 = np.percentile(values, 50), np.percentile(values, 90)
        ratio = f"{p50 / base:.2f}" if base else "-"
        print(f"| {form} | {p50:.1f} | {p90:.1f} | {ratio} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
