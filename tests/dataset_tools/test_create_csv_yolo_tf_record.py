"""create_csv_tf_record, create_yolo_tf_record: BCCD as CSV and as YOLO txt gives the COCO json's
records box by box; malformed rows and lines, out-of-image boxes and missing images are counted
and named; CLI."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from object_detection.data import label_map_util
from object_detection.dataset_tools import conversion, dataset_util
from object_detection.dataset_tools.create_coco_tf_record import convert_coco
from object_detection.dataset_tools.create_csv_tf_record import CsvFormatError, convert_csv
from object_detection.dataset_tools.create_yolo_tf_record import convert_yolo

REPO = Path(__file__).resolve().parents[2]
BCCD = REPO.parent / "shared" / "datasets" / "bccd"
needs_bccd = pytest.mark.skipif(not (BCCD / "annotations").is_dir(),
                                reason=f"BCCD dataset not found at {BCCD}")
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}


def _jpeg(width: int = 40, height: int = 30) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((height, width, 3), 128, np.uint8)).save(buffer, "JPEG")
    return buffer.getvalue()


def _write_bccd_csv(coco: dict, path: Path) -> None:
    """The COCO json as the tutorials' CSV: one row per box, pixel corners."""
    images = {i["id"]: i for i in coco["images"]}
    names = {c["id"]: c["name"] for c in coco["categories"]}
    rows = ["filename,width,height,class,xmin,ymin,xmax,ymax"]
    for a in coco["annotations"]:
        image = images[a["image_id"]]
        x, y, w, h = a["bbox"]
        rows.append(f"{image['file_name']},{image['width']},{image['height']},"
                    f"{names[a['category_id']]},{x!r},{y!r},{x + w!r},{y + h!r}")
    path.write_text("\n".join(rows) + "\n")


def _write_bccd_yolo(coco: dict, labels_dir: Path, names_path: Path) -> None:
    """The COCO json as YOLO labels: normalized centres and sizes, class id = category id - 1."""
    categories = sorted(coco["categories"], key=lambda c: c["id"])
    assert [c["id"] for c in categories] == list(range(1, len(categories) + 1))
    names_path.write_text("".join(c["name"] + "\n" for c in categories))
    labels_dir.mkdir()
    lines: dict[int, list[str]] = {i["id"]: [] for i in coco["images"]}
    sizes = {i["id"]: (i["width"], i["height"]) for i in coco["images"]}
    for a in coco["annotations"]:
        width, height = sizes[a["image_id"]]
        x, y, w, h = a["bbox"]
        values = ((x + w / 2) / width, (y + h / 2) / height, w / width, h / height)
        lines[a["image_id"]].append(
            f"{a['category_id'] - 1} " + " ".join(f"{v:.17g}" for v in values))
    for image in coco["images"]:
        stem = os.path.splitext(image["file_name"])[0]
        (labels_dir / f"{stem}.txt").write_text("".join(line + "\n" for line in lines[image["id"]]))


@needs_bccd
def test_bccd_as_csv_and_as_yolo_gives_the_coco_records_box_by_box(tmp_path):
    coco_json = BCCD / "annotations" / "instances_val.json"
    coco = json.loads(coco_json.read_text())
    _write_bccd_csv(coco, tmp_path / "val.csv")
    _write_bccd_yolo(coco, tmp_path / "labels", tmp_path / "classes.txt")
    label_map = tmp_path / "bccd_label_map.pbtxt"
    label_map_util.write_label_map(str(label_map), coco["categories"])
    yolo_images = tmp_path / "yolo_images"  # the split's images only, as YOLO datasets hold them
    yolo_images.mkdir()
    for image in coco["images"]:
        (yolo_images / image["file_name"]).symlink_to(BCCD / "images" / image["file_name"])

    summaries = {
        "coco": convert_coco(str(coco_json), str(BCCD / "images"), str(tmp_path / "coco.record")),
        "csv": convert_csv(str(tmp_path / "val.csv"), str(BCCD / "images"),
                           str(tmp_path / "csv.record"), label_map_path=str(label_map),
                           num_shards=2),
        "yolo": convert_yolo(str(yolo_images), str(tmp_path / "classes.txt"),
                             str(tmp_path / "yolo" / "yolo.record"),
                             labels_dir=str(tmp_path / "labels"), num_shards=3),
    }
    records = {name: {r["filename"]: r for r in dataset_util.read_examples(str(pattern))}
               for name, pattern in (("coco", tmp_path / "coco.record-*"),
                                     ("csv", tmp_path / "csv.record-*"),
                                     ("yolo", tmp_path / "yolo" / "yolo.record-*"))}
    val_files = {i["file_name"] for i in coco["images"]}
    assert len(val_files) == 87
    for name in summaries:
        assert set(records[name]) == val_files, name
    for filename, want in records["coco"].items():
        for name in ("csv", "yolo"):
            got = records[name][filename]
            assert got["encoded"] == want["encoded"], (name, filename)
            assert (got["width"], got["height"]) == (want["width"], want["height"])
            assert got["labels"] == want["labels"], (name, filename)
            assert got["texts"] == want["texts"], (name, filename)
            np.testing.assert_allclose(got["boxes"], want["boxes"], atol=1e-6, rtol=0,
                                       err_msg=f"{name} {filename}")
            np.testing.assert_allclose(got["area"], want["area"], rtol=1e-5)
            assert got["is_crowd"] == want["is_crowd"]
    for summary in summaries.values():
        assert (summary.images_read, summary.images_written) == (87, 87)
        assert (summary.boxes_read, summary.boxes_written) == (1137, 1137)
        assert not summary.boxes_dropped and not summary.images_skipped
    assert summaries["yolo"].images_without_labels == 0
    assert summaries["csv"].output_files == [str(tmp_path / f"csv.record-0000{i}-of-00002")
                                             for i in range(2)]
    # The YOLO label map: name k is id k + 1, beside the output.
    assert label_map_util.get_label_map_dict(str(tmp_path / "yolo" / "label_map.pbtxt")) == {
        "WBC": 1, "RBC": 2, "Platelets": 3}


@needs_bccd
def test_csv_without_a_label_map_numbers_the_sorted_class_names_and_writes_them(tmp_path):
    coco = json.loads((BCCD / "annotations" / "instances_val.json").read_text())
    coco["images"] = coco["images"][:5]
    kept = {i["id"] for i in coco["images"]}
    coco["annotations"] = [a for a in coco["annotations"] if a["image_id"] in kept]
    _write_bccd_csv(coco, tmp_path / "val.csv")
    summary = convert_csv(str(tmp_path / "val.csv"), str(BCCD / "images"),
                          str(tmp_path / "out" / "val.record"))

    ids = {"Platelets": 1, "RBC": 2, "WBC": 3}
    label_map = tmp_path / "out" / "label_map.pbtxt"
    assert label_map_util.get_label_map_dict(str(label_map)) == ids
    assert f"label map: {label_map} (written: Platelets=1, RBC=2, WBC=3)" in summary.format()
    records = dataset_util.read_examples(str(tmp_path / "out" / "val.record"))
    assert len(records) == 5 and summary.boxes_written == len(coco["annotations"])
    for record in records:
        assert record["labels"] == [ids[t] for t in record["texts"]]

    # A second split whose classes would get other ids does not renumber the first one's.
    coco["annotations"] = [a for a in coco["annotations"] if a["category_id"] != 3]
    _write_bccd_csv(coco, tmp_path / "test.csv")
    with pytest.raises(conversion.InputError, match=r"label_map_output_path: .*label_map\.pbtxt"
                       r"' exists with other classes or ids \(Platelets=1, RBC=2, WBC=3\) than "
                       r"this data \(RBC=1, WBC=2\); pass it as --label_map_path"):
        convert_csv(str(tmp_path / "test.csv"), str(BCCD / "images"),
                    str(tmp_path / "out" / "test.record"))
    assert not (tmp_path / "out" / "test.record").exists()
    convert_csv(str(tmp_path / "test.csv"), str(BCCD / "images"),
                str(tmp_path / "out" / "test.record"), label_map_path=str(label_map))
    assert label_map_util.get_label_map_dict(str(label_map)) == ids


def _write_flawed_csv(tmp_path: Path) -> tuple[Path, Path, Path]:
    """Every flaw of a CSV at once; the line numbers are those of the file."""
    images = tmp_path / "images"
    images.mkdir()
    for name in ("a.jpg", "b.jpg", "c.jpg", "d.jpg", "e.jpg"):
        (images / name).write_bytes(_jpeg(40, 30))
    (images / "big.jpg").write_bytes(_jpeg(80, 30))
    rows = [
        "ymax,note,xmax,ymin,xmin,Class,height,width,filename",  # 1: any order, extra column
        "9,,12,3,4,cat,30,40,a.jpg",                  # 2: good
        "20,,50,10,10,dog,30,40,a.jpg",               # 3: partly outside: clipped
        "5,,5,1,1,cat,30,40",                         # 4: 8 fields
        "5,,5,1,x1,cat,30,40,a.jpg",                  # 5: xmin not a number
        "5,,5,1,1,cat,30,40,",                        # 6: empty filename
        "5,,5,1,1,,30,40,b.jpg",                      # 7: empty class
        "5,,5,1,1,cat,30,forty,b.jpg",                # 8: width not a number
        "5,,5,1,1,horse,30,40,b.jpg",                 # 9: not in the label map
        "5,,60,1,45,cat,30,40,b.jpg",                 # 10: entirely outside
        "5,,5,1,5,cat,30,40,c.jpg",                   # 11: zero width
        "5,,5,1,nan,cat,30,40,c.jpg",                 # 12: not finite
        "",                                           # 13: a blank line
        "5,,5,1,1,cat,30,40,missing.jpg",             # 14: no such image file
        "5,,5,1,1,cat,30,40,big.jpg",                 # 15: the file is 80x30
        "5,,5,1,1,cat,30,40,d.jpg",                   # 16
        "5,,5,1,1,cat,60,80,d.jpg",                   # 17: rows of d.jpg disagree on the size
        ",,,,,,30,40,e.jpg",                          # 18: an image without boxes
    ]
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    label_map = tmp_path / "label_map.pbtxt"
    label_map_util.write_label_map(str(label_map), {"cat": 1, "dog": 2})
    return tmp_path / "labels.csv", images, label_map


def test_flawed_csv_rows_and_boxes_are_each_counted_and_named_by_line(tmp_path):
    csv_path, images, label_map = _write_flawed_csv(tmp_path)
    summary = convert_csv(str(csv_path), str(images), str(tmp_path / "out.record"),
                          label_map_path=str(label_map))

    assert (summary.images_read, summary.images_written) == (7, 4)  # a, b, c, e
    assert dict(summary.images_skipped) == {conversion.SKIP_MISSING_FILE: 1,
                                            conversion.SKIP_SIZE_MISMATCH: 2}
    skipped = dict(summary.skipped_images)
    assert skipped["missing.jpg"] == (f"{conversion.SKIP_MISSING_FILE} ({images / 'missing.jpg'}"
                                      f", named at {csv_path}:14)")
    assert skipped["big.jpg"].startswith(
        f"{conversion.SKIP_SIZE_MISMATCH} (annotation 40x30, file 80x30")
    assert skipped["d.jpg"] == (f"{conversion.SKIP_SIZE_MISMATCH} (rows give 40x30 at "
                                f"{csv_path}:16 and 80x60 at {csv_path}:17, named at "
                                f"{csv_path}:16)")
    assert summary.boxes_read == 15 and summary.boxes_written == 2
    assert dict(summary.boxes_dropped) == {
        conversion.DROP_MALFORMED_FIELDS: 1, conversion.DROP_MALFORMED_VALUE: 4,
        f"{conversion.DROP_UNKNOWN_CLASS}: 'horse'": 1, conversion.DROP_OUTSIDE: 1,
        conversion.DROP_ZERO_AREA: 1, conversion.DROP_NON_FINITE: 1,
        conversion.DROP_IMAGE_SKIPPED: 4}
    line = lambda n: f"{csv_path}:{n}"
    assert summary.dropped_lines == [
        (line(4), f"{conversion.DROP_MALFORMED_FIELDS} (8 fields, the header has 9)"),
        (line(5), f"{conversion.DROP_MALFORMED_VALUE} (xmin 'x1' is not a number)"),
        (line(6), f"{conversion.DROP_MALFORMED_VALUE} (empty filename)"),
        (line(7), f"{conversion.DROP_MALFORMED_VALUE} (empty class)"),
        (line(8), f"{conversion.DROP_MALFORMED_VALUE} (width 'forty' is not a positive "
                  "integer)"),
        (line(9), f"{conversion.DROP_UNKNOWN_CLASS}: 'horse'"),
        (line(10), conversion.DROP_OUTSIDE),
        (line(11), conversion.DROP_ZERO_AREA),
        (line(12), conversion.DROP_NON_FINITE),
    ]
    # Boxes with a known line are named by line only; those of skipped images by image.
    assert sorted(summary.dropped_boxes) == [
        ("big.jpg", conversion.DROP_IMAGE_SKIPPED, 1), ("d.jpg", conversion.DROP_IMAGE_SKIPPED, 2),
        ("missing.jpg", conversion.DROP_IMAGE_SKIPPED, 1)]
    assert summary.clipped_boxes == [("a.jpg", 1)]
    report = summary.format()
    assert f"    {line(10)}: {conversion.DROP_OUTSIDE}" in report
    assert "written without boxes: 3" in report  # b.jpg, c.jpg: boxes dropped; e.jpg: none

    records = {r["filename"]: r for r in dataset_util.read_examples(str(tmp_path / "out.record"))}
    assert sorted(records) == ["a.jpg", "b.jpg", "c.jpg", "e.jpg"]
    np.testing.assert_allclose(records["a.jpg"]["boxes"],
                               [[0.1, 0.1, 0.3, 0.3], [1 / 3, 0.25, 2 / 3, 1.0]])
    assert records["a.jpg"]["labels"] == [1, 2] and records["a.jpg"]["texts"] == ["cat", "dog"]
    assert records["a.jpg"]["source_id"] == "a.jpg"
    assert records["e.jpg"]["boxes"] == []


@pytest.mark.parametrize("content, message", [
    ("", r"the file is empty; expected a header row"),
    ("filename,width,height,label,xmin,ymin,xmax,ymax\n",  # 'class' spelled otherwise
     r"labels\.csv:1: the header has no class column"),
    ("filename,width,class,xmin,ymin,xmax,ymax\n",
     r"labels\.csv:1: the header has no height column; .*width and height together"),
    ("filename,class,xmin,ymin,xmax,ymax,xmin\n",
     r"labels\.csv:1: the header names the column 'xmin' twice"),
    (b"filename,class,xmin,ymin,xmax,ymax\n\xff,a,1,1,2,2\n", r"not UTF-8 text"),
])
def test_a_csv_broken_as_a_whole_stops_naming_the_file(content, message, tmp_path):
    path = tmp_path / "labels.csv"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(CsvFormatError, match=message):
        convert_csv(str(path), str(tmp_path), str(tmp_path / "out" / "x.record"))
    assert not (tmp_path / "out").exists()


def _write_flawed_yolo(tmp_path: Path) -> tuple[Path, Path, Path]:
    images, labels = tmp_path / "images", tmp_path / "labels"
    images.mkdir()
    labels.mkdir()
    for name in ("a.jpg", "b.jpg", "c.png", "notes.md"):
        (images / name).write_bytes(_jpeg(40, 20))
    (labels / "a.txt").write_text("\n".join([
        "0 0.5 0.5 0.5 0.5",                     # 1: good
        "1 0.9 0.5 0.4 0.2",                     # 2: partly outside: clipped
        "0 0.5 0.5 0.5",                         # 3: 4 values
        "0 0.1 0.1 0.2 0.1 0.2 0.2 0.1 0.2",     # 4: a segmentation polygon
        "cat 0.5 0.5 0.1 0.1",                   # 5: class id not an integer
        "0 0.5 half 0.1 0.1",                    # 6: not a number
        "5 0.5 0.5 0.1 0.1",                     # 7: class 5 of 2 names
        "1 1.5 0.5 0.2 0.2",                     # 8: entirely outside
        "",                                      # 9: a blank line
        "1.0 0.25 0.25 0 0.1",                   # 10: zero width ("1.0" is class 1)
        "0 0.249999 0.5 0.5 0.2",                # 11: 4e-5 px outside: clipped, not counted
    ]) + "\n")
    (labels / "c.txt").write_text("")           # an empty label file: no boxes
    (labels / "d.txt").write_text("0 0.5 0.5 0.1 0.1\n0 0.2 0.2 0.1 0.1\n")  # no image d.*
    (labels / "classes.txt").write_text("cat\ndog\n")  # labelImg's names file: not a label file
    names = tmp_path / "obj.names"
    names.write_text("cat\ndog\n\n")
    return images, labels, names


def test_flawed_yolo_lines_and_boxes_are_each_counted_and_named_by_line(tmp_path):
    images, labels, names = _write_flawed_yolo(tmp_path)
    summary = convert_yolo(str(images), str(names), str(tmp_path / "out.record"),
                           labels_dir=str(labels))

    # a.jpg, b.jpg (no label file), c.png (empty label file); d.txt has no image.
    assert (summary.images_read, summary.images_written) == (4, 3)
    assert summary.images_without_boxes == 2 and summary.images_without_labels == 1
    assert summary.skipped_images == [
        ("d.txt", f"{conversion.SKIP_MISSING_FILE} (no image d.* in {images} for the label file "
                  f"{labels / 'd.txt'})")]
    assert summary.boxes_read == 12 and summary.boxes_written == 3
    assert dict(summary.boxes_dropped) == {
        conversion.DROP_MALFORMED_FIELDS: 2, conversion.DROP_MALFORMED_VALUE: 2,
        f"{conversion.DROP_UNKNOWN_CLASS}: '5'": 1, conversion.DROP_OUTSIDE: 1,
        conversion.DROP_ZERO_AREA: 1, conversion.DROP_IMAGE_SKIPPED: 2}
    line = lambda n: f"{labels / 'a.txt'}:{n}"
    assert summary.dropped_lines == [
        (line(3), f"{conversion.DROP_MALFORMED_FIELDS} (4 values, expected 5: class_id "
                  "x_center y_center width height)"),
        (line(4), f"{conversion.DROP_MALFORMED_FIELDS} (9 values, expected 5: class_id "
                  "x_center y_center width height (a segmentation polygon?))"),
        (line(5), f"{conversion.DROP_MALFORMED_VALUE} (class_id 'cat' is not an integer)"),
        (line(6), f"{conversion.DROP_MALFORMED_VALUE} ('half' is not a number)"),
        (line(7), f"{conversion.DROP_UNKNOWN_CLASS}: '5'"),
        (line(8), conversion.DROP_OUTSIDE),
        (line(10), conversion.DROP_ZERO_AREA),
    ]
    assert summary.clipped_boxes == [("a.jpg", 1)]
    assert "written without boxes: 2 (1 without a label file)" in summary.format()

    records = {r["filename"]: r for r in dataset_util.read_examples(str(tmp_path / "out.record"))}
    assert sorted(records) == ["a.jpg", "b.jpg", "c.png"]
    np.testing.assert_allclose(records["a.jpg"]["boxes"],
                               [[0.25, 0.25, 0.75, 0.75], [0.4, 0.7, 0.6, 1.0],
                                [0.4, 0.0, 0.6, 0.499999]], atol=1e-7)
    assert records["a.jpg"]["boxes"][2][1] == 0.0
    assert records["a.jpg"]["labels"] == [1, 2, 1]
    assert records["a.jpg"]["texts"] == ["cat", "dog", "cat"]
    assert records["b.jpg"]["boxes"] == [] and records["c.png"]["boxes"] == []
    assert label_map_util.get_label_map_dict(str(tmp_path / "label_map.pbtxt")) == {
        "cat": 1, "dog": 2}


def test_yolo_parallel_workers_write_what_one_process_writes(tmp_path):
    images, labels, names = _write_flawed_yolo(tmp_path)
    inline = convert_yolo(str(images), str(names), str(tmp_path / "a.record"),
                          labels_dir=str(labels), num_shards=2, num_workers=1)
    parallel = convert_yolo(str(images), str(names), str(tmp_path / "b.record"),
                            labels_dir=str(labels), num_shards=2, num_workers=2)
    assert parallel.format().replace("b.record", "a.record") == inline.format()
    for shard in ("00000", "00001"):
        assert (dataset_util.read_examples(str(tmp_path / f"a.record-{shard}-of-00002"))
                == dataset_util.read_examples(str(tmp_path / f"b.record-{shard}-of-00002")))


@pytest.mark.parametrize("content, message", [
    ("cat\n\ndog\n", r"obj\.names:2: blank line; line k names class id k - 1"),
    ("cat\ndog\ncat\n", r"obj\.names:3: 'cat' is also on line 1"),
    ("\n\n", r"names no class"),
])
def test_an_unusable_names_file_stops_naming_the_line(content, message, tmp_path):
    images, labels, _ = _write_flawed_yolo(tmp_path)
    (tmp_path / "obj.names").write_text(content)
    with pytest.raises(conversion.InputError, match=r"--names: .*" + message):
        convert_yolo(str(images), str(tmp_path / "obj.names"), str(tmp_path / "out" / "x.record"),
                     labels_dir=str(labels))
    assert not (tmp_path / "out").exists()


def _run(module: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", f"object_detection.dataset_tools.{module}", *args,
         "--num_workers=1", "--noprogress"],
        cwd=cwd, capture_output=True, text=True, timeout=300,
        env={**ENV, "PYTHONPATH": str(REPO)})


def test_csv_runs_as_a_module_with_the_tutorials_flags(tmp_path):
    csv_path, images, _ = _write_flawed_csv(tmp_path)
    result = _run("create_csv_tf_record", f"--csv_input={csv_path}", f"--image_dir={images}",
                  f"--output_path={tmp_path / 'out' / 'train.record'}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(os.listdir(tmp_path / "out")) == ["label_map.pbtxt", "train.record"]
    assert "images: read 7, written 4, skipped 3" in result.stderr
    assert f"{csv_path}:4: {conversion.DROP_MALFORMED_FIELDS}" in result.stderr
    assert label_map_util.get_label_map_dict(str(tmp_path / "out" / "label_map.pbtxt")) == {
        "cat": 1, "dog": 2, "horse": 3}


@pytest.mark.parametrize("module, args, message", [
    ("create_csv_tf_record", ["--csv_input={tmp}/none.csv", "--images_dir={tmp}"],
     "error: --csv_input: '{tmp}/none.csv' does not exist."),
    ("create_csv_tf_record", ["--csv_input={tmp}/bad.csv", "--images_dir={tmp}"],
     "error: {tmp}/bad.csv:1: the header has no filename, class, xmin, ymin, xmax, ymax column;"),
    ("create_yolo_tf_record", ["--images_dir={tmp}", "--names={tmp}/data.yaml"],
     "error: --names: '{tmp}/data.yaml' is a YAML file, which is not read"),
    ("create_yolo_tf_record", ["--images_dir={tmp}", "--names={tmp}/data.yaml",
                               "--num_shards=0"],
     "error: --num_shards: must be >= 1, got 0."),
])
def test_a_user_mistake_stops_with_one_line_and_exit_2(module, args, message, tmp_path):
    (tmp_path / "bad.csv").write_text("name;box\n")
    (tmp_path / "data.yaml").write_text("names: [cat, dog]\n")
    result = _run(module, *[a.format(tmp=tmp_path) for a in args],
                  f"--output_path={tmp_path / 'out' / 'x.record'}", cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(message.format(tmp=tmp_path))
    assert not list(tmp_path.glob("out/*"))  # nothing written
