"""Reads OD API checkpoints (TF2 and TF1) and TF-slim classifiers into this project's SSD.

Three layouts, told apart by their keys (`checkpoint_layout`), each mapped variable by variable:
- "tf2": OD API TF2 checkpoints, for models with a `_keras` extractor (below);
- "tf1": OD API TF1 name-based checkpoints (the seed's `model.ckpt-N`, TF1 model zoo
  `model.ckpt`), for models with a TF1 extractor: `tf1_names`;
- "slim": TF-slim ImageNet classifiers (`resnet_v1_50.ckpt`, the seed's
  `fine_tune_checkpoint`): the TF1 names of the backbone without `FeatureExtractor/`, as the TF1
  OD API maps them for `fine_tune_checkpoint_type: classification`.
A checkpoint of one layout given to a model of the other is a clear error naming which fits.

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
before it assigns anything. Optimizer slots, step counters and moving averages in the file are
not model variables and are not reported as unused.
"""
from __future__ import annotations

import dataclasses
import re

import keras
import numpy as np
import tensorflow as tf

SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"
PREFIX = "model/"
CLASS_HEAD = "_box_predictor/_prediction_heads/class_predictions_with_background/" \
             "_class_predictor_layers/0"
BACKBONE = "_feature_extractor/classification_backbone/"
BACKBONE_TF2_KEY = PREFIX + BACKBONE
TF1_FEATURE_EXTRACTOR = "FeatureExtractor/"
# A TF-slim ImageNet classifier (resnet_v1_50.ckpt, ...): its root conv.
SLIM_CLASSIFIER = re.compile(
    r"resnet_v1_(50|101|152)/conv1/weights|MobilenetV1/Conv2d_0/weights")
# Optimizer slots and moving averages of TF1 training (`<variable>/Momentum`, ...).
TF1_SLOT_NAMES = ("Momentum", "RMSProp", "RMSProp_1", "Adam", "Adam_1", "ExponentialMovingAverage")
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
      step: the checkpoint's `step` (TF2) or `global_step` (TF1), when it has one.
      not_backbone: model variables outside the backbone, not loaded by a backbone-only load.
      layout: the file's layout (`checkpoint_layout`).
    """

    loaded: tuple[str, ...]
    left_out: tuple[str, ...]
    unexpected: tuple[str, ...]
    step: int | None = None
    not_backbone: int = 0
    layout: str = "tf2"

    def summary(self) -> str:
        source = {"tf2": "OD API TF2 checkpoint", "tf1": "OD API TF1 checkpoint",
                  "slim": "TF-slim checkpoint"}[self.layout]
        parts = [f"{len(self.loaded)} variables mapped from the {source}"]
        if self.not_backbone:
            parts.append(f"{self.not_backbone} outside the backbone not loaded (classification)")
        if self.left_out:
            parts.append(f"{len(self.left_out)} left out ({'; '.join(self.left_out[:2])}"
                         f"{'; ...' if len(self.left_out) > 2 else ''})")
        if self.unexpected:
            parts.append(f"{len(self.unexpected)} in the file unused "
                         f"({', '.join(self.unexpected[:3])}{', ...' if len(self.unexpected) > 3 else ''})")
        return "; ".join(parts)


def checkpoint_layout(path: str) -> str | None:
    """Which OD API layout the checkpoint prefix `path` has, from its keys.

    Returns:
      "tf2" (object-based, `model/_feature_extractor/...`), "tf1" (name-based, written by the
      TF1 OD API: `FeatureExtractor/...`), "slim" (a TF-slim ImageNet classifier,
      `resnet_v1_50/conv1/weights`, ...) or None (none of these: e.g. this project's own).
    """
    keys = tf.train.load_checkpoint(path).get_variable_to_shape_map()
    if any(k.startswith(PREFIX + "_feature_extractor/") for k in keys):
        return "tf2"
    if any(k.startswith(TF1_FEATURE_EXTRACTOR) for k in keys):
        return "tf1"
    if any(SLIM_CLASSIFIER.fullmatch(k) for k in keys):
        return "slim"
    return None


def is_odapi_checkpoint(path: str) -> bool:
    """True when the checkpoint prefix `path` has one of the OD API (or TF-slim) layouts."""
    return checkpoint_layout(path) is not None


def odapi_names(model) -> dict[str, tf.Variable]:
    """{OD API TF2 name (no `model/` prefix, no suffix): variable} for every model variable.

    Raises:
      OdApiCheckpointError: the model's extractor or predictor has no OD API TF2 counterpart.
    """
    _check_layout(model, "tf2")
    names: dict[str, tf.Variable] = {}
    _backbone_names(model.feature_extractor, names)
    _fpn_names(model.feature_extractor, names)
    _predictor_names(model.box_predictor, names)
    _check_complete(model, names, "TF2")
    return names


def tf1_names(model) -> dict[str, tf.Variable]:
    """{OD API TF1 variable name: variable} for every variable of a model with a TF1 extractor.

    The names the TF1 OD API gives (and the seed's `model.ckpt-N` files hold):
    `FeatureExtractor/resnet_v1_50/block1/unit_1/bottleneck_v1/conv1/weights`, ...,
    `FeatureExtractor/resnet_v1_50/fpn/{projection_i,smoothing_i,bottom_up_block{l-1}}/...`
    (i = 1 for the finest level; MobileNet v1: `FeatureExtractor/MobilenetV1/Conv2d_0/...`,
    `.../fpn/bottom_up_Conv2d_{14,15}`), `WeightSharedConvolutionalBoxPredictor/
    {Box,Class}PredictionTower/conv2d_{j}/weights` with per-level batch norms
    `.../conv2d_{j}/BatchNorm/feature_{level index}/...`, and `.../{Box,Class}Predictor/`.

    Raises:
      OdApiCheckpointError: the model's extractor is not a TF1 (TF-slim) one.
    """
    _check_layout(model, "tf1")
    extractor = model.feature_extractor
    scope = TF1_FEATURE_EXTRACTOR + extractor.slim_scope
    names = slim_backbone_names(extractor.backbone, scope, extractor.backbone_slim_scope)
    fpn = extractor.fpn
    for i, level in enumerate(fpn.levels, start=1):
        _add_slim_layer(names, f"{scope}/fpn/projection_{i}", fpn._projections[level])
        if level in fpn._smoothing:
            conv, norm, _ = fpn._smoothing[level]
            _add_slim_layer(names, f"{scope}/fpn/smoothing_{i}", conv)
            _add_slim_layer(names, f"{scope}/fpn/smoothing_{i}/BatchNorm", norm)
    for level, (conv, norm, _) in sorted(extractor._coarse_blocks.items()):
        coarse = f"{scope}/fpn/{extractor.coarse_slim_scope(level)}"
        _add_slim_layer(names, coarse, conv)
        _add_slim_layer(names, f"{coarse}/BatchNorm", norm)
    predictor = model.box_predictor
    root = "WeightSharedConvolutionalBoxPredictor"
    for (convs, per_level), tower, _ in _towers(predictor):
        for j, conv in enumerate(convs):
            _add_slim_layer(names, f"{root}/{tower}/conv2d_{j}", conv)
        for index, level in enumerate(predictor.levels):
            for j, (norm, _activation) in enumerate(per_level[level]):
                if norm is not None:
                    _add_slim_layer(names, f"{root}/{tower}/conv2d_{j}/BatchNorm/feature_{index}",
                                    norm)
    _add_slim_layer(names, f"{root}/BoxPredictor", predictor._box_predictor)
    _add_slim_layer(names, f"{root}/ClassPredictor", predictor._class_predictor)
    _check_complete(model, names, "TF1")
    return names


def restore(model, path: str, *, backbone_only: bool = False,
            allow_other_num_classes: bool = False) -> OdApiLoadReport:
    """Copies an OD API checkpoint (TF2 or TF1) or a TF-slim classifier into a built model.

    Args:
      model: a built `SSDMetaArch` of the same network (a `_keras` extractor for TF2
        checkpoints, a TF1 one for TF1 and TF-slim checkpoints).
      path: checkpoint prefix (e.g. `.../checkpoint/ckpt-0`, `.../model.ckpt`).
      backbone_only: load only the backbone (`fine_tune_checkpoint_type: classification`);
        required for a TF-slim classifier, which holds nothing else.
      allow_other_num_classes: a class head of another shape is left out (reported) instead
        of being an error (fine-tuning on other classes).

    Returns:
      An `OdApiLoadReport`.

    Raises:
      OdApiCheckpointError: the file is of another layout or network, or a model variable is
        missing from it or has another shape (nothing is assigned then).
    """
    layout = checkpoint_layout(path)
    if layout is None:
        raise OdApiCheckpointError(
            f"{path}: not an OD API (TF2 or TF1) or TF-slim checkpoint.")
    _check_layout(model, "tf2" if layout == "tf2" else "tf1", path=path, file_layout=layout)
    reader = tf.train.load_checkpoint(path)
    stored = reader.get_variable_to_shape_map()
    backbone = {id(v) for v in model.feature_extractor.backbone.variables}
    if layout == "tf2":
        keys = {PREFIX + name + SUFFIX: v for name, v in odapi_names(model).items()}
    else:
        keys = tf1_names(model)
        if layout == "slim":
            _check_slim_network(model.feature_extractor, stored, path)
            if not backbone_only:
                raise OdApiCheckpointError(
                    f"{path}: a TF-slim classification checkpoint holds only the backbone; it "
                    "can only start a training (fine_tune_checkpoint_type: classification).")
            # TF-slim names are the TF1 ones without `FeatureExtractor/`.
            keys = {k.removeprefix(TF1_FEATURE_EXTRACTOR): v for k, v in keys.items()}
    class_head = {id(v) for v in model.box_predictor._class_predictor.weights}
    plan, left_out, problems = [], [], []
    not_backbone = 0
    for key, variable in keys.items():
        name = _short(key, layout)
        if backbone_only and id(variable) not in backbone:
            not_backbone += 1
            continue
        if key not in stored:
            problems.append(f"{name} (for {variable.path}) is not in the file")
            continue
        shape = tuple(stored[key])
        if shape != tuple(variable.shape):
            if id(variable) in class_head and allow_other_num_classes:
                left_out.append(f"{name}: class head {shape} in the file, {tuple(variable.shape)} "
                                "here (another num_classes): left at its initial value")
                continue
            problems.append(f"{name}: shape {shape} in the file, {tuple(variable.shape)} here")
            continue
        plan.append((name, variable, key))
    if problems:
        raise OdApiCheckpointError(
            f"{path}: the checkpoint does not fit this model ({len(problems)} problems): "
            + "; ".join(problems[:4]) + ("; ..." if len(problems) > 4 else ""))
    for _, variable, key in plan:
        variable.assign(np.asarray(reader.get_tensor(key)).astype(variable.dtype))
    taken = set(keys)
    unexpected = sorted(
        _short(k, layout) for k in stored
        if k not in taken and not _is_training_state(k, layout)
        and (layout == "slim" or not backbone_only
             or _in_backbone_scope(k, layout, model.feature_extractor)))
    step_key = "step" + SUFFIX if layout == "tf2" else "global_step"
    step = int(reader.get_tensor(step_key)) if step_key in stored else None
    return OdApiLoadReport(tuple(n for n, _, _ in plan), tuple(left_out), tuple(unexpected),
                           step, not_backbone, layout)


def _short(key: str, layout: str) -> str:
    """A file key as the report shows it (TF2: without `model/` and the suffix)."""
    if layout == "tf2" and key.startswith(PREFIX) and key.endswith(SUFFIX):
        return key[len(PREFIX):-len(SUFFIX)]
    return key


def _is_training_state(key: str, layout: str) -> bool:
    """Optimizer slots, step counters and moving averages: not model variables."""
    if layout == "tf2":
        return not (key.startswith(PREFIX) and key.endswith(SUFFIX)) or "/.OPTIMIZER_SLOT/" in key
    return key in ("global_step",) or key.rsplit("/", 1)[-1] in TF1_SLOT_NAMES


def _in_backbone_scope(key: str, layout: str, extractor) -> bool:
    """True when a file key sits where the backbone's variables sit (an unused one is reported
    by a backbone-only load; the rest of a detection checkpoint is not)."""
    if layout == "tf2":
        return key.startswith(BACKBONE_TF2_KEY)
    return key.startswith(f"{TF1_FEATURE_EXTRACTOR}{extractor.slim_scope}/") and "/fpn/" not in key


def _check_layout(model, layout: str, *, path: str | None = None,
                  file_layout: str | None = None) -> None:
    extractor = model.feature_extractor
    have = getattr(extractor, "ODAPI_LAYOUT", None)
    if have == layout:
        return
    kind = {"tf2": "an OD API TF2 (object-based) checkpoint",
            "tf1": "an OD API TF1 (name-based) checkpoint",
            "slim": "a TF-slim classification checkpoint"}[file_layout or layout]
    fits = ("the `_keras` feature extractors (OD API TF2 network)" if layout == "tf2" else
            "the TF1 feature extractors (ssd_resnet50_v1_fpn, ...: the TF-slim network)")
    where = f"{path}: " if path else ""
    raise OdApiCheckpointError(
        f"{where}{kind} fits {fits}; this model's extractor is {type(extractor).__name__} "
        f"({'TF1' if have == 'tf1' else 'TF2'} layout). Use the matching "
        "model.ssd.feature_extractor.type or the matching checkpoint.")


def _check_slim_network(extractor, stored, path: str) -> None:
    """A TF-slim classifier of another network is a clear error, not a list of missing keys."""
    scopes = sorted({k.split("/", 1)[0] for k in stored if SLIM_CLASSIFIER.fullmatch(k)})
    if extractor.slim_scope not in scopes:
        raise OdApiCheckpointError(
            f"{path}: a TF-slim checkpoint of {', '.join(scopes)}; this model's backbone is "
            f"{extractor.slim_scope} (model.ssd.feature_extractor.type).")


def _check_complete(model, names, layout: str) -> None:
    named = {id(v) for v in names.values()}
    unnamed = [v.path for v in model.variables if id(v) not in named]
    if unnamed:
        raise OdApiCheckpointError(f"no OD API {layout} name for {len(unnamed)} model variables "
                                   f"({unnamed[:3]}): this model has no OD API {layout} layout.")


# TF-slim's variable names for Keras' (after the depthwise rename below).
_SLIM_VARIABLE_NAMES = {"kernel": "weights", "bias": "biases",
                        "depthwise_kernel": "depthwise_weights",
                        "pointwise_kernel": "pointwise_weights"}


def _add_layer(names, prefix: str, layer, renames=None) -> None:
    """`names[prefix/<variable name>] = variable` for the layer's variables; the names are
    tf-keras' (the OD API TF2's) or, with `renames=_SLIM_VARIABLE_NAMES`, TF-slim's."""
    depthwise = isinstance(layer, keras.layers.DepthwiseConv2D)
    for variable in layer.weights:
        short = variable.path.split("/")[-1]
        if depthwise and short == "kernel":
            short = "depthwise_kernel"  # tf-keras' name of Keras 3's DepthwiseConv2D kernel
        names[f"{prefix}/{(renames or {}).get(short, short)}"] = variable


def _add_slim_layer(names, scope: str, layer) -> None:
    _add_layer(names, scope, layer, _SLIM_VARIABLE_NAMES)


def slim_backbone_names(backbone, scope: str, slim_scope) -> dict[str, tf.Variable]:
    """{`scope/<slim scope of the layer>/<slim variable name>`: variable} for every variable
    of a TF-slim-layout backbone; `slim_scope(layer_name)` gives the layer's scope."""
    names: dict[str, tf.Variable] = {}
    for layer in backbone.layers:
        if layer.weights:
            _add_slim_layer(names, f"{scope}/{slim_scope(layer.name)}", layer)
    return names


def _towers(predictor):
    """[((convs, per-level norms), tower scope, TF2 head name)] of the weight-shared predictor;
    one shared "PredictionTower" with `share_prediction_tower`. TF1 and TF2 use the same scopes."""
    if predictor._class_tower is None:
        return [(predictor._box_tower, "PredictionTower", "box_encodings")]
    return [(predictor._box_tower, "BoxPredictionTower", "box_encodings"),
            (predictor._class_tower, "ClassPredictionTower", "class_predictions_with_background")]


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
    for (convs, per_level), scope, head in _towers(predictor):
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
