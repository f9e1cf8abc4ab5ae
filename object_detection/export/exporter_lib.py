"""SavedModel export of a trained detector (OD API `exporter_lib_v2`, input type image_tensor).

Layout written to `output_directory` (as the OD API's `exporter_main_v2.py`):

    saved_model/       the SavedModel; signature `serving_default`
    pipeline.config    the effective pipeline config (overrides applied)

Signature `serving_default`:
  input  `input_tensor`: uint8 [B, H, W, 3], RGB, any batch size and any image size
         (all images of one batch share H and W);
  output `detection_boxes` float32 [B, D, 4] yxyx normalized to the input image,
         `detection_scores` float32 [B, D], `detection_classes` float32 [B, D] label-map ids
         (1-based, as the OD API), `num_detections` float32 [B]; rows past num_detections are 0.

Inside, the images are resized (aspect ratio not kept: the model's
`fixed_shape_resizer` with its `resize_method`, exactly as the input pipeline does) to the fixed
size, run through the network and post-processed (decode, sigmoid, batched NMS). Because the
resize stretches the whole image with no padding, boxes normalized to the model input are also
normalized to the original image. No op is pinned to a device, so the same SavedModel runs on a
CPU or a GPU.
"""
from __future__ import annotations

import logging
import os
from typing import Any, Mapping, Sequence

import tensorflow as tf

from object_detection.builders import model_builder
from object_detection.core.standard_fields import DetectionResultFields as D
from object_detection.meta_architectures import odapi_checkpoint, ssd_meta_arch
from object_detection.training import checkpoints
from object_detection.utils import config_util

logger = logging.getLogger("object_detection")

CLASS_ID_OFFSET = 1  # model classes are 0-based; label-map ids (and exported classes) 1-based
INPUT_NAME = "input_tensor"  # the OD API's name of the image_tensor input
SERVING_SIGNATURE = "serving_default"
SAVED_MODEL_DIRNAME = "saved_model"


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
        checkpoints.restore_model_weights(model, path)
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
    """The detector as a SavedModel-ready module: uint8 images of any size -> detections.

    Args:
      model: a built (and restored) `SSDMetaArch`.
    """

    def __init__(self, model: ssd_meta_arch.SSDMetaArch):
        super().__init__(name="detection_module")
        # The SavedModel keeps the variables, not the Keras object graph: the FPN and predictor
        # hold dicts keyed by int level, which SavedModel's object graph cannot serialize (as
        # Keras' own ExportArchive, track the variables in a list and hide the layer object).
        self._holder = _Untracked(model)
        self.model_variables = list(model.variables)

    @property
    def model(self) -> ssd_meta_arch.SSDMetaArch:
        return self._holder.value

    def detect(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        """The detections of a batch (the body of the serving signature).

        Args:
          images: uint8 (or float 0..255) [B, H, W, 3], RGB.

        Returns:
          See the module docstring (`detection_classes` 1-based, `num_detections` float32).
        """
        # The resize of the input pipeline (fixed_shape_resizer, OD API sampling grid).
        images = self.model.resize_images(images)  # [B, h, w, 3] float32
        detections = self.model.postprocess(self.model(images, training=False))
        return {
            D.detection_boxes: tf.cast(detections[D.detection_boxes], tf.float32),
            D.detection_scores: tf.cast(detections[D.detection_scores], tf.float32),
            D.detection_classes: tf.cast(detections[D.detection_classes], tf.float32)
            + CLASS_ID_OFFSET,
            D.num_detections: tf.cast(detections[D.num_detections], tf.float32),
        }

    @tf.function(input_signature=[
        tf.TensorSpec([None, None, None, 3], tf.uint8, name=INPUT_NAME)])
    def __call__(self, input_tensor: tf.Tensor) -> dict[str, tf.Tensor]:
        return self.detect(input_tensor)


def export_model(model: ssd_meta_arch.SSDMetaArch, configs: Mapping[str, Any],
                 output_directory: str) -> str:
    """Writes the SavedModel of `model` (as it is) and pipeline.config into `output_directory`.

    Returns:
      The SavedModel directory (`output_directory/saved_model`).
    """
    module = DetectionModule(model)
    concrete = module.__call__.get_concrete_function()
    os.makedirs(output_directory, exist_ok=True)
    saved_model_dir = os.path.join(output_directory, SAVED_MODEL_DIRNAME)
    tf.saved_model.save(module, saved_model_dir, signatures={SERVING_SIGNATURE: concrete})
    config_path = config_util.save_pipeline_config(
        config_util.create_pipeline_proto_from_configs(
            {k: v for k, v in configs.items() if not k.startswith("_")}),
        output_directory)
    os.chmod(config_path, 0o644)  # readable like the SavedModel files beside it
    logger.info("wrote %s and %s", saved_model_dir, config_path)
    return saved_model_dir


def export_inference_graph(configs: Mapping[str, Any], trained_checkpoint: str | None,
                           output_directory: str) -> str:
    """Builds the model of `configs`, restores the checkpoint and exports it.

    Args:
      configs: the dict of `config_util.get_configs_from_pipeline_file`.
      trained_checkpoint: a model directory or checkpoint prefix; None exports random weights
        (tests, benchmarks).
      output_directory: created if needed; an existing export there is replaced.

    Returns:
      The SavedModel directory (`output_directory/saved_model`).
    """
    model = build_model(configs)
    if trained_checkpoint:
        restore_model(model, trained_checkpoint)
    else:
        logger.warning("no checkpoint given: exporting randomly initialized weights")
    return export_model(model, configs, output_directory)


def export_from_pipeline_file(pipeline_config_path: str, trained_checkpoint: str | None,
                              output_directory: str,
                              config_override: Sequence[str] = ()) -> str:
    """`export_inference_graph` from a pipeline config file and overrides."""
    configs = config_util.get_configs_from_pipeline_file(pipeline_config_path,
                                                         config_override=list(config_override))
    return export_inference_graph(configs, trained_checkpoint, output_directory)


def saved_model_path(path: str) -> str:
    """The SavedModel directory of an export: `path` itself or `path/saved_model`."""
    if tf.io.gfile.exists(os.path.join(path, "saved_model.pb")):
        return path
    inner = os.path.join(path, SAVED_MODEL_DIRNAME)
    if tf.io.gfile.exists(os.path.join(inner, "saved_model.pb")):
        return inner
    raise FileNotFoundError(f"{path}: no saved_model.pb here nor in {inner}.")
