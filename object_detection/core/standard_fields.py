"""Names of the tensors that cross module boundaries (OD API vocabulary).

Every dict key that a config, a TFRecord, a batch, the model or an export signature can see is
spelled here once; code uses these constants, never literal strings.
"""
from __future__ import annotations

# Label-map ids (records, COCO, exported detections) are 1-based, 0 being the background id;
# model classes are 0-based foreground ids: model class = label id - CLASS_ID_OFFSET. The
# decoder subtracts it once; evaluation and export add it back at the edge.
CLASS_ID_OFFSET = 1


class InputFields:
    """Keys of decoded examples and of training / evaluation batches."""

    image = "image"  # float32 [B, H, W, 3], pixel values 0..255 before model preprocessing
    original_image = "original_image"
    source_id = "source_id"  # string: COCO image id (or the file stem)
    filename = "filename"
    key = "key"
    original_image_spatial_shape = "original_image_spatial_shape"  # int32 [B, 2] (h, w)
    true_image_shape = "true_image_shape"  # int32 [B, 3]
    groundtruth_boxes = "groundtruth_boxes"  # float32 [B, N, 4] yxyx normalized
    groundtruth_classes = "groundtruth_classes"  # int32 [B, N], 0-based foreground ids
    groundtruth_weights = "groundtruth_weights"  # float32 [B, N]; 0 = ignore (e.g. crowd)
    groundtruth_is_crowd = "groundtruth_is_crowd"  # bool [B, N]
    groundtruth_difficult = "groundtruth_difficult"  # bool [B, N]; VOC `difficult` (evaluation)
    groundtruth_area = "groundtruth_area"  # float32 [B, N], absolute pixels (COCO 'area')
    num_groundtruth_boxes = "num_groundtruth_boxes"  # int32 [B]


class PredictionFields:
    """Keys of the raw model outputs (`SSDMetaArch.call`)."""

    box_encodings = "box_encodings"  # float32 [B, A, 4]
    class_predictions_with_background = "class_predictions_with_background"  # float32 [B, A, K]
    anchors = "anchors"  # float32 [A, 4]


class DetectionResultFields:
    """Keys of post-processed detections (`SSDMetaArch.postprocess`, export signature)."""

    detection_boxes = "detection_boxes"  # float32 [B, max_detections, 4] yxyx normalized
    detection_scores = "detection_scores"  # float32 [B, max_detections]
    detection_classes = "detection_classes"  # float32 [B, max_detections]
    num_detections = "num_detections"  # float32 [B] (int32 inside the package)
    # Export extras (as the OD API's exporter_main_v2 signature):
    detection_anchor_indices = "detection_anchor_indices"  # int32 [B, max_detections]
    detection_multiclass_scores = "detection_multiclass_scores"  # float32 [B, max_det, K']
    raw_detection_boxes = "raw_detection_boxes"  # float32 [B, A, 4], decoded, before NMS
    raw_detection_scores = "raw_detection_scores"  # float32 [B, A, K'], converted, before NMS


class LossFields:
    localization_loss = "Loss/localization_loss"
    classification_loss = "Loss/classification_loss"
    regularization_loss = "Loss/regularization_loss"
    total_loss = "Loss/total_loss"


class TfExampleFields:
    """Feature keys of tf.Example records, as written by the OD API's converters."""

    image_encoded = "image/encoded"
    image_format = "image/format"
    filename = "image/filename"
    source_id = "image/source_id"
    key = "image/key/sha256"
    height = "image/height"
    width = "image/width"
    object_bbox_xmin = "image/object/bbox/xmin"
    object_bbox_xmax = "image/object/bbox/xmax"
    object_bbox_ymin = "image/object/bbox/ymin"
    object_bbox_ymax = "image/object/bbox/ymax"
    object_class_text = "image/object/class/text"
    object_class_label = "image/object/class/label"
    object_is_crowd = "image/object/is_crowd"
    object_area = "image/object/area"
    object_difficult = "image/object/difficult"
    object_truncated = "image/object/truncated"
    object_view = "image/object/view"


class TargetFields:
    """Keys of the training targets returned by `core.target_assigner.TargetAssigner.assign`."""

    cls_targets = "cls_targets"  # float32 [B, A, K], one-hot foreground, zeros for background
    cls_weights = "cls_weights"  # float32 [B, A]; 0 for ignored anchors and weight-0 gt
    reg_targets = "reg_targets"  # float32 [B, A, 4], [ty, tx, th, tw]; 0 where not matched
    reg_weights = "reg_weights"  # float32 [B, A]; gt weight where matched, else 0
    match = "match"  # int32 [B, A]; gt index >= 0, UNMATCHED (-1) or IGNORED (-2)
    # Added by `SSDMetaArch.assign_targets`: float32 [], matched anchors of the batch.
    num_matches = "num_matches"
