"""The training loop on the small CPU config made tiny (`tiny_overrides`): train, checkpoint,
resume, evaluate, fail safely."""
from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from object_detection.builders import plan_builder
from object_detection.core.standard_fields import InputFields as F
from object_detection.training import distribution, train_lib, train_step
from object_detection.utils import config_util, dllogger

from .conftest import REPO, SMALL_CONFIG


def _configs(overrides, *extra):
    return config_util.get_configs_from_pipeline_file(SMALL_CONFIG,
                                                      config_override=[*overrides, *extra])


def _train(configs, model_dir, steps, **options):
    opts = train_lib.RunOptions(model_dir=str(model_dir), num_train_steps=steps,
                                log_every_n=2, **{"eval_count": 0, **options})
    return train_lib.train(configs, opts, distribution.make_engine("tf", "default"))


def test_train_checkpoint_resume_and_evaluate(tiny_overrides, tmp_path, console):
    configs = _configs(tiny_overrides)
    report = tmp_path / "report.json"
    _train(configs, tmp_path, 4, checkpoint_every_n=2, raport_file=str(report))
    assert tf.train.latest_checkpoint(str(tmp_path)).endswith("ckpt-4")
    assert (tmp_path / "pipeline.config").exists()

    metrics = _train(configs, tmp_path, 6, eval_count=1, raport_file=str(report))
    out = console()
    assert "resuming from" in out and "at step 4" in out
    assert tf.train.latest_checkpoint(str(tmp_path)).endswith("ckpt-6")
    # pycocotools' summary, its 12 lines as pycocotools prints them (a console line).
    summary = [line for line in out.splitlines()
               if line.startswith((" Average Precision", " Average Recall"))]
    assert len(summary) == 12
    assert summary[1].startswith(" Average Precision  (AP) @[ IoU=0.50      | area=   all |")
    assert 0.0 <= metrics["mAP@0.5"] <= 1.0 and math.isfinite(metrics["train_throughput"])
    steps = [r["step"] for r in dllogger.read_report(str(report)) if isinstance(r["step"], int)
             and "total_loss" in r["data"]]
    assert steps == [2, 4, 6]  # the step count continues across the restart
    assert any("mAP" in r["data"] for r in dllogger.read_report(str(report)))
    assert (tmp_path / "best" / "best.json").exists()
    assert list((tmp_path / "eval").glob("detections_step_6.json"))


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
def test_float32_and_bfloat16_train(tiny_overrides, tmp_path, policy):
    keras.mixed_precision.set_global_policy(policy)
    try:
        result = _train(_configs(tiny_overrides), tmp_path, 2, amp=policy != "float32")
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert result["steps"] == 2 and result["train_throughput"] > 0


def test_allow_xla_compiles_and_trains(tiny_overrides, tmp_path):
    result = _train(_configs(tiny_overrides), tmp_path, 2, allow_xla=True)
    assert result["steps"] == 2
    assert tf.train.latest_checkpoint(str(tmp_path)).endswith("ckpt-2")


@pytest.mark.parametrize("steps_per_loop", [1, 4])
def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tiny_overrides, tmp_path,
                                                           monkeypatch, steps_per_loop):
    configs = _configs(tiny_overrides)
    _train(configs, tmp_path, 2)
    good = tf.train.latest_checkpoint(str(tmp_path))
    reader = tf.train.load_checkpoint(good)
    before = {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
              if "OPTIMIZER" not in k and k != "_CHECKPOINTABLE_OBJECT_GRAPH"}

    def nan_dataset_fn(image_size, batch_size, max_boxes):
        def fn(input_context=None):
            h, w = image_size
            batch = {
                F.image: np.full([4, h, w, 3], np.nan, np.float32),
                F.groundtruth_boxes: np.tile([[[0.1, 0.1, 0.5, 0.5]]], [4, 20, 1]).astype(
                    np.float32),
                F.groundtruth_classes: np.zeros([4, 20], np.int32),
                F.groundtruth_weights: np.ones([4, 20], np.float32),
                F.num_groundtruth_boxes: np.ones([4], np.int32),
            }
            return tf.data.Dataset.from_tensors(batch).repeat()
        return fn

    monkeypatch.setattr(train_step, "random_dataset_fn", nan_dataset_fn)
    with pytest.raises(train_lib.TrainingDivergedError, match=r"loss is nan at step 3.*ckpt-2"):
        # With 4 steps per loop, steps 3..6 run in one call: the NaN of step 3 is still
        # found and named, and nothing is saved after it.
        _train(configs, tmp_path, 10, random_data=True, steps_per_loop=steps_per_loop,
               checkpoint_every_n=1 if steps_per_loop == 1 else 100)
    assert tf.train.latest_checkpoint(str(tmp_path)) == good
    reader = tf.train.load_checkpoint(good)
    for k, v in before.items():
        np.testing.assert_array_equal(reader.get_tensor(k), v)
        assert np.all(np.isfinite(reader.get_tensor(k))) if v.dtype.kind == "f" else True


def _step_losses(configs, model_dir, steps, steps_per_loop):
    keras.utils.set_random_seed(0)
    report = os.path.join(str(model_dir), "report.json")
    opts = train_lib.RunOptions(model_dir=str(model_dir), num_train_steps=steps, eval_count=0,
                                log_every_n=1, raport_file=report, random_data=True,
                                checkpoint_every_n=4, steps_per_loop=steps_per_loop)
    summary = train_lib.train(configs, opts, distribution.make_engine("tf", "default"))
    records = [r for r in dllogger.read_report(report) if isinstance(r["step"], int)]
    return summary, [(r["step"], r["data"]["total_loss"], r["data"]["classification_loss"],
                      r["data"]["localization_loss"]) for r in records]


def test_steps_per_loop_gives_the_same_losses_step_for_step(tiny_overrides, tmp_path):
    configs = _configs(tiny_overrides)
    _, one = _step_losses(configs, tmp_path / "one", 7, steps_per_loop=1)
    # Loops of 3: steps 1-3, then 4 (a checkpoint step ends a loop), 5-7.
    summary, looped = _step_losses(configs, tmp_path / "loop", 7, steps_per_loop=3)
    assert [s for s, *_ in one] == [s for s, *_ in looped] == list(range(1, 8))
    np.testing.assert_allclose(np.array(looped)[:, 1:], np.array(one)[:, 1:], rtol=1e-6)
    assert summary["steps"] == 7
    assert [os.path.basename(p) for p in tf.train.get_checkpoint_state(
        str(tmp_path / "loop")).all_model_checkpoint_paths] == ["ckpt-4", "ckpt-7"]


def _model_main(args, **kwargs):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(REPO))
    return subprocess.Popen([sys.executable, str(REPO / "object_detection" / "model_main.py"),
                             *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, cwd=REPO, **kwargs)


def test_sigkill_then_restart_resumes_from_the_last_checkpoint(tiny_overrides, tmp_path):
    args = ["--pipeline_config_path", SMALL_CONFIG, "--model_dir", str(tmp_path),
            "--eval_count", "0", "--checkpoint_every_n", "2", "--log_every_n", "2"]
    args += [f"--config_override={o}" for o in tiny_overrides]
    proc = _model_main(args + ["--num_train_steps", "100000"])
    deadline = time.time() + 240
    while time.time() < deadline:
        latest = tf.train.latest_checkpoint(str(tmp_path))
        if latest and int(latest.rsplit("-", 1)[1]) >= 4:
            break
        time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)  # no clean-up, possibly in the middle of a save
    proc.wait(timeout=60)
    latest = tf.train.latest_checkpoint(str(tmp_path))
    assert latest, "no checkpoint was written before the kill"
    killed_at = int(latest.rsplit("-", 1)[1])

    restart = _model_main(args + ["--num_train_steps", str(killed_at + 2)])
    out, _ = restart.communicate(timeout=300)
    assert restart.returncode == 0, out[-3000:]
    assert f"at step {killed_at}" in out
    assert f"step {killed_at + 2}/{killed_at + 2}" in out
    assert tf.train.latest_checkpoint(str(tmp_path)).endswith(f"ckpt-{killed_at + 2}")


def test_eval_only_mode_reproduces_the_evaluation_made_during_training(tiny_overrides,
                                                                       tmp_path):
    configs = _configs(tiny_overrides)
    during = _train(configs, tmp_path, 4, eval_count=1)
    opts = train_lib.RunOptions(model_dir=str(tmp_path / "eval_only"))
    after = train_lib.evaluate_checkpoints(configs, opts, distribution.make_engine("tf", "default"),
                                           checkpoint_dir=str(tmp_path), run_once=True)
    # Same weights restored from the checkpoint (batch norm statistics included): same numbers.
    for key in ("mAP", "mAP@0.5", "AR@100"):
        assert after[key] == pytest.approx(during[key], abs=1e-6), key


class _TwoRankHorovodLike(distribution.Engine):
    """An engine that sums gradients itself, with 2 ranks (Horovod's shape, no processes)."""

    name = "horovod"
    num_replicas_in_sync = 2
    optimizer_sums_gradients = False


def test_sync_batch_norm_is_refused_where_it_would_not_synchronize(tiny_overrides, tmp_path):
    field = "model.ssd.box_predictor.weight_shared_convolutional_box_predictor.conv_hyperparams"
    configs = _configs(tiny_overrides, f"{field}.sync_batch_norm={{ scale: true }}")
    assert plan_builder.sync_batch_norm_fields(configs["model"]) == [f"{field}.sync_batch_norm"]
    with pytest.raises(train_lib.ConfigError, match=rf"^{field}\.sync_batch_norm: synchronized "
                       r"batch norm runs under tf.distribute .* with horovod each of the 2 "
                       r"ranks would normalize with its own batch only"):
        train_lib.RunState(configs, train_lib.RunOptions(model_dir=str(tmp_path)),
                          _TwoRankHorovodLike())
    # One replica: nothing to synchronize; it builds and trains as plain batch norm.
    metrics = _train(configs, tmp_path, 1)
    assert metrics["steps"] == 1
