"""Builds the training and evaluation input pipelines of a pipeline config.

Reads `train_input_reader` / `eval_input_reader` (InputReader), `train_config` (batch size,
max_number_of_boxes, data_augmentation_options) and the model's fixed input size, and hands
plain values to `data.inputs`. `utils/config_fields.py` says which InputReader fields are read
for training and which for evaluation. Each `data_augmentation_options` entry becomes one
`preprocessor.STEP_FUNCTIONS` step; proto fields map to the step's arguments as in `_STEPS`.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Mapping

import tensorflow as tf

from object_detection.builders import model_builder, plan_builder
from object_detection.data import inputs, label_map_util, preprocessor
from object_detection.protos import input_reader_pb2, preprocessor_pb2, train_pb2
from object_detection.utils.errors import ConfigError
from object_detection.utils.log import logger


def _fields(*names: str) -> Callable[[Any], dict]:
    return lambda m: {n: getattr(m, n) for n in names}


def _crop_args(m) -> dict:
    return {"min_object_covered": m.min_object_covered,
            "aspect_ratio_range": (m.min_aspect_ratio, m.max_aspect_ratio),
            "area_range": (m.min_area, m.max_area),
            "overlap_thresh": m.overlap_thresh, "clip_boxes": m.clip_boxes,
            "random_coef": m.random_coef}


def _ssd_crop_args(m) -> dict:
    if not m.operations:
        return {}
    ops = [_crop_args(op) for op in m.operations]
    return {k: tuple(op[k] for op in ops) for k in ops[0]}


def _pad_args(m) -> dict:
    args = {}
    if m.min_image_height or m.min_image_width:
        args["min_image_size"] = (m.min_image_height, m.min_image_width)
    if m.max_image_height or m.max_image_width:
        args["max_image_size"] = (m.max_image_height, m.max_image_width)
    if m.pad_color:
        args["pad_color"] = tuple(m.pad_color)
    return args


def _jitter_args(m) -> dict:
    mode = preprocessor_pb2.RandomJitterBoxes.JitterMode.Name(m.jitter_mode).lower()
    return {"ratio": m.ratio, "jitter_mode": mode}


def _flip_args(m) -> dict:
    if len(m.keypoint_flip_permutation):
        raise ValueError("keypoint_flip_permutation: keypoints are not supported.")
    return {"probability": m.probability}


# OD API step name -> proto message -> keyword arguments of preprocessor.STEP_FUNCTIONS[name].
_STEPS: dict[str, Callable[[Any], dict]] = {
    "random_horizontal_flip": _flip_args,
    "random_vertical_flip": _flip_args,
    "random_rgb_to_gray": _fields("probability"),
    "random_adjust_brightness": _fields("max_delta"),
    "random_adjust_contrast": _fields("min_delta", "max_delta"),
    "random_adjust_hue": _fields("max_delta"),
    "random_adjust_saturation": _fields("min_delta", "max_delta"),
    "random_distort_color": _fields("color_ordering"),
    "random_jitter_boxes": _jitter_args,
    "random_crop_image": _crop_args,
    "random_pad_image": _pad_args,
    "ssd_random_crop": _ssd_crop_args,
}


def augmentation_steps(train_config: train_pb2.TrainConfig,
                       path: str = "train_config.data_augmentation_options"
                       ) -> list[tuple[str, dict]]:
    """data_augmentation_options -> [(step name, kwargs)], validated before any tracing."""
    steps = []
    for i, option in enumerate(train_config.data_augmentation_options):
        which = option.WhichOneof("preprocessing_step")
        where = f"{path}[{i}].{which}"
        if which not in _STEPS or which not in preprocessor.STEP_FUNCTIONS:
            raise ConfigError(f"{where}: is not supported; supported steps: "
                              f"{sorted(set(_STEPS) & set(preprocessor.STEP_FUNCTIONS))}.")
        try:
            kwargs = _STEPS[which](getattr(option, which))
            preprocessor.check_steps([(which, kwargs)])
        except ValueError as e:
            raise ConfigError(f"{where}: {e}") from None
        steps.append((which, kwargs))
    return steps


def _input_paths(reader: input_reader_pb2.InputReader, path: str) -> list[str]:
    which = reader.WhichOneof("input_reader")
    if which != "tf_record_input_reader":
        raise ConfigError(f"{path}: {which!r} is not supported; expected tf_record_input_reader.")
    patterns = list(reader.tf_record_input_reader.input_path)
    if not patterns:
        raise ConfigError(f"{path}.tf_record_input_reader.input_path: is empty.")
    files = [f for p in patterns for f in tf.io.gfile.glob(p)]
    if not files:
        raise ConfigError(f"{path}.tf_record_input_reader.input_path: no file matches "
                          f"{patterns}.")
    return patterns


def _sample_weights(reader: input_reader_pb2.InputReader, patterns: list[str],
                    path: str) -> list[float] | None:
    """`sample_from_datasets_weights`, checked: one weight >= 0 per input_path entry, sum > 0.

    OD API semantics: each input_path entry (a glob) is read as its own dataset, and the
    datasets are interleaved at random in proportion to their weights
    (`tf.data.Dataset.sample_from_datasets`); an entry of weight 0 is not read.

    Returns:
      The weights, or None when the field is empty (all files read as one dataset).
    """
    weights = [float(w) for w in reader.sample_from_datasets_weights]
    if not weights:
        return None
    field = f"{path}.sample_from_datasets_weights"
    if len(weights) != len(patterns):
        raise ConfigError(
            f"{field}: {len(weights)} weights for {len(patterns)} "
            f"{path}.tf_record_input_reader.input_path entries; give one weight per entry "
            f"(input_path: {patterns}).")
    if not all(math.isfinite(w) and w >= 0 for w in weights) or sum(weights) <= 0:
        raise ConfigError(f"{field}: got {weights}; each weight must be >= 0 and their sum "
                          "> 0.")
    for pattern, weight in zip(patterns, weights):
        if weight > 0 and not tf.io.gfile.glob(pattern):
            raise ConfigError(f"{path}.tf_record_input_reader.input_path: no file matches "
                              f"{pattern!r} (sample_from_datasets_weights gives it {weight:g}).")
    return weights


def _check_label_map(reader, num_classes: int, path: str) -> None:
    if not reader.label_map_path:
        return
    if not tf.io.gfile.exists(reader.label_map_path):
        raise ConfigError(f"{path}.label_map_path: {reader.label_map_path!r} does not exist.")
    label_map_util.check_num_classes(reader.label_map_path, num_classes,
                                     field=f"{path}.label_map_path")


def train_dataset_fn(configs: Mapping[str, Any], on_corrupt: str = "skip",
                     deterministic: bool = False, seed: int | None = None,
                     corrupt_counter: inputs.CorruptRecordCounter | None = None):
    """fn(input_context) -> the training tf.data.Dataset of this input pipeline.

    Every dataset the fn builds counts its skipped records in one `CorruptRecordCounter`, the
    fn's `corrupt_records` attribute: `corrupt_counter` if given, else a new one.
    """
    counter = corrupt_counter if corrupt_counter is not None else inputs.CorruptRecordCounter()
    train_config = configs["train_config"]
    reader = configs["train_input_config"]
    model_config = configs["model"]
    path = "train_input_reader"
    patterns = _input_paths(reader, path)
    _check_label_map(reader, model_config.ssd.num_classes, path)
    weights = _sample_weights(reader, patterns, path)
    steps = augmentation_steps(train_config)
    height, width = model_builder.image_size(model_config.ssd)
    # As the OD API's training input: the reader's own max_number_of_boxes is for evaluation.
    max_boxes = plan_builder.train_plan(train_config).max_number_of_boxes
    if reader.sample_1_of_n_examples > 1:
        raise ConfigError(f"{path}.sample_1_of_n_examples: is not supported for training.")

    def dataset_fn(input_context: tf.distribute.InputContext | None = None) -> tf.data.Dataset:
        batch_size = int(train_config.batch_size)  # per replica, as in the seed's configs
        return inputs.build_train_dataset(
            patterns, batch_size=batch_size, image_size=(height, width), max_boxes=max_boxes,
            augmentations=steps, num_classes=model_config.ssd.num_classes,
            shuffle=reader.shuffle, shuffle_buffer_size=reader.shuffle_buffer_size,
            sample_weights=weights,
            num_readers=reader.num_readers, deterministic=deterministic, seed=seed,
            input_context=input_context, on_corrupt=on_corrupt, corrupt_counter=counter,
            resize_method=model_builder.resize_method(model_config.ssd))

    dataset_fn.corrupt_records = counter
    return dataset_fn


def check_eval_input(configs: Mapping[str, Any]) -> list[str]:
    """The eval reader's input patterns, checked (a reader, files that match, its label map).

    Raises:
      ConfigError: naming the `eval_input_reader` field at fault.
    """
    reader = configs["eval_input_config"]
    path = "eval_input_reader"
    if reader is None:
        raise ConfigError("eval_input_reader: is missing; evaluation needs one.")
    patterns = _input_paths(reader, path)
    _check_label_map(reader, configs["model"].ssd.num_classes, path)
    return patterns


def eval_dataset(configs: Mapping[str, Any], num_shards: int = 1, shard_index: int = 0,
                 sample_1_of_n: int = 1, on_corrupt: str = "skip",
                 corrupt_counter: inputs.CorruptRecordCounter | None = None
                 ) -> tf.data.Dataset:
    """This worker's share of the evaluation data, without augmentation.

    Every record is read once: `sample_from_datasets_weights` is for training (the check at
    load refuses it on the eval reader; the training reader's, with --eval_training_data, does
    not apply). Ground truth is padded to the reader's `max_number_of_boxes` (OD API).
    """
    reader = configs["eval_input_config"]
    model_config = configs["model"]
    patterns = check_eval_input(configs)
    height, width = model_builder.image_size(model_config.ssd)
    plan = plan_builder.eval_plan(configs["eval_config"], configs["train_config"])
    reader_plan = plan_builder.input_plan(reader, "eval_input_reader")
    context = None
    if num_shards > 1:
        context = tf.distribute.InputContext(num_input_pipelines=num_shards,
                                             input_pipeline_id=shard_index)
    return inputs.build_eval_dataset(
        patterns, batch_size=plan.batch_size, image_size=(height, width),
        max_boxes=reader_plan.max_number_of_boxes,
        num_classes=model_config.ssd.num_classes,
        num_readers=max(1, reader.num_readers),
        sample_1_of_n=max(sample_1_of_n, reader_plan.sample_1_of_n_examples),
        input_context=context, on_corrupt=on_corrupt, corrupt_counter=corrupt_counter,
        resize_method=model_builder.resize_method(model_config.ssd))
