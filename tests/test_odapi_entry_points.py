"""The OD API TF2 script names and flags: model_main_tf2.py, exporter_main_v2.py,
export_tflite_graph_tf2.py (the last is tested with the TFLite export in tests/export)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SMALL_CONFIG = str(REPO / "configs" / "ssd_mobilenet_v2_fpn_shapes_128_cpu.config")


def _model_main_argv(argv):
    from object_detection import model_main_tf2

    rest = model_main_tf2.odapi_flags.parse(model_main_tf2.FLAGS, ["prog", *argv],
                                           model_main_tf2.__doc__, known_only=True)
    assert isinstance(rest, list), rest
    return model_main_tf2.model_main_argv(rest)


def test_training_flags_map_to_model_main_without_evaluation():
    args = _model_main_argv(["--pipeline_config_path=p.config", "--model_dir=/m",
                             "--num_train_steps=7", "--checkpoint_every_n=50", "--amp"])
    assert "--pipeline_config_path=p.config" in args and "--model_dir=/m" in args
    assert "--num_train_steps=7" in args and "--checkpoint_every_n=50" in args
    assert "--eval_count=0" in args  # the OD API's training loop does not evaluate
    assert "--amp" in args  # another flag is passed on as it is
    assert not any(a.startswith("--checkpoint_dir") for a in args)


def test_evaluation_flags_map_to_continuous_evaluation():
    args = _model_main_argv(["--pipeline_config_path=p.config", "--model_dir=/m",
                             "--checkpoint_dir=/m", "--eval_timeout=60", "--eval_on_train_data",
                             "--sample_1_of_n_eval_on_train_examples=3", "--num_workers=2"])
    assert "--checkpoint_dir=/m" in args and "--eval_timeout=60" in args
    assert "--eval_training_data" in args
    assert "--sample_1_of_n_eval_examples=3" in args  # the train-data sampling applies
    assert "--strategy=multi_worker" in args
    assert not any(a.startswith("--eval_count") for a in args)


@pytest.mark.parametrize("argv, message", [
    (["--pipeline_config_path=p", "--use_tpu"], "TPUs are not supported"),
    (["--pipeline_config_path=p", "--tpu_name=grpc://x"], "TPUs are not supported"),
    (["--pipeline_config_path=p", "--num_workers=0"], "--num_workers"),
    (["--model_dir=m"], "--pipeline_config_path is required"),
    (["--pipeline_config_path=p", "--num_train_steps=many"], "num_train_steps"),
])
def test_model_main_tf2_refuses_with_one_line(argv, message, capsys):
    from object_detection import model_main_tf2

    assert model_main_tf2.main(["prog", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_exporter_main_v2_exports_the_input_type_asked(tmp_path):
    """The tutorial command, in this process: a tf_example SavedModel and checkpoint/."""
    import tensorflow as tf

    from object_detection import exporter_main_v2
    from object_detection.export import exporter_lib
    from object_detection.meta_architectures import checkpoint_layout
    from object_detection.utils import config_util

    overrides = ["model.ssd.feature_extractor.depth_multiplier=0.25",
                 "model.ssd.box_predictor.weight_shared_convolutional_box_predictor.depth=32"]
    model = exporter_lib.build_model(
        config_util.get_configs_from_pipeline_file(SMALL_CONFIG, config_override=overrides))
    tf.train.CheckpointManager(checkpoint_layout.model_checkpoint(model), str(tmp_path / "train"),
                               max_to_keep=1).save(checkpoint_number=3)
    code = exporter_main_v2.main(["prog", "--input_type=tf_example",
                                  f"--pipeline_config_path={SMALL_CONFIG}",
                                  f"--trained_checkpoint_dir={tmp_path / 'train'}",
                                  f"--output_directory={tmp_path / 'out'}",
                                  *[f"--config_override={o}" for o in overrides]])
    assert code == 0
    signature = tf.saved_model.load(str(tmp_path / "out" / "saved_model")).signatures[
        "serving_default"]
    (spec,) = signature.structured_input_signature[1].values()
    assert spec.dtype == tf.string and spec.name == "input_tensor"
    assert (tmp_path / "out" / "checkpoint" / "ckpt-0.index").is_file()


def test_exporter_main_v2_refuses_side_inputs(capsys):
    from object_detection import exporter_main_v2

    assert exporter_main_v2.main(["prog", "--use_side_inputs", "--pipeline_config_path=p",
                                  "--trained_checkpoint_dir=c", "--output_directory=o"]) == 2
    assert "side inputs" in capsys.readouterr().err


@pytest.mark.slow
def test_the_tutorial_train_and_eval_commands_run(small_overrides, tmp_path):
    """`model_main_tf2.py` as the OD API TF2 tutorial runs it: train, then evaluate the
    checkpoints of the model directory (ends after the last training step)."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    overrides = [f"--config_override={o}" for o in small_overrides]
    common = ["object_detection/model_main_tf2.py", f"--pipeline_config_path={SMALL_CONFIG}",
              f"--model_dir={tmp_path}", "--num_train_steps=2", *overrides]
    train = subprocess.run([sys.executable, *common, "--checkpoint_every_n=1"], cwd=REPO,
                           env=env, capture_output=True, text=True, timeout=600)
    assert train.returncode == 0, train.stderr[-3000:]
    assert "ckpt-2.index" in os.listdir(tmp_path)
    assert "DetectionBoxes_Precision/mAP" not in train.stdout  # no evaluation while training
    evaluate = subprocess.run([sys.executable, *common, f"--checkpoint_dir={tmp_path}",
                               "--eval_timeout=30"], cwd=REPO, env=env, capture_output=True,
                              text=True, timeout=600)
    assert evaluate.returncode == 0, evaluate.stderr[-3000:]
    assert "mAP" in evaluate.stdout + evaluate.stderr
