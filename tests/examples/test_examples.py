"""examples/ scripts: every one answers --help and a dry run; the benchmarks report the keys."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
SMALL_CONFIG = str(REPO / "configs" / "ssd_mobilenet_v2_fpn_shapes_128_cpu.config")
SHELL_SCRIPTS = sorted(p.name for p in EXAMPLES.glob("*.sh"))
PYTHON_SCRIPTS = sorted(p.name for p in EXAMPLES.glob("*.py"))
TRAIN_SCRIPTS = [f"SSD320_{p}_{g}GPU{b}.sh" for p in ("FP16", "FP32") for g in (1, 4, 8)
                 for b in ("", "_BENCHMARK")]


def _run(args, env=None, timeout=120) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k not in ("DRY_RUN", "LAUNCHER")}
    full_env.update(TF_CPP_MIN_LOG_LEVEL="2", PYTHON=sys.executable, **(env or {}))
    return subprocess.run(args, cwd=REPO, env=full_env, capture_output=True, text=True,
                          timeout=timeout)


def test_the_seed_scripts_are_all_there():
    expected = set(TRAIN_SCRIPTS) | {"SSD320_evaluate.sh", "SSD320_FP16_inference.sh",
                                     "SSD320_FP32_inference.sh", "cpu_quickstart.sh"}
    assert expected <= set(SHELL_SCRIPTS)
    assert "SSD320_inference.py" in PYTHON_SCRIPTS


@pytest.mark.parametrize("script", SHELL_SCRIPTS)
def test_shell_script_help_exits_0(script):
    result = _run(["bash", str(EXAMPLES / script), "--help"])
    assert result.returncode == 0, result.stderr
    assert "Usage" in result.stdout or "helpers sourced" in result.stdout


@pytest.mark.parametrize("script", [s for s in SHELL_SCRIPTS if s != "_common.sh"])
def test_shell_script_dry_run_prints_the_command(script, tmp_path):
    args = ["bash", str(EXAMPLES / script), str(tmp_path / "ckpt")]
    result = _run(args, env={"DRY_RUN": "1", "LAUNCHER": "horovodrun"})
    assert result.returncode == 0, result.stderr
    commands = [line for line in result.stdout.splitlines() if line.startswith("+ ")]
    assert commands, result.stdout
    assert not (tmp_path / "ckpt").exists()  # a dry run writes nothing


@pytest.mark.parametrize("script", TRAIN_SCRIPTS)
def test_training_scripts_follow_the_seed(script):
    """FP16 passes --amp; N GPUs launch N workers; extra flags are passed through."""
    result = _run(["bash", str(EXAMPLES / script), "/results/x", "/workdir/configs",
                   "--num_train_steps=10"], env={"DRY_RUN": "1", "LAUNCHER": "horovodrun"})
    assert result.returncode == 0, result.stderr
    (command,) = [line for line in result.stdout.splitlines() if line.startswith("+ ")]
    gpus = int(script.split("_")[2][0])
    assert ("--amp" in command.split()) == ("FP16" in script)
    assert (f"horovodrun -np {gpus} -H localhost:{gpus}" in command) == (gpus > 1)
    config = "ssd320_bench.config" if "BENCHMARK" in script else f"ssd320_full_{gpus}gpus.config"
    assert f"--pipeline_config_path=/workdir/configs/{config}" in command
    assert "--model_dir=/results/x" in command
    assert command.endswith("--num_train_steps=10")


def test_multi_gpu_scripts_fall_back_to_mirrored_strategy_without_horovod():
    result = _run(["bash", str(EXAMPLES / "SSD320_FP32_4GPU.sh")],
                  env={"DRY_RUN": "1", "LAUNCHER": "mirrored"})
    assert result.returncode == 0, result.stderr
    assert "--strategy=mirrored" in result.stdout
    assert "horovodrun" not in result.stdout


@pytest.mark.parametrize("args,checkpoint,config_dir", [
    (["/ckpt", "/cfg", "--batch_size=8"], "/ckpt", "/cfg"),  # $1 CKPT_DIR, $2 config dir
    (["random"], None, str(REPO / "configs")),  # random weights, default configs
    ([str(REPO / "configs"), "--batch_size=8"], None, str(REPO / "configs")),  # seed's form
])
def test_inference_scripts_take_checkpoint_and_config_dirs(args, checkpoint, config_dir):
    result = _run(["bash", str(EXAMPLES / "SSD320_FP16_inference.sh"), *args],
                  env={"DRY_RUN": "1"})
    assert result.returncode == 0, result.stderr
    assert f"--pipeline_config_path={config_dir}/ssd320_full_1gpus.config" in result.stdout
    assert ("--checkpoint_dir=" in result.stdout) == (checkpoint is not None)
    assert "--amp" in result.stdout
    if "--batch_size=8" in args:
        assert result.stdout.rstrip().endswith("--batch_size=8")


def test_evaluate_script_needs_a_checkpoint_dir():
    result = _run(["bash", str(EXAMPLES / "SSD320_evaluate.sh")], env={"DRY_RUN": "1"})
    assert result.returncode == 2
    assert "CKPT_DIR is required" in result.stderr


@pytest.mark.parametrize("script", [str(EXAMPLES / s) for s in PYTHON_SCRIPTS]
                         + [str(REPO / "benchmarks" / "train_benchmark.py")])
def test_python_script_help_exits_0(script):
    result = _run([sys.executable, script, "--help"])
    assert result.returncode == 0, result.stderr
    assert "--pipeline_config_path" in result.stdout


def test_inference_benchmark_reports_the_seed_keys(tmp_path):
    from object_detection.utils.dllogger import read_report

    report = tmp_path / "inference.json"
    result = _run([sys.executable, str(EXAMPLES / "SSD320_inference.py"),
                   f"--pipeline_config_path={SMALL_CONFIG}", "--batch_size=2",
                   "--warmup_iters=1", "--benchmark_iters=3", f"--raport_file={report}",
                   "--config_override=model.ssd.feature_extractor.depth_multiplier=0.25"])
    assert result.returncode == 0, result.stderr
    assert "img/s" in result.stdout and "Latency 99%" in result.stdout
    (summary,) = [r["data"] for r in read_report(str(report)) if r["step"] == []]
    for key in ("infer_throughput", "eval_avg_latency", "eval_50%_latency", "eval_90%_latency",
                "eval_95%_latency", "eval_99%_latency"):
        assert summary[key] > 0, key
    assert summary["eval_50%_latency"] <= summary["eval_99%_latency"]


def test_latency_summary_hand_computed():
    sys.path.insert(0, str(EXAMPLES))
    try:
        import SSD320_inference
    finally:
        sys.path.remove(str(EXAMPLES))
    summary = SSD320_inference.latency_summary([0.1, 0.2, 0.3, 0.4], batch_size=2,
                                               percentiles=[90])
    assert summary["infer_throughput"] == pytest.approx(8 / 1.0)  # 4 batches of 2 in 1 s
    assert summary["eval_avg_latency"] == pytest.approx(250.0)
    assert summary["eval_50%_latency"] == pytest.approx(250.0)
    assert summary["eval_90%_latency"] == pytest.approx(370.0)  # linear interpolation


@pytest.mark.slow
def test_train_benchmark_reports_throughput_first_step_and_memory(tmp_path):
    from object_detection.utils.dllogger import read_report

    report = tmp_path / "train.json"
    result = _run([sys.executable, str(REPO / "benchmarks" / "train_benchmark.py"),
                   f"--pipeline_config_path={SMALL_CONFIG}", "--batch_size=2", "--num_steps=3",
                   "--benchmark_last_k=2", f"--raport_file={report}",
                   "--config_override=model.ssd.feature_extractor.depth_multiplier=0.25"],
                  timeout=300)
    assert result.returncode == 0, result.stderr
    (summary,) = [r["data"] for r in read_report(str(report)) if r["step"] == []]
    assert summary["train_throughput"] > 0
    assert summary["time_to_first_step_s"] > summary["first_step_s"] > 0
    assert summary["peak_rss_mib"] > 100
