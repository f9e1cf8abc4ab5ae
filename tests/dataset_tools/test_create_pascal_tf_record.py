"""create_pascal_tf_record: BCCD VOC round trip (== its COCO json too), flaws reported, CLI."""
from __future__ import annotations

import io
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from object_detection.data import label_map_util
from object_detection.dataset_tools import conversion, dataset_util
from object_detection.dataset_tools.create_coco_tf_record import convert_coco
from object_detection.dataset_tools.create_pascal_tf_record import convert_pascal

REPO = Path(__file__).resolve().parents[2]
BCCD = REPO.parent / "shared" / "datasets" / "bccd"
needs_bccd = pytest.mark.skipif(not (BCCD / "voc_xml").is_dir(),
                                reason=f"BCCD dataset not found at {BCCD}")
BCCD_LABELS = {"WBC": 1, "RBC": 2, "Platelets": 3}


def _xml_boxes(path: Path) -> tuple[int, int, list[tuple[str, list[float]]]]:
    root = ET.parse(path).getroot()
    width, height = int(root.find("size/width").text), int(root.find("size/height").text)
    objects = []
    for obj in root.findall("object"):
        b = obj.find("bndbox")
        objects.append((obj.find("name").text,
                        [float(b.find(k).text) for k in ("xmin", "ymin", "xmax", "ymax")]))
    return width, height, objects


@needs_bccd
def test_bccd_voc_round_trip_gives_the_xml_boxes_and_the_coco_records(tmp_path):
    label_map = tmp_path / "bccd_label_map.pbtxt"
    label_map_util.write_label_map(str(label_map), BCCD_LABELS)
    summary = convert_pascal(str(BCCD / "voc_xml"), str(BCCD / "images"), str(label_map),
                             str(tmp_path / "voc_val.record"),
                             image_list=str(BCCD / "annotations" / "val.txt"))

    ids = (BCCD / "annotations" / "val.txt").read_text().split()
    records = {r["source_id"]: r
               for r in dataset_util.read_examples(str(tmp_path / "voc_val.record"))}
    assert sorted(records) == sorted(ids)
    boxes_in_xml = 0
    for image_id in ids:
        width, height, objects = _xml_boxes(BCCD / "voc_xml" / f"{image_id}.xml")
        boxes_in_xml += len(objects)
        kept = [(n, b) for n, b in objects if b[2] > b[0] and b[3] > b[1]]  # zero-area dropped
        record = records[image_id]
        assert record["filename"] == f"{image_id}.jpg"
        got = [[xmin * width, ymin * height, xmax * width, ymax * height]
               for ymin, xmin, ymax, xmax in record["boxes"]]
        np.testing.assert_allclose(got, [b for _, b in kept], atol=1e-3)
        assert record["texts"] == [n for n, _ in kept]
        assert record["labels"] == [BCCD_LABELS[n] for n, _ in kept]
    # BloodImage_00338 (in val) has one zero-area RBC box.
    assert (summary.images_read, summary.images_written) == (87, 87)
    assert (summary.boxes_read, summary.boxes_written) == (boxes_in_xml, boxes_in_xml - 1)
    assert dict(summary.boxes_dropped) == {conversion.DROP_ZERO_AREA: 1}
    assert summary.dropped_boxes == [("BloodImage_00338.jpg", conversion.DROP_ZERO_AREA, 1)]

    convert_coco(str(BCCD / "annotations" / "instances_val.json"), str(BCCD / "images"),
                 str(tmp_path / "coco_val.record"))
    coco = {r["filename"]: r
            for r in dataset_util.read_examples(str(tmp_path / "coco_val.record*"))}
    for record in records.values():
        twin = coco[record["filename"]]
        assert sorted(zip(record["labels"], record["boxes"])) == sorted(
            zip(twin["labels"], twin["boxes"]))


def _voc_xml(filename: str, width: int, height: int, objects) -> str:
    parts = [f"<annotation><filename>{filename}</filename>",
             f"<size><width>{width}</width><height>{height}</height><depth>3</depth></size>"]
    for name, (x0, y0, x1, y1), difficult in objects:
        parts.append(f"<object><name>{name}</name><difficult>{difficult}</difficult>"
                     f"<bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax>"
                     f"<ymax>{y1}</ymax></bndbox></object>")
    return "".join(parts) + "</annotation>"


def _write_flawed_voc(tmp_path: Path) -> tuple[Path, Path, Path]:
    xml_dir, image_dir = tmp_path / "xml", tmp_path / "images"
    xml_dir.mkdir()
    image_dir.mkdir()
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(buffer, "JPEG")
    for name in ("a", "b", "c", "d"):
        (image_dir / f"{name}.jpg").write_bytes(buffer.getvalue())
    (image_dir / "bad.jpg").write_bytes(b"not a jpeg")
    (xml_dir / "a.xml").write_text(_voc_xml("a.jpg", 40, 30, [
        ("cat", (4, 3, 12, 9), 0), ("dog", (10, 10, 50, 20), 1), ("horse", (1, 1, 5, 5), 0)]))
    (xml_dir / "b.xml").write_text(_voc_xml("b.jpg", 80, 60, [("cat", (1, 1, 5, 5), 0)]))
    (xml_dir / "c.xml").write_text("<annotation><filename>c.jpg")  # broken xml
    (xml_dir / "bad.xml").write_text(_voc_xml("bad.jpg", 40, 30, [("cat", (1, 1, 5, 5), 0)]))
    (xml_dir / "d.xml").write_text(_voc_xml("d.jpg", 40, 30, [
        ("cat", (5, 5, 5, 9), 0),  # zero width
        ("cat", (41, 1, 50, 5), 0),  # entirely outside
        ("dog", ("x", 1, 5, 5), 0),  # not a number
        ("cat", (2, 2, 6, 6), 0)]).replace(  # and an object without a <bndbox>
            "</annotation>", "<object><name>cat</name></object></annotation>"))
    (xml_dir / "e.xml").write_text(_voc_xml("e.jpg", 40, 30, [("cat", (1, 1, 5, 5), 0)]))
    label_map = tmp_path / "label_map.pbtxt"
    label_map_util.write_label_map(str(label_map), {"cat": 1, "dog": 2})
    return xml_dir, image_dir, label_map


def test_flawed_voc_inputs_are_each_reported(tmp_path):
    xml_dir, image_dir, label_map = _write_flawed_voc(tmp_path)
    image_list = tmp_path / "list.txt"
    image_list.write_text("a\nb\nc\nbad\nnone\nd\ne\n")
    summary = convert_pascal(str(xml_dir), str(image_dir), str(label_map),
                             str(tmp_path / "out.record"), image_list=str(image_list),
                             num_shards=2)

    # Every flaw at once; each image and box is written or counted under its reason.
    assert (summary.images_read, summary.images_written) == (7, 2)
    skipped = dict(summary.skipped_images)
    assert skipped["b.jpg"].startswith(conversion.SKIP_SIZE_MISMATCH)
    assert skipped["bad.jpg"].startswith(conversion.SKIP_CORRUPT_IMAGE)
    assert skipped["c.xml"].startswith(conversion.SKIP_MISSING_ANNOTATION)
    assert skipped["none.xml"].startswith(conversion.SKIP_MISSING_ANNOTATION)
    assert skipped["e.jpg"].startswith(conversion.SKIP_MISSING_FILE)
    assert dict(summary.images_skipped) == {
        conversion.SKIP_SIZE_MISMATCH: 1, conversion.SKIP_CORRUPT_IMAGE: 1,
        f"{conversion.SKIP_MISSING_ANNOTATION}: ParseError": 1,
        f"{conversion.SKIP_MISSING_ANNOTATION}: FileNotFoundError": 1,
        conversion.SKIP_MISSING_FILE: 1}
    assert summary.boxes_read == 11 and summary.boxes_written == 3
    assert dict(summary.boxes_dropped) == {
        conversion.DROP_IMAGE_SKIPPED: 3, f"{conversion.DROP_UNKNOWN_CLASS}: 'horse'": 1,
        conversion.DROP_ZERO_AREA: 1, conversion.DROP_OUTSIDE: 1, conversion.DROP_NON_FINITE: 2}
    assert summary.images_read == summary.images_written + sum(summary.images_skipped.values())
    assert summary.boxes_read == summary.boxes_written + sum(summary.boxes_dropped.values())
    assert summary.boxes_clipped == 1
    records = {r["source_id"]: r
               for r in dataset_util.read_examples(str(tmp_path / "out.record-*"))}
    assert sorted(records) == ["a", "d"]
    np.testing.assert_allclose(records["a"]["boxes"], [[0.1, 0.1, 0.3, 0.3],
                                                       [1 / 3, 0.25, 2 / 3, 1.0]])
    assert records["a"]["labels"] == [1, 2]
    np.testing.assert_allclose(records["d"]["boxes"], [[2 / 30, 2 / 40, 6 / 30, 6 / 40]])


def test_runs_as_a_script_path(tmp_path):
    xml_dir, image_dir, label_map = _write_flawed_voc(tmp_path)
    script = REPO / "object_detection" / "dataset_tools" / "create_pascal_tf_record.py"
    result = subprocess.run(
        [sys.executable, str(script), f"--annotations_dir={xml_dir}",
         f"--images_dir={image_dir}", f"--label_map_path={label_map}",
         f"--output_path={tmp_path / 'voc.record'}", "--num_shards=1", "--num_workers=1",
         "--noprogress"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "voc.record").is_file()
    assert "images: read 6, written 2, skipped 4" in result.stderr


def test_a_file_name_that_is_not_utf8_is_written_losslessly(tmp_path):
    # b"\xff" is not UTF-8: os.listdir gives it back as a surrogate escape, which the writer
    # stores as the original bytes; reading the record back gives the same name.
    xml_dir, image_dir, label_map = _write_flawed_voc(tmp_path)
    for path in list(xml_dir.iterdir()):
        if path.name != "a.xml":
            path.unlink()
    stem = os.fsdecode(b"caf\xff")
    os.rename(xml_dir / "a.xml", xml_dir / f"{stem}.xml")
    os.rename(image_dir / "a.jpg", image_dir / f"{stem}.jpg")
    xml = (xml_dir / f"{stem}.xml").read_text().replace("<filename>a.jpg</filename>", "")
    (xml_dir / f"{stem}.xml").write_text(xml)  # no <filename>: the image is <id>.jpg
    summary = convert_pascal(str(xml_dir), str(image_dir), str(label_map),
                             str(tmp_path / "out.record"))
    assert (summary.images_read, summary.images_written) == (1, 1)
    record = dataset_util.read_examples(str(tmp_path / "out.record*"))[0]
    assert record["source_id"] == stem and record["filename"] == f"{stem}.jpg"
    assert record["source_id"].encode("utf8", "surrogateescape") == b"caf\xff"
