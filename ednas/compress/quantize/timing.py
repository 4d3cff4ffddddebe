"""Latency of quantized models against their FP32 reference: `ednas.latency.runner.time_models`
(interleaved rounds in one process with the same threads, so machine load shifts all alike)
reported as speed-ups, speedup = reference_ms / candidate_ms = 1 / runner's `relative`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ednas.latency import runner


@dataclass(frozen=True)
class PairTiming:
    """Medians in ms and the median per-round speed-up reference/candidate (> 1: candidate
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
    """Time `reference` and every candidate in `runs` rounds (each round runs each model once,
    the order rotating) on the same random input; one PairTiming per candidate."""
    names = list(candidates)
    timing = runner.time_models(runner.Timed(reference, threads), [runner.Timed(candidates[n], threads) for n in names],
                                warmup=warmup, min_rounds=runs, min_seconds=0.0, max_rounds=runs)
    ref = timing["reference"]
    return {
        name: PairTiming(
            reference_ms=ref["median_ms"], candidate_ms=t["median_ms"], speedup=1 / t["relative"],
            speedup_p10=1 / t["relative_p90"], speedup_p90=1 / t["relative_p10"], threads=threads, runs=runs,
            reference_p10_ms=ref["p10_ms"], candidate_p10_ms=t["p10_ms"],
        )
        for name, t in zip(names, timing["candidates"])
    }


def time_pair(reference: str | Path, candidate: str | Path, threads: int = 2, runs: int = 50,
              warmup: int = 5) -> PairTiming:
    """Time `reference` and `candidate` alternately on the same random input."""
    return time_models(reference, {"candidate": candidate}, threads, runs, warmup)["candidate"]
