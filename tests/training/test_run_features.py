"""What the config and flags ask of a run, checked by values: frozen variables, validation loss,
evaluation pictures, early stopping, bfloat16, SIGTERM."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from object_detection.core.standard_fields import InputFields as F
from object_detection.core.standard_fields import LossFields
from object_detection.training import distribution, precision, train_lib, train_step, trainable
from object_detection.utils import config_util
from object_detection.utils.errors import ConfigError

from .conftest import REPO, SMALL_CONFIG
from .test_distributed import _free_ports


def _configs(overrides, *extra):
    return config_util.get_configs_from_pipeline_file(SMALL_CONFIG,
                                                      config_override=[*overrides, *extra])


def _session(configs, model_dir, **options):
    opts = train_lib.RunOptions(model_dir=str(model_dir), **options)
    return train_lib.RunState(configs, opts, distribution.make_engine("tf", "default"))


def _first_eval_batch(configs, sample_1_of_n=1):
    from object_detection.builders import dataset_builder
    return next(iter(dataset_builder.eval_dataset(configs, sample_1_of_n=sample_1_of_n)))


def _train_on(session, batch, steps):
    """`steps` train steps on one fixed batch; returns each step's losses."""
    keys = (F.image, F.groundtruth_boxes, F.groundtruth_classes, F.groundtruth_weights,
            F.num_groundtruth_boxes)
    fixed = {k: batch[k] for k in keys}
    iterator = iter(session.engine.distribute_dataset(
        lambda ctx=None: tf.data.Dataset.from_tensors(fixed).repeat()))
    step = train_step.make_train_step(session)
    return [{k: float(v) for k, v in step(iterator).items()} for _ in range(steps)]


# --------------------------------------------------------------------------------------------
# freeze_variables / update_trainable_variables


def _values(variables):
    return [v.numpy().copy() for v in variables]


def test_frozen_variables_keep_their_values_while_the_others_move(tiny_overrides, tmp_path):
    # The OD API TF2 name of the backbone, and this project's Keras path of the class head.
    configs = _configs(tiny_overrides, 'train_config { freeze_variables: '
                       '"classification_backbone" freeze_variables: "class_predictor/bias$" }')
    session = _session(configs, tmp_path)
    selection = session.variables
    backbone = {id(v) for v in session.model.feature_extractor.backbone.trainable_variables}
    frozen_ids = {id(v) for v in selection.frozen}
    assert backbone <= frozen_ids and len(frozen_ids) == len(backbone) + 1
    assert any(v.path.endswith("class_predictor/bias") for v in selection.frozen)
    frozen_before, trained_before = _values(selection.frozen), _values(selection.trained)
    losses = _train_on(session, _first_eval_batch(configs), steps=2)
    assert all(np.isfinite(l[LossFields.total_loss]) for l in losses)
    for before, v in zip(frozen_before, selection.frozen):
        np.testing.assert_array_equal(v.numpy(), before, err_msg=v.path)
    moved = {v.path for v, b in zip(selection.trained, trained_before)
             if not np.array_equal(v.numpy(), b)}
    # Without freezing, the same variables move (some get no gradient on this batch either
    # way: e.g. the box tower's batch norms of levels without a matched anchor).
    free = _session(_configs(tiny_overrides), tmp_path / "free")
    free_before = _values(free.variables.trained)
    _train_on(free, _first_eval_batch(configs), steps=2)
    trained_paths = {v.path for v in selection.trained}
    moved_free = {v.path for v, b in zip(free.variables.trained, free_before)
                  if not np.array_equal(v.numpy(), b)}
    assert len(moved) > len(trained_paths) // 2
    assert moved == moved_free & trained_paths
    assert len(session.optimizer._trainable_variables) == len(selection.trained)


def test_update_trainable_variables_trains_only_what_it_names(tiny_overrides, tmp_path):
    configs = _configs(tiny_overrides, 'train_config { update_trainable_variables: '
                       '"WeightSharedConvolutionalBoxPredictor" freeze_variables: "/box_predictor/" }')
    session = _session(configs, tmp_path)
    trained = session.variables.trained
    assert trained and all("WeightSharedConvolutionalBoxPredictor" in v.path for v in trained)
    assert not any("/box_predictor/" in v.path for v in trained)  # freeze wins over update
    n = len(session.model.trainable_variables)
    assert len(trained) + len(session.variables.frozen) == n


@pytest.mark.parametrize("pattern, message", [
    ("no_such_layer", r"train_config.freeze_variables\[0\]: 'no_such_layer' matches no "
                      r"trainable variable"),
    ("([", r"train_config.freeze_variables\[0\]: '\(\[' is not a valid regular expression"),
    (".", r"every one of the \d+ trainable variables is frozen"),
])
def test_freeze_patterns_that_cannot_be_meant_are_config_errors(tiny_overrides, tmp_path,
                                                                pattern, message):
    configs = _configs(tiny_overrides, f'train_config {{ freeze_variables: "{pattern}" }}')
    with pytest.raises(ConfigError, match=message):
        _session(configs, tmp_path)


def test_tf1_names_are_matched_for_the_seed_extractor(tmp_path):
    configs = config_util.get_configs_from_pipeline_file(
        str(REPO / "configs" / "ssd320_seed_1gpus.config"))
    from object_detection.builders import model_builder
    model = model_builder.build(configs["model"], is_training=True)
    model.build()
    selection = trainable.select(model, (), ["FeatureExtractor/resnet_v1_50/block[1-3]"])
    names = trainable.variable_names(model)
    assert selection.frozen and all(
        any(n.startswith("FeatureExtractor/resnet_v1_50/block") for n in names[id(v)])
        for v in selection.frozen)
    assert not any("block4" in n for v in selection.frozen for n in names[id(v)])


# --------------------------------------------------------------------------------------------
# Validation loss and the pictures of an evaluation


def test_validation_loss_is_the_training_loss_on_the_same_batch(tiny_overrides, tmp_path):
    # Frozen batch norm: the training forward pass is the inference one, so the first training
    # step's loss (computed before its update) must equal the evaluation's on the same batch.
    configs = _configs(tiny_overrides, "model.ssd.freeze_batchnorm=true",
                       "eval_config.num_visualizations=0")
    session = _session(configs, tmp_path, sample_1_of_n_eval_examples=2)  # 4 images: 1 batch
    metrics = train_lib.evaluate(session, step=0)
    batch = _first_eval_batch(configs, sample_1_of_n=2)
    assert int(batch[F.image].shape[0]) == 4
    trained = _train_on(session, batch, steps=1)[0]
    keys = (LossFields.classification_loss, LossFields.localization_loss,
            LossFields.regularization_loss, LossFields.total_loss)
    for k in keys:
        assert metrics[k] == pytest.approx(trained[k], rel=1e-5), k
    assert metrics[LossFields.total_loss] == pytest.approx(sum(metrics[k] for k in keys[:3]))


def _event_images(directory):
    images = {}
    for path in tf.io.gfile.glob(os.path.join(directory, "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.tag.startswith("eval_side_by_side_"):
                    encoded = tf.make_ndarray(value.tensor)[2]  # [width, height, png]
                    images[value.tag] = tf.io.decode_png(encoded).numpy()
    return images


def test_evaluation_pictures_reach_tensorboard_and_the_export_dir(tiny_overrides, tmp_path):
    export_dir = tmp_path / "pictures"
    configs = _configs(tiny_overrides, "eval_config.num_visualizations=3",
                       f"eval_config.visualization_export_dir={export_dir}",
                       "eval_config.min_score_threshold=1.0",  # no detection drawn
                       "eval_config.groundtruth_box_visualization_color=red")
    session = _session(configs, tmp_path)
    train_lib.evaluate(session, step=7)
    images = _event_images(str(tmp_path / "eval"))
    assert sorted(images) == [f"eval_side_by_side_{i}" for i in range(3)]
    batch = _first_eval_batch(configs)
    for i in range(3):
        picture = images[f"eval_side_by_side_{i}"]
        assert picture.shape == (128, 256, 3)
        model_input = np.clip(batch[F.image][i].numpy(), 0, 255).astype(np.uint8)
        # Left: detections above the threshold (none at 1.0), so the image as the model saw it.
        np.testing.assert_array_equal(picture[:, :128], model_input)
        # Right: the ground truth, drawn in red where the image was not red.
        red = np.all(picture[:, 128:] == [255, 0, 0], axis=-1)
        assert red.sum() > 50 and int(batch[F.num_groundtruth_boxes][i]) > 0
    pngs = sorted(export_dir.glob("export-step_7-*.png"))
    assert len(pngs) == 3


# --------------------------------------------------------------------------------------------
# Early stopping


def test_early_stop_at_the_evaluation_that_runs_out_of_patience(tiny_overrides, tmp_path,
                                                                monkeypatch, console):
    scripted = iter([0.1, 0.3, 0.2, 0.25, 0.9])  # evaluations at steps 2, 4, 6, 8, 10

    def fake_evaluate(session, step):
        return {"mAP": next(scripted), "mAP@0.5": 0.5}

    monkeypatch.setattr(train_lib, "evaluate", fake_evaluate)
    opts = train_lib.RunOptions(model_dir=str(tmp_path), num_train_steps=10, eval_count=5,
                                log_every_n=5, early_stop_patience=2)
    result = train_lib.train(_configs(tiny_overrides), opts,
                             distribution.make_engine("tf", "default"))
    assert result["steps"] == 8
    assert result["stop_reason"].startswith(
        "early stop at step 8: mAP has not improved for 2 evaluations (best 0.3000 at step 4")
    assert "training stopped early: early stop at step 8" in console()
    best = json.loads((tmp_path / "best" / "best.json").read_text())
    assert best["step"] == 4 and best["mAP"] == 0.3
    assert tf.train.latest_checkpoint(str(tmp_path)).endswith("ckpt-8")


def test_early_stopping_on_a_loss_minimizes_it(tmp_path):
    stopper = train_lib.EarlyStopping(patience=1, metric=LossFields.total_loss)
    engine = distribution.make_engine("tf", "default")
    assert stopper.update(1, {LossFields.total_loss: 2.0}, str(tmp_path), None, engine) is None
    assert stopper.update(2, {LossFields.total_loss: 1.5}, str(tmp_path), None, engine) is None
    reason = stopper.update(3, {LossFields.total_loss: 1.7}, str(tmp_path), None, engine)
    assert reason and "best 1.5000 at step 2" in reason


def test_an_unknown_early_stop_metric_fails_before_anything_is_built(tiny_overrides, tmp_path):
    opts = train_lib.RunOptions(model_dir=str(tmp_path), early_stop_metric="mAPP")
    with pytest.raises(ConfigError, match=r"--early_stop_metric 'mAPP': not a metric"):
        train_lib.check_inputs(_configs(tiny_overrides), opts)


# --------------------------------------------------------------------------------------------
# train_config.use_bfloat16


def test_use_bfloat16_asks_for_bfloat16_compute(monkeypatch):
    assert precision.choose_policy(False, use_bfloat16=True) == "mixed_bfloat16"
    monkeypatch.setattr(precision, "_gpu_compute_capability", lambda: 7)  # a V100
    with pytest.raises(ConfigError, match=r"train_config.use_bfloat16: true, but this GPU "
                       r"\(compute capability 7.x\) has no bfloat16.*--amp"):
        precision.choose_policy(False, use_bfloat16=True)
    assert precision.choose_policy(True) == "mixed_float16"


def test_amp_on_a_cpu_uses_bfloat16_only_where_it_is_native(monkeypatch, tmp_path, caplog):
    import logging

    avx2 = tmp_path / "avx2"
    avx2.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 fma avx512f\n")
    sapphire = tmp_path / "amx"
    sapphire.write_text("flags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16\n")
    assert not precision.cpu_has_native_bfloat16(str(avx2))
    assert precision.cpu_has_native_bfloat16(str(sapphire))
    assert not precision.cpu_has_native_bfloat16(str(tmp_path / "missing"))

    monkeypatch.setattr(precision, "cpu_has_native_bfloat16", lambda: False)
    assert precision.choose_policy(True) == "float32"
    assert precision.choose_policy(True, cpu_bfloat16="force") == "mixed_bfloat16"
    assert precision.choose_policy(False, use_bfloat16=True) == "mixed_bfloat16"  # asked for
    with caplog.at_level(logging.INFO, logger="object_detection"):
        assert precision.set_policy(True) == "float32"
    assert "no native bfloat16" in caplog.text and "--amp_on_cpu=bfloat16" in caplog.text
    monkeypatch.setattr(precision, "cpu_has_native_bfloat16", lambda: True)
    assert precision.choose_policy(True) == "mixed_bfloat16"
    monkeypatch.setattr(precision, "_gpu_compute_capability", lambda: 8)  # GPUs: unchanged
    assert precision.choose_policy(True) == "mixed_bfloat16"
    precision.set_policy(False)


# --------------------------------------------------------------------------------------------
# SIGTERM: checkpoint at the step, exit 0, restart resumes


def _model_main(args, log):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(REPO))
    return subprocess.Popen([sys.executable, str(REPO / "object_detection" / "model_main.py"),
                             *args], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)


def _wait_for(path, text, procs, timeout=300):
    deadline = time.time() + timeout
    while text not in path.read_text():
        assert time.time() < deadline and all(p.poll() is None for p in procs), \
            path.read_text()[-3000:]
        time.sleep(0.2)


def _last_step_printed(out: str) -> int:
    return max(int(line.split()[1].split("/")[0]) for line in out.splitlines()
               if line.startswith("step "))


def test_sigterm_saves_at_the_current_step_exits_0_and_a_restart_resumes(tiny_overrides,
                                                                        tmp_path):
    args = ["--pipeline_config_path", SMALL_CONFIG, "--model_dir", str(tmp_path / "model"),
            "--eval_count", "0", "--log_every_n", "1", "--checkpoint_every_n", "1000",
            *[f"--config_override={o}" for o in tiny_overrides]]
    log_path = tmp_path / "run.log"
    with open(log_path, "w") as log:
        proc = _model_main(args + ["--num_train_steps", "100000"], log)
        try:
            _wait_for(log_path, "step 3/", [proc])
            sent_after = _last_step_printed(log_path.read_text())
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
    out = log_path.read_text()
    assert code == 0, out[-3000:]
    saved = int(out.split("SIGTERM: checkpoint saved at step ")[1].split()[0].rstrip(")"))
    assert saved in (sent_after, sent_after + 1)  # the step in progress when it came
    assert tf.train.latest_checkpoint(str(tmp_path / "model")).endswith(f"ckpt-{saved}")
    assert "Traceback" not in out

    restart = subprocess.run(
        [sys.executable, str(REPO / "object_detection" / "model_main.py"), *args,
         "--num_train_steps", str(saved + 2)],
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(REPO)), cwd=REPO,
        capture_output=True, text=True, timeout=300)
    assert restart.returncode == 0, restart.stdout[-3000:] + restart.stderr[-3000:]
    assert f"at step {saved}" in restart.stdout
    assert f"step {saved + 2}/{saved + 2}" in restart.stdout


TINY = ["model.ssd.feature_extractor.depth_multiplier=0.25", "train_config.batch_size=2",
        "model.ssd.image_resizer.fixed_shape_resizer.height=64",
        "model.ssd.image_resizer.fixed_shape_resizer.width=64"]


def _mwms_workers(tmp_path, steps, tag):
    ports = _free_ports(2)
    procs, logs = [], []
    for index in range(2):
        tf_config = {"cluster": {"worker": [f"localhost:{p}" for p in ports]},
                     "task": {"type": "worker", "index": index}}
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(REPO),
                   TF_CONFIG=json.dumps(tf_config))
        logs.append(tmp_path / f"{tag}_worker{index}.log")
        procs.append(subprocess.Popen(
            [sys.executable, str(REPO / "object_detection" / "model_main.py"),
             f"--pipeline_config_path={SMALL_CONFIG}", f"--model_dir={tmp_path / 'model'}",
             "--random_data", f"--num_train_steps={steps}", "--eval_count=0",
             "--log_every_n=1", "--checkpoint_every_n=1000", "--collective_timeout_s=60",
             *[f"--config_override={o}" for o in TINY]],
            env=env, stdout=open(logs[-1], "w"), stderr=subprocess.STDOUT, cwd=REPO))
    return procs, logs


@pytest.mark.slow  # two processes, a restart: about 90 s on 2 cores
def test_sigterm_to_one_of_two_multi_worker_workers_stops_both_at_one_step(tmp_path):
    procs, logs = _mwms_workers(tmp_path, 100000, "first")
    try:
        _wait_for(logs[0], "step 3/", procs)
        procs[1].send_signal(signal.SIGTERM)  # the non-chief is told; the chief is not
        codes = [p.wait(timeout=180) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    outs = [log.read_text() for log in logs]
    assert codes == [0, 0], outs[0][-2000:] + outs[1][-2000:]
    saved = {int(o.split("SIGTERM: checkpoint saved at step ")[1].split()[0]) for o in outs}
    assert len(saved) == 1, saved  # the same step on both workers
    step = saved.pop()
    assert tf.train.latest_checkpoint(str(tmp_path / "model")).endswith(f"ckpt-{step}")

    procs, logs = _mwms_workers(tmp_path, step + 2, "restart")
    try:
        codes = [p.wait(timeout=300) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    out = logs[0].read_text()
    assert codes == [0, 0], out[-3000:]
    assert f"at step {step}" in out and f"step {step + 2}/{step + 2}" in out
