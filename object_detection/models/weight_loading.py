"""Copies `keras.applications` weights into this package's backbones, layer by layer, by name.

The backbones in `resnet_v1`, `mobilenet_v1` and `mobilenet_v2` give each layer the name it has
in `keras.applications`, so a model built there (and loaded from an ImageNet weights file saved by
Keras, with `weights=PATH`) is a weight source: for every layer of ours that has variables, the
layer of the same name is looked up in the source and its variables are matched by variable name
(`kernel`, `bias`, `gamma`, `beta`, `moving_mean`, `moving_variance`, ...). A layer is copied only
when both sides have the same variable names with the same shapes; everything else is reported.
Nothing is downloaded here.
"""
from __future__ import annotations

import dataclasses

import keras


@dataclasses.dataclass(frozen=True)
class WeightLoadReport:
    """What `load_keras_application_weights` did.

    Attributes:
      loaded: names of our layers whose every variable was copied.
      missing: our layers with variables that the source model does not have.
      mismatched: "name: reason" for layers present on both sides whose variables differ in names
        or shapes (left untouched).
      unused: source layers with variables that no layer of ours took (e.g. a classifier top).
    """

    loaded: tuple[str, ...]
    missing: tuple[str, ...]
    mismatched: tuple[str, ...]
    unused: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """True when every layer of ours with variables was loaded."""
        return not self.missing and not self.mismatched


def load_keras_application_weights(
    backbone: keras.Model, keras_model: keras.Model, *, strict: bool = False
) -> WeightLoadReport:
    """Copies the weights of `keras_model` into `backbone` by layer name.

    Args:
      backbone: one of this package's backbone models (e.g. `resnet_v1.resnet_v1(50)`, or a
        feature extractor's `.backbone`).
      keras_model: a `keras.applications` model, e.g.
        `keras.applications.ResNet50(weights=PATH_TO_WEIGHTS_H5, include_top=False)`.
      strict: raise instead of reporting when a layer is missing or mismatched.

    Returns:
      A `WeightLoadReport`.

    Raises:
      ValueError: `strict` and some layer could not be loaded (nothing is copied then).
    """
    source = {layer.name: layer for layer in keras_model.layers if layer.weights}
    loaded, missing, mismatched, plans = [], [], [], []
    for layer in _layers_with_weights(backbone):
        src = source.get(layer.name)
        if src is None:
            missing.append(layer.name)
            continue
        ours = {_short_name(v): v for v in layer.weights}
        theirs = {_short_name(v): v for v in src.weights}
        if set(ours) != set(theirs):
            mismatched.append(
                f"{layer.name}: variables {sorted(ours)} here vs {sorted(theirs)} in the source")
            continue
        bad = [k for k in ours if tuple(ours[k].shape) != tuple(theirs[k].shape)]
        if bad:
            mismatched.append(
                f"{layer.name}: " + ", ".join(
                    f"{k} {tuple(ours[k].shape)} vs {tuple(theirs[k].shape)}" for k in bad))
            continue
        plans.append((layer.name, [(ours[k], theirs[k]) for k in ours]))
    if strict and (missing or mismatched):
        raise ValueError(
            f"Cannot load {keras_model.name!r} into {backbone.name!r}: "
            f"missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"mismatched {mismatched[:5]}{'...' if len(mismatched) > 5 else ''}.")
    for name, pairs in plans:
        for ours_var, theirs_var in pairs:
            ours_var.assign(keras.ops.cast(theirs_var.value, ours_var.dtype))
        loaded.append(name)
    taken = set(loaded) | {m.split(":")[0] for m in mismatched}
    unused = [name for name in source if name not in taken]
    return WeightLoadReport(tuple(loaded), tuple(missing), tuple(mismatched), tuple(unused))


def _layers_with_weights(model: keras.Model) -> list[keras.layers.Layer]:
    return [layer for layer in model.layers if layer.weights]


def _short_name(variable) -> str:
    """`conv1_conv/kernel` -> `kernel` (Keras 3 paths end with the variable's own name)."""
    return variable.path.split("/")[-1]
