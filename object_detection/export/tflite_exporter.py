"""TFLite export of an SSD: a TFLite-ready SavedModel, then a .tflite file (float32, fp16, int8).

Step 1, `export_tflite_graph` (the OD API's `export_tflite_graph_tf2.py`), writes
`output_directory/saved_model`: the network without its preprocessing and the TFLite detection
post-processing as the composite function `TFLite_Detection_PostProcess`
(`tf.function(experimental_implements=...)`), which the converter replaces with TFLite's builtin
op of that name (decode, per-anchor or per-class NMS). Its body in the SavedModel is a stand-in:
the SavedModel itself does not detect, only the .tflite does. `pipeline.config` is written
beside it.

Step 2, `convert`, writes the .tflite: `none` (float32), `fp16` (float16 weights, float32
compute where fp16 kernels are absent) or `int8` (post-training integer quantization calibrated
on images of the eval input; the input and the outputs stay float32).

The .tflite, signature `serving_default` (use it by name, not by tensor order):
  input  `input`: float32 [1, H, W, 3] at the model size, RGB, normalized as the feature
         extractor does (`NORMALIZATION` below: ResNet (x - channel means), MobileNet
         x / 127.5 - 1), as the OD API's TFLite models;
  output `detection_boxes` float32 [1, N, 4] yxyx normalized, clipped to [0, 1];
         `detection_classes` float32 [1, N], 0-based class indices (label-map id - 1, as the OD
         API's TFLite models); `detection_scores` float32 [1, N]; `num_detections` float32 [1].
  N = --max_detections. With `use_regular_nms` the NMS is per class (at most
  `max_detections_per_class` per class, the SavedModel export's semantics); without it (the
  default, the faster "fast NMS" of the OD API) each anchor keeps only its best class and NMS
  runs once over all anchors.
"""
from __future__ import annotations

import os
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import tensorflow as tf

from object_detection.core.standard_fields import CLASS_ID_OFFSET
from object_detection.export import exporter_lib
from object_detection.export.signatures import (QUANTIZATIONS, SERVING_SIGNATURE,
                                                TFLITE_INPUT_NAME)
from object_detection.meta_architectures import ssd_meta_arch
from object_detection.utils.errors import ConfigError
from object_detection.utils.log import logger


POSTPROCESS_OP = "TFLite_Detection_PostProcess"
TFLITE_FILENAME = "model.tflite"

# How each feature extractor normalizes 0..255 RGB (its `preprocess`), for the docs and users.
NORMALIZATION = {
    "resnet": "x - [123.68, 116.779, 103.939] (channel means, RGB)",
    "mobilenet": "x / 127.5 - 1",
}


def center_size_anchors(anchors: np.ndarray) -> np.ndarray:
    """float32 [A, 4] (ycenter, xcenter, height, width) from yxyx anchors [A, 4]."""
    ymin, xmin, ymax, xmax = np.moveaxis(np.asarray(anchors, np.float64), -1, 0)
    return np.stack([(ymin + ymax) / 2, (xmin + xmax) / 2, ymax - ymin, xmax - xmin],
                    axis=-1).astype(np.float32)


class TFLiteDetectionModule(tf.Module):
    """The SSD as a TFLite-convertible module (see the module docstring).

    Args:
      model: a built (and restored) `SSDMetaArch`.
      max_detections: N, the detections returned.
      use_regular_nms: per-class NMS instead of the fast class-agnostic one.
    """

    def __init__(self, model: ssd_meta_arch.SSDMetaArch, max_detections: int,
                 use_regular_nms: bool):
        super().__init__(name="tflite_detection_module")
        if max_detections < 1:
            raise ConfigError(f"--max_detections: must be >= 1, got {max_detections}.")
        opts = model.postprocess_options
        if opts.score_converter != "SIGMOID":
            raise ConfigError(
                f"model.ssd.post_processing.score_converter: {opts.score_converter} is not "
                "supported by the TFLite export (SIGMOID only, as the SSD320 configs).")
        coder = model.target_assigner.box_coder
        scales = getattr(coder, "scale_factors", None)
        if scales is None:
            raise ConfigError("model.ssd.box_coder: the TFLite detection op decodes the "
                              "faster_rcnn_box_coder only.")
        self._holder = exporter_lib._Untracked(model)
        self.model_variables = list(model.variables)
        self._anchors = center_size_anchors(model.anchors.numpy())
        attrs = {
            "max_detections": ("i", max_detections),
            "max_classes_per_detection": ("i", 1),
            "detections_per_class": ("i", opts.max_detections_per_class),
            "use_regular_nms": ("b", str(bool(use_regular_nms)).lower()),
            "nms_score_threshold": ("f", opts.score_threshold),
            "nms_iou_threshold": ("f", opts.iou_threshold),
            "y_scale": ("f", scales[0]), "x_scale": ("f", scales[1]),
            "h_scale": ("f", scales[2]), "w_scale": ("f", scales[3]),
            "num_classes": ("i", model.num_classes),
        }
        signature = " ".join([f'name: "{POSTPROCESS_OP}"'] + [
            f'attr {{ key: "{key}" value {{ {kind}: {value} }} }}'
            for key, (kind, value) in attrs.items()])

        @tf.function(experimental_implements=signature, autograph=False)
        def detection_postprocess(box_encodings, class_predictions, anchors):
            # A stand-in with the op's output shapes: the converter replaces this whole function
            # by the builtin op and never runs the body.
            del box_encodings, class_predictions, anchors
            boxes = tf.zeros([1, max_detections, 4], tf.float32)
            scores = tf.zeros([1, max_detections], tf.float32)
            return boxes, scores, scores, tf.zeros([1], tf.float32)

        self._postprocess = detection_postprocess
        height, width = model.image_size
        self.serve = tf.function(self._detect, autograph=False, input_signature=[
            tf.TensorSpec([1, height, width, 3], tf.float32, name=TFLITE_INPUT_NAME)])

    @property
    def model(self) -> ssd_meta_arch.SSDMetaArch:
        return self._holder.value

    def _detect(self, normalized_images):
        predictions = self.model.predict_normalized(normalized_images, training=False)
        scores = tf.sigmoid(predictions["class_predictions_with_background"]
                            * self.model.postprocess_options.logit_scale)
        boxes, classes, scores, num = self._postprocess(
            predictions["box_encodings"], scores, tf.constant(self._anchors))
        return {
            "detection_boxes": tf.clip_by_value(boxes, 0.0, 1.0),
            "detection_classes": tf.identity(classes),
            "detection_scores": tf.identity(scores),
            "num_detections": tf.identity(num),
        }


def export_tflite_graph(configs: Mapping[str, Any], trained_checkpoint: str | None,
                        output_directory: str, max_detections: int = 10,
                        use_regular_nms: bool = False) -> str:
    """Writes the TFLite-ready SavedModel and pipeline.config; returns the SavedModel path.

    Args:
      configs: the dict of `config_util.get_configs_from_pipeline_file`.
      trained_checkpoint: a model directory or checkpoint prefix; None exports random weights.
      output_directory: created if needed.
      max_detections: detections returned by the .tflite.
      use_regular_nms: per-class NMS (see the module docstring).
    """
    model = exporter_lib.build_model(configs)
    if trained_checkpoint:
        exporter_lib.restore_model(model, trained_checkpoint)
    else:
        logger.warning("no checkpoint given: exporting randomly initialized weights")
    module = TFLiteDetectionModule(model, max_detections, use_regular_nms)
    saved_model_dir = os.path.join(output_directory, exporter_lib.SAVED_MODEL_DIRNAME)
    os.makedirs(output_directory, exist_ok=True)
    tf.saved_model.save(module, saved_model_dir, signatures={
        SERVING_SIGNATURE: module.serve.get_concrete_function()})
    exporter_lib.write_pipeline_config(configs, output_directory)
    logger.info("wrote the TFLite-ready SavedModel %s (max_detections %d, %s NMS)",
                saved_model_dir, max_detections, "regular" if use_regular_nms else "fast")
    return saved_model_dir


# --------------------------------------------------------------------------------------------
# Conversion.


def calibration_images(configs: Mapping[str, Any], num_images: int
                       ) -> Callable[[], Iterator[list[np.ndarray]]]:
    """The representative dataset of int8 calibration: the first `num_images` images of the
    eval input, resized and normalized as the model's TFLite input."""
    from object_detection.builders import dataset_builder
    from object_detection.core.standard_fields import InputFields

    model = exporter_lib.build_model(configs)
    dataset = dataset_builder.eval_dataset(configs).unbatch().take(num_images).batch(1)

    def generate():
        count = 0
        for batch in dataset:
            yield [model.feature_extractor.preprocess(batch[InputFields.image]).numpy()]
            count += 1
        logger.info("int8 calibration on %d images of the eval input", count)
        if count == 0:
            raise ConfigError("eval_input_reader: no image to calibrate int8 quantization "
                              "with.")

    return generate


def convert(saved_model_dir: str, output_file: str, quantize: str = "none",
            representative_dataset: Callable[[], Iterator] | None = None) -> str:
    """Converts a TFLite-ready SavedModel to `output_file`; returns its path.

    Raises:
      ConfigError: an unknown `quantize`, or int8 without a representative dataset.
    """
    if quantize not in QUANTIZATIONS:
        raise ConfigError(f"--quantize {quantize!r}: not one of {', '.join(QUANTIZATIONS)}.")
    loaded = tf.saved_model.load(exporter_lib.saved_model_path(saved_model_dir))
    # From the signature's concrete function, not `from_saved_model`: that path keeps the Keras
    # variables as TFLite resource variables (no batch-norm folding, and no values in the
    # signature runner); this one freezes them into constants first.
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [loaded.signatures[SERVING_SIGNATURE]], loaded)
    converter.allow_custom_ops = False  # the post-processing is TFLite's builtin op
    if quantize == "fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantize == "int8":
        if representative_dataset is None:
            raise ConfigError("--quantize int8: needs calibration images (the eval input of "
                              "the pipeline config).")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative_dataset
    flatbuffer = converter.convert()
    os.makedirs(os.path.dirname(os.path.abspath(output_file)), exist_ok=True)
    with open(output_file, "wb") as f:
        f.write(flatbuffer)
    logger.info("wrote %s (%s, %.1f MB)", output_file, quantize, len(flatbuffer) / 1e6)
    return output_file


def convert_for_configs(configs: Mapping[str, Any] | None, saved_model_dir: str,
                        output_file: str, quantize: str, num_calibration_images: int = 100
                        ) -> str:
    """`convert`, calibrating int8 on the eval input of `configs` (needed for int8 only)."""
    dataset = None
    if quantize == "int8":
        if configs is None:
            raise ConfigError("--quantize int8: needs the pipeline config whose eval input "
                              "calibrates.")
        dataset = calibration_images(configs, num_calibration_images)
    return convert(saved_model_dir, output_file, quantize, dataset)


# --------------------------------------------------------------------------------------------
# Running a .tflite.


class TFLiteDetector:
    """Runs a .tflite detection model through its `serving_default` signature (LiteRT).

    Args:
      path: the .tflite file.
      num_threads: interpreter threads (XNNPACK).
    """

    def __init__(self, path: str, num_threads: int = 2):
        from ai_edge_litert.interpreter import Interpreter

        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path}: no such .tflite file.")
        self.options = detection_op_options(path)
        if self.options.get("use_regular_nms") and num_threads > 1:
            # LiteRT 2.3.0's regular (per-class) NMS with n > 1 threads loses the detections
            # of class index n (measured: every class count, n = 2, 3, 4); fast NMS does not.
            logger.warning("%s: regular NMS runs on 1 thread (LiteRT 2.3.0 drops a class of "
                           "its multi-threaded regular NMS)", path)
            num_threads = 1
        self.interpreter = Interpreter(model_path=path, num_threads=num_threads)
        self.runner = self.interpreter.get_signature_runner(SERVING_SIGNATURE)
        (name, detail), = self.runner.get_input_details().items()
        self.input_name = name
        self.input_shape = tuple(int(d) for d in detail["shape"])  # (1, H, W, 3)

    def __call__(self, normalized_image: np.ndarray) -> dict[str, np.ndarray]:
        """Detections of one normalized image float32 [1, H, W, 3] (0-based classes)."""
        return dict(self.runner(**{self.input_name: np.asarray(normalized_image, np.float32)}))


def detection_op_options(path: str) -> dict[str, Any]:
    """The attributes of the file's TFLite_Detection_PostProcess op, as the converter wrote
    them ({} without one). The converter keeps max_detections, max_classes_per_detection,
    use_regular_nms, the thresholds, the scales and num_classes; it drops
    detections_per_class, so the runtime uses its default, 100."""
    from flatbuffers import flexbuffers
    from tensorflow.lite.python import schema_py_generated as schema

    with open(path, "rb") as f:
        model = schema.Model.GetRootAsModel(f.read(), 0)
    codes = [model.OperatorCodes(i).CustomCode() for i in range(model.OperatorCodesLength())]
    for g in range(model.SubgraphsLength()):
        graph = model.Subgraphs(g)
        for i in range(graph.OperatorsLength()):
            op = graph.Operators(i)
            if codes[op.OpcodeIndex()] == POSTPROCESS_OP.encode():
                return dict(flexbuffers.Loads(op.CustomOptionsAsNumpy().tobytes()))
    return {}


def tflite_detector(path: str, num_threads: int = 2
                    ) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    """A .tflite of this exporter as `infer`'s detectors are: uint8 [B, H, W, 3] of any size
    -> detection_boxes, detection_scores, detection_classes (1-based, as the SavedModel's),
    num_detections. The resize and normalization come from the pipeline.config beside it.

    Raises:
      FileNotFoundError: no such file, or no pipeline.config beside it.
    """
    from object_detection.builders import model_builder
    from object_detection.utils import config_util

    config_path = os.path.join(os.path.dirname(os.path.abspath(path)),
                               config_util.PIPELINE_CONFIG_NAME)
    if not os.path.isfile(config_path):
        raise FileNotFoundError(f"{config_path}: the .tflite needs the pipeline.config its "
                                "export wrote beside it (input size and normalization).")
    runner = TFLiteDetector(path, num_threads=num_threads)
    configs = config_util.get_configs_from_pipeline_file(config_path, validate=False)
    # Only the resize and the normalization are used: no weights are created.
    model = model_builder.build(configs["model"], is_training=False)

    def detect(images: np.ndarray) -> dict[str, np.ndarray]:
        outputs = [runner(normalized_input(model, images[i:i + 1])) for i in range(len(images))]
        result = {key: np.concatenate([o[key] for o in outputs]) for key in outputs[0]}
        result["detection_classes"] = result["detection_classes"] + CLASS_ID_OFFSET
        return result

    return detect


def normalized_input(model: ssd_meta_arch.SSDMetaArch, images: np.ndarray) -> np.ndarray:
    """The TFLite input of uint8 images [1, H, W, 3] of any size: resized as the SavedModel
    export does, then normalized by the feature extractor's preprocess."""
    resized = model.resize_images(tf.cast(images, tf.float32))
    return model.feature_extractor.preprocess(resized).numpy()


def parse_quantizations(values: Sequence[str]) -> list[str]:
    """The --quantize values, checked."""
    for value in values:
        if value not in QUANTIZATIONS:
            raise ConfigError(f"--quantize {value!r}: not one of {', '.join(QUANTIZATIONS)}.")
    return list(values)
