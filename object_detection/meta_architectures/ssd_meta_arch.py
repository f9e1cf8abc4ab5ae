"""SSD meta-architecture: predict -> losses -> postprocess.

The three phases of the OD API's `SSDMetaArch`, with explicit inputs and no hidden state:

- `call(images)`: model preprocessing (the feature extractor's), backbone + FPN, weight-shared
  box predictor. Returns `box_encodings` float32 [B, A, 4] and
  `class_predictions_with_background` float32 [B, A, K'] where K' = num_classes + 1 when
  `add_background_class` (the OD API default: column 0 is an implicit background slot) and
  num_classes otherwise.
- `compute_losses(predictions, groundtruth)`: anchors (a constant [A, 4] computed once from the
  fixed input size) are matched to the padded ground truth, the box coder gives regression
  targets, and the classification and localization losses are summed over anchors and divided
  by the number of matched anchors (`normalize_loss_by_num_matches`), and the localization loss
  also by the code size 4 (`normalize_loc_loss_by_codesize`). The background slot, when there is
  one, is a class target like the others (OD API): 0 everywhere with
  `encode_background_as_zeros`, else 1 on unmatched anchors; its loss counts.
- `postprocess(predictions)`: decode boxes against the anchors, convert logits to scores
  (sigmoid), drop the background column if any, batched multiclass NMS on the decoded boxes,
  then clip to the image window (the OD API's order), padded outputs.

Heads, box math and losses run in float32 whatever the dtype policy.
"""
from __future__ import annotations

import dataclasses
from typing import Mapping

import keras
import numpy as np
import tensorflow as tf

from object_detection.core import image_resizer
from object_detection.core import losses as losses_lib
from object_detection.core import post_processing
from object_detection.core.standard_fields import DetectionResultFields as D
from object_detection.core.standard_fields import InputFields as F
from object_detection.core.standard_fields import LossFields
from object_detection.core.standard_fields import PredictionFields as P
from object_detection.core.standard_fields import TargetFields as T

CLASSIFICATION_LOSSES = ("sigmoid_focal", "sigmoid")
# The fields of a batch that `assign_targets` reads.
GROUNDTRUTH_KEYS = (F.groundtruth_boxes, F.groundtruth_classes, F.groundtruth_weights,
                    F.num_groundtruth_boxes)
LOCALIZATION_LOSSES = ("smooth_l1", "l2")


@dataclasses.dataclass(frozen=True)
class LossOptions:
    """How the per-anchor losses are computed, weighted and normalized (OD API `Loss` + flags)."""

    classification_loss: str = "sigmoid_focal"  # one of CLASSIFICATION_LOSSES
    focal_alpha: float | None = 0.25  # None: no alpha weighting
    focal_gamma: float = 2.0
    localization_loss: str = "smooth_l1"  # one of LOCALIZATION_LOSSES
    smooth_l1_delta: float = 1.0
    classification_weight: float = 1.0
    localization_weight: float = 1.0
    normalize_by_num_matches: bool = True
    normalize_loc_by_codesize: bool = False


@dataclasses.dataclass(frozen=True)
class PostprocessOptions:
    """Batched multiclass NMS settings (OD API `BatchNonMaxSuppression` + score converter)."""

    score_threshold: float = 1e-8
    iou_threshold: float = 0.6
    max_detections_per_class: int = 100
    max_total_detections: int = 100
    score_converter: str = "SIGMOID"
    logit_scale: float = 1.0


class SSDMetaArch(keras.Model):
    """Single-shot detector over a fixed-size input.

    Args:
      feature_extractor: layer mapping images [B, H, W, 3] (0..255) to {level: [B, H_l, W_l, C]};
        has `preprocess(images)`.
      box_predictor: layer mapping the feature dict to box encodings and class logits.
      anchors: float32 [A, 4] yxyx normalized, in the predictor's output order.
      image_size: (height, width) of the model input.
      resize_method: how images of other sizes are brought to `image_size`
        (`core.image_resizer.RESIZE_METHODS`; the config's `fixed_shape_resizer.resize_method`).
      num_classes: K, foreground classes (background excluded).
      encode_background_as_zeros: the background slot's target is always 0 (True) or 1 on
        unmatched anchors (False).
      add_background_class: the class head has K + 1 columns, column 0 for background (True,
        OD API default), or K (False, then `encode_background_as_zeros` must be True).
      target_assigner: `core.target_assigner.TargetAssigner` (matcher + box coder).
      loss_options: `LossOptions`.
      postprocess_options: `PostprocessOptions`.
    """

    def __init__(
        self,
        *,
        feature_extractor: keras.layers.Layer,
        box_predictor: keras.layers.Layer,
        anchors: np.ndarray,
        image_size: tuple[int, int],
        num_classes: int,
        resize_method: str = "BILINEAR",
        encode_background_as_zeros: bool,
        target_assigner,
        add_background_class: bool = True,
        loss_options: LossOptions = LossOptions(),
        postprocess_options: PostprocessOptions = PostprocessOptions(),
        name: str = "ssd",
    ):
        super().__init__(name=name)
        if loss_options.classification_loss not in CLASSIFICATION_LOSSES:
            raise ValueError(
                f"classification_loss {loss_options.classification_loss!r} is not supported; "
                f"expected one of {list(CLASSIFICATION_LOSSES)}.")
        if loss_options.localization_loss not in LOCALIZATION_LOSSES:
            raise ValueError(
                f"localization_loss {loss_options.localization_loss!r} is not supported; "
                f"expected one of {list(LOCALIZATION_LOSSES)}.")
        self.feature_extractor = feature_extractor
        self.box_predictor = box_predictor
        self.image_size = tuple(int(s) for s in image_size)
        if resize_method not in image_resizer.RESIZE_METHODS:
            raise ValueError(f"resize_method {resize_method!r} is not one of "
                             f"{list(image_resizer.RESIZE_METHODS)}.")
        self.resize_method = resize_method
        self.num_classes = int(num_classes)
        self.encode_background_as_zeros = bool(encode_background_as_zeros)
        self.add_background_class = bool(add_background_class)
        if not self.add_background_class and not self.encode_background_as_zeros:
            raise ValueError("add_background_class=False needs encode_background_as_zeros=True "
                             "(there is no background slot to set to 1).")
        self.target_assigner = target_assigner
        self.loss_options = loss_options
        self.postprocess_options = postprocess_options
        self._anchors_np = np.asarray(anchors, dtype=np.float32)
        self.num_anchors = int(self._anchors_np.shape[0])

    @property
    def anchors(self) -> tf.Tensor:
        """float32 [A, 4]: the anchors, yxyx normalized, a constant of the input size."""
        return tf.constant(self._anchors_np)

    @property
    def num_class_slots(self) -> int:
        """K': width of the class head (K + 1 with the implicit background column)."""
        return self.num_classes + 1 if self.add_background_class else self.num_classes

    def resize_images(self, images: tf.Tensor) -> tf.Tensor:
        """float32 [B, h, w, 3] (`image_size`) from images of any size, as the input pipeline
        resizes them (`core.image_resizer.resize_images` with `resize_method`)."""
        height, width = self.image_size
        return image_resizer.resize_images(images, height, width, self.resize_method)

    def build(self, input_shape=None):
        """Creates every weight from the shapes alone (no symbolic pass through the network):
        the feature extractor for the fixed input size, then the box predictor for its
        `feature_depth`-channel maps."""
        if self.built:
            return
        height, width = self.image_size
        self.feature_extractor.build((None, height, width, 3))
        depth = self.feature_extractor.feature_depth
        self.box_predictor.build({level: (None, None, None, depth)
                                  for level in self.feature_extractor.levels})
        super().build(input_shape)

    def call(self, images: tf.Tensor, training: bool = False) -> dict[str, tf.Tensor]:
        """Runs the network.

        Args:
          images: float [B, H, W, 3], RGB pixel values in 0..255, H, W = `image_size`.
          training: whether batch norm (unless frozen) and dropout run in training mode.

        Returns:
          box_encodings float32 [B, A, 4]; class_predictions_with_background float32 [B, A, K'].
        """
        return self.predict_normalized(self.feature_extractor.preprocess(images), training)

    def predict_normalized(self, images: tf.Tensor, training: bool = False
                           ) -> dict[str, tf.Tensor]:
        """`call` without the model preprocessing: `images` are already normalized as the
        feature extractor's `preprocess` does (the OD API TFLite model's input)."""
        features = self.feature_extractor(images, training=training)
        predictions = self.box_predictor(features, training=training)
        return {
            P.box_encodings: tf.cast(predictions[P.box_encodings], tf.float32),
            P.class_predictions_with_background: tf.cast(
                predictions[P.class_predictions_with_background], tf.float32),
        }

    def regularization_loss(self) -> tf.Tensor:
        """float32 scalar: the weights' regularization losses summed (what `sum(self.losses)`
        gives: no layer here adds other losses), in fewer graph ops.

        Weights with the same `keras.regularizers.L2(l2)` add up as `2 * l2 * sum(l2_loss(w))`:
        one op per weight and one for its gradient, where Keras's `l2 * sum(square(w))` per
        weight makes about a dozen with the gradient (a sixth of the small config's training
        graph). Same value up to float32 round-off (the sums are associated differently).
        Other regularizers (L1, L1L2) are computed as Keras does.
        """
        by_l2: dict[float, list] = {}
        terms = []
        for weight in self.trainable_weights:
            regularizer = weight.regularizer
            if regularizer is None:
                continue
            if type(regularizer) is keras.regularizers.L2:
                by_l2.setdefault(float(regularizer.l2), []).append(weight)
            else:
                terms.append(tf.cast(regularizer(weight), tf.float32))
        for l2, weights in by_l2.items():
            terms.append((2.0 * l2) * tf.add_n([tf.nn.l2_loss(tf.cast(w, tf.float32))
                                                for w in weights]))
        return tf.add_n(terms) if terms else tf.constant(0.0)

    def assign_targets(self, groundtruth: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """Matches the anchors to the padded ground truth (no weights involved).

        Args:
          groundtruth: groundtruth_boxes float [B, N, 4] yxyx normalized,
            groundtruth_classes int32 [B, N] 0-based, num_groundtruth_boxes int32 [B], and
            optionally groundtruth_weights float [B, N] (0 = ignore the box, e.g. COCO crowd).

        Returns:
          The target assigner's cls_targets [B, A, K'] (a background column prepended with
          `add_background_class`: 0, or 1 on unmatched anchors without
          `encode_background_as_zeros`), cls_weights [B, A], reg_targets [B, A, 4],
          reg_weights [B, A], match int32 [B, A], and num_matches float32 scalar (this batch).
        """
        targets = dict(self.target_assigner.assign(
            self.anchors,
            tf.cast(groundtruth[F.groundtruth_boxes], tf.float32),
            tf.cast(groundtruth[F.groundtruth_classes], tf.int32),
            tf.cast(groundtruth[F.num_groundtruth_boxes], tf.int32),
            num_classes=self.num_classes,
            groundtruth_weights=groundtruth.get(F.groundtruth_weights),
        ))
        if self.add_background_class:
            cls_targets = targets[T.cls_targets]
            if self.encode_background_as_zeros:
                background = tf.zeros_like(cls_targets[..., :1])
            else:
                background = 1.0 - tf.reduce_max(cls_targets, axis=-1, keepdims=True)
            targets[T.cls_targets] = tf.concat([background, cls_targets], axis=-1)  # [B, A, K+1]
        targets[T.num_matches] = tf.reduce_sum(targets[T.reg_weights])
        return targets

    def losses_from_targets(self, predictions: Mapping[str, tf.Tensor],
                            targets: Mapping[str, tf.Tensor],
                            num_matches: tf.Tensor) -> dict[str, tf.Tensor]:
        """Weighted, normalized classification and localization losses (float32 scalars).

        Args:
          predictions: the output of `call`.
          targets: the output of `assign_targets`.
          num_matches: float32 scalar, the normalizer: the number of matched anchors of this
            batch, or, in data-parallel training, of the global batch (every replica divides by
            the same number, so summed gradients equal those of one replica on the whole batch).
        """
        opts = self.loss_options
        box_encodings = predictions[P.box_encodings]
        logits = predictions[P.class_predictions_with_background]
        if opts.localization_loss == "smooth_l1":
            loc = losses_lib.smooth_l1_loss(box_encodings, targets[T.reg_targets],
                                            targets[T.reg_weights], delta=opts.smooth_l1_delta)
        else:
            loc = losses_lib.l2_loss(box_encodings, targets[T.reg_targets], targets[T.reg_weights])
        if opts.classification_loss == "sigmoid_focal":
            cls = losses_lib.sigmoid_focal_loss(logits, targets[T.cls_targets],
                                                targets[T.cls_weights], alpha=opts.focal_alpha,
                                                gamma=opts.focal_gamma)
        else:
            cls = losses_lib.sigmoid_cross_entropy(logits, targets[T.cls_targets],
                                                   targets[T.cls_weights])
        normalizer = tf.constant(1.0)
        if opts.normalize_by_num_matches:
            normalizer = tf.maximum(tf.cast(num_matches, tf.float32), 1.0)  # 0/0 with no gt
        loc_normalizer = normalizer
        if opts.normalize_loc_by_codesize:
            loc_normalizer = normalizer * float(self.target_assigner.box_coder.code_size)
        return {
            LossFields.localization_loss:
                opts.localization_weight * tf.reduce_sum(loc) / loc_normalizer,
            LossFields.classification_loss:
                opts.classification_weight * tf.reduce_sum(cls) / normalizer,
        }

    def compute_losses(self, predictions: Mapping[str, tf.Tensor],
                       groundtruth: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """`assign_targets` then `losses_from_targets`, normalized by this batch's matches."""
        targets = self.assign_targets(groundtruth)
        return self.losses_from_targets(predictions, targets, targets["num_matches"])

    def postprocess(self, predictions: Mapping[str, tf.Tensor],
                    true_image_shapes: tf.Tensor | None = None,
                    raw_outputs: bool = False) -> dict[str, tf.Tensor]:
        """Decoded, scored, non-max-suppressed detections.

        Args:
          predictions: the output of `call`.
          true_image_shapes: int32 [B, 3], accepted for the OD API signature
            `postprocess(prediction_dict, true_image_shapes)`; not needed: with the
            fixed_shape_resizer every image fills the model input, and boxes are normalized to it.
          raw_outputs: also return the OD API export's extra outputs (below).

        Returns:
          detection_boxes float32 [B, D, 4] yxyx normalized to the model input (NMS on the
          decoded boxes, then clipped to [0, 1] and zero-area boxes dropped),
          detection_scores float32 [B, D], detection_classes float32 [B, D] 0-based,
          num_detections int32 [B]; rows past num_detections are zeros. With `raw_outputs`,
          as the OD API's: raw_detection_boxes float32 [B, A, 4] (decoded, before NMS),
          raw_detection_scores float32 [B, A, K'] (converted, background column included when
          the model has one), detection_anchor_indices int32 [B, D] and
          detection_multiclass_scores float32 [B, D, K'] (the raw scores of each detection's
          anchor; zeros past num_detections).
        """
        del true_image_shapes  # see Args
        opts = self.postprocess_options
        batch = tf.shape(predictions[P.box_encodings])[0]
        anchors = tf.broadcast_to(self.anchors, [batch, self.num_anchors, 4])
        boxes = self.target_assigner.box_coder.decode(predictions[P.box_encodings], anchors)
        raw_scores = post_processing.score_converter(
            predictions[P.class_predictions_with_background], opts.score_converter,
            logit_scale=opts.logit_scale)
        # Drop the background column.
        scores = raw_scores[..., 1:] if self.add_background_class else raw_scores
        detections = post_processing.batch_multiclass_non_max_suppression(
            boxes, scores,
            score_threshold=opts.score_threshold,
            iou_threshold=opts.iou_threshold,
            max_detections_per_class=opts.max_detections_per_class,
            max_total_detections=opts.max_total_detections,
            # The whole model input: with the fixed_shape_resizer every image fills it.
            clip_window=tf.constant([0.0, 0.0, 1.0, 1.0]),
            return_anchor_indices=raw_outputs,
        )
        if raw_outputs:
            indices = detections[D.detection_anchor_indices]
            valid = tf.range(tf.shape(indices)[1])[tf.newaxis] < \
                detections[D.num_detections][:, tf.newaxis]
            detections[D.detection_multiclass_scores] = tf.where(
                valid[..., tf.newaxis], tf.gather(raw_scores, indices, batch_dims=1), 0.0)
            detections[D.raw_detection_boxes] = boxes
            detections[D.raw_detection_scores] = raw_scores
        return detections

    def provide_groundtruth(self, *args, **kwargs):
        """OD API adapter: ground truth is passed to `compute_losses` explicitly here."""
        raise NotImplementedError(
            "SSDMetaArch does not store ground truth; pass it to compute_losses(predictions, "
            "groundtruth).")
