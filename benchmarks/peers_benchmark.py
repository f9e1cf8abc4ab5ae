r"""This project against its peers, interleaved in one run: one table, ratios to the best peer.

    python benchmarks/peers_benchmark.py --peers_dir /tmp/peers [--rounds 2] \
        [--modes train_fp32,train_bf16,infer_fp32,infer_bf16,infer1_fp32,infer1_bf16] \
        [--peers odapi,tfmg,torchvision,kerashub] [--json peers.json]

(`--modes` also takes `train_small_fp32`, the small CPU config against the OD API; all by default.)

The peers are the scripts of `../shared/peers/` in their own venvs (`--peers_dir`, built by its
setup.sh; the OD API peer also needs `odapi/` there): the TF OD API on the same net (SSD320:
ResNet50 v1 FPN P3-P7, weight-shared predictor, 6 anchors, 320x320), Model Garden RetinaNet,
torchvision RetinaNet (6 anchors) and KerasHub RetinaNet, all on random data. This project runs
`benchmarks/train_benchmark.py` (the real train loop on random batches) and
`examples/SSD320_inference.py` (preprocessing, network, decoding and NMS in one tf.function)
on `configs/ssd320_full_1gpus.config`, with this interpreter.

Each round runs every mode for this project and then for every peer, one process at a time
(project, peer, peer, ..., next mode), so that slow drift of the machine falls on all alike.
Each figure is the median over rounds of each run's median step. Rows:

- `train b8 fp32` / `train b8 bf16`: img/s, batch 8 (bf16: mixed_bfloat16 for all);
- `infer b8 fp32` / `infer b8 bf16`: img/s, batch 8, NMS included;
- `infer b1 fp32` / `infer b1 bf16`: p50 latency in ms, batch 1;
- `start to first train step`: s, from process start to the end of the first training step
  (fp32 train runs): imports, build, tracing, graph optimization and the step itself;
- `peak RSS train fp32`: MiB;
- `small: ...` (mode `train_small_fp32`): the same three rows for this project's small CPU config
  (`configs/ssd_mobilenet_v2_fpn_shapes_128_cpu.config`: MobileNet v2 FPN, 128x128), batch 8,
  with 90 classes and no moving average on both sides (the OD API peer's random labels are
  one-hot over 90 classes, and its step keeps no moving average). Only the OD API runs that
  network: its own script, its step and its timing, on that config (`odapi_on_config.py`).

The ratio is this project / best peer for speeds and best peer / this project for times and
memory: >= 1.00 means this project is ahead. Name the CPU with the figures (printed first): a
machine without native bfloat16 (no avx512_bf16 / AMX) runs bf16 no faster than fp32.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Sequence

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(REPO, "configs", "ssd320_full_1gpus.config")
SMALL_CONFIG = os.path.join(REPO, "configs", "ssd_mobilenet_v2_fpn_shapes_128_cpu.config")
# The small config as the OD API peer can run it, on both sides (see the docstring).
SMALL_OVERRIDES = ["model.ssd.num_classes=90", "train_config.optimizer.use_moving_average=false"]
SMALL_SIZE = 128

MODES = {  # name: (mode, batch, dtype)
    "train_fp32": ("train", 8, "fp32"),
    "train_bf16": ("train", 8, "bf16"),
    "infer_fp32": ("infer", 8, "fp32"),
    "infer_bf16": ("infer", 8, "bf16"),
    "infer1_fp32": ("infer", 1, "fp32"),
    "infer1_bf16": ("infer", 1, "bf16"),
    "train_small_fp32": ("train", 8, "fp32"),
}
SMALL_MODES = {"train_small_fp32"}  # modes on the small config
SMALL_PEERS = {"odapi"}  # the peers that run the small config's network
# name: (label, venv folder, script, extra arguments, extra environment)
PEERS = {
    "odapi": ("TF OD API", "tfmg", "bench_odapi.py", [], {"TF_USE_LEGACY_KERAS": "1"}),
    "tfmg": ("Model Garden", "tfmg", "bench_tfmg.py", ["--nms", "batched"], {}),
    "torchvision": ("torchvision", "tv", "bench_torchvision.py", ["--model", "retinanet6"], {}),
    "kerashub": ("KerasHub", "k3", "bench_kerashub.py", [], {}),
}


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
    except OSError:
        return "unknown CPU"
    model = next((l.split(":", 1)[1].strip() for l in text.splitlines()
                  if l.startswith("model name")), "unknown CPU")
    flags = set(next((l.split(":", 1)[1].split() for l in text.splitlines()
                      if l.startswith("flags")), []))
    native = [f for f in ("avx512_bf16", "amx_bf16") if f in flags]
    simd = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    return (f"{model}, {os.cpu_count()} cores, {simd}, "
            f"{'native bfloat16 (' + ', '.join(native) + ')' if native else 'no native bfloat16'}")


def _run(cmd: list[str], env: dict | None = None, timeout: float = 3600) -> str:
    """Runs a benchmark process; its stdout (raises with the tail of its output on failure)."""
    proc = subprocess.run(cmd, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})},
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited with {proc.returncode}:\n"
                           + "\n".join(proc.stdout.splitlines()[-15:]))
    return proc.stdout


def _last_record(path: str) -> dict:
    """The data of the last summary (`step: []`) record of a DLLogger report."""
    with open(path) as f:
        records = [json.loads(l[len("DLLL "):] if l.startswith("DLLL ") else l)
                   for l in f if l.strip()]
    return next(r["data"] for r in reversed(records) if r.get("step") == [])


def small_config_for_odapi(work: str) -> str:
    """The small config with `SMALL_OVERRIDES`, written where the OD API peer reads it."""
    from object_detection.builders import config_rules
    from object_detection.utils import config_util

    configs = config_rules.load_pipeline_configs(SMALL_CONFIG, config_override=SMALL_OVERRIDES)
    return str(config_util.save_pipeline_config(
        config_util.create_pipeline_proto_from_configs(configs),
        os.path.join(work, "odapi_small_config")))


def run_project(mode: str, batch: int, dtype: str, warmup: int, steps: int,
                work: str, small: bool = False) -> dict:
    report = os.path.join(work, f"project_{mode}_{batch}_{dtype}{'_small' * small}.json")
    if os.path.exists(report):
        os.remove(report)
    amp = ["--amp"] if dtype == "bf16" else []
    if mode == "train":
        config = [f"--pipeline_config_path={SMALL_CONFIG}",
                  *(f"--config_override={o}" for o in SMALL_OVERRIDES)] if small else [
                  f"--pipeline_config_path={CONFIG}"]
        _run([sys.executable, os.path.join(REPO, "benchmarks", "train_benchmark.py"),
              *config, f"--batch_size={batch}",
              f"--num_steps={warmup + steps}", f"--benchmark_last_k={steps}",
              f"--raport_file={report}", *amp])
        data = _last_record(report)
        return {"img_per_s": batch / data["median_step_s"], "median_s": data["median_step_s"],
                "time_to_first_step_s": data["time_to_first_step_s"],
                "peak_rss_mib": data["peak_rss_mib"]}
    _run([sys.executable, os.path.join(REPO, "examples", "SSD320_inference.py"),
          f"--pipeline_config_path={CONFIG}", f"--batch_size={batch}",
          f"--warmup_iters={warmup}", f"--benchmark_iters={steps}", "--percentiles=90",
          f"--raport_file={report}", *amp])
    median_s = _last_record(report)["eval_50%_latency"] / 1000.0
    return {"img_per_s": batch / median_s, "median_s": median_s}


def run_peer(name: str, peers_dir: str, mode: str, batch: int, dtype: str, warmup: int,
             steps: int, small_config: str | None = None) -> dict:
    """Runs a peer's script; with `small_config` (OD API only), on that config at 128x128."""
    _, venv, script, extra, env = PEERS[name]
    env = dict(env)
    if name == "odapi":
        env["PYTHONPATH"] = os.path.join(peers_dir, "odapi")
    command = [os.path.join(peers_dir, script)]
    if small_config:
        command = [os.path.join(REPO, "benchmarks", "odapi_on_config.py"), peers_dir,
                   small_config, "--size", str(SMALL_SIZE)]
    out = _run([os.path.join(peers_dir, venv, "bin", "python"), *command,
                "--mode", mode, "--batch", str(batch), "--dtype", dtype, "--warmup", str(warmup),
                "--steps", str(steps), *extra], env=env)
    line = next(l for l in reversed(out.splitlines()) if l.startswith("{"))
    return json.loads(line)


def _rows(results: dict, runners: list[str], modes: list[str]) -> list[tuple]:
    """(label, unit, higher_is_better, {runner: value})."""
    def median(runner, mode, key, scale=1.0):
        values = [r[key] * scale for r in results.get((runner, mode), []) if key in r]
        return statistics.median(values) if values else None

    def net(mode):
        return "small: " if mode in SMALL_MODES else ""

    rows = []
    for mode in modes:
        kind, batch, dtype = MODES[mode]
        if kind == "infer" and batch == 1:
            rows.append((f"infer b1 {dtype}, p50", "ms", False,
                         {r: median(r, mode, "median_s", 1000.0) for r in runners}))
        else:
            rows.append((f"{net(mode)}{kind} b{batch} {dtype}", "img/s", True,
                         {r: median(r, mode, "img_per_s") for r in runners}))
    for mode in modes:  # the fp32 training runs also give start-up and memory
        if MODES[mode][0] == "train" and MODES[mode][2] == "fp32":
            rows.append((f"{net(mode)}start to first train step", "s", False,
                         {r: median(r, mode, "time_to_first_step_s") for r in runners}))
            rows.append((f"{net(mode)}peak RSS, train fp32", "MiB", False,
                         {r: median(r, mode, "peak_rss_mib") for r in runners}))
    return rows


def table(results: dict, peers: list[str], modes: list[str]) -> str:
    runners = ["project", *peers]
    labels = ["this project", *(PEERS[p][0] for p in peers)]
    lines = ["| | " + " | ".join(labels) + " | best peer | ratio (>= 1: ahead) |",
             "|---" * (len(labels) + 3) + "|"]
    for label, unit, higher, values in _rows(results, runners, modes):
        peer_values = {p: values[p] for p in peers if values[p] is not None}
        best = (max if higher else min)(peer_values, key=peer_values.get) if peer_values else None
        mine = values["project"]
        ratio = ""
        if best is not None and mine:
            ratio = f"{(mine / peer_values[best]) if higher else (peer_values[best] / mine):.2f}"
        cells = [f"{values[r]:.3g}" if values[r] is not None else "-" for r in runners]
        lines.append(f"| {label} ({unit}) | " + " | ".join(cells)
                     + f" | {PEERS[best][0] if best else '-'} | {ratio} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks/peers_benchmark.py",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--peers_dir", required=True,
                        help="Folder of the peers' scripts and venvs (../shared/peers/setup.sh).")
    parser.add_argument("--peers", default=",".join(PEERS), help="Comma-separated peers.")
    parser.add_argument("--modes", default=",".join(MODES), help="Comma-separated modes.")
    parser.add_argument("--rounds", type=int, default=2, help="Interleaved rounds.")
    parser.add_argument("--train_warmup", type=int, default=2)
    parser.add_argument("--train_steps", type=int, default=5)
    parser.add_argument("--infer_warmup", type=int, default=3)
    parser.add_argument("--infer_steps", type=int, default=10)
    parser.add_argument("--json", default=None, help="Append every run's result here.")
    args = parser.parse_args(argv)
    peers = [p for p in args.peers.split(",") if p]
    modes = [m for m in args.modes.split(",") if m]
    unknown = [p for p in peers if p not in PEERS] + [m for m in modes if m not in MODES]
    if unknown:
        parser.error(f"unknown peer or mode: {', '.join(unknown)} (peers: {', '.join(PEERS)}; "
                     f"modes: {', '.join(MODES)}).")
    for p in peers:
        python = os.path.join(args.peers_dir, PEERS[p][1], "bin", "python")
        if not os.path.exists(python):
            parser.error(f"--peers_dir {args.peers_dir}: no {PEERS[p][1]}/bin/python for "
                         f"{p} (run the peers' setup.sh there).")
    print(f"CPU: {cpu_name()}", flush=True)
    results: dict = {}
    work = tempfile.mkdtemp(prefix="peers_benchmark_")
    small_config = (small_config_for_odapi(work)
                    if SMALL_MODES & set(modes) and SMALL_PEERS & set(peers) else None)
    for round_index in range(args.rounds):
        for mode in modes:
            kind, batch, dtype = MODES[mode]
            warmup = args.train_warmup if kind == "train" else args.infer_warmup
            steps = args.train_steps if kind == "train" else args.infer_steps
            small = mode in SMALL_MODES
            for runner in ["project", *(p for p in peers if not small or p in SMALL_PEERS)]:
                t0 = time.perf_counter()
                try:
                    if runner == "project":
                        res = run_project(kind, batch, dtype, warmup, steps, work, small)
                    else:
                        res = run_peer(runner, args.peers_dir, kind, batch, dtype, warmup, steps,
                                       small_config if small else None)
                except (RuntimeError, subprocess.TimeoutExpired, StopIteration) as e:
                    print(f"round {round_index + 1} {mode} {runner}: FAILED: {e}", flush=True)
                    continue
                results.setdefault((runner, mode), []).append(res)
                print(f"round {round_index + 1} {mode} {runner}: {res['img_per_s']:.3f} img/s "
                      f"(median {res['median_s'] * 1000:.0f} ms"
                      + (f", first step at {res['time_to_first_step_s']:.1f} s"
                         if kind == "train" else "")
                      + f"; run {time.perf_counter() - t0:.0f} s)", flush=True)
                if args.json:
                    with open(args.json, "a") as f:
                        f.write(json.dumps({"round": round_index + 1, "mode": mode,
                                            "runner": runner, **res}) + "\n")
    print(table(results, peers, modes), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
