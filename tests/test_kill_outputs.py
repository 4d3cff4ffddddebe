"""Kill -9 at points spread over real `ednas prune`, `ednas profile` and `ednas quantize` runs:
afterwards (and after the next write or read into the folder) the outputs are one run's set,
old or new (profile: the rows measured so far, which the next run keeps and completes), and the
next run removes the killed run's temporary files and scratch folders. Slow: real runs on tiny
models (each test well under a minute on a quiet 2-core machine)."""

from __future__ import annotations

import dataclasses
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from fixture_modules import load_test_module

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


# -- profile and quantize -------------------------------------------------------------------------
def _ednas(args: list[str], tmpdir: Path) -> subprocess.Popen:
    env = {**os.environ, "TMPDIR": str(tmpdir), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "ednas.cli", *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


def _kill_after(args: list[str], tmpdir: Path, seconds: float) -> None:
    proc = _ednas(args, tmpdir)
    try:
        proc.wait(timeout=seconds)  # it may finish first: then there was nothing to interrupt
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def _finish(args: list[str], tmpdir: Path) -> None:
    proc = _ednas(args, tmpdir)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode(errors="replace")[-2000:]


# a session-id file a dependency writes into the temp dir on import (timestamp + uuid), kept by design
NOT_LEFTOVERS = {".ses"}


def _no_leftovers(folder: Path, keep: set[str], tmpdir: Path) -> None:
    assert set(os.listdir(folder)) == keep, sorted(set(os.listdir(folder)) - keep)
    assert set(os.listdir(tmpdir)) <= NOT_LEFTOVERS, os.listdir(tmpdir)


@pytest.mark.parametrize("seed", [1, 2])
def test_kill_during_profile_resumes_its_rows(tmp_path, seed):
    """Two kills at random points, then the same command: every row measured before a kill is
    kept as it was (not measured again), the table ends complete with each item once."""
    import yaml

    from ednas.latency import runner
    from ednas.latency.units import space_units
    from ednas.arch.space import SearchSpace

    latency = load_test_module("latency_fixtures", Path(__file__).resolve().parent / "latency" / "conftest.py")
    TINY_BASE, TINY_GENES = latency.TINY_BASE, latency.TINY_GENES  # the latency tests' two-gene space
    TINY_BASE.save(tmp_path / "base.arch.yml")
    (tmp_path / "space.yml").write_text(yaml.safe_dump({"base": "base.arch.yml", **TINY_GENES}))
    tmpdir, out = tmp_path / "tmp", tmp_path / "tables" / "t.csv"
    tmpdir.mkdir()
    args = ["profile", "--space", str(tmp_path / "space.yml"), "--threads", "1", "--calib-models", "3",
            "--out", str(out)]
    rng = random.Random(seed)
    kept: list[str] = []
    for _ in range(2):
        _kill_after(args, tmpdir, rng.uniform(4.0, 12.0))
        rows = out.read_text().splitlines() if out.exists() else []
        assert rows[: len(kept)] == kept, "rows measured before a kill were changed"
        kept = rows[:-1] if rows and not out.read_text().endswith("\n") else rows  # a row cut by the kill
    _finish(args, tmpdir)
    rows = out.read_text().splitlines()
    assert rows[: len(kept)] == kept
    keys = [r["key"] for r in runner.read_rows(out)]
    space = SearchSpace.load(tmp_path / "space.yml")
    assert len(keys) == len(set(keys)) == len(space_units(space)) + 3
    _no_leftovers(out.parent, {"t.csv", "t.meta.yml"}, tmpdir)


@pytest.mark.parametrize("seed", [1, 2])
def test_kill_during_quantize_leaves_one_complete_set(tmp_path, seed):
    """A finished INT8 set (minmax), then runs that would replace it (percentile) killed at
    random points: the model and its summary are always one run's; the same command finishes."""
    import onnx

    from ednas import io
    from ednas.data.synth import generate
    from ednas.models import build_model
    from ednas.models.export import export_onnx

    from ednas.arch import ArchSpec

    _tiny(tmp_path)
    export_onnx(build_model(ArchSpec.load(tmp_path / "tiny.arch.yml")), tmp_path / "m.onnx")
    generate(tmp_path / "synth", 8, size=64, seed=0)
    tmpdir, out = tmp_path / "tmp", tmp_path / "q" / "m.int8.onnx"
    tmpdir.mkdir()

    def args(method: str) -> list[str]:
        return ["quantize", str(tmp_path / "m.onnx"), "--calib", str(tmp_path / "synth" / "images"),
                "--calib-method", method, "--threads", "1", "--out", str(out)]

    def set_method() -> str:
        """The calibration method the summary and the model agree on (fails on a mixed set)."""
        method = json.loads(out.with_suffix(".json").read_text())["calibration"]["method"]
        model = onnx.load(str(out))
        assert any(n.op_type == "QuantizeLinear" for n in model.graph.node), "not an INT8 model"
        assert (out.read_bytes() == old_model) == (method == "minmax"), "model and summary from different runs"
        return method

    _finish(args("minmax"), tmpdir)
    old_model = out.read_bytes()
    rng = random.Random(seed)
    for _ in range(2):
        _kill_after(args("percentile"), tmpdir, rng.uniform(3.0, 16.0))
        io.recover(out.parent)  # what the next write there does first
        set_method()
        assert set(os.listdir(out.parent)) == {"m.int8.onnx", "m.int8.json"}, os.listdir(out.parent)
    _finish(args("percentile"), tmpdir)
    assert set_method() == "percentile"
    _no_leftovers(out.parent, {"m.int8.onnx", "m.int8.json"}, tmpdir)
