"""`ednas train` killed with SIGKILL mid-epoch, then continued with --resume, ends with every
epoch done: the atomically written last.ckpt survives the kill."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import TINY_RECIPE_YAML, write_coco
from ednas.models.checkpoint import read_checkpoint

EPOCHS, IMAGES, BATCH = 3, 48, 4  # 12 steps per epoch: time to land a kill inside epoch 2


def _train(tmp, *extra):
    cmd = [sys.executable, "-m", "ednas.cli", "train", str(tmp / "tiny.yml"), "--data", str(tmp / "coco"),
           "--epochs", str(EPOCHS), "--batch-size", str(BATCH), "--out", str(tmp / "run"), *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _epochs_logged(log):
    return len(log.read_text().splitlines()) if log.exists() else 0


@pytest.mark.slow  # two CLI processes and three epochs: ~80 s on a loaded 2-core machine
@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_sigkill_mid_epoch_then_resume_finishes(tmp_path):
    write_coco(tmp_path / "coco", n=IMAGES)
    (tmp_path / "tiny.yml").write_text(TINY_RECIPE_YAML)
    log = tmp_path / "run" / "log.jsonl"

    proc = _train(tmp_path)
    deadline = time.monotonic() + 240
    while _epochs_logged(log) < 1 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, f"training ended before the kill:\n{proc.communicate()[1][-2000:]}"
    assert _epochs_logged(log) >= 1, "no epoch finished in time"
    proc.send_signal(signal.SIGKILL)  # epoch 1 is saved; epoch 2 is under way
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    killed_at = read_checkpoint(tmp_path / "run" / "last.ckpt")["epoch"]
    assert 1 <= killed_at < EPOCHS  # the kill interrupted the run

    resumed = _train(tmp_path, "--resume")
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err[-2000:]
    assert f"trained {EPOCHS} epochs ({EPOCHS * IMAGES // BATCH} steps)" in out
    ckpt = read_checkpoint(tmp_path / "run" / "last.ckpt")
    assert (ckpt["epoch"], ckpt["step"]) == (EPOCHS, EPOCHS * IMAGES // BATCH)
    assert ckpt["scheduler"]["step_count"] == EPOCHS * IMAGES // BATCH
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert records[-1]["epoch"] == EPOCHS and records[-1]["step"] == EPOCHS * IMAGES // BATCH
