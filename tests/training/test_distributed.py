"""Data parallelism: two workers on localhost make the same update as one with the doubled batch.

Both engines are checked: tf.distribute (MultiWorkerMirroredStrategy, two processes with
TF_CONFIG) and Horovod (`horovodrun -np 2 -H localhost:2 --gloo`). `dist_step_worker.py` runs
one step on fixed data; every trainable variable after the step is compared with the
single-worker run, and the step must have moved the weights (so equality is not trivial).
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

WORKER = Path(__file__).with_name("dist_step_worker.py")
REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _env() -> dict:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(REPO))
    env.pop("TF_CONFIG", None)
    return env


def _run(cmd, env, timeout=600):
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, cwd=REPO)


def _finish(proc, timeout=600) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-4000:]
    return out


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


_SINGLE: dict = {}


def _single_worker(case: str, tmp_path_factory) -> dict:
    if case not in _SINGLE:
        out = tmp_path_factory.mktemp(f"single_{case}") / "weights.npz"
        _finish(_run([sys.executable, str(WORKER), "--mode", "single", "--case", case,
                      "--out", str(out)], _env()))
        _SINGLE[case] = dict(np.load(out))
    return _SINGLE[case]


@pytest.fixture(scope="module")
def single_worker(tmp_path_factory) -> dict:
    return _single_worker("frozen", tmp_path_factory)


def _assert_same_update(reference: dict, other: dict) -> None:
    keys = sorted(k for k in reference if k.startswith("step1|"))
    assert keys and sorted(k for k in other if k.startswith("step1|")) == keys
    update = lambda d: np.concatenate([(d[k] - d["init|" + k[6:]]).ravel() for k in keys])
    assert np.linalg.norm(update(reference)) > 1e-6, "the step did not change the weights"
    # The update itself (not only the weights, which it barely moves) within 1e-5.
    assert np.linalg.norm(update(other) - update(reference)) < 1e-5 * np.linalg.norm(
        update(reference))
    for k in keys:
        np.testing.assert_allclose(other["init|" + k[6:]], reference["init|" + k[6:]],
                                   rtol=0, atol=1e-6, err_msg=f"initial {k}")
        np.testing.assert_allclose(other[k], reference[k], rtol=1e-4, atol=2e-5, err_msg=k)
    np.testing.assert_allclose(other["total_loss"], reference["total_loss"], rtol=1e-5)


CASES = [pytest.param("frozen"),
         pytest.param("clip", marks=pytest.mark.slow),
         pytest.param("sync_bn", marks=pytest.mark.slow)]


@pytest.mark.parametrize("case", CASES)
def test_two_tf_distribute_workers_equal_one_worker_with_doubled_batch(case, tmp_path,
                                                                       tmp_path_factory):
    single_worker = _single_worker(case, tmp_path_factory)
    out = tmp_path / "weights.npz"
    ports = _free_ports(2)
    procs = []
    for index in range(2):
        env = _env()
        env["TF_CONFIG"] = json.dumps({
            "cluster": {"worker": [f"localhost:{p}" for p in ports]},
            "task": {"type": "worker", "index": index}})
        procs.append(_run([sys.executable, str(WORKER), "--mode", "tf", "--case", case,
                           "--out", str(out)], env))
    outputs = [_finish(p) for p in procs]
    assert all("/2: total loss" in o for o in outputs), outputs
    _assert_same_update(single_worker, dict(np.load(out)))


@pytest.mark.parametrize("case", CASES[:2])  # Horovod refuses sync_batch_norm (train_lib)
def test_two_horovod_workers_equal_one_worker_with_doubled_batch(case, tmp_path,
                                                                 tmp_path_factory):
    single_worker = _single_worker(case, tmp_path_factory)
    horovodrun = shutil.which("horovodrun", path=str(BIN)) or shutil.which("horovodrun")
    # Horovod is part of the test install (make horovod, run by make test): no silent skip.
    assert horovodrun, "horovodrun not found: build Horovod with `make horovod`"
    out = tmp_path / "weights.npz"
    env = _env()
    env["PATH"] = f"{BIN}:{env.get('PATH', '')}"
    proc = _run([horovodrun, "-np", "2", "-H", "localhost:2", "--gloo", sys.executable,
                 str(WORKER), "--mode", "horovod", "--case", case, "--out", str(out)], env)
    output = _finish(proc)
    assert output.count("/2: total loss") == 2, output[-3000:]
    _assert_same_update(single_worker, dict(np.load(out)))


MIRRORED = Path(__file__).with_name("mirrored_step_worker.py")


def _mirrored(replicas: int, directory: Path) -> None:
    _finish(_run([sys.executable, str(MIRRORED), "--replicas", str(replicas), "--dir",
                  str(directory)], _env()))


@pytest.fixture(scope="module")
def one_replica(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("mirrored")
    _mirrored(1, directory)
    return directory


def _relative(a, b) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(a))


@pytest.mark.parametrize("replicas", [2, pytest.param(4, marks=pytest.mark.slow)])
def test_mirrored_replicas_make_the_one_replica_update(replicas, one_replica):
    # MirroredStrategy over logical CPU devices: what --strategy mirrored does with local GPUs.
    _mirrored(replicas, one_replica)
    load = lambda name: dict(np.load(one_replica / f"{name}.npz"))
    for case in ("frozen", "clip", "sync_bn"):
        one, many = load(f"{case}_1"), load(f"{case}_{replicas}")
        assert np.linalg.norm(one["update"]) > 1e-6, case  # the step moved the weights
        assert _relative(one["update"], many["update"]) < 1e-5, case
        assert _relative(one["moving"], many["moving"]) < 1e-5, case
    # The clip is active: the clipped update is far smaller than the unclipped one.
    assert np.linalg.norm(load("clip_1")["update"]) < 0.01 * np.linalg.norm(
        load("frozen_1")["update"])
    # Plain trainable batch norm: each replica normalizes with its own share, so the update
    # is not one replica's, but the sum over replicas of the gradient of each share's loss.
    if replicas == 2:
        plain = load("plain_bn_2")["update"]
        assert _relative(load("plain_bn_1")["update"], plain) > 0.1
        assert _relative(np.load(one_replica / "plain_bn_rule.npz")["update"], plain) < 1e-5


def test_model_main_trains_and_evaluates_on_two_mirrored_cpu_replicas(tiny_overrides,
                                                                      shapes_dataset, tmp_path):
    # The multi-GPU host path (--strategy mirrored) end to end, on 2 logical CPU devices.
    args = [sys.executable, str(REPO / "object_detection" / "model_main.py"),
            "--pipeline_config_path", str(REPO / "configs" /
                                          "ssd_mobilenet_v2_fpn_shapes_128_cpu.config"),
            "--model_dir", str(tmp_path), "--num_train_steps", "2", "--eval_count", "1",
            "--strategy", "mirrored", "--cpu_replicas", "2",
            *[f"--config_override={o}" for o in tiny_overrides],
            "--config_override=train_config.batch_size=2"]
    output = _finish(_run(args, _env()))
    assert "tf.distribute (mirrored): 1 worker(s), 2 replica(s) in sync" in output
    assert "evaluation at step 2: 8 images" in output  # every validation image
    assert "Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ]" in output
    import tensorflow as tf

    assert tf.train.latest_checkpoint(str(tmp_path)).endswith("ckpt-2")
