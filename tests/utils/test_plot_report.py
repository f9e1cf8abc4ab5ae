"""plot_report: a DLLogger report -> PNG figures of losses, learning rate, throughput, mAP."""
from __future__ import annotations

import math

import pytest
from PIL import Image

from object_detection.utils import plot_report
from object_detection.utils.dllogger import DLLogger

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FILES = ["report.png", "loss.png", "learning_rate.png", "throughput.png", "map.png"]


def _write_report(path, with_eval: bool = True) -> None:
    report = DLLogger(str(path))
    report.log("PARAMETER", {"pipeline_config_path": "x.config", "global_batch_size": 8})
    for step in range(10, 210, 10):
        cls, loc = 1.5 * math.exp(-step / 80), 0.7 * math.exp(-step / 120)
        report.log(step, {"total_loss": cls + loc + 0.06, "classification_loss": cls,
                          "localization_loss": loc, "regularization_loss": 0.06,
                          "learning_rate": 0.08 * math.cos(math.pi * step / 400),
                          "train_throughput": 30.0 + step % 7})
        if with_eval and step % 100 == 0:
            report.log(step, {"mAP": step / 1000, "mAP@0.5": step / 500, "mAP@0.75": step / 2000,
                              "mAP_small": -1.0})
    report.log([], {"train_throughput": 31.0, "train_first_step_s": 30.0})


def _assert_png(path, min_bytes: int = 10_000) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, path
    assert len(data) > min_bytes, (path, len(data))  # a drawn figure, not an empty canvas
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        return image.size


def test_plot_command_writes_valid_pngs(tmp_path, capsys):
    _write_report(tmp_path / "raport.json")
    code = plot_report.main([f"--raport_file={tmp_path / 'raport.json'}",
                             f"--output_dir={tmp_path / 'plots'}"])
    assert code == 0
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == sorted(FILES)
    width, height = _assert_png(tmp_path / "plots" / "report.png", min_bytes=40_000)
    assert (width, height) == (1200, 800)  # 12 x 8 inches at 100 dpi: the four panels
    for name in FILES[1:]:
        _assert_png(tmp_path / "plots" / name)
    assert str(tmp_path / "plots" / "map.png") in capsys.readouterr().out


def test_series_keeps_int_steps_and_finite_numbers():
    records = [{"step": "PARAMETER", "data": {"mAP": 1.0}},
               {"step": [], "data": {"mAP": 2.0}},
               {"step": 5, "data": {"mAP": 0.25}},
               {"step": 6, "data": {"mAP": float("nan")}},
               {"step": 7, "data": {"total_loss": 1.0}},
               {"step": 8, "data": {"mAP": 0.5}}]
    assert plot_report.series(records, "mAP") == ([5, 8], [0.25, 0.5])


def test_report_without_evaluation_still_gets_every_panel(tmp_path):
    _write_report(tmp_path / "raport.json", with_eval=False)
    paths = plot_report.plot_report(str(tmp_path / "raport.json"), str(tmp_path / "plots"))
    assert len(paths) == 5
    _assert_png(tmp_path / "plots" / "map.png", min_bytes=5_000)  # says "no mAP ..." instead


def test_empty_report_is_an_error(tmp_path, capsys):
    (tmp_path / "empty.json").write_text("not a report\n")
    assert plot_report.main([f"--raport_file={tmp_path / 'empty.json'}",
                             f"--output_dir={tmp_path / 'plots'}"]) == 2
    assert "no DLLogger record" in capsys.readouterr().err


def test_missing_report_is_an_error(tmp_path, capsys):
    assert plot_report.main([f"--raport_file={tmp_path / 'missing.json'}",
                             f"--output_dir={tmp_path / 'plots'}"]) == 2
    assert f"error: --raport_file: '{tmp_path / 'missing.json'}' does not exist." in capsys.readouterr().err


@pytest.mark.parametrize("step", [True, 1.5])  # a bool is not a step; nor is a float
def test_series_ignores_non_int_steps(step):
    assert plot_report.series([{"step": step, "data": {"mAP": 0.1}}], "mAP") == ([], [])
