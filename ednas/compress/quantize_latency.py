"""Latency of two ONNX models measured interleaved in one process (A B A B ..., same
threads), so machine load shifts both alike; the speed-up is the median of per-pair ratios."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np


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


def _session(path: str | Path, threads: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def time_pair(reference: str | Path, candidate: str | Path, threads: int = 2, runs: int = 50,
              warmup: int = 5) -> PairTiming:
    """Time `reference` and `candidate` alternately on the same random input."""
    sessions = [_session(reference, threads), _session(candidate, threads)]
    inp = sessions[0].get_inputs()[0]
    x = {inp.name: np.random.default_rng(0).standard_normal(inp.shape).astype(np.float32)}
    for _ in range(warmup):
        for s in sessions:
            s.run(None, x)
    times = np.zeros((runs, 2))
    for i in range(runs):
        order = (0, 1) if i % 2 == 0 else (1, 0)  # alternate who goes first
        for k in order:
            t0 = time.perf_counter()
            sessions[k].run(None, x)
            times[i, k] = time.perf_counter() - t0
    ratio = times[:, 0] / times[:, 1]
    return PairTiming(
        reference_ms=float(np.median(times[:, 0]) * 1e3), candidate_ms=float(np.median(times[:, 1]) * 1e3),
        speedup=float(np.median(ratio)), speedup_p10=float(np.percentile(ratio, 10)),
        speedup_p90=float(np.percentile(ratio, 90)), threads=threads, runs=runs,
    )
