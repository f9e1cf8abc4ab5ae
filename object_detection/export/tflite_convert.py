r"""Converts a TFLite-ready SavedModel (`export_tflite_graph_tf2.py`) to a .tflite file.

    python -m object_detection.export.tflite_convert --saved_model_dir=/results/tflite \
        --output_file=/results/tflite/model_int8.tflite --quantize=int8 \
        [--pipeline_config_path=...  --num_calibration_images=100]

`--quantize none` (float32), `fp16` (float16 weights) or `int8` (post-training integer
quantization, calibrated on the first images of the eval input of the pipeline config: the one
beside the SavedModel unless --pipeline_config_path is given). Input and outputs stay float32.
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

from object_detection.export.signatures import QUANTIZATIONS  # noqa: E402 (no TensorFlow)
from object_detection.utils.log import configure_cli_logging  # noqa: E402


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m object_detection.export.tflite_convert",
        description="Convert a TFLite-ready SavedModel to .tflite (float32, fp16 or int8).")
    parser.add_argument("--saved_model_dir", required=True, help="The output directory of "
                        "export_tflite_graph_tf2 (or its saved_model/).")
    parser.add_argument("--output_file", required=True, help="The .tflite file to write.")
    parser.add_argument("--quantize", default="none", choices=QUANTIZATIONS)
    parser.add_argument("--pipeline_config_path", default=None, help="int8: the config whose "
                        "eval input calibrates (default: pipeline.config beside the SavedModel).")
    parser.add_argument("--config_override", action="append", default=[],
                        help="Override of that config (e.g. the eval input path); repeatable.")
    parser.add_argument("--num_calibration_images", type=int, default=100)
    args = parser.parse_args(argv)
    if args.num_calibration_images < 1:
        parser.error("--num_calibration_images must be >= 1.")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)

    configure_cli_logging()
    from object_detection.export import exporter_lib, tflite_exporter
    from object_detection.builders import config_rules
    from object_detection.utils import config_util
    from object_detection.utils.errors import ConfigError

    try:
        saved_model = exporter_lib.saved_model_path(args.saved_model_dir)
        config_path = args.pipeline_config_path or os.path.join(
            os.path.dirname(saved_model), config_util.PIPELINE_CONFIG_NAME)
        configs = None
        if args.quantize == "int8":
            configs = config_rules.load_pipeline_configs(
                config_path, config_override=args.config_override)
        tflite_exporter.convert_for_configs(configs, saved_model, args.output_file,
                                            args.quantize, args.num_calibration_images)
    except (ConfigError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.output_file} ({args.quantize})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
