"""optimizer_builder: `train_config.optimizer` text protos -> Keras optimizer and schedule."""
from __future__ import annotations

import math

import keras
import pytest
from google.protobuf import text_format

from object_detection.builders import optimizer_builder
from object_detection.protos import train_pb2
from object_detection.utils.errors import ConfigError

# The optimizer of the seed's ssd320_full_8gpus.config, spelled exactly as there.
SEED_8GPUS = """
  optimizer {
    momentum_optimizer: {
      learning_rate: {
        cosine_decay_learning_rate {
          learning_rate_base: .16000000000000000000
          total_steps: 12500
          warmup_learning_rate: .06933120000000000000
          warmup_steps: 1000
        }
      }
      momentum_optimizer_value: 0.9
    }
    use_moving_average: false
  }
"""


def _train_config(text: str) -> train_pb2.TrainConfig:
    return text_format.Parse(text, train_pb2.TrainConfig())


def _build(text: str, **kwargs):
    return optimizer_builder.build(_train_config(text), **kwargs)


def _schedule(text: str):
    return optimizer_builder.learning_rate_fn(_build(text))


def _lr_text(schedule: str) -> str:
    return f"optimizer {{ momentum_optimizer {{ learning_rate {{ {schedule} }} }} " \
           "use_moving_average: false }"


def test_seed_8gpus_optimizer_is_sgd_with_momentum():
    optimizer = _build(SEED_8GPUS)
    assert isinstance(optimizer, keras.optimizers.SGD)
    assert optimizer.momentum == pytest.approx(0.9)
    assert not optimizer.use_ema
    assert optimizer.global_clipnorm is None


@pytest.mark.parametrize("step, expected", [
    (0, 0.0693312),  # warm-up starts at warmup_learning_rate
    (500, 0.0693312 + 0.5 * (0.16 - 0.0693312)),  # linear warm-up, half way: 0.1146656
    (1000, 0.16),  # end of warm-up: the base rate
    (1000 + 11500 // 2, 0.08),  # half way through the cosine: 0.16 * 0.5 * (1 + cos(pi / 2))
    (12500, 0.0),  # end of the schedule: 0.16 * 0.5 * (1 + cos(pi))
    (12501, 0.0),  # after total_steps
    (50000, 0.0),
])
def test_seed_8gpus_cosine_schedule(step, expected):
    assert float(_schedule(SEED_8GPUS)(step)) == pytest.approx(expected, rel=1e-5, abs=1e-7)


def test_seed_8gpus_cosine_schedule_is_near_016_after_warmup():
    schedule = _schedule(SEED_8GPUS)
    # 1 step into the decay: 0.08 * (1 + cos(pi / 11500)), within 1e-8 of 0.16.
    assert float(schedule(1001)) == pytest.approx(0.16, abs=1e-6)
    assert float(schedule(1001)) <= float(schedule(1000))


def test_cosine_hold_base_rate():
    schedule = _schedule(_lr_text("""cosine_decay_learning_rate {
        learning_rate_base: 1.0 total_steps: 300 warmup_learning_rate: 0.5 warmup_steps: 100
        hold_base_rate_steps: 100 }"""))
    assert float(schedule(50)) == pytest.approx(0.75)  # warm-up
    assert float(schedule(150)) == pytest.approx(1.0)  # held at the base rate
    assert float(schedule(250)) == pytest.approx(0.5)  # cosine half way over steps 200..300


@pytest.mark.parametrize("warmup, step, expected", [
    (False, 0, 0.1),  # initial_learning_rate
    (False, 99, 0.1),
    (False, 100, 0.01),  # from the first boundary on
    (False, 199, 0.01),
    (False, 200, 0.001),
    (False, 10000, 0.001),  # the last rate holds
    (True, 0, 0.1),  # warm-up ramp from the initial rate ...
    (True, 50, 0.055),  # ... 0.1 + (0.01 - 0.1) * 50 / 100 ...
    (True, 100, 0.01),  # ... to the first scheduled rate
    (True, 200, 0.001),
])
def test_manual_step_schedule(warmup, step, expected):
    schedule = _schedule(_lr_text(f"""manual_step_learning_rate {{
        initial_learning_rate: 0.1
        schedule {{ step: 100 learning_rate: 0.01 }}
        schedule {{ step: 200 learning_rate: 0.001 }}
        warmup: {str(warmup).lower()} }}"""))
    assert float(schedule(step)) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("fields, step, expected", [
    ("staircase: true", 0, 0.1),
    ("staircase: true", 99, 0.1),
    ("staircase: true", 100, 0.05),  # 0.1 * 0.5^1
    ("staircase: true", 250, 0.025),  # 0.1 * 0.5^floor(2.5)
    ("staircase: false", 150, 0.1 * 0.5 ** 1.5),  # 0.0353553
    ("staircase: true min_learning_rate: 0.03", 250, 0.03),  # floored at the minimum
    # Burn-in: burnin_learning_rate for the first burnin_steps, then decay from step 10 on.
    ("staircase: true burnin_learning_rate: 0.01 burnin_steps: 10", 5, 0.01),
    ("staircase: true burnin_learning_rate: 0.01 burnin_steps: 10", 10, 0.1),
    ("staircase: true burnin_learning_rate: 0.01 burnin_steps: 10", 109, 0.1),
    ("staircase: true burnin_learning_rate: 0.01 burnin_steps: 10", 110, 0.05),
])
def test_exponential_decay_schedule(fields, step, expected):
    schedule = _schedule(_lr_text(f"""exponential_decay_learning_rate {{
        initial_learning_rate: 0.1 decay_steps: 100 decay_factor: 0.5 {fields} }}"""))
    assert float(schedule(step)) == pytest.approx(expected, rel=1e-5)


def test_constant_schedule():
    schedule = _schedule(_lr_text("constant_learning_rate { learning_rate: 0.25 }"))
    assert float(schedule(0)) == float(schedule(10**6)) == 0.25


def test_rms_prop_optimizer():
    optimizer = _build("""optimizer {
        rms_prop_optimizer { learning_rate { constant_learning_rate { learning_rate: 0.01 } }
                             momentum_optimizer_value: 0.5 decay: 0.8 epsilon: 0.1 }
        use_moving_average: false }""")
    assert isinstance(optimizer, keras.optimizers.RMSprop)
    assert optimizer.rho == pytest.approx(0.8)  # OD API (tf.train.RMSPropOptimizer) decay
    assert optimizer.momentum == pytest.approx(0.5)
    assert optimizer.epsilon == pytest.approx(0.1)


def test_adam_optimizer():
    optimizer = _build("""optimizer {
        adam_optimizer { learning_rate { constant_learning_rate { learning_rate: 0.01 } }
                         epsilon: 0.001 }
        use_moving_average: false }""")
    assert isinstance(optimizer, keras.optimizers.Adam)
    assert optimizer.epsilon == pytest.approx(0.001)


def test_moving_average_and_gradient_clipping():
    optimizer = _build(_lr_text("constant_learning_rate { learning_rate: 0.01 }").replace(
        "use_moving_average: false", "use_moving_average: true moving_average_decay: 0.999")
        + " gradient_clipping_by_norm: 10.0")
    assert optimizer.use_ema
    assert optimizer.ema_momentum == pytest.approx(0.999)
    assert optimizer.global_clipnorm == pytest.approx(10.0)


def test_moving_average_is_on_by_default_as_in_the_od_api():
    # Optimizer.use_moving_average defaults to true (decay 0.9999) in the OD API proto.
    optimizer = _build("optimizer { momentum_optimizer { learning_rate { "
                       "constant_learning_rate { learning_rate: 0.01 } } } }")
    assert optimizer.use_ema
    assert optimizer.ema_momentum == pytest.approx(0.9999)


def test_float16_wraps_in_a_loss_scale_optimizer():
    optimizer = _build(SEED_8GPUS, amp_float16=True)
    assert isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
    assert isinstance(optimizer.inner_optimizer, keras.optimizers.SGD)
    schedule = optimizer_builder.learning_rate_fn(optimizer)
    assert float(schedule(0)) == pytest.approx(0.0693312, rel=1e-5)


_OPT = r"^train_config\.optimizer"
_LR = _OPT + r"\.momentum_optimizer\.learning_rate"


@pytest.mark.parametrize("text, pattern", [
    # No optimizer at all.
    ("batch_size: 8", _OPT + r": no optimizer is set; expected one of momentum_optimizer, "
                             r"rms_prop_optimizer, adam_optimizer"),
    # An optimizer without a learning rate.
    ("optimizer { momentum_optimizer { momentum_optimizer_value: 0.9 } }",
     _LR + r": no schedule is set; expected one of constant_learning_rate"),
    # EMA decay must be in (0, 1).
    (_lr_text("constant_learning_rate { learning_rate: 0.01 }").replace(
        "use_moving_average: false", "use_moving_average: true moving_average_decay: 1.0"),
     _OPT + r"\.moving_average_decay: must be in \(0, 1\), got 1"),
    (_lr_text("constant_learning_rate { learning_rate: -0.1 }"),
     _LR + r"\.constant_learning_rate\.learning_rate: got -0\.1; must be >= 0\."),
    (_lr_text("exponential_decay_learning_rate { decay_steps: 0 }"),
     _LR + r"\.exponential_decay_learning_rate\.decay_steps: got 0; must be > 0\."),
    (_lr_text("manual_step_learning_rate { schedule { step: 200 } schedule { step: 100 } }"),
     _LR + r"\.manual_step_learning_rate\.schedule\.1\.step: got 100; steps must be "
           r"strictly increasing \(previous step is 200\)"),
    (_lr_text("cosine_decay_learning_rate { total_steps: 0 warmup_steps: 0 }"),
     _LR + r"\.cosine_decay_learning_rate\.total_steps: must be > 0, got 0"),
    (_lr_text("cosine_decay_learning_rate { total_steps: 1000 warmup_steps: 2000 }"),
     _LR + r"\.cosine_decay_learning_rate: need warmup_steps \(2000\) <= total_steps "
           r"\(1000\)\.$"),
    # The decay starts after warm-up and hold: both must fit in total_steps.
    (_lr_text("cosine_decay_learning_rate { total_steps: 1000 warmup_steps: 600 "
              "hold_base_rate_steps: 500 }"),
     _LR + r"\.cosine_decay_learning_rate: need warmup_steps \(600\) \+ hold_base_rate_steps "
           r"\(500\) <= total_steps \(1000\)\.$"),
    (_lr_text("cosine_decay_learning_rate { learning_rate_base: 0.5 warmup_learning_rate: 0.75 "
              "total_steps: 1000 warmup_steps: 10 }"),
     _LR + r"\.cosine_decay_learning_rate: need warmup_learning_rate \(0\.75\) <= "
           r"learning_rate_base \(0\.5\) when warmup_steps > 0\."),
])
def test_config_errors_name_the_field(text, pattern):
    with pytest.raises(ConfigError, match=pattern):
        _build(text)


def test_hand_computed_cosine_matches_the_formula_at_a_few_steps():
    # 1-GPU seed: base 0.02, 100,000 steps, warm-up 8000 steps from 0.0086664.
    schedule = _schedule(_lr_text("""cosine_decay_learning_rate {
        learning_rate_base: 0.02 total_steps: 100000 warmup_learning_rate: 0.0086664
        warmup_steps: 8000 }"""))
    assert float(schedule(0)) == pytest.approx(0.0086664, rel=1e-5)
    assert float(schedule(8000)) == pytest.approx(0.02, rel=1e-5)
    # A quarter of the decay: 0.01 * (1 + cos(pi / 4)) = 0.0170711.
    assert float(schedule(8000 + 23000)) == pytest.approx(0.01 * (1 + math.cos(math.pi / 4)),
                                                          rel=1e-5)
