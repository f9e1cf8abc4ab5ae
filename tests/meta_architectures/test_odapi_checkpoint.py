"""OD API TF2 checkpoints (as `model_main_tf2.py` and the model zoo write them) load completely.

The key lists in tools/odapi_parity/keys/ were read from checkpoints the real OD API wrote for
these configs. Each test writes a checkpoint with exactly those keys and shapes (raw SaveV2,
random values), restores it into this project's model and checks that every variable came from
its key. That the values also compute what the OD API computes is the parity tool's job
(tools/odapi_parity, README "Parity with the OD API").
"""
from __future__ import annotations

import os

import numpy as np
import pytest
import tensorflow as tf

from object_detection.builders import model_builder
from object_detection.meta_architectures import odapi_checkpoint as oc
from object_detection.training import checkpoints
from object_detection.utils import config_util

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KEYS = os.path.join(ROOT, "tools", "odapi_parity", "keys")


def _recorded_keys(name):
    with open(os.path.join(KEYS, name + ".txt")) as f:
        rows = [line.split(" ", 1) for line in f if line.strip() and not line.startswith("#")]
    return {key: tuple(int(d) for d in dims.strip(" []\n").split(",") if d.strip())
            for key, dims in rows}


def _write_odapi_checkpoint(prefix, keys, seed=0, extra=None):
    rng = np.random.default_rng(seed)
    names, tensors = [], []
    values = {}
    for key, shape in sorted(keys.items()):
        value = rng.standard_normal(shape).astype(np.float32) if shape else np.float32(0)
        values[key] = value
        names.append(key)
        tensors.append(tf.constant(value))
    for key, value in (extra or {}).items():
        names.append(key)
        tensors.append(tf.constant(value))
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=tensors)
    return values


def _model(config, **overrides):
    configs = config_util.get_configs_from_pipeline_file(os.path.join(ROOT, "configs", config))
    for key, value in overrides.items():
        setattr(configs["model"].ssd, key, value)
    model = model_builder.build(configs["model"], is_training=True)
    model.build()
    return model


@pytest.mark.parametrize("config", ["ssd_mobilenet_v2_fpn_shapes_128_cpu", "ssd320_full_1gpus"])
def test_a_recorded_odapi_checkpoint_loads_every_variable(config, tmp_path):
    keys = _recorded_keys(config)
    prefix = str(tmp_path / "ckpt-0")
    slot = ("model/_box_predictor/_box_prediction_head/_box_encoder_layers/0/bias/"
            ".OPTIMIZER_SLOT/optimizer/momentum/.ATTRIBUTES/VARIABLE_VALUE")
    values = _write_odapi_checkpoint(prefix, keys, extra={
        "step/.ATTRIBUTES/VARIABLE_VALUE": np.int64(1234), slot: np.zeros([24], np.float32)})
    model = _model(config + ".config")
    assert oc.is_odapi_checkpoint(prefix)
    report = oc.restore(model, prefix)
    names = oc.odapi_names(model)
    assert len(report.loaded) == len(model.variables) == len(names) == len(keys)
    assert report.unexpected == () and report.left_out == ()
    assert report.step == 1234
    for name, variable in names.items():  # every variable holds the value of its key
        np.testing.assert_array_equal(variable.numpy(), values["model/" + name + oc.SUFFIX],
                                      err_msg=variable.path)
    # The OD API's order: its first backbone layer with weights is conv1, its class head has
    # anchors x (num_classes + 1) outputs.
    first = names["_feature_extractor/classification_backbone/layer_with_weights-0/kernel"]
    assert first.path.endswith(("conv1_conv/kernel", "Conv1/kernel"))
    head = names[oc.CLASS_HEAD + "/kernel"]
    assert head.shape[-1] == 6 * (model.num_classes + 1)


def test_another_num_classes_leaves_the_class_head_out_or_refuses(tmp_path):
    config = "ssd_mobilenet_v2_fpn_shapes_128_cpu"
    prefix = str(tmp_path / "ckpt-0")
    _write_odapi_checkpoint(prefix, _recorded_keys(config))
    model = _model(config + ".config", num_classes=7)
    with pytest.raises(oc.OdApiCheckpointError, match=r"class_predictor_layers/0/kernel: shape"):
        oc.restore(model, prefix)
    report = oc.restore(model, prefix, allow_other_num_classes=True)
    assert sorted(line.split(":")[0] for line in report.left_out) == [
        oc.CLASS_HEAD + "/bias", oc.CLASS_HEAD + "/kernel"]
    assert "another num_classes" in report.left_out[0]
    assert len(report.loaded) == len(model.variables) - 2


def test_classification_and_detection_fine_tune_from_an_odapi_checkpoint(tmp_path):
    config = "ssd_mobilenet_v2_fpn_shapes_128_cpu"
    prefix = str(tmp_path / "ckpt-0")
    values = _write_odapi_checkpoint(prefix, _recorded_keys(config))
    model = _model(config + ".config")
    names = oc.odapi_names(model)
    before = {n: v.numpy() for n, v in names.items()}
    checkpoints.fine_tune(model, prefix, "classification")
    for name, variable in names.items():
        expected = (values["model/" + name + oc.SUFFIX] if name.startswith(oc.BACKBONE)
                    else before[name])
        np.testing.assert_array_equal(variable.numpy(), expected, err_msg=name)
    report = oc.restore(model, prefix, backbone_only=True)
    assert report.not_backbone == len(names) - len(report.loaded) > 0
    # A directory as the model zoo ships it (a `checkpoint` file beside ckpt-0): its newest.
    (tmp_path / "checkpoint").write_text('model_checkpoint_path: "ckpt-0"\n')
    checkpoints.fine_tune(model, str(tmp_path), "detection")
    for name, variable in names.items():
        np.testing.assert_array_equal(variable.numpy(), values["model/" + name + oc.SUFFIX])


def test_a_checkpoint_of_another_network_is_refused_by_name(tmp_path):
    prefix = str(tmp_path / "ckpt-0")
    _write_odapi_checkpoint(prefix, _recorded_keys("ssd_mobilenet_v2_fpn_shapes_128_cpu"))
    model = _model("ssd320_full_1gpus.config")
    with pytest.raises(oc.OdApiCheckpointError, match=r"does not fit this model \(\d+ problems"):
        oc.restore(model, prefix)


def test_convert_writes_this_projects_layout_and_export_reads_both(tmp_path):
    from object_detection import convert_odapi_checkpoint
    from object_detection.export import exporter_lib

    config = "ssd_mobilenet_v2_fpn_shapes_128_cpu"
    odapi_dir = tmp_path / "odapi"
    odapi_dir.mkdir()
    values = _write_odapi_checkpoint(str(odapi_dir / "ckpt-0"), _recorded_keys(config),
                                     extra={"step/.ATTRIBUTES/VARIABLE_VALUE": np.int64(77)})
    configs = config_util.get_configs_from_pipeline_file(
        os.path.join(ROOT, "configs", config + ".config"))
    result = convert_odapi_checkpoint.convert(configs, str(odapi_dir / "ckpt-0"),
                                              str(tmp_path / "converted"))
    assert result["loaded"] == len(_recorded_keys(config)) and not result["left_out"]
    assert result["checkpoint"].endswith("ckpt-77")
    for source in (str(tmp_path / "converted"), str(odapi_dir / "ckpt-0")):
        model = _model(config + ".config")
        exporter_lib.restore_model(model, source)
        for name, variable in oc.odapi_names(model).items():
            np.testing.assert_array_equal(variable.numpy(), values["model/" + name + oc.SUFFIX])


def test_convert_command_refuses_a_checkpoint_that_is_not_the_od_apis(tmp_path):
    import subprocess
    import sys

    prefix = str(tmp_path / "plain")
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=["w"], shape_and_slices=[""],
                      tensors=[tf.zeros([2])])
    result = subprocess.run(
        [sys.executable, "-m", "object_detection.convert_odapi_checkpoint",
         "--pipeline_config_path",
         os.path.join(ROOT, "configs", "ssd_mobilenet_v2_fpn_shapes_128_cpu.config"),
         "--odapi_checkpoint", prefix, "--output_dir", str(tmp_path / "out")],
        capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "not an OD API checkpoint" in result.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "out").exists()


def test_evaluation_restores_an_odapi_checkpoint_with_its_step(tmp_path):
    from object_detection.training import distribution, train_lib

    config = "ssd_mobilenet_v2_fpn_shapes_128_cpu"
    prefix = str(tmp_path / "ckpt-0")
    values = _write_odapi_checkpoint(prefix, _recorded_keys(config),
                                     extra={"step/.ATTRIBUTES/VARIABLE_VALUE": np.int64(321)})
    configs = config_util.get_configs_from_pipeline_file(
        os.path.join(ROOT, "configs", config + ".config"))
    session = train_lib.RunState(configs, train_lib.RunOptions(model_dir=str(tmp_path)),
                                distribution.make_engine("tf", "default"))
    train_lib._restore_for_evaluation(session, prefix)
    assert session.step == 321
    for name, variable in oc.odapi_names(session.model).items():
        np.testing.assert_array_equal(variable.numpy(), values["model/" + name + oc.SUFFIX])
