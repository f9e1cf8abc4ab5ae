r"""Runs a detector on image files: COCO-format detections json, optionally drawn images.

    python -m object_detection.export.infer --saved_model_dir=/results/exported \
        --images='/data/test/*.jpg' --output_json=det.json \
        [--output_images_dir=drawn --label_map_path=label_map.pbtxt --min_score=0.3]
    python -m object_detection.export.infer --saved_model_dir=/results/tflite/model.tflite ...
    python -m object_detection.export.infer --pipeline_config_path=P --checkpoint_dir=M ...

The detector is an export (`--saved_model_dir`): a SavedModel of `exporter_main` (the export
directory or its saved_model/), a .tflite of `export_tflite_graph_tf2` (with the pipeline.config
beside it) or an ONNX file of `export_onnx` (or its directory); or a training checkpoint with its
pipeline config, run in this process through the same code as the export signature. All give
the same json (1-based label-map ids). `--images` is a file, a folder (its .jpg/.jpeg/.png/.bmp
files) or a glob. Images of any size are fed as they are (the model resizes them).

The json is a list of COCO results: {"image_id": file stem (an int when the stem is a number),
"category_id": label-map id, "bbox": [x, y, width, height] in pixels of the image, "score"}, one
per detection with score >= --json_min_score (default: all the detector returns). Drawn images
(with `--output_images_dir`) show detections with score >= --min_score, class names from the
label map (default: the one the pipeline config names, if it exists).
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import time
from typing import Callable, Mapping, Sequence

if __package__ in (None, ""):  # run as a script path: make the package importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from object_detection.core import np_box_ops  # noqa: E402 (numpy only)
from object_detection.utils.log import configure_cli_logging, logger  # noqa: E402

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")

Detector = Callable[[np.ndarray], Mapping[str, np.ndarray]]


# --------------------------------------------------------------------------------------------
# Inputs.


def list_images(spec: str) -> list[str]:
    """Image files named by a file path, a folder (non-recursive) or a glob, sorted."""
    if os.path.isdir(spec):
        return sorted(os.path.join(spec, f) for f in os.listdir(spec)
                      if f.lower().endswith(IMAGE_EXTENSIONS))
    if os.path.isfile(spec):
        return [spec]
    return sorted(p for p in glob.glob(spec) if os.path.isfile(p)
                  and p.lower().endswith(IMAGE_EXTENSIONS))


def load_image(path: str) -> np.ndarray:
    """uint8 [H, W, 3] RGB (grey and RGBA images converted)."""
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.uint8)


def image_id(path: str) -> int | str:
    """The file stem, as an int when it is a number (COCO ids are ints)."""
    stem = os.path.splitext(os.path.basename(path))[0]
    return int(stem) if stem.isdigit() else stem


# --------------------------------------------------------------------------------------------
# Detectors: uint8 [B, H, W, 3] -> numpy detections (1-based classes, float num_detections).


def saved_model_detector(saved_model_dir: str) -> Detector:
    """The `serving_default` signature of an export."""
    import tensorflow as tf

    from object_detection.export import exporter_lib

    loaded = tf.saved_model.load(exporter_lib.saved_model_path(saved_model_dir))
    signature = loaded.signatures[exporter_lib.SERVING_SIGNATURE]

    def detect(images: np.ndarray) -> dict[str, np.ndarray]:
        outputs = signature(**{exporter_lib.INPUT_NAME: tf.constant(images, tf.uint8)})
        return {k: v.numpy() for k, v in outputs.items()}

    detect.keep_alive = loaded  # the signature needs its object alive
    return detect


def export_detector(path: str) -> Detector:
    """The detector of an export: a .tflite file, an ONNX file (or a directory holding
    model.onnx), or a SavedModel export."""
    if path.endswith(".tflite"):
        from object_detection.export import tflite_exporter

        return tflite_exporter.tflite_detector(path)
    if path.endswith(".onnx") or os.path.isfile(os.path.join(path, "model.onnx")):
        from object_detection.export import onnx_exporter

        return onnx_exporter.onnx_detector(path)
    return saved_model_detector(path)


def checkpoint_detector(configs: Mapping, checkpoint: str) -> Detector:
    """A training checkpoint run in this process through the export's code path."""
    from object_detection.export import exporter_lib

    model = exporter_lib.build_model(configs)
    exporter_lib.restore_model(model, checkpoint)
    module = exporter_lib.DetectionModule(model)

    def detect(images: np.ndarray) -> dict[str, np.ndarray]:
        return {k: v.numpy() for k, v in module(images).items()}

    return detect


# --------------------------------------------------------------------------------------------
# Outputs.


def to_coco_results(detections: Mapping[str, np.ndarray], index: int, height: int, width: int,
                    image_id_value: int | str, min_score: float = 0.0) -> list[dict]:
    """COCO result dicts of image `index` of a batch of detections (pixels of that image)."""
    n = int(detections["num_detections"][index])
    boxes = np_box_ops.normalized_yxyx_to_absolute_xywh(
        np.asarray(detections["detection_boxes"][index][:n]).reshape(-1, 4), height, width)
    scores = detections["detection_scores"][index][:n]
    classes = detections["detection_classes"][index][:n]
    results = []
    for xywh, score, cls in zip(boxes, scores, classes):
        if score < min_score:
            continue
        results.append({
            "image_id": image_id_value,
            "category_id": int(round(float(cls))),
            "bbox": [round(float(v), 2) for v in xywh],
            "score": round(float(score), 6),
        })
    return results


def _label_map_from_config(config_path: str | None) -> str | None:
    """The label map a pipeline config names (eval input first), if the file exists."""
    if not config_path or not os.path.isfile(config_path):
        return None
    from object_detection.builders import plan_builder
    from object_detection.utils import config_util

    configs = config_util.get_configs_from_pipeline_file(config_path, validate=False)
    readers = [plan_builder.input_plan(r, f"eval_input_reader.{i}")
               for i, r in enumerate(configs["eval_input_configs"])]
    readers.append(plan_builder.input_plan(configs["train_input_config"], "train_input_reader"))
    for reader in readers:
        if reader.label_map_path and os.path.isfile(reader.label_map_path):
            return reader.label_map_path
    return None


def run(detector: Detector, image_paths: Sequence[str], output_json: str,
        output_images_dir: str | None = None, category_index: Mapping | None = None,
        min_score: float = 0.3, json_min_score: float = 0.0) -> dict[str, float]:
    """Detects every image, writes the json (and drawn images); returns a small summary."""
    from object_detection.utils import visualization

    results: list[dict] = []
    if output_images_dir:
        os.makedirs(output_images_dir, exist_ok=True)
    seconds = 0.0
    for path in image_paths:
        image = load_image(path)
        height, width = image.shape[:2]
        t0 = time.perf_counter()
        detections = detector(image[np.newaxis])  # [1, H, W, 3]
        seconds += time.perf_counter() - t0
        results.extend(to_coco_results(detections, 0, height, width, image_id(path),
                                       json_min_score))
        if output_images_dir:
            n = int(detections["num_detections"][0])
            drawn = visualization.draw_detections(
                image, detections["detection_boxes"][0][:n], detections["detection_classes"][0][:n],
                detections["detection_scores"][0][:n], category_index, min_score=min_score)
            name = os.path.basename(path)
            if not name.lower().endswith((".png", ".jpg", ".jpeg")):
                name = os.path.splitext(name)[0] + ".png"
            drawn.save(os.path.join(output_images_dir, name), quality=95)
    os.makedirs(os.path.dirname(os.path.abspath(output_json)), exist_ok=True)
    with open(output_json, "w") as f:
        json.dump(results, f)
    return {"images": len(image_paths), "detections": len(results),
            "images_per_second": len(image_paths) / max(seconds, 1e-9)}


# --------------------------------------------------------------------------------------------
# Command line.


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m object_detection.export.infer",
        description="Detect objects in images: COCO results json, optionally drawn images.")
    source = parser.add_argument_group("detector (one of)")
    source.add_argument("--saved_model_dir", help="An export: an exporter_main output "
                        "directory (or its saved_model/), a .tflite file or an ONNX file (or "
                        "its directory).")
    source.add_argument("--pipeline_config_path", help="With --checkpoint_dir: run a training "
                        "checkpoint in this process.")
    source.add_argument("--checkpoint_dir", help="Model directory (newest checkpoint) or "
                        "checkpoint prefix.")
    source.add_argument("--config_override", action="append", default=[],
                        help="With --pipeline_config_path: dotted override (repeatable).")
    parser.add_argument("--images", required=True,
                        help="An image file, a folder of images or a glob (quote it).")
    parser.add_argument("--output_json", required=True, help="COCO results json to write.")
    parser.add_argument("--output_images_dir", help="Write the images with detections drawn.")
    parser.add_argument("--label_map_path", help="Class names for drawing (default: the label "
                        "map of the pipeline config, if it exists).")
    parser.add_argument("--min_score", type=float, default=0.3,
                        help="Lowest score drawn (default 0.3).")
    parser.add_argument("--json_min_score", type=float, default=0.0,
                        help="Lowest score written to the json (default 0: all detections).")
    args = parser.parse_args(argv)
    if bool(args.saved_model_dir) == bool(args.pipeline_config_path or args.checkpoint_dir):
        parser.error("give --saved_model_dir, or --pipeline_config_path and --checkpoint_dir.")
    if args.pipeline_config_path and not args.checkpoint_dir:
        parser.error("--pipeline_config_path needs --checkpoint_dir.")
    if args.checkpoint_dir and not args.pipeline_config_path:
        parser.error("--checkpoint_dir needs --pipeline_config_path.")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    configure_cli_logging()
    from object_detection.builders import config_rules
    from object_detection.data import label_map_util
    from object_detection.export import exporter_lib
    from object_detection.export.onnx_exporter import OnnxModelError, OnnxUnavailableError
    from object_detection.utils import config_util
    from object_detection.utils.errors import ConfigError
    image_paths = list_images(args.images)
    if not image_paths:
        print(f"error: --images {args.images!r}: no image file ({', '.join(IMAGE_EXTENSIONS)}) "
              "matches.", file=sys.stderr)
        return 2
    try:
        if args.saved_model_dir:
            export_dir = os.path.abspath(args.saved_model_dir)
            # pipeline.config sits in the export directory, beside saved_model/ (or the file).
            candidates = [os.path.join(d, config_util.PIPELINE_CONFIG_NAME)
                          for d in (export_dir, os.path.dirname(export_dir))]
            config_path = next((c for c in candidates if os.path.isfile(c)), None)
            detector = export_detector(args.saved_model_dir)
        else:
            config_path = args.pipeline_config_path
            configs = config_rules.load_pipeline_configs(
                config_path, config_override=args.config_override)
            detector = checkpoint_detector(configs, args.checkpoint_dir)
        category_index = None
        if args.output_images_dir:
            label_map = args.label_map_path or _label_map_from_config(config_path)
            if label_map:
                category_index = label_map_util.create_category_index_from_labelmap(label_map)
            else:
                logger.info("no label map: classes are drawn by id")
    except (ConfigError, FileNotFoundError, exporter_lib.CheckpointError, OnnxModelError,
            OnnxUnavailableError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    summary = run(detector, image_paths, args.output_json, args.output_images_dir,
                  category_index, min_score=args.min_score, json_min_score=args.json_min_score)
    print(f"{summary['images']} images, {summary['detections']} detections -> "
          f"{args.output_json}" + (f", drawn images in {args.output_images_dir}"
                                   if args.output_images_dir else "")
          + f" ({summary['images_per_second']:.2f} img/s, first call included)", flush=True)
    return 0


if __name__ == "__main__":
    from object_detection.utils import malloc

    malloc.keep_freed_memory()  # each batch reuses the memory the last one freed
    sys.exit(main())
