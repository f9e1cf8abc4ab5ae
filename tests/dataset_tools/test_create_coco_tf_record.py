"""create_coco_tf_record: BCCD round trip, flawed inputs reported, parallel == inline, CLI."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from object_detection.dataset_tools import conversion, dataset_util
from object_detection.dataset_tools.create_coco_tf_record import DROP_UNKNOWN_IMAGE, convert_coco

REPO = Path(__file__).resolve().parents[2]
BCCD = REPO.parent / "shared" / "datasets" / "bccd"
needs_bccd = pytest.mark.skipif(not (BCCD / "annotations").is_dir(),
                                reason=f"BCCD dataset not found at {BCCD}")


def _jpeg(width: int, height: int, value: int = 128) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((height, width, 3), value, np.uint8)).save(buffer, "JPEG")
    return buffer.getvalue()


@needs_bccd
def test_bccd_coco_round_trip_gives_the_source_boxes_image_by_image(tmp_path):
    annotations = json.loads((BCCD / "annotations" / "instances_val.json").read_text())
    summary = convert_coco(str(BCCD / "annotations" / "instances_val.json"),
                           str(BCCD / "images"), str(tmp_path / "coco_val.record"), num_shards=3)

    assert summary.output_files == [str(tmp_path / f"coco_val.record-0000{i}-of-00003")
                                    for i in range(3)]
    records = {r["source_id"]: r for r in
               dataset_util.read_examples(str(tmp_path / "coco_val.record-?????-of-?????"))}
    images = {str(i["id"]): i for i in annotations["images"]}
    assert set(records) == set(images)
    names = {c["id"]: c["name"] for c in annotations["categories"]}
    for image_id, image in images.items():
        record = records[image_id]
        assert record["filename"] == image["file_name"]
        assert (record["width"], record["height"]) == (image["width"], image["height"])
        expected = [a for a in annotations["annotations"] if str(a["image_id"]) == image_id]
        w, h = image["width"], image["height"]
        got = [[xmin * w, ymin * h, (xmax - xmin) * w, (ymax - ymin) * h]
               for ymin, xmin, ymax, xmax in record["boxes"]]
        np.testing.assert_allclose(got, [a["bbox"] for a in expected], atol=1e-3)
        assert record["labels"] == [a["category_id"] for a in expected]
        assert record["texts"] == [names[a["category_id"]] for a in expected]
        assert record["is_crowd"] == [0] * len(expected)
        assert record["encoded"] == (BCCD / "images" / image["file_name"]).read_bytes()
    assert (summary.images_read, summary.images_written) == (87, 87)
    assert (summary.boxes_read, summary.boxes_written) == (1137, 1137)
    assert not summary.images_skipped and not summary.boxes_dropped


def _write_flawed_coco(tmp_path: Path) -> Path:
    """Images: good (plus a NaN box), corrupt JPEG, no boxes, box partly outside, zero-area box,
    missing file, crowd box, unknown category, grayscale PNG, size differing from the json;
    plus an annotation of an image id not in the json: every flaw at once."""
    image_dir = tmp_path / "images"
    image_dir.mkdir()
    files = {"good.jpg": _jpeg(40, 30), "corrupt.jpg": _jpeg(40, 30)[:200],
             "empty.jpg": _jpeg(40, 30), "outside.jpg": _jpeg(40, 30),
             "zero.jpg": _jpeg(40, 30), "crowd.jpg": _jpeg(40, 30),
             "unknown.jpg": _jpeg(40, 30), "png.png": b"", "small.jpg": _jpeg(40, 30)}
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((30, 40), np.uint8)).save(buffer, "PNG")  # grayscale PNG
    files["png.png"] = buffer.getvalue()
    for name, data in files.items():
        (image_dir / name).write_bytes(data)
    names = ["good.jpg", "corrupt.jpg", "empty.jpg", "outside.jpg", "zero.jpg", "missing.jpg",
             "crowd.jpg", "unknown.jpg", "png.png", "small.jpg"]
    images = [{"id": i + 1, "file_name": n, "width": 80 if n == "small.jpg" else 40,
               "height": 30} for i, n in enumerate(names)]
    box = lambda image_id, bbox, category=1, crowd=0: {
        "image_id": image_id, "bbox": bbox, "category_id": category, "iscrowd": crowd,
        "area": 1.0}
    annotations = [
        box(1, [4, 3, 8, 6]), box(1, [20, 10, 10, 10], category=2),
        box(2, [1, 1, 5, 5]),  # on the corrupt image
        box(4, [30, 20, 20, 20]), box(4, [50, 5, 5, 5]),  # partly, entirely outside
        box(5, [10, 10, 0, 5]),  # zero width
        box(6, [1, 1, 5, 5]),  # on the missing image
        box(7, [0, 0, 40, 30], crowd=1), box(7, [2, 2, 4, 4]),
        box(8, [2, 2, 4, 4], category=77),
        box(9, [0, 0, 20, 15]),
        box(99, [1, 1, 2, 2]),  # no such image
        box(1, [float("nan"), 1, 2, 2]),  # json.dumps writes NaN, which json.load reads
        box(10, [1, 1, 2, 2]),  # on the image whose size differs
    ]
    for i, a in enumerate(annotations):
        a["id"] = i + 1
    path = tmp_path / "instances.json"
    path.write_text(json.dumps({
        "images": images, "annotations": annotations,
        "categories": [{"id": 1, "name": "one"}, {"id": 2, "name": "two"}]}))
    return path


def test_flawed_inputs_are_each_reported_and_the_counts_add_up(tmp_path):
    path = _write_flawed_coco(tmp_path)
    summary = convert_coco(str(path), str(tmp_path / "images"), str(tmp_path / "out.record"))

    assert summary.images_read == 10
    assert summary.images_written == 7
    assert dict(summary.images_skipped) == {conversion.SKIP_CORRUPT_IMAGE: 1,
                                            conversion.SKIP_MISSING_FILE: 1,
                                            conversion.SKIP_SIZE_MISMATCH: 1}
    assert [name for name, _ in summary.skipped_images] == ["corrupt.jpg", "missing.jpg",
                                                            "small.jpg"]
    assert summary.images_without_boxes == 3  # empty.jpg; zero.jpg, unknown.jpg: box dropped
    assert summary.boxes_read == 14
    assert dict(summary.boxes_dropped) == {
        conversion.DROP_IMAGE_SKIPPED: 3, conversion.DROP_OUTSIDE: 1,
        conversion.DROP_ZERO_AREA: 1, f"{conversion.DROP_UNKNOWN_CLASS}: '77'": 1,
        DROP_UNKNOWN_IMAGE: 1, conversion.DROP_NON_FINITE: 1}
    assert summary.boxes_written == 6
    # The counts add up: images, boxes (by reason) and annotations (used + orphaned).
    assert summary.images_read == summary.images_written + sum(summary.images_skipped.values())
    assert summary.boxes_read == summary.boxes_written + sum(summary.boxes_dropped.values())
    assert (summary.annotations_read, summary.annotations_orphaned) == (14, 1)
    assert "annotations: read 14, on the json's images 13, orphaned (image id not among the " \
        "images) 1" in summary.format()
    assert summary.boxes_clipped == 1 and summary.clipped_boxes == [("outside.jpg", 1)]
    assert summary.crowd_boxes_written == 1
    report = summary.format()
    for text in ("corrupt.jpg", "missing.jpg", "zero.jpg", "outside.jpg", "unknown.jpg"):
        assert text in report

    records = {r["filename"]: r for r in dataset_util.read_examples(str(tmp_path / "out.record*"))}
    assert sorted(records) == ["crowd.jpg", "empty.jpg", "good.jpg", "outside.jpg", "png.png",
                               "unknown.jpg", "zero.jpg"]
    np.testing.assert_allclose(records["good.jpg"]["boxes"],
                               [[3 / 30, 4 / 40, 9 / 30, 12 / 40], [10 / 30, 0.5, 20 / 30, 0.75]])
    assert records["good.jpg"]["labels"] == [1, 2]
    assert records["good.jpg"]["source_id"] == "1"
    np.testing.assert_allclose(records["outside.jpg"]["boxes"], [[20 / 30, 0.75, 1.0, 1.0]])
    assert records["empty.jpg"]["boxes"] == [] and records["zero.jpg"]["boxes"] == []
    assert records["crowd.jpg"]["is_crowd"] == [1, 0]
    assert records["png.png"]["format"] == "png"


def test_parallel_workers_write_what_one_process_writes(tmp_path):
    path = _write_flawed_coco(tmp_path)
    inline = convert_coco(str(path), str(tmp_path / "images"), str(tmp_path / "a.record"),
                          num_shards=2, num_workers=1)
    parallel = convert_coco(str(path), str(tmp_path / "images"), str(tmp_path / "b.record"),
                            num_shards=2, num_workers=2)
    assert parallel.format().replace("b.record", "a.record") == inline.format()
    for shard in ("00000", "00001"):
        assert (dataset_util.read_examples(str(tmp_path / f"a.record-{shard}-of-00002"))
                == dataset_util.read_examples(str(tmp_path / f"b.record-{shard}-of-00002")))


def test_runs_as_a_module_with_the_od_api_flags(tmp_path):
    path = _write_flawed_coco(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "object_detection.dataset_tools.create_coco_tf_record",
         f"--val_annotations_file={path}", f"--val_image_dir={tmp_path / 'images'}",
         f"--train_annotations_file={path}", f"--train_image_dir={tmp_path / 'images'}",
         f"--output_dir={tmp_path / 'out'}", "--train_num_shards=2", "--val_num_shards=1",
         "--num_workers=1", "--noprogress"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(os.listdir(tmp_path / "out")) == [
        "coco_train.record-00000-of-00002", "coco_train.record-00001-of-00002",
        "coco_val.record-00000-of-00001"]
    assert "images: read 10, written 7, skipped 3" in result.stderr


def test_summary_names_an_output_with_nothing_written():
    from object_detection.dataset_tools.conversion import Summary

    assert Summary(images_read=3, images_written=1).nothing_written("x.record") is None
    assert Summary().nothing_written("x.record") is None  # nothing read: nothing to report
    error = Summary(images_read=3).nothing_written("coco_val.record")
    assert error.startswith("error: coco_val.record: none of the 3 images was written")


_IMAGE = {"id": 1, "file_name": "a.jpg", "width": 8, "height": 8}
_ANNOTATION = {"id": 7, "image_id": 1, "category_id": 1, "bbox": [1, 1, 2, 2]}
BROKEN_JSONS = [
    ("{not json", r"broken\.json:1:2: not valid JSON"),
    ({"annotations": []}, r'no "images" list at the top level'),
    ({"images": [{"id": 1}]}, r"images\[0\] has no file_name"),
    ({"images": [_IMAGE, {**_IMAGE, "file_name": "b.jpg"}]},
     r"images\[0\] and images\[1\] have the same id 1 \('b.jpg'\)"),
    ({"images": [_IMAGE], "annotations": [{"id": 7, "image_id": 1, "category_id": 1}]},
     r"annotations\[0\] \(id 7\): bbox must be \[x, y, width, height\] \(4 numbers\), got None"),
    ({"images": [_IMAGE], "annotations": [{**_ANNOTATION, "bbox": [1, 2, 3]}]},
     r"annotations\[0\] \(id 7\): bbox must be .* got \[1, 2, 3\]"),
    ({"images": [_IMAGE], "annotations": [{"id": 7, "bbox": [1, 1, 2, 2]}]},
     r"annotations\[0\] \(id 7\) has no image_id or category_id"),
    ({"images": [_IMAGE], "categories": [{"id": 0, "name": "background"}]},
     r"category id 0 \('background'\) is the background id of OD API label maps"),
    ({"images": [_IMAGE], "annotations": [{**_ANNOTATION, "category_id": 0}]},
     r"annotations\[0\] \(id 7\): category_id 0 is the background id"),
]


@pytest.mark.parametrize("content, message", BROKEN_JSONS)
def test_a_structurally_broken_json_stops_naming_the_file_and_the_entry(content, message,
                                                                         tmp_path):
    from object_detection.dataset_tools.create_coco_tf_record import CocoFormatError

    path = tmp_path / "broken.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(CocoFormatError, match=message):
        convert_coco(str(path), str(tmp_path), str(tmp_path / "out" / "x.record"))
    assert not (tmp_path / "out").exists()  # nothing written


def test_the_command_stops_with_one_line_and_exit_2_on_a_broken_json(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text(json.dumps({"images": [_IMAGE, _IMAGE]}))
    result = subprocess.run(
        [sys.executable, "-m", "object_detection.dataset_tools.create_coco_tf_record",
         f"--val_annotations_file={path}", f"--val_image_dir={tmp_path}",
         f"--output_dir={tmp_path / 'out'}", "--noprogress"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(
        f"error: {path}: images[0] and images[1] have the same id 1")
    assert not list(tmp_path.glob("out/*.record*"))  # nothing written


def test_shards_appear_only_when_writing_ends_without_an_error(tmp_path):
    base = str(tmp_path / "out" / "x.record")
    with pytest.raises(KeyboardInterrupt):
        with dataset_util.ShardedTFRecordWriter(base, 2) as writer:
            writer.write(b"a")
            assert not list((tmp_path / "out").glob("x.record*"))  # temporary names only
            raise KeyboardInterrupt  # Ctrl-C half way
    assert os.listdir(tmp_path / "out") == []  # no half-written shard left behind
    with dataset_util.ShardedTFRecordWriter(base, 2) as writer:
        for record in (b"a", b"b", b"c"):
            writer.write(record)
    assert sorted(os.listdir(tmp_path / "out")) == ["x.record-00000-of-00002",
                                                   "x.record-00001-of-00002"]
    assert [r.numpy() for r in tf.data.TFRecordDataset(f"{base}-00000-of-00002")] == [b"a", b"c"]
