"""Checkpoint layout: every model variable round-trips; fine-tuning loads what matches."""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from object_detection.builders import model_builder
from object_detection.meta_architectures import checkpoint_layout
from object_detection.training import checkpoints
from object_detection.utils import config_util

from .conftest import SMALL_CONFIG

TINY = ["model.ssd.feature_extractor.depth_multiplier=0.25",
        "model.ssd.box_predictor.weight_shared_convolutional_box_predictor.depth=16"]


def _model(*overrides):
    configs = config_util.get_configs_from_pipeline_file(SMALL_CONFIG,
                                                         config_override=[*TINY, *overrides])
    model = model_builder.build(configs["model"], is_training=True)
    model.build()
    return model


def _perturb(model):
    # Moving statistics start at 0/1 everywhere: make every variable distinct from a fresh one.
    rng = np.random.default_rng(0)
    for v in model.variables:
        v.assign(v.numpy() + rng.uniform(0.1, 0.2, v.shape).astype(v.dtype))


def test_every_model_variable_round_trips(tmp_path):
    model = _model()
    _perturb(model)
    path = checkpoint_layout.model_checkpoint(model).save(str(tmp_path / "ckpt"))
    fresh = _model()
    checkpoint_layout.model_checkpoint(fresh).restore(path).assert_existing_objects_matched()
    assert len(fresh.variables) == len(model.variables) > 300
    for a, b in zip(model.variables, fresh.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    images = tf.random.uniform([1, 128, 128, 3], 0, 255, seed=1)
    for k, v in model(images).items():
        np.testing.assert_allclose(fresh(images)[k], v, rtol=1e-5, atol=1e-5)


def test_detection_fine_tune_loads_matching_variables_only(tmp_path):
    source = _model()
    _perturb(source)
    path = checkpoint_layout.model_checkpoint(source).save(str(tmp_path / "ckpt"))
    target = _model("model.ssd.num_classes=5")  # another class head: its shape differs
    checkpoints.fine_tune(target, path, "detection")
    by_path = {v.path: v for v in source.variables}
    loaded = skipped = 0
    for v in target.variables:
        same = np.array_equal(v.numpy(), by_path[v.path].numpy()) \
            if v.shape == by_path[v.path].shape else False
        if v.shape == by_path[v.path].shape:
            assert same, v.path
            loaded += 1
        else:
            assert "ClassPredictor" in v.path or "class" in v.path.lower(), v.path
            skipped += 1
    assert loaded > 300 and skipped >= 1


def test_classification_fine_tune_from_a_checkpoint_loads_the_backbone_only(tmp_path):
    source = _model()
    _perturb(source)
    path = checkpoint_layout.model_checkpoint(source).save(str(tmp_path / "ckpt"))
    target = _model()
    before = {v.path: v.numpy() for v in target.variables}
    checkpoints.fine_tune(target, path, "classification")
    backbone = {v.path for v in target.feature_extractor.backbone.variables}
    by_path = {v.path: v for v in source.variables}
    for v in target.variables:
        expected = by_path[v.path].numpy() if v.path in backbone else before[v.path]
        np.testing.assert_array_equal(v.numpy(), expected, err_msg=v.path)
    assert backbone and len(backbone) < len(before)


def test_moving_average_weights_are_swapped_in_and_restored():
    import keras

    variable = keras.Variable(1.0)
    optimizer = keras.optimizers.SGD(1.0, use_ema=True, ema_momentum=0.5,
                                     ema_overwrite_frequency=None)
    optimizer.build([variable])
    optimizer.apply_gradients([(tf.constant(1.0), variable)])  # value 1 - 1 = 0
    # Keras' first EMA update copies the value; the second mixes: 0.5 * 0 + 0.5 * (-1) = -0.5.
    optimizer.apply_gradients([(tf.constant(1.0), variable)])  # value -1
    with checkpoints.moving_average_weights(optimizer, enabled=True):
        average = float(variable.numpy())
    assert float(variable.numpy()) == -1.0
    assert average == -0.5
    with checkpoints.moving_average_weights(optimizer, enabled=False):
        assert float(variable.numpy()) == -1.0
