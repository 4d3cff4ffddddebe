"""Latency of quantized models against their FP32 reference, measured interleaved in one
process with the same threads (ednas.latency.runner), so machine load shifts all alike."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ednas.latency import runner


@dataclass(frozen=True)
class PairTiming:
    """Medians in ms and the median per-round ratio reference/candidate (> 1: candidate
    faster), with its 10th/90th percentiles; the p10 latencies are each model's fast end,
    which a busy neighbour disturbs least."""

    reference_ms: float
    candidate_ms: float
    speedup: float
    speedup_p10: float
    speedup_p90: float
    threads: int
    runs: int
    reference_p10_ms: float
    candidate_p10_ms: float


def time_models(reference: str | Path, candidates: dict[str, str | Path], threads: int = 2, runs: int = 50,
                warmup: int = 5) -> dict[str, PairTiming]:
    """Time `reference` and every candidate in rounds (each round runs each model once, the
    order rotating) on the same random input; one PairTiming per candidate."""
    names = list(candidates)
    sessions = [runner.Timed(reference, threads)] + [runner.Timed(candidates[n], threads) for n in names]
    for _ in range(warmup):
        for s in sessions:
            s()
    times: list[list[float]] = [[] for _ in sessions]
    for r in range(runs):
        for k in range(len(sessions)):
            j = (k + r) % len(sessions)
            times[j].append(sessions[j]())
    ref = np.array(times[0])
    out = {}
    for name, t in zip(names, times[1:]):
        ratios = ref / np.array(t)
        out[name] = PairTiming(
            reference_ms=statistics.median(times[0]), candidate_ms=statistics.median(t),
            speedup=float(np.median(ratios)), speedup_p10=float(np.percentile(ratios, 10)),
            speedup_p90=float(np.percentile(ratios, 90)), threads=threads, runs=runs,
            reference_p10_ms=float(np.percentile(ref, 10)), candidate_p10_ms=float(np.percentile(t, 10)),
        )
    return out


def time_pair(reference: str | Path, candidate: str | Path, threads: int = 2, runs: int = 50,
              warmup: int = 5) -> PairTiming:
    """Time `reference` and `candidate` alternately on the same random input."""
    return time_models(reference, {"candidate": candidate}, threads, runs, warmup)["candidate"]
