"""The bad-input suite: a user mistake in a converter's input, a flag, a config or the records
ends in one line naming what is wrong and where (file, line, entry, field, flag or record),
exit code 2 (1: a converter ran but wrote nothing), never a traceback; what a run skips, its
summary counts.

Every case runs the real command in a fresh process, as a user would. `CASES` are the
commands that stop before they read or build anything; the functions after it are runs that
read records (they skip and count, or stop at the named record).

Checked elsewhere with the same rules, in-process: each config rule alone
(tests/utils/test_config_util.py), the converters' every-flaw round trips whose counts add up
(tests/dataset_tools/), ground truth with zero rows (tests/core/test_matcher.py,
tests/core/test_target_assigner.py).
"""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import tensorflow as tf

REPO = Path(__file__).resolve().parents[1]
SMALL_CONFIG = str(REPO / "configs" / "ssd_mobilenet_v2_fpn_shapes_128_cpu.config")
MODEL_MAIN = str(REPO / "object_detection" / "model_main.py")
COCO = "object_detection.dataset_tools.create_coco_tf_record"
VOC = "object_detection.dataset_tools.create_pascal_tf_record"


@dataclasses.dataclass
class Case:
    id: str
    command: str  # "train" (model_main), "coco" or "voc"
    args: list[str]
    line: str  # the one error line starts with this ("{d}": the work folder, "{out}": the
    # case's own output folder or model_dir, which must stay empty when the exit code is 2)
    exit_code: int = 2
    summary: str = ""  # a line of the run's summary, when it read anything


_IMAGE = {"id": 1, "file_name": "a.jpg", "width": 8, "height": 8}
_ANNOTATION = {"id": 7, "image_id": 1, "category_id": 1, "bbox": [1, 1, 2, 2]}
_CATEGORIES = [{"id": 1, "name": "one"}]
JSONS = {
    "not_json": "{not json",
    "no_images": {"annotations": []},
    "no_bbox": {"images": [_IMAGE], "annotations": [
        {"id": 7, "image_id": 1, "category_id": 1}]},
    "bbox_of_3": {"images": [_IMAGE], "annotations": [{**_ANNOTATION, "bbox": [1, 2, 3]}]},
    "same_id": {"images": [_IMAGE, {**_IMAGE, "file_name": "b.jpg"}]},
    "category_0": {"images": [_IMAGE], "categories": [{"id": 0, "name": "background"}]},
    "annotation_category_0": {"images": [_IMAGE],
                              "annotations": [{**_ANNOTATION, "category_id": 0}]},
    "image_missing": {"images": [_IMAGE], "annotations": [_ANNOTATION],
                      "categories": _CATEGORIES},
    "good": {"images": [], "categories": _CATEGORIES},
}


def _coco(name: str, *extra: str) -> list[str]:
    return [f"--val_annotations_file={{d}}/{name}.json", "--val_image_dir={d}",
            "--output_dir={out}", "--noprogress", "--num_workers=1", *extra]


def _voc(*extra: str, **flags: str) -> list[str]:
    values = {"annotations_dir": "{d}/voc/xml", "images_dir": "{d}/voc/images",
              "label_map_path": "{d}/voc/label_map.pbtxt", "output_path": "{out}/x.record",
              **flags}
    return [f"--{k}={v}" for k, v in values.items()] + ["--noprogress", "--num_workers=1",
                                                       *extra]


def _train(*extra: str) -> list[str]:
    return ["--pipeline_config_path", SMALL_CONFIG, "--model_dir", "{out}", "{inputs}", *extra]


def _config_file(name: str) -> list[str]:
    return ["--pipeline_config_path", f"{{d}}/configs/{name}", "--model_dir", "{out}"]


CASES = [
    # create_coco_tf_record: a json broken as a whole, and its flags.
    Case("coco_not_json", "coco", _coco("not_json"),
         "{d}/not_json.json:1:2: not valid JSON"),
    Case("coco_no_images", "coco", _coco("no_images"),
         '{d}/no_images.json: no "images" list at the top level'),
    Case("coco_annotation_without_bbox", "coco", _coco("no_bbox"),
         "{d}/no_bbox.json: annotations[0] (id 7): bbox must be [x, y, width, height] "
         "(4 numbers), got None."),
    Case("coco_bbox_of_3_numbers", "coco", _coco("bbox_of_3"),
         "{d}/bbox_of_3.json: annotations[0] (id 7): bbox must be [x, y, width, height] "
         "(4 numbers), got [1, 2, 3]."),
    Case("coco_duplicate_image_ids", "coco", _coco("same_id"),
         "{d}/same_id.json: images[0] and images[1] have the same id 1 ('b.jpg')"),
    Case("coco_category_id_0", "coco", _coco("category_0"),
         "{d}/category_0.json: category id 0 ('background') is the background id of OD API "
         "label maps"),
    Case("coco_annotation_category_id_0", "coco", _coco("annotation_category_0"),
         "{d}/annotation_category_0.json: annotations[0] (id 7): category_id 0 is the "
         "background id"),
    Case("coco_missing_json", "coco", _coco("nowhere"),
         "--val_annotations_file: '{d}/nowhere.json' does not exist."),
    Case("coco_missing_image_dir", "coco", _coco("good")[:1] + [
        "--val_image_dir={d}/no_such_dir", "--output_dir={out}"],
         "--val_image_dir: '{d}/no_such_dir' does not exist."),
    Case("coco_zero_shards", "coco", _coco("good", "--val_num_shards=0"),
         "--val_num_shards: must be >= 1, got 0."),
    Case("coco_output_dir_cannot_be_made", "coco", _coco("good")[:2] + [
        "--output_dir={d}/a_file/out"],
         "--output_dir: cannot create the folder '{d}/a_file/out'"),
    Case("coco_every_image_missing", "coco", _coco("image_missing"),
         "{out}/coco_val.record: none of the 1 images was written", exit_code=1,
         summary="images: read 1, written 0, skipped 1 (missing image file: 1)"),
    # create_pascal_tf_record: its flags and label map.
    Case("voc_missing_annotations_dir", "voc", _voc(annotations_dir="{d}/nowhere"),
         "--annotations_dir: '{d}/nowhere' does not exist."),
    Case("voc_images_dir_is_a_file", "voc", _voc(images_dir="{d}/a_file"),
         "--images_dir: '{d}/a_file' is a file, not a folder."),
    Case("voc_missing_label_map", "voc", _voc(label_map_path="{d}/nowhere.pbtxt"),
         "--label_map_path: '{d}/nowhere.pbtxt' does not exist."),
    Case("voc_label_map_with_id_0", "voc", _voc(label_map_path="{d}/voc/label_map_0.pbtxt"),
         "{d}/voc/label_map_0.pbtxt: id 0 is reserved for 'background', got 'cat'."),
    Case("voc_missing_image_list", "voc", _voc("--image_list={d}/nowhere.txt"),
         "--image_list: '{d}/nowhere.txt' does not exist."),
    Case("voc_zero_shards", "voc", _voc("--num_shards=0"),
         "--num_shards: must be >= 1, got 0."),
    Case("voc_every_image_unusable", "voc", _voc(images_dir="{d}/voc/no_images"),
         "{out}/x.record: none of the 1 images was written", exit_code=1,
         summary="boxes:  read 1, written 0, dropped 1 (its image was skipped: 1)"),
    # model_main flags, checked before the config is read.
    *[Case(f"flag_{flag}_{value}", "train", _train(f"--{flag}={value}"),
           f"--{flag}: must be {rule}, got {value}.")
      for flag, value, rule in [
          ("checkpoint_every_n", 0, ">= 1"), ("log_every_n", 0, ">= 1"),
          ("keep_checkpoint_max", 0, ">= 1"), ("sample_1_of_n_eval_examples", 0, ">= 1"),
          ("num_train_steps", -1, ">= 0"), ("eval_count", -1, ">= 0"),
          ("benchmark_last_k", -1, ">= 0"), ("collective_timeout_s", 0.0, "> 0")]],
    Case("cpu_replicas_without_mirrored", "train", _train("--cpu_replicas=2"),
         "--cpu_replicas: needs --strategy mirrored."),
    # Config files.
    Case("config_missing_file", "train", _config_file("nowhere.config"),
         "{d}/configs/nowhere.config: pipeline config file not found."),
    Case("config_directory", "train", _config_file("a_folder.config"),
         "{d}/configs/a_folder.config: is a directory; expected a pipeline config file"),
    Case("config_empty_file", "train", _config_file("empty.config"),
         "model: no model is set; expected e.g. 'model { ssd { ... } }'."),
    Case("config_typo", "train", _config_file("typo.config"),
         '{d}/configs/typo.config:13:5: message "object_detection.protos.Ssd" has no field '
         'named "num_clases"; did you mean "num_classes"? (at model.ssd)'),
    Case("config_wrong_type", "train", _config_file("wrong_type.config"),
         '{d}/configs/wrong_type.config:13:18: Couldn\'t parse integer: "three" '
         "(at model.ssd.num_classes)"),
    Case("config_bad_enum", "train", _config_file("bad_enum.config"),
         "{d}/configs/bad_enum.config:"),
    Case("config_missing_brace", "train", _config_file("missing_brace.config"),
         "{d}/configs/missing_brace.config:"),
    # Config values (dotted overrides; the same rules apply to the file's own values).
    Case("override_unknown_field", "train", _train("--config_override=model.ssd.num_clases=3"),
         "override 'model.ssd.num_clases=3': model.ssd.num_clases: unknown field 'num_clases' "
         "in model.ssd (message object_detection.protos.Ssd); did you mean 'num_classes'?"),
    Case("override_wrong_type", "train", _train("--config_override=model.ssd.num_classes=abc"),
         "override 'model.ssd.num_classes=abc': model.ssd.num_classes: cannot use 'abc': "
         "expected a 32-bit integer (int32)."),
    Case("override_negative_batch_size", "train",
         _train("--config_override=train_config.batch_size=-1"),
         "override 'train_config.batch_size=-1': train_config.batch_size: cannot use '-1': "
         "expected an unsigned 32-bit integer (uint32, >= 0)."),
    Case("thresholds_out_of_order", "train", _train(
        "--config_override=model.ssd.matcher.argmax_matcher.matched_threshold=0.4"),
         "model.ssd.matcher.argmax_matcher: need 0 <= unmatched_threshold (0.5) <= "
         "matched_threshold (0.4) <= 1."),
    Case("momentum_out_of_range", "train", _train(
        "--config_override=train_config.optimizer.momentum_optimizer."
        "momentum_optimizer_value=2"),
         "train_config.optimizer.momentum_optimizer.momentum_optimizer_value: got 2; must be "
         "in [0, 1]."),
    Case("fpn_levels_out_of_order", "train", _train(
        "--config_override=model.ssd.feature_extractor.fpn.min_level=8"),
         "2 problems in the pipeline config:"),
    Case("unsupported_field", "train", _train(  # config_fields: refused by name, at load
        "--config_override=train_config.bias_grad_multiplier=2",
        "--config_override=graph_rewriter={quantization: {delay: 10}}"),
         "2 fields of the pipeline config are not supported:",
         summary="  graph_rewriter: is not supported; quantization-aware training is not "
                 "supported: it needs tensorflow-model-optimization, which has no Keras 3"),
    Case("unknown_feature_extractor", "train", _train(
        "--config_override=model.ssd.feature_extractor.type=ssd_foo"),
         "model.ssd.feature_extractor.type: 'ssd_foo' is not implemented; supported: "),
    Case("zero_image_height", "train", _train(
        "--config_override=model.ssd.image_resizer.fixed_shape_resizer.height=0"),
         "model.ssd.image_resizer.fixed_shape_resizer: height and width must be > 0, got "
         "0x128."),
    Case("bad_fine_tune_checkpoint_type", "train", _train(
        "--config_override=train_config.fine_tune_checkpoint=/x.h5",
        "--config_override=train_config.fine_tune_checkpoint_type=backbone"),
         "train_config.fine_tune_checkpoint_type: 'backbone' is not supported; expected one "
         "of ['classification', 'detection', 'full']."),
    # Paths the config names, checked before the model is built.
    Case("missing_fine_tune_checkpoint", "train", _train(
        "--config_override=train_config.fine_tune_checkpoint={d}/nowhere/model.ckpt"),
         "train_config.fine_tune_checkpoint: '{d}/nowhere/model.ckpt' does not exist"),
    Case("train_input_matches_nothing", "train", _train(
        "--config_override=train_input_reader.tf_record_input_reader.input_path="
        "{d}/nowhere-*.record"),
         "train_input_reader.tf_record_input_reader.input_path: no file matches "
         "['{d}/nowhere-*.record']."),
    Case("eval_input_matches_nothing", "train", _train(
        "--config_override=eval_input_reader.0.tf_record_input_reader.input_path="
        "{d}/nowhere-*.record"),
         "eval_input_reader.tf_record_input_reader.input_path: no file matches "
         "['{d}/nowhere-*.record']."),
    Case("missing_label_map", "train", _train(
        "--config_override=train_input_reader.label_map_path={d}/nowhere.pbtxt"),
         "train_input_reader.label_map_path: '{d}/nowhere.pbtxt' does not exist."),
    Case("label_map_does_not_fit_num_classes", "train", _train(
        "--config_override=model.ssd.num_classes=5"),
         "model.ssd.num_classes: is 5 but the label map '{label_map}' "
         "(train_input_reader.label_map_path) has 3 classes with largest id 3"),
    Case("eval_only_without_checkpoint", "train",
         ["--pipeline_config_path", SMALL_CONFIG, "--checkpoint_dir", "{d}/empty_dir",
          "--model_dir", "{out}", "--run_once", "{inputs}"],
         "--checkpoint_dir {d}/empty_dir: no checkpoint found."),
]


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """The files the cases read."""
    d = tmp_path_factory.mktemp("bad_input")
    for name, content in JSONS.items():
        (d / f"{name}.json").write_text(content if isinstance(content, str)
                                        else json.dumps(content))
    (d / "a_file").write_text("not a folder")
    (d / "empty_dir").mkdir()
    voc = d / "voc"
    (voc / "xml").mkdir(parents=True)
    (voc / "images").mkdir()
    (voc / "no_images").mkdir()
    (voc / "xml" / "a.xml").write_text(
        "<annotation><filename>a.jpg</filename><object><name>cat</name><bndbox><xmin>1</xmin>"
        "<ymin>1</ymin><xmax>5</xmax><ymax>5</ymax></bndbox></object></annotation>")
    (voc / "label_map.pbtxt").write_text('item { id: 1 name: "cat" }\n')
    (voc / "label_map_0.pbtxt").write_text('item { id: 0 name: "cat" }\n')
    configs = d / "configs"
    configs.mkdir()
    (configs / "a_folder.config").mkdir()
    (configs / "empty.config").write_text("")
    text = Path(SMALL_CONFIG).read_text()
    assert "    num_classes: 3\n" in text.splitlines(keepends=True)[12]  # line 13
    edits = {"typo.config": ("num_classes: 3", "num_clases: 3"),
             "wrong_type.config": ("num_classes: 3", 'num_classes: "three"'),
             "bad_enum.config": ("activation: RELU_6", "activation: RELU_7")}
    for name, (old, new) in edits.items():
        assert old in text, (name, old)
        (configs / name).write_text(text.replace(old, new, 1))
    (configs / "missing_brace.config").write_text(text.rstrip().rstrip("}"))
    return d


def _command(kind: str) -> list[str]:
    if kind == "train":
        return [sys.executable, MODEL_MAIN]
    return [sys.executable, "-m", {"coco": COCO, "voc": VOC}[kind]]


def _run(kind: str, args: list[str], cwd: Path) -> tuple[int, str]:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(REPO))
    result = subprocess.run(_command(kind) + args, cwd=cwd, env=env, capture_output=True,
                            text=True, timeout=600)
    return result.returncode, result.stdout + result.stderr


def _fill(text: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        text = text.replace("{" + key + "}", value)
    return text


def _error_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, output[-3000:]
    return lines[0]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_a_bad_input_stops_with_one_line_naming_it(case, work, small_overrides,
                                                   shapes_dataset):
    out = work / f"out_{case.id}"
    values = {"d": str(work), "out": str(out), "label_map": shapes_dataset["label_map"]}
    args = []
    for arg in case.args:  # the case's own --config_override come after {inputs}: they win
        if arg == "{inputs}":
            args += [f"--config_override={o}" for o in small_overrides]
        else:
            args.append(_fill(arg, values))
    code, output = _run(case.command, args, work)
    assert code == case.exit_code, output[-3000:]
    assert "Traceback" not in output
    expected = "error: " + _fill(case.line, values)
    print(f"{case.id}: {_error_line(output)}")  # the suite's listing (pytest -s)
    assert _error_line(output).startswith(expected), (_error_line(output), expected)
    if case.exit_code == 2:
        assert not out.exists() or not os.listdir(out), "nothing is written"
    assert case.summary in output


# Runs that read records: a corrupt record or one whose class ids fall outside the label map
# stops the run at that record (--on_corrupt=stop), or is skipped and counted (skip, the
# default); an input where nothing is usable stops instead of looping.

def _rewrite(shapes_dataset, path: Path, edit, count: int = 8) -> str:
    """The first `count` records of a shapes shard, `edit(index, example)` applied."""
    source = sorted(tf.io.gfile.glob(shapes_dataset["train_records"]))[0]
    with tf.io.TFRecordWriter(str(path)) as writer:
        for i, record in enumerate(tf.data.TFRecordDataset(source).take(count)):
            example = tf.train.Example.FromString(record.numpy())
            edit(i, example)
            writer.write(example.SerializeToString())
    return str(path)


def _labels(example):
    return example.features.feature["image/object/class/label"].int64_list.value


def _train_on(tiny_overrides, records: str, model_dir: Path, *extra: str) -> tuple[int, str]:
    args = ["--pipeline_config_path", SMALL_CONFIG, "--model_dir", str(model_dir),
            "--num_train_steps", "2", "--eval_count", "0",
            *[f"--config_override={o}" for o in tiny_overrides],
            f"--config_override=train_input_reader.tf_record_input_reader.input_path={records}",
            *extra]
    return _run("train", args, model_dir.parent)


def test_a_corrupt_record_stops_the_run_or_is_skipped_and_counted(shapes_dataset,
                                                                   tiny_overrides, tmp_path):
    def corrupt_5(i, example):
        if i == 5:
            example.features.feature["image/encoded"].bytes_list.value[0] = b"\xff\xd8junk"

    bad = _rewrite(shapes_dataset, tmp_path / "corrupt.record", corrupt_5)
    code, out = _train_on(tiny_overrides, bad, tmp_path / "stop", "--on_corrupt=stop")
    assert code == 2, out[-3000:]
    assert "Traceback" not in out
    assert _error_line(out).startswith(f"error: DataError: {bad}: record 5 is corrupt")
    assert tf.train.latest_checkpoint(str(tmp_path / "stop")) is None

    code, out = _train_on(tiny_overrides, bad, tmp_path / "skip")
    assert code == 0, out[-3000:]
    assert f"1 distinct: {bad} record 5" in out
    assert tf.train.latest_checkpoint(str(tmp_path / "skip")).endswith("ckpt-2")


def test_class_ids_outside_the_label_map_stop_the_run_or_are_skipped_and_counted(
        shapes_dataset, tiny_overrides, tmp_path):
    # Record 3 holds class 0 (the background id), record 5 class 9 (num_classes is 3).
    def relabel(i, example):
        if i in (3, 5):
            _labels(example)[0] = {3: 0, 5: 9}[i]

    bad = _rewrite(shapes_dataset, tmp_path / "labels.record", relabel)
    code, out = _train_on(tiny_overrides, bad, tmp_path / "stop", "--on_corrupt=stop")
    assert code == 2, out[-3000:]
    assert "Traceback" not in out
    assert _error_line(out) == (
        f"error: DataError: {bad}: record 3 has class labels outside 1..num_classes (3); the "
        "label map / num_classes do not match the records (ids are 1..num_classes; 0 is the "
        "background id)")
    assert tf.train.latest_checkpoint(str(tmp_path / "stop")) is None

    # Skipped and counted, in training (the input repeats: counted each time) and evaluation.
    code, out = _train_on(
        tiny_overrides, bad, tmp_path / "skip", "--eval_count=1",
        f"--config_override=eval_input_reader.0.tf_record_input_reader.input_path={bad}")
    assert code == 0, out[-3000:]
    assert f"2 distinct: {bad} record 3, {bad} record 5" in out
    assert "evaluation at step 2: 6 images, 2 records skipped (class labels outside " \
        "1..num_classes: 2)" in out
    assert f"{bad}: record 5 has class labels outside 1..num_classes (3)" in out  # warned


def test_an_input_with_no_usable_record_stops_instead_of_looping(shapes_dataset,
                                                                  tiny_overrides, tmp_path):
    def relabel_all(i, example):
        for j in range(len(_labels(example))):
            _labels(example)[j] = 9

    bad = _rewrite(shapes_dataset, tmp_path / "all_bad.record", relabel_all)
    code, out = _train_on(tiny_overrides, bad, tmp_path / "train")
    assert code == 2, out[-3000:]
    assert "Traceback" not in out
    assert _error_line(out) == (
        f"error: DataError: no usable record in 1 input file(s) ({bad}): every record was "
        "skipped (see the warnings above: corrupt records, or class labels outside "
        "1..num_classes)")
    assert tf.train.latest_checkpoint(str(tmp_path / "train")) is None

    code, out = _train_on(
        tiny_overrides, shapes_dataset["train_records"], tmp_path / "eval", "--eval_count=1",
        f"--config_override=eval_input_reader.0.tf_record_input_reader.input_path={bad}")
    assert code == 2, out[-3000:]
    assert "Traceback" not in out
    assert _error_line(out) == (
        "error: eval_input_reader: no image to evaluate: every record was skipped (class "
        "labels outside 1..num_classes: 8; see the warnings).")
