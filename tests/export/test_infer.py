"""Inference command (COCO json, drawn images) and the drawing helper."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from .conftest import OVERRIDES, SMALL_CONFIG, assert_same_detections, run_python, shapes_image


@pytest.fixture(scope="module")
def label_map(tmp_path_factory) -> str:
    from object_detection.data import label_map_util

    path = tmp_path_factory.mktemp("labels") / "label_map.pbtxt"
    label_map_util.write_label_map(str(path), [{"id": 1, "name": "rectangle"},
                                               {"id": 2, "name": "ellipse"},
                                               {"id": 3, "name": "triangle"}])
    return str(path)


def _coco_to_detections(results: list[dict], height: int, width: int) -> dict:
    """COCO results of one image back to normalized detections (for assert_same_detections)."""
    boxes = [[y / height, x / width, (y + h) / height, (x + w) / width]
             for x, y, w, h in (r["bbox"] for r in results)]
    return {"detection_boxes": np.asarray(boxes).reshape(-1, 4),
            "detection_scores": np.asarray([r["score"] for r in results]),
            "detection_classes": np.asarray([r["category_id"] for r in results]),
            "num_detections": len(results)}


def test_infer_writes_coco_json_and_drawn_images(exported_in_memory, test_image, reference,
                                                 label_map, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(test_image).save(images / "000042.png")  # lossless: the reference's pixels
    Image.fromarray(shapes_image(seed=5, height=90, width=60)).save(images / "street.jpg")
    (images / "notes.txt").write_text("not an image")
    run_python(["-m", "object_detection.export.infer", f"--saved_model_dir={exported_in_memory}",
                f"--images={images}", f"--output_json={tmp_path / 'det.json'}",
                f"--output_images_dir={tmp_path / 'drawn'}", f"--label_map_path={label_map}",
                "--min_score=0.3"])

    results = json.loads((tmp_path / "det.json").read_text())
    assert {r["image_id"] for r in results} == {42, "street"}  # numeric stems become ints
    for r in results:
        assert set(r) == {"image_id", "category_id", "bbox", "score"}
        assert r["category_id"] in (1, 2, 3)
        x, y, w, h = r["bbox"]
        size = (200, 150) if r["image_id"] == 42 else (60, 90)
        assert 0 <= x and 0 <= y and w >= 0 and h >= 0
        assert x + w <= size[0] + 1e-3 and y + h <= size[1] + 1e-3  # pixels of that image
    mine = [r for r in results if r["image_id"] == 42]
    assert len(mine) == int(reference["num_detections"])
    assert_same_detections(reference, _coco_to_detections(mine, 150, 200), box_tol=2e-3)

    drawn = tmp_path / "drawn"
    assert sorted(p.name for p in drawn.iterdir()) == ["000042.png", "street.jpg"]
    with Image.open(drawn / "000042.png") as image:
        assert image.size == (200, 150)
        pixels = np.asarray(image.convert("RGB"))
    assert (reference["detection_scores"] >= 0.3).any()  # so boxes must have been drawn
    assert not np.array_equal(pixels, test_image)


def test_infer_from_checkpoint_matches_in_process_model(small_model, checkpoint_dir,
                                                        test_image, reference, tmp_path):
    from object_detection.export import infer

    Image.fromarray(test_image).save(tmp_path / "7.png")
    code = infer.main([f"--pipeline_config_path={SMALL_CONFIG}",
                       f"--checkpoint_dir={checkpoint_dir}", f"--images={tmp_path / '*.png'}",
                       f"--output_json={tmp_path / 'det.json'}",
                       *[f"--config_override={o}" for o in OVERRIDES]])
    assert code == 0
    results = json.loads((tmp_path / "det.json").read_text())
    assert_same_detections(reference, _coco_to_detections(results, 150, 200))


def test_infer_rejects_no_images_and_ambiguous_sources(tmp_path, capsys):
    from object_detection.export import infer

    assert infer.main(["--saved_model_dir=x", f"--images={tmp_path}/*.jpg",
                       f"--output_json={tmp_path}/d.json"]) == 2
    assert "no image file" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        infer.main(["--saved_model_dir=x", "--checkpoint_dir=y", "--images=z",
                    "--output_json=d.json"])


def test_list_images_takes_a_file_a_folder_or_a_glob(tmp_path):
    from object_detection.export.infer import list_images

    for name in ("b.JPG", "a.png", "c.txt"):
        (tmp_path / name).write_bytes(b"")
    assert [p.split("/")[-1] for p in list_images(str(tmp_path))] == ["a.png", "b.JPG"]
    assert [p.split("/")[-1] for p in list_images(str(tmp_path / "*.png"))] == ["a.png"]
    assert list_images(str(tmp_path / "b.JPG")) == [str(tmp_path / "b.JPG")]


def test_to_coco_results_converts_normalized_yxyx_to_pixel_xywh():
    from object_detection.export.infer import to_coco_results

    detections = {"detection_boxes": np.array([[[0.1, 0.2, 0.5, 1.0], [0, 0, 1, 1]]]),
                  "detection_scores": np.array([[0.9, 0.01]]),
                  "detection_classes": np.array([[3.0, 1.0]]),
                  "num_detections": np.array([1.0])}  # the second row is padding
    results = to_coco_results(detections, 0, height=100, width=200, image_id_value=7)
    assert results == [{"image_id": 7, "category_id": 3, "bbox": [40.0, 10.0, 160.0, 40.0],
                        "score": 0.9}]


def test_draw_detections_draws_boxes_above_min_score_in_class_colours():
    from object_detection.utils.visualization import class_colour, draw_detections

    image = np.zeros((100, 200, 3), np.uint8)
    drawn = draw_detections(image, boxes=[[0.5, 0.1, 0.9, 0.5], [0.1, 0.6, 0.3, 0.9]],
                            classes=[2, 1], scores=[0.8, 0.2],
                            category_index={2: {"id": 2, "name": "ellipse"}}, min_score=0.3,
                            line_width=2)
    pixels = np.asarray(drawn)
    assert drawn.size == (200, 100)
    assert tuple(pixels[89, 30]) == class_colour(2)  # bottom edge of the kept box (y=0.9*99)
    assert tuple(pixels[70, 20]) == class_colour(2)  # its left edge (x=0.1*199)
    assert not pixels[10:30, 120:180].any()  # the 0.2 box is below min_score: not drawn
    assert not np.array_equal(pixels[40:50, 20:60], np.zeros((10, 40, 3)))  # label above box
    assert np.array_equal(image, np.zeros_like(image))  # the input is not modified
