"""Pins the OD API interface: field numbers and defaults that existing configs rely on.

Expected values are written out by hand from the OD API's protos, not read back from ours.
"""
from __future__ import annotations

import pytest
from google.protobuf import text_format

from object_detection.protos import (
    argmax_matcher_pb2,
    box_predictor_pb2,
    eval_pb2,
    faster_rcnn_box_coder_pb2,
    fpn_pb2,
    hyperparams_pb2,
    input_reader_pb2,
    losses_pb2,
    multiscale_anchor_generator_pb2,
    optimizer_pb2,
    pipeline_pb2,
    post_processing_pb2,
    preprocessor_pb2,
    ssd_pb2,
    train_pb2,
)

_NO_DEFAULT = object()

# (message class, field, number, default or _NO_DEFAULT for fields without an explicit default)
_FIELDS = [
    (pipeline_pb2.TrainEvalPipelineConfig, "model", 1, _NO_DEFAULT),
    (pipeline_pb2.TrainEvalPipelineConfig, "eval_input_reader", 5, _NO_DEFAULT),
    (pipeline_pb2.TrainEvalPipelineConfig, "graph_rewriter", 6, _NO_DEFAULT),
    (ssd_pb2.Ssd, "num_classes", 1, _NO_DEFAULT),
    (ssd_pb2.Ssd, "encode_background_as_zeros", 12, False),
    (ssd_pb2.Ssd, "negative_class_weight", 13, 1.0),
    (ssd_pb2.Ssd, "normalize_loss_by_num_matches", 10, True),
    (ssd_pb2.Ssd, "normalize_loc_loss_by_codesize", 14, False),
    (ssd_pb2.Ssd, "inplace_batchnorm_update", 15, False),
    (ssd_pb2.Ssd, "freeze_batchnorm", 16, False),
    (ssd_pb2.Ssd, "add_background_class", 21, True),
    (ssd_pb2.Ssd, "use_confidences_as_targets", 22, False),
    (ssd_pb2.Ssd, "implicit_example_weight", 23, 1.0),
    (ssd_pb2.Ssd, "explicit_background_class", 24, False),
    (ssd_pb2.Ssd, "return_raw_detections_during_predict", 26, False),
    (ssd_pb2.SsdFeatureExtractor, "depth_multiplier", 2, 1.0),
    (ssd_pb2.SsdFeatureExtractor, "min_depth", 3, 16),
    (ssd_pb2.SsdFeatureExtractor, "pad_to_multiple", 5, 1),
    (ssd_pb2.SsdFeatureExtractor, "override_base_feature_extractor_hyperparams", 9, False),
    (ssd_pb2.SsdFeatureExtractor, "fpn", 10, _NO_DEFAULT),
    (ssd_pb2.SsdFeatureExtractor, "replace_preprocessor_with_placeholder", 11, False),
    (ssd_pb2.SsdFeatureExtractor, "num_layers", 12, 6),
    (fpn_pb2.FeaturePyramidNetworks, "min_level", 1, 3),
    (fpn_pb2.FeaturePyramidNetworks, "max_level", 2, 7),
    (fpn_pb2.FeaturePyramidNetworks, "additional_layer_depth", 3, 256),
    (hyperparams_pb2.Hyperparams, "activation", 4, hyperparams_pb2.Hyperparams.RELU),
    (hyperparams_pb2.Hyperparams, "regularize_depthwise", 6, False),
    (hyperparams_pb2.Hyperparams, "force_use_bias", 8, False),
    (hyperparams_pb2.BatchNorm, "decay", 1, pytest.approx(0.999)),
    (hyperparams_pb2.BatchNorm, "center", 2, True),
    (hyperparams_pb2.BatchNorm, "scale", 3, False),
    (hyperparams_pb2.BatchNorm, "epsilon", 4, pytest.approx(0.001)),
    (hyperparams_pb2.BatchNorm, "train", 5, True),
    (hyperparams_pb2.L2Regularizer, "weight", 1, 1.0),
    (hyperparams_pb2.TruncatedNormalInitializer, "stddev", 2, 1.0),
    (hyperparams_pb2.VarianceScalingInitializer, "factor", 1, 2.0),
    (multiscale_anchor_generator_pb2.MultiscaleAnchorGenerator, "anchor_scale", 3, 4.0),
    (multiscale_anchor_generator_pb2.MultiscaleAnchorGenerator, "scales_per_octave", 5, 2),
    (multiscale_anchor_generator_pb2.MultiscaleAnchorGenerator, "normalize_coordinates", 6, True),
    (argmax_matcher_pb2.ArgMaxMatcher, "matched_threshold", 1, 0.5),
    (argmax_matcher_pb2.ArgMaxMatcher, "unmatched_threshold", 2, 0.5),
    (argmax_matcher_pb2.ArgMaxMatcher, "force_match_for_each_row", 5, False),
    (argmax_matcher_pb2.ArgMaxMatcher, "use_matmul_gather", 6, False),
    (faster_rcnn_box_coder_pb2.FasterRcnnBoxCoder, "y_scale", 1, 10.0),
    (faster_rcnn_box_coder_pb2.FasterRcnnBoxCoder, "width_scale", 4, 5.0),
    (box_predictor_pb2.WeightSharedConvolutionalBoxPredictor, "depth", 2, 0),
    (box_predictor_pb2.WeightSharedConvolutionalBoxPredictor, "num_layers_before_predictor", 4, 0),
    (box_predictor_pb2.WeightSharedConvolutionalBoxPredictor, "kernel_size", 7, 3),
    (box_predictor_pb2.WeightSharedConvolutionalBoxPredictor, "class_prediction_bias_init", 10,
     0.0),
    (box_predictor_pb2.WeightSharedConvolutionalBoxPredictor, "use_dropout", 11, False),
    (box_predictor_pb2.WeightSharedConvolutionalBoxPredictor, "dropout_keep_probability", 12,
     pytest.approx(0.8)),
    (box_predictor_pb2.WeightSharedConvolutionalBoxPredictor, "share_prediction_tower", 13, False),
    (box_predictor_pb2.WeightSharedConvolutionalBoxPredictor, "use_depthwise", 14, False),
    (box_predictor_pb2.WeightSharedConvolutionalBoxPredictor, "box_encodings_clip_range", 17,
     _NO_DEFAULT),
    (losses_pb2.Loss, "classification_weight", 4, 1.0),
    (losses_pb2.Loss, "expected_loss_weights", 18, losses_pb2.Loss.NONE),
    (losses_pb2.Loss, "desired_negative_sampling_ratio", 20, 3.0),
    (losses_pb2.SigmoidFocalClassificationLoss, "gamma", 2, 2.0),
    (losses_pb2.SigmoidFocalClassificationLoss, "alpha", 3, _NO_DEFAULT),
    (losses_pb2.WeightedSmoothL1LocalizationLoss, "delta", 2, 1.0),
    (post_processing_pb2.BatchNonMaxSuppression, "iou_threshold", 2, pytest.approx(0.6)),
    (post_processing_pb2.BatchNonMaxSuppression, "max_total_detections", 5, 100),
    (post_processing_pb2.BatchNonMaxSuppression, "soft_nms_sigma", 9, 0.0),
    (post_processing_pb2.PostProcessing, "score_converter", 2,
     post_processing_pb2.PostProcessing.IDENTITY),
    (optimizer_pb2.Optimizer, "use_moving_average", 4, True),
    (optimizer_pb2.CosineDecayLearningRate, "total_steps", 2, 4000000),
    (optimizer_pb2.CosineDecayLearningRate, "warmup_steps", 4, 10000),
    (optimizer_pb2.CosineDecayLearningRate, "hold_base_rate_steps", 5, 0),
    (train_pb2.TrainConfig, "batch_size", 1, 32),
    (train_pb2.TrainConfig, "fine_tune_checkpoint_type", 22, ""),
    (train_pb2.TrainConfig, "fine_tune_checkpoint_version", 28, train_pb2.V1),
    (train_pb2.TrainConfig, "max_number_of_boxes", 20, 100),
    (train_pb2.TrainConfig, "unpad_groundtruth_tensors", 21, True),
    (train_pb2.TrainConfig, "use_bfloat16", 26, False),
    (input_reader_pb2.InputReader, "shuffle", 2, True),
    (input_reader_pb2.InputReader, "num_readers", 6, 64),
    (input_reader_pb2.InputReader, "sample_1_of_n_examples", 22, 1),
    (input_reader_pb2.InputReader, "max_number_of_boxes", 21, 100),
    (input_reader_pb2.InputReader, "tf_record_input_reader", 8, _NO_DEFAULT),
    (eval_pb2.EvalConfig, "batch_size", 25, 1),
    (eval_pb2.EvalConfig, "metrics_set", 8, _NO_DEFAULT),
    (eval_pb2.EvalConfig, "retain_original_images", 23, True),
    (preprocessor_pb2.PreprocessingStep, "random_horizontal_flip", 2, _NO_DEFAULT),
    (preprocessor_pb2.PreprocessingStep, "random_crop_image", 12, _NO_DEFAULT),
    (preprocessor_pb2.PreprocessingStep, "ssd_random_crop", 21, _NO_DEFAULT),
    (preprocessor_pb2.PreprocessingStep, "random_square_crop_by_scale", 37, _NO_DEFAULT),
    (preprocessor_pb2.PreprocessingStep, "random_scale_crop_and_pad_to_square", 38, _NO_DEFAULT),
    (preprocessor_pb2.RandomCropImage, "min_object_covered", 1, 1.0),
    (preprocessor_pb2.RandomCropImage, "max_aspect_ratio", 3, pytest.approx(1.33)),
    (preprocessor_pb2.RandomCropImage, "overlap_thresh", 6, pytest.approx(0.3)),
    (preprocessor_pb2.RandomCropImage, "clip_boxes", 8, True),
    (preprocessor_pb2.RandomScaleCropAndPadToSquare, "output_size", 1, 512),
]


@pytest.mark.parametrize(
    "message, name, number, default", _FIELDS,
    ids=[f"{m.DESCRIPTOR.name}.{n}" for m, n, _, _ in _FIELDS])
def test_field_number_and_default(message, name, number, default):
    field = message.DESCRIPTOR.fields_by_name[name]
    assert field.number == number
    if default is _NO_DEFAULT:
        assert not field.has_default_value
    else:
        assert field.default_value == default


def test_eval_input_reader_is_repeated():
    field = pipeline_pb2.TrainEvalPipelineConfig.DESCRIPTOR.fields_by_name["eval_input_reader"]
    assert field.is_repeated


def test_activation_enum_values():
    activation = hyperparams_pb2.Hyperparams.Activation
    assert [(v, activation.Value(v)) for v in ("NONE", "RELU", "RELU_6", "SWISH")] == [
        ("NONE", 0), ("RELU", 1), ("RELU_6", 2), ("SWISH", 3)]


# A TF2 model-zoo style SSD config (written here), exercising fields that the seed configs do not.
_TF2_STYLE_CONFIG = """
model {
  ssd {
    num_classes: 90
    image_resizer { fixed_shape_resizer { height: 640 width: 640 } }
    feature_extractor {
      type: "ssd_resnet50_v1_fpn_keras"
      depth_multiplier: 1.0
      min_depth: 16
      conv_hyperparams {
        regularizer { l2_regularizer { weight: 0.0004 } }
        initializer { truncated_normal_initializer { mean: 0.0 stddev: 0.03 } }
        activation: RELU_6
        batch_norm { decay: 0.997 scale: true epsilon: 0.001 }
      }
      override_base_feature_extractor_hyperparams: true
      fpn { min_level: 3 max_level: 7 additional_layer_depth: 256 }
    }
    box_coder { faster_rcnn_box_coder { y_scale: 10.0 x_scale: 10.0 height_scale: 5.0 width_scale: 5.0 } }
    matcher {
      argmax_matcher {
        matched_threshold: 0.5 unmatched_threshold: 0.5 ignore_thresholds: false
        negatives_lower_than_unmatched: true force_match_for_each_row: true use_matmul_gather: true
      }
    }
    similarity_calculator { iou_similarity {} }
    box_predictor {
      weight_shared_convolutional_box_predictor {
        conv_hyperparams {
          regularizer { l2_regularizer { weight: 0.0004 } }
          initializer { random_normal_initializer { mean: 0.0 stddev: 0.01 } }
          activation: RELU_6
          batch_norm { decay: 0.997 scale: true epsilon: 0.001 }
        }
        depth: 256
        num_layers_before_predictor: 4
        kernel_size: 3
        class_prediction_bias_init: -4.6
        share_prediction_tower: false
        use_depthwise: false
      }
    }
    anchor_generator {
      multiscale_anchor_generator {
        min_level: 3 max_level: 7 anchor_scale: 4.0 aspect_ratios: [1.0, 2.0, 0.5]
        scales_per_octave: 2
      }
    }
    post_processing {
      batch_non_max_suppression {
        score_threshold: 1e-08 iou_threshold: 0.6 max_detections_per_class: 100
        max_total_detections: 100 use_static_shapes: false
      }
      score_converter: SIGMOID
    }
    normalize_loss_by_num_matches: true
    loss {
      localization_loss { weighted_smooth_l1 {} }
      classification_loss { weighted_sigmoid_focal { gamma: 2.0 alpha: 0.25 } }
      classification_weight: 1.0
      localization_weight: 1.0
    }
    encode_background_as_zeros: true
    normalize_loc_loss_by_codesize: true
    inplace_batchnorm_update: true
    freeze_batchnorm: false
  }
}
train_config {
  batch_size: 64
  data_augmentation_options { random_horizontal_flip {} }
  data_augmentation_options {
    random_crop_image {
      min_object_covered: 0.0 min_aspect_ratio: 0.75 max_aspect_ratio: 3.0
      min_area: 0.75 max_area: 1.0 overlap_thresh: 0.0
    }
  }
  data_augmentation_options { random_scale_crop_and_pad_to_square { output_size: 640 scale_min: 0.1 scale_max: 2.0 } }
  sync_replicas: true
  optimizer {
    momentum_optimizer {
      learning_rate {
        cosine_decay_learning_rate {
          learning_rate_base: 0.04 total_steps: 25000
          warmup_learning_rate: 0.013333 warmup_steps: 2000
        }
      }
      momentum_optimizer_value: 0.9
    }
    use_moving_average: false
  }
  fine_tune_checkpoint: "PATH_TO_BE_CONFIGURED"
  num_steps: 25000
  startup_delay_steps: 0.0
  replicas_to_aggregate: 8
  max_number_of_boxes: 100
  unpad_groundtruth_tensors: false
  fine_tune_checkpoint_type: "classification"
  use_bfloat16: true
  fine_tune_checkpoint_version: V2
}
train_input_reader {
  label_map_path: "PATH_TO_BE_CONFIGURED"
  tf_record_input_reader { input_path: "PATH_TO_BE_CONFIGURED" }
}
eval_config { metrics_set: "coco_detection_metrics" use_moving_averages: false }
eval_input_reader {
  label_map_path: "PATH_TO_BE_CONFIGURED"
  shuffle: false
  num_epochs: 1
  tf_record_input_reader { input_path: "PATH_TO_BE_CONFIGURED" }
}
"""


def test_tf2_zoo_style_config_parses():
    config = pipeline_pb2.TrainEvalPipelineConfig()
    text_format.Parse(_TF2_STYLE_CONFIG, config)
    assert config.model.WhichOneof("model") == "ssd"
    assert config.train_config.fine_tune_checkpoint_version == train_pb2.V2
    assert config.train_config.data_augmentation_options[2].WhichOneof(
        "preprocessing_step") == "random_scale_crop_and_pad_to_square"
    assert list(config.model.ssd.anchor_generator.multiscale_anchor_generator.aspect_ratios) == [
        1.0, 2.0, 0.5]
    assert config.eval_input_reader[0].num_epochs == 1
