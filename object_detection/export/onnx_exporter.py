"""ONNX export of a trained detector (tf2onnx), and a runner for the files it writes.

An optional extra: `pip install '.[onnx]'` (tf2onnx, onnxruntime). Nothing here imports them
until an export or a run needs them; then a missing package raises `OnnxUnavailableError`.

Layout written to `output_directory`:

    model.onnx         the graph, weights folded in (opset `DEFAULT_OPSET` unless asked)
    pipeline.config    the effective pipeline config (overrides applied)

Input `input_tensor`: float32 [B, H, W, 3], RGB pixel values 0..255 (not normalized: the feature
extractor's preprocessing is inside the graph), H, W the model's fixed input size (the
`fixed_shape_resizer` size, also in the metadata). B is dynamic unless the export fixed it
(`batch_size`). Images of another size are resized first with the model's resize (OD API grid:
`tf.compat.v1.image.resize_images(..., align_corners=False)` with the config's `resize_method`);
`run_onnx` does that. The input is float and not uint8 because the resize of a uint8 image gives
fractional values: rounding them back to uint8 would change the detections.

Outputs with post-processing (the default): those of the SavedModel's `serving_default`, with
the same names, shapes and meaning (`exporter_lib`):
  `detection_boxes` float32 [B, D, 4] yxyx normalized to the image (the image fills the model
  input, so also to the original image), `detection_scores` float32 [B, D] descending,
  `detection_classes` float32 [B, D] label-map ids (1-based), `num_detections` float32 [B];
  rows past num_detections are zeros. D = `max_total_detections`. Also, as the OD API's export:
  `detection_multiclass_scores` [B, D, K'], `detection_anchor_indices` int32 [B, D],
  `raw_detection_boxes` [B, A, 4] (decoded, before NMS) and `raw_detection_scores` [B, A, K']
  (K' = K + 1, background column first, when the model has a background class).

Outputs of an export with `postprocess=False` (`--no_postprocess`), what a TensorRT NMS plugin
or one's own NMS takes:
  `box_encodings` float32 [B, A, 4], `[ty, tx, th, tw]` per anchor, not decoded;
  `class_scores` float32 [B, A, K] after the score converter (sigmoid for SSD320; softmax is
  taken over the K + 1 columns), background column dropped: column k is label-map id k + 1;
  `anchors` float32 [A, 4] yxyx normalized to the model input, in the order of `box_encodings`.
  The box coder is the Faster R-CNN coder (`core/box_coder.py`): with (yca, xca, ha, wa) the
  center and size of an anchor and (sy, sx, sh, sw) the `scale_factors` (10, 10, 5, 5 in the
  shipped configs; none when the metadata says "none"),
      h = exp(min(th / sh, clip)) * ha      w = exp(min(tw / sw, clip)) * wa
      yc = ty / sy * ha + yca               xc = tx / sx * wa + xca
      box = [yc - h / 2, xc - w / 2, yc + h / 2, xc + w / 2]
  with clip = `decode_log_scale_clip` (log(1000 / 16)). The model's own post-processing then
  runs per-class NMS (score > score_threshold, IoU > iou_threshold suppresses, at most
  max_detections_per_class per class, max_total_detections in all) and clips the boxes to
  [0, 1], dropping zero-area ones; the thresholds are in the metadata.

Tensors are looked up by name, never by position (the ONNX graph lists outputs sorted by name).
The model metadata (`metadata_props`, onnxruntime's `custom_metadata_map`) holds `METADATA_KEYS`:
input size, resize method, number of classes, whether post-processing is in, the box coder and
the post-processing settings.

The graph with post-processing is the SavedModel's after its resize
(`exporter_lib.DetectionModule.detect_resized`). tf2onnx converts its
`tf.image.combined_non_max_suppression` into ONNX NonMaxSuppression per image and class (the same
strict score and IoU comparisons and per-class cap), then a TopK over all classes for the total
cap; the project's clip-and-prune after it converts op for op. Detections equal the SavedModel's
except where two candidates of one class have exactly the same score and overlap: TensorFlow's
kernel leaves the order of exact ties undefined, ONNX Runtime takes the lower anchor index, so
either may be kept and the other suppressed (both are valid greedy NMS results).
"""
from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np

from object_detection.core.standard_fields import CLASS_ID_OFFSET
from object_detection.core.standard_fields import DetectionResultFields as D
from object_detection.core.standard_fields import PredictionFields as P
from object_detection.export.signatures import INPUT_NAME  # the SavedModel's input name
from object_detection.utils.log import logger

if TYPE_CHECKING:  # annotations only: importing this module loads neither TF nor onnx
    import tensorflow as tf

    from object_detection.meta_architectures.ssd_meta_arch import SSDMetaArch


ONNX_FILENAME = "model.onnx"
CLASS_SCORES = "class_scores"  # [B, A, K] scores after the score converter, no background
DETECTION_OUTPUTS = (  # the four every detector has; the SavedModel's extras come too
    D.detection_boxes, D.detection_scores, D.detection_classes, D.num_detections)
RAW_OUTPUTS = (P.box_encodings, CLASS_SCORES, P.anchors)

# tf2onnx 1.17 writes opsets up to 18 and converts CombinedNonMaxSuppression from 12 on; 13, 17
# and 18 were checked equal to the SavedModel (small model, both graphs).
DEFAULT_OPSET = 17
MIN_OPSET, MAX_OPSET = 13, 18

METADATA_KEYS = (
    "image_height", "image_width", "resize_method", "num_classes", "label_id_offset",
    "postprocess", "box_coder", "box_coder_scale_factors", "box_coder_decode_log_scale_clip",
    "score_converter", "logit_scale", "score_threshold", "iou_threshold",
    "max_detections_per_class", "max_total_detections",
)

_INSTALL_HINT = "install the onnx extra: pip install 'object_detection[onnx]' (or '.[onnx]')"


class OnnxUnavailableError(ImportError):
    """tf2onnx or onnxruntime is not installed."""


class OnnxModelError(ValueError):
    """An ONNX file cannot be run as a detector (no post-processing, unexpected input)."""


def _import(name: str):
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError as e:
        raise OnnxUnavailableError(f"{name} is not importable ({e}); {_INSTALL_HINT}.") from None


# --------------------------------------------------------------------------------------------
# The graph and its conversion.


def _check_export_arguments(batch_size: int | None, opset: int) -> None:
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int)
                                   or batch_size < 1):
        raise ValueError(f"batch_size must be None (dynamic) or an int >= 1, got {batch_size!r}.")
    if isinstance(opset, bool) or not isinstance(opset, int) or not MIN_OPSET <= opset <= MAX_OPSET:
        raise ValueError(f"opset must be an int in [{MIN_OPSET}, {MAX_OPSET}], got {opset!r}.")


def inference_function(model: SSDMetaArch, postprocess: bool = True,
                       batch_size: int | None = None) -> tf.types.experimental.GenericFunction:
    """The tf.function that is converted: model-size float images -> named outputs.

    Args:
      model: a built (and restored) `SSDMetaArch`.
      postprocess: detections (`DETECTION_OUTPUTS`) or raw outputs (`RAW_OUTPUTS`).
      batch_size: None for a dynamic batch, else the fixed B.

    Returns:
      A `tf.function` with one input signature (`INPUT_NAME`, float32 [B, H, W, 3]); see the
      module docstring for its outputs.
    """
    import tensorflow as tf

    from object_detection.core import post_processing
    from object_detection.export import exporter_lib

    height, width = model.image_size
    spec = tf.TensorSpec([batch_size, height, width, 3], tf.float32, name=INPUT_NAME)

    if postprocess:
        module = exporter_lib.DetectionModule(model)

        @tf.function(input_signature=[spec], autograph=False)
        def detect(input_tensor):
            return dict(module.detect_resized(input_tensor))  # the signature's graph, no resize

        detect.keep_alive = module
        return detect

    opts = model.postprocess_options

    @tf.function(input_signature=[spec], autograph=False)
    def raw(input_tensor):
        predictions = model(input_tensor, training=False)
        scores = post_processing.score_converter(
            predictions[P.class_predictions_with_background], opts.score_converter,
            logit_scale=opts.logit_scale)  # [B, A, K']
        if model.add_background_class:
            scores = scores[..., 1:]  # [B, A, K]: drop the background column
        return {
            P.box_encodings: tf.identity(predictions[P.box_encodings]),  # [B, A, 4]
            CLASS_SCORES: tf.identity(scores),
            P.anchors: tf.identity(model.anchors),  # [A, 4], a constant
        }

    return raw


def model_metadata(model: SSDMetaArch, postprocess: bool) -> dict[str, str]:
    """The `METADATA_KEYS` of `model` as strings (ONNX metadata values are strings)."""
    opts = model.postprocess_options
    coder = model.target_assigner.box_coder
    scales = coder.scale_factors
    clip = coder.decode_log_scale_clip
    meta = {
        "image_height": model.image_size[0],
        "image_width": model.image_size[1],
        "resize_method": model.resize_method,
        "num_classes": model.num_classes,
        "label_id_offset": CLASS_ID_OFFSET,
        "postprocess": "true" if postprocess else "false",
        "box_coder": "faster_rcnn",
        "box_coder_scale_factors": "none" if scales is None else ",".join(
            repr(float(s)) for s in scales),
        "box_coder_decode_log_scale_clip": "none" if clip is None else repr(float(clip)),
        "score_converter": opts.score_converter,
        "logit_scale": repr(float(opts.logit_scale)),
        "score_threshold": repr(float(opts.score_threshold)),
        "iou_threshold": repr(float(opts.iou_threshold)),
        "max_detections_per_class": opts.max_detections_per_class,
        "max_total_detections": opts.max_total_detections,
    }
    return {k: str(v) for k, v in meta.items()}


def convert_model(model: SSDMetaArch, output_path: str, *, postprocess: bool = True,
                  batch_size: int | None = None, opset: int = DEFAULT_OPSET) -> str:
    """Converts `model` (as it is) to an ONNX file.

    Args:
      model: a built (and restored) `SSDMetaArch`.
      output_path: the .onnx file to write (its directory is created).
      postprocess: include decoding, scoring and NMS (detections out), or not (raw outputs).
      batch_size: None for a dynamic batch dimension, else a fixed one.
      opset: ONNX opset, in [MIN_OPSET, MAX_OPSET].

    Returns:
      `output_path`.

    Raises:
      ValueError: bad batch_size or opset.
      OnnxUnavailableError: tf2onnx or onnx is not installed.
      RuntimeError: the converted graph lacks a documented output.
    """
    _check_export_arguments(batch_size, opset)
    tf2onnx = _import("tf2onnx")
    onnx = _import("onnx")
    function = inference_function(model, postprocess=postprocess, batch_size=batch_size)
    start = time.perf_counter()
    proto, _ = tf2onnx.convert.from_function(
        function, input_signature=function.input_signature, opset=opset)
    outputs = [o.name for o in proto.graph.output]
    want = DETECTION_OUTPUTS if postprocess else RAW_OUTPUTS
    missing = sorted(set(want) - set(outputs))
    if missing:  # a change of DetectionModule's outputs shows here, not in a user's runtime
        raise RuntimeError(f"the converted graph lacks the outputs {missing}; it has {outputs}.")
    for key, value in model_metadata(model, postprocess).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.doc_string = ("object_detection SSD, " + ("detections" if postprocess else
                                                    "raw box encodings, class scores, anchors"))
    os.makedirs(os.path.dirname(os.path.abspath(output_path)), exist_ok=True)
    onnx.save(proto, output_path)
    logger.info("converted to ONNX (opset %d) in %.1f s: %s", opset,
                time.perf_counter() - start, output_path)
    return output_path


def export_onnx(configs: Mapping[str, Any], trained_checkpoint: str | None,
                output_directory: str, *, postprocess: bool = True,
                batch_size: int | None = None, opset: int = DEFAULT_OPSET) -> str:
    """Builds the model of `configs`, restores the checkpoint and writes model.onnx and
    pipeline.config into `output_directory`.

    Args:
      configs: the dict of `config_util.get_configs_from_pipeline_file`.
      trained_checkpoint: a model directory or checkpoint prefix; None exports random weights
        (tests, benchmarks).
      output_directory: created if needed; an existing model.onnx there is replaced.
      postprocess, batch_size, opset: see `convert_model`.

    Returns:
      The path of model.onnx.

    Raises:
      FileNotFoundError: no checkpoint at `trained_checkpoint` (checked before building).
      exporter_lib.CheckpointError: the checkpoint does not fit the model.
      ValueError, OnnxUnavailableError: see `convert_model` (checked before building).
    """
    from object_detection.export import exporter_lib

    _check_export_arguments(batch_size, opset)
    _import("tf2onnx")
    _import("onnx")
    if trained_checkpoint:
        trained_checkpoint = exporter_lib.resolve_checkpoint(trained_checkpoint)  # fail fast
    model = exporter_lib.build_model(configs)
    if trained_checkpoint:
        exporter_lib.restore_model(model, trained_checkpoint)
    else:
        logger.warning("no checkpoint given: exporting randomly initialized weights")
    path = convert_model(model, os.path.join(output_directory, ONNX_FILENAME),
                         postprocess=postprocess, batch_size=batch_size, opset=opset)
    exporter_lib.write_pipeline_config(configs, output_directory)
    return path


def max_detections_override(max_detections: int) -> str:
    """The config override that sets the number of detections D of the export."""
    return ("model.ssd.post_processing.batch_non_max_suppression.max_total_detections="
            f"{int(max_detections)}")


def export_from_pipeline_file(pipeline_config_path: str, trained_checkpoint: str | None,
                              output_directory: str, config_override: Sequence[str] = (),
                              **kwargs) -> str:
    """`export_onnx` from a pipeline config file and overrides (kwargs: see `export_onnx`)."""
    from object_detection.builders import config_rules

    configs = config_rules.load_pipeline_configs(pipeline_config_path,
                                                 config_override=list(config_override))
    return export_onnx(configs, trained_checkpoint, output_directory, **kwargs)


# --------------------------------------------------------------------------------------------
# Running an ONNX file.


def onnx_path(path: str) -> str:
    """The .onnx file of an export: `path` itself or `path/model.onnx`."""
    if os.path.isfile(path):
        return path
    inner = os.path.join(path, ONNX_FILENAME)
    if os.path.isfile(inner):
        return inner
    raise FileNotFoundError(f"{path}: neither an ONNX file nor a directory with {ONNX_FILENAME}.")


def _resize(images: np.ndarray, height: int, width: int, method: str) -> np.ndarray:
    import tensorflow as tf

    from object_detection.core import image_resizer

    with tf.device("/cpu:0"):
        return image_resizer.resize_images(tf.constant(images), height, width, method).numpy()


class OnnxRunner:
    """An ONNX file in an onnxruntime session: images of any size -> its named outputs.

    Args:
      path: an .onnx file or an export directory holding model.onnx.
      num_threads: onnxruntime intra-op threads; None for its default (all cores).

    Raises:
      FileNotFoundError: no ONNX file there.
      OnnxModelError: onnxruntime cannot load the file, or its input is not [B, H, W, 3].
      OnnxUnavailableError: onnxruntime is not installed.
    """

    def __init__(self, path: str, num_threads: int | None = None):
        ort = _import("onnxruntime")
        self.path = onnx_path(path)
        options = ort.SessionOptions()
        if num_threads:
            options.intra_op_num_threads = int(num_threads)
        try:
            self.session = ort.InferenceSession(self.path, sess_options=options,
                                                providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own types for unreadable files
            raise OnnxModelError(f"{self.path}: onnxruntime cannot load it: "
                                 f"{str(e)[:300]}") from None
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        inputs = self.session.get_inputs()
        shape = inputs[0].shape if len(inputs) == 1 else []
        if len(shape) != 4 or shape[3] != 3 or not all(isinstance(d, int) for d in shape[1:3]):
            raise OnnxModelError(
                f"{self.path}: expected one input [B, H, W, 3] with a fixed H and W (this "
                f"exporter's), got {[(i.name, i.shape) for i in inputs]}.")
        self.input_name = inputs[0].name
        batch, height, width, _ = shape
        self.batch_size = batch if isinstance(batch, int) else None  # a str: dynamic
        self.image_size = (int(height), int(width))
        self.output_names = [o.name for o in self.session.get_outputs()]

    @property
    def has_postprocess(self) -> bool:
        return set(DETECTION_OUTPUTS) <= set(self.output_names)

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """Runs the model.

        Args:
          images: uint8 or float (0..255) [B, H, W, 3], RGB, any H, W (resized to the model
            size with the model's resize method, as the SavedModel does inside).

        Returns:
          The outputs by name (see the module docstring), as numpy arrays; [B, ...] for all
          but `anchors` [A, 4].

        Raises:
          OnnxModelError: the images are not [B, H, W, 3], or need a resize that the file's
            metadata does not name.
        """
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[-1] != 3 or not len(images):
            raise OnnxModelError(
                f"images must be [B, H, W, 3] with B >= 1, got shape {images.shape}.")
        height, width = self.image_size
        if images.shape[1:3] != (height, width):
            method = self.metadata.get("resize_method")
            if method is None:
                raise OnnxModelError(
                    f"{self.path}: images are {images.shape[1]}x{images.shape[2]}, the model "
                    f"takes {height}x{width}, and the file names no resize_method: resize them "
                    "first.")
            images = _resize(images, height, width, method)
        images = images.astype(np.float32, copy=False)
        step = self.batch_size or len(images)
        chunks = []
        for start in range(0, len(images), step):
            chunk = images[start:start + step]
            fill = step - len(chunk)
            if fill:  # the last chunk of a fixed-batch model: pad, cut after
                chunk = np.concatenate([chunk, np.zeros((fill,) + chunk.shape[1:], np.float32)])
            outputs = dict(zip(self.output_names,
                               self.session.run(None, {self.input_name: chunk})))
            chunks.append({k: (v if k == P.anchors else v[:step - fill])
                           for k, v in outputs.items()})
        return {k: (chunks[0][k] if k == P.anchors
                    else np.concatenate([c[k] for c in chunks]))
                for k in self.output_names}


def onnx_detector(path: str, num_threads: int | None = None
                  ) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    """An export with post-processing as `infer`'s detectors are: uint8 [B, H, W, 3] of any
    size -> detection_boxes, detection_scores, detection_classes (1-based), num_detections.

    Raises:
      FileNotFoundError: no ONNX file there.
      OnnxModelError: the file has no post-processing (exported with --no_postprocess).
      OnnxUnavailableError: onnxruntime is not installed.
    """
    runner = OnnxRunner(path, num_threads=num_threads)
    if not runner.has_postprocess:
        raise OnnxModelError(
            f"{runner.path}: has outputs {runner.output_names}, not detections (exported with "
            "--no_postprocess?); run it with run_onnx or export it again with post-processing.")
    return runner


def run_onnx(path: str, images: np.ndarray) -> dict[str, np.ndarray]:
    """Runs an ONNX export (a file or its directory) once on uint8 or float images
    [B, H, W, 3] of any size; returns its outputs by name. See `OnnxRunner`."""
    return OnnxRunner(path)(images)
