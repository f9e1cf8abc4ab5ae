"""A multi-worker run whose peer dies stops with a clear error in bounded time (no hang)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from .conftest import REPO, SMALL_CONFIG
from .test_distributed import _free_ports

# The failure path, not the backbone: MobileNet v1 has half the layers of the config's v2.
TINY = ["model.ssd.feature_extractor.type=ssd_mobilenet_v1_fpn_keras",
        "model.ssd.feature_extractor.depth_multiplier=0.25", "train_config.batch_size=2",
        "model.ssd.image_resizer.fixed_shape_resizer.height=64",
        "model.ssd.image_resizer.fixed_shape_resizer.width=64"]


def test_surviving_worker_stops_with_a_clear_error_when_its_peer_is_killed(tmp_path):
    ports = _free_ports(2)
    procs = []
    for index in range(2):
        tf_config = {"cluster": {"worker": [f"localhost:{p}" for p in ports]},
                     "task": {"type": "worker", "index": index}}
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(REPO),
                   TF_CONFIG=json.dumps(tf_config))
        log = open(tmp_path / f"worker{index}.log", "w")
        procs.append(subprocess.Popen(
            [sys.executable, str(REPO / "object_detection" / "model_main.py"),
             f"--pipeline_config_path={SMALL_CONFIG}", f"--model_dir={tmp_path / 'model'}",
             "--random_data", "--num_train_steps=100000", "--eval_count=0", "--log_every_n=1",
             "--collective_timeout_s=30", *[f"--config_override={o}" for o in TINY]],
            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO))
    try:
        deadline = time.time() + 300
        while "step 3/" not in (tmp_path / "worker0.log").read_text():
            assert time.time() < deadline and procs[0].poll() is None, \
                (tmp_path / "worker0.log").read_text()[-3000:]
            time.sleep(0.5)
        procs[1].send_signal(signal.SIGKILL)
        killed = time.time()
        code = procs[0].wait(timeout=120)  # bounded: the collective timeout is 30 s
        waited = time.time() - killed
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    out = (tmp_path / "worker0.log").read_text()
    assert code == 3, out[-3000:]
    assert "error: worker 0 of 2: a peer worker failed or became unreachable" in out
    assert "Traceback" not in out
    assert waited < 90
