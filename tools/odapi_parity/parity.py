"""Same weights, same image: this project's SSD against the real TF OD API, stage by stage.

For maintainers; it needs the OD API source and a venv of its own (README, "Parity with the OD
API"), never imported by the package. Steps:

1. inputs: a real photo and its boxes from a COCO json (default: the first BCCD validation
   image with every category), written to WORK/inputs.npz;
2. the OD API side (`reference.py`, run with `--odapi_python`): the OD API model from the same
   config with seeded random weights, saved as an OD API TF2 checkpoint, and its stages;
3. this side: the project's model from the config, the OD API checkpoint read through
   `meta_architectures.odapi_checkpoint` (the loader users get), the same stages: feature maps,
   predictions and detections in inference mode (the OD API's evaluation and export), then
   predictions and losses in training mode (its `model_lib_v2` train loop sets the Keras
   learning phase to 1: batch norms that are not frozen use batch statistics);
4. a markdown table: max |ours - OD API| and that over max |OD API| for every stage, with the
   verdict at float32 round-off (1e-3 of scale for maps and predictions, 1e-5 for losses), and
   the 100 detections compared (classes equal, boxes and scores within 1e-4). Training-mode
   rows also show the float32 noise floor: how much our own output moves when the input is
   multiplied by (1 + 1e-7 N(0, 1)) (deep random networks amplify round-off to ~1e-4 of scale),
   for scale; the verdict does not use it.

Exit status 1 when any stage differs.

Usage:
  .venv/bin/python tools/odapi_parity/parity.py --pipeline_config configs/ssd320_full_1gpus.config \
      --odapi_python /tmp/odapi/venv/bin/python --odapi_research /tmp/odapi/model/research \
      --work_dir /tmp/parity/ssd320
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
DEFAULT_ANNOTATIONS = os.path.join(ROOT, "..", "shared", "datasets", "bccd", "annotations",
                                   "instances_val.json")
MAP_TOLERANCE = 1e-3
LOSS_TOLERANCE = 1e-5
DETECTION_TOLERANCE = 1e-4


def write_inputs(annotations: str, images: str, out: str, max_boxes: int) -> str:
    """The first image (by id) holding every category, with up to `max_boxes` of its boxes."""
    with open(annotations) as f:
        coco = json.load(f)
    by_image: dict[int, list] = {}
    for ann in coco["annotations"]:
        if not ann.get("iscrowd", 0) and ann["bbox"][2] > 0 and ann["bbox"][3] > 0:
            by_image.setdefault(ann["image_id"], []).append(ann)
    categories = {c["id"] for c in coco["categories"]}
    image = next(im for im in sorted(coco["images"], key=lambda im: im["id"])
                 if {a["category_id"] for a in by_image.get(im["id"], [])} == categories)
    anns = sorted(by_image[image["id"]], key=lambda a: a["id"])
    chosen = []
    for category in sorted(categories):  # one box of each category first
        chosen.append(next(a for a in anns if a["category_id"] == category))
    chosen += [a for a in anns if a not in chosen][:max(0, max_boxes - len(chosen))]
    height, width = image["height"], image["width"]
    boxes = np.array([[y / height, x / width, (y + h) / height, (x + w) / width]
                      for x, y, w, h in (a["bbox"] for a in chosen)], np.float32)
    classes = np.array([a["category_id"] - 1 for a in chosen], np.int32)
    with open(os.path.join(images, image["file_name"]), "rb") as f:
        jpeg = np.frombuffer(f.read(), np.uint8)
    np.savez(out, jpeg=jpeg, gt_boxes=boxes, gt_classes=classes,
             file_name=np.array(image["file_name"]))
    return f"{image['file_name']} ({width}x{height}), {len(chosen)} boxes"


def project_stages(config_path: str, inputs, work_dir: str,
                   checkpoint: str = "odapi_ckpt") -> dict[str, np.ndarray]:
    """Our model with the OD API checkpoint's weights: the same stages as reference.py."""
    import keras
    import tensorflow as tf

    from object_detection.builders import model_builder
    from object_detection.meta_architectures import odapi_checkpoint
    from object_detection.utils import config_util

    configs = config_util.get_configs_from_pipeline_file(config_path)
    model = model_builder.build(configs["model"], is_training=True)
    model.build()
    report = odapi_checkpoint.restore(model, os.path.join(work_dir, checkpoint))
    print(f"project: {report.summary()}")
    out: dict[str, np.ndarray] = {}
    reference = np.load(os.path.join(work_dir, "reference.npz"))
    decoded = tf.io.decode_image(inputs["jpeg"].tobytes(), channels=3, expand_animations=False)
    out["decoded"] = decoded.numpy()
    resized = model.resize_images(decoded[tf.newaxis])
    out["resized"] = resized.numpy()
    extractor = model.feature_extractor
    out["preprocessed_from_raw"] = extractor.preprocess(resized).numpy()
    image = tf.constant(reference["resized"])  # the common network input
    preprocessed = extractor.preprocess(image)
    out["preprocessed"] = preprocessed.numpy()
    out["num_parameters"] = np.array(model.count_params())
    out["num_trainable"] = np.array(sum(int(np.prod(v.shape)) for v in model.trainable_weights))
    out["regularization_loss"] = model.regularization_loss().numpy()  # what training adds

    backbone = extractor.backbone
    for level, feature in zip(extractor._base_levels, backbone(preprocessed, training=False)):
        out[f"C{level}"] = feature.numpy()
    pools = [layer for layer in backbone.layers if isinstance(layer, keras.layers.MaxPooling2D)]
    if pools:
        out["pool1"] = keras.Model(backbone.input, pools[0].output)(preprocessed).numpy()
    for level, feature in extractor(preprocessed, training=False).items():
        out[f"P{level}"] = feature.numpy()
    out["anchors"] = model.anchors.numpy()
    inference = model(image, training=False)
    out["box_encodings"] = inference["box_encodings"].numpy()
    out["class_logits"] = inference["class_predictions_with_background"].numpy()
    detections = model.postprocess(inference)
    for key in ("detection_boxes", "detection_scores", "detection_classes", "num_detections"):
        out[key] = detections[key].numpy()
    predictions = model(image, training=True)  # a training step's forward pass
    out["train_box_encodings"] = predictions["box_encodings"].numpy()
    out["train_class_logits"] = predictions["class_predictions_with_background"].numpy()
    boxes, classes = inputs["gt_boxes"], inputs["gt_classes"]
    groundtruth = {"groundtruth_boxes": tf.constant(boxes[np.newaxis]),
                   "groundtruth_classes": tf.constant(classes[np.newaxis]),
                   "num_groundtruth_boxes": tf.constant([len(boxes)], tf.int32)}
    losses = model.compute_losses(predictions, groundtruth)
    out["localization_loss"] = losses["Loss/localization_loss"].numpy()
    out["classification_loss"] = losses["Loss/classification_loss"].numpy()
    # The float32 noise floor of this network: the same training-mode pass on the image times
    # (1 + 1e-7 N(0, 1)), a perturbation at float32 round-off. Random deep networks amplify
    # it; a difference from the OD API at that level is round-off, not semantics.
    noise = 1.0 + 1e-7 * np.random.default_rng(0).standard_normal(image.shape)
    perturbed = model(image * noise.astype(np.float32), training=True)
    perturbed_losses = model.compute_losses(perturbed, groundtruth)
    out["noise/train_box_encodings"] = perturbed["box_encodings"].numpy()
    out["noise/train_class_logits"] = perturbed["class_predictions_with_background"].numpy()
    out["noise/localization_loss"] = perturbed_losses["Loss/localization_loss"].numpy()
    out["noise/classification_loss"] = perturbed_losses["Loss/classification_loss"].numpy()
    targets = model.assign_targets(groundtruth)
    for key in ("cls_targets", "reg_targets", "reg_weights", "match"):
        out[key] = targets[key].numpy()
    return out


class Table:
    def __init__(self):
        self.rows = ["| stage | max abs diff | max abs diff / max abs (OD API) | verdict |",
                     "|---|---|---|---|"]
        self.failed = []

    def add(self, name, ours, theirs, tolerance=MAP_TOLERANCE, noise=None):
        """A stage: same when within `tolerance` of scale. `noise` (our own output under a
        round-off-sized input perturbation) is shown beside it as the float32 noise floor."""
        ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
        if ours.shape != theirs.shape:
            self._row(name, "-", "-", False, f"shape {ours.shape} vs {theirs.shape}")
            return
        rel = _relative(ours, theirs)
        note = ""
        same = rel <= tolerance
        if noise is not None:
            floor = _relative(np.asarray(noise, np.float64), ours)
            note = f"float32 noise floor {floor:.2g}"
        diff = float(np.max(np.abs(ours - theirs))) if ours.size else 0.0
        self._row(name, f"{diff:.3g}", f"{rel:.3g}", same, note)

    def fact(self, name, same, note=""):
        self._row(name, "-", "-", same, note)

    def _row(self, name, diff, rel, same, note=""):
        verdict = "same" if same else "DIFFERS"
        if not same:
            self.failed.append(name)
        self.rows.append(f"| {name} | {diff} | {rel} | {verdict}{' (' + note + ')' if note else ''} |")


def _relative(a, b) -> float:
    """max |a - b| / max |b|."""
    if not a.size:
        return 0.0
    return float(np.max(np.abs(a - b))) / max(float(np.max(np.abs(b))), 1e-12)


def compare(ours, theirs) -> Table:
    t = Table()
    t.add("decoded JPEG", ours["decoded"], theirs["decoded"])
    t.add("fixed_shape_resizer (from the decoded photo)", ours["resized"], theirs["resized"])
    t.add("preprocessed (resize + normalize, from the photo)", ours["preprocessed_from_raw"],
          theirs["preprocessed_from_raw"])
    t.add("preprocessed (common input)", ours["preprocessed"], theirs["preprocessed"])
    t.add("anchors", ours["anchors"], theirs["anchors"], tolerance=1e-6)
    if "pool1" in theirs:
        t.add(f"backbone pool1 {tuple(theirs['pool1'].shape)}", ours.get("pool1"),
              theirs["pool1"])
    for level in (2, 3, 4, 5):
        if f"C{level}" in ours:
            t.add(f"backbone C{level} {tuple(theirs[f'C{level}'].shape)}", ours[f"C{level}"],
                  theirs[f"C{level}"])
    for level in range(2, 8):
        if f"P{level}" in theirs:
            t.add(f"FPN P{level} {tuple(theirs[f'P{level}'].shape)}", ours.get(f"P{level}"),
                  theirs[f"P{level}"])
    t.add(f"box encodings {tuple(theirs['box_encodings'].shape)}", ours["box_encodings"],
          theirs["box_encodings"])
    t.add(f"class logits {tuple(theirs['class_logits'].shape)}", ours["class_logits"],
          theirs["class_logits"])
    t.add("box encodings, training mode", ours["train_box_encodings"],
          theirs["train_box_encodings"], noise=ours["noise/train_box_encodings"])
    t.add("class logits, training mode", ours["train_class_logits"],
          theirs["train_class_logits"], noise=ours["noise/train_class_logits"])
    t.fact("match vector", np.array_equal(ours["match"], theirs["match"]),
           f"{int((theirs['match'] >= 0).sum())} matched anchors")
    t.add("regression targets", ours["reg_targets"], theirs["reg_targets"])
    t.add("regression weights", ours["reg_weights"], theirs["reg_weights"])
    t.add("class targets (K + 1 slots)", ours["cls_targets"], theirs["cls_targets"])
    t.add("localization loss (training mode)", ours["localization_loss"],
          theirs["localization_loss"], tolerance=LOSS_TOLERANCE,
          noise=ours["noise/localization_loss"])
    t.add("classification loss (training mode)", ours["classification_loss"],
          theirs["classification_loss"], tolerance=LOSS_TOLERANCE,
          noise=ours["noise/classification_loss"])
    t.add("L2 regularization loss", ours["regularization_loss"], theirs["regularization_loss"],
          tolerance=LOSS_TOLERANCE)
    t.fact("parameters", int(ours["num_parameters"]) == int(theirs["num_parameters"]),
           f"{int(ours['num_parameters']):,} here, {int(theirs['num_parameters']):,} OD API")
    t.fact("trainable parameters", int(ours["num_trainable"]) == int(theirs["num_trainable"]),
           f"{int(ours['num_trainable']):,} here, {int(theirs['num_trainable']):,} OD API")
    n_ours, n_theirs = int(ours["num_detections"][0]), int(theirs["num_detections"][0])
    t.fact("number of detections", n_ours == n_theirs, f"{n_ours} here, {n_theirs} OD API")
    n = min(n_ours, n_theirs)
    order, swaps = pair_detections(ours, theirs, n)
    t.fact(f"detection classes ({n})", np.array_equal(ours["detection_classes"][0, :n],
                                                     theirs["detection_classes"][0, :n][order]))
    for key in ("detection_scores", "detection_boxes"):
        a, b = ours[key][0, :n], theirs[key][0, :n][order]
        diff = float(np.max(np.abs(a - b))) if n else 0.0
        note = (f"{swaps} tied detections in another order, their scores equal within "
                f"{DETECTION_TOLERANCE:g}" if swaps else "")
        t._row(f"{key.replace('_', ' ')} ({n})", f"{diff:.3g}", "-", diff <= DETECTION_TOLERANCE,
               note)
    return t


def pair_detections(ours, theirs, n):
    """The OD API detection each of ours is compared with: the same rank, unless the boxes
    differ and an unpaired OD API detection of the same class, with a score tied within
    round-off (DETECTION_TOLERANCE), has our box; NMS orders such ties by the last bits of the
    score (or, for exact ties, by anchor order), so a group of tied detections may come in any
    order. Returns (index array, number of ranks paired with another rank)."""
    order = np.arange(n)
    boxes_a, boxes_b = ours["detection_boxes"][0], theirs["detection_boxes"][0]
    scores_a, scores_b = ours["detection_scores"][0], theirs["detection_scores"][0]
    classes_a, classes_b = ours["detection_classes"][0], theirs["detection_classes"][0]
    same_box = np.max(np.abs(boxes_a[:n, None] - boxes_b[None, :n]), axis=-1) \
        <= DETECTION_TOLERANCE
    tied = ((np.abs(scores_a[:n, None] - scores_b[None, :n]) <= DETECTION_TOLERANCE)
            & (classes_a[:n, None] == classes_b[None, :n]))
    paired = set(i for i in range(n) if same_box[i, i])
    swaps = 0
    for i in range(n):
        if same_box[i, i]:
            continue
        for j in np.flatnonzero(same_box[i] & tied[i]):
            if j not in paired:
                order[i] = j
                paired.add(j)
                swaps += 1
                break
    return order, swaps


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline_config", required=True)
    parser.add_argument("--odapi_python", required=True,
                        help="python of the OD API venv (TF 2.20 + tf-keras)")
    parser.add_argument("--odapi_research", required=True,
                        help="the OD API's models/research folder (holds object_detection/)")
    parser.add_argument("--work_dir", required=True)
    parser.add_argument("--annotations", default=DEFAULT_ANNOTATIONS)
    parser.add_argument("--images", default=None, help="default: ../images beside the json")
    parser.add_argument("--max_boxes", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reuse", action="store_true", help="keep an existing reference.npz")
    parser.add_argument("--tf1", action="store_true",
                        help="compare with the TF1 OD API (graph mode, TF-slim extractors: the "
                             "seed's network) instead of the TF2 one")
    parser.add_argument("--feature_extractor_type", default=None,
                        help="run both sides with this model.ssd.feature_extractor.type (e.g. "
                             "ssd_resnet50_v1_fpn_keras for a config that names the TF1 one)")
    args = parser.parse_args(argv)
    os.makedirs(args.work_dir, exist_ok=True)
    sys.path.insert(0, ROOT)
    if args.feature_extractor_type:
        from object_detection.utils import config_util
        configs = config_util.get_configs_from_pipeline_file(args.pipeline_config)
        configs["model"].ssd.feature_extractor.type = args.feature_extractor_type
        config_util.save_pipeline_config(
            config_util.create_pipeline_proto_from_configs(configs), args.work_dir)
        args.pipeline_config = os.path.join(args.work_dir, "pipeline.config")
    images = args.images or os.path.join(os.path.dirname(os.path.dirname(args.annotations)),
                                         "images")
    inputs_path = os.path.join(args.work_dir, "inputs.npz")
    print("image:", write_inputs(args.annotations, images, inputs_path, args.max_boxes))
    if not (args.reuse and os.path.exists(os.path.join(args.work_dir, "reference.npz"))):
        env = dict(os.environ, TF_USE_LEGACY_KERAS="1", PYTHONPATH=args.odapi_research,
                   TF_CPP_MIN_LOG_LEVEL="2")
        if args.tf1:  # TF-slim's nets/ live beside object_detection/ in models/research
            env["PYTHONPATH"] += os.pathsep + os.path.join(args.odapi_research, "slim")
        script = "reference_tf1.py" if args.tf1 else "reference.py"
        subprocess.run([args.odapi_python, os.path.join(HERE, script),
                        "--pipeline_config", args.pipeline_config, "--inputs", inputs_path,
                        "--work_dir", args.work_dir, "--seed", str(args.seed)],
                       env=env, check=True)
    inputs = np.load(inputs_path)
    ours = project_stages(args.pipeline_config, inputs, args.work_dir,
                          "tf1_ckpt" if args.tf1 else "odapi_ckpt")
    theirs = dict(np.load(os.path.join(args.work_dir, "reference.npz")))
    table = compare(ours, theirs)
    print(f"\n{os.path.basename(args.pipeline_config)}, {inputs['file_name']}, OD API "
          f"{'TF1' if args.tf1 else 'TF2'}:\n")
    print("\n".join(table.rows))
    if table.failed:
        print(f"\nDIFFERS: {', '.join(table.failed)}")
        return 1
    print("\nevery stage within float32 round-off")
    return 0


if __name__ == "__main__":
    sys.exit(main())
