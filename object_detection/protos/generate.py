"""Regenerates the `*_pb2.py` modules of `object_detection/protos` from the `.proto` files.

Contract:
  - The `.proto` files are the source; the generated `*_pb2.py` modules are committed beside them
    and never edited by hand.
  - Generation runs `grpc_tools.protoc -I <repo root> --python_out=<out> object_detection/protos/
    *.proto` with the protoc that ships in the pinned `grpcio-tools` (a test dependency), so the
    output only changes when a `.proto` file or that pin changes.
  - `--check` generates into a temporary directory and compares with the committed modules. It
    exits 1 and lists every module that differs, is missing, or has no `.proto` any more; it exits
    0 when all match.

Usage (from the repository root):
  python -m object_detection.protos.generate          # rewrite the committed modules
  python -m object_detection.protos.generate --check  # verify them
"""
from __future__ import annotations

import argparse
import difflib
import pathlib
import subprocess
import sys
import tempfile
from collections.abc import Sequence

PROTOS_DIR = pathlib.Path(__file__).resolve().parent
REPO_ROOT = PROTOS_DIR.parents[1]
_PACKAGE_PATH = pathlib.PurePosixPath("object_detection", "protos")


def proto_files() -> list[pathlib.Path]:
    """Returns the `.proto` files of the package, sorted by name."""
    return sorted(PROTOS_DIR.glob("*.proto"))


def generated_name(proto: pathlib.Path) -> str:
    """Returns the module file protoc writes for `proto`, e.g. `ssd.proto` -> `ssd_pb2.py`."""
    return proto.stem + "_pb2.py"


def generate(out_root: pathlib.Path) -> list[pathlib.Path]:
    """Runs protoc on every `.proto` file, writing under `out_root/object_detection/protos`.

    Args:
      out_root: directory that plays the role of the repository root for the output.

    Returns:
      The generated module paths, sorted.

    Raises:
      ModuleNotFoundError: `grpc_tools` is not installed (`pip install grpcio-tools`).
      RuntimeError: protoc failed; the message holds its exit code.
    """
    import importlib.util  # pylint: disable=import-outside-toplevel

    if importlib.util.find_spec("grpc_tools") is None:
        raise ModuleNotFoundError("grpc_tools is not installed (pip install grpcio-tools).")
    protos = proto_files()
    if not protos:
        raise RuntimeError(f"no .proto files in {PROTOS_DIR}")
    # Absolute input paths under the single -I root give the same import names
    # ("object_detection/protos/x.proto") as the documented command run from the repository root,
    # whatever the caller's working directory.
    # In a child process: protoc's C++ runtime, loaded into a process that already holds
    # TensorFlow's protobuf, crashes (seen with grpcio-tools 1.85 and TF 2.21).
    args = [
        sys.executable, "-m", "grpc_tools.protoc",
        f"-I{REPO_ROOT}",
        f"--python_out={out_root}",
        *(str(p) for p in protos),
    ]
    result = subprocess.run(args, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"protoc failed with exit code {result.returncode}: "
                           f"{' '.join(args)}\n{result.stderr}")
    out_dir = out_root / _PACKAGE_PATH
    return sorted(out_dir / generated_name(p) for p in protos)


def check() -> list[str]:
    """Compares the committed modules with freshly generated ones.

    Returns:
      One line per problem (a differing, missing or orphaned module, with a short diff for a
      differing one); empty when everything matches.
    """
    problems: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        fresh = generate(pathlib.Path(tmp))
        expected_names = set()
        for new in fresh:
            expected_names.add(new.name)
            committed = PROTOS_DIR / new.name
            if not committed.exists():
                problems.append(f"{committed.relative_to(REPO_ROOT)}: missing (run generate)")
                continue
            old_text = committed.read_text(encoding="utf-8")
            new_text = new.read_text(encoding="utf-8")
            if old_text != new_text:
                diff = difflib.unified_diff(
                    old_text.splitlines(), new_text.splitlines(), "committed", "generated",
                    lineterm="", n=0)
                head = "\n    ".join(list(diff)[:8])
                problems.append(f"{committed.relative_to(REPO_ROOT)}: differs\n    {head}")
    for module in sorted(PROTOS_DIR.glob("*_pb2.py")):
        if module.name not in expected_names:
            problems.append(f"{module.relative_to(REPO_ROOT)}: no matching .proto file")
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; returns the process exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true",
        help="regenerate into a temporary directory and fail if the committed modules differ")
    args = parser.parse_args(argv)
    if args.check:
        problems = check()
        if problems:
            print("generated proto modules are out of date:", file=sys.stderr)
            for line in problems:
                print(f"  {line}", file=sys.stderr)
            print("run: python -m object_detection.protos.generate", file=sys.stderr)
            return 1
        print(f"{len(proto_files())} proto modules up to date")
        return 0
    written = generate(REPO_ROOT)
    print(f"wrote {len(written)} modules to {PROTOS_DIR.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
