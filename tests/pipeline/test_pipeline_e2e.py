"""The real pipeline on a tiny space and a tiny synthetic set: it ends with a report; killed with
SIGKILL during the search and during quantization, the same command finishes and its
models.csv / pareto.csv / trials.csv equal an uninterrupted run's (same seed; latencies are
measured, so only their presence is compared)."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

PIPELINE = """
seed: 0
space: space.yml
recipe: {recipe}
data: {{kind: synthetic, images: 48, size: 64, min_object: 12, val_fraction: 0.5}}
profile: {{precision: fp32, threads: 1, calib_models: 3, table: {table}}}
supernet: {{minutes: null, epochs: 1, lr: 0.01, batch_size: 8, random_subnets: 1}}
search: {{trials: 8, budget: "99%", eval_images: 12, calib_images: 8}}
extract: {{top_k: 3, baselines: true, calib_images: 8}}
quantize: {{num_calib: 8, timing_runs: 2}}
measure: {{runs: 3}}
"""


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory) -> Path:
    """A pipeline file over a 26-unit space whose table is measured once, quickly."""
    from ednas.latency import profiler
    from ednas.search.space import SearchSpace

    folder = tmp_path_factory.mktemp("pipe")
    base = (ROOT / "search_spaces" / "synthetic_base.yml").read_text().replace("input_size: 96", "input_size: 64")
    (folder / "base.yml").write_text(base)
    (folder / "space.yml").write_text(
        "base: base.yml\n"
        "backbone: {widths: [0.5], kr: [true, false]}\nneck: {block_types: [plus], width: [48]}\n"
        "input_size: {min: 64, max: 64}\n")
    table = folder / "table.csv"
    profiler.profile(SearchSpace.load(folder / "space.yml"), table, threads=1, calib_models=3, progress=False,
                     timing={"min_pairs": 3, "min_seconds": 0.0})
    path = folder / "pipeline.yml"
    path.write_text(PIPELINE.format(recipe=ROOT / "recipes" / "synthetic_shapes.yml", table=table))
    return path


def _cmd(pipeline: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "ednas.cli", "run", str(pipeline), "--out", str(out)]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def _run(pipeline: Path, out: Path) -> subprocess.CompletedProcess:
    done = subprocess.run(_cmd(pipeline, out), env=_env(), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def _kill_when(pipeline: Path, out: Path, ready, timeout: float = 600) -> None:
    proc = subprocess.Popen(_cmd(pipeline, out), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.time()
    try:
        while not ready(out):
            assert proc.poll() is None, "the run ended before the kill point"
            assert time.time() - t0 < timeout
            time.sleep(0.2)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()


def _rows(path: Path, columns: tuple[str, ...]) -> list[tuple[str, ...]]:
    with open(path, newline="") as f:
        return [tuple(r[c] for c in columns) for r in csv.DictReader(f)]


def _by_arch(run: Path) -> dict[str, list[tuple[str, ...]]]:
    """pareto.csv and models.csv rows (with the ONNX file's digest) keyed by architecture hash."""
    import hashlib

    pareto = {r[0]: r[1:] for r in _rows(run / "search" / "pareto.csv", ("name", "arch_hash", "kind", "map"))}
    models = []
    for parent, variant, acc, low, high, path in _rows(run / "search" / "models.csv",
                                                       ("parent", "variant", "map", "map_low", "map_high", "path")):
        digest = hashlib.sha256((run / path).read_bytes()).hexdigest()
        models.append((pareto[parent][0], variant, acc, low, high, digest))
    return {"pareto": sorted(pareto.values()), "models": sorted(models)}


def _journal_trials(out: Path) -> int:
    journal = out / "search" / "study.journal"
    return journal.read_text().count('"op_code":6') if journal.exists() else 0  # trial state changes


def test_kill_9_during_search_and_quantize_then_same_result(pipeline, tmp_path):
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    _run(pipeline, clean)
    assert (clean / "report" / "report.html").stat().st_size > 10_000
    _kill_when(pipeline, killed, lambda out: _journal_trials(out) >= 3)
    assert not (killed / "stages" / "search.json").exists()
    _kill_when(pipeline, killed, lambda out: any((out / "onnx").glob("*.int8.onnx")) if (out / "onnx").is_dir() else False)
    assert not (killed / "stages" / "quantize.json").exists()
    second = _run(pipeline, killed)
    assert "search: done before" in second.stdout and "quantize: finished" in second.stdout
    # a search killed mid-trial retries that trial under a new number, so names may shift; the
    # architectures found, their accuracies and the deployed ONNX files must be the same
    assert _by_arch(clean) == _by_arch(killed)
    for run in (clean, killed):
        trials = _rows(run / "search" / "trials.csv", ("kind", "state"))
        assert trials.count(("trial", "COMPLETE")) == 8
    models = _rows(killed / "search" / "models.csv", ("variant", "measured_ms"))
    assert {v for v, _ in models} == {"fp32", "int8"} and all(float(ms) > 0 for _, ms in models)
    third = _run(pipeline, killed)  # nothing left to do
    assert third.stdout.count("(skipped)") == 13
