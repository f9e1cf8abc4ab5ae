"""SSDMetaArch: predict -> losses -> postprocess on a tiny model built from a text proto, and
hand-computed losses on a two-anchor model built from plain values."""
from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format

from object_detection.builders import model_builder
from object_detection.core.box_coder import FasterRcnnBoxCoder
from object_detection.core.matcher import IGNORED, UNMATCHED, ArgMaxMatcher
from object_detection.core.standard_fields import DetectionResultFields as D
from object_detection.core.standard_fields import InputFields as F
from object_detection.core.standard_fields import LossFields as L
from object_detection.core.standard_fields import PredictionFields as P
from object_detection.core.target_assigner import TargetAssigner
from object_detection.meta_architectures.ssd_meta_arch import LossOptions, SSDMetaArch
from object_detection.protos import model_pb2

# MobileNet v2 FPN at depth multiplier 0.25, 128 x 128, P3-P7, a 2-layer predictor of depth 16,
# 3 classes; otherwise the SSD320 v1.2 settings.
TINY = """
ssd {
  num_classes: 3
  image_resizer { fixed_shape_resizer { height: 128 width: 128 } }
  feature_extractor {
    type: "ssd_mobilenet_v2_fpn_keras"
    depth_multiplier: 0.25
    min_depth: 16
    fpn { min_level: 3 max_level: 7 }
    conv_hyperparams {
      activation: RELU_6
      regularizer { l2_regularizer { weight: 0.0004 } }
      initializer { truncated_normal_initializer { mean: 0.0 stddev: 0.03 } }
      batch_norm { scale: true decay: 0.997 epsilon: 0.001 }
    }
    override_base_feature_extractor_hyperparams: true
  }
  anchor_generator {
    multiscale_anchor_generator {
      min_level: 3 max_level: 7 anchor_scale: 4.0 aspect_ratios: [1.0, 2.0, 0.5]
      scales_per_octave: 2
    }
  }
  box_predictor {
    weight_shared_convolutional_box_predictor {
      depth: 16
      num_layers_before_predictor: 2
      kernel_size: 3
      class_prediction_bias_init: -4.6  # -log((1 - 0.01) / 0.01): a prior of 0.01
      conv_hyperparams {
        activation: RELU_6
        regularizer { l2_regularizer { weight: 0.0004 } }
        initializer { random_normal_initializer { mean: 0.0 stddev: 0.01 } }
        batch_norm { scale: true decay: 0.997 epsilon: 0.001 }
      }
    }
  }
  box_coder { faster_rcnn_box_coder { y_scale: 10.0 x_scale: 10.0 height_scale: 5.0
                                      width_scale: 5.0 } }
  matcher { argmax_matcher { matched_threshold: 0.5 unmatched_threshold: 0.5
                             negatives_lower_than_unmatched: true
                             force_match_for_each_row: true } }
  similarity_calculator { iou_similarity {} }
  encode_background_as_zeros: true
  loss {
    classification_loss { weighted_sigmoid_focal { alpha: 0.25 gamma: 2.0 } }
    localization_loss { weighted_smooth_l1 {} }
    classification_weight: 1.0
    localization_weight: 1.0
  }
  normalize_loss_by_num_matches: true
  normalize_loc_loss_by_codesize: true
  post_processing {
    batch_non_max_suppression { score_threshold: 1e-8 iou_threshold: 0.6
                                max_detections_per_class: 100 max_total_detections: 100 }
    score_converter: SIGMOID
  }
}
"""
K = 3
# 6 anchors per location on the 128 px grids 16, 8, 4, 2, 1.
A = 6 * (16**2 + 8**2 + 4**2 + 2**2 + 1**2)  # 2046
# Level 3 (stride 8, side 4 * 8 = 32 px): the first anchor (ratio 1, scale 1) of row 5, column 5
# is centred at (5.5 * 8, 5.5 * 8) = (44, 44) px -> [0.21875, 0.21875, 0.46875, 0.46875].
ANCHOR_R5C5 = 6 * (5 * 16 + 5)  # 510
ANCHOR_R5C5_BOX = [0.21875, 0.21875, 0.46875, 0.46875]


def _build(change: str | None = None) -> SSDMetaArch:
    config = text_format.Parse(TINY, model_pb2.DetectionModel())
    if change:
        text_format.Merge(change, config)
    return model_builder.build(config, is_training=True)


def _groundtruth(boxes, classes, num_boxes):
    return {
        F.groundtruth_boxes: tf.constant(boxes, tf.float32),  # [B, N, 4]
        F.groundtruth_classes: tf.constant(classes, tf.int32),  # [B, N]
        F.num_groundtruth_boxes: tf.constant(num_boxes, tf.int32),  # [B]
    }


# Image 0: two boxes; image 1: one box and a padded row.
GROUNDTRUTH = dict(
    boxes=[[[0.1, 0.2, 0.4, 0.5], [0.5, 0.1, 0.95, 0.6]],
           [[0.3, 0.3, 0.7, 0.9], [0.0, 0.0, 0.0, 0.0]]],
    classes=[[0, 2], [1, 0]],
    num_boxes=[2, 1])


@pytest.fixture(scope="module")
def tiny():
    """The tiny model (weights created once) and its predictions on two random images."""
    model = _build()
    images = tf.random.stateless_uniform([2, 128, 128, 3], seed=[5, 6], maxval=255.0)
    return model, model(images, training=False)


def test_output_shapes(tiny):
    model, predictions = tiny
    assert model.num_anchors == A
    assert tuple(model.anchors.shape) == (A, 4)
    assert tuple(predictions[P.box_encodings].shape) == (2, A, 4)
    # OD API default add_background_class: K + 1 slots, column 0 the implicit background.
    assert tuple(predictions[P.class_predictions_with_background].shape) == (2, A, K + 1)
    assert predictions[P.box_encodings].dtype == tf.float32
    assert predictions[P.class_predictions_with_background].dtype == tf.float32


def test_build_creates_every_weight_without_running_the_network(monkeypatch):
    model = _build()
    ran = []
    for layer in (model.feature_extractor, model.box_predictor):
        monkeypatch.setattr(layer, "call", lambda *args, **kwargs: ran.append(args))
    model.build()
    monkeypatch.undo()
    assert not ran and model.built
    built = [w.path for w in model.weights]
    model(tf.zeros([1, 128, 128, 3]), training=True)  # a first call creates nothing more
    assert [w.path for w in model.weights] == built
    assert len(model.trainable_variables) > 100


@pytest.mark.parametrize("change", [None, """ssd { box_predictor { weight_shared_convolutional_box_predictor {
    conv_hyperparams { regularizer { l1_regularizer { weight: 0.001 } } } } } }"""])
def test_regularization_loss_is_the_sum_of_the_keras_losses(change):
    # The L2 terms grouped as 2 * l2 * sum(l2_loss(w)): Keras's value and gradients.
    model = _build(change)
    model.build()
    with tf.GradientTape(persistent=True) as tape:
        ours = model.regularization_loss()
        keras_sum = tf.add_n(model.losses)
    assert len(model.losses) > 50 and float(keras_sum) > 0
    np.testing.assert_allclose(float(ours), float(keras_sum), rtol=1e-6)
    weights = [w for w in model.trainable_weights if w.regularizer is not None]
    kinds = {type(w.regularizer).__name__ for w in weights}
    assert kinds == ({"L2", "L1"} if change else {"L2"})
    for a, b in zip(tape.gradient(ours, weights), tape.gradient(keras_sum, weights)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-12)


def test_anchor_order_hand_computed(tiny):
    model, _ = tiny
    np.testing.assert_allclose(model.anchors[ANCHOR_R5C5], ANCHOR_R5C5_BOX, rtol=1e-6)


def test_initial_class_sigmoid_is_the_prior(tiny):
    _, predictions = tiny
    logits = predictions[P.class_predictions_with_background].numpy()
    # Bias -4.6 and N(0, 0.01) kernels: every logit starts near -4.6, sigmoid(-4.6) = 0.00995.
    assert np.all(np.abs(logits + 4.6) < 0.5)
    assert np.mean(1.0 / (1.0 + np.exp(-logits))) == pytest.approx(0.01, abs=0.002)


def test_losses_finite_and_positive_with_groundtruth(tiny):
    model, predictions = tiny
    losses = model.compute_losses(predictions, _groundtruth(**GROUNDTRUTH))
    assert set(losses) == {L.localization_loss, L.classification_loss}
    for name, value in losses.items():
        assert value.shape == () and value.dtype == tf.float32, name
        assert np.isfinite(value.numpy()) and value.numpy() > 0, name


@pytest.mark.parametrize("num_boxes", [
    [0, 0],  # no image has a box: no matched anchor at all
    [2, 0],  # one image with boxes, one without
])
def test_image_without_groundtruth_gives_finite_losses(tiny, num_boxes):
    model, predictions = tiny
    groundtruth = _groundtruth(GROUNDTRUTH["boxes"], GROUNDTRUTH["classes"], num_boxes)
    losses = model.compute_losses(predictions, groundtruth)
    for name, value in losses.items():
        assert np.isfinite(value.numpy()), name
    assert losses[L.classification_loss].numpy() > 0  # every anchor is background
    if sum(num_boxes) == 0:
        assert losses[L.localization_loss].numpy() == 0.0
        targets = model.assign_targets(groundtruth)
        np.testing.assert_array_equal(targets["match"], UNMATCHED)
        assert targets["num_matches"].numpy() == 0.0


def test_padded_groundtruth_rows_never_match(tiny):
    model, _ = tiny
    anchor = model.anchors[ANCHOR_R5C5].numpy().tolist()
    # The padded rows hold a box equal to an anchor (IoU 1); force_match_for_each_row is on.
    boxes = [[[0.6, 0.6, 0.9, 0.9], anchor, anchor], [anchor, anchor, anchor]]
    classes = [[0, 1, 2], [1, 1, 1]]
    targets = model.assign_targets(_groundtruth(boxes, classes, [1, 0]))
    match = targets["match"].numpy()
    assert set(np.unique(match[0])) <= {0, UNMATCHED, IGNORED}
    assert np.any(match[0] == 0)
    np.testing.assert_array_equal(match[1], UNMATCHED)
    np.testing.assert_array_equal(targets["reg_weights"][1], 0.0)
    np.testing.assert_array_equal(targets["cls_targets"][1], 0.0)
    assert targets["num_matches"].numpy() == np.sum(match >= 0)
    # Control: counted as valid, the same rows do match the anchor.
    control = model.assign_targets(_groundtruth(boxes, classes, [3, 1]))["match"].numpy()
    assert control[0, ANCHOR_R5C5] in (1, 2) and control[1, ANCHOR_R5C5] == 0


def test_postprocess_shapes_and_ranges(tiny):
    model, predictions = tiny
    detections = model.postprocess(predictions)
    assert tuple(detections[D.detection_boxes].shape) == (2, 100, 4)
    assert tuple(detections[D.detection_scores].shape) == (2, 100)
    assert tuple(detections[D.detection_classes].shape) == (2, 100)
    assert tuple(detections[D.num_detections].shape) == (2,)
    boxes = detections[D.detection_boxes].numpy()
    assert np.all((boxes >= 0.0) & (boxes <= 1.0))
    classes = detections[D.detection_classes].numpy()
    assert np.all((classes >= 0) & (classes < K) & (classes == np.round(classes)))
    scores = detections[D.detection_scores].numpy()
    assert np.all((scores >= 0.0) & (scores <= 1.0))
    num = detections[D.num_detections].numpy()
    assert np.all((num >= 0) & (num <= 100))


def test_postprocess_accepts_true_image_shapes(tiny):
    # The OD API signature: postprocess(prediction_dict, true_image_shapes).
    model, predictions = tiny
    plain = model.postprocess(predictions)
    with_shapes = model.postprocess(predictions, tf.constant([[128, 128, 3]] * 2))
    for key in plain:
        np.testing.assert_allclose(with_shapes[key], plain[key])


def _one_hot_logits(num_columns: int, hot_column: int, background_column: int | None = None):
    """float32 [1, A, C]: -10 everywhere, +10 at (ANCHOR_R5C5, hot_column) and in the
    background column of every anchor if given."""
    logits = np.full([1, A, num_columns], -10.0, np.float32)
    if background_column is not None:
        logits[..., background_column] = 10.0
    logits[0, ANCHOR_R5C5, hot_column] = 10.0
    return {P.box_encodings: tf.zeros([1, A, 4]),
            P.class_predictions_with_background: tf.constant(logits)}


@pytest.mark.parametrize("config, columns, hot", [
    # K columns, class 2 is column 2
    ("encode_background_as_zeros: true add_background_class: false", K, 2),
    # background in column 0, class 2 is column 3 (whatever the background target)
    ("encode_background_as_zeros: true", K + 1, 3),
    ("encode_background_as_zeros: false", K + 1, 3),
])
def test_postprocess_returns_zero_based_foreground_classes(config, columns, hot):
    model = _build(f"ssd {{ {config} }}")
    assert model.num_class_slots == columns
    detections = model.postprocess(
        _one_hot_logits(columns, hot, background_column=None if columns == K else 0))
    # The top detection is the hot anchor: class 2, score sigmoid(10), its box (codes are 0).
    assert detections[D.detection_classes][0, 0].numpy() == 2.0
    assert detections[D.detection_scores][0, 0].numpy() == pytest.approx(1 / (1 + math.exp(-10)))
    np.testing.assert_allclose(detections[D.detection_boxes][0, 0], ANCHOR_R5C5_BOX, atol=1e-6)
    # The background column never becomes a detection: every class is a foreground id < K.
    classes = detections[D.detection_classes].numpy()
    assert np.all(classes < K)
    # Everything else scores sigmoid(-10) = 4.5e-5 > score_threshold: the output is full.
    assert detections[D.num_detections][0].numpy() == 100


def test_background_column_targets_encoded_as_zeros():
    # OD API: encode_background_as_zeros only zeroes the background target; the slot is there.
    model = _build("ssd { encode_background_as_zeros: true }")
    targets = model.assign_targets(_groundtruth(**GROUNDTRUTH))
    cls_targets = targets["cls_targets"].numpy()  # [B, A, K + 1]
    assert cls_targets.shape == (2, A, K + 1)
    np.testing.assert_array_equal(cls_targets[..., 0], 0.0)
    matched = targets["match"].numpy() >= 0
    np.testing.assert_array_equal(cls_targets[..., 1:].sum(-1), np.where(matched, 1.0, 0.0))


def test_background_column_targets():
    model = _build("ssd { encode_background_as_zeros: false }")
    targets = model.assign_targets(_groundtruth(**GROUNDTRUTH))
    cls_targets = targets["cls_targets"].numpy()  # [B, A, K + 1]
    assert cls_targets.shape == (2, A, K + 1)
    np.testing.assert_array_equal(cls_targets.sum(-1), 1.0)  # background or one class
    matched = targets["match"].numpy() >= 0
    np.testing.assert_array_equal(cls_targets[..., 0], np.where(matched, 0.0, 1.0))


def test_doubling_num_matches_halves_the_losses(tiny):
    model, predictions = tiny
    targets = model.assign_targets(_groundtruth(**GROUNDTRUTH))
    num_matches = targets["num_matches"]
    assert num_matches.numpy() >= 3  # force_match_for_each_row: at least one per box
    once = model.losses_from_targets(predictions, targets, num_matches)
    twice = model.losses_from_targets(predictions, targets, 2.0 * num_matches)
    for name in once:
        assert twice[name].numpy() == pytest.approx(once[name].numpy() / 2, rel=1e-6), name


def test_loss_normalization_flags(tiny):
    """Same predictions and targets through models differing only in the normalization flags."""
    model, predictions = tiny
    targets = model.assign_targets(_groundtruth(**GROUNDTRUTH))
    num_matches = float(targets["num_matches"].numpy())
    both = model.losses_from_targets(predictions, targets, num_matches)
    no_codesize = _build("ssd { normalize_loc_loss_by_codesize: false }").losses_from_targets(
        predictions, targets, num_matches)
    # normalize_loc_loss_by_codesize divides the localization loss (only) by the code size 4.
    assert both[L.localization_loss].numpy() == pytest.approx(
        no_codesize[L.localization_loss].numpy() / 4, rel=1e-6)
    assert both[L.classification_loss].numpy() == pytest.approx(
        no_codesize[L.classification_loss].numpy(), rel=1e-6)
    # normalize_loss_by_num_matches: false leaves both sums undivided by the matches.
    unnormalized = _build("ssd { normalize_loss_by_num_matches: false }").losses_from_targets(
        predictions, targets, num_matches)
    assert unnormalized[L.classification_loss].numpy() == pytest.approx(
        both[L.classification_loss].numpy() * num_matches, rel=1e-5)
    assert unnormalized[L.localization_loss].numpy() == pytest.approx(
        both[L.localization_loss].numpy() * num_matches, rel=1e-5)


# ------------------------------------------------------------------------------------------------
# Hand-computed losses: two anchors, one box, zero predictions.


def _two_anchor_model(add_background_class=False, **loss_options) -> SSDMetaArch:
    return SSDMetaArch(
        feature_extractor=None,  # the loss path never runs the network
        box_predictor=None,
        anchors=np.array([[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0]], np.float32),
        image_size=(64, 64),
        num_classes=K,
        encode_background_as_zeros=True,
        add_background_class=add_background_class,
        target_assigner=TargetAssigner(
            matcher=ArgMaxMatcher(0.5, 0.5, force_match_for_each_row=True),
            box_coder=FasterRcnnBoxCoder((10.0, 10.0, 5.0, 5.0))),
        loss_options=LossOptions(**loss_options))


# Box [0, 0, 0.5, 0.56], class 1: IoU 0.25 / 0.28 = 0.89 with anchor 0 (matched), 0 with
# anchor 1 (background). Targets of anchor 0 (centre 0.25, 0.25, size 0.5 x 0.5; box centre
# 0.25, 0.28, size 0.5 x 0.56): ty = 0, tx = 10 * 0.03 / 0.5 = 0.6, th = 0,
# tw = 5 * ln(1.12) = 0.566643. Smooth L1 (delta 1) of zero predictions:
# 0.5 * 0.6^2 + 0.5 * 0.566643^2 = 0.18 + 0.160542 = 0.340542.
SMOOTH_L1_SUM = 0.5 * 0.6**2 + 0.5 * (5 * math.log(1.12))**2
# Focal loss of zero logits (p = 0.5): alpha_t * (1 - p_t)^2 * ln 2 = alpha_t * 0.25 * ln 2 per
# entry, alpha_t = 0.25 for the one positive, 0.75 for the 2 + 3 negatives:
# 0.25 * ln 2 * (0.25 + 5 * 0.75) = ln 2.
FOCAL_SUM = math.log(2.0)


@pytest.mark.parametrize("options, loc, cls", [
    # SSD320 settings: one match; the localization loss also divided by the code size 4.
    (dict(normalize_loc_by_codesize=True), SMOOTH_L1_SUM / 4, FOCAL_SUM),  # 0.0851355, ln 2
    (dict(normalize_loc_by_codesize=False), SMOOTH_L1_SUM, FOCAL_SUM),
    # Loss weights multiply.
    (dict(normalize_loc_by_codesize=True, localization_weight=2.0, classification_weight=0.5),
     2.0 * SMOOTH_L1_SUM / 4, 0.5 * FOCAL_SUM),
    # Sigmoid cross entropy: ln 2 for each of the 6 entries.
    (dict(classification_loss="sigmoid"), SMOOTH_L1_SUM, 6 * math.log(2.0)),
])
def test_hand_computed_losses(options, loc, cls):
    model = _two_anchor_model(**options)
    predictions = {P.box_encodings: tf.zeros([1, 2, 4]),
                   P.class_predictions_with_background: tf.zeros([1, 2, K])}
    groundtruth = _groundtruth([[[0.0, 0.0, 0.5, 0.56]]], [[1]], [1])
    targets = model.assign_targets(groundtruth)
    np.testing.assert_array_equal(targets["match"], [[0, UNMATCHED]])
    np.testing.assert_allclose(targets["reg_targets"][0, 0], [0.0, 0.6, 0.0, 5 * math.log(1.12)],
                               rtol=1e-5, atol=1e-6)
    losses = model.compute_losses(predictions, groundtruth)
    assert losses[L.localization_loss].numpy() == pytest.approx(loc, rel=1e-5)
    assert losses[L.classification_loss].numpy() == pytest.approx(cls, rel=1e-5)


def test_hand_computed_losses_with_the_background_slot():
    # OD API default (add_background_class, encode_background_as_zeros): K + 1 = 4 slots, the
    # background slot's target is 0 on both anchors, so it adds two negatives to the focal
    # loss: ln 2 + 2 * 0.75 * 0.25 * ln 2 = 1.375 ln 2.
    model = _two_anchor_model(add_background_class=True, normalize_loc_by_codesize=True)
    assert model.num_class_slots == K + 1
    predictions = {P.box_encodings: tf.zeros([1, 2, 4]),
                   P.class_predictions_with_background: tf.zeros([1, 2, K + 1])}
    losses = model.compute_losses(predictions, _groundtruth([[[0.0, 0.0, 0.5, 0.56]]], [[1]],
                                                            [1]))
    assert losses[L.classification_loss].numpy() == pytest.approx(1.375 * FOCAL_SUM, rel=1e-5)
    assert losses[L.localization_loss].numpy() == pytest.approx(SMOOTH_L1_SUM / 4, rel=1e-5)


def test_hand_computed_losses_without_groundtruth():
    # No box: both anchors background; the normalizer is max(0 matches, 1) = 1.
    model = _two_anchor_model(normalize_loc_by_codesize=True)
    predictions = {P.box_encodings: tf.ones([1, 2, 4]),
                   P.class_predictions_with_background: tf.zeros([1, 2, K])}
    losses = model.compute_losses(predictions, _groundtruth([[[0.0, 0.0, 0.5, 0.56]]], [[1]],
                                                            [0]))
    assert losses[L.localization_loss].numpy() == 0.0
    # 6 negative entries: 0.75 * 0.25 * ln 2 each.
    assert losses[L.classification_loss].numpy() == pytest.approx(6 * 0.1875 * math.log(2.0),
                                                                  rel=1e-5)
