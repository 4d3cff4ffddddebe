"""`ednas train` end to end on a synthetic COCO folder (and under torchrun, marked slow)."""

import json
import os
import subprocess
import sys

import pytest

from conftest import TINY_RECIPE_YAML, write_coco
from ednas.cli import main
from ednas.models.checkpoint import read_checkpoint


@pytest.fixture
def coco_run(tmp_path):
    write_coco(tmp_path / "coco")
    recipe = tmp_path / "tiny.yml"
    recipe.write_text(TINY_RECIPE_YAML)
    return tmp_path, recipe


def test_train_evaluate_and_resume(coco_run, capsys):
    tmp, recipe = coco_run
    out = tmp / "run"
    args = ["train", str(recipe), "--data", str(tmp / "coco"), "--val-data", str(tmp / "coco"), "--out", str(out)]
    assert main(args) == 0
    assert "trained 1 epochs (2 steps)" in capsys.readouterr().out
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert len(log) == 1 and "val_mAP" in log[0] and "qfl" in log[0]
    best = read_checkpoint(out / "best.ckpt")
    assert best["epoch"] == 1 and best["class_names"] == ["red", "green"]

    assert main(args) == 2  # refuses to overwrite a run
    assert "--resume" in capsys.readouterr().err
    assert main(args + ["--resume", "--epochs", "2"]) == 0
    assert read_checkpoint(out / "last.ckpt")["step"] == 4


def test_missing_data_is_a_one_line_error(coco_run, capsys):
    tmp, recipe = coco_run
    assert main(["train", str(recipe), "--out", str(tmp / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert "no training data" in err and len(err.splitlines()) == 1


@pytest.mark.slow
def test_torchrun_two_processes(coco_run):
    tmp, recipe = coco_run
    out = tmp / "ddp"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "ednas.cli", "train", str(recipe), "--data", str(tmp / "coco"), "--epochs", "2", "--out", str(out),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("trained 2 epochs") == 1  # only rank 0 reports
    ckpt = read_checkpoint(out / "last.ckpt")
    assert ckpt["step"] == 4 and len(ckpt["rng"]) == 2  # 8 images / (2 x 2 per process) per epoch
    assert len((out / "log.jsonl").read_text().splitlines()) == 2
