"""The committed `*_pb2.py` modules are exactly what protoc generates from the `.proto` files."""
from __future__ import annotations

import importlib
import re

import pytest

from object_detection.protos import generate


def test_committed_modules_match_fresh_protoc_output():
    pytest.importorskip(
        "grpc_tools", reason="grpcio-tools (a test dependency) is not installed; "
        "install it with `pip install -e '.[test]'`")
    problems = generate.check()
    assert not problems, (
        "run `python -m object_detection.protos.generate`:\n" + "\n".join(problems))


def test_check_command_exits_zero_when_up_to_date(capsys):
    pytest.importorskip("grpc_tools", reason="grpcio-tools (a test dependency) is not installed")
    assert generate.main(["--check"]) == 0
    assert "up to date" in capsys.readouterr().out


@pytest.mark.parametrize("proto", generate.proto_files(), ids=lambda p: p.name)
def test_proto_file_is_proto2_in_od_api_package(proto):
    text = proto.read_text(encoding="utf-8")
    assert re.search(r'^syntax = "proto2";$', text, re.M), "OD API protos are proto2"
    assert re.search(r"^package object_detection\.protos;$", text, re.M)
    for imported in re.findall(r'^import "([^"]+)";$', text, re.M):
        assert imported.startswith("object_detection/protos/"), imported


@pytest.mark.parametrize("proto", generate.proto_files(), ids=lambda p: p.name)
def test_generated_module_imports(proto):
    module = importlib.import_module(f"object_detection.protos.{proto.stem}_pb2")
    assert module.DESCRIPTOR.package == "object_detection.protos"
    assert module.DESCRIPTOR.name == f"object_detection/protos/{proto.name}"
