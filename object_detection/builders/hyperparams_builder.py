"""Builds `models.hyperparams.ConvHyperparams` from a `Hyperparams` message."""
from __future__ import annotations

from object_detection.models import hyperparams
from object_detection.protos import hyperparams_pb2
from object_detection.utils.errors import ConfigError


def build(config: hyperparams_pb2.Hyperparams, path: str) -> hyperparams.ConvHyperparams:
    """Hyperparams message at `path` -> ConvHyperparams (plain values)."""
    if config.op == hyperparams_pb2.Hyperparams.FC:
        raise ConfigError(f"{path}.op: FC is not supported by SSD feature extractors and box "
                          "predictors; use CONV.")
    l1 = l2 = 0.0
    which = config.regularizer.WhichOneof("regularizer_oneof")
    if which == "l2_regularizer":
        l2 = config.regularizer.l2_regularizer.weight
    elif which == "l1_regularizer":
        l1 = config.regularizer.l1_regularizer.weight
    if l1 < 0 or l2 < 0:
        raise ConfigError(f"{path}.regularizer.{which}.weight: must be >= 0, got {l1 or l2}.")
    init = config.initializer
    kind = init.WhichOneof("initializer_oneof")
    if kind == "truncated_normal_initializer":
        c = init.truncated_normal_initializer
        initializer = {"kind": "truncated_normal", "mean": c.mean, "stddev": c.stddev}
    elif kind == "random_normal_initializer":
        c = init.random_normal_initializer
        initializer = {"kind": "random_normal", "mean": c.mean, "stddev": c.stddev}
    elif kind == "variance_scaling_initializer":
        c = init.variance_scaling_initializer
        mode = hyperparams_pb2.VarianceScalingInitializer.Mode.Name(c.mode)
        initializer = {"kind": "variance_scaling", "factor": c.factor, "mode": mode,
                       "uniform": c.uniform}
    elif kind is None:
        raise ConfigError(f"{path}.initializer: no initializer is set; expected one of "
                          "truncated_normal_initializer, random_normal_initializer, "
                          "variance_scaling_initializer.")
    else:
        raise ConfigError(f"{path}.initializer: {kind!r} is not supported; expected one of "
                          "truncated_normal_initializer, random_normal_initializer, "
                          "variance_scaling_initializer.")
    if initializer.get("stddev", 1.0) <= 0:
        raise ConfigError(f"{path}.initializer.{kind}.stddev: must be > 0, got "
                          f"{initializer['stddev']}.")
    norm = config.WhichOneof("normalizer_oneof") if _has_oneof(config, "normalizer_oneof") \
        else ("batch_norm" if config.HasField("batch_norm") else None)
    batch_norm = None
    if norm in ("batch_norm", "sync_batch_norm"):
        bn = getattr(config, norm)
        if not 0.0 <= bn.decay <= 1.0:
            raise ConfigError(f"{path}.{norm}.decay: must be in [0, 1], got {bn.decay}.")
        if bn.epsilon <= 0:
            raise ConfigError(f"{path}.{norm}.epsilon: must be > 0, got {bn.epsilon}.")
        batch_norm = hyperparams.BatchNormParams(
            decay=bn.decay, epsilon=bn.epsilon, center=bn.center, scale=bn.scale, train=bn.train,
            synchronized=norm == "sync_batch_norm")
    elif norm is not None:
        raise ConfigError(f"{path}.{norm}: is not supported; use batch_norm, sync_batch_norm or "
                          "no normalizer.")
    activation = hyperparams_pb2.Hyperparams.Activation.Name(config.activation)
    if activation not in hyperparams.ACTIVATIONS:
        raise ConfigError(f"{path}.activation: {activation} is not supported; expected one of "
                          f"{list(hyperparams.ACTIVATIONS)}.")
    return hyperparams.ConvHyperparams(
        activation=activation, l2_weight=l2, l1_weight=l1, initializer=initializer,
        batch_norm=batch_norm, force_use_bias=config.force_use_bias)


def _has_oneof(message, name: str) -> bool:
    return name in message.DESCRIPTOR.oneofs_by_name
