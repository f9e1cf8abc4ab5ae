r"""Trains and evaluates the detector a pipeline config describes (the seed's entry point).

    python object_detection/model_main.py --pipeline_config_path=configs/ssd320_full_1gpus.config \
        --model_dir=/results --num_train_steps=100000 --eval_count=1 --amp
    python -m object_detection.model_main ... --checkpoint_dir=/results --run_once   # eval only

Distributed: started by `horovodrun`/`mpirun` it uses Horovod; with TF_CONFIG (or under Slurm
with several tasks) MultiWorkerMirroredStrategy; with several local GPUs MirroredStrategy.
`--engine` and `--strategy` force a choice.
"""
from __future__ import annotations

import os
import sys

if __package__ in (None, ""):  # run as a script path: make the package importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging as absl_logging  # noqa: E402

flags.DEFINE_string("pipeline_config_path", None, "Path to a pipeline.config file.")
flags.DEFINE_string("model_dir", None, "Where checkpoints, summaries and the effective "
                    "pipeline.config are written; training resumes from it.")
flags.DEFINE_integer("num_train_steps", None, "Training steps (default train_config.num_steps).")
flags.DEFINE_integer("eval_count", 1, "How many evaluations to spread over training (0: none).")
flags.DEFINE_string("checkpoint_dir", None, "Evaluation only: evaluate the checkpoints of this "
                    "directory (waiting for new ones unless --run_once).")
flags.DEFINE_boolean("run_once", False, "With --checkpoint_dir: evaluate the newest checkpoint "
                     "once and exit.")
flags.DEFINE_integer("sample_1_of_n_eval_examples", 1, "Evaluate one example of every n.")
flags.DEFINE_boolean("amp", False, "Mixed precision: float16 with loss scaling on GPUs without "
                     "bfloat16, bfloat16 elsewhere.")
flags.DEFINE_enum("amp_on_cpu", "auto", ["auto", "bfloat16"], "--amp on a CPU: auto: bfloat16 "
                  "only where it is native (avx512_bf16 / AMX), else float32; bfloat16: always.")
flags.DEFINE_boolean("allow_xla", False, "Compile the train step with XLA.")
flags.DEFINE_string("raport_file", None, "DLLogger-style JSON-lines report file.")
flags.DEFINE_multi_string("config_override", [], "Dotted override of the pipeline config, e.g. "
                          "train_config.batch_size=8 (repeatable), or a text-proto fragment.")
flags.DEFINE_enum("engine", "auto", ["auto", "tf", "horovod"], "Distribution engine; auto: "
                  "Horovod when launched by horovodrun/mpirun, else tf.distribute.")
flags.DEFINE_enum("strategy", "auto", ["auto", "default", "mirrored", "multi_worker"],
                  "tf.distribute strategy; auto: multi_worker with TF_CONFIG or Slurm, "
                  "mirrored with several GPUs, else default.")
flags.DEFINE_integer("checkpoint_every_n", 1000, "Save a checkpoint every n steps.")
flags.DEFINE_integer("keep_checkpoint_max", 5, "Checkpoints kept in model_dir.")
flags.DEFINE_integer("log_every_n", 10, "Progress line and report record every n steps.")
flags.DEFINE_enum("on_corrupt", "skip", ["skip", "stop"], "A corrupt record in the input (an "
                  "unparsable tf.Example or image, or class labels outside 1..num_classes): "
                  "skip it (counted and reported) or stop with its file and record index.")
flags.DEFINE_boolean("include_metrics_per_category", False, "Also report a per-category table "
                     "(AP, AP@0.5, AP@0.75, AR@100, ground-truth count) and PR curves.")
flags.DEFINE_enum("eval_backend", "pycocotools", ["pycocotools", "faster_coco_eval"],
                  "COCO metrics engine: pycocotools (the reference) or faster-coco-eval (the same "
                  "numbers, faster).")
flags.DEFINE_integer("early_stop_patience", 0, "Stop training after this many evaluations "
                     "without improvement of --early_stop_metric (0: never); best/ keeps the "
                     "best checkpoint.")
flags.DEFINE_string("early_stop_metric", "", "Metric watched by early stopping and best/ "
                    "(e.g. mAP, mAP@0.5, PascalBoxes_Precision/mAP@0.5IOU, Loss/total_loss, "
                    "which is minimized); default: the first metrics set's mAP.")
flags.DEFINE_integer("eval_timeout", 3600, "Continuous evaluation (--checkpoint_dir without "
                     "--run_once): seconds to wait for a new checkpoint before exiting.")
flags.DEFINE_boolean("random_data", False, "Benchmark on synthetic batches (no dataset needed).")
flags.DEFINE_integer("benchmark_last_k", 0, "Report the mean img/s of the last k steps "
                     "(0: every step after the first).")
flags.DEFINE_integer("steps_per_loop", 1, "Training steps per call of the compiled loop: the "
                     "host waits once per N steps (fewer round trips: faster on GPUs and for "
                     "small models); every step's loss is still logged and checked, and "
                     "checkpoints and evaluations fall on the same steps.")
flags.DEFINE_integer("cpu_replicas", 0, "With --strategy mirrored on a host without GPUs: split "
                     "the CPU into this many logical devices, one replica each (tests, CPU "
                     "hosts); 0: off.")
flags.DEFINE_float("collective_timeout_s", 300.0, "Multi-worker: seconds before a collective "
                   "with a dead peer fails instead of hanging.")
flags.DEFINE_boolean("eval_training_data", False, "Evaluate on the training input instead.")

FLAGS = flags.FLAGS
_FLAG_MINIMUMS = {"checkpoint_every_n": 1, "log_every_n": 1, "keep_checkpoint_max": 1,
                  "sample_1_of_n_eval_examples": 1, "num_train_steps": 0, "eval_count": 0,
                  "benchmark_last_k": 0, "steps_per_loop": 1, "cpu_replicas": 0, "early_stop_patience": 0,
                  "eval_timeout": 0}


def main(argv):
    del argv
    # The config is read before TensorFlow is imported: a config error costs a second.
    from object_detection.utils.errors import (ConfigError, DataError, PeerFailureError,
                                               TrainingDivergedError)
    from object_detection.utils.log import configure_cli_logging

    configure_cli_logging()  # under absl: its handler for records, stdout for console lines
    if not FLAGS.pipeline_config_path:
        raise app.UsageError("--pipeline_config_path is required.")
    if not FLAGS.model_dir and not FLAGS.checkpoint_dir:
        raise app.UsageError("--model_dir is required (or --checkpoint_dir for evaluation).")
    try:
        _check_flags()
        configs = _load_configs()
        _run(configs)
    except (ConfigError, DataError, FileNotFoundError, TrainingDivergedError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except PeerFailureError as e:
        print(f"error: {e}", file=sys.stderr)
        return 3
    return 0


def _check_flags() -> None:
    """The flags' own rules, checked before anything is read or built.

    Raises:
      ConfigError: naming the flag.
    """
    from object_detection.utils.errors import ConfigError

    for flag, least in _FLAG_MINIMUMS.items():
        value = getattr(FLAGS, flag)
        if value is not None and value < least:
            raise ConfigError(f"--{flag}: must be >= {least}, got {value}.")
    if FLAGS.early_stop_patience and not FLAGS.eval_count:
        raise ConfigError("--early_stop_patience: needs evaluations during training "
                          "(--eval_count >= 1).")
    if FLAGS.collective_timeout_s <= 0:
        raise ConfigError(
            f"--collective_timeout_s: must be > 0, got {FLAGS.collective_timeout_s}.")
    if FLAGS.cpu_replicas > 1 and FLAGS.strategy != "mirrored":
        raise ConfigError("--cpu_replicas: needs --strategy mirrored.")


def _load_configs() -> dict:
    """The pipeline config with its overrides, every value rule and the training rules
    checked (protobuf only: no TensorFlow yet)."""
    from object_detection.builders import config_rules

    configs = config_rules.load_pipeline_configs(
        FLAGS.pipeline_config_path, config_override=FLAGS.config_override)
    config_rules.check_for_training(configs)
    if FLAGS.eval_training_data:
        configs["eval_input_config"] = configs["train_input_config"]
    return configs


def _run(configs: dict) -> None:
    """Sets up devices, precision and the engine, then trains or evaluates.

    Raises:
      ConfigError, DataError, FileNotFoundError, TrainingDivergedError: a user mistake or a
        diverged run, said in one line by `main`.
      PeerFailureError: a peer worker died or became unreachable.
    """
    from object_detection.data import inputs
    from object_detection.training import distribution, precision, train_lib

    if FLAGS.cpu_replicas > 1:
        distribution.split_cpu(FLAGS.cpu_replicas)
    policy = precision.set_policy(
        FLAGS.amp, configs["train_config"].use_bfloat16,
        cpu_bfloat16="force" if FLAGS.amp_on_cpu == "bfloat16" else "auto")
    engine = distribution.make_engine(FLAGS.engine, FLAGS.strategy,
                                      collective_timeout_s=FLAGS.collective_timeout_s)
    options = _run_options(amp=policy != "float32")
    # --on_corrupt=stop: the input pipeline's DataError names the file and the record; a dead or
    # unreachable peer: one line instead of hanging or a traceback wall.
    with engine.raising_peer_failures(), inputs.raising_data_errors():
        if FLAGS.checkpoint_dir:
            train_lib.evaluate_checkpoints(configs, options, engine, FLAGS.checkpoint_dir,
                                           run_once=FLAGS.run_once)
        else:
            train_lib.train(configs, options, engine)


def _run_options(amp: bool):
    """The run's `train_lib.RunOptions` from the flags."""
    from object_detection.training import train_lib

    return train_lib.RunOptions(
        model_dir=FLAGS.model_dir or FLAGS.checkpoint_dir,
        num_train_steps=FLAGS.num_train_steps,
        eval_count=FLAGS.eval_count,
        amp=amp,
        allow_xla=FLAGS.allow_xla,
        raport_file=FLAGS.raport_file,
        sample_1_of_n_eval_examples=FLAGS.sample_1_of_n_eval_examples,
        checkpoint_every_n=FLAGS.checkpoint_every_n,
        keep_checkpoint_max=FLAGS.keep_checkpoint_max,
        log_every_n=FLAGS.log_every_n,
        on_corrupt=FLAGS.on_corrupt,
        include_metrics_per_category=FLAGS.include_metrics_per_category,
        eval_backend=FLAGS.eval_backend,
        early_stop_patience=FLAGS.early_stop_patience,
        early_stop_metric=FLAGS.early_stop_metric,
        eval_timeout_s=float(FLAGS.eval_timeout),
        random_data=FLAGS.random_data,
        benchmark_last_k=FLAGS.benchmark_last_k,
        steps_per_loop=FLAGS.steps_per_loop,
    )


def run():
    absl_logging.set_verbosity(absl_logging.INFO)
    app.run(main)


if __name__ == "__main__":
    run()
