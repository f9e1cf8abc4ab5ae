"""Command lines under the OD API's script names: absl flags in a private registry.

`model_main_tf2.py`, `exporter_main_v2.py` and `export_tflite_graph_tf2.py` take the OD API's
absl flags (`--flag=value`, `--flag value`, `--noflag`) and run this project's entry points; their
flags live in a registry of their own so that they can be imported beside model_main's.
"""
from __future__ import annotations

import sys

from absl import flags


def parse(registry: flags.FlagValues, argv: list[str], doc: str,
          known_only: bool = False) -> list[str] | int:
    """Parses `argv` into `registry`.

    Returns:
      The arguments left (after argv[0]; with `known_only`, the unknown flags), or an exit
      code: 0 after printing the help (`--help`, `-h`), 2 after printing a flag error.
    """
    if any(arg in ("--help", "-h", "--helpfull", "--helpshort") for arg in argv[1:]):
        print(doc.strip() + "\n\nflags:\n" + registry.get_help())
        return 0
    registry.unparse_flags()  # a second parse (tests, callers) starts from the defaults
    try:
        return registry(argv, known_only=known_only)[1:]
    except flags.Error as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
