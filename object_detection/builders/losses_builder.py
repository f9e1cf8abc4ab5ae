"""Builds `LossOptions` from `model.ssd.loss` and the normalization flags of `model.ssd`."""
from __future__ import annotations

from object_detection.meta_architectures.ssd_meta_arch import LossOptions
from object_detection.protos import losses_pb2, ssd_pb2
from object_detection.utils.errors import ConfigError

_CLASSIFICATION = {"weighted_sigmoid_focal": "sigmoid_focal", "weighted_sigmoid": "sigmoid"}
_LOCALIZATION = {"weighted_smooth_l1": "smooth_l1", "weighted_l2": "l2"}


def build(ssd_config: ssd_pb2.Ssd, path: str = "model.ssd") -> LossOptions:
    loss: losses_pb2.Loss = ssd_config.loss
    cls_which = loss.classification_loss.WhichOneof("classification_loss")
    if cls_which not in _CLASSIFICATION:
        raise ConfigError(
            f"{path}.loss.classification_loss: {cls_which!r} is not supported; expected one of "
            f"{sorted(_CLASSIFICATION)}.")
    loc_which = loss.localization_loss.WhichOneof("localization_loss")
    if loc_which not in _LOCALIZATION:
        raise ConfigError(
            f"{path}.loss.localization_loss: {loc_which!r} is not supported; expected one of "
            f"{sorted(_LOCALIZATION)}.")
    if loss.HasField("hard_example_miner"):
        raise ConfigError(f"{path}.loss.hard_example_miner: is not supported (focal loss "
                          "replaces hard example mining in this recipe).")
    if loss.HasField("random_example_sampler"):
        raise ConfigError(f"{path}.loss.random_example_sampler: is not supported.")
    if loss.equalization_loss.weight > 0:
        raise ConfigError(f"{path}.loss.equalization_loss: is not supported (weight "
                          f"{loss.equalization_loss.weight}); remove it or set weight: 0.")
    if loss.expected_loss_weights != losses_pb2.Loss.NONE:
        name = losses_pb2.Loss.ExpectedLossWeights.Name(loss.expected_loss_weights)
        raise ConfigError(f"{path}.loss.expected_loss_weights: {name} is not supported; "
                          "expected NONE.")
    alpha, gamma = None, 2.0
    if cls_which == "weighted_sigmoid_focal":
        focal = loss.classification_loss.weighted_sigmoid_focal
        alpha = focal.alpha if focal.HasField("alpha") else None
        gamma = focal.gamma
        if gamma < 0:
            raise ConfigError(f"{path}.loss.classification_loss.weighted_sigmoid_focal.gamma: "
                              f"must be >= 0, got {gamma}.")
        if alpha is not None and not 0.0 <= alpha <= 1.0:
            raise ConfigError(f"{path}.loss.classification_loss.weighted_sigmoid_focal.alpha: "
                              f"must be in [0, 1], got {alpha}.")
    delta = 1.0
    if loc_which == "weighted_smooth_l1":
        delta = loss.localization_loss.weighted_smooth_l1.delta
        if delta <= 0:
            raise ConfigError(f"{path}.loss.localization_loss.weighted_smooth_l1.delta: must be "
                              f"> 0, got {delta}.")
    for name in ("classification_weight", "localization_weight"):
        if getattr(loss, name) < 0:
            raise ConfigError(f"{path}.loss.{name}: must be >= 0, got {getattr(loss, name)}.")
    return LossOptions(
        classification_loss=_CLASSIFICATION[cls_which], focal_alpha=alpha, focal_gamma=gamma,
        localization_loss=_LOCALIZATION[loc_which], smooth_l1_delta=delta,
        classification_weight=loss.classification_weight,
        localization_weight=loss.localization_weight,
        normalize_by_num_matches=ssd_config.normalize_loss_by_num_matches,
        normalize_loc_by_codesize=ssd_config.normalize_loc_loss_by_codesize)
