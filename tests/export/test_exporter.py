"""SavedModel export: signature contract, fresh-process parity with the in-process model."""
from __future__ import annotations

import os

import numpy as np
import pytest

from .conftest import (IMAGE_HEIGHT, IMAGE_WIDTH, OVERRIDES, SMALL_CONFIG,
                       assert_same_detections, run_python)

# Loads an export in a fresh process, runs it on the .npy image, writes the outputs as .npz.
_RUN_SAVED_MODEL = """
import sys, numpy as np, tensorflow as tf
loaded = tf.saved_model.load(sys.argv[1])
fn = loaded.signatures["serving_default"]
out = fn(input_tensor=tf.constant(np.load(sys.argv[2])))
np.savez(sys.argv[3], **{k: v.numpy() for k, v in out.items()})
"""


def _run_in_fresh_process(saved_model_dir: str, images: np.ndarray, tmp_path) -> dict:
    np.save(tmp_path / "images.npy", images)
    run_python(["-c", _RUN_SAVED_MODEL, saved_model_dir, str(tmp_path / "images.npy"),
                str(tmp_path / "out.npz")])
    with np.load(tmp_path / "out.npz") as out:
        return {k: out[k] for k in out.files}


def test_signature_takes_uint8_images_of_any_size(exported_in_memory):
    import tensorflow as tf

    loaded = tf.saved_model.load(os.path.join(exported_in_memory, "saved_model"))
    fn = loaded.signatures["serving_default"]
    (spec,) = fn.structured_input_signature[1].values()
    assert spec.dtype == tf.uint8
    assert spec.shape.as_list() == [None, None, None, 3]
    assert set(fn.structured_outputs) == {
        "detection_boxes", "detection_scores", "detection_classes", "num_detections",
        "detection_multiclass_scores", "detection_anchor_indices", "raw_detection_boxes",
        "raw_detection_scores"}
    for height, width, batch in ((150, 200, 2), (64, 40, 1)):  # other sizes, other batches
        out = fn(input_tensor=tf.zeros([batch, height, width, 3], tf.uint8))
        assert out["detection_boxes"].shape == (batch, 100, 4)
        assert out["detection_scores"].shape == (batch, 100)
        assert out["num_detections"].dtype == tf.float32
        assert out["detection_classes"].dtype == tf.float32
        n = int(out["num_detections"][0])
        classes = out["detection_classes"][0, :n].numpy()
        assert n > 0 and classes.min() >= 1 and classes.max() <= 3  # 1-based label ids
        boxes = out["detection_boxes"].numpy()
        assert boxes.min() >= 0.0 and boxes.max() <= 1.0


def test_pipeline_config_is_written_beside_the_saved_model(exported_in_memory):
    from object_detection.utils import config_util

    configs = config_util.get_configs_from_pipeline_file(
        os.path.join(exported_in_memory, "pipeline.config"))
    assert configs["model"].ssd.feature_extractor.depth_multiplier == 0.25  # overrides kept


def test_export_in_fresh_process_matches_in_process_model(exported_in_memory, test_image,
                                                          reference, tmp_path):
    assert test_image.shape == (IMAGE_HEIGHT, IMAGE_WIDTH, 3)  # not the model's 128x128
    out = _run_in_fresh_process(os.path.join(exported_in_memory, "saved_model"),
                                test_image[np.newaxis], tmp_path)
    compared = assert_same_detections(reference, {k: v[0] for k, v in out.items()})
    assert compared >= 3


def test_exporter_main_from_checkpoint_matches_in_process_model(
        small_model, checkpoint_dir, test_image, reference, tmp_path):
    """exporter_main reads a checkpoint and exports a tf_example signature; the SavedModel, run
    in another fresh process on a record of an image of another size, gives the detections of
    the model that wrote the checkpoint."""
    out_dir = tmp_path / "export"
    run_python(["-m", "object_detection.export.exporter_main",
                f"--pipeline_config_path={SMALL_CONFIG}", "--input_type=tf_example",
                f"--trained_checkpoint_dir={checkpoint_dir}", f"--output_directory={out_dir}",
                *[f"--config_override={o}" for o in OVERRIDES]])
    assert (out_dir / "saved_model" / "saved_model.pb").is_file()
    assert (out_dir / "pipeline.config").is_file()
    assert (out_dir / "checkpoint" / "ckpt-0.index").is_file()
    script = """
import sys, numpy as np, tensorflow as tf
fn = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
out = fn(input_tensor=tf.constant([open(sys.argv[2], "rb").read()]))
np.savez(sys.argv[3], **{k: v.numpy() for k, v in out.items()})
"""
    (tmp_path / "example.bin").write_bytes(_example(_encoded(test_image)))
    run_python(["-c", script, str(out_dir / "saved_model"), str(tmp_path / "example.bin"),
                str(tmp_path / "out.npz")])
    with np.load(tmp_path / "out.npz") as out:
        assert_same_detections(reference, {k: out[k][0] for k in out.files})


def test_restore_refuses_a_checkpoint_of_another_model(small_model, tmp_path):
    import keras
    import tensorflow as tf

    from object_detection.export import exporter_lib
    from object_detection.meta_architectures import checkpoint_layout

    other = keras.layers.Dense(3, name="ssd")
    other.build((None, 2))
    tf.train.CheckpointManager(checkpoint_layout.model_checkpoint(other), str(tmp_path),
                               max_to_keep=1).save(checkpoint_number=1)
    with pytest.raises(exporter_lib.CheckpointError, match="does not match the model"):
        exporter_lib.restore_model(small_model, str(tmp_path))


def test_exporter_main_reports_a_missing_checkpoint(tmp_path, capsys):
    from object_detection.export import exporter_main

    code = exporter_main.main([f"--pipeline_config_path={SMALL_CONFIG}",
                               f"--trained_checkpoint_dir={tmp_path}",
                               f"--output_directory={tmp_path / 'out'}"])
    assert code == 2
    assert "no checkpoint in this directory" in capsys.readouterr().err


def test_detection_module_resizes_offsets_classes_and_casts_counts():
    import tensorflow as tf

    from object_detection.export import exporter_lib

    class _FakeModel:  # records the network input; one fixed detection of class 0
        image_size = (128, 96)
        variables = []

        def resize_images(self, images):
            from object_detection.core import image_resizer
            return image_resizer.resize_images(images, *self.image_size)

        def __call__(self, images, training=False):
            self.seen_shape = images.shape
            return {"images": images}

        def postprocess(self, predictions, raw_outputs=False):
            batch = tf.shape(predictions["images"])[0]
            box = tf.constant([[[0.25, 0.5, 0.75, 1.0]]])
            return {"detection_boxes": tf.tile(box, [batch, 1, 1]),
                    "detection_scores": tf.ones([batch, 1]),
                    "detection_classes": tf.zeros([batch, 1]),
                    "num_detections": tf.ones([batch], tf.int32),
                    "detection_anchor_indices": tf.zeros([batch, 1], tf.int32)}

    fake = _FakeModel()
    out = exporter_lib.DetectionModule(fake).detect(tf.zeros([2, 30, 70, 3], tf.uint8))
    assert fake.seen_shape == (2, 128, 96, 3)  # resized to the model's fixed size
    np.testing.assert_allclose(out["detection_boxes"].numpy()[0], [[0.25, 0.5, 0.75, 1.0]])
    assert out["detection_classes"].numpy().tolist() == [[1.0], [1.0]]  # 0-based 0 -> id 1
    assert out["num_detections"].dtype == tf.float32


def _encoded(image: np.ndarray, fmt: str = "PNG") -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format=fmt)
    return buffer.getvalue()


def _example(encoded: bytes) -> bytes:
    import tensorflow as tf

    feature = {"image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[encoded]))}
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def test_every_input_type_gives_the_same_detections(small_model, test_image):
    """The same image as uint8 pixels, float pixels, PNG bytes and a tf.Example: the same
    detections, to the bit (PNG is lossless; every path resizes the same way)."""
    import tensorflow as tf

    from object_detection.export import exporter_lib

    png = _encoded(test_image)
    inputs = {"image_tensor": test_image[np.newaxis],
              "float_image_tensor": test_image[np.newaxis].astype(np.float32),
              "encoded_image_string_tensor": np.array([png]),
              "tf_example": np.array([_example(png)])}
    outputs = {kind: {k: v.numpy() for k, v in
                      exporter_lib.DetectionModule(small_model, kind)(tf.constant(x)).items()}
               for kind, x in inputs.items()}
    for kind, out in outputs.items():
        for key, value in out.items():
            np.testing.assert_array_equal(value, outputs["image_tensor"][key],
                                          err_msg=f"{kind} {key}")
    assert int(outputs["image_tensor"]["num_detections"][0]) > 0


def test_encoded_images_of_different_sizes_share_a_batch(small_model, test_image):
    import tensorflow as tf

    from object_detection.export import exporter_lib

    small = test_image[:100, :120]
    module = exporter_lib.DetectionModule(small_model, "encoded_image_string_tensor")
    both = module(tf.constant([_encoded(test_image), _encoded(small)]))
    alone = exporter_lib.DetectionModule(small_model)(tf.constant(small[np.newaxis]))
    # The same image alone or second in a batch: equal to float32 round-off (batched kernels).
    # Round-off may flip which of two overlapping boxes tied in score NMS keeps (tie_iou).
    assert_same_detections({k: v.numpy()[0] for k, v in alone.items()},
                           {k: v.numpy()[1] for k, v in both.items()}, top_k=20,
                           score_tol=1e-5, box_tol=1e-5, tie_iou=0.6)


def test_the_extra_outputs_describe_the_detections(exported_in_memory, test_image):
    """As the OD API's: each detection's anchor index points at its raw box (clipped as the
    detection is) and its multiclass scores hold its score in its class column."""
    import tensorflow as tf

    fn = tf.saved_model.load(os.path.join(exported_in_memory, "saved_model")).signatures[
        "serving_default"]
    out = {k: v.numpy()[0] for k, v in fn(input_tensor=tf.constant(test_image[None])).items()}
    n = int(out["num_detections"])
    num_anchors = out["raw_detection_boxes"].shape[0]
    slots = out["raw_detection_scores"].shape[1]
    assert out["raw_detection_scores"].shape == (num_anchors, slots)
    assert slots == 4  # 3 classes and the background column of the small config
    index = out["detection_anchor_indices"][:n]
    assert index.dtype == np.int32 and 0 <= index.min() and index.max() < num_anchors
    np.testing.assert_array_equal(np.clip(out["raw_detection_boxes"][index], 0.0, 1.0),
                                  out["detection_boxes"][:n])
    classes = out["detection_classes"][:n].astype(int)  # 1-based; column 0 is the background
    np.testing.assert_array_equal(out["detection_multiclass_scores"][np.arange(n), classes],
                                  out["detection_scores"][:n])
    np.testing.assert_array_equal(out["detection_multiclass_scores"][:n],
                                  out["raw_detection_scores"][index])
    assert not out["detection_multiclass_scores"][n:].any()


def test_the_export_checkpoint_restores_the_same_model(exported_in_memory, small_configs,
                                                       test_image, reference):
    from object_detection.export import exporter_lib

    checkpoint = os.path.join(exported_in_memory, "checkpoint")
    assert os.path.isfile(os.path.join(checkpoint, "ckpt-0.index"))
    model = exporter_lib.build_model(small_configs)
    exporter_lib.restore_model(model, checkpoint)
    out = exporter_lib.DetectionModule(model)(test_image[np.newaxis])
    assert_same_detections(reference, {k: v.numpy()[0] for k, v in out.items()},
                           score_tol=1e-6, box_tol=1e-6)


def test_an_unknown_input_type_is_refused():
    from object_detection.export import exporter_main

    with pytest.raises(SystemExit) as exit_info:
        exporter_main.parse_args(["--pipeline_config_path=x", "--output_directory=y",
                                  "--input_type=jpeg"])
    assert exit_info.value.code == 2
