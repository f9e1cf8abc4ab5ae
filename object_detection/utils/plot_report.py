r"""Plots a DLLogger JSON report (`--raport_file` of model_main) as PNG figures.

    python -m object_detection.utils.plot_report --raport_file=/results/raport.json \
        --output_dir=/results/plots

Writes, into --output_dir:
  report.png         the four panels below in one figure
  loss.png           training loss terms (total, classification, localization, regularization)
  learning_rate.png  learning rate
  throughput.png     training img/s
  map.png            COCO mAP, mAP@0.5 and mAP@0.75 of the evaluations
all against the training step. Records are read with `dllogger.read_report`: training records
have an int `step` and data keys such as total_loss, classification_loss, localization_loss,
regularization_loss, learning_rate, train_throughput; evaluation records have an int `step` and
mAP, mAP@0.5, ...; run-level records (`step` "PARAMETER" or []) are not plotted. A panel whose
values are missing says so instead of plotting. Rendering uses matplotlib's Agg backend (no
display needed).
"""
from __future__ import annotations

import argparse
import math
import os
import sys
from typing import Mapping, Sequence

if __package__ in (None, ""):  # run as a script path: make the package importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))))

LOSS_KEYS = ("total_loss", "classification_loss", "localization_loss", "regularization_loss")
MAP_KEYS = ("mAP", "mAP@0.5", "mAP@0.75")

# (file stem, title, y label, data keys)
PANELS = (
    ("loss", "Training loss", "loss", LOSS_KEYS),
    ("learning_rate", "Learning rate", "learning rate", ("learning_rate",)),
    ("throughput", "Training throughput", "images / s", ("train_throughput",)),
    ("map", "COCO evaluation", "AP", MAP_KEYS),
)


def series(records: Sequence[Mapping], key: str) -> tuple[list[int], list[float]]:
    """(steps, values) of `key` over the records with an int step and a finite number."""
    steps, values = [], []
    for record in records:
        step, data = record.get("step"), record.get("data") or {}
        if not isinstance(step, int) or isinstance(step, bool) or key not in data:
            continue
        value = data[key]
        if isinstance(value, (int, float)) and not isinstance(value, bool) \
                and math.isfinite(value):
            steps.append(step)
            values.append(float(value))
    return steps, values


def _step_range(records: Sequence[Mapping]) -> tuple[float, float] | None:
    """x limits shared by every panel: the steps of all records, padded by 2%."""
    steps = [r["step"] for r in records
             if isinstance(r.get("step"), int) and not isinstance(r.get("step"), bool)]
    if len(set(steps)) < 2:
        return None
    pad = 0.02 * (max(steps) - min(steps))
    return min(steps) - pad, max(steps) + pad


def _draw_panel(ax, records, title: str, ylabel: str, keys: Sequence[str]) -> int:
    """Draws one panel; returns how many series had data."""
    drawn = 0
    limits = _step_range(records)
    if limits:
        ax.set_xlim(*limits)
    for key in keys:
        steps, values = series(records, key)
        if not steps:
            continue
        marker = "o" if len(steps) <= 30 else None
        ax.plot(steps, values, label=key, marker=marker, markersize=3, linewidth=1.2)
        drawn += 1
    ax.set_title(title)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    if drawn:
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, f"no {', '.join(keys)} in the report", ha="center", va="center",
                transform=ax.transAxes, fontsize=9, color="grey", wrap=True)
    return drawn


def plot_report(raport_file: str, output_dir: str, dpi: int = 100) -> list[str]:
    """Writes report.png and one PNG per panel; returns their paths.

    Raises:
      ValueError: the report has no record at all.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from object_detection.utils.dllogger import read_report

    records = read_report(raport_file)
    if not records:
        raise ValueError(f"{raport_file}: no DLLogger record (lines starting with 'DLLL ').")
    os.makedirs(output_dir, exist_ok=True)
    paths = []
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    for ax, (_, title, ylabel, keys) in zip(axes.flat, PANELS):
        _draw_panel(ax, records, title, ylabel, keys)
    fig.suptitle(os.path.basename(raport_file))
    fig.tight_layout()
    path = os.path.join(output_dir, "report.png")
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    paths.append(path)
    for stem, title, ylabel, keys in PANELS:
        fig, ax = plt.subplots(figsize=(6, 4))
        _draw_panel(ax, records, title, ylabel, keys)
        fig.tight_layout()
        path = os.path.join(output_dir, f"{stem}.png")
        fig.savefig(path, dpi=dpi)
        plt.close(fig)
        paths.append(path)
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m object_detection.utils.plot_report",
        description="PNG plots of a DLLogger JSON report: losses, learning rate, throughput, "
                    "mAP against the step.")
    parser.add_argument("--raport_file", required=True, help="DLLogger JSON-lines report.")
    parser.add_argument("--output_dir", required=True, help="Where the PNG files are written.")
    parser.add_argument("--dpi", type=int, default=100, help="Resolution of the PNG files.")
    args = parser.parse_args(argv)
    if not os.path.isfile(args.raport_file):
        print(f"error: --raport_file: {args.raport_file!r} does not exist.", file=sys.stderr)
        return 2
    try:
        paths = plot_report(args.raport_file, args.output_dir, dpi=args.dpi)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
