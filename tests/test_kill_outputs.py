"""Kill -9 at points spread over a real `ednas prune` run: afterwards (and after the next
write or read into the folder) the checkpoint, ARCH.yml and summary are one run's set, old or
new, and the next run removes the killed run's scratch folder. Slow: real pruning runs."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def _tiny(folder: Path) -> tuple[Path, Path]:
    from ednas.arch import AuxArch, NeckArch
    from ednas.models import build_model, save_checkpoint
    from ednas.arch.zoo import get_arch

    base = get_arch("enhanced_nanodet_s")
    arch = dataclasses.replace(base, neck=NeckArch(width=32), head=dataclasses.replace(base.head, feat_channels=32),
                               aux=AuxArch(feat_channels=32, num_groups=8), input_size=64, num_classes=3)
    arch.save(folder / "tiny.arch.yml")
    recipe = folder / "tiny.yml"
    recipe.write_text("model: {arch: tiny.arch.yml, input_size: 64}\ndata: {class_names: [a, b, c]}\n")
    save_checkpoint(folder / "tiny.ckpt", build_model(arch))
    return recipe, folder / "tiny.ckpt"


def _prune(recipe: Path, ckpt: Path, out: Path, ratio: float, tmpdir: Path) -> subprocess.Popen:
    env = {**os.environ, "TMPDIR": str(tmpdir), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "ednas.cli", "prune", str(recipe), "--weights", str(ckpt),
                             "--ratio", str(ratio), "--threads", "1", "--out", str(out)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _set_ratio(out: Path) -> float:
    """The ratio all three files agree on (fails on a mixed set)."""
    import yaml

    from ednas.arch import ArchSpec
    from ednas.models.checkpoint import read_checkpoint

    summary = json.loads(out.with_suffix(".json").read_text())
    ckpt = read_checkpoint(out)
    arch = ArchSpec.from_dict(yaml.safe_load(out.with_suffix(".arch.yml").read_text()))
    assert ckpt["pruning"]["ratio"] == summary["ratio"], "checkpoint and summary from different runs"
    assert ArchSpec.from_dict(ckpt["arch"]) == arch, "checkpoint and ARCH.yml from different runs"
    return summary["ratio"]


def test_kill_during_prune_leaves_one_complete_set(tmp_path):
    from ednas import io

    recipe, ckpt = _tiny(tmp_path)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    out = tmp_path / "dest" / "p.ckpt"
    assert _prune(recipe, ckpt, out, 0.2, scratch).wait() == 0
    start = time.monotonic()
    assert _prune(recipe, ckpt, out, 0.3, scratch).wait() == 0
    duration = time.monotonic() - start
    assert _set_ratio(out) == 0.3
    seen = set()
    for fraction in (0.3, 0.6, 0.85, 0.95, 0.99):
        ratio = 0.2 if _set_ratio(out) == 0.3 else 0.3  # a run that would change the set
        proc = _prune(recipe, ckpt, out, ratio, scratch)
        time.sleep(duration * fraction)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        io.recover(out.parent)  # what the next write there, or load_model, does first
        seen.add(_set_ratio(out) == ratio)
        leftovers = [n for n in os.listdir(out.parent) if n not in ("p.ckpt", "p.arch.yml", "p.json")]
        assert not leftovers, leftovers
    monkey_tmp = tempfile.tempdir
    tempfile.tempdir = str(scratch)
    try:
        with io.scratch_dir("check"):
            pass  # sweeps the killed runs' folders
    finally:
        tempfile.tempdir = monkey_tmp
    assert [n for n in os.listdir(scratch) if n.startswith("ednas-")] == []
    assert seen  # every kill left a complete set (old or new)
