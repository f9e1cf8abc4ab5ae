"""Keras SGD with each variable's update as one fused TensorFlow kernel, and a lean EMA.

Keras 3 writes the momentum update of one variable as six element-wise ops and the moving
average (EMA) as ten, each through Keras's op layer; with the ~200-300 variables of a detector
that is thousands of graph nodes, a third of the time to trace the train step and a good part
of the graph optimization after it. The same arithmetic exists as one TensorFlow kernel per
variable, which these classes use:

- `SGD` (momentum or not, Nesterov or not): `ResourceApplyKerasMomentum`, which computes Keras's
  update exactly (m = m * momentum - grad * lr; var += m, or var += m * momentum - grad * lr
  with Nesterov); without momentum `ResourceApplyGradientDescent` (var -= lr * grad).
- The EMA of any optimizer built with `use_ema=True`: the decay is computed once per step, not
  once per variable, and each average moves by one kernel, average -= (1 - decay) *
  (average - var), which is Keras's decay * average + (1 - decay) * var up to float32 round-off
  (exactly var at the first step, where decay is 0).
- With one replica in sync, no all-reduce of the gradients: Keras's sum over replicas goes
  through `tf.custom_gradient` and adds an op per gradient even when there is nothing to sum.

Sparse gradients (tf.IndexedSlices) take Keras's own path.
The classes are Keras optimizers in every other respect (variables, checkpoints, loss scaling,
tf.distribute: the update runs where Keras runs it, inside the strategy's per-variable update).
"""
from __future__ import annotations

import keras
import tensorflow as tf


def _tf_variable(variable) -> tf.Variable:
    """The tf.Variable behind a Keras variable (or the variable itself)."""
    return variable.value if isinstance(variable, keras.Variable) else variable


def _read(variable) -> tf.Tensor:
    """The variable's value as one ReadVariableOp (no name scope, cast or tape bookkeeping:
    these functions run once per variable while the step is traced)."""
    return tf.raw_ops.ReadVariableOp(resource=variable.handle, dtype=variable.dtype)


class _Lean:
    """Mixin: the EMA update with one decay per step and one kernel per variable; no
    all-reduce of the gradients over a single replica."""

    def _all_reduce_sum_gradients(self, grads_and_vars):
        context = tf.distribute.get_replica_context()
        if context is not None and context.num_replicas_in_sync == 1:
            return list(grads_and_vars)  # the sum over one replica
        return super()._all_reduce_sum_gradients(grads_and_vars)

    def _update_model_variables_moving_average(self, trainable_variables):
        if not self.use_ema:
            return
        first_step = tf.equal(_tf_variable(self.iterations), 0)
        # Keras: decay 0 at the first step (the average starts as the weights), then ema_momentum.
        step_size = tf.where(first_step, 1.0, 1.0 - float(self.ema_momentum))
        alphas = {}  # the step size cast once per dtype, not once per variable
        for var, average in zip(trainable_variables, self._model_variables_moving_average):
            if average is None:
                continue
            average, var = _tf_variable(average), _tf_variable(var)
            if average.dtype not in alphas:
                alphas[average.dtype] = tf.cast(step_size, average.dtype)
            value = _read(var)
            if var.dtype != average.dtype:
                value = tf.cast(value, average.dtype)
            tf.raw_ops.ResourceApplyGradientDescent(
                var=average.handle, alpha=alphas[average.dtype],
                delta=tf.raw_ops.Sub(x=_read(average), y=value))


class SGD(_Lean, keras.optimizers.SGD):
    """keras.optimizers.SGD whose per-variable update is one fused kernel (see the module)."""

    def update_step(self, gradient, variable, learning_rate):
        if isinstance(gradient, tf.IndexedSlices):
            return super().update_step(gradient, variable, learning_rate)
        var = _tf_variable(variable)
        lr = tf.cast(learning_rate, var.dtype)
        grad = tf.cast(gradient, var.dtype)
        if self.momentum == 0:
            return tf.raw_ops.ResourceApplyGradientDescent(var=var.handle, alpha=lr, delta=grad)
        accum = _tf_variable(self.momentums[self._get_variable_index(variable)])
        return tf.raw_ops.ResourceApplyKerasMomentum(
            var=var.handle, accum=accum.handle, lr=lr, grad=grad,
            momentum=tf.cast(self.momentum, var.dtype), use_nesterov=bool(self.nesterov))


class RMSprop(_Lean, keras.optimizers.RMSprop):
    """keras.optimizers.RMSprop with the lean EMA (its own update is Keras's)."""


class Adam(_Lean, keras.optimizers.Adam):
    """keras.optimizers.Adam with the lean EMA (its own update is Keras's)."""
