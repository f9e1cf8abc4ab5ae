r"""Trains or evaluates a detector, under the OD API's TF2 name and flags.

    python object_detection/model_main_tf2.py --pipeline_config_path=P --model_dir=M \
        [--num_train_steps=N --checkpoint_every_n=1000 --num_workers=1]        # train
    python object_detection/model_main_tf2.py --pipeline_config_path=P --model_dir=M \
        --checkpoint_dir=M [--eval_timeout=3600 --sample_1_of_n_eval_examples=1]  # evaluate

The OD API TF2 tutorial commands, run by `object_detection.model_main` with the OD API's
behaviour: training does not evaluate (the OD API's does not); with `--checkpoint_dir` every new
checkpoint there is evaluated until none comes for `--eval_timeout` seconds (or training ends);
`--eval_on_train_data` evaluates the training input, one example in
`--sample_1_of_n_eval_on_train_examples`; `--num_workers` > 1 is MultiWorkerMirroredStrategy
(TF_CONFIG). TPUs are refused. Any other flag (e.g. `--amp`, `--eval_count`) is passed on to
model_main as it is.
"""
from __future__ import annotations

import os
import sys

if __package__ in (None, ""):  # run as a script path: make the package importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import flags  # noqa: E402

from object_detection.utils import odapi_flags  # noqa: E402

FLAGS = flags.FlagValues()  # private: model_main's flags live in the global registry
flags.DEFINE_string("pipeline_config_path", None, "Path to the pipeline config.",
                    flag_values=FLAGS)
flags.DEFINE_integer("num_train_steps", None, "Training steps (default "
                     "train_config.num_steps).", flag_values=FLAGS)
flags.DEFINE_boolean("eval_on_train_data", False, "Evaluate on the training input.",
                     flag_values=FLAGS)
flags.DEFINE_integer("sample_1_of_n_eval_examples", None, "Evaluate one example of every n.",
                     flag_values=FLAGS)
flags.DEFINE_integer("sample_1_of_n_eval_on_train_examples", 5, "With --eval_on_train_data: "
                     "one training example of every n.", flag_values=FLAGS)
flags.DEFINE_string("model_dir", None, "Checkpoints and summaries are written here.",
                    flag_values=FLAGS)
flags.DEFINE_string("checkpoint_dir", None, "Evaluation only: evaluate the checkpoints here.",
                    flag_values=FLAGS)
flags.DEFINE_integer("eval_timeout", 3600, "Seconds to wait for a new checkpoint.",
                     flag_values=FLAGS)
flags.DEFINE_boolean("use_tpu", False, "Refused: no TPU support.", flag_values=FLAGS)
flags.DEFINE_string("tpu_name", None, "Refused: no TPU support.", flag_values=FLAGS)
flags.DEFINE_integer("num_workers", 1, "> 1: MultiWorkerMirroredStrategy.", flag_values=FLAGS)
flags.DEFINE_integer("checkpoint_every_n", 1000, "Save a checkpoint every n steps.",
                     flag_values=FLAGS)
flags.DEFINE_boolean("record_summaries", True, "Training summaries (always written here).",
                     flag_values=FLAGS)


def model_main_argv(passed_on: list[str]) -> list[str]:
    """model_main's command line for the parsed OD API flags (FLAGS) and the other flags."""
    args = [f"--pipeline_config_path={FLAGS.pipeline_config_path}",
            f"--checkpoint_every_n={FLAGS.checkpoint_every_n}",
            f"--eval_timeout={FLAGS.eval_timeout}"]
    if FLAGS.model_dir:
        args.append(f"--model_dir={FLAGS.model_dir}")
    if FLAGS.num_train_steps is not None:
        args.append(f"--num_train_steps={FLAGS.num_train_steps}")
    if FLAGS.checkpoint_dir:
        args.append(f"--checkpoint_dir={FLAGS.checkpoint_dir}")
    elif not any(a.startswith("--eval_count") for a in passed_on):
        args.append("--eval_count=0")  # the OD API's training loop does not evaluate
    sample = FLAGS.sample_1_of_n_eval_examples or 1
    if FLAGS.eval_on_train_data:
        args.append("--eval_training_data")
        sample = FLAGS.sample_1_of_n_eval_on_train_examples
    args.append(f"--sample_1_of_n_eval_examples={sample}")
    if FLAGS.num_workers > 1:
        args.append("--strategy=multi_worker")
    return args + passed_on


def main(argv: list[str] | None = None) -> int:
    argv = list(argv if argv is not None else sys.argv)
    # Unknown flags stay in `rest` and go on to model_main.
    rest = odapi_flags.parse(FLAGS, argv, __doc__, known_only=True)
    if isinstance(rest, int):
        return rest
    if FLAGS.use_tpu or FLAGS.tpu_name:
        print("error: --use_tpu / --tpu_name: TPUs are not supported; train on CPUs or GPUs "
              "(one or several hosts).", file=sys.stderr)
        return 2
    if FLAGS.num_workers < 1:
        print(f"error: --num_workers: must be >= 1, got {FLAGS.num_workers}.", file=sys.stderr)
        return 2
    if not FLAGS.pipeline_config_path:
        print("error: --pipeline_config_path is required.", file=sys.stderr)
        return 2
    if not FLAGS.record_summaries:
        print("warning: --record_summaries=false: training summaries are always written here "
              "(they cost little).", file=sys.stderr)
    from absl import app

    from object_detection import model_main

    app.run(model_main.main, argv=[argv[0], *model_main_argv(rest)])
    return 0  # app.run exits with main's code


if __name__ == "__main__":
    sys.exit(main())
