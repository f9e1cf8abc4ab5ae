"""Training input drawn from several file patterns by weight (`sample_from_datasets_weights`)."""
from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from object_detection.core.standard_fields import InputFields as F
from object_detection.data import inputs
from object_detection.dataset_tools import conversion, dataset_util

WIDTH, HEIGHT = 16, 12


def jpeg(value: int) -> bytes:
    """A uniform WIDTH x HEIGHT JPEG."""
    buffer = io.BytesIO()
    Image.fromarray(np.full((HEIGHT, WIDTH, 3), value, np.uint8)).save(buffer, "JPEG")
    return buffer.getvalue()


def write_records(path: Path, encoded_images: list[bytes]) -> str:
    """One record per image, one box each; source ids `<stem><index>`."""
    box = conversion.BoxAnnotation(0, 0, WIDTH // 2, HEIGHT // 2, label=1, text="1")
    with tf.io.TFRecordWriter(str(path)) as writer:
        for i, encoded in enumerate(encoded_images):
            writer.write(dataset_util.build_example_from_boxes(
                encoded, width=WIDTH, height=HEIGHT, boxes=[box], source_id=f"{path.stem}{i}",
                filename=f"{path.stem}{i}.jpg").SerializeToString())
    return str(path)


@pytest.fixture
def two_files(tmp_path):
    """a.record: 5 good records. b.record: 4 good and a truncated JPEG at index 2."""
    a = write_records(tmp_path / "a.record", [jpeg(10 * i) for i in range(5)])
    b_images = [jpeg(100 + 10 * i) for i in range(5)]
    b_images[2] = b_images[2][:100]
    b = write_records(tmp_path / "b.record", b_images)
    return a, b


def _draw(patterns, weights, num_examples, counter, batch_size=50):
    dataset = inputs.build_train_dataset(
        patterns, batch_size=batch_size, image_size=(8, 8), max_boxes=2, num_classes=1,
        shuffle=False, sample_weights=weights, num_readers=2, deterministic=True, seed=3,
        corrupt_counter=counter)
    ids = []
    for batch in dataset.take(num_examples // batch_size):
        ids += [s.decode() for s in batch[F.source_id].numpy()]
    return ids


def test_weights_set_the_share_of_each_pattern_and_corrupt_records_stay_counted(two_files):
    a, b = two_files
    counter = inputs.CorruptRecordCounter()
    n, p = 2000, 0.8
    ids = _draw([a, b], [0.8, 0.2], n, counter)
    assert len(ids) == n
    from_a = sum(i.startswith("a") for i in ids)
    # Binomial(n, p): 4 standard deviations (about 72 of 2000) leave no room for a flaky test.
    assert abs(from_a - n * p) <= 4 * math.sqrt(n * p * (1 - p))
    assert "b2" not in ids and {i for i in ids if i.startswith("b")} == {"b0", "b1", "b3", "b4"}
    assert counter.records == [(b, 2)]  # per file, by record index, from its own stream
    assert counter.by_reason == {inputs.SKIP_CORRUPT: counter.count} and counter.count >= 1


def test_a_zero_weight_pattern_is_not_read(two_files):
    a, b = two_files
    counter = inputs.CorruptRecordCounter()
    ids = _draw([a, b], [1.0, 0.0], 100, counter)
    assert {i[0] for i in ids} == {"a"}
    assert counter.count == 0  # b (with its corrupt record) was never opened


@pytest.mark.parametrize("weights", [
    [1.0],  # one weight for two patterns
    [1.0, -0.5],  # negative
    [0.0, 0.0],  # nothing to draw from
])
def test_bad_weights_are_refused(two_files, weights):
    with pytest.raises(ValueError, match="one weight >= 0 per file pattern"):
        inputs.build_train_dataset(list(two_files), batch_size=2, image_size=(8, 8),
                                   max_boxes=2, sample_weights=weights)
