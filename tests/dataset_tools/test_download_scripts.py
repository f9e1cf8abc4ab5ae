"""download_all.sh / download_and_preprocess_mscoco.sh, run offline against stub downloads."""
from __future__ import annotations

import io
import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(shutil.which("unzip") is None, reason="unzip not installed")

# wget stand-in: copies $FAKE_DOWNLOADS/<basename of the URL> to --output-document.
FAKE_WGET = """#!/usr/bin/env bash
for arg in "$@"; do
  case "$arg" in --output-document=*) out="${arg#--output-document=}";; esac
  url="$arg"
done
cp "$FAKE_DOWNLOADS/$(basename "$url")" "$out"
"""
ACCEPT_ANY_MD5 = "#!/usr/bin/env bash\ncat > /dev/null\n"


def _executable(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def _fake_coco(downloads: Path) -> None:
    def jpeg() -> bytes:
        buffer = io.BytesIO()
        Image.fromarray(np.zeros((16, 20, 3), np.uint8)).save(buffer, "JPEG")
        return buffer.getvalue()

    for split in ("train2017", "val2017"):
        with zipfile.ZipFile(downloads / f"{split}.zip", "w") as z:
            z.writestr(f"{split}/000001.jpg", jpeg())
            z.writestr(f"{split}/000002.jpg", jpeg())
    with zipfile.ZipFile(downloads / "annotations_trainval2017.zip", "w") as z:
        for split in ("train2017", "val2017"):
            z.writestr(f"annotations/instances_{split}.json", json.dumps({
                "images": [{"id": i, "file_name": f"00000{i}.jpg", "width": 20, "height": 16}
                           for i in (1, 2)],
                "annotations": [{"id": 1, "image_id": 1, "category_id": 18,
                                 "bbox": [2, 2, 8, 8], "area": 64, "iscrowd": 0}],
                "categories": [{"id": 18, "name": "dog"}]}))
    (downloads / "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5").write_bytes(b"h5")


def _fake_slim_archive(downloads: Path, keys: str) -> None:
    """resnet_v1_50_2016_08_28.tar.gz holding `resnet_v1_50.ckpt` (a V2 prefix here) with the
    names and shapes recorded from TF-slim (`keys`), zeros as values."""
    import tensorflow as tf

    rows = [line.split(" ", 1) for line in
            (REPO / "tools" / "odapi_parity" / "keys" / f"{keys}.txt").read_text().splitlines()
            if line.strip() and not line.startswith("#")]
    work = downloads / "slim"
    work.mkdir(exist_ok=True)
    names = [name for name, _ in rows]
    tensors = [tf.zeros([int(d) for d in dims.strip(" []").split(",")]) for _, dims in rows]
    tf.raw_ops.SaveV2(prefix=str(work / "resnet_v1_50.ckpt"), tensor_names=names,
                      shape_and_slices=[""] * len(names), tensors=tensors)
    with tarfile.open(downloads / "resnet_v1_50_2016_08_28.tar.gz", "w:gz") as tar:
        for f in sorted(work.iterdir()):
            tar.add(f, arcname=f.name)
    shutil.rmtree(work)


def _run(tmp_path: Path, md5sum: str | None, slim_keys: str = "slim_resnet_v1_50"
         ) -> subprocess.CompletedProcess:
    downloads, stubs = tmp_path / "downloads", tmp_path / "bin"
    downloads.mkdir(exist_ok=True)
    stubs.mkdir(exist_ok=True)
    _fake_coco(downloads)
    _fake_slim_archive(downloads, slim_keys)
    _executable(stubs / "wget", FAKE_WGET)
    if md5sum is not None:
        _executable(stubs / "md5sum", md5sum)
    env = {**os.environ, "PATH": f"{stubs}:{os.environ['PATH']}", "PYTHON": sys.executable,
           "FAKE_DOWNLOADS": str(downloads), "NUM_WORKERS": "1",
           "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(REPO)}
    return subprocess.run(["bash", str(REPO / "download_all.sh"), str(tmp_path / "coco"),
                           str(tmp_path / "checkpoints")],
                          capture_output=True, text=True, env=env, timeout=300)


def test_download_all_fetches_weights_and_converts_coco(tmp_path):
    result = _run(tmp_path, ACCEPT_ANY_MD5)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    coco = tmp_path / "coco"
    names = sorted(os.listdir(coco))
    assert names.count("coco_train.record-00000-of-00100") == 1
    assert len([n for n in names if n.startswith("coco_train.record-")]) == 100
    assert len([n for n in names if n.startswith("coco_val.record-")]) == 50
    assert (coco / "annotations" / "instances_val2017.json").is_file()
    assert (tmp_path / "checkpoints" / "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
            ).read_bytes() == b"h5"
    assert "images: read 2, written 2, skipped 0" in result.stderr
    slim = tmp_path / "checkpoints" / "resnet_v1_50"
    assert sorted(os.listdir(slim)) == ["model.ckpt.data-00000-of-00001", "model.ckpt.index"]
    assert "TF-slim resnet_v1_50, all 265 backbone variables present" in result.stdout
    assert not (tmp_path / "checkpoints" / "resnet_v1_50_2016_08_28.tar.gz").exists()
    again = _run(tmp_path, ACCEPT_ANY_MD5)  # a second run keeps what is there
    assert again.returncode == 0 and "resnet_v1_50/model.ckpt: already there" in again.stdout


def test_a_slim_archive_of_another_network_stops_the_script(tmp_path):
    result = _run(tmp_path, ACCEPT_ANY_MD5, slim_keys="slim_resnet_v1_101")
    assert result.returncode != 0
    assert "is not TF-slim's resnet_v1_50" in result.stderr
    assert "did not hold TF-slim's resnet_v1_50" in result.stderr


def test_a_download_with_the_wrong_checksum_stops_the_script(tmp_path):
    result = _run(tmp_path, None)  # the real md5sum: the stub files do not match
    assert result.returncode != 0
    assert "does not have MD5 4d473c1dd8becc155b73f8504c6f6626" in result.stderr
