"""Reads OD API TF2 checkpoints into this project's SSD, variable by variable.

The OD API's `model_main_tf2.py` (and every TF2 model zoo `checkpoint/ckpt-0`) writes an
object-based checkpoint, `tf.train.Checkpoint(model=detection_model, ...)`: each variable is
stored under the attribute path from the detection model to it, e.g.

    model/_feature_extractor/classification_backbone/layer_with_weights-0/kernel
    model/_feature_extractor/_fpn_features_generator/top_layers/0/bias
    model/_box_predictor/_base_tower_layers_for_heads/box_encodings/2/4/gamma

(each followed by `/.ATTRIBUTES/VARIABLE_VALUE`). `odapi_names(model)` gives that name for every
variable of an `SSDMetaArch` with a `_keras`-layout FPN extractor, by walking the model in the
order the OD API builds it:

- backbone: the i-th layer with variables of the backbone is `layer_with_weights-{i}` of its
  `classification_backbone` (both follow the keras.applications layer order);
- FPN: the top level's 1x1 projection is `top_layers/0`; below it, level by level from the
  coarsest, `residual_blocks/{i}/0` (1x1 projection) and `conv_layers/{i}/{0,1}` (3x3 smoothing
  conv, batch norm); the extra stride-2 levels are `_coarse_feature_layers/{i}/{0,1}`;
- predictor: tower convs `_head_scope_conv_layers/{Box,Class}PredictionTower/{j}`, their
  per-level batch norms `_base_tower_layers_for_heads/{box_encodings,
  class_predictions_with_background}/{level index}/{3 j + 1}` (each level's list is conv, batch
  norm, activation per tower layer), and the two output convs.

The class head of the OD API has the same layout as this project's (anchors x (K + 1) slots,
background first), so it copies unchanged when num_classes agrees and is left out, with a
reason, when it does not. `restore` checks every name against the file (present, same shape)
before it assigns anything.
"""
from __future__ import annotations

import dataclasses

import keras
import numpy as np
import tensorflow as tf

SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"
PREFIX = "model/"
CLASS_HEAD = "_box_predictor/_prediction_heads/class_predictions_with_background/" \
             "_class_predictor_layers/0"
BACKBONE = "_feature_extractor/classification_backbone/"
_BOX_HEAD = "_box_predictor/_box_prediction_head/_box_encoder_layers/0"


class OdApiCheckpointError(ValueError):
    """An OD API checkpoint does not fit the model (another network or config)."""


@dataclasses.dataclass(frozen=True)
class OdApiLoadReport:
    """What `restore` did.

    Attributes:
      loaded: OD API names (without `model/` and the suffix) copied into the model.
      left_out: "name: reason" for model variables deliberately not loaded (the class head
        of another num_classes).
      unexpected: names in the file under `model/` that no variable of the model took.
      step: the checkpoint's `step` (training step), when it has one.
      not_backbone: model variables outside the backbone, not loaded by a backbone-only load.
    """

    loaded: tuple[str, ...]
    left_out: tuple[str, ...]
    unexpected: tuple[str, ...]
    step: int | None = None
    not_backbone: int = 0

    def summary(self) -> str:
        parts = [f"{len(self.loaded)} variables mapped from the OD API checkpoint"]
        if self.not_backbone:
            parts.append(f"{self.not_backbone} outside the backbone not loaded (classification)")
        if self.left_out:
            parts.append(f"{len(self.left_out)} left out ({'; '.join(self.left_out[:2])}"
                         f"{'; ...' if len(self.left_out) > 2 else ''})")
        if self.unexpected:
            parts.append(f"{len(self.unexpected)} in the file unused "
                         f"({', '.join(self.unexpected[:3])}{', ...' if len(self.unexpected) > 3 else ''})")
        return "; ".join(parts)


def is_odapi_checkpoint(path: str) -> bool:
    """True when the checkpoint prefix `path` has the OD API TF2 layout."""
    keys = tf.train.load_checkpoint(path).get_variable_to_shape_map()
    return any(k.startswith(PREFIX + "_feature_extractor/") for k in keys)


def odapi_names(model) -> dict[str, tf.Variable]:
    """{OD API name (no `model/` prefix, no suffix): variable} for every model variable.

    Raises:
      OdApiCheckpointError: the model's extractor or predictor has no OD API TF2 counterpart.
    """
    names: dict[str, tf.Variable] = {}
    _backbone_names(model.feature_extractor, names)
    _fpn_names(model.feature_extractor, names)
    _predictor_names(model.box_predictor, names)
    named = {id(v) for v in names.values()}
    unnamed = [v.path for v in model.variables if id(v) not in named]
    if unnamed:
        raise OdApiCheckpointError(f"no OD API name for {len(unnamed)} model variables "
                                   f"({unnamed[:3]}): this model has no OD API TF2 layout.")
    return names


def restore(model, path: str, *, backbone_only: bool = False,
            allow_other_num_classes: bool = False) -> OdApiLoadReport:
    """Copies an OD API TF2 checkpoint into a built model.

    Args:
      model: a built `SSDMetaArch` of the same network.
      path: checkpoint prefix (e.g. `.../checkpoint/ckpt-0`).
      backbone_only: load only the backbone (`fine_tune_checkpoint_type: classification`).
      allow_other_num_classes: a class head of another shape is left out (reported) instead
        of being an error (fine-tuning on other classes).

    Returns:
      An `OdApiLoadReport`.

    Raises:
      OdApiCheckpointError: a model variable is missing from the file or has another shape
        (nothing is assigned then).
    """
    reader = tf.train.load_checkpoint(path)
    stored = reader.get_variable_to_shape_map()
    names = odapi_names(model)
    plan, left_out, problems = [], [], []
    not_backbone = 0
    for name, variable in names.items():
        if backbone_only and not name.startswith(BACKBONE):
            not_backbone += 1
            continue
        key = PREFIX + name + SUFFIX
        if key not in stored:
            problems.append(f"{name} (for {variable.path}) is not in the file")
            continue
        shape = tuple(stored[key])
        if shape != tuple(variable.shape):
            if name.startswith(CLASS_HEAD) and allow_other_num_classes:
                left_out.append(f"{name}: class head {shape} in the file, {tuple(variable.shape)} "
                                "here (another num_classes): left at its initial value")
                continue
            problems.append(f"{name}: shape {shape} in the file, {tuple(variable.shape)} here")
            continue
        plan.append((name, variable, key))
    if problems:
        raise OdApiCheckpointError(
            f"{path}: the OD API checkpoint does not fit this model ({len(problems)} problems): "
            + "; ".join(problems[:4]) + ("; ..." if len(problems) > 4 else ""))
    for _, variable, key in plan:
        variable.assign(np.asarray(reader.get_tensor(key)).astype(variable.dtype))
    taken = {PREFIX + n + SUFFIX for n in names}
    # Optimizer slots (`.../.OPTIMIZER_SLOT/optimizer/momentum/...`) are not model variables.
    unexpected = sorted(k[len(PREFIX):-len(SUFFIX)] for k in stored
                        if k.startswith(PREFIX) and k.endswith(SUFFIX) and k not in taken
                        and "/.OPTIMIZER_SLOT/" not in k
                        and not (backbone_only and not k.startswith(PREFIX + BACKBONE)))
    step_key = "step" + SUFFIX
    step = int(reader.get_tensor(step_key)) if step_key in stored else None
    return OdApiLoadReport(tuple(n for n, _, _ in plan), tuple(left_out), tuple(unexpected),
                           step, not_backbone)


def _add_layer(names, prefix: str, layer) -> None:
    depthwise = isinstance(layer, keras.layers.DepthwiseConv2D)
    for variable in layer.weights:
        short = variable.path.split("/")[-1]
        if depthwise and short == "kernel":
            short = "depthwise_kernel"  # tf-keras' name of Keras 3's DepthwiseConv2D kernel
        names[f"{prefix}/{short}"] = variable


def _backbone_names(extractor, names) -> None:
    backbone = getattr(extractor, "backbone", None)
    if backbone is None:
        raise OdApiCheckpointError(f"{type(extractor).__name__} has no Keras backbone model.")
    with_weights = [layer for layer in backbone.layers if layer.weights]
    for i, layer in enumerate(with_weights):
        _add_layer(names, f"{BACKBONE}layer_with_weights-{i}", layer)


def _fpn_names(extractor, names) -> None:
    fpn = getattr(extractor, "fpn", None)
    if fpn is None:
        raise OdApiCheckpointError(f"{type(extractor).__name__} has no OD API FPN.")
    root = "_feature_extractor/_fpn_features_generator"
    levels = fpn.levels
    _add_layer(names, f"{root}/top_layers/0", fpn._projections[levels[-1]])
    for i, level in enumerate(reversed(levels[:-1])):
        _add_layer(names, f"{root}/residual_blocks/{i}/0", fpn._projections[level])
        conv, norm, _ = fpn._smoothing[level]
        _add_layer(names, f"{root}/conv_layers/{i}/0", conv)
        _add_layer(names, f"{root}/conv_layers/{i}/1", norm)
    for i, level in enumerate(sorted(extractor._coarse_blocks)):
        conv, norm, _ = extractor._coarse_blocks[level]
        _add_layer(names, f"_feature_extractor/_coarse_feature_layers/{i}/0", conv)
        _add_layer(names, f"_feature_extractor/_coarse_feature_layers/{i}/1", norm)


def _predictor_names(predictor, names) -> None:
    towers = [(predictor._box_tower, "BoxPredictionTower", "box_encodings")]
    if predictor._class_tower is not None:
        towers.append((predictor._class_tower, "ClassPredictionTower",
                       "class_predictions_with_background"))
    else:
        towers = [(predictor._box_tower, "PredictionTower", "box_encodings")]
    for (convs, per_level), scope, head in towers:
        for j, conv in enumerate(convs):
            _add_layer(names, f"_box_predictor/_head_scope_conv_layers/{scope}/{j}", conv)
        for index, level in enumerate(predictor.levels):
            position = 0
            for j, (norm, _activation) in enumerate(per_level[level]):
                position += 1  # the conv
                if norm is not None:
                    _add_layer(names, f"_box_predictor/_base_tower_layers_for_heads/{head}/"
                                      f"{index}/{position}", norm)
                    position += 1
                position += 1  # the activation
    _add_layer(names, _BOX_HEAD, predictor._box_predictor)
    _add_layer(names, CLASS_HEAD, predictor._class_predictor)
