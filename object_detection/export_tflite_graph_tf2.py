r"""Exports an SSD as a TFLite-ready SavedModel (the OD API's `export_tflite_graph_tf2.py`).

    python object_detection/export_tflite_graph_tf2.py \
        --pipeline_config_path=configs/ssd320_full_1gpus.config \
        --trained_checkpoint_dir=/results/ssd320 --output_directory=/results/tflite \
        [--max_detections=10 --ssd_use_regular_nms --config_override=...] \
        [--quantize=int8 --num_calibration_images=100]

Writes OUT/saved_model (the network without preprocessing, and the TFLite detection
post-processing op) and OUT/pipeline.config, as the OD API does; then, with `--quantize`, also
converts it to OUT/model.tflite (`none`: float32, `fp16`, `int8`: calibrated on the eval input's
images), which `python -m object_detection.export.tflite_convert` does on its own too. The
.tflite contract (input normalization, output names, 0-based classes) is in
`object_detection/export/tflite_exporter.py` and the README.
"""
from __future__ import annotations

import os
import sys

if __package__ in (None, ""):  # run as a script path: make the package importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import flags  # noqa: E402

from object_detection.export.signatures import QUANTIZATIONS  # noqa: E402
from object_detection.utils import odapi_flags  # noqa: E402
from object_detection.utils.log import configure_cli_logging  # noqa: E402

FLAGS = flags.FlagValues()  # private: importable beside model_main's flags
flags.DEFINE_string("pipeline_config_path", None, "pipeline.config of the trained model.",
                    flag_values=FLAGS)
flags.DEFINE_string("trained_checkpoint_dir", None, "Model directory (its newest checkpoint) or "
                    "checkpoint prefix. Omitted: random weights (tests, benchmarks).",
                    flag_values=FLAGS)
flags.DEFINE_string("output_directory", None, "Where saved_model/ and pipeline.config are "
                    "written.", flag_values=FLAGS)
flags.DEFINE_multi_string("config_override", [], "Text-proto fragment or dotted override of the "
                          "pipeline config; repeatable.", flag_values=FLAGS)
flags.DEFINE_integer("max_detections", 10, "Detections returned by the .tflite.",
                     flag_values=FLAGS)
flags.DEFINE_boolean("ssd_use_regular_nms", False, "Per-class NMS (as the SavedModel) instead "
                     "of the faster class-agnostic one.", flag_values=FLAGS)
flags.DEFINE_boolean("centernet_include_keypoints", False, "CenterNet only: refused (this "
                     "project builds SSDs).", flag_values=FLAGS)
flags.DEFINE_string("keypoint_label_map_path", None, "CenterNet only: refused.",
                    flag_values=FLAGS)
flags.DEFINE_enum("quantize", None, list(QUANTIZATIONS), "Also convert to "
                  "OUT/model.tflite with this quantization.", flag_values=FLAGS)
flags.DEFINE_integer("num_calibration_images", 100, "--quantize int8: images of the eval input "
                     "to calibrate on.", flag_values=FLAGS)


def main(argv: list[str] | None = None) -> int:
    parsed = odapi_flags.parse(FLAGS, list(argv if argv is not None else sys.argv), __doc__)
    if isinstance(parsed, int):
        return parsed
    for name in ("pipeline_config_path", "output_directory"):
        if not getattr(FLAGS, name):
            print(f"error: --{name} is required.", file=sys.stderr)
            return 2
    if FLAGS.centernet_include_keypoints or FLAGS.keypoint_label_map_path:
        print("error: --centernet_include_keypoints / --keypoint_label_map_path: CenterNet is "
              "not built by this project (SSD only).", file=sys.stderr)
        return 2
    if FLAGS.max_detections < 1 or FLAGS.num_calibration_images < 1:
        print("error: --max_detections and --num_calibration_images must be >= 1.",
              file=sys.stderr)
        return 2

    configure_cli_logging()
    from object_detection.export import exporter_lib, tflite_exporter
    from object_detection.builders import config_rules
    from object_detection.utils.errors import ConfigError

    try:
        configs = config_rules.load_pipeline_configs(
            FLAGS.pipeline_config_path, config_override=FLAGS.config_override)
        saved_model = tflite_exporter.export_tflite_graph(
            configs, FLAGS.trained_checkpoint_dir, FLAGS.output_directory,
            FLAGS.max_detections, FLAGS.ssd_use_regular_nms)
        print(f"exported the TFLite-ready SavedModel to {saved_model}", flush=True)
        if FLAGS.quantize:
            output = os.path.join(FLAGS.output_directory, tflite_exporter.TFLITE_FILENAME)
            tflite_exporter.convert_for_configs(configs, saved_model, output, FLAGS.quantize,
                                                FLAGS.num_calibration_images)
            print(f"wrote {output} ({FLAGS.quantize})", flush=True)
    except (ConfigError, FileNotFoundError, exporter_lib.CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
