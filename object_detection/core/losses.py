"""Per-anchor losses (the OD API's `core/losses.py`, as pure functions without reduction).

Every function returns an unreduced, weighted loss; normalization (e.g. by the number of matched
anchors) is the caller's job. Inputs are cast to float32; outputs are float32; all compile with
XLA.

With x a logit, z in {0, 1} (or soft) its target, p = sigmoid(x):
  sigmoid_cross_entropy = CE(x, z) * w,  CE(x, z) = max(x, 0) - x z + log(1 + exp(-|x|))
  sigmoid_focal_loss    = (1 - p_t)**gamma * alpha_t * CE(x, z) * w            (Lin et al. 2017)
                          p_t = z p + (1 - z)(1 - p),  alpha_t = z alpha + (1 - z)(1 - alpha)
With d = prediction - target per code element (4 per anchor):
  smooth_l1_loss = sum over the code of huber_delta(d) * w,
                   huber_delta(d) = 0.5 d**2 if |d| <= delta else delta (|d| - 0.5 delta)
  l2_loss        = sum over the code of 0.5 (w d)**2   (OD API WeightedL2LocalizationLoss: the
                   weight multiplies the difference before squaring; identical for 0/1 weights)
"""
from __future__ import annotations

from typing import Optional

import tensorflow as tf

from object_detection.core._tensor_utils import as_float32, check_rank


def _class_weights(weights: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """[B, A] -> [B, A, 1] so that it broadcasts over K; [B, A, K] (or [B, A, 1]) as is."""
    weights = as_float32(weights, "weights")
    check_rank(weights, (2, 3), "weights")
    if weights.shape.rank == 2:
        weights = weights[..., tf.newaxis]  # [B, A, 1]
    return weights


def sigmoid_cross_entropy(logits: tf.Tensor, targets: tf.Tensor,
                          weights: tf.Tensor) -> tf.Tensor:
    """Weighted sigmoid cross entropy, per anchor and class.

    Args:
      logits: float [B, A, K], raw class scores.
      targets: float [B, A, K], 1 for the true class, 0 otherwise (soft targets allowed).
      weights: float [B, A] (per anchor) or [B, A, K] (per anchor and class).

    Returns:
      float32 [B, A, K], unreduced.
    """
    logits = as_float32(logits, "logits")
    targets = as_float32(targets, "targets")
    check_rank(logits, (3,), "logits")
    weights = _class_weights(weights, logits)
    return tf.nn.sigmoid_cross_entropy_with_logits(labels=targets, logits=logits) * weights


def sigmoid_focal_loss(logits: tf.Tensor,
                       targets: tf.Tensor,
                       weights: tf.Tensor,
                       alpha: Optional[float] = 0.25,
                       gamma: Optional[float] = 2.0) -> tf.Tensor:
    """Weighted sigmoid focal loss (OD API `SigmoidFocalClassificationLoss`), per anchor and class.

    Args:
      logits: float [B, A, K], raw class scores.
      targets: float [B, A, K], 1 for the true class, 0 otherwise.
      weights: float [B, A] (per anchor) or [B, A, K] (per anchor and class).
      alpha: weight of positives (1 - alpha for negatives); None disables alpha weighting.
      gamma: focusing exponent on (1 - p_t); None or 0 disables the modulation.

    Returns:
      float32 [B, A, K], unreduced.
    """
    logits = as_float32(logits, "logits")
    targets = as_float32(targets, "targets")
    check_rank(logits, (3,), "logits")
    weights = _class_weights(weights, logits)
    cross_entropy = tf.nn.sigmoid_cross_entropy_with_logits(labels=targets, logits=logits)
    probabilities = tf.sigmoid(logits)
    p_t = targets * probabilities + (1.0 - targets) * (1.0 - probabilities)
    modulating_factor = 1.0
    if gamma:
        modulating_factor = tf.pow(1.0 - p_t, gamma)
    alpha_weight = 1.0
    if alpha is not None:
        alpha_weight = targets * alpha + (1.0 - targets) * (1.0 - alpha)
    return modulating_factor * alpha_weight * cross_entropy * weights


def _localization_inputs(predictions, targets, weights):
    predictions = as_float32(predictions, "predictions")
    targets = as_float32(targets, "targets")
    weights = as_float32(weights, "weights")
    check_rank(predictions, (3,), "predictions")
    check_rank(weights, (2,), "weights")
    return predictions, targets, weights


def smooth_l1_loss(predictions: tf.Tensor,
                   targets: tf.Tensor,
                   weights: tf.Tensor,
                   delta: float = 1.0) -> tf.Tensor:
    """Weighted smooth L1 (Huber) loss summed over the code (OD API `WeightedSmoothL1...Loss`).

    Args:
      predictions: float [B, A, C] box codes (C = 4: `[ty, tx, th, tw]`).
      targets: float [B, A, C] target codes.
      weights: float [B, A], per anchor (0 for unmatched anchors).
      delta: Huber transition point, > 0: quadratic below, linear above.

    Returns:
      float32 [B, A], unreduced over anchors.

    Raises:
      ValueError: if delta <= 0.
    """
    if not delta > 0:
        raise ValueError(f"smooth_l1_loss: delta must be > 0, got {delta}.")
    predictions, targets, weights = _localization_inputs(predictions, targets, weights)
    abs_diff = tf.abs(predictions - targets)
    quadratic = tf.minimum(abs_diff, delta)
    linear = abs_diff - quadratic
    per_element = 0.5 * tf.square(quadratic) + delta * linear  # [B, A, C]
    return tf.reduce_sum(per_element, axis=-1) * weights


def l2_loss(predictions: tf.Tensor, targets: tf.Tensor, weights: tf.Tensor) -> tf.Tensor:
    """Weighted L2 loss summed over the code (OD API `WeightedL2LocalizationLoss`).

    Args:
      predictions: float [B, A, C] box codes.
      targets: float [B, A, C] target codes.
      weights: float [B, A], per anchor; as in the OD API it multiplies the difference before
        squaring, so a weight w scales the loss by w**2 (no difference for 0/1 weights).

    Returns:
      float32 [B, A]: sum over C of 0.5 * (w * (prediction - target))**2.
    """
    predictions, targets, weights = _localization_inputs(predictions, targets, weights)
    weighted_diff = (predictions - targets) * weights[..., tf.newaxis]  # [B, A, C]
    return tf.reduce_sum(0.5 * tf.square(weighted_diff), axis=-1)
