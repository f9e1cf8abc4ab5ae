r"""Exports a trained detector as an ONNX file (needs the extra: pip install '.[onnx]').

    python -m object_detection.export.export_onnx \
        --pipeline_config_path=configs/ssd320_full_1gpus.config \
        --trained_checkpoint_dir=/results/SSD320_FP16_1GPU \
        --output_directory=/results/exported_onnx \
        [--opset=17] [--batch_size=1] [--max_detections=100] [--no_postprocess] \
        [--config_override=...]

Writes OUT/model.onnx and OUT/pipeline.config. The input `input_tensor` is float32
[B, H, W, 3], RGB 0..255 at the model's input size; the outputs are the SavedModel's
detection_boxes, detection_scores, detection_classes (1-based), num_detections, or with
--no_postprocess box_encodings, class_scores and anchors. See `onnx_exporter` for the contract.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Sequence

if __package__ in (None, ""):  # run as a script path: make the package importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from object_detection.export import onnx_exporter  # noqa: E402  (imports neither TF nor onnx)
from object_detection.utils.log import configure_cli_logging  # noqa: E402


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m object_detection.export.export_onnx",
        description="Export a trained checkpoint as an ONNX file (float32 model-size images in, "
                    "detections or raw box encodings and class scores out).")
    parser.add_argument("--pipeline_config_path", required=True,
                        help="pipeline.config of the trained model.")
    parser.add_argument("--trained_checkpoint_dir", default=None,
                        help="Model directory (its newest checkpoint) or checkpoint prefix. "
                             "Omitted: random weights (for tests and benchmarks only).")
    parser.add_argument("--output_directory", required=True,
                        help="Where model.onnx and pipeline.config are written.")
    parser.add_argument("--config_override", action="append", default=[],
                        help="Dotted override (e.g. model.ssd.post_processing."
                             "batch_non_max_suppression.score_threshold=0.05) or a text-proto "
                             "fragment; repeatable.")
    parser.add_argument("--opset", type=int, default=onnx_exporter.DEFAULT_OPSET,
                        help=f"ONNX opset, {onnx_exporter.MIN_OPSET}..{onnx_exporter.MAX_OPSET} "
                             f"(default {onnx_exporter.DEFAULT_OPSET}).")
    parser.add_argument("--batch_size", type=int, default=None,
                        help="Fix the batch dimension (e.g. 1 for TensorRT engines built for "
                             "one image); default: dynamic.")
    parser.add_argument("--max_detections", type=int, default=None,
                        help="Detections per image D (sets post_processing."
                             "batch_non_max_suppression.max_total_detections); default: the "
                             "config's.")
    parser.add_argument("--no_postprocess", action="store_true",
                        help="Export the network only: box_encodings [B, A, 4], class_scores "
                             "[B, A, K] and anchors [A, 4], for one's own NMS (e.g. TensorRT's).")
    args = parser.parse_args(argv)
    if not onnx_exporter.MIN_OPSET <= args.opset <= onnx_exporter.MAX_OPSET:
        parser.error(f"--opset {args.opset}: must be in {onnx_exporter.MIN_OPSET}.."
                     f"{onnx_exporter.MAX_OPSET}.")
    if args.batch_size is not None and args.batch_size < 1:
        parser.error(f"--batch_size {args.batch_size}: must be >= 1 (omit it for a dynamic "
                     "batch).")
    if args.max_detections is not None:
        if args.no_postprocess:
            parser.error("--max_detections has no effect with --no_postprocess (no NMS in the "
                         "graph).")
        if args.max_detections < 1:
            parser.error(f"--max_detections {args.max_detections}: must be >= 1.")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    configure_cli_logging()
    logging.getLogger("tf2onnx").setLevel(logging.WARNING)  # one line per converted op otherwise
    from object_detection.export import exporter_lib
    from object_detection.utils.errors import ConfigError

    overrides = list(args.config_override)
    if args.max_detections is not None:
        overrides.append(onnx_exporter.max_detections_override(args.max_detections))
    try:
        path = onnx_exporter.export_from_pipeline_file(
            args.pipeline_config_path, args.trained_checkpoint_dir, args.output_directory,
            overrides, postprocess=not args.no_postprocess, batch_size=args.batch_size,
            opset=args.opset)
    except (ConfigError, FileNotFoundError, exporter_lib.CheckpointError,
            onnx_exporter.OnnxUnavailableError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"exported ONNX model to {path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
