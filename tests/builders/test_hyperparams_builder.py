"""hyperparams_builder: `Hyperparams` text protos -> ConvHyperparams (plain values)."""
from __future__ import annotations

import numpy as np
import pytest
from google.protobuf import text_format

from object_detection.builders import hyperparams_builder
from object_detection.protos import hyperparams_pb2
from object_detection.utils.errors import ConfigError

PATH = "model.ssd.feature_extractor.conv_hyperparams"

# The box predictor's conv_hyperparams of the SSD320 v1.2 seed configs.
SEED_PREDICTOR = """
  activation: RELU_6,
  regularizer { l2_regularizer { weight: 0.0004 } }
  initializer { random_normal_initializer { stddev: 0.01 mean: 0.0 } }
  batch_norm { scale: true, decay: 0.997, epsilon: 0.001, }
"""


def _build(text: str):
    return hyperparams_builder.build(text_format.Parse(text, hyperparams_pb2.Hyperparams()), PATH)


def test_seed_predictor_hyperparams_become_plain_values():
    hp = _build(SEED_PREDICTOR)
    assert hp.activation == "RELU_6"
    assert hp.l2_weight == pytest.approx(0.0004)  # float32 in the proto
    assert hp.l1_weight == 0.0
    assert dict(hp.initializer) == {"kind": "random_normal", "mean": 0.0,
                                    "stddev": pytest.approx(0.01)}
    assert hp.batch_norm.decay == pytest.approx(0.997)
    assert hp.batch_norm.epsilon == pytest.approx(0.001)
    assert hp.batch_norm.scale and hp.batch_norm.center and hp.batch_norm.train  # OD API defaults
    assert not hp.force_use_bias


def test_l2_weight_gives_the_slim_penalty():
    """slim's l2_regularizer(w) adds w * sum(x^2) / 2; the Keras regularizer must add the same."""
    hp = _build(SEED_PREDICTOR)
    regularizer = hp.conv_kwargs()["kernel_regularizer"]
    kernel = np.ones([3, 3, 1, 2], np.float32)  # 18 ones
    assert float(regularizer(kernel)) == pytest.approx(0.0004 * 18 / 2, rel=1e-5)  # 0.0036


def test_l1_regularizer_and_no_normalizer():
    hp = _build("""
      regularizer { l1_regularizer { weight: 0.5 } }
      initializer { truncated_normal_initializer { mean: 0.1 stddev: 0.03 } }""")
    assert (hp.l1_weight, hp.l2_weight) == (0.5, 0.0)
    assert hp.batch_norm is None
    assert dict(hp.initializer) == {"kind": "truncated_normal", "mean": pytest.approx(0.1),
                                    "stddev": pytest.approx(0.03)}
    assert hp.activation == "RELU"  # the proto's default activation
    assert hp.conv_kwargs()["use_bias"]  # no batch norm follows, so the conv needs a bias


def test_no_regularizer_means_zero_weights():
    hp = _build("initializer { truncated_normal_initializer {} }")
    assert (hp.l1_weight, hp.l2_weight) == (0.0, 0.0)
    assert hp.conv_kwargs()["kernel_regularizer"] is None


@pytest.mark.parametrize("activation", ["NONE", "RELU", "RELU_6", "SWISH"])  # every enum value
def test_activations(activation):
    hp = _build(f"activation: {activation} initializer {{ truncated_normal_initializer {{}} }}")
    assert hp.activation == activation


def test_variance_scaling_initializer():
    hp = _build("initializer { variance_scaling_initializer { factor: 1.0 uniform: true "
                "mode: FAN_AVG } }")
    assert dict(hp.initializer) == {"kind": "variance_scaling", "factor": 1.0, "mode": "FAN_AVG",
                                    "uniform": True}


def test_batch_norm_flags_and_force_use_bias():
    hp = _build("""
      initializer { truncated_normal_initializer {} }
      batch_norm { center: false scale: true train: false decay: 0.9 epsilon: 0.01 }
      force_use_bias: true""")
    assert not hp.batch_norm.center and hp.batch_norm.scale and not hp.batch_norm.train
    assert hp.batch_norm.decay == pytest.approx(0.9)
    assert hp.batch_norm.epsilon == pytest.approx(0.01)
    assert hp.force_use_bias and hp.conv_kwargs()["use_bias"]


def test_sync_batch_norm_is_batch_norm_with_synchronized_statistics():
    hp = _build("""
      initializer { truncated_normal_initializer {} }
      sync_batch_norm { scale: true decay: 0.997 epsilon: 0.001 }""")
    assert hp.batch_norm.synchronized and hp.batch_norm.scale
    layer = hp.make_batch_norm("bn")
    assert layer.sync_statistics and not layer.frozen
    assert not _build(SEED_PREDICTOR).make_batch_norm("bn").sync_statistics


_INIT = "initializer { truncated_normal_initializer {} }"


@pytest.mark.parametrize("text, pattern", [
    # FC layers are not used by SSD extractors or predictors.
    (f"op: FC {_INIT}", r"conv_hyperparams\.op: FC is not supported"),
    # A regularizer weight cannot be negative.
    (f"regularizer {{ l2_regularizer {{ weight: -0.1 }} }} {_INIT}",
     r"conv_hyperparams\.regularizer\.l2_regularizer\.weight: must be >= 0, got -0\.1"),
    # The OD API requires an initializer; so does this builder.
    ("activation: RELU_6", r"conv_hyperparams\.initializer: no initializer is set"),
    ('initializer { keras_initializer_by_name: "glorot_uniform" }',
     r"conv_hyperparams\.initializer: 'keras_initializer_by_name' is not supported"),
    ("initializer { random_normal_initializer { stddev: 0.0 } }",
     r"conv_hyperparams\.initializer\.random_normal_initializer\.stddev: must be > 0, got 0"),
    (f"{_INIT} batch_norm {{ decay: 1.5 }}",
     r"conv_hyperparams\.batch_norm\.decay: must be in \[0, 1\], got 1\.5"),
    (f"{_INIT} batch_norm {{ epsilon: 0.0 }}",
     r"conv_hyperparams\.batch_norm\.epsilon: must be > 0, got 0"),
    # Other normalizers change the model: rejected, not replaced by batch norm.
    (f"{_INIT} sync_batch_norm {{ epsilon: 0.0 }}",
     r"conv_hyperparams\.sync_batch_norm\.epsilon: must be > 0, got 0"),
    (f"{_INIT} group_norm {{ }}", r"conv_hyperparams\.group_norm: is not supported"),
])
def test_config_errors_name_the_field(text, pattern):
    with pytest.raises(ConfigError, match=r"^model\.ssd\.feature_extractor\." + pattern):
        _build(text)
