"""Dependencies point one way (DESIGN.md), and only the modules allowed to read protos import them.

Every module of `object_detection/` is parsed with `ast` (nothing is imported or run), imports
inside functions included, and each import is reduced to an edge between folders (the
top-level entry modules count as one folder, "(top)"). Two rules:

1. A folder imports only folders of a lower layer in `LAYERS`; two folders of one layer do not
   import each other. A new folder fails until it is given a layer.
2. Generated protobuf code (`object_detection.protos`) and the protobuf runtime
   (`google.protobuf`) are imported only by `PROTO_READERS`.

A failure names the file, the line and the edge, e.g.
`object_detection/core/x.py:12: core -> training (object_detection.training.train_lib)`.
"""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "object_detection"
TOP = "(top)"

# Highest first. A folder may import any folder of a layer below its own.
LAYERS = (
    # model_main.py, model_main_tf2.py, exporter_main_v2.py, export_tflite_graph_tf2.py,
    # convert_odapi_checkpoint.py, verify_checkpoint.py, model_summary.py: the commands.
    (TOP,),
    # The train loop; it evaluates during training, so it sits above evaluation/.
    ("training",),
    # Beside training at the top: they use builders and below, never training/ nor each other.
    ("evaluation", "export"),
    # Config -> objects.
    ("builders",),
    # The SSD (with its checkpoint layouts); the converters, which use data/'s label maps.
    ("meta_architectures", "dataset_tools"),
    # The box predictor (on models/' conv hyperparams); the input pipeline.
    ("predictors", "data"),
    # Keras layers with weights: backbones, FPN.
    ("models",),
    # Pure TF math: box ops, anchors, matcher, losses, post-processing, learning-rate schedules.
    ("core",),
    # What every layer may use: errors, the config front end, the report format, drawing.
    ("utils",),
    # Generated code, at the bottom.
    ("protos",),
)
RANK = {folder: rank for rank, layer in enumerate(LAYERS) for folder in layer}

# Module paths (relative to object_detection/; a trailing "/" is a whole folder) that may import
# protobuf code, each with why. Keep it as short as the code allows.
PROTO_READERS = {
    "protos/": "the generated modules (and their generator) themselves",
    "builders/": "config -> objects: builders are the readers of config messages",
    "utils/config_util/": "the config front end: parses pipeline.config, overrides, errors",
    "utils/config_fields.py": "the field table walks TrainEvalPipelineConfig's descriptors",
    "data/label_map_util.py": "label maps are StringIntLabelMap text protos",
}


def _folders() -> set[str]:
    return {p.parent.relative_to(PACKAGE).parts[0]
            for p in PACKAGE.rglob("*.py") if p.parent != PACKAGE}


def _folder_of(module: str, folders: set[str]) -> str | None:
    """The folder of `object_detection.<...>` module `module`; None outside the package."""
    parts = module.split(".")
    if parts[0] != "object_detection":
        return None
    return parts[1] if len(parts) > 1 and parts[1] in folders else TOP


def _is_proto(module: str) -> bool:
    return (module == "object_detection.protos"
            or module.startswith(("object_detection.protos.", "google.protobuf")))


def _imported_modules(tree: ast.AST, package: str):
    """(line, module) for every import in `tree`, however deep; `from a import b` gives `a.b`
    (b may be a module or a name in a: either way it is a's folder, or b's when a is the
    package)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolved against the importing module's package
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            for alias in node.names:
                yield node.lineno, f"{module}.{alias.name}"


def violations_in(relpath: str, source: str, folders: set[str]) -> list[str]:
    """What `source`, the module at `object_detection/<relpath>`, breaks of both rules."""
    parts = Path(relpath).parts
    folder = parts[0] if len(parts) > 1 else TOP
    package = ".".join(("object_detection",) + parts[:-1])
    where = f"object_detection/{relpath}"
    found = []
    if folder not in RANK:
        return [f"{where}: folder {folder!r} has no layer in LAYERS (place it there)"]
    reads_protos = any(relpath == allowed or (allowed.endswith("/") and
                                              relpath.startswith(allowed))
                       for allowed in PROTO_READERS)
    for line, module in _imported_modules(ast.parse(source, where), package):
        target = _folder_of(module, folders)
        if target is not None and target != folder and (
                target not in RANK or RANK[target] <= RANK[folder]):
            found.append(f"{where}:{line}: {folder} -> {target} ({module}): "
                         f"{folder} may import only {_below(folder)}")
        if _is_proto(module) and not reads_protos:
            found.append(f"{where}:{line}: proto import outside PROTO_READERS ({module})")
    return found


def _below(folder: str) -> str:
    return ", ".join(f for layer in LAYERS[RANK[folder] + 1:] for f in layer) or "nothing"


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path.relative_to(PACKAGE).as_posix(), path.read_text(encoding="utf-8")


def folder_graph() -> dict[tuple[str, str], int]:
    """{(from folder, to folder): number of imports} over the whole package."""
    folders = _folders()
    graph: dict[tuple[str, str], int] = {}
    for relpath, source in _modules():
        parts = Path(relpath).parts
        folder = parts[0] if len(parts) > 1 else TOP
        package = ".".join(("object_detection",) + parts[:-1])
        for _, module in _imported_modules(ast.parse(source), package):
            target = _folder_of(module, folders)
            if target not in (None, folder):
                graph[folder, target] = graph.get((folder, target), 0) + 1
    return graph


def test_every_folder_has_a_layer():
    assert _folders() | {TOP} <= set(RANK), sorted(_folders() - set(RANK))


def test_imports_point_down_the_layers_and_protos_stay_with_their_readers():
    folders = _folders()
    found = [v for relpath, source in _modules() for v in violations_in(relpath, source, folders)]
    assert not found, "\n" + "\n".join(found)


def test_the_scan_sees_the_package_edges():
    # Guards the scanner itself: a parser that saw no import would pass the test above.
    graph = folder_graph()
    for edge in [("builders", "core"), ("training", "builders"), ("export", "meta_architectures"),
                 ("predictors", "models"), ("builders", "protos"), (TOP, "training")]:
        assert graph.get(edge, 0) > 0, edge


def test_an_upward_import_inside_a_function_and_a_stray_proto_import_are_caught():
    folders = _folders()
    source = ("from __future__ import annotations\n\n"
              "def f():\n"
              "    from object_detection.training import train_lib\n"
              "    from ..protos import pipeline_pb2\n")
    found = violations_in("core/box_ops.py", source, folders)
    assert len(found) == 2, found  # core -> protos points down, but core reads no proto
    assert found[0].startswith("object_detection/core/box_ops.py:4: core -> training")
    assert found[1] == ("object_detection/core/box_ops.py:5: proto import outside "
                        "PROTO_READERS (object_detection.protos.pipeline_pb2)")
    # Siblings of one layer do not import each other; a relative import resolves to its folder.
    assert violations_in("evaluation/x.py", "from ..export import signatures\n", folders)
    assert not violations_in("export/x.py", "from . import signatures\n", folders)
    assert not violations_in("builders/x.py", "from object_detection.protos import ssd_pb2\n",
                             folders)
