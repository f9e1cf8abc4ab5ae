r"""Exports a trained detector as a SavedModel, under the OD API's name and flags.

    python object_detection/exporter_main_v2.py --input_type=image_tensor \
        --pipeline_config_path=/results/pipeline.config \
        --trained_checkpoint_dir=/results --output_directory=/results/exported

The OD API TF2 tutorial command, run by `object_detection.export.exporter_main` (its options
and outputs: OUT/saved_model, OUT/checkpoint/ckpt-0, OUT/pipeline.config). `--config_override`
takes a text-proto fragment, as the OD API's. Side inputs (`--use_side_inputs`) are for models
this project does not build and are refused.
"""
from __future__ import annotations

import os
import sys

if __package__ in (None, ""):  # run as a script path: make the package importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import flags  # noqa: E402

from object_detection.export.signatures import INPUT_TYPES  # noqa: E402
from object_detection.utils import odapi_flags  # noqa: E402

FLAGS = flags.FlagValues()  # private: importable beside model_main's flags
flags.DEFINE_enum("input_type", "image_tensor", list(INPUT_TYPES), "Input of the serving "
                  "signature.", flag_values=FLAGS)
flags.DEFINE_string("pipeline_config_path", None, "pipeline.config of the trained model.",
                    flag_values=FLAGS)
flags.DEFINE_string("trained_checkpoint_dir", None, "Model directory (its newest checkpoint).",
                    flag_values=FLAGS)
flags.DEFINE_string("output_directory", None, "Where the export is written.",
                    flag_values=FLAGS)
flags.DEFINE_multi_string("config_override", [], "Text-proto fragment (or dotted override) of "
                          "the pipeline config; repeatable.", flag_values=FLAGS)
flags.DEFINE_boolean("use_side_inputs", False, "Refused: no model of this project takes side "
                     "inputs.", flag_values=FLAGS)
flags.DEFINE_string("side_input_shapes", "", "With --use_side_inputs only.", flag_values=FLAGS)
flags.DEFINE_string("side_input_types", "", "With --use_side_inputs only.", flag_values=FLAGS)
flags.DEFINE_string("side_input_names", "", "With --use_side_inputs only.", flag_values=FLAGS)


def main(argv: list[str] | None = None) -> int:
    parsed = odapi_flags.parse(FLAGS, list(argv if argv is not None else sys.argv), __doc__)
    if isinstance(parsed, int):
        return parsed
    if FLAGS.use_side_inputs or FLAGS.side_input_shapes or FLAGS.side_input_types \
            or FLAGS.side_input_names:
        print("error: --use_side_inputs: side inputs belong to context models (Context R-CNN); "
              "the SSDs of this project take images only.", file=sys.stderr)
        return 2
    for name in ("pipeline_config_path", "trained_checkpoint_dir", "output_directory"):
        if not getattr(FLAGS, name):
            print(f"error: --{name} is required.", file=sys.stderr)
            return 2
    from object_detection.export import exporter_main

    args = [f"--input_type={FLAGS.input_type}",
            f"--pipeline_config_path={FLAGS.pipeline_config_path}",
            f"--trained_checkpoint_dir={FLAGS.trained_checkpoint_dir}",
            f"--output_directory={FLAGS.output_directory}"]
    args += [f"--config_override={override}" for override in FLAGS.config_override if override]
    return exporter_main.main(args)


if __name__ == "__main__":
    sys.exit(main())
