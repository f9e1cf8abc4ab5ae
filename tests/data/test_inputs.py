"""Input pipelines: static shapes, corrupt records skipped/counted or stopping, sharding."""
from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from object_detection.core.standard_fields import InputFields as F
from object_detection.data import inputs
from object_detection.dataset_tools import conversion, dataset_util
from object_detection.utils.errors import DataError

BCCD = Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "bccd"
SEED_AUGMENTATION = [
    ("random_horizontal_flip", {}),
    ("random_crop_image", dict(min_object_covered=0.0, aspect_ratio_range=(0.75, 3.0),
                               area_range=(0.75, 1.0), overlap_thresh=0.0)),
]


def _jpeg(value: int, width: int = 32, height: int = 24) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((height, width, 3), value, np.uint8)).save(buffer, "JPEG")
    return buffer.getvalue()


def _box(x0, y0, x1, y1, label=1):
    return conversion.BoxAnnotation(x0, y0, x1, y1, label=label, text=str(label))


def _write(path: Path, images: list[tuple[bytes, list]]) -> str:
    with tf.io.TFRecordWriter(str(path)) as writer:
        for i, (encoded, boxes) in enumerate(images):
            writer.write(dataset_util.build_example_from_boxes(
                encoded, width=32, height=24, boxes=boxes, source_id=f"{path.stem}{i}",
                filename=f"{path.stem}{i}.jpg").SerializeToString())
    return str(path)


@pytest.fixture
def records(tmp_path):
    """a.record: good, corrupt JPEG, no boxes, partly outside + zero-area box, garbage, good.
    b.record: 3 good. Good source ids: a0 a2 a3 a5 b0 b1 b2."""
    a = _write(tmp_path / "a.record", [
        (_jpeg(10), [_box(0, 0, 16, 12), _box(8, 6, 32, 24, label=2)]),
        (_jpeg(20)[:300], [_box(0, 0, 16, 12)]),  # truncated JPEG
        (_jpeg(30), []),
        (_jpeg(40), [_box(16, 12, 40, 30), _box(5, 5, 5, 9)]),  # clipped; zero-area dropped
        (b"this is not an image", [_box(0, 0, 16, 12)]),
        (_jpeg(60), [_box(0, 0, 32, 24, label=3)]),
    ])
    b = _write(tmp_path / "b.record", [(_jpeg(70 + i), [_box(0, 0, 8, 8, label=i + 1)])
                                       for i in range(3)])
    return a, b


def _ids(batches) -> list[str]:
    return [s.decode() for b in batches for s in b[F.source_id].numpy()]


def test_eval_skips_corrupt_records_counts_and_names_them(records, caplog):
    a, b = records
    counter = inputs.CorruptRecordCounter()
    dataset = inputs.build_eval_dataset([a, b], batch_size=4, image_size=(16, 16), max_boxes=3,
                                        num_classes=3, corrupt_counter=counter)
    with caplog.at_level(logging.WARNING):
        batches = list(dataset)
    assert [int(b[F.image].shape[0]) for b in batches] == [4, 3]  # partial last batch
    assert sorted(_ids(batches)) == ["a0", "a2", "a3", "a5", "b0", "b1", "b2"]
    assert counter.count == 2 and counter.records == [(a, 1), (a, 4)]
    assert f"{a}: record 1 is corrupt" in caplog.text
    assert f"{a}: record 4 is corrupt" in caplog.text

    by_id = {}
    for batch in batches:
        for i, source_id in enumerate(batch[F.source_id].numpy()):
            by_id[source_id.decode()] = {k: v[i].numpy() for k, v in batch.items()}
    a0, a3 = by_id["a0"], by_id["a3"]
    assert a0[F.num_groundtruth_boxes] == 2
    np.testing.assert_allclose(a0[F.groundtruth_boxes],
                               [[0, 0, 0.5, 0.5], [0.25, 0.25, 1, 1], [0, 0, 0, 0]])
    assert a0[F.groundtruth_classes].tolist() == [0, 1, 0]
    assert a0[F.groundtruth_weights].tolist() == [1, 1, 0]
    assert a0[F.original_image_spatial_shape].tolist() == [24, 32]
    assert a3[F.num_groundtruth_boxes] == 1  # clipped box kept, zero-area box dropped
    np.testing.assert_allclose(a3[F.groundtruth_boxes][0], [0.5, 0.5, 1, 1])
    assert by_id["a2"][F.num_groundtruth_boxes] == 0
    np.testing.assert_allclose(by_id["b1"][F.image], 71, atol=2)  # float 0..255, resized


def test_a_dataset_built_without_a_counter_counts_in_its_own(records, caplog):
    a, _ = records
    for _ in range(2):  # a second dataset starts from 0 again: no process-global count
        dataset = inputs.build_eval_dataset(a, batch_size=4, image_size=(16, 16), max_boxes=3)
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            list(dataset)
        assert "(1 records skipped so far)" in caplog.text  # its own running count
        assert "(2 records skipped so far)" in caplog.text
        assert "(3 records skipped so far)" not in caplog.text


def test_stop_mode_raises_at_the_first_corrupt_record_naming_file_and_index(records):
    a, b = records
    dataset = inputs.build_eval_dataset(a, batch_size=1, image_size=(16, 16), max_boxes=3,
                                        on_corrupt="stop",
                                        corrupt_counter=inputs.CorruptRecordCounter())
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=rf"DataError: {a}: record 1 is corrupt"):
        for _ in dataset:
            pass
    train = inputs.build_train_dataset(a, batch_size=2, image_size=(16, 16), max_boxes=3,
                                       on_corrupt="stop", shuffle_buffer_size=1)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"record (1|4) is corrupt"):
        for _ in train.take(10):
            pass


def test_a_stopped_pipeline_raises_its_data_error_in_raising_data_errors(records):
    a, _ = records
    dataset = inputs.build_eval_dataset(a, batch_size=1, image_size=(16, 16), max_boxes=3,
                                        on_corrupt="stop")
    with pytest.raises(DataError) as raised:
        with inputs.raising_data_errors():
            for _ in dataset:
                pass
    assert str(raised.value).startswith(f"DataError: {a}: record 1 is corrupt")
    assert "\n" not in str(raised.value)  # the pipeline's line, not the tf.data stack
    assert isinstance(raised.value.__cause__, tf.errors.InvalidArgumentError)


def test_other_tensorflow_errors_pass_raising_data_errors_unchanged():
    with pytest.raises(tf.errors.InvalidArgumentError, match="bad shape"):
        with inputs.raising_data_errors():
            raise tf.errors.InvalidArgumentError(None, None, "bad shape")


def test_train_batches_have_static_shapes_and_run_past_corrupt_records(records):
    counter = inputs.CorruptRecordCounter()
    dataset = inputs.build_train_dataset(
        list(records), batch_size=4, image_size=(20, 24), max_boxes=3,
        augmentations=SEED_AUGMENTATION, num_classes=3, shuffle_buffer_size=8, num_readers=2,
        corrupt_counter=counter)
    spec = dataset.element_spec
    assert spec[F.image].shape.as_list() == [4, 20, 24, 3] and spec[F.image].dtype == tf.float32
    assert spec[F.groundtruth_boxes].shape.as_list() == [4, 3, 4]
    assert spec[F.groundtruth_classes].shape.as_list() == [4, 3]
    assert spec[F.groundtruth_classes].dtype == tf.int32
    assert spec[F.groundtruth_weights].shape.as_list() == [4, 3]
    assert spec[F.num_groundtruth_boxes].shape.as_list() == [4]
    assert spec[F.source_id].shape.as_list() == [4]
    for batch in dataset.take(6):  # 24 examples: three passes over the 7 good records
        assert batch[F.image].shape == (4, 20, 24, 3)
        boxes = batch[F.groundtruth_boxes].numpy()
        counts = batch[F.num_groundtruth_boxes].numpy()
        assert ((boxes >= 0) & (boxes <= 1)).all()
        for i, n in enumerate(counts):
            assert (boxes[i, n:] == 0).all()  # padding rows are zero
            assert (batch[F.groundtruth_weights].numpy()[i, n:] == 0).all()
        assert 0 <= batch[F.image].numpy().min() and batch[F.image].numpy().max() <= 255
    assert counter.count >= 4  # both corrupt records, met on every pass
    assert set(counter.records) <= {(records[0], 1), (records[0], 4)}


def test_deterministic_option_repeats_batches(records):
    make = lambda: inputs.build_train_dataset(
        list(records), batch_size=3, image_size=(16, 16), max_boxes=3,
        augmentations=SEED_AUGMENTATION, shuffle_buffer_size=4, deterministic=True, seed=3,
        corrupt_counter=inputs.CorruptRecordCounter())
    first, second = list(make().take(4)), list(make().take(4))
    for x, y in zip(first, second):
        for key in x:
            np.testing.assert_array_equal(x[key].numpy(), y[key].numpy())


@pytest.mark.parametrize("use_one_file", [False, True])  # by file; by record (too few files)
def test_each_input_pipeline_reads_its_own_shard(records, use_one_file):
    files = [records[1]] if use_one_file else list(records)
    seen = []
    for pipeline_id in range(2):
        context = tf.distribute.InputContext(num_input_pipelines=2,
                                             input_pipeline_id=pipeline_id)
        seen.append(_ids(inputs.build_eval_dataset(
            files, batch_size=2, image_size=(8, 8), max_boxes=2, input_context=context,
            corrupt_counter=inputs.CorruptRecordCounter())))
    assert not set(seen[0]) & set(seen[1])
    expected = ["b0", "b1", "b2"] if use_one_file else ["a0", "a2", "a3", "a5", "b0", "b1", "b2"]
    assert sorted(seen[0] + seen[1]) == expected
    if use_one_file:
        assert seen == [["b0", "b2"], ["b1"]]


def test_sample_1_of_n_keeps_every_nth_record_of_each_file(records):
    ids = _ids(inputs.build_eval_dataset(records[1], batch_size=2, image_size=(8, 8),
                                         max_boxes=2, sample_1_of_n=2))
    assert ids == ["b0", "b2"]


def test_labels_beyond_num_classes_are_skipped_and_counted_or_stop_naming_the_record(
        records, caplog):
    # b.record holds labels 1, 2, 3: with num_classes=2, record 2 is out of range.
    counter = inputs.CorruptRecordCounter()
    with caplog.at_level(logging.WARNING):
        ids = _ids(inputs.build_eval_dataset(records[1], batch_size=2, image_size=(8, 8),
                                             max_boxes=2, num_classes=2,
                                             corrupt_counter=counter))
    assert ids == ["b0", "b1"]
    assert counter.by_reason == {inputs.SKIP_BAD_LABELS: 1}
    assert counter.records == [(records[1], 2)]
    assert (f"{records[1]}: record 2 has class labels outside 1..num_classes (2)"
            in caplog.text)
    # Both reasons in one file: a.record has 2 corrupt records and label 3 in record 5.
    counter = inputs.CorruptRecordCounter()
    ids = _ids(inputs.build_eval_dataset(records[0], batch_size=4, image_size=(8, 8),
                                         max_boxes=2, num_classes=2, corrupt_counter=counter))
    assert ids == ["a0", "a2", "a3"]
    assert counter.by_reason == {inputs.SKIP_CORRUPT: 2, inputs.SKIP_BAD_LABELS: 1}
    assert sorted(counter.records) == [(records[0], 1), (records[0], 4), (records[0], 5)]

    dataset = inputs.build_eval_dataset(records[1], batch_size=2, image_size=(8, 8),
                                        max_boxes=2, num_classes=2, on_corrupt="stop",
                                        corrupt_counter=inputs.CorruptRecordCounter())
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"b.record: record 2 has class labels outside 1..num_classes"):
        list(dataset)


def test_boxes_beyond_max_boxes_are_cut_keeping_the_first(tmp_path):
    path = _write(tmp_path / "many.record",
                  [(_jpeg(1), [_box(i, i, i + 4, i + 4, label=i + 1) for i in range(5)])])
    batch = next(iter(inputs.build_eval_dataset(path, batch_size=1, image_size=(8, 8),
                                                max_boxes=3)))
    assert batch[F.num_groundtruth_boxes].numpy().tolist() == [3]
    assert batch[F.groundtruth_classes].numpy().tolist() == [[0, 1, 2]]


def test_difficult_flags_are_padded_like_is_crowd_and_leave_weights_alone(tmp_path):
    boxes = [conversion.BoxAnnotation(0, 0, 8, 8, label=1, text="1", difficult=True),
             conversion.BoxAnnotation(8, 8, 16, 16, label=1, text="1", is_crowd=True),
             conversion.BoxAnnotation(16, 0, 24, 8, label=2, text="2", difficult=True)]
    path = _write(tmp_path / "difficult.record", [(_jpeg(1), boxes), (_jpeg(2), [])])
    batch = next(iter(inputs.build_eval_dataset(path, batch_size=2, image_size=(8, 8),
                                                max_boxes=4)))
    assert batch[F.groundtruth_difficult].dtype == tf.bool
    assert batch[F.groundtruth_difficult].numpy().tolist() == [
        [True, False, True, False],  # the 4th row is padding
        [False, False, False, False]]  # no boxes
    assert batch[F.groundtruth_is_crowd].numpy().tolist()[0] == [False, True, False, False]
    assert batch[F.groundtruth_weights].numpy().tolist()[0] == [1, 0, 1, 0]
    # cut to max_boxes with the other per-box fields; training batches carry it too
    train = next(iter(inputs.build_train_dataset(path, batch_size=2, image_size=(8, 8),
                                                 max_boxes=2, shuffle_buffer_size=1,
                                                 deterministic=True)))
    assert train[F.groundtruth_difficult].shape == (2, 2)
    assert sorted(train[F.groundtruth_difficult].numpy().tolist()) == [[False, False],
                                                                      [True, False]]


def test_no_matching_files_is_a_data_error(tmp_path):
    with pytest.raises(inputs.DataError, match="no input files match"):
        inputs.build_train_dataset(str(tmp_path / "*.record"), batch_size=1, image_size=(8, 8),
                                   max_boxes=1)


@pytest.mark.skipif(not (BCCD / "annotations").is_dir(), reason=f"no BCCD at {BCCD}")
def test_bccd_records_decode_to_the_json_ground_truth(tmp_path):
    from object_detection.dataset_tools.create_coco_tf_record import convert_coco

    annotations = json.loads((BCCD / "annotations" / "instances_test.json").read_text())
    convert_coco(str(BCCD / "annotations" / "instances_test.json"), str(BCCD / "images"),
                 str(tmp_path / "coco_test.record"), num_shards=2)
    dataset = inputs.build_eval_dataset(str(tmp_path / "coco_test.record-*"), batch_size=16,
                                        image_size=(32, 32), max_boxes=100, num_classes=3)
    found = 0
    for batch in dataset:
        for i, source_id in enumerate(batch[F.source_id].numpy()):
            image = next(im for im in annotations["images"] if im["id"] == int(source_id))
            expected = [a for a in annotations["annotations"] if a["image_id"] == image["id"]]
            n = int(batch[F.num_groundtruth_boxes][i])
            assert n == len(expected)
            h, w = batch[F.original_image_spatial_shape][i].numpy()
            boxes = batch[F.groundtruth_boxes][i, :n].numpy() * [h, w, h, w]
            np.testing.assert_allclose(
                boxes[:, [1, 0]], [[a["bbox"][0], a["bbox"][1]] for a in expected], atol=1e-3)
            np.testing.assert_allclose(
                boxes[:, [3, 2]] - boxes[:, [1, 0]], [a["bbox"][2:] for a in expected],
                atol=1e-3)
            assert (batch[F.groundtruth_classes][i, :n].numpy().tolist()
                    == [a["category_id"] - 1 for a in expected])
            found += 1
    assert found == len(annotations["images"]) == 72


def test_raising_data_errors_keeps_no_reference_to_the_failed_run():
    # The failed run (its frames, its dataset iterator) must go when the error is handled, not
    # wait for the garbage collector: at interpreter shutdown a tf.data thread inside a
    # py_function can deadlock on the GIL.
    import gc
    import weakref

    class Run:
        pass

    def fail(run):
        raise tf.errors.InvalidArgumentError(None, None, "assertion failed: [DataError: f: "
                                             "record 3 is bad]")

    gc.disable()
    try:
        run = Run()
        alive = weakref.ref(run)
        with pytest.raises(DataError, match="^DataError: f: record 3 is bad$"):
            with inputs.raising_data_errors():
                fail(run)
        del run
        assert alive() is None
    finally:
        gc.enable()
