"""Every pipeline config field is honoured, refused by name or warned about (issue #10).

A proto field added without a status in `config_fields.FIELDS` fails here until it is
classified; so does a reader that stops reading its field, and a stale docs/CONFIG_FIELDS.md.
"""
from __future__ import annotations

import copy
import logging
import re
import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import descriptor as _descriptor

from object_detection.builders import config_rules
from object_detection.utils import config_fields, config_util
from object_detection.utils.config_fields import FIELDS, Hint, Honoured, Refused
from object_detection.utils.errors import ConfigError
from tests.conftest import REPO, SMALL_CONFIG

PACKAGE = REPO / "object_detection"
SEED_CONFIGS = sorted((REPO.parent / "shared" / "seed_configs").glob("*.config"))
OUR_CONFIGS = sorted((REPO / "configs").glob("*.config"))
_FD = _descriptor.FieldDescriptor


def _entries(kind):
    return sorted(path for path, entry in FIELDS.items() if isinstance(entry, kind))


@pytest.fixture(scope="module")
def small_config():
    return config_util.load_pipeline_config(SMALL_CONFIG)


def _other_value(field: _descriptor.FieldDescriptor, excluded=()):
    """A value of a scalar field, not one of `excluded` (enums by name): another than its
    default if there is one, else the default."""
    default = field.default_value if not field.is_repeated else None
    if field.cpp_type == _FD.CPPTYPE_ENUM:
        candidates = [v.number for v in field.enum_type.values if v.number != default]
        candidates = [n for n in candidates + [default]
                      if field.enum_type.values_by_number[n].name not in excluded]
        return candidates[0]
    if field.cpp_type == _FD.CPPTYPE_BOOL:
        candidates = [not default, default]
    elif field.cpp_type == _FD.CPPTYPE_STRING:
        candidates = [(default or "") + "x"]
    elif field.cpp_type in (_FD.CPPTYPE_FLOAT, _FD.CPPTYPE_DOUBLE):
        candidates = [(default or 0.0) + k for k in (1.0, 2.0, 3.0)]
    else:
        candidates = [(default or 0) + k for k in (1, 2, 3)]
    return next(v for v in candidates if v not in excluded)


def _set(config, path: str, excluded=()) -> str:
    """Sets the field at registry `path` in `config` (a message: made present, a scalar: a
    non-default value not in `excluded`); returns its path with indices, as messages write
    it."""
    message, concrete = config, []
    parts = path.split(".")
    for i, part in enumerate(parts):
        name = part.removesuffix("[]")
        field = message.DESCRIPTOR.fields_by_name[name]
        value = getattr(message, name)
        if i < len(parts) - 1:
            if part.endswith("[]"):
                # eval_input_reader entries after the first are ignored: use the first.
                index = 0 if name == "eval_input_reader" and len(value) else len(value)
                message = value[0] if index == 0 and len(value) else value.add()
                concrete.append(f"{name}[{index}]")
            else:
                message = value
                concrete.append(name)
            continue
        concrete.append(name)
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value["x"] = "y"
        elif field.message_type is not None:
            value.add() if field.is_repeated else value.SetInParent()
        elif field.is_repeated:
            value.append(_other_value(field))
        else:
            setattr(message, name, _other_value(field, excluded))
    return ".".join(concrete)


def _set_paths(message, path="") -> list[str]:
    """The registry paths of every field `message` sets."""
    found = []
    for field, value in message.ListFields():
        field_path = f"{path}.{field.name}" if path else field.name
        found.append(field_path)
        if field.message_type is None:
            continue
        if not field.is_repeated:
            found += _set_paths(value, field_path)
        elif not field.message_type.GetOptions().map_entry:
            for item in value:
                found += _set_paths(item, f"{field_path}[]")
    return found


# ------------------------------------------------------------------------------------------------
# (i) Every field has a status.


def test_every_reachable_field_has_a_status():
    missing = [path for path, _ in config_fields.field_paths()
               if config_fields.status(path) is None]
    assert not missing, ("fields without a status in config_fields.FIELDS (honoured, refused or "
                         "hint?):\n  " + "\n  ".join(missing))


def test_no_status_is_stale():
    reachable = {path for path, _ in config_fields.field_paths()}
    stale = [path for path in FIELDS if path not in reachable]
    shadowed = [path for path in FIELDS
                if path in reachable and config_fields.status(path) is not FIELDS[path]]
    assert not stale, f"statuses of fields that do not exist: {stale}"
    assert not shadowed, f"statuses below a refused message (covered by it): {shadowed}"


def test_the_walk_covers_every_message_and_field_of_the_protos():
    messages, fields = {config_fields.ROOT.full_name}, set()
    for _, field in config_fields.field_paths():
        fields.add(field.full_name)
        if field.message_type is not None:
            messages.add(field.message_type.full_name)
    assert (len(messages), len(fields)) == (147, 642)


# ------------------------------------------------------------------------------------------------
# (ii) The configs users have load, and everything they set takes effect or is warned about.


@pytest.mark.parametrize("path", SEED_CONFIGS + OUR_CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_set_only_honoured_or_hint_fields(path):
    config = config_util.load_pipeline_config(path)
    config_fields.check_pipeline_config(config, warned=set())
    refused = sorted({p for p in _set_paths(config)
                      if isinstance(config_fields.status(p), Refused)})
    assert not refused


def test_seed_configs_are_there():
    assert len(SEED_CONFIGS) >= 6 and OUR_CONFIGS


# ------------------------------------------------------------------------------------------------
# (iii) A refused field that is set stops the config load, by name.


def test_the_small_config_passes(small_config):
    config_fields.check_pipeline_config(small_config, warned=set())


@pytest.mark.parametrize("path", _entries(Refused))
def test_a_set_refused_field_is_a_config_error_naming_it(small_config, path):
    config = copy.deepcopy(small_config)
    concrete = _set(config, path, FIELDS[path].accepted)
    with pytest.raises(ConfigError) as error:
        config_fields.check_pipeline_config(config, warned=set())
    message = str(error.value)
    assert message.startswith(f"{concrete}: "), message
    assert "is not supported; " + FIELDS[path].alternative in message


def test_a_refused_field_written_with_its_default_passes(small_config):
    config = copy.deepcopy(small_config)
    config.train_config.add_regularization_loss = True  # refused only when false
    config.train_config.bias_grad_multiplier = 0.0
    config.model.ssd.feature_extractor.use_explicit_padding = False
    config.train_input_reader.sample_1_of_n_examples = 1
    config.train_input_reader.input_type = 1  # TF_EXAMPLE: accepted, as INPUT_DEFAULT is
    config_fields.check_pipeline_config(config, warned=set())


def test_every_refused_field_is_listed_in_one_error(small_config):
    config = copy.deepcopy(small_config)
    config.graph_rewriter.quantization.delay = 10
    config.train_config.bias_grad_multiplier = 2.0
    config.train_config.data_augmentation_options.add().random_black_patches.SetInParent()
    with pytest.raises(ConfigError) as error:
        config_fields.check_pipeline_config(config, warned=set())
    lines = str(error.value).splitlines()
    assert lines[0] == "3 fields of the pipeline config are not supported:"
    by_path = {l.split(":")[0].strip(): l for l in lines[1:]}
    assert set(by_path) == {
        "train_config.bias_grad_multiplier",
        "train_config.data_augmentation_options[2].random_black_patches", "graph_rewriter"}
    assert "tensorflow-model-optimization" in by_path["graph_rewriter"]
    assert "Keras 3" in by_path["graph_rewriter"]
    assert ": 2 is not supported" in by_path["train_config.bias_grad_multiplier"]


def test_loading_a_file_that_sets_a_refused_field_fails(tmp_path):
    text = Path(SMALL_CONFIG).read_text() + "\ngraph_rewriter { quantization { delay: 1 } }\n"
    path = tmp_path / "pipeline.config"
    path.write_text(text)
    with pytest.raises(ConfigError, match=r"^graph_rewriter: is not supported; quantization"):
        config_util.get_configs_from_pipeline_file(path)
    config_util.get_configs_from_pipeline_file(path, validate=False)  # still readable
    configs = config_util.create_configs_from_pipeline_proto(
        config_util.parse_pipeline_config_text(text))
    with pytest.raises(ConfigError, match=r"^graph_rewriter: "):
        config_rules.check_for_training(configs)


def test_the_augmentation_steps_are_those_dataset_builder_builds(small_config):
    from object_detection.builders import dataset_builder
    from object_detection.protos import preprocessor_pb2

    oneof = preprocessor_pb2.PreprocessingStep.DESCRIPTOR.oneofs_by_name["preprocessing_step"]
    built = set()
    for step in oneof.fields:
        train_config = copy.deepcopy(small_config.train_config)
        del train_config.data_augmentation_options[:]
        getattr(train_config.data_augmentation_options.add(), step.name).SetInParent()
        try:
            dataset_builder.augmentation_steps(train_config)
            built.add(step.name)
        except ConfigError as e:
            assert "is not supported" in str(e), str(e)
    assert built == set(config_fields.AUGMENTATION_STEPS)


# ------------------------------------------------------------------------------------------------
# (iv) A hint is warned about once, naming the field and why it is ignored.


@pytest.mark.parametrize("path", _entries(Hint))
def test_a_set_hint_is_warned_about_once(small_config, path, caplog):
    config = copy.deepcopy(small_config)
    concrete = _set(config, path, FIELDS[path].agrees)
    warned: set[str] = set()
    with caplog.at_level(logging.WARNING, logger="object_detection"):
        config_fields.check_pipeline_config(config, warned=warned)
        config_fields.check_pipeline_config(config, warned=warned)
    records = [r for r in caplog.records
               if r.name == "object_detection" and r.getMessage().startswith(f"{concrete}: ")]
    assert len(records) == 1, [r.getMessage() for r in caplog.records]
    assert records[0].levelno == logging.WARNING
    assert f"is ignored: {FIELDS[path].reason}" in records[0].getMessage()


def test_a_hint_that_asks_for_what_happens_anyway_is_not_warned_about(small_config, caplog):
    config = copy.deepcopy(small_config)
    config.eval_input_reader[0].shuffle = False  # evaluation never shuffles
    config.train_config.sync_replicas = True  # training is always synchronous
    with caplog.at_level(logging.WARNING, logger="object_detection"):
        config_fields.check_pipeline_config(config, warned=set())
    assert not [r for r in caplog.records if r.name == "object_detection"]
    config.eval_input_reader[0].shuffle = True
    with caplog.at_level(logging.WARNING, logger="object_detection"):
        config_fields.check_pipeline_config(config, warned=set())
    assert [r.getMessage() for r in caplog.records] == [
        "eval_input_reader[0].shuffle: true is ignored: evaluation reads every record once, in "
        "a fixed order; the order does not change the metrics."]


def test_eval_readers_after_the_first_are_warned_about(small_config, caplog):
    config = copy.deepcopy(small_config)
    second = config.eval_input_reader.add()
    second.CopyFrom(config.eval_input_reader[0])
    second.load_instance_masks = True  # not looked at: the reader is not used
    with caplog.at_level(logging.WARNING, logger="object_detection"):
        config_fields.check_pipeline_config(config, warned=set())
    assert any(r.getMessage().startswith("eval_input_reader[1]: is ignored: only "
                                         "eval_input_reader[0] is evaluated")
               for r in caplog.records)


# ------------------------------------------------------------------------------------------------
# (v) An honoured field is read where the registry says.


def _reads(source: str, name: str) -> bool:
    return re.search(rf"\.{name}\b|[\"']{name}[\"']", source) is not None


@pytest.mark.parametrize("path", _entries(Honoured))
def test_an_honoured_field_is_read_by_its_readers(path):
    name = path.rsplit(".", 1)[-1].removesuffix("[]")
    for reader in FIELDS[path].readers:
        source = (PACKAGE / reader).read_text(encoding="utf-8")
        assert _reads(source, name), f"{path}: {reader} does not read {name!r}"


def test_refusing_builders_exist():
    where = {entry.where for entry in FIELDS.values() if isinstance(entry, Refused)} - {""}
    assert where and all((PACKAGE / module).is_file() for module in where)


# ------------------------------------------------------------------------------------------------
# (vi) The documentation is the registry's.


def test_docs_list_is_current():
    docs = (REPO / "docs" / "CONFIG_FIELDS.md").read_text(encoding="utf-8")
    assert docs == config_fields.markdown(), (
        "docs/CONFIG_FIELDS.md is stale: python -m object_detection.utils.config_fields "
        "--markdown > docs/CONFIG_FIELDS.md")


def test_checking_a_config_needs_no_tensorflow():
    code = ("import sys\n"
            "from object_detection.utils import config_util\n"
            f"config_util.get_configs_from_pipeline_file({str(SMALL_CONFIG)!r})\n"
            "assert not [m for m in sys.modules if m.split('.')[0] == 'tensorflow'], 'TF'\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
