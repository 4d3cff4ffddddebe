"""Latency of a quantized model against its FP32 reference, measured interleaved in one
process with the same threads (ednas.latency.runner), so machine load shifts both alike."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ednas.latency import runner


@dataclass(frozen=True)
class PairTiming:
    """Medians in ms and the median per-pair ratio reference/candidate (> 1: candidate faster)."""

    reference_ms: float
    candidate_ms: float
    speedup: float
    speedup_p10: float
    speedup_p90: float
    threads: int
    runs: int


def time_pair(reference: str | Path, candidate: str | Path, threads: int = 2, runs: int = 50,
              warmup: int = 5) -> PairTiming:
    """Time `reference` and `candidate` alternately on the same random input."""
    stats = runner.time_pair(runner.Timed(candidate, threads), runner.Timed(reference, threads),
                             warmup=warmup, min_pairs=runs, max_pairs=runs)
    return PairTiming(
        reference_ms=stats["probe_ms"], candidate_ms=stats["median_ms"], speedup=1 / stats["ratio"],
        speedup_p10=1 / stats["ratio_p90"], speedup_p90=1 / stats["ratio_p10"], threads=threads,
        runs=int(stats["pairs"]),
    )
