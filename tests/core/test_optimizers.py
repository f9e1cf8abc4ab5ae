"""core/optimizers: the fused SGD update and the lean EMA compute what Keras's classes compute;
one replica skips the all-reduce."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from object_detection.core import optimizers

REPO = Path(__file__).resolve().parents[2]
SHAPES = [(3, 3, 4, 8), (8,), (5, 7)]


def _run(cls, steps: int = 4, strategy: tf.distribute.Strategy | None = None, **kwargs):
    """Weights and EMA averages after `steps` updates by cls(**kwargs) of a fixed loss, in a
    tf.function."""
    strategy = strategy or tf.distribute.get_strategy()
    rng = np.random.default_rng(0)
    initial = [rng.normal(size=s).astype(np.float32) for s in SHAPES]
    targets = [tf.constant(rng.normal(size=s).astype(np.float32)) for s in SHAPES]
    with strategy.scope():
        variables = [keras.Variable(v) for v in initial]
        optimizer = cls(**kwargs)
        optimizer.build(variables)

    @tf.function(autograph=False)
    def step():
        def replica():
            with tf.GradientTape() as tape:
                loss = tf.add_n([tf.reduce_sum(tf.square(v.value - t) * (1.0 + v.value))
                                 for v, t in zip(variables, targets)])
            grads = tape.gradient(loss, [v.value for v in variables])
            optimizer.apply_gradients(zip(grads, variables))
        strategy.run(replica)

    for _ in range(steps):
        step()
    averages = optimizer._model_variables_moving_average if optimizer.use_ema else []
    return [v.numpy() for v in variables], [a.numpy() for a in averages]


@pytest.mark.parametrize("momentum, nesterov", [(0.0, False), (0.9, False), (0.9, True)])
def test_fused_sgd_equals_keras_sgd_bit_for_bit(momentum, nesterov):
    kwargs = dict(learning_rate=0.05, momentum=momentum, nesterov=nesterov)
    ours, _ = _run(optimizers.SGD, **kwargs)
    keras_, _ = _run(keras.optimizers.SGD, **kwargs)
    for a, b in zip(ours, keras_):
        np.testing.assert_array_equal(a, b)
    assert not np.allclose(ours[0], _run(optimizers.SGD, steps=0, **kwargs)[0][0])  # it moved


@pytest.mark.parametrize("ours, theirs, kwargs", [
    (optimizers.SGD, keras.optimizers.SGD, dict(learning_rate=0.05, momentum=0.9)),
    (optimizers.Adam, keras.optimizers.Adam, dict(learning_rate=0.01)),
    (optimizers.RMSprop, keras.optimizers.RMSprop, dict(learning_rate=0.01, momentum=0.5)),
], ids=["sgd", "adam", "rmsprop"])
def test_lean_ema_equals_keras_ema_to_float32_round_off(ours, theirs, kwargs):
    kwargs = dict(kwargs, use_ema=True, ema_momentum=0.7)
    ours_w, ours_avg = _run(ours, **kwargs)
    keras_w, keras_avg = _run(theirs, **kwargs)
    for a, b in zip(ours_w, keras_w):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    for a, b, w in zip(ours_avg, keras_avg, ours_w):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
        assert not np.allclose(a, w, atol=1e-3)  # a real average, not the weights


def test_the_first_ema_step_copies_the_weights_exactly():
    weights, averages = _run(optimizers.SGD, steps=1, learning_rate=0.05, use_ema=True,
                             ema_momentum=0.99)
    for w, a in zip(weights, averages):
        np.testing.assert_array_equal(w, a)


def test_one_replica_hands_the_gradients_to_the_update_as_they_are():
    # Nothing to sum over one replica: no all-reduce (and no op) per gradient. Over two
    # replicas the sum is Keras's (test_two_mirrored_replicas_update_like_keras).
    variables = [keras.Variable(np.ones(s, np.float32)) for s in SHAPES]
    optimizer = optimizers.SGD(learning_rate=0.1, momentum=0.9)
    optimizer.build(variables)
    seen = []

    @tf.function(autograph=False)
    def reduce():
        pairs = [(tf.fill(s, 2.0), v.value) for s, v in zip(SHAPES, variables)]
        reduced = optimizer._all_reduce_sum_gradients(pairs)
        seen.append(all(a[0] is b[0] for a, b in zip(pairs, reduced)))
        return [g for g, _ in reduced]

    assert all(np.array_equal(g, np.full(s, 2.0)) for g, s in zip(reduce(), SHAPES))
    assert seen == [True]  # the very tensors: no op was added


def _compare_on_two_mirrored_replicas() -> None:
    """Run in a fresh process (logical devices must be set before TensorFlow starts)."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    kwargs = dict(learning_rate=0.05, momentum=0.9, use_ema=True, ema_momentum=0.7)
    ours_w, ours_avg = _run(optimizers.SGD, strategy=strategy, **kwargs)
    keras_w, keras_avg = _run(keras.optimizers.SGD, strategy=strategy, **kwargs)
    for a, b in zip(ours_w + ours_avg, keras_w + keras_avg):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    print(f"mirrored: {len(ours_w)} weights and {len(ours_avg)} averages agree")


def test_two_mirrored_replicas_update_like_keras():
    # MirroredStrategy over 2 logical CPUs: the update and the EMA run per replica.
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run([sys.executable, __file__], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "mirrored: 3 weights and 3 averages agree" in proc.stdout


if __name__ == "__main__":
    _compare_on_two_mirrored_replicas()
