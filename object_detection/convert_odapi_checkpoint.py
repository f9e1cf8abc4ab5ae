r"""Converts an OD API checkpoint (TF2 or TF1) into this project's checkpoint layout, with a report.

    python -m object_detection.convert_odapi_checkpoint \
        --pipeline_config_path configs/ssd320_full_1gpus.config \
        --odapi_checkpoint /models/ssd_resnet50_v1_fpn_640x640/checkpoint/ckpt-0 \
        --output_dir /results/converted [--report_file mapping.json]

The input is what the OD API's `model_main_tf2.py` writes or a model zoo `checkpoint/ckpt-0`
(for a `_keras` extractor), or what the TF1 OD API (the seed) writes, `model.ckpt-N` (for a TF1
extractor such as `ssd_resnet50_v1_fpn`); a directory is read as its newest checkpoint. The output directory holds a checkpoint that
training (`fine_tune_checkpoint`), evaluation (`--checkpoint_dir`), export and inference read.
Every variable is mapped by its OD API name (`meta_architectures.odapi_checkpoint`); the report
counts them and, with `--report_file`, lists each (OD API name -> variable path). A class head of
another `num_classes` than the config's is left out (kept at its initial value) and said so;
any other variable that does not fit stops the conversion with one line naming it (exit 2).
Nothing is written then.
"""
from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402


def convert(configs, odapi_checkpoint_path: str, output_dir: str) -> dict:
    """Reads the OD API checkpoint into the config's model and writes it in our layout.

    Returns:
      {"checkpoint": written prefix, "loaded": n, "left_out": [...], "unexpected": [...],
       "mapping": {OD API name: variable path}}.
    """
    import tensorflow as tf

    from object_detection.builders import model_builder
    from object_detection.meta_architectures import checkpoint_layout, odapi_checkpoint

    path = odapi_checkpoint_path
    if os.path.isdir(path):
        latest = tf.train.latest_checkpoint(path)
        if latest is None:
            raise FileNotFoundError(f"--odapi_checkpoint {path}: no checkpoint in this "
                                    "directory.")
        path = latest
    if not tf.io.gfile.glob(path + ".index"):
        raise FileNotFoundError(f"--odapi_checkpoint {path}: no such checkpoint (no .index).")
    layout = odapi_checkpoint.checkpoint_layout(path)
    if layout == "slim":
        raise odapi_checkpoint.OdApiCheckpointError(
            f"--odapi_checkpoint {path}: a TF-slim classification checkpoint (a backbone only); "
            "give it to training as fine_tune_checkpoint with fine_tune_checkpoint_type: "
            "classification.")
    if layout is None:
        raise odapi_checkpoint.OdApiCheckpointError(
            f"--odapi_checkpoint {path}: not an OD API checkpoint (neither TF2 "
            "model/_feature_extractor/... nor TF1 FeatureExtractor/... variables).")
    model = model_builder.build(configs["model"], is_training=False)
    model.build()
    report = odapi_checkpoint.restore(model, path, allow_other_num_classes=True)
    names = (odapi_checkpoint.odapi_names(model) if layout == "tf2"
             else odapi_checkpoint.tf1_names(model))
    manager = tf.train.CheckpointManager(checkpoint_layout.model_checkpoint(model), output_dir,
                                         max_to_keep=1, checkpoint_name="ckpt")
    written = manager.save(checkpoint_number=report.step or 0)
    return {"checkpoint": written, "odapi_checkpoint": path, "loaded": len(report.loaded),
            "left_out": list(report.left_out), "unexpected": list(report.unexpected),
            "mapping": {name: names[name].path for name in report.loaded},
            "summary": report.summary()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description="Converts an OD API checkpoint (TF2 or TF1) into this project's layout.")
    parser.add_argument("--pipeline_config_path", required=True,
                        help="pipeline config of the checkpoint's model")
    parser.add_argument("--odapi_checkpoint", required=True,
                        help="OD API checkpoint (TF2 or TF1) prefix or directory")
    parser.add_argument("--output_dir", required=True,
                        help="where to write the converted checkpoint")
    parser.add_argument("--report_file", default=None,
                        help="optional JSON file: every OD API name -> variable path")
    parser.add_argument("--config_override", action="append", default=[],
                        help="dotted config override (repeatable)")
    FLAGS = parser.parse_args(argv)
    from object_detection.meta_architectures.odapi_checkpoint import OdApiCheckpointError
    from object_detection.builders import config_rules
    from object_detection.utils.errors import ConfigError

    try:
        configs = config_rules.load_pipeline_configs(
            FLAGS.pipeline_config_path, config_override=FLAGS.config_override)
        result = convert(configs, FLAGS.odapi_checkpoint, FLAGS.output_dir)
    except (ConfigError, OdApiCheckpointError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{result['odapi_checkpoint']}: {result['summary']}")
    for line in result["left_out"]:
        print(f"  left out: {line}")
    for name in result["unexpected"]:
        print(f"  unused in the file: {name}")
    print(f"wrote {result['checkpoint']}")
    if FLAGS.report_file:
        with open(FLAGS.report_file, "w") as f:
            json.dump(result, f, indent=1)
        print(f"mapping of every variable: {FLAGS.report_file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
