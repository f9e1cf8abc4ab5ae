"""Small private helpers shared by the `core/` modules: casting at the boundary, static checks.

Everything in `core/` computes in float32. Inputs of another dtype (float16 or bfloat16 under a
mixed-precision policy, float64 from numpy) are cast here, once, at the function boundary, as the
OD API's `BoxList` does, instead of being rejected.
"""
from __future__ import annotations

import tensorflow as tf


def as_float32(value, name: str) -> tf.Tensor:
    """Converts `value` (tensor, numpy array or Python number) to a float32 tensor."""
    value = tf.convert_to_tensor(value, name=name)
    if value.dtype != tf.float32:
        value = tf.cast(value, tf.float32)
    return value


def check_last_dim(tensor: tf.Tensor, size: int, name: str) -> None:
    """Raises ValueError at trace time if the static last dimension of `tensor` is not `size`."""
    if tensor.shape.rank is None:
        return
    if tensor.shape.rank == 0:
        raise ValueError(f"{name}: expected a tensor of shape [..., {size}], got a scalar.")
    last = tensor.shape[-1]
    if last is not None and last != size:
        raise ValueError(
            f"{name}: expected the last dimension to be {size}, got shape {tensor.shape}.")


def check_rank(tensor: tf.Tensor, ranks: tuple[int, ...], name: str) -> None:
    """Raises ValueError at trace time if the static rank of `tensor` is not one of `ranks`."""
    if tensor.shape.rank is not None and tensor.shape.rank not in ranks:
        expected = " or ".join(str(r) for r in ranks)
        raise ValueError(
            f"{name}: expected rank {expected}, got rank {tensor.shape.rank} "
            f"(shape {tensor.shape}).")
