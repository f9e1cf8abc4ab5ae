"""ONNX export: graph contract, ONNX Runtime parity with the SavedModel, NMS semantics, CLI.

One conversion of the small model (with post-processing) is shared by the module; the CLI runs
once, with --no_postprocess, and its file is shared too.
"""
from __future__ import annotations

import os

import numpy as np
import pytest

pytest.importorskip("tf2onnx", reason="ONNX export needs the onnx extra: pip install '.[onnx]'")
pytest.importorskip("onnxruntime",
                    reason="running ONNX files needs the onnx extra: pip install '.[onnx]'")

from object_detection.export import onnx_exporter  # noqa: E402

from .conftest import (OVERRIDES, SMALL_CONFIG, assert_same_detections, run_python,  # noqa: E402
                       shapes_image)

BOX_TOL = 1e-4  # the parity the issue asks for
SCORE_TOL = 1e-5


@pytest.fixture(scope="module")
def onnx_file(small_model, tmp_path_factory) -> str:
    """model.onnx of the in-memory model, post-processing in, dynamic batch."""
    out = tmp_path_factory.mktemp("onnx") / onnx_exporter.ONNX_FILENAME
    return onnx_exporter.convert_model(small_model, str(out))


@pytest.fixture(scope="module")
def raw_export_dir(checkpoint_dir, tmp_path_factory) -> str:
    """export_onnx --no_postprocess --batch_size 1 of the checkpoint, in a fresh process."""
    out = tmp_path_factory.mktemp("onnx_raw")
    result = run_python(["-m", "object_detection.export.export_onnx",
                         f"--pipeline_config_path={SMALL_CONFIG}",
                         f"--trained_checkpoint_dir={checkpoint_dir}",
                         f"--output_directory={out}", "--no_postprocess", "--batch_size=1",
                         *[f"--config_override={o}" for o in OVERRIDES]])
    assert "exported ONNX model to" in result.stdout
    return str(out)


def _model_size_images(model, images):
    return model.resize_images(images).numpy()  # float32 [B, h, w, 3]


def test_graph_names_shapes_and_metadata(onnx_file):
    import onnx

    proto = onnx.load(onnx_file)
    (graph_input,) = proto.graph.input
    assert graph_input.name == "input_tensor"
    assert graph_input.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    dims = graph_input.type.tensor_type.shape.dim
    assert not dims[0].HasField("dim_value")  # dynamic batch
    assert [d.dim_value for d in dims[1:]] == [128, 128, 3]
    outputs = {o.name for o in proto.graph.output}
    assert {"detection_boxes", "detection_scores", "detection_classes",
            "num_detections"} <= outputs
    meta = {p.key: p.value for p in proto.metadata_props}
    assert tuple(meta) == onnx_exporter.METADATA_KEYS
    assert (meta["image_height"], meta["image_width"], meta["num_classes"]) == ("128", "128", "3")
    assert meta["postprocess"] == "true" and meta["resize_method"] == "BILINEAR"
    assert meta["box_coder_scale_factors"] == "10.0,10.0,5.0,5.0"  # the small config's
    assert meta["score_converter"] == "SIGMOID" and meta["label_id_offset"] == "1"


def test_onnx_runtime_detections_equal_saved_model(onnx_file, exported_in_memory, test_image):
    """The SavedModel and ONNX Runtime on one uint8 image of another size (run_onnx resizes it
    with the model's resize, as the SavedModel does inside)."""
    import tensorflow as tf

    from object_detection.export import exporter_lib

    loaded = tf.saved_model.load(exporter_lib.saved_model_path(exported_in_memory))
    signature = loaded.signatures[exporter_lib.SERVING_SIGNATURE]
    expected = {k: v.numpy()[0] for k, v in signature(
        input_tensor=tf.constant(test_image[np.newaxis])).items()}
    actual = {k: v[0] for k, v in onnx_exporter.run_onnx(onnx_file,
                                                          test_image[np.newaxis]).items()}
    assert set(expected) <= set(actual)
    compared = assert_same_detections(expected, actual, score_tol=SCORE_TOL, box_tol=BOX_TOL,
                                      tie_iou=0.6)
    assert compared >= 3
    assert actual["detection_classes"].dtype == np.float32
    for key in ("raw_detection_boxes", "raw_detection_scores"):  # before NMS: all equal
        if key in expected:
            np.testing.assert_allclose(actual[key], expected[key], atol=SCORE_TOL)


def test_dynamic_batch_matches_in_process_model(onnx_file, small_model):
    """A batch of two model-size float images, against the signature's code in this process."""
    import tensorflow as tf

    from object_detection.export import exporter_lib

    images = _model_size_images(small_model, np.stack([shapes_image(11), shapes_image(12)]))
    expected = {k: v.numpy() for k, v in
                exporter_lib.DetectionModule(small_model).detect_resized(
                    tf.constant(images)).items()}
    actual = onnx_exporter.run_onnx(onnx_file, images)
    assert actual["detection_boxes"].shape == expected["detection_boxes"].shape
    for i in range(2):
        assert_same_detections({k: v[i] for k, v in expected.items()},
                               {k: v[i] for k, v in actual.items()},
                               score_tol=SCORE_TOL, box_tol=BOX_TOL, tie_iou=0.6)


def test_converted_nms_keeps_the_project_semantics():
    """The project's NMS (as postprocess calls it) converted alone, on hand-made boxes without
    ties: strict score threshold, IoU equal to the threshold not suppressing, per-class NMS,
    per-class and total caps, clipping and the replacement of a box clipped to nothing."""
    import onnxruntime as ort
    import tensorflow as tf
    import tf2onnx

    from object_detection.core import post_processing

    boxes = np.array([
        [[0, 0, .5, .5],  # a0
         [0, 0, .5, .25],  # a1: IoU with a0 exactly 0.5, the threshold: not suppressed
         [0, 0, .5, .45],  # a2: IoU 0.9 with a0: suppressed in class 0
         [.6, .6, .9, .9],  # a3
         [-.2, .6, .4, 1.2],  # a4: clipped to [0, .6, .4, 1]
         [1.1, 1.1, 1.5, 1.5],  # a5: best of class 0, clipped to nothing, replaced
         [.6, 0, .9, .3], [.6, .3, .9, .55]],
        [[i * .12, 0, i * .12 + .1, .1] for i in range(8)],  # image 1: disjoint boxes
    ], np.float32)
    scores = np.array([
        [[.9, .6], [.62, .3], [.8, .05], [.25, .65],  # a3 class 0 == threshold: dropped
         [.7, 0], [.95, 0], [.1, .55], [.2, .45]],
        # class 0 has 6 candidates, the cap keeps 4; the 5th detection is class 1's 0.3
        [[.9, 0], [.85, 0], [.8, 0], [.75, 0], [.7, 0], [.65, 0], [0, .3], [0, .1]],
    ], np.float32)

    @tf.function(input_signature=[tf.TensorSpec([None, 8, 4], tf.float32, name="boxes"),
                                  tf.TensorSpec([None, 8, 2], tf.float32, name="scores")])
    def nms(b, s):
        return post_processing.batch_multiclass_non_max_suppression(
            b, s, score_threshold=0.25, iou_threshold=0.5, max_detections_per_class=4,
            max_total_detections=5, clip_window=tf.constant([0.0, 0.0, 1.0, 1.0]))

    # Worked by hand from the contract of post_processing.
    want_boxes = [[[0, 0, .5, .5], [0, .6, .4, 1], [.6, .6, .9, .9], [0, 0, .5, .25],
                   [0, 0, .5, .5]],
                  [[0, 0, .1, .1], [.12, 0, .22, .1], [.24, 0, .34, .1], [.36, 0, .46, .1],
                   [.72, 0, .82, .1]]]
    want_scores = [[.9, .7, .65, .62, .6], [.9, .85, .8, .75, .3]]
    want_classes = [[0, 0, 1, 0, 1], [0, 0, 0, 0, 1]]

    proto, _ = tf2onnx.convert.from_function(nms, input_signature=nms.input_signature,
                                             opset=onnx_exporter.DEFAULT_OPSET)
    session = ort.InferenceSession(proto.SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    got = dict(zip([o.name for o in session.get_outputs()],
                   session.run(None, {"boxes": boxes, "scores": scores})))
    reference = {k: v.numpy() for k, v in nms(boxes, scores).items()}
    for name, result in (("tensorflow", reference), ("onnxruntime", got)):
        np.testing.assert_array_equal(result["num_detections"], [5, 5], err_msg=name)
        np.testing.assert_allclose(result["detection_boxes"], want_boxes, atol=1e-6,
                                   err_msg=name)
        np.testing.assert_allclose(result["detection_scores"], want_scores, atol=1e-6,
                                   err_msg=name)
        np.testing.assert_array_equal(result["detection_classes"], want_classes, err_msg=name)


def test_cli_no_postprocess_gives_raw_predictions_and_anchors(raw_export_dir, small_model):
    """The CLI's file (from the checkpoint, batch fixed to 1) on two images: the network's box
    encodings, its sigmoid scores without the background column and the project's anchors; the
    documented decode of them is the model's box coder."""
    import onnx
    import tensorflow as tf

    from object_detection.core.standard_fields import PredictionFields as P

    path = os.path.join(raw_export_dir, onnx_exporter.ONNX_FILENAME)
    assert os.path.isfile(os.path.join(raw_export_dir, "pipeline.config"))
    proto = onnx.load(path)
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims] == [1, 128, 128, 3]
    assert {o.name for o in proto.graph.output} == {"box_encodings", "class_scores", "anchors"}

    images = _model_size_images(small_model, np.stack([shapes_image(11), shapes_image(12)]))
    out = onnx_exporter.run_onnx(raw_export_dir, images)  # two runs of the batch-1 graph
    predictions = small_model(tf.constant(images), training=False)
    np.testing.assert_allclose(out["box_encodings"], predictions[P.box_encodings].numpy(),
                               atol=1e-4)
    scores = tf.sigmoid(predictions[P.class_predictions_with_background])[..., 1:].numpy()
    assert out["class_scores"].shape == scores.shape == (2, small_model.num_anchors, 3)
    np.testing.assert_allclose(out["class_scores"], scores, atol=SCORE_TOL)
    np.testing.assert_array_equal(out["anchors"], small_model.anchors.numpy())

    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["postprocess"] == "false"
    sy, sx, sh, sw = (float(v) for v in meta["box_coder_scale_factors"].split(","))
    clip = float(meta["box_coder_decode_log_scale_clip"])
    ty, tx, th, tw = np.moveaxis(out["box_encodings"], -1, 0)
    anchors = out["anchors"]
    ha, wa = anchors[:, 2] - anchors[:, 0], anchors[:, 3] - anchors[:, 1]
    yca, xca = anchors[:, 0] + ha / 2, anchors[:, 1] + wa / 2
    h, w = np.exp(np.minimum(th / sh, clip)) * ha, np.exp(np.minimum(tw / sw, clip)) * wa
    yc, xc = ty / sy * ha + yca, tx / sx * wa + xca
    decoded = np.stack([yc - h / 2, xc - w / 2, yc + h / 2, xc + w / 2], axis=-1)
    coder = small_model.target_assigner.box_coder
    np.testing.assert_allclose(
        decoded, coder.decode(out["box_encodings"], anchors[np.newaxis]).numpy(), atol=1e-5)


def test_detector_refuses_a_file_without_postprocessing(raw_export_dir):
    with pytest.raises(onnx_exporter.OnnxModelError, match="no_postprocess"):
        onnx_exporter.onnx_detector(raw_export_dir)


def test_runner_refuses_a_file_onnxruntime_cannot_load(tmp_path):
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(onnx_exporter.OnnxModelError, match="cannot load"):
        onnx_exporter.run_onnx(str(tmp_path), np.zeros([1, 8, 8, 3], np.uint8))


def test_max_detections_override_sets_the_total(small_configs):
    from object_detection.utils import config_util

    configs = config_util.get_configs_from_pipeline_file(
        SMALL_CONFIG, config_override=OVERRIDES + [onnx_exporter.max_detections_override(7)])
    nms = configs["model"].ssd.post_processing.batch_non_max_suppression
    assert nms.max_total_detections == 7


def _error_lines(text: str) -> list[str]:
    assert "Traceback" not in text
    return [line for line in text.splitlines() if "error:" in line]


def test_cli_missing_checkpoint_is_one_error_line(tmp_path, capsys):
    from object_detection.export import export_onnx

    missing = tmp_path / "no_such_model_dir"
    code = export_onnx.main([f"--pipeline_config_path={SMALL_CONFIG}",
                             f"--trained_checkpoint_dir={missing}",
                             f"--output_directory={tmp_path / 'out'}",
                             *[f"--config_override={o}" for o in OVERRIDES]])
    assert code == 2
    (line,) = _error_lines(capsys.readouterr().err)
    assert str(missing) in line
    assert not (tmp_path / "out").exists()  # failed before building anything


@pytest.mark.parametrize("flags, message", [
    (["--opset=9"], "--opset 9"),  # below what the NMS conversion needs
    (["--no_postprocess", "--max_detections=5"], "--max_detections"),  # no NMS to cap
    (["--batch_size=0"], "--batch_size 0"),
])
def test_cli_bad_flag_is_one_error_line_and_exit_2(flags, message, tmp_path, capsys):
    from object_detection.export import export_onnx

    with pytest.raises(SystemExit) as exit_info:
        export_onnx.main([f"--pipeline_config_path={SMALL_CONFIG}",
                          f"--output_directory={tmp_path}", *flags])
    assert exit_info.value.code == 2
    (line,) = _error_lines(capsys.readouterr().err)
    assert message in line


def test_infer_runs_the_onnx_file(onnx_file, test_image, tmp_path):
    """`infer --saved_model_dir=model.onnx` writes the json of run_onnx's detections."""
    import json

    from PIL import Image

    from object_detection.export import infer

    Image.fromarray(test_image).save(tmp_path / "3.png")
    assert infer.main([f"--saved_model_dir={onnx_file}", f"--images={tmp_path / '3.png'}",
                       f"--output_json={tmp_path / 'det.json'}"]) == 0
    results = json.loads((tmp_path / "det.json").read_text())
    direct = onnx_exporter.run_onnx(onnx_file, test_image[np.newaxis])
    assert len(results) == int(direct["num_detections"][0])
    best = max(results, key=lambda r: r["score"])
    assert best["category_id"] == int(direct["detection_classes"][0, 0])
    assert abs(best["score"] - float(direct["detection_scores"][0, 0])) < 1e-6
