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

import numpy as np

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
    cost: Callable[[ArchSpec], float], max_ratio: float = 0.9, probes: tuple[float, ...] = (0.2, 0.4),
    refinements: int = 4, tolerance: float = 0.02,
) -> tuple[float, ArchSpec, float]:
    """The pruning ratio whose candidate runs at about `target` x the base latency.

    Single timings on a shared machine are noisy, so the search does not bisect on them:
    it measures a few candidates, fits relative latency as a linear function of relative
    cost (MACs), solves that fit for the target, measures the solution, refits with it and
    repeats up to `refinements` times, each fit over the three points nearest the target.
    A measurement within `tolerance` (relative) of the target meets it: closer than that,
    timing noise decides. Returns (ratio, arch, measured relative latency) of the least
    pruned candidate that met the target, else of the fastest one measured.
    """
    base_cost = cost(shrink(0.0))
    rel_cost = lambda r: cost(shrink(r)) / base_cost  # noqa: E731 - monotone in r
    xs, ys = [1.0], [1.0]  # the unpruned model itself
    for r in probes:
        xs.append(rel_cost(r))
        ys.append(latency(shrink(r)))
        log.info("ratio %.3f -> cost %.3f, %.3f x base latency", r, xs[-1], ys[-1])
    met: tuple[float, ArchSpec, float] | None = None
    last: tuple[float, ArchSpec, float] | None = None
    for _ in range(refinements + 1):
        near = sorted(range(len(ys)), key=lambda i: abs(ys[i] - target))[:3]
        slope, intercept = np.polyfit([xs[i] for i in near], [ys[i] for i in near], 1)
        predict = lambda r: intercept + slope * rel_cost(r)  # noqa: E731
        if predict(max_ratio) > target:
            arch = shrink(max_ratio)
            return max_ratio, arch, latency(arch)  # out of reach; the caller reports it
        lo, hi = 0.0, max_ratio
        for _ in range(20):  # bisection on the fitted model: cheap and noise-free
            mid = (lo + hi) / 2
            lo, hi = (lo, mid) if predict(mid) <= target else (mid, hi)
        arch = shrink(hi)
        rel = latency(arch)
        log.info("ratio %.3f -> predicted %.3f, measured %.3f x base latency (target %.3f)",
                 hi, predict(hi), rel, target)
        if rel <= target * (1 + tolerance):
            if met is None or hi < met[0]:
                met = (hi, arch, rel)
            if rel >= target * (1 - tolerance):
                break  # on target
        if last is None or rel < last[2]:
            last = (hi, arch, rel)
        xs.append(rel_cost(hi))
        ys.append(rel)
    return met or last  # type: ignore[return-value]
