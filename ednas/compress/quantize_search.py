"""Accuracy-aware INT8: find the cheapest QDQ model whose mAP drop stays within a bound.

Order of fixes, cheapest in speed first:
1. better activation ranges: the requested calibration method, then the others (every conv
   stays INT8);
2. selective FP32 fallback by per-tensor sensitivity (quantize_sensitivity): a tensor is
   kept float by leaving its producer and all its consumers unquantized (excluding one node
   alone does not help: its neighbours still quantize the tensor). The most sensitive 1, 2,
   4, ... tensors fall back until the bound holds, then a bisection trims the count.
The output tail is always FP32 (see quantize_model.tail_nodes).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import onnx

from ednas.compress.quantize_calib import METHODS, Range, TensorStats, compute_ranges
from ednas.compress.quantize_ort import quantize_qdq
from ednas.compress.quantize_sensitivity import tensor_sensitivity
from ednas.errors import EdnasError

log = logging.getLogger(__name__)

Evaluate = Callable[[Path], float]  # quantized model path -> mAP (fraction)


class AccuracyBoundError(EdnasError):
    """No INT8 model within the allowed mAP drop was found."""


@dataclass
class Candidate:
    """One quantized model the search scored."""

    method: str
    fallback_tensors: list[str]
    exclude: list[str]
    map: float
    path: Path

    def drop(self, fp32_map: float) -> float:
        """mAP drop in points (percent)."""
        return (fp32_map - self.map) * 100


@dataclass
class SearchLog:
    tried: list[dict] = field(default_factory=list)  # every candidate, for the summary


def fallback_nodes(model: onnx.ModelProto, tensors: Sequence[str]) -> list[str]:
    """Nodes to leave in FP32 so that none of `tensors` is quantized: producer + consumers."""
    names: dict[str, None] = {}
    wanted = set(tensors)
    for node in model.graph.node:
        if wanted & set(node.output) or wanted & set(node.input):
            names[node.name] = None
    return list(names)


def search(
    prepared: Path, stats: dict[str, TensorStats], method: str, evaluate: Evaluate, fp32_map: float,
    max_drop: float, tail: Sequence[str], sens_inputs: np.ndarray, num_scores: int, work_dir: Path,
    max_fallback: int = 64, threads: int | None = None,
) -> tuple[Candidate, SearchLog]:
    """The candidate with the fewest FP32 tensors whose drop is <= max_drop (points);
    AccuracyBoundError (one line, with the best drop found) when there is none."""
    model = onnx.load(str(prepared))
    history = SearchLog()
    counter = iter(range(10_000))

    def score(meth: str, ranges: dict[str, Range], tensors: list[str]) -> Candidate:
        exclude = list(dict.fromkeys([*tail, *fallback_nodes(model, tensors)]))
        path = quantize_qdq(prepared, work_dir / f"cand{next(counter)}.onnx", ranges, exclude)
        cand = Candidate(meth, tensors, exclude, evaluate(path), path)
        history.tried.append({"method": meth, "fp32_tensors": len(tensors), "fp32_nodes": len(exclude),
                              "mAP": cand.map, "drop": cand.drop(fp32_map)})
        log.info("%s, %d tensors in FP32 (%d nodes): mAP %.4f, drop %.2f", meth, len(tensors),
                 len(exclude), cand.map, cand.drop(fp32_map))
        return cand

    # 1. activation ranges: requested method first, then the others
    ranges = {m: compute_ranges(stats, m) for m in [method] + [m for m in METHODS if m not in (method, "entropy")]}
    best = None
    for meth, r in ranges.items():
        cand = score(meth, r, [])
        if best is None or cand.map > best.map:
            best = cand
        if cand.drop(fp32_map) <= max_drop:
            return cand, history
    # 2. sensitivity-ordered FP32 fallback on the best ranges
    r = ranges[best.method]
    tail_tensors = {o for n in model.graph.node if n.name in set(tail) for o in n.output}
    candidates = [t for t in r if t not in tail_tensors]
    sens = tensor_sensitivity(prepared, r, candidates, sens_inputs, num_scores, threads)
    order = sorted(candidates, key=lambda t: -sens[t])
    good, k_bad, k = None, 0, 1
    while k <= min(max_fallback, len(order)):
        cand = score(best.method, r, order[:k])
        if cand.map > best.map:
            best = cand
        if cand.drop(fp32_map) <= max_drop:
            good = cand
            break
        k_bad, k = k, k * 2
    if good is None:
        raise AccuracyBoundError(
            f"--max-drop {max_drop:g}: not reachable; best INT8 drop {best.drop(fp32_map):.2f} points "
            f"(mAP {best.map:.4f} vs FP32 {fp32_map:.4f}, {best.method} ranges, "
            f"{len(best.fallback_tensors)} tensors in FP32); raise --max-drop or add calibration images"
        )
    lo, hi = k_bad, len(good.fallback_tensors)  # bisection: lo fails, hi passes
    while hi - lo > max(1, hi // 8):
        mid = (lo + hi) // 2
        cand = score(good.method, r, order[:mid])
        if cand.drop(fp32_map) <= max_drop:
            good, hi = cand, mid
        else:
            lo = mid
    return good, history
