"""TFLite export: the OD API's export_tflite_graph_tf2 command, the builtin detection op, named
outputs, float32 detections equal to the SavedModel's, fp16 and int8 conversions."""
from __future__ import annotations

import numpy as np
import pytest

from .conftest import OVERRIDES, SMALL_CONFIG, _iou, assert_same_detections, run_python

pytest.importorskip("ai_edge_litert", reason="ai-edge-litert (the TFLite runtime) is not "
                    "installed: pip install -e '.[test]'")


@pytest.fixture(scope="module")
def tflite_dir(checkpoint_dir, tmp_path_factory) -> str:
    """The OD API command, run as a user would, from the training checkpoint of the small
    model: the TFLite-ready SavedModel and its float32 .tflite (regular NMS, 100 detections)."""
    out = tmp_path_factory.mktemp("tflite")
    run_python(["object_detection/export_tflite_graph_tf2.py",
                f"--pipeline_config_path={SMALL_CONFIG}",
                f"--trained_checkpoint_dir={checkpoint_dir}", f"--output_directory={out}",
                "--max_detections=100", "--ssd_use_regular_nms", "--quantize=none",
                *[f"--config_override={o}" for o in OVERRIDES]])
    return str(out)


def _detect(path, model, image):
    from object_detection.export import tflite_exporter

    detector = tflite_exporter.TFLiteDetector(path)
    out = {k: v[0] for k, v in detector(tflite_exporter.normalized_input(model, image[None]))
           .items()}
    out["detection_classes"] = out["detection_classes"] + 1  # TFLite classes are 0-based
    return out


def test_the_tflite_model_has_named_float_io_and_the_builtin_detection_op(tflite_dir):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=f"{tflite_dir}/model.tflite")
    ops = {op["op_name"] for op in interpreter._get_ops_details()}
    assert "TFLite_Detection_PostProcess" in ops
    assert not ops & {"VAR_HANDLE", "READ_VARIABLE", "FlexConv2D"}  # weights frozen, no Flex
    runner = interpreter.get_signature_runner("serving_default")
    (name, detail), = runner.get_input_details().items()
    assert name == "input" and detail["dtype"] == np.float32
    assert detail["shape"].tolist() == [1, 128, 128, 3]
    outputs = runner.get_output_details()
    assert set(outputs) == {"detection_boxes", "detection_classes", "detection_scores",
                            "num_detections"}
    assert outputs["detection_boxes"]["shape"].tolist() == [1, 100, 4]


def test_tflite_float32_detections_equal_the_savedmodel(tflite_dir, small_model, test_image,
                                                        reference):
    out = _detect(f"{tflite_dir}/model.tflite", small_model, test_image)
    assert int(out["num_detections"]) == 100
    # Every class the SavedModel detects (LiteRT's multi-threaded regular NMS drops one).
    assert set(out["detection_classes"].astype(int)) == set(
        reference["detection_classes"][:100].astype(int))
    # Boxes within 1e-4 (the NMS of another runtime: ties of overlapping boxes may resolve
    # the other way, see assert_same_detections).
    compared = assert_same_detections(reference, out, top_k=20, score_tol=1e-4, box_tol=1e-4,
                                      tie_iou=0.6)
    assert compared >= 10


def test_the_detection_op_options_are_read_back_from_the_file(tflite_dir):
    from object_detection.export import tflite_exporter

    options = tflite_exporter.detection_op_options(f"{tflite_dir}/model.tflite")
    assert options["use_regular_nms"] and options["max_detections"] == 100
    assert options["num_classes"] == 3 and options["y_scale"] == 10.0


def test_fast_nms_keeps_the_best_detection(small_model, test_image, reference, tmp_path):
    """The default (fast, class-agnostic) NMS: the top detection is the SavedModel's, and
    every detection keeps its anchor's best class only (no box twice)."""
    import tensorflow as tf

    from object_detection.export import tflite_exporter

    module = tflite_exporter.TFLiteDetectionModule(small_model, 10, use_regular_nms=False)

    tf.saved_model.save(module, str(tmp_path / "fast"), signatures={
        "serving_default": module.serve.get_concrete_function()})
    tflite_exporter.convert(str(tmp_path / "fast"), str(tmp_path / "fast.tflite"))
    out = _detect(str(tmp_path / "fast.tflite"), small_model, test_image)
    assert int(out["num_detections"]) == 10
    np.testing.assert_allclose(out["detection_scores"][0], reference["detection_scores"][0],
                               atol=1e-4)
    np.testing.assert_allclose(out["detection_boxes"][0], reference["detection_boxes"][0],
                               atol=1e-4)
    # No anchor twice. Distinct anchors whose boxes cover the whole image are all clipped to
    # it; every other box keeps an unclipped side, where distinct anchors differ.
    boxes = out["detection_boxes"].round(5)
    partial = boxes[~np.all(boxes == [0.0, 0.0, 1.0, 1.0], axis=1)]
    assert len(partial) >= 5
    assert len({tuple(b) for b in partial}) == len(partial)


def test_fp16_and_int8_conversions_stay_close(tflite_dir, small_model, small_configs,
                                              small_overrides, test_image, reference, tmp_path):
    """fp16 halves the file and keeps the scores within 1e-2; int8 (calibrated on the eval
    records through tflite_convert) quarters it and runs int8 kernels."""
    import os

    from object_detection.export import tflite_convert

    float_size = os.path.getsize(f"{tflite_dir}/model.tflite")
    fp16 = str(tmp_path / "fp16.tflite")
    assert tflite_convert.main([f"--saved_model_dir={tflite_dir}", f"--output_file={fp16}",
                                "--quantize=fp16"]) == 0
    out = _detect(fp16, small_model, test_image)
    assert os.path.getsize(fp16) < 0.6 * float_size
    assert_same_detections(reference, out, top_k=5, score_tol=1e-2, box_tol=1e-2, tie_iou=0.6)

    int8 = str(tmp_path / "int8.tflite")
    eval_reader = [o for o in small_overrides if o.startswith("eval_input_reader")]
    assert tflite_convert.main([f"--saved_model_dir={tflite_dir}", f"--output_file={int8}",
                                "--quantize=int8", "--num_calibration_images=8",
                                *[f"--config_override={o}" for o in eval_reader]]) == 0
    assert os.path.getsize(int8) < 0.4 * float_size
    out = _detect(int8, small_model, test_image)
    # The weights of a random model give no accuracy to compare (the trained model's mAP is
    # compared in test_quantized_map_on_a_trained_model); here: int8 kernels, valid
    # detections, and the calibration kept the score range (a bad one shifts it).
    from ai_edge_litert.interpreter import Interpreter

    details = Interpreter(model_path=int8).get_tensor_details()
    assert sum(d["dtype"] == np.int8 for d in details) > len(details) // 2
    n = int(out["num_detections"])
    scores = out["detection_scores"][:n]
    assert n > 0 and np.all(np.diff(scores) <= 0)
    assert out["detection_boxes"].min() >= 0.0 and out["detection_boxes"].max() <= 1.0
    assert set(out["detection_classes"][:n].astype(int)) <= {1, 2, 3}
    assert abs(scores[0] - reference["detection_scores"][0]) < 0.05


def test_int8_without_calibration_data_is_refused(tflite_dir, tmp_path, capsys):
    from object_detection.export import tflite_convert

    code = tflite_convert.main([f"--saved_model_dir={tflite_dir}",
                                f"--output_file={tmp_path / 'x.tflite'}", "--quantize=int8",
                                "--config_override=eval_input_reader.0.tf_record_input_reader."
                                f"input_path={tmp_path}/missing*.record"])
    assert code == 2
    assert "missing" in capsys.readouterr().err
    assert not (tmp_path / "x.tflite").exists()


def test_centernet_flags_and_bad_counts_are_refused(tmp_path, capsys):
    from object_detection import export_tflite_graph_tf2 as cli

    base = ["prog", f"--pipeline_config_path={SMALL_CONFIG}", f"--output_directory={tmp_path}"]
    assert cli.main(base + ["--centernet_include_keypoints"]) == 2
    assert "CenterNet" in capsys.readouterr().err
    assert cli.main(base + ["--max_detections=0"]) == 2
    assert cli.main(base + ["--quantize=int4"]) == 2
    assert "int4" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_infer_runs_the_tflite_file_like_the_savedmodel(tflite_dir, test_image, reference,
                                                        tmp_path):
    """`infer --saved_model_dir=model.tflite`: the COCO json of the SavedModel's detections
    (1-based ids, pixels of the image), the resize and normalization read from the
    pipeline.config beside the file."""
    import json

    from PIL import Image

    from object_detection.export import infer

    Image.fromarray(test_image).save(tmp_path / "7.png")
    assert infer.main([f"--saved_model_dir={tflite_dir}/model.tflite",
                       f"--images={tmp_path / '7.png'}",
                       f"--output_json={tmp_path / 'det.json'}"]) == 0
    results = json.loads((tmp_path / "det.json").read_text())
    height, width = test_image.shape[:2]
    boxes = [[y / height, x / width, (y + h) / height, (x + w) / width]
             for x, y, w, h in (r["bbox"] for r in results)]
    detections = {"detection_boxes": np.asarray(boxes),
                  "detection_scores": np.asarray([r["score"] for r in results]),
                  "detection_classes": np.asarray([r["category_id"] for r in results]),
                  "num_detections": len(results)}
    assert_same_detections(reference, detections, box_tol=2e-3, tie_iou=0.6)
