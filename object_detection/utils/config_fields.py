r"""What the project does with every field of a pipeline config (issue #10).

Users edit OD API `pipeline.config` files and trust that what they set takes effect. Every field
reachable from `TrainEvalPipelineConfig` therefore has exactly one status in `FIELDS`:

  HONOURED  read by the named module(s) and takes effect there;
  REFUSED   loading the config raises `ConfigError` when the field is set to anything but its
            default (a message or a oneof member: when it is present), naming the field path,
            the value and what to use instead; a refused message covers every field below it;
  HINT      accepted but has no effect on results here (a TF1 input-queue size, a TPU
            implementation switch, ...); logged once per process as a warning of the
            `object_detection` logger that names the field and says why it is ignored (unless
            its value asks for what happens anyway, `Hint.agrees`).

Field paths are dotted from the pipeline root, as config overrides write them, with `[]` for
every entry of a repeated field:
`train_config.data_augmentation_options[].random_horizontal_flip.probability`,
`eval_input_reader[].shuffle`. Messages name the entry by its index: `eval_input_reader[0]`.

Where a builder already refuses a member (`model_builder` builds only `ssd` models and the
`weight_shared_convolutional_box_predictor`, `dataset_builder` only its augmentation steps, ...)
the refusal stays there, for callers that build from protos directly; `Refused.where` names that
module, and `check_pipeline_config` refuses the same fields when the config is loaded, all of
them in one error, before anything is built. Value rules of honoured fields (an unknown
`feature_extractor.type`, `hyperparams.op: FC`, ranges) stay in their builders only.

This module imports protobuf only, so `model_main` checks a config before TensorFlow is imported.

    python -m object_detection.utils.config_fields --markdown > docs/CONFIG_FIELDS.md
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Iterator, Mapping, MutableSet
from typing import Any, Union

if __package__ in (None, ""):  # run as a script path: make the package importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))))

from google.protobuf import descriptor as _descriptor  # noqa: E402
from google.protobuf import message  # noqa: E402

from object_detection.protos import pipeline_pb2  # noqa: E402
from object_detection.utils.errors import ConfigError  # noqa: E402
from object_detection.utils.log import logger  # noqa: E402

__all__ = ["FIELDS", "Hint", "Honoured", "Refused", "check_pipeline_config", "field_paths",
           "markdown", "status"]


_FD = _descriptor.FieldDescriptor
ROOT = pipeline_pb2.TrainEvalPipelineConfig.DESCRIPTOR


@dataclasses.dataclass(frozen=True)
class Honoured:
    """Read by `readers` (paths under `object_detection/`), where it takes effect."""

    readers: tuple[str, ...]
    note: str = ""


@dataclasses.dataclass(frozen=True)
class Refused:
    """Set to a non-default value (present, for a message): a ConfigError saying `alternative`.

    `where` names the builder that refuses it as well when it builds from a proto; `accepted`
    lists further scalar values (enum names) that behave as the default does.
    """

    alternative: str
    where: str = ""
    accepted: tuple[Any, ...] = ()


@dataclasses.dataclass(frozen=True)
class Hint:
    """No effect on results here, for `reason`; a warning once per process when set.

    `agrees` lists scalar values (enum names) that ask for what the project does anyway
    (`eval_input_reader.shuffle: false`): those are not warned about.
    """

    reason: str
    agrees: tuple[Any, ...] = ()


Status = Union[Honoured, Refused, Hint]

# Readers, relative to the `object_detection` package.
_MODEL = "builders/model_builder.py"
_EXTRACTOR = "models/feature_extractor.py"
_PREDICTOR = "predictors/weight_shared_convolutional_box_predictor.py"
_HYPERPARAMS = "builders/hyperparams_builder.py"
_ANCHORS = "builders/anchor_generator_builder.py"
_BOX_CODER = "builders/box_coder_builder.py"
_MATCHER = "builders/matcher_builder.py"
_POST = "builders/post_processing_builder.py"
_LOSSES = "builders/losses_builder.py"
_OPTIMIZER = "builders/optimizer_builder.py"
_DATASET = "builders/dataset_builder.py"
_INPUTS = "data/inputs.py"
_TRAIN = "training/train_lib.py"
_RUN = "training/run_state.py"
_STEP = "training/train_step.py"
_EVAL_LOOP = "evaluation/eval_loop.py"
_TRAINABLE = "training/trainable.py"
_CHECKPOINTS = "training/checkpoints.py"
_PLANS = "builders/plan_builder.py"
_MAIN = "model_main.py"
_EVAL_IMAGES = "evaluation/eval_images.py"

# Reasons and alternatives shared by several fields.
_TF_DATA = ("a TF1 input-queue or tf.data tuning knob; the pipeline's parallel stages and "
            "prefetch are AUTOTUNE'd, and the examples do not depend on them")
_NO_KEYPOINTS = "keypoints are not supported (boxes and classes only)"
_NO_MASKS = "instance masks are not supported (boxes and classes only)"
_BOXES_ONLY = "only boxes, classes and the image are read from the records"
_METRICS = "handed to evaluation/evaluators.py, which computes the metric sets"
_TF2_NMS = ("an implementation choice of the OD API's NMS (TPU / static-shape variants); "
            "the batched per-class NMS here gives the same detections")


def _h(*readers: str, note: str = "") -> Honoured:
    return Honoured(tuple(readers), note)


def _hyperparams(prefix: str) -> dict[str, Status]:
    """A `Hyperparams` message at `prefix` (read by hyperparams_builder)."""
    hb = _HYPERPARAMS
    fields: dict[str, Status] = {
        prefix: _h(_MODEL),
        "op": _h(hb, note="FC is refused there (SSD layers are convolutions)"),
        "regularizer": _h(hb),
        "regularizer.l1_regularizer": _h(hb),
        "regularizer.l1_regularizer.weight": _h(hb),
        "regularizer.l2_regularizer": _h(hb),
        "regularizer.l2_regularizer.weight": _h(hb),
        "initializer": _h(hb),
        "initializer.truncated_normal_initializer": _h(hb),
        "initializer.truncated_normal_initializer.mean": _h(hb),
        "initializer.truncated_normal_initializer.stddev": _h(hb),
        "initializer.variance_scaling_initializer": _h(hb),
        "initializer.variance_scaling_initializer.factor": _h(hb),
        "initializer.variance_scaling_initializer.uniform": _h(hb),
        "initializer.variance_scaling_initializer.mode": _h(hb),
        "initializer.random_normal_initializer": _h(hb),
        "initializer.random_normal_initializer.mean": _h(hb),
        "initializer.random_normal_initializer.stddev": _h(hb),
        "initializer.keras_initializer_by_name": Refused(
            "use truncated_normal_initializer, random_normal_initializer or "
            "variance_scaling_initializer", where=hb),
        "activation": _h(hb),
        "group_norm": Refused("use batch_norm, sync_batch_norm or no normalizer", where=hb),
        "regularize_depthwise": Hint(
            "the OD API reads it nowhere either; depthwise kernels get this regularizer, as "
            "in the OD API's Keras and TF-slim MobileNets"),
        "force_use_bias": _h(hb),
    }
    for norm in ("batch_norm", "sync_batch_norm"):
        fields[norm] = _h(hb, _STEP) if norm == "sync_batch_norm" else _h(hb)
        for name in ("decay", "center", "scale", "epsilon", "train"):
            fields[f"{norm}.{name}"] = _h(hb)
    return {(k if k == prefix else f"{prefix}.{k}"): v for k, v in fields.items()}


def _ssd() -> dict[str, Status]:
    s = "model.ssd"
    fe = f"{s}.feature_extractor"
    wsp = f"{s}.box_predictor.weight_shared_convolutional_box_predictor"
    nms = f"{s}.post_processing.batch_non_max_suppression"
    loss = f"{s}.loss"
    static_size = "use fixed_shape_resizer (the train step needs a static input size)"
    fields: dict[str, Status] = {
        "model": _h(_MODEL),
        s: _h(_MODEL),
        "model.experimental_model": Refused("only ssd models are built", where=_MODEL),
        f"{s}.num_classes": _h(_MODEL),
        f"{s}.image_resizer": _h(_MODEL),
        f"{s}.image_resizer.fixed_shape_resizer": _h(_MODEL),
        f"{s}.image_resizer.fixed_shape_resizer.height": _h(_MODEL),
        f"{s}.image_resizer.fixed_shape_resizer.width": _h(_MODEL),
        f"{s}.image_resizer.fixed_shape_resizer.resize_method": _h(_MODEL, _DATASET),
        f"{s}.image_resizer.fixed_shape_resizer.convert_to_grayscale": Refused(
            "the model takes RGB input", where=_MODEL),
        f"{s}.image_resizer.keep_aspect_ratio_resizer": Refused(static_size, where=_MODEL),
        f"{s}.image_resizer.identity_resizer": Refused(static_size, where=_MODEL),
        f"{s}.image_resizer.conditional_shape_resizer": Refused(static_size, where=_MODEL),
        f"{s}.image_resizer.pad_to_multiple_resizer": Refused(static_size, where=_MODEL),
        fe: _h(_MODEL),
        f"{fe}.type": _h(_MODEL, note="a name it does not know is refused there"),
        f"{fe}.depth_multiplier": _h(_MODEL, _EXTRACTOR),
        f"{fe}.min_depth": _h(_MODEL, _EXTRACTOR),
        f"{fe}.override_base_feature_extractor_hyperparams": _h(_MODEL, _EXTRACTOR),
        f"{fe}.pad_to_multiple": _h(_MODEL, _EXTRACTOR),
        f"{fe}.use_explicit_padding": Refused(
            "convolutions use 'same' padding (ceil(H / 2**level) grids for any input size)",
            where=_EXTRACTOR),
        f"{fe}.use_depthwise": _h(_MODEL, _EXTRACTOR,
                                  note="the ResNet extractors refuse it (MobileNets only)"),
        f"{fe}.fpn": _h(_MODEL),
        f"{fe}.fpn.min_level": _h(_MODEL),
        f"{fe}.fpn.max_level": _h(_MODEL),
        f"{fe}.fpn.additional_layer_depth": _h(_MODEL),
        f"{fe}.bifpn": Refused("use fpn", where=_MODEL),
        f"{fe}.replace_preprocessor_with_placeholder": Hint(
            "a TFLite-export switch of the OD API; the model always preprocesses its own "
            "input, which gives the same outputs"),
        f"{fe}.num_layers": Refused(
            "it is for the OD API's non-FPN SSD extractors; the FPN extractors have one level "
            "per fpn.min_level..max_level"),
        f"{fe}.spaghettinet_arch_name": Refused(
            "the SpaghettiNet extractors are not supported; see feature_extractor.type"),
        f"{fe}.use_hardswish": Refused(
            "hard-swish is not supported; conv_hyperparams.activation gives RELU_6, RELU or "
            "SWISH"),
        f"{s}.box_coder": _h(_BOX_CODER),
        f"{s}.box_coder.faster_rcnn_box_coder": _h(_BOX_CODER),
        **{f"{s}.box_coder.faster_rcnn_box_coder.{n}": _h(_BOX_CODER)
           for n in ("y_scale", "x_scale", "height_scale", "width_scale")},
        **{f"{s}.box_coder.{n}": Refused("use faster_rcnn_box_coder", where=_BOX_CODER)
           for n in ("mean_stddev_box_coder", "square_box_coder", "keypoint_box_coder")},
        f"{s}.matcher": _h(_MATCHER),
        f"{s}.matcher.argmax_matcher": _h(_MATCHER),
        **{f"{s}.matcher.argmax_matcher.{n}": _h(_MATCHER)
           for n in ("matched_threshold", "unmatched_threshold", "ignore_thresholds",
                     "negatives_lower_than_unmatched", "force_match_for_each_row")},
        f"{s}.matcher.argmax_matcher.use_matmul_gather": Hint(
            "a performance hint; the gathers here are static-shape already"),
        f"{s}.matcher.bipartite_matcher": Refused("use argmax_matcher", where=_MATCHER),
        f"{s}.similarity_calculator": _h(_MODEL),
        f"{s}.similarity_calculator.iou_similarity": _h(_MODEL),
        **{f"{s}.similarity_calculator.{n}": Refused("use iou_similarity", where=_MODEL)
           for n in ("neg_sq_dist_similarity", "ioa_similarity", "thresholded_iou_similarity")},
        f"{s}.encode_background_as_zeros": _h(_MODEL),
        f"{s}.negative_class_weight": _h(_MODEL),
        f"{s}.box_predictor": _h(_MODEL),
        **{f"{s}.box_predictor.{n}": Refused(
            "use weight_shared_convolutional_box_predictor", where=_MODEL)
           for n in ("convolutional_box_predictor", "mask_rcnn_box_predictor",
                     "rfcn_box_predictor")},
        wsp: _h(_MODEL),
        **_hyperparams(f"{wsp}.conv_hyperparams"),
        **{f"{wsp}.{n}": _h(_MODEL, note=f"with use_depthwise, see `{_PREDICTOR}`")
           for n in ("apply_conv_hyperparams_to_heads", "apply_conv_hyperparams_pointwise")},
        **{f"{wsp}.{n}": _h(_MODEL)
           for n in ("num_layers_before_predictor", "depth", "kernel_size",
                     "class_prediction_bias_init", "use_dropout", "dropout_keep_probability",
                     "share_prediction_tower", "use_depthwise")},
        f"{wsp}.box_code_size": _h(_MODEL, note="4 (faster_rcnn_box_coder) only"),
        f"{wsp}.score_converter": _h(
            _MODEL, note="IDENTITY only: scores are converted in post_processing"),
        f"{wsp}.box_encodings_clip_range": Refused(
            "box encodings are not clipped", where=_MODEL),
        f"{s}.anchor_generator": _h(_ANCHORS),
        f"{s}.anchor_generator.multiscale_anchor_generator": _h(_ANCHORS),
        **{f"{s}.anchor_generator.multiscale_anchor_generator.{n}": _h(_ANCHORS)
           for n in ("min_level", "max_level", "anchor_scale", "aspect_ratios",
                     "scales_per_octave", "normalize_coordinates")},
        **{f"{s}.anchor_generator.{n}": Refused(
            "use multiscale_anchor_generator (one anchor grid per pyramid level)",
            where=_ANCHORS)
           for n in ("grid_anchor_generator", "ssd_anchor_generator",
                     "flexible_grid_anchor_generator")},
        f"{s}.post_processing": _h(_POST),
        f"{s}.post_processing.batch_non_max_suppression": _h(_POST),
        **{f"{nms}.{n}": _h(_POST)
           for n in ("score_threshold", "iou_threshold", "max_detections_per_class",
                     "max_total_detections")},
        f"{nms}.use_static_shapes": Hint(
            "a performance hint; detections are padded to max_total_detections always",
            agrees=(True,)),
        f"{nms}.use_class_agnostic_nms": Refused("NMS is per class", where=_POST),
        f"{nms}.max_classes_per_detection": Hint(
            "read only with use_class_agnostic_nms, which is refused"),
        f"{nms}.soft_nms_sigma": Refused("NMS is hard NMS; leave it 0", where=_POST),
        f"{nms}.use_partitioned_nms": Hint(_TF2_NMS),
        f"{nms}.use_combined_nms": Hint(_TF2_NMS),
        f"{nms}.change_coordinate_frame": Hint(
            "with fixed_shape_resizer the clip window is the whole image, so the change of "
            "coordinate frame is the identity"),
        f"{nms}.use_hard_nms": Hint(_TF2_NMS),
        f"{nms}.use_cpu_nms": Hint("a device placement hint; NMS runs outside the compiled "
                                   "step already"),
        f"{s}.post_processing.score_converter": _h(_POST),
        f"{s}.post_processing.logit_scale": _h(_POST),
        f"{s}.post_processing.calibration_config": Refused(
            "scores are not calibrated", where=_POST),
        f"{s}.normalize_loss_by_num_matches": _h(_LOSSES),
        f"{s}.normalize_loc_loss_by_codesize": _h(_LOSSES),
        loss: _h(_LOSSES),
        f"{loss}.localization_loss": _h(_LOSSES),
        f"{loss}.localization_loss.weighted_l2": _h(_LOSSES),
        f"{loss}.localization_loss.weighted_smooth_l1": _h(_LOSSES),
        f"{loss}.localization_loss.weighted_smooth_l1.delta": _h(_LOSSES),
        **{f"{loss}.localization_loss.{n}": Refused(
            "use weighted_smooth_l1 or weighted_l2", where=_LOSSES)
           for n in ("weighted_iou", "l1_localization_loss", "weighted_giou")},
        f"{loss}.classification_loss": _h(_LOSSES),
        f"{loss}.classification_loss.weighted_sigmoid": _h(_LOSSES),
        f"{loss}.classification_loss.weighted_sigmoid_focal": _h(_LOSSES),
        f"{loss}.classification_loss.weighted_sigmoid_focal.gamma": _h(_LOSSES),
        f"{loss}.classification_loss.weighted_sigmoid_focal.alpha": _h(_LOSSES),
        **{f"{loss}.classification_loss.{n}": Refused(
            "use weighted_sigmoid_focal or weighted_sigmoid", where=_LOSSES)
           for n in ("weighted_softmax", "weighted_logits_softmax", "bootstrapped_sigmoid",
                     "penalty_reduced_logistic_focal_loss",
                     "weighted_dice_classification_loss")},
        **{f"{loss}.{branch}.anchorwise_output": Hint(
            "deprecated in the OD API, whose losses do not read it either")
           for branch in ("localization_loss.weighted_l2", "localization_loss.weighted_smooth_l1",
                          "classification_loss.weighted_sigmoid",
                          "classification_loss.weighted_sigmoid_focal")},
        f"{loss}.hard_example_miner": Refused(
            "focal loss replaces hard example mining in this recipe", where=_LOSSES),
        f"{loss}.classification_weight": _h(_LOSSES),
        f"{loss}.localization_weight": _h(_LOSSES),
        f"{loss}.random_example_sampler": Refused(
            "every anchor contributes (focal loss)", where=_LOSSES),
        f"{loss}.equalization_loss": _h(_LOSSES),
        f"{loss}.equalization_loss.weight": Refused(
            "equalization loss is not supported; leave weight 0", where=_LOSSES),
        f"{loss}.equalization_loss.exclude_prefixes": Hint(
            "read only with equalization_loss.weight > 0, which is refused"),
        f"{loss}.expected_loss_weights": Refused("only NONE is supported", where=_LOSSES),
        f"{loss}.min_num_negative_samples": Hint(
            "read only with expected_loss_weights other than NONE, which is refused"),
        f"{loss}.desired_negative_sampling_ratio": Hint(
            "read only with expected_loss_weights other than NONE, which is refused"),
        f"{s}.freeze_batchnorm": _h(_MODEL, _EXTRACTOR),
        f"{s}.inplace_batchnorm_update": Hint(
            "a TF1 graph detail (UPDATE_OPS); batch-norm statistics are updated in the train "
            "step either way"),
        f"{s}.add_background_class": _h(_MODEL),
        f"{s}.explicit_background_class": Refused(
            "the background is implicit (add_background_class)", where=_MODEL),
        f"{s}.use_confidences_as_targets": Refused(
            "targets are the one-hot ground-truth classes", where=_MODEL),
        f"{s}.implicit_example_weight": Hint(
            "read only with use_confidences_as_targets, which is refused"),
        f"{s}.return_raw_detections_during_predict": Hint(
            "an export option of the OD API (raw boxes beside the detections); the "
            "detections are the same"),
        f"{s}.mask_head_config": Refused(_NO_MASKS, where=_MODEL),
    }
    return {**fields, **_hyperparams(f"{fe}.conv_hyperparams")}


# Augmentation steps dataset_builder maps onto data/preprocessor.py, with their fields.
_CROP_FIELDS = ("min_object_covered", "min_aspect_ratio", "max_aspect_ratio", "min_area",
                "max_area", "overlap_thresh", "clip_boxes", "random_coef")
AUGMENTATION_STEPS: dict[str, tuple[str, ...]] = {
    "random_horizontal_flip": ("probability",),
    "random_vertical_flip": ("probability",),
    "random_rgb_to_gray": ("probability",),
    "random_adjust_brightness": ("max_delta",),
    "random_adjust_contrast": ("min_delta", "max_delta"),
    "random_adjust_hue": ("max_delta",),
    "random_adjust_saturation": ("min_delta", "max_delta"),
    "random_distort_color": ("color_ordering",),
    "random_jitter_boxes": ("ratio", "jitter_mode"),
    "random_crop_image": _CROP_FIELDS,
    "random_pad_image": ("min_image_height", "min_image_width", "max_image_height",
                         "max_image_width", "pad_color"),
    "ssd_random_crop": ("operations",) + tuple(f"operations[].{n}" for n in _CROP_FIELDS),
}


def _train_config() -> dict[str, Status]:
    t = "train_config"
    aug = f"{t}.data_augmentation_options[]"
    opt = f"{t}.optimizer"
    steps = f"supported steps: {', '.join(sorted(AUGMENTATION_STEPS))}"
    fields: dict[str, Status] = {
        t: _h(_PLANS, _RUN),
        f"{t}.batch_size": _h(_DATASET, _PLANS, _TRAIN),
        f"{t}.data_augmentation_options": _h(_DATASET),
        f"{t}.sync_replicas": Hint(
            "training is always synchronous (every replica's gradients are summed each step)",
            agrees=(True,)),
        f"{t}.keep_checkpoint_every_n_hours": Hint(
            "which checkpoints stay on disk (--keep_checkpoint_max keeps the newest); it does "
            "not change training"),
        opt: _h(_OPTIMIZER),
        f"{opt}.rms_prop_optimizer": _h(_OPTIMIZER),
        f"{opt}.rms_prop_optimizer.momentum_optimizer_value": _h(_OPTIMIZER),
        f"{opt}.rms_prop_optimizer.decay": _h(_OPTIMIZER),
        f"{opt}.rms_prop_optimizer.epsilon": _h(_OPTIMIZER),
        f"{opt}.momentum_optimizer": _h(_OPTIMIZER),
        f"{opt}.momentum_optimizer.momentum_optimizer_value": _h(_OPTIMIZER),
        f"{opt}.adam_optimizer": _h(_OPTIMIZER),
        f"{opt}.adam_optimizer.epsilon": _h(_OPTIMIZER),
        f"{opt}.use_moving_average": _h(_OPTIMIZER),
        f"{opt}.moving_average_decay": _h(_OPTIMIZER),
        f"{t}.gradient_clipping_by_norm": _h(_OPTIMIZER, _RUN),
        f"{t}.fine_tune_checkpoint": _h(_PLANS, _CHECKPOINTS, _TRAIN),
        f"{t}.fine_tune_checkpoint_type": _h(_PLANS),
        f"{t}.fine_tune_checkpoint_version": Hint(
            "the checkpoint's format (TF1 name-based or TF2 object-based) is read from the "
            "checkpoint itself"),
        f"{t}.from_detection_checkpoint": _h(_PLANS),
        f"{t}.load_all_detection_checkpoint_vars": Hint(
            "detection fine-tuning always loads every variable of the checkpoint that fits the "
            "model (a class head of another num_classes is left out)", agrees=(True,)),
        f"{t}.run_fine_tune_checkpoint_dummy_computation": Hint(
            "the model's variables exist before the checkpoint is read"),
        f"{t}.num_steps": _h(_PLANS, _TRAIN),
        f"{t}.startup_delay_steps": Hint(
            "for the TF1 OD API's asynchronous workers; workers here start together and step "
            "in lockstep", agrees=(0.0,)),
        f"{t}.bias_grad_multiplier": Refused(
            "bias gradients are not scaled (the TF1 OD API multiplied them by it); remove it"),
        f"{t}.update_trainable_variables": _h(_RUN, _TRAINABLE),
        f"{t}.freeze_variables": _h(_RUN, _TRAINABLE),
        f"{t}.replicas_to_aggregate": Hint(
            "every replica's gradients are aggregated every step; the replica count is the "
            "distribution engine's"),
        f"{t}.batch_queue_capacity": Hint(_TF_DATA),
        f"{t}.num_batch_queue_threads": Hint(_TF_DATA),
        f"{t}.prefetch_queue_capacity": Hint(_TF_DATA),
        f"{t}.merge_multiple_label_boxes": Refused(
            "boxes with the same coordinates stay separate boxes; merge them in the records"),
        f"{t}.use_multiclass_scores": Refused(
            "classification targets are the one-hot classes of image/object/class/label"),
        f"{t}.add_regularization_loss": Refused(
            "the regularization loss is always added; to train without it, set the "
            "regularizer weights to 0"),
        f"{t}.max_number_of_boxes": _h(_DATASET, _PLANS, _TRAIN),
        f"{t}.unpad_groundtruth_tensors": Hint(
            "ground truth stays padded to max_number_of_boxes with a count beside it; padded "
            "rows never match an anchor, so unpadding would change nothing", agrees=(False,)),
        f"{t}.retain_original_images": Hint(
            "the OD API keeps the original images for its image summaries only",
            agrees=(False,)),
        f"{t}.use_bfloat16": _h(_MAIN),
        f"{t}.summarize_gradients": Hint(
            "gradient summaries are not written; they do not change training",
            agrees=(False,)),
    }
    for kind in ("rms_prop_optimizer", "momentum_optimizer", "adam_optimizer"):
        fields.update(_learning_rate(f"{opt}.{kind}.learning_rate"))
    for step, names in AUGMENTATION_STEPS.items():
        fields[f"{aug}.{step}"] = _h(_DATASET)
        fields.update({f"{aug}.{step}.{n}": _h(_DATASET) for n in names})
    for step in ("random_horizontal_flip", "random_vertical_flip"):
        fields[f"{aug}.{step}.keypoint_flip_permutation"] = Refused(_NO_KEYPOINTS,
                                                                    where=_DATASET)
    for step in ("normalize_image", "random_pixel_value_scale", "random_image_scale",
                 "random_crop_pad_image", "random_crop_to_aspect_ratio", "random_black_patches",
                 "random_resize_method", "scale_boxes_to_pixel_coordinates", "resize_image",
                 "subtract_channel_mean", "ssd_random_crop_pad",
                 "ssd_random_crop_fixed_aspect_ratio", "ssd_random_crop_pad_fixed_aspect_ratio",
                 "random_rotation90", "rgb_to_gray", "convert_class_logits_to_softmax",
                 "random_absolute_pad_image", "random_self_concat_image", "autoaugment_image",
                 "drop_label_probabilistically", "remap_labels", "random_jpeg_quality",
                 "random_downscale_to_target_pixels", "random_patch_gaussian",
                 "random_square_crop_by_scale", "random_scale_crop_and_pad_to_square",
                 "adjust_gamma"):
        fields[f"{aug}.{step}"] = Refused(steps, where=_DATASET)
    return fields


def _learning_rate(prefix: str) -> dict[str, Status]:
    ob = _OPTIMIZER
    fields: dict[str, Status] = {prefix: _h(ob)}
    schedules = {
        "constant_learning_rate": ("learning_rate",),
        "exponential_decay_learning_rate": (
            "initial_learning_rate", "decay_steps", "decay_factor", "staircase",
            "burnin_learning_rate", "burnin_steps", "min_learning_rate"),
        "manual_step_learning_rate": ("initial_learning_rate", "schedule", "schedule[].step",
                                      "schedule[].learning_rate", "warmup"),
        "cosine_decay_learning_rate": ("learning_rate_base", "total_steps",
                                       "warmup_learning_rate", "warmup_steps",
                                       "hold_base_rate_steps"),
    }
    for schedule, names in schedules.items():
        fields[f"{prefix}.{schedule}"] = _h(ob)
        fields.update({f"{prefix}.{schedule}.{n}": _h(ob) for n in names})
    return fields


def _input_reader(training: bool) -> dict[str, Status]:
    """The `InputReader` of training (`train_input_reader`) or the evaluation ones."""
    d = _DATASET
    every_record = "evaluation reads every record once, in a fixed order"
    fields: dict[str, Status] = {
        "name": Hint("a label of the reader; nothing reads it" if training else
                     "a label; the OD API names evaluation directories by it only when it "
                     "evaluates several readers"),
        "label_map_path": _h(d) if training else _h(d, _EVAL_LOOP),
        "shuffle": _h(d, _INPUTS) if training else Hint(
            f"{every_record}; the order does not change the metrics", agrees=(False,)),
        "shuffle_buffer_size": _h(d) if training else Hint(f"{every_record}, unshuffled"),
        "filenames_shuffle_buffer_size": Hint(
            "the file order is shuffled whole on every pass" if training else
            f"{every_record}, unshuffled"),
        "num_epochs": Refused(
            "the training input repeats until train_config.num_steps (or --num_train_steps)")
        if training else Hint(every_record, agrees=(1,)),
        "sample_1_of_n_examples": Refused(
            "it is for evaluation only (or --sample_1_of_n_eval_examples)", where=d,
            accepted=(0,)) if training else _h(d),
        "num_readers": _h(d),
        "num_parallel_batches": Hint(_TF_DATA),
        "num_prefetch_batches": Hint(_TF_DATA),
        "queue_capacity": Hint(_TF_DATA),
        "min_after_dequeue": Hint(_TF_DATA),
        "read_block_length": Hint(
            "records are interleaved one at a time from num_readers files; a block length "
            "would change only the order in which examples reach the shuffle" if training else
            f"{every_record}; the order does not change the metrics"),
        "prefetch_size": Hint(_TF_DATA),
        "num_parallel_map_calls": Hint(_TF_DATA),
        "drop_remainder": Hint(
            "the training input repeats forever, so every batch is full" if training else
            "evaluation keeps a partial last batch, so every record is evaluated",
            agrees=(True,) if training else (False,)),
        "num_additional_channels": Refused("images are RGB (3 channels)"),
        "num_keypoints": Refused(_NO_KEYPOINTS),
        "keypoint_type_weight": Refused(_NO_KEYPOINTS),
        "max_number_of_boxes": Hint(
            "training pads ground truth to train_config.max_number_of_boxes, as the OD API's "
            "training input does") if training else _h(d),
        "load_multiclass_scores": Refused(_BOXES_ONLY),
        "load_context_features": Refused(_BOXES_ONLY),
        "load_context_image_ids": Refused(_BOXES_ONLY),
        "load_instance_masks": Refused(_NO_MASKS),
        "mask_type": Hint("read only with load_instance_masks, which is refused"),
        "load_dense_pose": Refused(_BOXES_ONLY),
        "load_track_id": Refused(_BOXES_ONLY),
        "load_keypoint_depth_features": Refused(_NO_KEYPOINTS),
        "use_display_name": Refused(
            "class ids are read from image/object/class/label; class texts are not mapped "
            "through the label map"),
        "include_source_id": Hint("source_id is always read", agrees=(True,)),
        "input_type": Refused("the records must be tf.Examples (TF_EXAMPLE)",
                              accepted=("INPUT_DEFAULT", "TF_EXAMPLE")),
        "frame_index": Hint("read only for TF_SEQUENCE_EXAMPLE input, which is refused"),
        "tf_record_input_reader": _h(d),
        "tf_record_input_reader.input_path": _h(d),
        "external_input_reader": Refused("use tf_record_input_reader", where=d),
        "sample_from_datasets_weights": _h(d) if training else Refused(
            "evaluation reads every record of every input_path once; list only the files "
            "to evaluate"),
        "expand_labels_hierarchy": Refused(
            "label hierarchies are not expanded; write the expanded labels into the records"),
    }
    if training:
        return {"train_input_reader": _h(d), **{f"train_input_reader.{k}": v
                                                for k, v in fields.items()}}
    return {"eval_input_reader": _h(d, note=(
                "eval_input_reader[0] is evaluated; further entries are ignored, with a "
                "warning, as the OD API evaluates its eval_index 0 by default")),
            **{f"eval_input_reader[].{k}": v for k, v in fields.items()}}


def _eval_config() -> dict[str, Status]:
    e = "eval_config"
    keypoints = Refused(_NO_KEYPOINTS)
    return {
        e: _h(_PLANS),
        f"{e}.batch_size": _h(_DATASET),
        f"{e}.num_visualizations": _h(_EVAL_IMAGES),
        f"{e}.num_examples": _h(_PLANS, _EVAL_LOOP),
        f"{e}.eval_interval_secs": _h(_PLANS, _TRAIN),
        f"{e}.max_evals": Hint(
            "continuous evaluation ends at the last training step or after --eval_timeout "
            "without a new checkpoint (the OD API's TF2 evaluation does not read it either)",
            agrees=(0,)),
        f"{e}.save_graph": Hint("a TF1 graph export; it does not change the metrics",
                                agrees=(False,)),
        f"{e}.visualization_export_dir": _h(_EVAL_IMAGES),
        f"{e}.eval_master": Hint("a TF1 session address; the distribution engine connects "
                                 "the workers"),
        f"{e}.metrics_set": _h(_PLANS, _EVAL_LOOP, note=_METRICS),
        f"{e}.parameterized_metric": keypoints,
        f"{e}.export_path": Hint(
            "the detections of each evaluation are written to "
            "model_dir/eval/detections_step_<N>.json; the metrics are the same"),
        f"{e}.ignore_groundtruth": Refused(
            "evaluation needs the ground truth; for detections alone use export/infer.py"),
        f"{e}.use_moving_averages": _h(_PLANS, _TRAIN),
        f"{e}.eval_instance_masks": Refused(_NO_MASKS),
        f"{e}.min_score_threshold": _h(_EVAL_IMAGES),
        f"{e}.max_num_boxes_to_visualize": _h(_EVAL_IMAGES),
        f"{e}.skip_scores": _h(_EVAL_IMAGES),
        f"{e}.skip_labels": _h(_EVAL_IMAGES),
        f"{e}.visualize_groundtruth_boxes": _h(_EVAL_IMAGES),
        f"{e}.groundtruth_box_visualization_color": _h(_EVAL_IMAGES),
        f"{e}.keep_image_id_for_visualization_export": _h(_EVAL_IMAGES),
        f"{e}.retain_original_images": Hint(
            "pictures are drawn on the resized model input, to which the boxes are "
            "normalized; the metrics are the same"),
        f"{e}.include_metrics_per_category": _h(_PLANS, _EVAL_LOOP, note=_METRICS),
        f"{e}.all_metrics_per_category": _h(_PLANS, note=_METRICS),
        f"{e}.super_categories": Refused(
            "metrics are not grouped by super-category; include_metrics_per_category gives "
            "AP per category"),
        f"{e}.recall_lower_bound": Refused("AP is computed over the whole recall range"),
        f"{e}.recall_upper_bound": Refused("AP is computed over the whole recall range"),
        f"{e}.retain_original_image_additional_channels": Hint(
            "read only with num_additional_channels, which is refused"),
        f"{e}.force_no_resize": Refused(
            "evaluation images are resized by the model's image_resizer, as in training"),
        f"{e}.use_dummy_loss_in_eval": Hint(
            "the validation loss is always computed; it does not change the metrics",
            agrees=(False,)),
        f"{e}.keypoint_edge": keypoints,
        f"{e}.skip_predictions_for_unlabeled_class": Refused(
            "every detection is evaluated (image-level labels are not read)"),
    }


FIELDS: Mapping[str, Status] = {
    **_ssd(),
    **_train_config(),
    **_input_reader(training=True),
    **_eval_config(),
    **_input_reader(training=False),
    "graph_rewriter": Refused(
        "quantization-aware training is not supported: it needs tensorflow-model-optimization, "
        "which has no Keras 3 version; train in float (or --amp) and quantize the exported "
        "model after training"),
}


# ------------------------------------------------------------------------------------------------
# Lookup.


def _parent(path: str) -> str | None:
    if path.endswith("[]"):
        return path[:-2]
    return path.rsplit(".", 1)[0] if "." in path else None


def status(path: str) -> Status | None:
    """The status of a field path (`[]` for entries): its own, or a refused ancestor's."""
    ancestor = _parent(path)
    while ancestor is not None:
        if isinstance(FIELDS.get(ancestor), Refused):
            return FIELDS[ancestor]
        ancestor = _parent(ancestor)
    return FIELDS.get(path)


def field_paths(descriptor: _descriptor.Descriptor = ROOT, prefix: str = "",
                max_depth: int = 16) -> Iterator[tuple[str, _descriptor.FieldDescriptor]]:
    """Every field path reachable from `descriptor` (oneof members and map entries included),
    in proto order, with its descriptor."""
    if max_depth <= 0:
        raise ValueError(f"{prefix}: messages nest deeper than expected (a recursive proto?).")
    for field in descriptor.fields:
        path = f"{prefix}.{field.name}" if prefix else field.name
        yield path, field
        if field.message_type is not None:
            child = f"{path}[]" if field.is_repeated else path
            yield from field_paths(field.message_type, child, max_depth - 1)


# ------------------------------------------------------------------------------------------------
# Checking a config.

_WARNED: set[str] = set()  # hint warnings already logged by this process


def check_pipeline_config(pipeline_config: pipeline_pb2.TrainEvalPipelineConfig,
                          warned: MutableSet[str] | None = None) -> None:
    """Refuses the refused fields a config sets and warns once about the hints it sets.

    Args:
      pipeline_config: the config to check.
      warned: the field paths already warned about; default: this process's.

    Raises:
      ConfigError: one line per refused field that is set (path, value, what to use instead).
    """
    warned = _WARNED if warned is None else warned
    refused: list[str] = []
    hints: list[str] = []
    _check_message(pipeline_config, "", "", refused, hints)
    for path, text in hints:
        if path not in warned:
            warned.add(path)
            logger.warning("%s", text)
    if len(refused) == 1:
        raise ConfigError(refused[0])
    if refused:
        raise ConfigError(f"{len(refused)} fields of the pipeline config are not supported:\n"
                          + "\n".join(f"  {e}" for e in refused))


def _check_message(config: message.Message, path: str, key: str, refused: list[str],
                   hints: list[tuple[str, str]]) -> None:
    for field, value in config.ListFields():
        field_path = f"{path}.{field.name}" if path else field.name
        field_key = f"{key}.{field.name}" if key else field.name
        entry = FIELDS.get(field_key)
        if entry is None:
            raise KeyError(f"config_fields: {field_key} has no status; add it to FIELDS "
                           "(tests/utils/test_config_fields.py lists what is missing).")
        if isinstance(entry, Refused):
            if _is_refused_value(field, value, entry):
                refused.append(_refusal(field_path, field, value, entry))
            continue
        if isinstance(entry, Hint):
            if not field.is_repeated and _scalar_value(field, value) in entry.agrees:
                continue
            hints.append((field_path, f"{_name_value(field_path, field, value)} is ignored: "
                                      f"{entry.reason}."))
            continue
        if field.message_type is None:
            continue
        if not field.is_repeated:
            _check_message(value, field_path, field_key, refused, hints)
            continue
        for i, item in enumerate(value):
            item_path = f"{field_path}[{i}]"
            if field_key == "eval_input_reader" and i > 0:
                hints.append((item_path, f"{item_path}: is ignored: only eval_input_reader[0] "
                                         "is evaluated (the OD API's default eval_index 0)."))
                continue
            _check_message(item, item_path, f"{field_key}[]", refused, hints)


def _scalar_value(field: _descriptor.FieldDescriptor, value: Any) -> Any:
    """A singular field's value as `Refused.accepted` / `Hint.agrees` list it (enums by name;
    None for a message)."""
    if field.message_type is not None:
        return None
    if field.cpp_type == _FD.CPPTYPE_ENUM:
        return field.enum_type.values_by_number[value].name
    return value


def _is_refused_value(field: _descriptor.FieldDescriptor, value: Any, entry: Refused) -> bool:
    if field.message_type is not None or field.is_repeated:
        return True  # present (ListFields lists non-empty repeated fields only)
    if value == field.default_value:
        return False
    return _scalar_value(field, value) not in entry.accepted


def _refusal(path: str, field: _descriptor.FieldDescriptor, value: Any, entry: Refused) -> str:
    return f"{_name_value(path, field, value)} is not supported; {entry.alternative}."


def _name_value(path: str, field: _descriptor.FieldDescriptor, value: Any) -> str:
    """'path: value' as a config would write the value ('path:' alone for a message)."""
    if field.message_type is not None:
        return f"{path}:"
    if field.is_repeated:
        return f"{path}: [" + ", ".join(_format_scalar(field, v) for v in value) + "]"
    return f"{path}: {_format_scalar(field, value)}"


def _format_scalar(field: _descriptor.FieldDescriptor, value: Any) -> str:
    if field.cpp_type == _FD.CPPTYPE_ENUM:
        return field.enum_type.values_by_number[value].name
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, str):
        return repr(value)
    return str(value)


# ------------------------------------------------------------------------------------------------
# The documentation page.

_SECTIONS = ("model", "train_config", "train_input_reader", "eval_config", "eval_input_reader",
             "graph_rewriter")


def markdown() -> str:
    """docs/CONFIG_FIELDS.md: every field path and what the project does with it."""
    rows: dict[str, list[str]] = {section: [] for section in _SECTIONS}
    counts = {Honoured: 0, Refused: 0, Hint: 0}
    for path, _ in field_paths():
        entry = FIELDS.get(path)
        if entry is None or status(path) is not entry:  # below a refused message
            continue
        counts[type(entry)] += 1
        table = rows[path.split(".")[0].removesuffix("[]")]
        if isinstance(entry, Honoured):
            text = ", ".join(f"`{r}`" for r in entry.readers) + (
                f" ({entry.note})" if entry.note else "")
            table.append(f"| `{path}` | honoured | {text} |")
        elif isinstance(entry, Refused):
            text = entry.alternative + (
                f" (also accepted: {_plain(entry.accepted)})" if entry.accepted
                else "") + (f"; also refused by `{entry.where}`" if entry.where else "")
            table.append(f"| `{path}` | **refused** | {text} |")
        else:
            text = entry.reason + (f" (no warning for {_plain(entry.agrees)})" if entry.agrees
                                   else "")
            table.append(f"| `{path}` | warned | {text} |")
    lines = [
        "# Pipeline config fields",
        "",
        "<!-- Generated by `python -m object_detection.utils.config_fields --markdown > "
        "docs/CONFIG_FIELDS.md`; tests/utils/test_config_fields.py checks it is current. -->",
        "",
        "What the project does with every field of a `pipeline.config` "
        "(`TrainEvalPipelineConfig`, OD API field names), from "
        "`object_detection/utils/config_fields.py`:",
        "",
        "- **honoured**: read by the module named (under `object_detection/`) and takes effect;",
        "- **refused**: loading a config that sets it to anything but its default (a message: "
        "that has it at all) stops with a `ConfigError` naming the field, the value and what to "
        "use instead; a refused message covers every field below it, which is not listed;",
        "- **warned**: has no effect on results here, for the reason given; a config that sets "
        "it loads, with one warning per field and process.",
        "",
        "Paths are dotted from the pipeline root; `[]` stands for every entry of a repeated "
        "field.",
        "",
        f"{sum(counts.values())} fields: {counts[Honoured]} honoured, {counts[Refused]} "
        f"refused, {counts[Hint]} warned.",
    ]
    for section in _SECTIONS:
        lines += ["", f"## {section}", "", "| Field | Status | Read by / why |",
                  "| --- | --- | --- |"] + rows[section]
    return "\n".join(lines) + "\n"


def _plain(values: tuple[Any, ...]) -> str:
    return ", ".join(("true" if v else "false") if isinstance(v, bool) else str(v)
                     for v in values)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="What the project does with every pipeline config field.")
    parser.add_argument("--markdown", action="store_true",
                        help="print docs/CONFIG_FIELDS.md")
    args = parser.parse_args(argv)
    if not args.markdown:
        parser.print_help()
        return 2
    sys.stdout.write(markdown())
    return 0


if __name__ == "__main__":
    sys.exit(main())
