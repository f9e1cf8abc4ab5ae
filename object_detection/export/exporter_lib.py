"""SavedModel export of a trained detector (the OD API's `exporter_lib_v2`).

Layout written to `output_directory` (as the OD API's `exporter_main_v2.py`):

    saved_model/       the SavedModel; signature `serving_default`
    checkpoint/        ckpt-0: the model weights (no optimizer), restorable by training
                       (`fine_tune_checkpoint_type: "full"`), `infer` and this exporter
    pipeline.config    the effective pipeline config (overrides applied)

Signature `serving_default`, input `input_tensor`, by `input_type`:
  image_tensor                 uint8 [B, H, W, 3] RGB, any batch and image size (one size per
                               batch);
  float_image_tensor           float32 [B, H, W, 3], RGB pixel values 0..255, same shapes;
  encoded_image_string_tensor  string [B]: JPEG, PNG, GIF or BMP files' bytes, each image of its
                               own size;
  tf_example                   string [B]: serialized tf.Example records with `image/encoded`
                               (as the converters write), each image of its own size.
Outputs (all float32 unless said; D = max_total_detections, A = anchors, K' = class slots):
  detection_boxes [B, D, 4]           yxyx normalized to the input image;
  detection_scores [B, D];
  detection_classes [B, D]            label-map ids (1-based, as the OD API);
  num_detections [B]                  rows past it are 0;
  detection_multiclass_scores [B, D, K'], detection_anchor_indices int32 [B, D],
  raw_detection_boxes [B, A, 4], raw_detection_scores [B, A, K']   (as the OD API's; see
                               `SSDMetaArch.postprocess`).

Inside, every image is resized (aspect ratio not kept: the model's `fixed_shape_resizer` with
its `resize_method`, exactly as the input pipeline does) to the fixed size, run through the
network and post-processed (decode, sigmoid, batched NMS). Because the resize stretches the
whole image with no padding, boxes normalized to the model input are also normalized to the
original image. No op is pinned to a device, so the same SavedModel runs on a CPU or a GPU.
"""
from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

import tensorflow as tf

from object_detection.builders import model_builder
from object_detection.core.standard_fields import CLASS_ID_OFFSET
from object_detection.core.standard_fields import DetectionResultFields as D
from object_detection.core.standard_fields import TfExampleFields
from object_detection.export.signatures import (CHECKPOINT_DIRNAME, INPUT_NAME, INPUT_TYPES,
                                                SAVED_MODEL_DIRNAME, SERVING_SIGNATURE)
from object_detection.meta_architectures import checkpoint_layout, odapi_checkpoint, ssd_meta_arch
from object_detection.builders import config_rules
from object_detection.utils import config_util
from object_detection.utils.errors import ConfigError
from object_detection.utils.log import logger


def build_model(configs: Mapping[str, Any]) -> ssd_meta_arch.SSDMetaArch:
    """The detector of `configs["model"]`, with its weights created (randomly initialized)."""
    model = model_builder.build(configs["model"], is_training=False)
    model.build()
    return model


def resolve_checkpoint(checkpoint: str) -> str:
    """A checkpoint prefix from a directory (its newest checkpoint) or a prefix.

    Raises:
      FileNotFoundError: no checkpoint there.
    """
    if os.path.isdir(checkpoint):
        latest = tf.train.latest_checkpoint(checkpoint)
        if latest is None:
            raise FileNotFoundError(f"{checkpoint}: no checkpoint in this directory (expected a "
                                    "`checkpoint` index file written by training).")
        return latest
    if not tf.io.gfile.glob(checkpoint + ".index"):
        raise FileNotFoundError(f"{checkpoint}: neither a directory with checkpoints nor a "
                                "checkpoint prefix (no .index file).")
    return checkpoint


class CheckpointError(RuntimeError):
    """A checkpoint cannot give the model all its weights."""


def restore_model(model: ssd_meta_arch.SSDMetaArch, checkpoint: str) -> str:
    """Loads the model weights of a training checkpoint (optimizer slots are skipped), of this
    project or of the OD API (`model_main_tf2.py`, model zoo `checkpoint/ckpt-0`).

    Args:
      model: a built model of the checkpoint's config.
      checkpoint: a model directory or a checkpoint prefix.

    Returns:
      The checkpoint prefix read.

    Raises:
      FileNotFoundError: no checkpoint there.
      CheckpointError: the checkpoint lacks some of the model's variables (another config?).
    """
    path = resolve_checkpoint(checkpoint)
    try:  # every model variable comes from the file (this project's or the OD API's layout)
        checkpoint_layout.restore_model_weights(model, path)
    except (AssertionError, odapi_checkpoint.OdApiCheckpointError) as e:
        raise CheckpointError(f"{path}: does not match the model of this config: "
                              f"{str(e)[:500]}") from None
    logger.info("restored model weights from %s", path)
    return path


class _Untracked:
    """Holds an object without making it a trackable dependency of a tf.Module."""

    def __init__(self, value):
        self.value = value


class DetectionModule(tf.Module):
    """The detector as a SavedModel-ready module: images -> detections.

    Args:
      model: a built (and restored) `SSDMetaArch`.
      input_type: one of INPUT_TYPES, the input of `serve` and `__call__` (module docstring).
    """

    def __init__(self, model: ssd_meta_arch.SSDMetaArch, input_type: str = "image_tensor"):
        super().__init__(name="detection_module")
        if input_type not in INPUT_TYPES:
            raise ConfigError(f"--input_type {input_type!r}: not one of "
                              f"{', '.join(INPUT_TYPES)}.")
        # The SavedModel keeps the variables, not the Keras object graph: the FPN and predictor
        # hold dicts keyed by int level, which SavedModel's object graph cannot serialize (as
        # Keras' own ExportArchive, track the variables in a list and hide the layer object).
        self._holder = _Untracked(model)
        self.model_variables = list(model.variables)
        self.input_type = input_type
        body = {"image_tensor": self._from_pixels, "float_image_tensor": self._from_pixels,
                "encoded_image_string_tensor": self._from_encoded,
                "tf_example": self._from_examples}[input_type]
        spec = {"image_tensor": tf.TensorSpec([None, None, None, 3], tf.uint8, name=INPUT_NAME),
                "float_image_tensor": tf.TensorSpec([None, None, None, 3], tf.float32,
                                                    name=INPUT_NAME),
                }.get(input_type, tf.TensorSpec([None], tf.string, name=INPUT_NAME))
        self.serve = tf.function(body, input_signature=[spec], autograph=False)  # serving

    def __call__(self, input_tensor: tf.Tensor) -> dict[str, tf.Tensor]:
        return self.serve(input_tensor)

    @property
    def model(self) -> ssd_meta_arch.SSDMetaArch:
        return self._holder.value

    def detect(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        """The detections of a batch of images of one size.

        Args:
          images: uint8 (or float 0..255) [B, H, W, 3], RGB.

        Returns:
          See the module docstring (`detection_classes` 1-based, `num_detections` float32).
        """
        # The resize of the input pipeline (fixed_shape_resizer, OD API sampling grid).
        return self.detect_resized(self.model.resize_images(images))

    def detect_resized(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        """`detect` of images already at the model size (float32 [B, h, w, 3], 0..255)."""
        detections = self.model.postprocess(self.model(images, training=False),
                                            raw_outputs=True)
        outputs = {key: tf.cast(value, tf.float32) for key, value in detections.items()}
        outputs[D.detection_classes] += CLASS_ID_OFFSET
        outputs[D.detection_anchor_indices] = detections[D.detection_anchor_indices]
        return outputs

    def _from_pixels(self, input_tensor):
        return self.detect(input_tensor)

    def _decode_and_resize(self, encoded: tf.Tensor) -> tf.Tensor:
        """float32 [B, h, w, 3] from a batch of encoded images, each of its own size."""
        def one(data):
            image = tf.io.decode_image(data, channels=3, expand_animations=False)
            return self.model.resize_images(image[tf.newaxis])[0]

        height, width = self.model.image_size
        return tf.map_fn(one, encoded, fn_output_signature=tf.TensorSpec(
            [height, width, 3], tf.float32))

    def _from_encoded(self, input_tensor):
        return self.detect_resized(self._decode_and_resize(input_tensor))

    def _from_examples(self, input_tensor):
        features = tf.io.parse_example(input_tensor, {
            TfExampleFields.image_encoded: tf.io.FixedLenFeature([], tf.string)})
        return self.detect_resized(self._decode_and_resize(
            features[TfExampleFields.image_encoded]))


def export_model(model: ssd_meta_arch.SSDMetaArch, configs: Mapping[str, Any],
                 output_directory: str, input_type: str = "image_tensor") -> str:
    """Writes the SavedModel of `model` (as it is), its checkpoint/ and pipeline.config into
    `output_directory`.

    Returns:
      The SavedModel directory (`output_directory/saved_model`).
    """
    module = DetectionModule(model, input_type)
    concrete = module.serve.get_concrete_function()
    os.makedirs(output_directory, exist_ok=True)
    saved_model_dir = os.path.join(output_directory, SAVED_MODEL_DIRNAME)
    tf.saved_model.save(module, saved_model_dir, signatures={SERVING_SIGNATURE: concrete})
    write_checkpoint(model, os.path.join(output_directory, CHECKPOINT_DIRNAME))
    config_path = write_pipeline_config(configs, output_directory)
    logger.info("wrote %s (input %s), %s/ and %s", saved_model_dir, input_type,
                CHECKPOINT_DIRNAME, config_path)
    return saved_model_dir


def write_pipeline_config(configs: Mapping[str, Any], directory: str) -> str:
    """The effective pipeline config (overrides applied) as `directory/pipeline.config`, world
    readable like the export files beside it. Returns its path."""
    path = config_util.save_pipeline_config(
        config_util.create_pipeline_proto_from_configs(
            {k: v for k, v in configs.items() if not k.startswith("_")}), directory)
    os.chmod(path, 0o644)
    return path


def write_checkpoint(model: ssd_meta_arch.SSDMetaArch, directory: str) -> str:
    """The model weights as `directory/ckpt-0` (training's layout, without the optimizer);
    an existing checkpoint there is replaced. Returns the prefix."""
    if tf.io.gfile.exists(directory):
        tf.io.gfile.rmtree(directory)
    manager = tf.train.CheckpointManager(checkpoint_layout.model_checkpoint(model), directory,
                                         max_to_keep=1)
    return manager.save(checkpoint_number=0)


def export_inference_graph(configs: Mapping[str, Any], trained_checkpoint: str | None,
                           output_directory: str, input_type: str = "image_tensor") -> str:
    """Builds the model of `configs`, restores the checkpoint and exports it.

    Args:
      configs: the dict of `config_util.get_configs_from_pipeline_file`.
      trained_checkpoint: a model directory or checkpoint prefix; None exports random weights
        (tests, benchmarks).
      output_directory: created if needed; an existing export there is replaced.
      input_type: one of INPUT_TYPES.

    Returns:
      The SavedModel directory (`output_directory/saved_model`).
    """
    model = build_model(configs)
    if trained_checkpoint:
        restore_model(model, trained_checkpoint)
    else:
        logger.warning("no checkpoint given: exporting randomly initialized weights")
    return export_model(model, configs, output_directory, input_type)


def export_from_pipeline_file(pipeline_config_path: str, trained_checkpoint: str | None,
                              output_directory: str, config_override: Sequence[str] = (),
                              input_type: str = "image_tensor") -> str:
    """`export_inference_graph` from a pipeline config file and overrides."""
    configs = config_rules.load_pipeline_configs(pipeline_config_path,
                                                 config_override=list(config_override))
    return export_inference_graph(configs, trained_checkpoint, output_directory, input_type)


def saved_model_path(path: str) -> str:
    """The SavedModel directory of an export: `path` itself or `path/saved_model`."""
    if tf.io.gfile.exists(os.path.join(path, "saved_model.pb")):
        return path
    inner = os.path.join(path, SAVED_MODEL_DIRNAME)
    if tf.io.gfile.exists(os.path.join(inner, "saved_model.pb")):
        return inner
    raise FileNotFoundError(f"{path}: no saved_model.pb here nor in {inner}.")
