"""This project's checkpoint layout of a detection model, read by training and export alike.

A checkpoint holds every model variable under its unique Keras path, in one dict named
`MODEL_VARIABLES` (`model_checkpoint`); `checkpoint_key` is the key a variable is stored under.
`restore_model_weights` reads either this layout or the OD API's (`odapi_checkpoint.py`) into a
built model. The layout sits below training/ and export/, which both write or read it.
"""
from __future__ import annotations


import tensorflow as tf

from object_detection.meta_architectures import odapi_checkpoint
from object_detection.utils.log import logger


MODEL_VARIABLES = "model_variables"


def model_checkpoint(model, variables=None, **others) -> tf.train.Checkpoint:
    """The checkpoint layout of this project: every model variable under its Keras path.

    Keras 3 layers kept in dict or list attributes (per-level FPN convs, per-level batch norms
    of the predictor) are tracked by Keras but not followed by `tf.train.Checkpoint(model=...)`,
    so the object graph of the model cannot be the checkpoint's layout. Each variable is stored
    instead under its unique path (`ssd/MobilenetV2_FPN/FeatureMaps/projection_l3/kernel`),
    which the model code gives it the same way in every process.

    Args:
      model: the detection model (built).
      variables: the subset to save or restore (default: all of the model's).
      **others: further trackables (e.g. `optimizer=`).
    """
    variables = list(model.variables if variables is None else variables)
    by_path = {v.path: v for v in variables}
    if len(by_path) != len(variables):
        seen = set()
        dupes = [v.path for v in variables if v.path in seen or seen.add(v.path)]
        raise ValueError(f"model variables must have unique paths to be checkpointed; "
                         f"repeated: {dupes[:5]}")
    return tf.train.Checkpoint(**{MODEL_VARIABLES: by_path}, **others)


def checkpoint_key(path: str) -> str:
    """The key under which `model_checkpoint` stores the variable of Keras path `path`."""
    escaped = path.replace(".", "..").replace("/", ".S")
    return f"{MODEL_VARIABLES}/{escaped}/.ATTRIBUTES/VARIABLE_VALUE"


def restore_model_weights(model, path: str) -> int | None:
    """Every model variable from a checkpoint prefix of this project or of the OD API (TF2).

    Returns:
      The checkpoint's training step when it stores one (OD API layout), else None.

    Raises:
      odapi_checkpoint.OdApiCheckpointError / AssertionError: the file lacks model variables.
    """
    if odapi_checkpoint.is_odapi_checkpoint(path):
        report = odapi_checkpoint.restore(model, path)
        logger.info("restored from the OD API checkpoint %s: %s", path, report.summary())
        return report.step
    model_checkpoint(model).restore(path).expect_partial().assert_existing_objects_matched()
    return None
