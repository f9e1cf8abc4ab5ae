"""dataset_builder: the input reader fields reach the input pipeline, or are refused by name."""
from __future__ import annotations

import pytest

from object_detection.builders import dataset_builder
from object_detection.core.standard_fields import InputFields as F
from object_detection.data import inputs
from object_detection.utils import config_util
from object_detection.utils.errors import ConfigError
from tests.conftest import SMALL_CONFIG
from tests.data.test_inputs_sampling import jpeg, write_records


@pytest.fixture
def two_files(tmp_path):
    return (write_records(tmp_path / "a.record", [jpeg(10 * i) for i in range(5)]),
            write_records(tmp_path / "b.record", [jpeg(100 + 10 * i) for i in range(5)]))


def _configs(input_paths, weights=(), **reader_fields):
    """The small CPU config at 32x32 without augmentation, reading `input_paths`."""
    config = config_util.load_pipeline_config(SMALL_CONFIG)
    config.model.ssd.image_resizer.fixed_shape_resizer.height = 32
    config.model.ssd.image_resizer.fixed_shape_resizer.width = 32
    del config.train_config.data_augmentation_options[:]
    config.train_config.batch_size = 10
    reader = config.train_input_reader
    reader.ClearField("label_map_path")
    reader.tf_record_input_reader.ClearField("input_path")
    reader.tf_record_input_reader.input_path.extend(input_paths)
    reader.sample_from_datasets_weights.extend(weights)
    for name, value in reader_fields.items():
        setattr(reader, name, value)
    return config_util.create_configs_from_pipeline_proto(config)


def test_sample_from_datasets_weights_reach_the_training_input(two_files):
    a, b = two_files
    dataset = dataset_builder.train_dataset_fn(_configs([a, b], [1.0, 0.0]),
                                               deterministic=True, seed=1)()
    ids = {s.decode() for batch in dataset.take(3) for s in batch[F.source_id].numpy()}
    assert ids == {"a0", "a1", "a2", "a3", "a4"}


def test_a_weight_count_that_differs_from_input_path_names_both(two_files):
    with pytest.raises(ConfigError, match=r"train_input_reader\.sample_from_datasets_weights: "
                                          r"3 weights for 2 .*input_path entries"):
        dataset_builder.train_dataset_fn(_configs(list(two_files), [0.5, 0.3, 0.2]))


@pytest.mark.parametrize("weights", [[1.0, -1.0], [0.0, 0.0]])
def test_negative_or_all_zero_weights_are_refused(two_files, weights):
    with pytest.raises(ConfigError, match=r"sample_from_datasets_weights: got .*>= 0 and "
                                          r"their sum > 0"):
        dataset_builder.train_dataset_fn(_configs(list(two_files), weights))


def test_a_weighted_pattern_without_files_is_named(two_files, tmp_path):
    missing = str(tmp_path / "missing-*.record")
    with pytest.raises(ConfigError, match=r"input_path: no file matches .*missing-"):
        dataset_builder.train_dataset_fn(_configs([two_files[0], missing], [0.5, 0.5]))


def test_eval_pads_ground_truth_to_the_eval_readers_max_number_of_boxes(two_files):
    configs = _configs(list(two_files))
    eval_reader = configs["eval_input_config"]
    eval_reader.tf_record_input_reader.ClearField("input_path")
    eval_reader.tf_record_input_reader.input_path.append(two_files[0])
    eval_reader.ClearField("label_map_path")
    eval_reader.max_number_of_boxes = 7  # train_config says 20: the OD API pads eval to 7
    batch = next(iter(dataset_builder.eval_dataset(configs)))
    assert batch[F.groundtruth_boxes].shape[1:] == (7, 4)


def test_the_training_dataset_fn_carries_the_counter_of_its_skipped_records(tmp_path):
    images = [jpeg(10 * i) for i in range(5)]
    images[2] = images[2][:100]  # a truncated JPEG: skipped and counted
    path = write_records(tmp_path / "c.record", images)
    counter = inputs.CorruptRecordCounter()
    fn = dataset_builder.train_dataset_fn(_configs([path]), deterministic=True, seed=1,
                                          corrupt_counter=counter)
    assert fn.corrupt_records is counter
    next(iter(fn()))
    assert counter.by_reason[inputs.SKIP_CORRUPT] >= 1
    assert counter.records[0] == (path, 2)


def test_each_training_dataset_fn_has_its_own_counter_unless_given_one(two_files):
    first = dataset_builder.train_dataset_fn(_configs(list(two_files)))
    second = dataset_builder.train_dataset_fn(_configs(list(two_files)))
    assert isinstance(first.corrupt_records, inputs.CorruptRecordCounter)
    assert first.corrupt_records is not second.corrupt_records  # no process-global count
