"""Timing with ONNX Runtime, standalone: this file imports only the standard library, numpy,
onnxruntime and `ednas/onnx_runtime.py`, so `ednas profile --bundle DIR` copies the two files
into the bundle as the remote runner.

Every measurement is interleaved with a fixed reference (`time_models`: rounds of each model
once, the order rotating): the median of the per-round ratios relative = candidate / reference
survives a machine that gets slower or faster while it runs, and the probe's own median lets
later runs rescale (see notes on measuring). A speed-up is reference / candidate = 1 / relative.

    python runner.py BUNDLE_DIR [--threads N]   # measure a bundle -> BUNDLE_DIR/results.csv
"""

from __future__ import annotations

import argparse
import csv
import datetime as _dt
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Iterable

import onnxruntime as ort

try:
    from ednas.onnx_runtime import random_feeds, session
except ImportError:  # the bundle's copy: onnx_runtime.py lies beside this file
    from onnx_runtime import random_feeds, session  # type: ignore[no-redef]

COLUMNS = ["key", "kind", "median_ms", "p10_ms", "p90_ms", "probe_ms", "ratio", "pairs"]
MODEL_KIND = "model"  # whole models (calibration, validation): more pairs than a unit
MODEL_TIMING = {"min_pairs": 40, "min_seconds": 1.0}
INT8_FLAGS = ("avx2", "avx512_vnni", "avx_vnni", "amx_int8")  # = ednas.cpu.INT8_FLAGS (standalone file)


def machine_info(threads: int) -> dict[str, Any]:
    """What a table's numbers depend on besides the model."""
    cpu, flags = platform.processor() or platform.machine(), []
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):  # comes before "flags" in each processor's block
                cpu = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = [f for f in INT8_FLAGS if f in line.split(":", 1)[1].split()]
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cpu_flags": flags,  # INT8 kernels differ with these (ednas.cpu; U8S8 saturates without VNNI)
        "logical_cores": os.cpu_count(),
        "threads": threads,
        "onnxruntime": ort.__version__,
        "platform": platform.platform(),
        "date": _dt.datetime.now().isoformat(timespec="seconds"),
    }


class Timed:
    """A session with its inputs, ready to be run repeatedly."""

    def __init__(self, path: str | Path, threads: int, spin: bool = False) -> None:
        self.session = session(path, threads, spin)  # fixed intra-op threads, all fusions
        self.feeds = random_feeds(self.session)

    def __call__(self) -> float:
        """One inference; its wall time in ms."""
        t0 = time.perf_counter()
        self.session.run(None, self.feeds)
        return (time.perf_counter() - t0) * 1e3


def _quantile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def time_models(reference: Timed, candidates: list[Timed], warmup: int = 3, min_rounds: int = 15,
                min_seconds: float = 0.15, max_rounds: int = 400) -> dict[str, Any]:
    """Interleaved timing, the one way every ednas timing is done: in rounds, each round runs
    every model once (reference first, then the order rotates), until `min_rounds` rounds and
    `min_seconds` have passed (at most `max_rounds`).

    Returns {"rounds": n, "reference": stats, "candidates": [stats, ...]}, stats being
    {"median_ms", "p10_ms", "p90_ms"}; each candidate's also has the per-round ratio
    `relative` = candidate_ms / reference_ms (< 1: the candidate is faster) as "relative"
    (median), "relative_p10" and "relative_p90". The median per-round ratio survives a
    machine that gets slower or faster while it runs. (A speed-up is 1 / relative.)
    """
    models = [reference, *candidates]
    for _ in range(warmup):
        for m in models:
            m()
    times: list[list[float]] = [[] for _ in models]
    start = time.perf_counter()
    r = 0
    while r < max_rounds and (r < min_rounds or time.perf_counter() - start < min_seconds):
        for k in range(len(models)):
            j = (k + r) % len(models)
            times[j].append(models[j]())
        r += 1

    def stats(t: list[float]) -> dict[str, float]:
        return {"median_ms": statistics.median(t), "p10_ms": _quantile(t, 0.1), "p90_ms": _quantile(t, 0.9)}

    out = []
    for t in times[1:]:
        ratios = [c / ref for c, ref in zip(t, times[0])]
        out.append({**stats(t), "relative": statistics.median(ratios), "relative_p10": _quantile(ratios, 0.1),
                    "relative_p90": _quantile(ratios, 0.9)})
    return {"rounds": r, "reference": stats(times[0]), "candidates": out}


def time_pair(target: Timed, probe: Timed, warmup: int = 3, min_pairs: int = 15,
              min_seconds: float = 0.15, max_pairs: int = 400) -> dict[str, float]:
    """`time_models` of one target against the probe, as a results row: the target's
    median/p10/p90, the probe's median, and "ratio" = relative = target_ms / probe_ms."""
    timing = time_models(probe, [target], warmup, min_pairs, min_seconds, max_pairs)
    t = timing["candidates"][0]
    return {
        "median_ms": t["median_ms"], "p10_ms": t["p10_ms"], "p90_ms": t["p90_ms"],
        "probe_ms": timing["reference"]["median_ms"], "ratio": t["relative"], "ratio_p10": t["relative_p10"],
        "ratio_p90": t["relative_p90"], "pairs": timing["rounds"],
    }


class RowWriter:
    """Appends measured rows to a CSV and flushes each one, so a killed run keeps them."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        new = not self.path.exists() or self.path.stat().st_size == 0
        self.file = self.path.open("a", newline="")
        self.writer = csv.DictWriter(self.file, fieldnames=COLUMNS)
        if new:
            self.writer.writeheader()
            self.file.flush()

    def write(self, row: dict[str, Any]) -> None:
        self.writer.writerow({k: row[k] for k in COLUMNS})
        self.file.flush()
        os.fsync(self.file.fileno())

    def close(self) -> None:
        self.file.close()

    def __enter__(self) -> "RowWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_rows(path: str | Path) -> list[dict[str, Any]]:
    """Complete rows of a results CSV (a line cut by a kill is dropped, and the file is
    rewritten without it so appending continues cleanly)."""
    path = Path(path)
    if not path.exists():
        return []
    rows, dropped = [], False
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            try:
                rows.append({**row, **{c: float(row[c]) for c in COLUMNS[2:]}})
            except (TypeError, ValueError):
                dropped = True
    if dropped:
        with path.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=COLUMNS)
            w.writeheader()
            for row in rows:
                w.writerow({k: row[k] for k in COLUMNS})
    return rows


def measure_all(items: Iterable[dict[str, str]], bundle: Path, probe: Timed, threads: int,
                spin: bool, out: Path, timing: dict[str, Any] | None = None) -> int:
    """Measure every manifest item not yet in `out` (`timing` overrides the repeat settings
    of time_pair); returns how many were measured."""
    done = {r["key"] for r in read_rows(out)}
    todo = [it for it in items if it["key"] not in done]
    start = time.perf_counter()
    with RowWriter(out) as writer:
        for n, item in enumerate(todo, 1):
            repeats = timing or (MODEL_TIMING if item["kind"] == MODEL_KIND else {})
            stats = time_pair(Timed(bundle / item["file"], threads, spin), probe, **repeats)
            writer.write({"key": item["key"], "kind": item["kind"], **stats})
            if n % 25 == 0 or n == len(todo):
                eta = (time.perf_counter() - start) / n * (len(todo) - n)
                print(f"{n}/{len(todo)} measured, ETA {eta:.0f} s", file=sys.stderr)
    return len(todo)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Measure an ednas latency bundle with ONNX Runtime.")
    parser.add_argument("bundle", type=Path, help="bundle folder (has manifest.json)")
    parser.add_argument("--threads", type=int, help="intra-op threads (default: the manifest's)")
    args = parser.parse_args(argv)
    manifest = json.loads((args.bundle / "manifest.json").read_text())
    threads, spin = args.threads or manifest["threads"], manifest["spin"]
    probe = Timed(args.bundle / manifest["probe"], threads, spin)
    (args.bundle / "machine.json").write_text(json.dumps(machine_info(threads), indent=1))
    n = measure_all(manifest["items"], args.bundle, probe, threads, spin, args.bundle / "results.csv",
                    manifest.get("timing"))
    print(f"measured {n} items; results in {args.bundle / 'results.csv'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
