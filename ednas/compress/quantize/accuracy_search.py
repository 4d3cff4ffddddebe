"""Accuracy-aware INT8 with a claim that holds on images the choice never saw.

The annotated images are cut into folds. For each fold, the models are calibrated on the
calibration images outside it, one recipe is *chosen* on the annotated images outside it,
and the chosen model is *checked* on the fold itself. The headline drop is the mean of the
checked drops, with a paired bootstrap interval (ednas.eval.bootstrap); a level of fixes is
accepted only when that interval's upper end is within `max_drop`. The shipped model runs the
same choice on all images; its drop there (on images that chose it) is reported, but only
as that.

Levels of fixes, cheapest in speed first:
0. every conv INT8, quantized from the FP32 model equalized on the fold's calibration images
   (equalize; `Builder.sources`); the grid of range methods x bias correction
   (bias_correction); the recipe whose detector output is closest to FP32's on the fold's
   calibration images wins. That
   error moves far less from image to image than mAP on a few dozen images (whose paired
   spread is about a point on 64), so the choice follows the recipe rather than the noise;
   mAP is kept for the claim;
AR. that recipe with its weight rounding learned (adaround: each conv's int8 weights rounded
   up or down to match its FP32 output, layer by layer on the fold's calibration images): the
   same graph and speed, no weight moves by more than one step;
FT. that recipe fine-tuned (finetune: quantization-aware, distilled from FP32 on the fold's
   calibration images): the same graph and speed, only the integers change;
1+. that recipe (with the last recovery that is on) with the 1, 2, 4, ... activation tensors
   most sensitive to 8 bits (sensitivity; among the tensors the QDQ model quantizes) kept in
   FP32: a tensor is kept float by leaving its producer, all its consumers and the conv under
   a folded ReLU/ReLU6 unquantized (fallback_nodes); each costs speed.
The output tail is always FP32 (see prepare.tail_nodes).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import onnx

from ednas.compress.quantize.adaround import AdaRoundConfig, adaround_qdq
from ednas.compress.quantize.calibration import Range, TensorStats, compute_ranges
from ednas.compress.quantize.finetune import FinetuneConfig, finetune_qdq
from ednas.compress.quantize.ort_backend import quantize_qdq
from ednas.compress.quantize.plain import build_qdq
from ednas.compress.quantize.sensitivity import output_error, tensor_sensitivity
from ednas.errors import EdnasError
from ednas.onnx_runtime import load_onnx
from ednas.eval.bootstrap import Estimate, PerImageAP, paired_drop, paired_drops

log = logging.getLogger(__name__)

Evaluate = Callable[[Path], PerImageAP]  # model path -> its detections scored on the annotated images


STALL_POINTS = 0.05  # a fallback level must lower the interval's upper end by this much ...
STALL_LEVELS = 2  # ... within this many levels, or the search stops


class AccuracyBoundError(EdnasError):
    """No INT8 model within the allowed mAP drop was found (or the images cannot show one)."""


@dataclass(frozen=True)
class Recipe:
    """One way to build the INT8 model from calibration statistics."""

    method: str  # activation range method (calibration.METHODS)
    bias_correction: bool  # bias_correction after quantizing
    fallback: int = 0  # most sensitive activation tensors kept in FP32
    finetune: bool = False  # quantization-aware fine-tuning after bias correction (finetune)
    adaround: bool = False  # weight rounding learned layer by layer after bias correction (adaround)

    def __str__(self) -> str:
        fixes = ([self.method] + ["bias-corrected"] * self.bias_correction + ["rounding learned"] * self.adaround
                 + ["fine-tuned"] * self.finetune)
        return ", ".join(fixes + ([f"{self.fallback} tensors FP32"] if self.fallback else []))


@dataclass(frozen=True)
class Fold:
    """Calibration inputs and annotated images a model is built and chosen on, and the
    annotated images it is checked on (empty for the shipped model)."""

    calib: tuple[int, ...]  # indices into the calibration inputs
    choose: np.ndarray  # (I,) bool over the annotated images (PerImageAP.image_ids order)
    check: np.ndarray  # (I,) bool, disjoint from `choose`


@dataclass
class Built:
    path: Path
    recipe: Recipe
    exclude: list[str]
    fallback_tensors: list[str]
    scores: PerImageAP | None  # None without annotated images
    output_error: float | None = None  # vs FP32 on the calibration inputs it was built from


@dataclass
class SearchResult:
    """The shipped model, and what was measured about it."""

    shipped: Built
    held_out: Estimate  # mean drop on each fold's checked images (points), the headline
    fold_drops: list[Estimate]  # each fold's checked drop
    fold_recipes: list[Recipe]  # what each fold chose
    in_sample: Estimate  # the shipped model's drop on all annotated images, which chose it
    tried: list[dict] = field(default_factory=list)


FOLDED = ("Relu", "Clip")  # activations ORT's quantizer folds into the conv before them (its range clips)


def quantized_tensors(model: onnx.ModelProto) -> set[str]:
    """Activation tensors a QDQ model quantizes: those a QuantizeLinear reads, weights aside. A
    conv's output under a folded Relu/Clip is not one (the activation's output is)."""
    weights = {i.name for i in model.graph.initializer}
    return {n.input[0] for n in model.graph.node if n.op_type == "QuantizeLinear" and n.input[0] not in weights}


def fallback_nodes(model: onnx.ModelProto, tensors: Sequence[str]) -> list[str]:
    """Nodes to leave in FP32 so that none of `tensors` is quantized: producer + consumers, and
    the conv under a producing Relu/Clip, whose output would otherwise be quantized in the
    activation's place. No excluded conv is left between a DequantizeLinear and a QuantizeLinear
    that way, which ONNX Runtime would re-quantize itself, one weight scale per tensor
    (its WeightBiasQuantization optimization)."""
    wanted = set(tensors)
    producer = {o: n for n in model.graph.node for o in n.output}
    readers: dict[str, int] = {}
    for node in model.graph.node:
        for i in node.input:
            readers[i] = readers.get(i, 0) + 1
    names: dict[str, None] = {}
    for node in model.graph.node:
        if wanted & set(node.output) or wanted & set(node.input):
            names[node.name] = None
        if wanted & set(node.output) and node.op_type in FOLDED:
            conv = producer.get(node.input[0])
            if conv is not None and conv.op_type == "Conv" and readers[node.input[0]] == 1:
                names[conv.name] = None
    return list(names)


class Builder:
    """Builds (and caches) the INT8 model of a recipe calibrated on a group of inputs.

    `prepared` is the FP32 reference the output error is measured against; `sources` maps a
    group of calibration inputs to the FP32 model its INT8 models are built from (the same
    function, equalized on that group: equalize), `prepared` itself for groups not in it."""

    def __init__(self, prepared: Path, stats: dict[tuple[int, ...], dict[str, TensorStats]], inputs: np.ndarray,
                 tail: Sequence[str], evaluate: Evaluate | None, work_dir: Path, num_scores: int, reduce_range: bool,
                 sens_images: int = 2, threads: int | None = None,
                 finetune: FinetuneConfig = FinetuneConfig(),
                 sources: dict[tuple[int, ...], Path] | None = None,
                 rounding: AdaRoundConfig = AdaRoundConfig()) -> None:
        self.prepared, self.stats, self.inputs, self.tail = prepared, stats, inputs, list(tail)
        self.evaluate, self.work_dir, self.num_scores = evaluate, work_dir, num_scores
        self.reduce_range, self.sens_images, self.threads = reduce_range, sens_images, threads
        self.finetune, self.sources, self.rounding = finetune, sources or {}, rounding
        self.model = load_onnx(prepared)
        self._built: dict[tuple, Built] = {}
        self._order: dict[tuple, list[str]] = {}
        self._reference: dict[tuple[int, ...], np.ndarray] = {}

    def source(self, calib: tuple[int, ...]) -> Path:
        return self.sources.get(calib, self.prepared)

    def ranges(self, calib: tuple[int, ...], method: str) -> dict[str, Range]:
        return compute_ranges(self.stats[calib], method)

    def sensitive(self, calib: tuple[int, ...], method: str) -> list[str]:
        """The activation tensors the QDQ model quantizes, by decreasing sensitivity to 8 bits."""
        if (calib, method) not in self._order:
            ranges = self.ranges(calib, method)
            probe = quantize_qdq(self.source(calib), self.work_dir / f"probe{len(self._order)}.onnx", ranges,
                                 self.tail, self.reduce_range)  # its graph only: which tensors get quantized
            quantized = quantized_tensors(load_onnx(probe))
            candidates = [t for t in ranges if t in quantized]
            sens_inputs = self.inputs[list(calib[: self.sens_images])]
            sens = tensor_sensitivity(self.source(calib), ranges, candidates, sens_inputs, self.num_scores,
                                      self.threads)
            self._order[(calib, method)] = sorted(candidates, key=lambda t: -sens[t])
        return self._order[(calib, method)]

    def build(self, calib: tuple[int, ...], recipe: Recipe) -> Built:
        key = (calib, recipe)
        if key not in self._built:
            tensors = self.sensitive(calib, recipe.method)[: recipe.fallback] if recipe.fallback else []
            exclude = list(dict.fromkeys([*self.tail, *fallback_nodes(self.model, tensors)]))
            name = f"cand{len(self._built)}"
            path = build_qdq(self.source(calib), self.ranges(calib, recipe.method), exclude, self.reduce_range,
                             self.inputs[list(calib)] if recipe.bias_correction else None,
                             self.work_dir / f"{name}.onnx", self.threads)
            if recipe.adaround:
                path = adaround_qdq(path, self.source(calib), self.inputs[list(calib)],
                                    self.work_dir / f"{name}_ar.onnx", self.reduce_range, self.rounding, self.threads)
            if recipe.finetune:
                path = finetune_qdq(path, self.source(calib), self.inputs[list(calib)],
                                    self.work_dir / f"{name}_ft.onnx", self.num_scores, self.reduce_range,
                                    self.finetune, self.threads)
            scores = self.evaluate(path) if self.evaluate is not None else None
            error = output_error(self._outputs(self.prepared, calib), self._outputs(path, calib), self.num_scores)
            self._built[key] = Built(path, recipe, exclude, tensors, scores, error)
        return self._built[key]

    def _outputs(self, path: Path, calib: tuple[int, ...]) -> np.ndarray:
        """The model's output on the calibration inputs `calib` (FP32's is cached)."""
        if path == self.prepared and calib in self._reference:
            return self._reference[calib]
        from ednas.onnx_runtime import session

        sess = session(path, self.threads)
        name = sess.get_inputs()[0].name
        out = np.concatenate([sess.run(None, {name: self.inputs[i][None]})[0] for i in calib])
        if path == self.prepared:
            self._reference[calib] = out
        return out


def _choose(builder: Builder, fp32: PerImageAP, fold: Fold, recipes: Sequence[Recipe],
            tried: list[dict], label: str) -> Built:
    """The recipe with the smallest output error against FP32 (the smallest mAP drop on the
    fold's choosing images where no error was measured); earlier wins ties."""
    best, best_key = None, np.inf
    weights = fold.choose[None].astype(float)
    for recipe in recipes:
        built = builder.build(fold.calib, recipe)
        drop = float(fp32.map(weights)[0] - built.scores.map(weights)[0]) * 100
        tried.append({"fold": label, "recipe": str(recipe), "choosing_images": int(fold.choose.sum()),
                      "drop_on_choosing_images": round(drop, 3), "output_error": built.output_error})
        log.info("fold %s: %s: output error %s, drop %.2f on its %d choosing images", label, recipe,
                 built.output_error, drop, fold.choose.sum())
        key = built.output_error if built.output_error is not None else drop
        if key < best_key - 1e-12:
            best, best_key = built, key
    return best


@dataclass(frozen=True)
class Level:
    """Fixes added to the grid's recipe: weight rounding, fine-tuning, tensors kept FP32."""

    finetune: bool
    fallback: int
    adaround: bool = False

    def fixes(self) -> dict[str, Any]:
        return {"finetune": self.finetune, "fallback": self.fallback, "adaround": self.adaround}

    def __str__(self) -> str:
        parts = (["rounding learned"] * self.adaround + ["fine-tuned"] * self.finetune
                 + [f"{self.fallback} tensors FP32"] * bool(self.fallback))
        return ", ".join(parts) or "grid"


GRID = Level(False, 0)
MODES = ("auto", "always", "off")  # a recovery (fine-tuning, weight rounding): a level after the grid's | every level | never


def levels(max_fallback: int, finetune: str = "off", adaround: str = "off") -> list[Level]:
    """The grid (unless a recovery is `always`), then the recoveries that are on (free in
    speed): learned weight rounding, then fine-tuning (of the rounded model when rounding is
    `always`), then the fallback counts 1, 2, 4, ... up to max_fallback on top of the last
    level (each costs speed)."""
    rounding, tuned = adaround != "off", finetune != "off"
    out = [GRID] * ("always" not in (finetune, adaround))
    if rounding and finetune != "always":
        out.append(Level(False, 0, True))
    if tuned and adaround != "always":
        out.append(Level(True, 0, False))
    elif tuned:
        out.append(Level(True, 0, True))
    last = out[-1]
    n = 1
    while n <= max_fallback:
        out.append(replace(last, fallback=n))
        n *= 2
    return out


def showable(fp32: PerImageAP, first: Built, fold: Fold, folds: int, max_drop: float) -> str:
    """What the annotated images can show, from the first fold's checked drop: the interval of
    the mean over `folds` folds is about 1/sqrt(folds) of one fold's. A line for the log, said
    as soon as it is known (a search that cannot show `max_drop` otherwise runs every level)."""
    one = paired_drop(fp32, [first.scores], [fold.check])
    width = one.half_width / np.sqrt(folds)
    images = len(fold.check)
    line = (f"first fold: drop {one.value:.2f} points (95% CI {one.low:.2f} to {one.high:.2f}, {one.images} images); "
            f"all {images} annotated images give an interval of about +-{width:.2f}, so `max_drop` below "
            f"~{width:.2f} cannot be shown even for no drop")
    if width >= max_drop:
        needed = int(np.ceil(images * (width / max_drop) ** 2)) if max_drop > 0 else None
        line += (f"; `max_drop` {max_drop:g} needs a closer model than the grid's or about {needed} images"
                 if needed else "")
    return line


class Progress:
    """The levels of the search as progress: each finished level logged with the time it took
    and an estimate of the time left if every later level is needed (at the last level's pace)."""

    def __init__(self, total: int) -> None:
        self.total, self.done, self.last = total, 0, time.monotonic()

    def step(self, what: str) -> None:
        now = time.monotonic()
        self.done += 1
        left = self.total - self.done
        eta = f"; at most {left} more, about {(now - self.last) * left / 60:.0f} min at this pace" if left else ""
        log.info("level %d of %d (%s) in %.0f s%s", self.done, self.total, what, now - self.last, eta)
        self.last = now


def search(builder: Builder, fp32: PerImageAP, folds: Sequence[Fold], shipped: Fold, grid: Sequence[Recipe],
           max_drop: float, max_fallback: int = 64, finetune: str = "off", adaround: str = "off") -> SearchResult:
    """The first level whose held-out drop has its upper end <= max_drop; AccuracyBoundError
    (one line: the best held-out drop, and the images needed when the set is too small)."""
    tried: list[dict] = []
    plan = levels(max_fallback, finetune, adaround)
    progress = Progress(len(plan))
    base = []
    for k, fold in enumerate(folds):
        base.append(_choose(builder, fp32, fold, grid, tried, str(k)))
        if k == 0:
            log.info(showable(fp32, base[0], fold, len(folds), max_drop))
    best: Estimate | None = None
    stalled = 0
    for level in plan:
        n = level.fallback
        if n and n > len(builder.sensitive(folds[0].calib, base[0].recipe.method)):
            break
        fixes = level.fixes()
        chosen = base if level == GRID else [builder.build(f.calib, replace(b.recipe, **fixes))
                                             for f, b in zip(folds, base)]
        held, per_fold = paired_drops(fp32, [c.scores for c in chosen], [f.check for f in folds])
        tried.append({"level": n, "fixes": str(level), "finetune": level.finetune, "adaround": level.adaround,
                      "held_out_drop": round(held.value, 3), "ci95": [round(held.low, 3), round(held.high, 3)]})
        log.info("%s: held-out drop %s", level, held)
        progress.step(str(level))
        if held.high <= max_drop:
            ship = _choose(builder, fp32, shipped, grid, tried, "all")
            if level != GRID:
                ship = builder.build(shipped.calib, replace(ship.recipe, **fixes))
            in_sample = paired_drop(fp32, [ship.scores], [shipped.choose])
            return SearchResult(ship, held, per_fold, [c.recipe for c in chosen], in_sample, tried)
        stalled = 0 if best is None or held.high < best.high - STALL_POINTS else stalled + 1
        best = held if best is None or held.high < best.high else best
        if stalled >= STALL_LEVELS:
            break
    needed = best.images_needed(max_drop)
    found = f"best held-out drop {best.value:.2f} points (95% CI {best.low:.2f} to {best.high:.2f})"
    if needed is not None:
        raise AccuracyBoundError(
            f"`max_drop` {max_drop:g} cannot be shown on {best.images} annotated images: {found}; about "
            f"{needed} images would show it (the interval narrows as 1/sqrt(n)); give more `images`, or "
            f"`max_drop` {np.ceil(best.high * 10) / 10:g} to accept this interval")
    raise AccuracyBoundError(f"`max_drop` {max_drop:g}: not reachable; {found}; raise `max_drop` or add "
                             "calibration images")
