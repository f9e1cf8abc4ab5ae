"""Accuracy of the shipped files: a small model trained here, exported as SavedModel, TFLite
(float32, fp16, int8) and ONNX, each run by `infer` on the validation images and scored with
pycocotools. Slow (it trains for a few minutes): `make test-slow`."""
from __future__ import annotations

import contextlib
import io
import json
import pytest

from .conftest import SMALL_CONFIG, run_python

pytestmark = pytest.mark.slow

STEPS = 600


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The small CPU config trained on 400 shapes images; its config overrides and val data."""
    from object_detection.dataset_tools.create_shapes_dataset import create_shapes_dataset

    root = tmp_path_factory.mktemp("accuracy")
    data = create_shapes_dataset(str(root / "shapes"), num_train=400, num_val=60,
                                 image_size=128, tfrecords=True, num_shards=1)
    overrides = [
        f"train_input_reader.tf_record_input_reader.input_path={data['train_records']}",
        f"eval_input_reader.0.tf_record_input_reader.input_path={data['val_records']}",
        f"train_input_reader.label_map_path={data['label_map']}",
        f"eval_input_reader.0.label_map_path={data['label_map']}",
        f"train_config.num_steps={STEPS}",
    ]
    flags = [f"--config_override={o}" for o in overrides]
    run_python(["object_detection/model_main.py", f"--pipeline_config_path={SMALL_CONFIG}",
                f"--model_dir={root / 'model'}", "--eval_count=0", *flags], timeout=1800)
    return {"root": root, "data": data, "flags": flags, "model_dir": str(root / "model")}


def _map(detections_json: str, annotations: str) -> dict[str, float]:
    """COCO mAP and mAP@0.5 of infer's json (image ids are the file stems)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from object_detection.export.infer import image_id

    with contextlib.redirect_stdout(io.StringIO()):
        truth = COCO(annotations)
        by_stem = {image_id(i["file_name"]): i["id"] for i in truth.dataset["images"]}
        with open(detections_json) as f:
            results = json.load(f)
        for r in results:
            r["image_id"] = by_stem[r["image_id"]]
        run = COCOeval(truth, truth.loadRes(results), "bbox")
        run.evaluate()
        run.accumulate()
        run.summarize()
    return {"mAP": float(run.stats[0]), "mAP@0.5": float(run.stats[1])}


def test_quantized_map_on_a_trained_model(trained):
    root, data, flags = trained["root"], trained["data"], trained["flags"]
    exports = {}
    run_python(["-m", "object_detection.export.exporter_main",
                f"--pipeline_config_path={SMALL_CONFIG}",
                f"--trained_checkpoint_dir={trained['model_dir']}",
                f"--output_directory={root / 'saved'}", *flags])
    exports["savedmodel"] = str(root / "saved")
    for quantize in ("none", "fp16", "int8"):
        out = root / f"tflite_{quantize}"
        run_python(["object_detection/export_tflite_graph_tf2.py",
                    f"--pipeline_config_path={SMALL_CONFIG}",
                    f"--trained_checkpoint_dir={trained['model_dir']}",
                    f"--output_directory={out}", "--max_detections=100",
                    "--ssd_use_regular_nms", f"--quantize={quantize}", *flags], timeout=900)
        exports[f"tflite_{quantize}"] = str(out / "model.tflite")
    try:
        import onnxruntime  # noqa: F401
        import tf2onnx  # noqa: F401

        run_python(["-m", "object_detection.export.export_onnx",
                    f"--pipeline_config_path={SMALL_CONFIG}",
                    f"--trained_checkpoint_dir={trained['model_dir']}",
                    f"--output_directory={root / 'onnx'}", *flags], timeout=900)
        exports["onnx"] = str(root / "onnx" / "model.onnx")
    except ImportError:
        pass
    scores = {}
    for name, path in exports.items():
        output = root / f"{name}.json"
        run_python(["-m", "object_detection.export.infer", f"--saved_model_dir={path}",
                    f"--images={data['val_images']}", f"--output_json={output}"])
        scores[name] = _map(str(output), data["val_annotations"])
    print("\nmAP of each export (60 val images):")
    for name, s in scores.items():
        print(f"  {name:12s} mAP {s['mAP']:.4f}  mAP@0.5 {s['mAP@0.5']:.4f}")
    reference = scores["savedmodel"]["mAP"]
    assert reference > 0.3, scores  # the model learned something worth comparing
    assert abs(scores["tflite_none"]["mAP"] - reference) < 1e-3, scores
    assert abs(scores["tflite_fp16"]["mAP"] - reference) <= 0.01, scores
    assert abs(scores["tflite_int8"]["mAP"] - scores["tflite_none"]["mAP"]) <= 0.03, scores
    if "onnx" in scores:
        assert abs(scores["onnx"]["mAP"] - reference) < 1e-3, scores
