"""Checkpoint policy: resume, fine-tune, best checkpoint, moving-average weights.

- Resume: the newest checkpoint in `model_dir` (model + optimizer, so the step continues).
- Fine-tune (only when `model_dir` has no checkpoint), from `train_config.fine_tune_checkpoint`:
  `classification`: the backbone only, from a Keras applications weights file (`.h5`, e.g.
  ResNet50 ImageNet weights, for the `_keras` extractors) copied layer by layer by name and
  adapted, from a TF-slim ImageNet checkpoint (`resnet_v1_50/model.ckpt`, the seed's, for the
  TF1 extractors) mapped by name, from an OD API checkpoint (TF2 or TF1), or from a checkpoint
  of this project; `detection` (or `full`): every variable of an OD API checkpoint (model zoo
  `checkpoint/ckpt-0`, `model_main_tf2.py` output, or the TF1 OD API's `model.ckpt-N`; a class
  head of another num_classes is left out and said so), or every variable of a detection
  checkpoint of this project whose path and shape match. A file that fits another extractor
  (an `.h5` for a TF1 extractor, a TF-slim checkpoint for a `_keras` one, another ResNet) is a
  `ConfigError` naming `train_config.fine_tune_checkpoint` and what fits.
- Best: after each evaluation the checkpoint with the highest COCO mAP is copied to
  `model_dir/best/` with `best.json` beside it.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil

import tensorflow as tf

from object_detection.builders import plan_builder
from object_detection.meta_architectures import odapi_checkpoint
from object_detection.meta_architectures.checkpoint_layout import checkpoint_key, model_checkpoint
from object_detection.utils.errors import ConfigError
from object_detection.utils.log import console_line, logger

FINE_TUNE_TYPES = plan_builder.FINE_TUNE_CHECKPOINT_TYPES


def restore_or_initialize(session, model_dir: str) -> bool:
    """Restores the newest checkpoint of `model_dir`; else applies the fine-tune checkpoint.

    Args:
      session: the run (its `checkpoint`, `model`, `step`, `engine`, and `plans.train.fine_tune`:
        the checkpoint path and the resolved kind, None without one).
      model_dir: where the run's checkpoints are.

    Returns:
      True when training resumes from `model_dir`.
    """
    latest = tf.train.latest_checkpoint(model_dir)
    if latest:
        session.checkpoint.restore(latest).assert_existing_objects_matched()
        logger.info("resumed from %s (step %d)", latest, session.step)
        if session.engine.is_chief:
            console_line(f"resuming from {latest} at step {session.step}")
        return True
    fine_tune_plan = session.plans.train.fine_tune
    if fine_tune_plan is not None:
        try:
            fine_tune(session.model, fine_tune_plan.checkpoint, fine_tune_plan.kind)
        except ValueError as e:  # OdApiCheckpointError, a file that fits another network
            if isinstance(e, ConfigError):
                raise
            raise ConfigError(f"train_config.fine_tune_checkpoint: {e}") from None
    return False


def fine_tune(model, path: str, kind: str) -> None:
    """Loads pretrained weights into a freshly built model (see module docstring).

    `kind` is resolved and checked by `plan_builder.fine_tune_plan` for a config; the check
    here is for other callers.
    """
    if kind not in FINE_TUNE_TYPES:
        raise ValueError(f"fine_tune: kind {kind!r} is not one of {list(FINE_TUNE_TYPES)}.")
    path = resolve_fine_tune_checkpoint(path)
    is_keras_file = _is_keras_file(path)
    if not is_keras_file and odapi_checkpoint.is_odapi_checkpoint(path):
        report = odapi_checkpoint.restore(model, path, backbone_only=kind == "classification",
                                          allow_other_num_classes=True)
        logger.info("fine-tune (%s) from the OD API checkpoint %s: %s", kind, path,
                    report.summary())
        console_line(f"fine-tune ({kind}): {report.summary()} ({path})")
        return
    if kind == "classification":
        extractor = model.feature_extractor
        if is_keras_file:
            report = extractor.load_keras_application_weights(path)  # it names its counterpart
            logger.info("fine-tune (classification): %s", report)
            console_line(f"fine-tune: backbone weights from {path}: {report.summary()}")
            return
        status = model_checkpoint(model, extractor.backbone.variables).restore(path)
        status.expect_partial().assert_existing_objects_matched()
        console_line(f"fine-tune: backbone weights from checkpoint {path}")
        return
    reader = tf.train.load_checkpoint(path)
    stored = reader.get_variable_to_shape_map()
    matching = [v for v in model.variables
                if stored.get(checkpoint_key(v.path)) == list(v.shape)]
    model_checkpoint(model, matching).restore(path).expect_partial()
    console_line(f"fine-tune: {len(matching)} of {len(model.variables)} variables from the "
                 f"detection checkpoint {path} (same path and shape)")


def _is_keras_file(path: str) -> bool:
    return path.endswith((".h5", ".keras", ".weights.h5"))


def resolve_fine_tune_checkpoint(path: str) -> str:
    """`train_config.fine_tune_checkpoint` as a checkpoint prefix or a Keras weights file.

    A directory stands for its newest checkpoint.

    Raises:
      FileNotFoundError: naming the field, when nothing loadable is there.
    """
    if _is_keras_file(path):
        if not tf.io.gfile.exists(path):
            raise FileNotFoundError(
                f"train_config.fine_tune_checkpoint: {path!r} does not exist.")
        return path
    if tf.train.latest_checkpoint(path):
        return tf.train.latest_checkpoint(path)
    if tf.io.gfile.isdir(path):
        prefixes = sorted({f[:-len(".index")] for f in tf.io.gfile.listdir(path)
                           if f.endswith(".index")})
        raise FileNotFoundError(
            f"train_config.fine_tune_checkpoint: {path!r} is a directory without a `checkpoint` "
            "index file; give a checkpoint prefix"
            + (f" (here: {', '.join(os.path.join(path, p) for p in prefixes[:3])})"
               if prefixes else " (this directory holds none)") + ".")
    if not tf.io.gfile.glob(path + "*"):
        raise FileNotFoundError(
            f"train_config.fine_tune_checkpoint: {path!r} does not exist (neither a checkpoint "
            f"prefix, a checkpoint directory nor a Keras weights file).")
    return path


def keep_best(model_dir: str, checkpoint_path: str | None, step: int, metrics: dict,
              key: str = "mAP", higher_is_better: bool = True) -> bool:
    """Copies `checkpoint_path` to model_dir/best/ when its `key` beats the best so far."""
    if not checkpoint_path or key not in metrics:
        return False
    best_dir = os.path.join(model_dir, "best")
    info_path = os.path.join(best_dir, "best.json")
    if os.path.exists(info_path):
        with open(info_path) as f:
            best = json.load(f).get(key)
        if best is not None and (best >= metrics[key] if higher_is_better
                                 else best <= metrics[key]):
            return False
    tmp_dir = best_dir + ".tmp"
    shutil.rmtree(tmp_dir, ignore_errors=True)
    os.makedirs(tmp_dir)
    for src in tf.io.gfile.glob(checkpoint_path + ".*"):
        shutil.copy2(src, tmp_dir)
    name = os.path.basename(checkpoint_path)
    with open(os.path.join(tmp_dir, "checkpoint"), "w") as f:
        f.write(f'model_checkpoint_path: "{name}"\nall_model_checkpoint_paths: "{name}"\n')
    with open(os.path.join(tmp_dir, "best.json"), "w") as f:
        json.dump({"step": step, "checkpoint": name, **metrics}, f, indent=1)
    shutil.rmtree(best_dir, ignore_errors=True)
    os.replace(tmp_dir, best_dir)
    console_line(f"best checkpoint so far ({key} {metrics[key]:.4f} at step {step}) kept in "
                 f"{best_dir}")
    return True


@contextlib.contextmanager
def moving_average_weights(optimizer, enabled: bool):
    """Temporarily swaps the model's trainable variables for their moving averages (EMA)."""
    if not enabled or not getattr(optimizer, "use_ema", False):
        yield
        return
    variables = optimizer._trainable_variables  # the variables the optimizer was built for
    averages = optimizer._model_variables_moving_average
    saved = [tf.identity(v) for v in variables]
    for v, avg in zip(variables, averages):
        v.assign(avg)
    try:
        yield
    finally:
        for v, value in zip(variables, saved):
            v.assign(value)
