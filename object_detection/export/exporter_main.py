r"""Exports a trained detector as a SavedModel (the OD API's `exporter_main_v2.py`).

    python -m object_detection.export.exporter_main \
        --pipeline_config_path=configs/ssd320_full_1gpus.config \
        --trained_checkpoint_dir=/results/SSD320_FP16_1GPU \
        --output_directory=/results/exported [--config_override=...]

Writes OUT/saved_model (signature `serving_default`: images (`--input_type`) -> detection_boxes,
detection_scores, detection_classes (1-based), num_detections and the OD API's extra outputs),
OUT/checkpoint/ckpt-0 and OUT/pipeline.config. See `exporter_lib` for the contract.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

if __package__ in (None, ""):  # run as a script path: make the package importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from object_detection.export.signatures import INPUT_TYPES  # noqa: E402 (no TensorFlow)
from object_detection.utils.log import configure_cli_logging  # noqa: E402


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m object_detection.export.exporter_main",
        description="Export a trained checkpoint as a SavedModel with a serving_default "
                    "signature (uint8 images of any size in, detections out).")
    parser.add_argument("--pipeline_config_path", required=True,
                        help="pipeline.config of the trained model.")
    parser.add_argument("--trained_checkpoint_dir", default=None,
                        help="Model directory (its newest checkpoint) or checkpoint prefix. "
                             "Omitted: random weights (for tests and benchmarks only).")
    parser.add_argument("--output_directory", required=True,
                        help="Where saved_model/, checkpoint/ and pipeline.config are written.")
    parser.add_argument("--config_override", action="append", default=[],
                        help="Dotted override (e.g. model.ssd.post_processing."
                             "batch_non_max_suppression.score_threshold=0.05) or a text-proto "
                             "fragment; repeatable.")
    parser.add_argument("--input_type", default="image_tensor", choices=INPUT_TYPES,
                        help="image_tensor: uint8 [B, H, W, 3]; float_image_tensor: float32 "
                             "[B, H, W, 3] 0..255; encoded_image_string_tensor: string [B] "
                             "(JPEG/PNG bytes); tf_example: string [B] serialized tf.Example.")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    configure_cli_logging()
    from object_detection.export import exporter_lib
    from object_detection.utils.errors import ConfigError

    try:
        path = exporter_lib.export_from_pipeline_file(
            args.pipeline_config_path, args.trained_checkpoint_dir, args.output_directory,
            args.config_override, args.input_type)
    except (ConfigError, FileNotFoundError, exporter_lib.CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"exported SavedModel ({args.input_type}) to {path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
