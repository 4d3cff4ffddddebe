"""Calibration: real images with the model's own pre-processing, per-tensor activation
statistics (min/max + histogram), and the activation range each calibration method picks.

Statistics are collected once (two passes over the images: min/max, then a histogram over
that span), so trying another method, or a different method per tensor, costs no inference.

Inputs of a Sigmoid (the kernel-refine gates, the head's score logits on their way to the
output) are the exception to every method: a method that fits the bulk of the histogram
(mse, entropy, percentile) clips their rare high end, which for score logits caps every
confident detection at one score and scrambles the ranking mAP depends on. Their range is
min/max limited to +-SIGMOID_SATURATION, beyond which the sigmoid is flat anyway.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import onnx
from tqdm import tqdm

from ednas.data.preprocess import preprocess
from ednas.errors import InputError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
NUM_BINS = 2048
SIGMOID_SATURATION = 8.0  # sigmoid(8) = 1 - 3.4e-4: wider input ranges only waste levels
LAYOUT_OPS = frozenset({"Transpose", "Reshape", "Concat", "Split", "Slice", "Flatten", "Squeeze", "Unsqueeze"})
Range = tuple[float, float]  # (lowest, highest) real value an 8-bit activation must cover
# calibration samples: (N, C, H, W) images of a one-input model, or one {input name: (1, ...)} feed
# per sample for a model with several inputs (a latency unit)
Inputs = np.ndarray | Sequence[dict[str, np.ndarray]]


def feed(session: object, sample: np.ndarray | dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The ORT feed of one calibration sample (an image gets its batch axis)."""
    if isinstance(sample, dict):
        return sample
    return {session.get_inputs()[0].name: sample[None]}  # type: ignore[attr-defined]


def list_images(folder: str | Path, limit: int | None = None) -> list[Path]:
    """Image files of `folder` (sorted; `limit` evenly spaced ones when given)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: no such calibration images folder")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise InputError(f"{folder}: no images ({'/'.join(IMAGE_SUFFIXES)}) to calibrate on")
    if limit and limit < len(files):
        files = [files[int(i)] for i in np.linspace(0, len(files) - 1, limit).round()]
    return files


def load_batch(files: Sequence[Path], size: int) -> np.ndarray:
    """(N, 3, size, size) float32 network inputs, pre-processed as the model expects."""
    return np.concatenate([preprocess(f, size)[0] for f in files])


class CalibImages:
    """Unlabeled images for BatchNorm recalibration (pruning, supernet sub-networks): up to
    `count` evenly spaced images of `folder`, pre-processed once per input size and batch,
    as torch batches (N, 3, S, S)."""

    def __init__(self, folder: str | Path, count: int) -> None:
        self.files = list_images(folder, count)
        self._cache: dict[tuple[int, int], list[Any]] = {}

    def batches(self, size: int, batch: int = 16) -> list[Any]:
        if (size, batch) not in self._cache:
            import torch

            self._cache[size, batch] = [torch.from_numpy(load_batch(self.files[i:i + batch], size))
                                        for i in range(0, len(self.files), batch)]
        return self._cache[size, batch]


def load_decodable(files: Sequence[Path], size: int, folder: str | Path) -> tuple[np.ndarray, list[Path]]:
    """(N, 3, size, size) inputs of the files that decode, and those files; an undecodable file
    is skipped with a warning, and InputError when none decodes."""
    batches, kept, failed = [], [], []
    for f in files:
        try:
            batches.append(preprocess(f, size)[0])
            kept.append(f)
        except InputError as exc:
            failed.append(str(exc))
    if not kept:
        raise InputError(f"{folder}: none of its {len(files)} image files could be decoded; "
                         "give a folder of readable JPEG/PNG images")
    for why in failed:
        log.warning("calibration image skipped: %s", why)
    return np.concatenate(batches), kept


@dataclass
class TensorStats:
    """Everything the range methods need about one activation tensor."""

    lo: float
    hi: float
    hist: np.ndarray  # (NUM_BINS,) counts over `span`
    sigmoid_input: bool = False  # read only by Sigmoids (through layout ops): see the module doc
    span: Range | None = None  # histogram span when wider than [lo, hi] (a subset of the images)

    @property
    def edges(self) -> np.ndarray:
        lo, hi = self.span or (self.lo, self.hi)
        return np.linspace(lo, hi, len(self.hist) + 1)


def activation_tensors(model: onnx.ModelProto) -> list[str]:
    """The float tensors an activation quantizer can see: the graph input and node outputs."""
    inits = {i.name for i in model.graph.initializer}
    names = [i.name for i in model.graph.input if i.name not in inits]
    names += [o for n in model.graph.node if n.op_type not in ("Constant", "Shape") for o in n.output if o]
    return list(dict.fromkeys(names))


def sigmoid_inputs(model: onnx.ModelProto) -> set[str]:
    """Tensors whose every reader is a Sigmoid, directly or through LAYOUT_OPS only."""
    from ednas.compress.quantize.rewrite import consumers

    readers = consumers(model.graph)
    outputs = {o.name for o in model.graph.output}
    memo: dict[str, bool] = {}

    def feeds_sigmoid(t: str) -> bool:
        if t not in memo:
            nodes = readers.get(t, [])
            memo[t] = bool(nodes) and t not in outputs and all(
                n.op_type == "Sigmoid" or (n.op_type in LAYOUT_OPS and all(feeds_sigmoid(o) for o in n.output))
                for n in nodes)
        return memo[t]

    return {t for n in model.graph.node for t in n.output if feeds_sigmoid(t)}


def collect_stats(model_path: str | Path, inputs: Inputs, threads: int | None = None) -> dict[str, TensorStats]:
    """Min/max and histogram of every activation tensor over `inputs`."""
    return collect_group_stats(model_path, inputs, [range(len(inputs))], threads)[0]


def collect_group_stats(model_path: str | Path, inputs: Inputs, groups: Sequence[Sequence[int]],
                        threads: int | None = None) -> list[dict[str, TensorStats]]:
    """`collect_stats` of each group of input indices (cross-validation folds), from one pair of
    passes over `inputs`: min/max per image, then histograms over the span of all images."""
    from ednas.onnx_runtime import load_onnx, session, with_outputs

    model = load_onnx(model_path)
    gated = sigmoid_inputs(model)
    names = activation_tensors(model)
    sess = session(with_outputs(model, names), threads)
    outs = [o.name for o in sess.get_outputs()]

    def run() -> Iterator[dict[str, np.ndarray]]:
        for x in inputs:
            values = sess.run(outs, feed(sess, x))
            yield {n: v for n, v in zip(outs, values) if n in names and v.dtype == np.float32}

    lows: dict[str, list[float]] = {}
    highs: dict[str, list[float]] = {}
    # two passes over the images (ranges, then histograms in them): minutes for 128 images at 416 px
    for values in tqdm(run(), total=len(inputs), desc="calibration 1/2", unit="img", leave=False, disable=None):
        for n, v in values.items():
            lows.setdefault(n, []).append(float(v.min()))
            highs.setdefault(n, []).append(float(v.max()))
    spans = {n: _span(min(lows[n]), max(highs[n])) for n in lows}
    members = [set(g) for g in groups]
    hists = [{n: np.zeros(NUM_BINS, np.int64) for n in lows} for _ in groups]
    for i, values in enumerate(tqdm(run(), total=len(inputs), desc="calibration 2/2", unit="img", leave=False,
                                    disable=None)):
        for n, v in values.items():
            h = np.histogram(v, NUM_BINS, spans[n])[0]
            for g, member in enumerate(members):
                if i in member:
                    hists[g][n] += h
    log.info("calibration statistics of %d tensors on %d images, %d groups", len(lows), len(inputs), len(groups))
    out = []
    for member, hist in zip(members, hists):
        idx = sorted(member)
        out.append({n: TensorStats(min(lows[n][i] for i in idx), max(highs[n][i] for i in idx), hist[n],
                                   n in gated, spans[n]) for n in lows})
    return out


def _span(lo: float, hi: float) -> Range:
    """A histogram span NUM_BINS float32 bins can cut (a constant tensor far from 0 has none)."""
    return lo, max(hi, lo + max(1e-6, 1e-3 * abs(lo)))


def _with_zero(lo: float, hi: float) -> Range:
    return min(lo, 0.0), max(hi, 0.0)


def range_minmax(s: TensorStats) -> Range:
    return _with_zero(s.lo, s.hi)


def range_percentile(s: TensorStats, percentile: float = 99.999) -> Range:
    """Drop (100 - percentile)% of the values from each end of the histogram."""
    cdf = np.cumsum(s.hist) / max(s.hist.sum(), 1)
    tail = 1.0 - percentile / 100.0
    edges = s.edges
    lo = edges[int(np.searchsorted(cdf, tail, side="right"))] if s.lo < 0 else s.lo
    hi = edges[min(int(np.searchsorted(cdf, 1.0 - tail, side="left")) + 1, len(edges) - 1)]
    return _with_zero(float(lo), float(hi))


def _quant_mse(s: TensorStats, los: np.ndarray, his: np.ndarray, levels: int = 255) -> np.ndarray:
    """Expected squared error of asymmetric uniform quantization for each (lo, hi) pair:
    rounding noise (step^2/12) inside the range, clipping error outside."""
    centers = (s.edges[:-1] + s.edges[1:]) / 2  # (B,)
    counts = s.hist.astype(np.float64)
    lo, hi = los[:, None], his[:, None]  # (K, 1)
    step = (hi - lo) / levels
    clip = np.where(centers < lo, lo - centers, np.where(centers > hi, centers - hi, 0.0))
    inside = (clip == 0)
    err = np.where(inside, step ** 2 / 12, clip ** 2) * counts  # (K, B)
    return err.sum(axis=1)


def range_mse(s: TensorStats) -> Range:
    """The clipping range that minimises the expected quantization MSE of this tensor."""
    lo0, hi0 = range_minmax(s)
    fracs = np.linspace(0.05, 1.0, 40)
    lo_fracs = fracs if lo0 < 0 else np.array([1.0])
    los = np.repeat(lo0 * lo_fracs, len(fracs))
    his = np.tile(hi0 * fracs, len(lo_fracs))
    best = int(np.argmin(_quant_mse(s, los, his)))
    return _with_zero(float(los[best]), float(his[best]))


def range_entropy(s: TensorStats, quant_bins: int = 128) -> Range:
    """TensorRT's KL-divergence threshold (ORT's implementation), clipped to the data."""
    from onnxruntime.quantization.calibrate import HistogramCollector

    bins = NUM_BINS // 4  # the KL search is quadratic in the bins: 512 keep it to seconds
    collector = HistogramCollector("entropy", False, bins, quant_bins, 99.999, "same")
    edges = s.edges.astype(np.float32)
    # ORT's search is symmetric about zero: give it a histogram centred on zero
    bound = max(abs(s.lo), abs(s.hi))
    sym_edges = np.linspace(-bound, bound, bins + 1, dtype=np.float32)
    centers = (edges[:-1] + edges[1:]) / 2
    sym_hist = np.histogram(centers, sym_edges, weights=s.hist)[0].astype(np.int64)
    lo, hi = collector.get_entropy_threshold((sym_hist, sym_edges, -bound, bound), quant_bins)
    return _with_zero(max(float(lo), s.lo), min(float(hi), s.hi))


METHODS: dict[str, Callable[[TensorStats], Range]] = {
    "minmax": range_minmax,
    "percentile": range_percentile,
    "entropy": range_entropy,
    "mse": range_mse,
}


def compute_ranges(stats: dict[str, TensorStats], method: str) -> dict[str, Range]:
    """Each tensor's range under one method (see METHODS)."""
    if method not in METHODS:
        raise InputError(f"calibration method {method!r} is not one of {', '.join(METHODS)}")
    return {n: _saturated(s) if s.sigmoid_input else METHODS[method](s) for n, s in stats.items()}


def _saturated(s: TensorStats) -> Range:
    return _with_zero(max(s.lo, -SIGMOID_SATURATION), min(s.hi, SIGMOID_SATURATION))
