"""Two measures of the package's shape: long functions and the folder import graph.

    python tools/code_metrics.py [--root object_detection] [--min_lines 60]

Prints every function (methods and nested functions included) of `min_lines` lines or more,
longest first, as `lines  file:line  name` (lines from `def` to the last line of its body,
by Python's ast), then every edge `folder -> folder` between the package's folders with the
number of import statements behind it (function-local imports included; the package's top
modules count as the folder `.`). `protos/` (generated code) is left out.
"""
from __future__ import annotations

import argparse
import ast
import collections
from pathlib import Path


def _modules(root: Path):
    for path in sorted(root.rglob("*.py")):
        if "protos" in path.relative_to(root).parts:
            continue
        yield path, ast.parse(path.read_text(), str(path))


def long_functions(root: Path, min_lines: int) -> list[tuple[int, str, str]]:
    """(lines, file:line, qualified name) of every function of at least `min_lines` lines."""
    found = []
    for path, tree in _modules(root):
        def visit(node, prefix):
            for child in ast.iter_child_nodes(node):
                if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    name = f"{prefix}{child.name}"
                    lines = child.end_lineno - child.lineno + 1
                    if lines >= min_lines:
                        found.append((lines, f"{path.relative_to(root.parent)}:{child.lineno}",
                                      name))
                    visit(child, name + ".")
                elif isinstance(child, ast.ClassDef):
                    visit(child, f"{prefix}{child.name}.")
                else:
                    visit(child, prefix)
        visit(tree, "")
    return sorted(found, key=lambda row: (-row[0], row[1]))


def folder_edges(root: Path) -> dict[tuple[str, str], int]:
    """{(from folder, to folder): import statements} between the package's folders."""
    package = root.name
    edges: collections.Counter = collections.Counter()
    for path, tree in _modules(root):
        parts = path.relative_to(root).parts
        source = parts[0] if len(parts) > 1 else "."
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module + "." + alias.name for alias in node.names]
            for name in names:
                bits = name.split(".")
                if bits[0] != package or len(bits) < 2:
                    continue
                target = bits[1] if (root / bits[1]).is_dir() else "."
                if target != source and target != "protos":
                    edges[(source, target)] += 1
    return dict(edges)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=str(Path(__file__).resolve().parents[1] /
                                              "object_detection"))
    parser.add_argument("--min_lines", type=int, default=60)
    args = parser.parse_args()
    root = Path(args.root)
    rows = long_functions(root, args.min_lines)
    print(f"functions of {args.min_lines} lines or more: {len(rows)}")
    for lines, where, name in rows:
        print(f"{lines:5d}  {where}  {name}")
    edges = folder_edges(root)
    print(f"\nfolder import edges: {len(edges)}")
    for (source, target), count in sorted(edges.items()):
        print(f"  {source:>18} -> {target:<18} {count}")


if __name__ == "__main__":
    main()
