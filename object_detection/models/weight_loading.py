"""Copies `keras.applications` weights into this package's backbones, layer by layer, by name.

The backbones in `resnet_v1`, `mobilenet_v1` and `mobilenet_v2` give each layer the name it has
in `keras.applications`, so a model built there (and loaded from an ImageNet weights file saved by
Keras, with `weights=PATH`) is a weight source: for every layer of ours that has variables, the
layer of the same name is looked up in the source and its variables are matched by variable name
(`kernel`, `bias`, `gamma`, `beta`, `moving_mean`, `moving_variance`, ...). A layer is copied only
when both sides have the same variable names with the same shapes, up to three exact adaptations
to the network the OD API builds from the same layers (each is listed in the report):

- input channels reversed: `keras.applications.ResNet*` were trained on BGR input, the OD API
  feeds RGB; reversing conv1's input channels gives the same output for the same image;
- conv bias folded: a source conv with a bias `b` followed by batch norm `X_bn`, where ours has
  no bias: BN((x + b)) with moving mean m equals BN(x) with moving mean m - b;
- batch norm epsilon folded: a source epsilon e_s against ours e: the moving variance v becomes
  v + e_s - e, so that v + e_s is unchanged (exact while that stays > 0).

Everything else is reported. Nothing is downloaded here.
"""
from __future__ import annotations

import dataclasses
from typing import Iterable

import keras
import numpy as np


@dataclasses.dataclass(frozen=True)
class WeightLoadReport:
    """What `load_keras_application_weights` did.

    Attributes:
      loaded: names of our layers whose every variable was copied.
      missing: our layers with variables that the source model does not have.
      mismatched: "name: reason" for layers present on both sides whose variables differ in names
        or shapes (left untouched).
      unused: source layers with variables that no layer of ours took (e.g. a classifier top).
      adapted: one line per kind of adaptation made (see the module docstring).
    """

    loaded: tuple[str, ...]
    missing: tuple[str, ...]
    mismatched: tuple[str, ...]
    unused: tuple[str, ...]
    adapted: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True when every layer of ours with variables was loaded."""
        return not self.missing and not self.mismatched

    def summary(self) -> str:
        """One line: counts, the adaptations, and the first names of what was not loaded."""
        parts = [f"{len(self.loaded)} layers loaded"]
        for label, names in (("missing", self.missing), ("mismatched", self.mismatched),
                             ("unused in the source", self.unused)):
            if names:
                parts.append(f"{len(names)} {label} ({', '.join(names[:3])}"
                             f"{', ...' if len(names) > 3 else ''})")
        parts.extend(f"adapted: {line}" for line in self.adapted)
        return "; ".join(parts)


def load_keras_application_weights(
    backbone: keras.Model, keras_model: keras.Model, *, strict: bool = False,
    reverse_input_channels: Iterable[str] = (),
) -> WeightLoadReport:
    """Copies the weights of `keras_model` into `backbone` by layer name.

    Args:
      backbone: one of this package's backbone models (e.g. `resnet_v1.resnet_v1(50)`, or a
        feature extractor's `.backbone`).
      keras_model: a `keras.applications` model, e.g.
        `keras.applications.ResNet50(weights=PATH_TO_WEIGHTS_H5, include_top=False)`.
      strict: raise instead of reporting when a layer is missing or mismatched.
      reverse_input_channels: names of convs whose kernel's input channels are reversed
        (the first conv, when the source was trained on BGR and ours is fed RGB).

    Returns:
      A `WeightLoadReport`.

    Raises:
      ValueError: `strict` and some layer could not be loaded (nothing is copied then).
    """
    source = {layer.name: layer for layer in keras_model.layers if layer.weights}
    ours_by_name = {layer.name: layer for layer in _layers_with_weights(backbone)}
    reverse = set(reverse_input_channels)
    loaded, missing, mismatched = [], [], []
    values: dict[str, dict[str, np.ndarray]] = {}  # our layer -> variable -> value to assign
    folded_biases: dict[str, np.ndarray] = {}  # our batch norm -> bias of the conv before it
    for name, layer in ours_by_name.items():
        src = source.get(name)
        if src is None:
            missing.append(name)
            continue
        ours = {_short_name(v): v for v in layer.weights}
        theirs = {_short_name(v): v for v in src.weights}
        bias_to_fold = None
        if set(theirs) - set(ours) == {"bias"} and set(ours) == set(theirs) - {"bias"}:
            bn_name = _batch_norm_after(name)
            if bn_name is None or bn_name not in ours_by_name or bn_name not in source:
                mismatched.append(f"{name}: the source conv has a bias, ours has none and no "
                                  "batch norm follows it to fold the bias into")
                continue
            bias_to_fold = (bn_name, np.asarray(theirs.pop("bias").numpy()))
        if set(ours) != set(theirs):
            mismatched.append(
                f"{name}: variables {sorted(ours)} here vs {sorted(theirs)} in the source")
            continue
        bad = [k for k in ours if tuple(ours[k].shape) != tuple(theirs[k].shape)]
        if bad:
            mismatched.append(
                f"{name}: " + ", ".join(
                    f"{k} {tuple(ours[k].shape)} vs {tuple(theirs[k].shape)}" for k in bad))
            continue
        values[name] = {k: np.asarray(theirs[k].numpy()) for k in ours}
        if name in reverse:
            values[name]["kernel"] = values[name]["kernel"][:, :, ::-1, :]
        if bias_to_fold is not None:
            folded_biases[bias_to_fold[0]] = bias_to_fold[1]
    if strict and (missing or mismatched):
        raise ValueError(
            f"Cannot load {keras_model.name!r} into {backbone.name!r}: "
            f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"mismatched {mismatched[:5]}{'...' if len(mismatched) > 5 else ''}.")
    epsilon_folds = _fold_into_batch_norms(values, folded_biases, ours_by_name, source)
    for name, layer_values in values.items():
        for variable in ours_by_name[name].weights:
            value = layer_values[_short_name(variable)]
            variable.assign(keras.ops.cast(value, variable.dtype))
        loaded.append(name)
    taken = set(loaded) | {m.split(":")[0] for m in mismatched}
    unused = [name for name in source if name not in taken]
    adapted = []
    reversed_done = sorted(reverse & set(loaded))
    if reversed_done:
        adapted.append(f"input channels of {', '.join(reversed_done)} reversed (BGR-trained "
                       "weights, RGB input)")
    if folded_biases:
        adapted.append(f"{len(folded_biases)} conv biases folded into the moving mean of the "
                       "batch norm after them")
    adapted.extend(epsilon_folds)
    return WeightLoadReport(tuple(loaded), tuple(missing), tuple(mismatched), tuple(unused),
                            tuple(adapted))


def _fold_into_batch_norms(values, folded_biases, ours_by_name, source) -> list[str]:
    """Applies the bias and epsilon folds to the batch norm values; returns report lines."""
    for bn_name, bias in folded_biases.items():
        if bn_name in values:
            values[bn_name]["moving_mean"] = values[bn_name]["moving_mean"] - bias
    changed: dict[tuple[float, float], int] = {}
    for name, layer_values in values.items():
        ours, theirs = ours_by_name[name], source[name]
        if not isinstance(ours, keras.layers.BatchNormalization):
            continue
        delta = float(theirs.epsilon) - float(ours.epsilon)
        if delta:
            variance = layer_values["moving_variance"].astype(np.float64) + delta
            layer_values["moving_variance"] = np.maximum(variance, 0.0).astype(np.float32)
            key = (float(theirs.epsilon), float(ours.epsilon))
            changed[key] = changed.get(key, 0) + 1
    return [f"batch norm epsilon {src:g} -> {ours:g} folded into the moving variance of {n} "
            "batch norms" for (src, ours), n in changed.items()]


def _batch_norm_after(conv_name: str) -> str | None:
    """keras.applications naming: the batch norm after `X_conv` is `X_bn`."""
    return conv_name[:-len("_conv")] + "_bn" if conv_name.endswith("_conv") else None


def _layers_with_weights(model: keras.Model) -> list[keras.layers.Layer]:
    return [layer for layer in model.layers if layer.weights]


def _short_name(variable) -> str:
    """`conv1_conv/kernel` -> `kernel` (Keras 3 paths end with the variable's own name)."""
    return variable.path.split("/")[-1]
