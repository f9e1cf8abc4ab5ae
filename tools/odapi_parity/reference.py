"""The OD API side of the parity tool: runs in the OD API's own venv, never in the project's.

Builds the real TF Object Detection API SSD (TF2 `_keras` extractors) from a pipeline config,
gives it seeded random weights whose batch norm statistics are set from the activations of the
given image (so that no layer sits in a degenerate regime), writes them as an OD API TF2
checkpoint (`tf.train.Checkpoint(model=...)`, the layout of `model_main_tf2.py` and of the model
zoo) and writes every stage it computes on that image to `reference.npz`.

Usage (from tools/odapi_parity/parity.py, which prepares inputs.npz):
  TF_USE_LEGACY_KERAS=1 PYTHONPATH=<models/research> python reference.py \
      --pipeline_config CONFIG --inputs WORK/inputs.npz --work_dir WORK [--seed 0]
"""
import argparse
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import random_weights  # noqa: E402  (beside this script)

from object_detection.builders import model_builder  # noqa: E402
from object_detection.core import freezable_batch_norm  # noqa: E402
from object_detection.utils import config_util  # noqa: E402


def randomize(model, rng):
    """Conv biases ~ N(0, 0.1) (class head around the -4.6 prior), BN gamma and beta uniform."""
    for variable in model.trainable_variables:
        value = random_weights.random_value(variable.name, variable.shape, rng)
        if value is not None:
            variable.assign(value)


def calibrate_batch_norms(model, preprocessed, true_shapes, rng):
    """Sets each batch norm's moving statistics from its input on this image (with noise)."""
    seen = set()
    original = freezable_batch_norm.FreezableBatchNorm.call

    def call(layer, inputs, training=None):
        if id(layer) not in seen:
            seen.add(id(layer))
            mean, variance = tf.nn.moments(inputs, axes=[0, 1, 2])
            moving_mean, moving_variance = random_weights.noisy_statistics(
                mean.numpy(), variance.numpy(), rng)
            layer.moving_mean.assign(moving_mean)
            layer.moving_variance.assign(moving_variance)
        return original(layer, inputs, training=training)

    freezable_batch_norm.FreezableBatchNorm.call = call
    try:
        model.predict(preprocessed, true_shapes)
    finally:
        freezable_batch_norm.FreezableBatchNorm.call = original
    return len(seen)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline_config", required=True)
    parser.add_argument("--inputs", required=True)
    parser.add_argument("--work_dir", required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    tf.random.set_seed(args.seed)
    inputs = np.load(args.inputs)
    configs = config_util.get_configs_from_pipeline_file(args.pipeline_config)
    model = model_builder.build(configs["model"], is_training=True)
    num_classes = configs["model"].ssd.num_classes
    out = {}

    decoded = tf.io.decode_jpeg(inputs["jpeg"].tobytes(), channels=3)
    out["decoded"] = decoded.numpy()
    raw = tf.cast(decoded, tf.float32)[tf.newaxis]
    # model.preprocess = fixed_shape_resizer then the extractor's normalization
    resized_pre, _ = model.preprocess(raw)
    out["preprocessed_from_raw"] = resized_pre.numpy()
    height = configs["model"].ssd.image_resizer.fixed_shape_resizer.height
    width = configs["model"].ssd.image_resizer.fixed_shape_resizer.width
    method = configs["model"].ssd.image_resizer.fixed_shape_resizer.resize_method
    v1_methods = [tf.compat.v1.image.ResizeMethod.BILINEAR,
                  tf.compat.v1.image.ResizeMethod.NEAREST_NEIGHBOR,
                  tf.compat.v1.image.ResizeMethod.BICUBIC, tf.compat.v1.image.ResizeMethod.AREA]
    resized = tf.compat.v1.image.resize_images(raw, [height, width], method=v1_methods[method],
                                               align_corners=False)
    out["resized"] = resized.numpy()
    # The common network input: the OD API's own resize of the photo.
    preprocessed, true_shapes = model.preprocess(resized)
    out["preprocessed"] = preprocessed.numpy()

    model.predict(preprocessed, true_shapes)  # creates the variables
    randomize(model, rng)
    calibrated = calibrate_batch_norms(model, preprocessed, true_shapes, rng)
    checkpoint = tf.train.Checkpoint(model=model)
    path = checkpoint.write(os.path.join(args.work_dir, "odapi_ckpt"))
    with open(os.path.join(args.work_dir, "odapi_checkpoint_keys.txt"), "w") as f:
        for key, shape in sorted(tf.train.load_checkpoint(path).get_variable_to_shape_map()
                                 .items()):
            f.write(f"{key} {shape}\n")
    out["num_parameters"] = np.array(sum(int(np.prod(v.shape)) for v in model.variables))
    out["num_trainable"] = np.array(sum(int(np.prod(v.shape))
                                        for v in model.trainable_variables))
    out["regularization_loss"] = np.array(float(tf.add_n(model.regularization_losses())))

    extractor = model._feature_extractor
    backbone = extractor.classification_backbone
    for level, feature in zip((2, 3, 4, 5), backbone(preprocessed)):
        out[f"C{level}"] = feature.numpy()
    pools = [layer for layer in backbone.layers if isinstance(layer, tf.keras.layers.MaxPool2D)]
    if pools:
        out["pool1"] = tf.keras.Model(backbone.inputs, pools[0].output)(preprocessed).numpy()
    # Inference mode first (Keras learning phase 0, the OD API's evaluation and export).
    prediction = model.predict(preprocessed, true_shapes)
    first = extractor._fpn_min_level
    for level, feature in enumerate(prediction["feature_maps"], start=first):
        out[f"P{level}"] = feature.numpy()
    out["anchors"] = prediction["anchors"].numpy()
    out["box_encodings"] = prediction["box_encodings"].numpy()
    out["class_logits"] = prediction["class_predictions_with_background"].numpy()

    detections = model.postprocess(prediction, true_shapes)
    for key in ("detection_boxes", "detection_scores", "detection_classes", "num_detections"):
        out[key] = detections[key].numpy()

    # Training mode, as model_lib_v2's train loop runs it (learning phase 1): batch norms that
    # are not frozen use the batch statistics; the losses are those of a training step.
    tf.keras.backend.set_learning_phase(1)
    prediction = model.predict(preprocessed, true_shapes)
    out["train_box_encodings"] = prediction["box_encodings"].numpy()
    out["train_class_logits"] = prediction["class_predictions_with_background"].numpy()
    boxes = tf.constant(inputs["gt_boxes"])
    onehot = tf.one_hot(inputs["gt_classes"], num_classes, dtype=tf.float32)
    model.provide_groundtruth(groundtruth_boxes_list=[boxes], groundtruth_classes_list=[onehot])
    losses = model.loss(prediction, true_shapes)
    out["localization_loss"] = losses["Loss/localization_loss"].numpy()
    out["classification_loss"] = losses["Loss/classification_loss"].numpy()
    cls_targets, _, reg_targets, reg_weights, match = model._assign_targets([boxes], [onehot])
    out["cls_targets"], out["reg_targets"] = cls_targets.numpy(), reg_targets.numpy()
    out["reg_weights"], out["match"] = reg_weights.numpy(), match.numpy()
    np.savez(os.path.join(args.work_dir, "reference.npz"), **out)
    print(f"OD API: {calibrated} batch norms calibrated, {int(out['num_parameters'])} "
          f"parameters, checkpoint {path}")


if __name__ == "__main__":
    main()
