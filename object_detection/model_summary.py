r"""Prints a summary of the model a pipeline config builds.

    python -m object_detection.model_summary --pipeline_config_path configs/ssd320_full_1gpus.config
    python -m object_detection.model_summary --pipeline_config_path P --json \
        --config_override model.ssd.num_classes=3

Text: extractor, levels and their grids, anchors, parameters (trainable / total), output shapes
at batch 1. `--json`: one JSON object with `anchors`, `parameters`, `outputs`
({box_encodings, class_predictions_with_background} -> shape at batch 1) and the rest.
"""
from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

flags.DEFINE_string("pipeline_config_path", None, "Path to a pipeline.config file.")
flags.DEFINE_multi_string("config_override", [], "Dotted config override (repeatable).")
flags.DEFINE_boolean("json", False, "Print one JSON object instead of text.")
FLAGS = flags.FLAGS


def summarize(model_config) -> dict:
    """Builds the model of a DetectionModel message; returns its summary as plain values."""
    import numpy as np
    import tensorflow as tf

    from object_detection.builders import model_builder
    from object_detection.core.standard_fields import PredictionFields as P

    model = model_builder.build(model_config, is_training=False)
    model.build()
    height, width = model.image_size
    outputs = model(tf.zeros([1, height, width, 3]), training=False)
    features = model.feature_extractor(tf.zeros([1, height, width, 3]), training=False)
    trainable = int(sum(np.prod(v.shape) for v in model.trainable_variables))
    fe = model_config.ssd.feature_extractor
    return {
        "meta_architecture": "ssd",
        "feature_extractor": fe.type,
        "depth_multiplier": fe.depth_multiplier,
        "image_size": [height, width],
        "num_classes": model.num_classes,
        "levels": {str(level): list(f.shape[1:]) for level, f in features.items()},
        "anchors_per_location": model.box_predictor.num_anchors_per_location,
        "anchors": model.num_anchors,
        "parameters": int(model.count_params()),
        "trainable_parameters": trainable,
        "outputs": {
            P.box_encodings: list(outputs[P.box_encodings].shape),
            P.class_predictions_with_background:
                list(outputs[P.class_predictions_with_background].shape),
        },
    }


def main(argv):
    del argv
    from object_detection.builders import config_rules
    from object_detection.utils.errors import ConfigError

    if not FLAGS.pipeline_config_path:
        raise app.UsageError("--pipeline_config_path is required.")
    try:
        configs = config_rules.load_pipeline_configs(
            FLAGS.pipeline_config_path, config_override=FLAGS.config_override)
        summary = summarize(configs["model"])
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if FLAGS.json:
        print(json.dumps(summary))
        return 0
    print(f"pipeline config: {FLAGS.pipeline_config_path}")
    print(f"feature extractor: {summary['feature_extractor']} "
          f"(depth_multiplier {summary['depth_multiplier']})")
    print(f"input: {summary['image_size'][0]}x{summary['image_size'][1]}, "
          f"classes: {summary['num_classes']}")
    for level, shape in summary["levels"].items():
        print(f"  level {level}: {shape[0]}x{shape[1]}x{shape[2]}")
    print(f"anchors: {summary['anchors']} ({summary['anchors_per_location']} per location)")
    print(f"parameters: {summary['parameters']:,} "
          f"({summary['parameters'] / 1e6:.2f} M; trainable {summary['trainable_parameters']:,})")
    for name, shape in summary["outputs"].items():
        print(f"output {name}: {shape}")
    return 0


if __name__ == "__main__":
    app.run(main)
