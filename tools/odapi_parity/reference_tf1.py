"""The TF1 OD API side of the parity tool: runs in the OD API's own venv, never in the project's.

Builds the real TF Object Detection API SSD the way the seed built it: TF1 graph mode
(`tf.compat.v1`, v2 behaviour disabled before the OD API is imported, so that its model builder
takes its TF1 branch), the TF-slim extractors (`ssd_resnet50_v1_fpn`, ...) and the slim box
predictor. It gives the model seeded random weights whose batch norm statistics are set from
the activations of the given image, saves them with `tf.compat.v1.train.Saver` (a name-based
checkpoint, the layout of the seed's `model.ckpt-N` files) and writes every stage it computes on
that image to `reference.npz` (the same keys as `reference.py`).

Usage (from tools/odapi_parity/parity.py --tf1, which prepares inputs.npz):
  PYTHONPATH=<models/research>:<models/research/slim> python reference_tf1.py \
      --pipeline_config CONFIG --inputs WORK/inputs.npz --work_dir WORK [--seed 0]

With `--slim_keys OUT_DIR` it also records the variable names and shapes of TF-slim's
`resnet_v1_{50,101,152}` ImageNet classifiers (what `resnet_v1_50_2016_08_28.tar.gz` holds).
"""
import argparse
import importlib.abc
import importlib.machinery
import os
import sys
import types

import numpy as np
import tensorflow.compat.v1 as tf

tf.disable_v2_behavior()


class _ContribStub(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """`tensorflow.contrib` is gone from TF 2: the TF1 model builder imports it for models the
    SSD FPN path never uses (the bipartite matcher, NASNet, quantization). Any such import gets
    an empty module whose attributes are placeholders that fail when called."""

    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow.contrib" or name.startswith("tensorflow.contrib."):
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec):
        module = types.ModuleType(spec.name)
        module.__path__ = []

        def missing(attr):
            if attr.startswith("__"):
                raise AttributeError(attr)

            def fail(*args, **kwargs):
                raise NotImplementedError(f"{spec.name}.{attr} (tensorflow.contrib) is stubbed")
            return fail
        module.__getattr__ = missing
        return module

    def exec_module(self, module):
        pass


sys.meta_path.insert(0, _ContribStub())
# the vendored slim `mobilenet_v3` (imported by the builder) uses np.int, gone in NumPy 2
np.int = int

# slim.batch_norm reaches `tf.compat.v1.layers`, which TF 2.20 loads lazily from
# `tf_keras.legacy_tf_layers`; tf-keras 2.20 ships that package as `tf_keras.src.legacy_tf_layers`.
for _name in ("", ".base", ".core", ".convolutional", ".normalization", ".pooling"):
    sys.modules["tf_keras.legacy_tf_layers" + _name] = importlib.import_module(
        "tf_keras.src.legacy_tf_layers" + _name)
# tf-slim 1.1 tests `isinstance(x, tensorflow.python.framework.ops.Tensor)`, gone in TF 2.20.
from tensorflow.python.framework import ops as _ops  # noqa: E402
if not hasattr(_ops, "Tensor"):
    _ops.Tensor = tf.Tensor

from object_detection.builders import model_builder  # noqa: E402
from object_detection.utils import config_util  # noqa: E402

import random_weights  # noqa: E402  (beside this script)

V1_METHODS = [tf.image.ResizeMethod.BILINEAR, tf.image.ResizeMethod.NEAREST_NEIGHBOR,
              tf.image.ResizeMethod.BICUBIC, tf.image.ResizeMethod.AREA]


def build(configs, is_training, inputs):
    """The model and its tensors on the photo, in the current graph."""
    model = model_builder.build(configs["model"], is_training=is_training)
    resizer = configs["model"].ssd.image_resizer.fixed_shape_resizer
    decoded = tf.image.decode_jpeg(inputs["jpeg"].tobytes(), channels=3)
    raw = tf.cast(decoded, tf.float32)[tf.newaxis]
    resized_pre, _ = model.preprocess(raw)
    resized = tf.image.resize_images(raw, [resizer.height, resizer.width],
                                     method=V1_METHODS[resizer.resize_method],
                                     align_corners=False)
    image = tf.placeholder(tf.float32, [1, resizer.height, resizer.width, 3], name="image")
    preprocessed, true_shapes = model.preprocess(image)
    prediction = model.predict(preprocessed, true_shapes)
    tensors = {"decoded": decoded, "preprocessed_from_raw": resized_pre, "resized": resized,
               "preprocessed": preprocessed, "anchors": prediction["anchors"],
               "box_encodings": prediction["box_encodings"],
               "class_logits": prediction["class_predictions_with_background"]}
    for level, feature in enumerate(prediction["feature_maps"],
                                    start=configs["model"].ssd.feature_extractor.fpn.min_level):
        tensors[f"P{level}"] = feature
    return model, image, prediction, true_shapes, tensors


def backbone_tensors(graph):
    """C2..C5 (ResNet: the slim end points block1..block4; MobileNet v1: its
    Conv2d_{3,5,11,13}_pointwise) and pool1, found by op name."""
    out = {}
    ops = graph.get_operations()
    for level, block in zip((2, 3, 4, 5), ("block1", "block2", "block3", "block4")):
        # the end point of a block is the output of its last unit (before any subsampling)
        relus = [op for op in ops if f"/{block}/unit_" in op.name and op.type in ("Relu", "Relu6")
                 and op.name.split("/")[-2] == "bottleneck_v1"]
        if relus:
            out[f"C{level}"] = relus[-1].outputs[0]
    for level, layer in zip((2, 3, 4, 5), (3, 5, 11, 13)):  # MobileNet v1's C2..C5
        ends = [op for op in ops if op.name.endswith(f"/Conv2d_{layer}_pointwise/Relu6")]
        if ends and f"C{level}" not in out:
            out[f"C{level}"] = ends[0].outputs[0]
    pools = [op for op in ops if op.name.endswith("pool1/MaxPool")]
    if pools:
        out["pool1"] = pools[0].outputs[0]
    return out


def randomize(sess, rng):
    """Biases ~ N(0, 0.1) (class head around the -4.6 prior), BN gamma and beta uniform."""
    for variable in tf.global_variables():
        value = random_weights.random_value(variable.op.name, variable.shape.as_list(), rng)
        if value is not None:
            variable.load(value, sess)


def calibrate_batch_norms(sess, graph, feed, rng):
    """Sets each batch norm's moving statistics from its input on this image (with noise), in
    graph order, so that every later batch norm sees calibrated inputs."""
    # inference-mode FusedBatchNorm inputs: x, scale, offset, mean, variance (variable reads)
    by_read = {v.value().name: v for v in tf.global_variables()}
    norms = [op for op in graph.get_operations() if op.type.startswith("FusedBatchNorm")]
    for op in norms:
        inputs = sess.run(op.inputs[0], feed)
        moving_mean, moving_variance = random_weights.noisy_statistics(
            inputs.mean(axis=(0, 1, 2)), inputs.var(axis=(0, 1, 2)), rng)
        by_read[op.inputs[3].name].load(moving_mean, sess)
        by_read[op.inputs[4].name].load(moving_variance, sess)
    return len(norms)


def record_slim_keys(out_dir):
    """Variable names and shapes of TF-slim's ImageNet ResNet v1 classifiers (1000 classes)."""
    from nets import resnet_v1
    import tf_slim as slim
    for depth in (50, 101, 152):
        with tf.Graph().as_default():
            images = tf.placeholder(tf.float32, [1, 224, 224, 3])
            with slim.arg_scope(resnet_v1.resnet_arg_scope()):
                getattr(resnet_v1, f"resnet_v1_{depth}")(images, num_classes=1000,
                                                         is_training=False)
            path = os.path.join(out_dir, f"slim_resnet_v1_{depth}.txt")
            with open(path, "w") as f:
                f.write(f"# Variables of TF-slim's resnet_v1_{depth} ImageNet classifier "
                        "(num_classes=1000), the names and shapes of\n# the name-based "
                        f"resnet_v1_{depth}.ckpt checkpoints, read from a real tf-slim build "
                        "(nets/resnet_v1.py,\n# TF 2.20 compat.v1 graph). Recorded with "
                        "tools/odapi_parity/reference_tf1.py --slim_keys.\n")
                for variable in tf.global_variables():
                    f.write(f"{variable.op.name} {variable.shape.as_list()}\n")
            print("wrote", path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline_config")
    parser.add_argument("--inputs")
    parser.add_argument("--work_dir")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--slim_keys", default=None,
                        help="write the TF-slim ResNet v1 classifier variable lists here")
    args = parser.parse_args()
    if args.slim_keys:
        record_slim_keys(args.slim_keys)
        if not args.pipeline_config:
            return
    rng = np.random.default_rng(args.seed)
    inputs = np.load(args.inputs)
    configs = config_util.get_configs_from_pipeline_file(args.pipeline_config)
    num_classes = configs["model"].ssd.num_classes
    checkpoint = os.path.join(args.work_dir, "tf1_ckpt")
    out = {}

    # Inference graph (evaluation and export): batch norms use their moving statistics.
    with tf.Graph().as_default() as graph:
        tf.set_random_seed(args.seed)
        model, image, prediction, true_shapes, tensors = build(configs, False, inputs)
        detections = model.postprocess(prediction, true_shapes)
        tensors.update(backbone_tensors(graph))
        for key in ("detection_boxes", "detection_scores", "detection_classes",
                    "num_detections"):
            tensors[key] = detections[key]
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            resized = sess.run(tensors["resized"])
            feed = {image: resized}
            randomize(sess, rng)
            calibrated = calibrate_batch_norms(sess, graph, feed, rng)
            tf.train.Saver().save(sess, checkpoint, write_meta_graph=False)
            out.update(sess.run(tensors, feed))
            trainable = tf.trainable_variables()
            out["num_parameters"] = np.array(sum(int(np.prod(v.shape.as_list()))
                                                 for v in tf.global_variables()))
            out["num_trainable"] = np.array(sum(int(np.prod(v.shape.as_list()))
                                                for v in trainable))
            out["regularization_loss"] = np.array(sess.run(tf.add_n(
                tf.losses.get_regularization_losses())))
    with open(os.path.join(args.work_dir, "tf1_checkpoint_keys.txt"), "w") as f:
        for key, shape in sorted(tf.train.load_checkpoint(checkpoint).get_variable_to_shape_map()
                                 .items()):
            f.write(f"{key} {shape}\n")

    # Training graph (the seed's train step): batch norms that are not frozen use batch
    # statistics; the losses of that step.
    with tf.Graph().as_default():
        model, image, prediction, true_shapes, tensors = build(configs, True, inputs)
        boxes = tf.constant(inputs["gt_boxes"])
        onehot = tf.one_hot(inputs["gt_classes"], num_classes, dtype=tf.float32)
        model.provide_groundtruth(groundtruth_boxes_list=[boxes],
                                  groundtruth_classes_list=[onehot])
        losses = model.loss(prediction, true_shapes)
        targets = model._assign_targets([boxes], [onehot])
        with tf.Session() as sess:
            tf.train.Saver().restore(sess, checkpoint)
            train = sess.run({"train_box_encodings": tensors["box_encodings"],
                              "train_class_logits": tensors["class_logits"],
                              "localization_loss": losses["Loss/localization_loss"],
                              "classification_loss": losses["Loss/classification_loss"],
                              "targets": targets}, {image: out["resized"]})
    cls_targets, _, reg_targets, reg_weights, match = train.pop("targets")
    out.update(train)
    out["cls_targets"], out["reg_targets"] = cls_targets, reg_targets
    out["reg_weights"], out["match"] = reg_weights, match
    np.savez(os.path.join(args.work_dir, "reference.npz"), **out)
    print(f"OD API (TF1): {calibrated} batch norms calibrated, {int(out['num_parameters'])} "
          f"parameters, checkpoint {checkpoint}")


if __name__ == "__main__":
    main()
