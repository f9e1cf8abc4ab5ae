"""benchmarks/peers_benchmark.py without the peers: which runner runs which mode, the config the
OD API peer gets for the small CPU config, and the table's ratios (hand-computed)."""
from __future__ import annotations

import importlib.util

import pytest

from object_detection.utils import config_util
from tests.conftest import REPO, SMALL_CONFIG


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location(
        "peers_benchmark", REPO / "benchmarks" / "peers_benchmark.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_odapi_peer_gets_the_small_config_with_90_classes_and_no_moving_average(
        bench, tmp_path):
    path = bench.small_config_for_odapi(str(tmp_path))
    written = config_util.get_configs_from_pipeline_file(path)
    ours = config_util.get_configs_from_pipeline_file(SMALL_CONFIG)
    assert written["model"].ssd.num_classes == 90 and ours["model"].ssd.num_classes == 3
    assert not written["train_config"].optimizer.use_moving_average
    assert ours["train_config"].optimizer.use_moving_average  # the proto's default
    ours["model"].ssd.num_classes = 90
    ours["train_config"].optimizer.use_moving_average = False
    for key in ours:
        assert written[key] == ours[key], key  # nothing else differs


def test_only_the_odapi_peer_runs_the_small_config(bench, tmp_path, monkeypatch, capsys):
    for venv in ("tfmg", "tv"):
        (tmp_path / venv / "bin").mkdir(parents=True)
        (tmp_path / venv / "bin" / "python").touch()
    calls = []

    def project(kind, batch, dtype, warmup, steps, work, small=False):
        calls.append(("project", kind, small))
        return {"img_per_s": 40.0 if small else 0.8, "median_s": 0.2,
                "time_to_first_step_s": 10.0 if small else 25.0, "peak_rss_mib": 900.0}

    def peer(name, peers_dir, kind, batch, dtype, warmup, steps, small_config=None):
        calls.append((name, kind, small_config))
        return {"img_per_s": 32.0 if small_config else 0.7, "median_s": 0.25,
                "time_to_first_step_s": 40.0 if small_config else 45.0,
                "peak_rss_mib": 1300.0}

    (tmp_path / "work").mkdir()
    monkeypatch.setattr(bench.tempfile, "mkdtemp", lambda prefix: str(tmp_path / "work"))
    monkeypatch.setattr(bench, "run_project", project)
    monkeypatch.setattr(bench, "run_peer", peer)
    assert bench.main(["--peers_dir", str(tmp_path), "--peers", "odapi,tfmg,torchvision",
                       "--modes", "train_fp32,train_small_fp32", "--rounds", "1"]) == 0
    small_config = str(tmp_path / "work" / "odapi_small_config" / "pipeline.config")
    assert calls == [("project", "train", False), ("odapi", "train", None),
                     ("tfmg", "train", None), ("torchvision", "train", None),
                     ("project", "train", True), ("odapi", "train", small_config)]
    rows = {line.split(" | ")[0]: line for line in capsys.readouterr().out.splitlines()
            if line.startswith("| ")}
    # Speeds: this project / best peer; times and memory: best peer / this project.
    assert rows["| small: train b8 fp32 (img/s)"].endswith("| 40 | 32 | - | - | TF OD API | 1.25 |")
    assert rows["| small: start to first train step (s)"].endswith(
        "| 10 | 40 | - | - | TF OD API | 4.00 |")
    assert rows["| start to first train step (s)"].endswith(
        "| 25 | 45 | 45 | 45 | TF OD API | 1.80 |")
