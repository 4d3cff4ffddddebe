"""Supernet training: sandwich steps learn, a SIGKILLed run resumes to the same weights,
torchrun with two processes trains."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ednas.cli import main
from ednas.supernet.supernet import Supernet


def _init(space_file: Path, out: Path) -> None:
    assert main(["supernet", "init", "--space", str(space_file), "--classes", "shapes", "--out", str(out)]) == 0


def _train_cmd(sup: Path, recipe: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "ednas.cli", "supernet", "train", str(sup), "--recipe", str(recipe),
            "--epochs", "3", "--batch-size", "4", "--threads", "1", "--save-every", "1", "--lr", "0.01", *extra]


def _tensors(path: Path) -> dict[str, torch.Tensor]:
    return Supernet.load(path).tensors


def test_training_changes_weights_and_records_steps(tiny_space_file, tiny_recipe, tmp_path):
    sup = tmp_path / "s.pt"
    _init(tiny_space_file, sup)
    before = _tensors(sup)
    assert main(["supernet", "train", str(sup), "--recipe", str(tiny_recipe), "--epochs", "1",
                 "--batch-size", "4", "--threads", "1"]) == 0
    after = Supernet.load(sup)
    assert after.meta["trained_steps"] >= 1
    changed = [k for k in before if not torch.equal(before[k], after.tensors[k])]
    assert any("normal" in k for k in changed) and any("plus" in k for k in changed)


def test_sigkill_then_resume_equals_uninterrupted(tiny_space_file, tiny_recipe, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    _init(tiny_space_file, a)
    b.write_bytes(a.read_bytes())
    subprocess.run(_train_cmd(a, tiny_recipe), check=True, env=env, capture_output=True)

    proc = subprocess.Popen(_train_cmd(b, tiny_recipe), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = b.with_name(b.name + ".state")
    deadline = time.time() + 120
    while not state.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    killed = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert killed, "the run finished before it could be killed; make it longer"
    subprocess.run(_train_cmd(b, tiny_recipe, "--resume"), check=True, env=env, capture_output=True)
    ta, tb = _tensors(a), _tensors(b)
    assert Supernet.load(b).meta["trained_steps"] == Supernet.load(a).meta["trained_steps"]
    for k in ta:
        assert torch.allclose(ta[k], tb[k], atol=1e-6), k


@pytest.mark.slow
def test_torchrun_two_processes(tiny_space_file, tiny_recipe, tmp_path):
    sup = tmp_path / "s.pt"
    _init(tiny_space_file, sup)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "ednas.cli",
           "supernet", "train", str(sup), "--recipe", str(tiny_recipe), "--epochs", "1", "--batch-size", "4",
           "--threads", "1"]
    subprocess.run(cmd, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, timeout=300)
    assert Supernet.load(sup).meta["trained_steps"] >= 1


def test_inplace_distillation_starts_at_its_part_of_the_run(tiny_space, tiny_recipe, tmp_path):
    """Without a teacher the largest sub-network is distilled from only once it has trained
    for `inplace_kd_from` of the run (from the start, distillation from an untrained largest
    left every sub-network near zero AP50 on the synthetic shapes); a distillation-only run
    without a teacher would learn nothing and is refused."""
    import dataclasses

    from ednas.errors import InputError
    from ednas.recipe import load_recipe
    from ednas.supernet.train import SupernetTrainConfig, SupernetTrainer
    from ednas.train.datasets import build_train_set

    recipe = load_recipe(str(tiny_recipe))
    recipe = dataclasses.replace(recipe, model=recipe.model.replace(input_size=tiny_space.config.input_size.max))
    train_set = build_train_set(recipe)
    cfg = SupernetTrainConfig(epochs=4, batch_size=4, random_subnets=0, inplace_kd_from=0.5, save_every=100)
    trainer = SupernetTrainer(Supernet(tiny_space), tmp_path / "s.pt", recipe, train_set, cfg, progress=False)
    calls: list[int] = []
    distill = trainer.distill
    trainer.distill = lambda student, target: (calls.append(trainer.step), distill(student, target))[1]
    trainer.fit()
    total = trainer.total_steps
    assert total >= 4 and calls and min(calls) == total // 2 and len(calls) == total - total // 2
    with pytest.raises(InputError, match="needs a teacher"):
        SupernetTrainer(Supernet(tiny_space), tmp_path / "t.pt", recipe, train_set,
                        dataclasses.replace(cfg, det_weight=0.0), progress=False)
    with pytest.raises(InputError, match="inplace_kd_from"):
        SupernetTrainConfig(epochs=1, inplace_kd_from=1.5)
