"""How fast a pruned candidate is, relative to the model it was cut from.

Pruning searches a ratio against a *relative* latency, which survives a machine that gets
slower or faster while it works: either predicted from a latency table (when the table
holds every unit of the candidate) or measured, candidate and base interleaved in one
process with the same threads.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Callable

from ednas.arch import ArchSpec
from ednas.latency import runner
from ednas.latency.export import export_arch

log = logging.getLogger(__name__)

RelativeLatency = Callable[[ArchSpec], float]  # latency(candidate) / latency(base)


class MeasuredLatency:
    """Export each candidate (random weights: latency does not depend on them) and time it
    interleaved with the base model; returns the median per-pair ratio."""

    def __init__(self, base: ArchSpec, threads: int = 2, workdir: str | Path | None = None) -> None:
        self.dir = Path(workdir or tempfile.mkdtemp(prefix="ednas-prune-"))
        self.dir.mkdir(parents=True, exist_ok=True)
        self.threads = threads
        self.base = runner.Timed(export_arch(base, self.dir / "base.onnx"), threads)
        self.base_ms: float | None = None  # absolute median of the base, from the last timing

    def time_onnx(self, path: str | Path) -> dict[str, float]:
        """Time an ONNX file interleaved with the base: {"ratio", "median_ms", "probe_ms", ...}."""
        stats = runner.time_pair(runner.Timed(path, self.threads), self.base, **runner.MODEL_TIMING)
        self.base_ms = stats["probe_ms"]
        return stats

    def __call__(self, arch: ArchSpec) -> float:
        path = export_arch(arch, self.dir / "candidate.onnx")
        return self.time_onnx(path)["ratio"]


class PredictedLatency:
    """Latency-table prediction of candidate over base."""

    def __init__(self, predictor, base: ArchSpec) -> None:
        self.predictor = predictor
        self.base_ms = predictor.predict(base)

    def __call__(self, arch: ArchSpec) -> float:
        return self.predictor.predict(arch) / self.base_ms


def find_ratio(
    shrink: Callable[[float], ArchSpec], latency: RelativeLatency, target: float,
    max_ratio: float = 0.9, steps: int = 7,
) -> tuple[float, ArchSpec, float]:
    """Smallest pruning ratio whose candidate runs at <= `target` x the base latency
    (bisection over [0, max_ratio]); returns (ratio, arch, relative latency)."""
    lo, hi = 0.0, max_ratio
    best = (max_ratio, shrink(max_ratio), latency(shrink(max_ratio)))
    if best[2] > target:
        return best  # the caller reports that the target is out of reach
    for _ in range(steps):
        mid = (lo + hi) / 2
        arch = shrink(mid)
        rel = latency(arch)
        log.info("ratio %.3f -> %.3f x base latency (target %.3f)", mid, rel, target)
        if rel <= target:
            hi, best = mid, (mid, arch, rel)
        else:
            lo = mid
    return best
