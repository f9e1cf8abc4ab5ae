"""Which variables a run trains: `train_config.update_trainable_variables` and `freeze_variables`.

The OD API's TF1 training (`model_lib`, what the seed ran) keeps a trainable variable when it
matches one of the `update_trainable_variables` patterns (all of them when the list is empty)
and none of the `freeze_variables` patterns, each pattern a Python regular expression searched
(`re.search`) in the variable's name. The OD API's TF2 loop reads neither field; here both take
effect, for every extractor.

A pattern is searched in each of a variable's names, so configs written for either OD API keep
working:
- this project's Keras path (`ssd/WeightSharedConvolutionalBoxPredictor/class_predictor/kernel`,
  `Conv1/kernel` for a keras.applications backbone);
- the OD API TF1 name for a TF1 (TF-slim) extractor
  (`FeatureExtractor/resnet_v1_50/block1/unit_1/bottleneck_v1/conv1/weights`);
- the OD API TF2 object path for a `_keras` extractor
  (`_feature_extractor/classification_backbone/layer_with_weights-0/kernel`).

A frozen variable keeps its value (no gradient is applied, no optimizer slot is made); its
batch-norm moving statistics still follow the training batches, as in the OD API. A pattern
that matches no variable is almost always a typo, so it is a ConfigError naming it.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Sequence

from object_detection.meta_architectures import odapi_checkpoint
from object_detection.utils.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Selection:
    """The trainable variables split into those trained and those frozen."""

    trained: list
    frozen: list

    def summary(self) -> str:
        return (f"training {len(self.trained)} of {len(self.trained) + len(self.frozen)} "
                f"trainable variables ({len(self.frozen)} frozen by train_config."
                "update_trainable_variables / freeze_variables)")


def variable_names(model) -> dict[int, list[str]]:
    """{id(variable): every name a pattern is searched in} for the model's trainable variables."""
    names = {id(v): [v.path] for v in model.trainable_variables}
    for od_api_names in (odapi_checkpoint.odapi_names, odapi_checkpoint.tf1_names):
        try:
            mapping = od_api_names(model)
        except odapi_checkpoint.OdApiCheckpointError:
            continue  # the model has no counterpart in that OD API
        for name, variable in mapping.items():
            if id(variable) in names:
                names[id(variable)].append(name)
    return names


def _compile(patterns: Sequence[str], field: str) -> list[re.Pattern]:
    compiled = []
    for i, pattern in enumerate(patterns):
        try:
            compiled.append(re.compile(pattern))
        except re.error as e:
            raise ConfigError(f"train_config.{field}[{i}]: {pattern!r} is not a valid regular "
                              f"expression ({e}).") from None
    return compiled


def select(model, update_trainable_variables: Sequence[str] = (),
           freeze_variables: Sequence[str] = ()) -> Selection:
    """Splits `model.trainable_variables` by the two pattern lists (OD API semantics).

    Raises:
      ConfigError: a pattern is not a regular expression, or matches no variable (naming the
        field, the pattern and a few variable names to write patterns against), or nothing
        is left to train.
    """
    variables = list(model.trainable_variables)
    if not update_trainable_variables and not freeze_variables:
        return Selection(trained=variables, frozen=[])
    names = variable_names(model)
    include = _compile(update_trainable_variables, "update_trainable_variables")
    exclude = _compile(freeze_variables, "freeze_variables")

    def matches(pattern, variable) -> bool:
        return any(pattern.search(name) for name in names[id(variable)])

    for field, patterns in (("update_trainable_variables", include),
                            ("freeze_variables", exclude)):
        for i, pattern in enumerate(patterns):
            if not any(matches(pattern, v) for v in variables):
                examples = ", ".join(names[id(v)][-1] for v in variables[:1] + variables[-1:])
                raise ConfigError(
                    f"train_config.{field}[{i}]: {pattern.pattern!r} matches no trainable "
                    f"variable (patterns are searched in the Keras path and the OD API name "
                    f"of each variable, e.g. {examples}).")
    trained, frozen = [], []
    for v in variables:
        kept = (not include or any(matches(p, v) for p in include)) and \
            not any(matches(p, v) for p in exclude)
        (trained if kept else frozen).append(v)
    if not trained:
        raise ConfigError(
            "train_config.freeze_variables / update_trainable_variables: every one of the "
            f"{len(variables)} trainable variables is frozen; nothing would train.")
    return Selection(trained=trained, frozen=frozen)
