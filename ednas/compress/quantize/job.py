"""`quantize()`: FP32 ONNX -> static INT8 QDQ ONNX + JSON summary, optionally accuracy-aware.

Two backends build the INT8 model (`BUILDERS`: ONNX Runtime, Intel Neural Compressor); the
rest is shared: calibration images, the contract check, the interleaved latency pair, the
summary and the atomic write.

With annotated images, ONNX Runtime's accuracy claim is cross-validated (accuracy_search):
the drop in the summary (`drop_points`, `drop_ci95`) is measured on folds of images that
neither calibrated nor chose the model that was checked on them, with a paired bootstrap
95% interval; the shipped model's drop on the images that chose it is kept apart
(`in_sample_drop_points`). Weight bits follow the target CPU (ednas.cpu).

Nothing is written unless every step succeeds: the model is built in a scratch folder
(`ednas.io.scratch_dir`, which also holds ONNX Runtime's own temporary files, so a killed run
leaves nothing behind in the temp dir), its contract (input/output names and shapes) is
checked, then it and the summary are committed as one set (`ednas.io.output_set`): a kill
leaves the old model and summary or the new ones, never one of each.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ednas.compress.quantize import calibration as calib
from ednas.compress.quantize import prepare as qmodel
from ednas.onnx_runtime import load_onnx
from ednas.compress.quantize.plain import DEFAULT_METHOD as PLAIN_METHOD
from ednas.compress.quantize.timing import time_pair
from ednas.errors import InputError
from ednas.io import check_output, output_set, scratch_dir

log = logging.getLogger(__name__)

REG_CHANNELS = 32  # 4 sides x (reg_max 7 + 1) distribution logits after the class scores


@dataclass(frozen=True)
class QuantizeConfig:
    """Settings of one quantization run."""

    backend: str = "ort"  # ort (ONNX Runtime) | inc (Intel Neural Compressor PT2E, see inc_backend)
    calib_method: str | None = None  # minmax | percentile | entropy | mse; None: the backend's default (ort: a grid)
    recipe: str | None = None  # architecture of the ONNX (recipe name or YAML); inc rebuilds it in torch
    num_calib: int = 128  # calibration images (evenly spaced over the folder); 128 beat 64 (benchmark)
    max_drop: float = 0.5  # allowed mAP drop in points, accuracy-aware mode only (upper end of its 95% CI)
    threads: int = 2  # ORT intra-op threads for evaluation and timing (torch threads for inc)
    sens_images: int = 2  # calibration images for tensor sensitivity (a ranking needs few)
    timing_runs: int = 100  # interleaved FP32/INT8 rounds (~4 s for a 320 px NanoDet)
    target_cpu: str = "auto"  # auto (this CPU's flags) | avx2 (7-bit weights) | vnni (8-bit), see ednas.cpu
    folds: int = 2  # cross-validation folds of the annotated images (accuracy-aware mode)
    bias_correction: bool | None = None  # None: tried both ways in accuracy-aware mode, on otherwise
    finetune: str = "auto"  # quantization-aware fine-tuning in the accuracy search (accuracy_search.MODES)
    finetune_steps: int = 200  # its optimizer steps (finetune.FinetuneConfig)
    adaround: str = "auto"  # learned weight rounding in the accuracy search (accuracy_search.MODES; adaround)
    adaround_iters: int = 300  # its steps per conv (adaround.AdaRoundConfig)
    equalize: bool = True  # rescale activation channels before calibrating (equalize)


# ort without --images: mse + bias correction, the recipe whose output came closest to FP32's in
# every group of calibration images and for both weight formats (benchmarks/quantize_released.py);
# percentile/mse exist only in ort
DEFAULT_METHOD = {"ort": PLAIN_METHOD, "inc": "minmax"}
GRID_METHODS = ("percentile", "mse")  # ort's accuracy-aware grid when no --calib-method is given
QUANTIZED_OPS = frozenset({"QuantizeLinear", "DequantizeLinear", "QLinearConv", "ConvInteger", "MatMulInteger",
                           "QLinearMatMul", "DynamicQuantizeLinear"})


def _evaluator(images: str | Path, ann: str | Path, threads: int):
    """(dataset, fn ONNX path or Predictor -> PerImageAP) for the annotated selection set."""
    from ednas.data import check_images_found
    from ednas.data.coco import CocoDataset
    from ednas.eval.bootstrap import PerImageAP, predict_results
    from ednas.eval.predictors import OnnxPredictor, Predictor

    dataset = CocoDataset(images, ann)
    check_images_found(dataset, str(images), str(ann))
    gt = dataset.coco_gt()

    def score(model: Path | Predictor) -> PerImageAP:
        predictor = model if isinstance(model, Predictor) else OnnxPredictor(model, threads)
        return PerImageAP(gt, *predict_results(predictor, dataset))

    return dataset, score


def _holdout(model_path: Path, int8_path: Path, score: Any, images: str | Path) -> dict[str, Any]:
    """FP32 and INT8 scored on the --holdout images (which neither calibrated nor chose the
    model): both mAPs and the paired drop, each with its 95% bootstrap interval."""
    from ednas.eval.bootstrap import map_interval, paired_drop

    fp32, int8 = score(model_path), score(int8_path)
    drop = paired_drop(fp32, [int8], [np.ones(fp32.num_images, bool)])
    fp32_map, int8_map = map_interval(fp32), map_interval(int8)
    return {"images": str(images), "count": fp32.num_images, "drop_points": drop.value,
            "drop_ci95": [drop.low, drop.high], "fp32_map": fp32_map.value / 100,
            "fp32_ci95": [fp32_map.low / 100, fp32_map.high / 100], "int8_map": int8_map.value / 100,
            "int8_ci95": [int8_map.low / 100, int8_map.high / 100],
            "note": "images that neither calibrated nor chose the model; paired bootstrap over them"}


def _check_disjoint(holdout: Path, names: set[str], others: dict[str, list[Path]]) -> None:
    """Refuse --holdout images (`names`) that also calibrate or choose the model (same file name)."""
    for flag, files in others.items():
        shared = sorted(names & {p.name for p in files})
        if shared:
            raise InputError(f"`holdout` {holdout} shares {len(shared)} images with `{flag}` (e.g. {shared[0]}); "
                             "give held-out images that neither calibrate nor choose the model")


def _check(config: QuantizeConfig, images: object, ann: object) -> QuantizeConfig:
    """The config with the backend's default calibration method filled in; InputError (or
    BackendUnavailableError) for settings that cannot run."""
    from ednas.compress.quantize.accuracy_search import MODES
    from ednas.cpu import TARGETS

    if config.backend not in BACKENDS:
        raise InputError(f"`backend` {config.backend!r} is not one of {', '.join(BACKENDS)}")
    config = replace(config, calib_method=config.calib_method or DEFAULT_METHOD[config.backend])
    if config.calib_method not in calib.METHODS:
        raise InputError(f"`calib_method` {config.calib_method!r} is not one of {', '.join(calib.METHODS)}")
    if (images is None) != (ann is None):
        raise InputError("accuracy-aware mode needs both `images` and `ann`")
    if config.num_calib < 1:
        raise InputError(f"`num_calib` {config.num_calib}: give at least 1 image")
    if not config.max_drop >= 0:
        raise InputError(f"`max_drop` {config.max_drop:g}: give the allowed mAP drop in points, >= 0 (e.g. 0.5)")
    for key in ("finetune", "adaround"):
        if getattr(config, key) not in MODES:
            raise InputError(f"`{key}` {getattr(config, key)!r} is not one of {', '.join(MODES)}")
    for key in ("finetune_steps", "adaround_iters"):
        if getattr(config, key) < 1:
            raise InputError(f"`{key}` {getattr(config, key)}: give at least 1")
    if config.folds < 2:
        raise InputError(f"`folds` {config.folds}: give at least 2 (one fold chooses, the other checks)")
    if config.target_cpu not in TARGETS:
        raise InputError(f"`target_cpu` {config.target_cpu!r} is not one of {', '.join(TARGETS)}")
    if config.backend == "inc":
        from ednas.compress.quantize.inc_backend import require_inc

        if not config.recipe:
            raise InputError("`backend` inc needs `recipe` NAME, the architecture the ONNX was exported "
                             "from (e.g. enhanced_nanodet_s); or use `backend` ort, which reads the ONNX alone")
        require_inc()
    return config


def _not_quantized(model: Any, path: Path) -> None:
    found = sorted({n.op_type for n in model.graph.node} & QUANTIZED_OPS)
    if found:
        raise InputError(f"{path}: already quantized ({', '.join(found)} nodes); give the FP32 model")


def _folds(dataset: Any, image_ids: list[int], files: list[Path], k: int) -> tuple[list[Any], Any]:
    """Cross-validation folds (image i of the file-name order is in fold i % k) and the
    shipped model's 'fold' (all images). A calibration image that is also an annotated image
    calibrates only the folds that do not check it."""
    from ednas.compress.quantize.accuracy_search import Fold

    names = {im["id"]: im["file_name"] for im in dataset.coco_gt()["images"]}
    rank = {i: r for r, i in enumerate(sorted(image_ids, key=lambda i: names[i]))}
    fold_of = np.array([rank[i] % k for i in image_ids])
    by_name = {Path(names[i]).name: int(fold_of[n]) for n, i in enumerate(image_ids)}
    calib_fold = [by_name.get(f.name, -1) for f in files]
    folds = []
    for f in range(k):
        use = tuple(j for j, c in enumerate(calib_fold) if c != f)
        if not use or (fold_of == f).sum() < 1 or (fold_of != f).sum() < 1:
            raise InputError(f"`folds` {k}: too few images ({len(image_ids)} annotated, {len(files)} calibration) "
                             f"to calibrate, choose and check on separate images; give more images or fewer folds")
        folds.append(Fold(use, fold_of != f, fold_of == f))
    everything = np.ones(len(image_ids), bool)
    return folds, Fold(tuple(range(len(files))), everything, ~everything)


def _ort_int8(model: Any, model_path: Path, contract: qmodel.Contract, inputs: Any, evaluate: Any,
              work: Path, config: QuantizeConfig, methods: list[str], files: list[Path],
              dataset: Any) -> tuple[Path, dict[str, Any]]:
    """ONNX Runtime QDQ (accuracy-aware via accuracy_search): (INT8 path, summary facts)."""
    from ednas.compress.quantize.accuracy_search import Builder, Recipe, search
    from ednas.compress.quantize.adaround import AdaRoundConfig, adaround_qdq
    from ednas.compress.quantize.finetune import FinetuneConfig, finetune_qdq
    from ednas.compress.quantize.plain import build_plain_int8
    from ednas.cpu import cpu_info, int8_weights

    info = cpu_info()
    weights = int8_weights(config.target_cpu, info)
    num_scores = int(contract.output_shape[-1]) - REG_CHANNELS
    bits = "7-bit, reduce_range" if weights.reduce_range else "8-bit"
    tuning = FinetuneConfig(steps=config.finetune_steps)
    rounding = AdaRoundConfig(iters=config.adaround_iters)

    def facts_of(rewrites: list[str]) -> dict[str, Any]:
        return {"cpu": {"model": info.model, "flags": sorted(info.flags), "target": weights.target,
                        "reduce_range": weights.reduce_range, "why": weights.reason},
                "calibration": {"method": config.calib_method, "per_channel_weights": f"QInt8 ({bits})",
                                "activations": "QUInt8", "format": "QDQ",
                                "opset": max(qmodel.opset_of(model), qmodel.MIN_OPSET), "exact_rewrites": rewrites}}

    if evaluate is None:
        bias = True if config.bias_correction is None else config.bias_correction
        plain = build_plain_int8(model, inputs, work, weights.reduce_range, config.calib_method, bias,
                                 config.equalize, config.threads)
        path = plain.path  # the recoveries unchecked (no images): on request only
        learn = _recovery_mode(config, "adaround", plain.prepared) == "always"
        tune = _recovery_mode(config, "finetune", plain.prepared) == "always"
        if learn:
            path = adaround_qdq(path, plain.prepared, inputs, work / "plain_ar.onnx", weights.reduce_range,
                                rounding, config.threads)
        if tune:
            path = finetune_qdq(path, plain.prepared, inputs, work / "plain_ft.onnx", num_scores,
                                weights.reduce_range, tuning, config.threads)
        facts = facts_of(plain.rewrites)
        facts["calibration"]["equalized_tensors"] = plain.equalized
        facts.update(fp32_nodes=plain.fp32_nodes, fp32_tensors=[],
                     recipe=str(Recipe(config.calib_method, bias, finetune=tune, adaround=learn)),
                     finetune=asdict(tuning) if tune else None, adaround=asdict(rounding) if learn else None)
        return path, facts
    prepared, rewrites = qmodel.prepare(model, work)
    tail = qmodel.tail_nodes(load_onnx(prepared))
    facts = facts_of(rewrites)
    fp32 = evaluate(prepared)
    folds, shipped = _folds(dataset, fp32.image_ids, files, config.folds)
    groups = list(dict.fromkeys([f.calib for f in folds] + [shipped.calib]))
    sources, equalized = _equalized(prepared, inputs, groups, work, config)
    if sources:  # each group's statistics on its own equalized model
        stats = {g: calib.collect_stats(sources[g], inputs[list(g)], config.threads) for g in groups}
    else:
        stats = dict(zip(groups, calib.collect_group_stats(prepared, inputs, groups, config.threads)))
    facts["calibration"]["equalized_tensors"] = equalized.get(shipped.calib, 0)
    builder = Builder(prepared, stats, inputs, tail, evaluate, work, num_scores, weights.reduce_range,
                      config.sens_images, config.threads, tuning, sources, rounding)
    corrections = [False, True] if config.bias_correction is None else [config.bias_correction]
    grid = [Recipe(m, b) for m in methods for b in corrections]
    result = search(builder, fp32, folds, shipped, grid, config.max_drop,
                    finetune=_recovery_mode(config, "finetune", prepared),
                    adaround=_recovery_mode(config, "adaround", prepared))
    ship, held = result.shipped, result.held_out
    facts["calibration"]["method"] = ship.recipe.method
    facts.update(
        recipe=str(ship.recipe), bias_correction=ship.recipe.bias_correction,
        finetune=asdict(builder.finetune) if ship.recipe.finetune else None,
        adaround=asdict(builder.rounding) if ship.recipe.adaround else None,
        drop_points=held.value, drop_ci95=[held.low, held.high],
        held_out={"drop_points": held.value, "ci95": [held.low, held.high], "images": held.images,
                  "folds": len(folds), "per_fold": [asdict(d) for d in result.fold_drops],
                  "fold_recipes": [str(r) for r in result.fold_recipes],
                  "note": "each fold calibrated and chosen on the other folds' images, checked on its own"},
        fp32_map=fp32.map(), int8_map=ship.scores.map(), in_sample_drop_points=result.in_sample.value,
        in_sample_ci95=[result.in_sample.low, result.in_sample.high],
        fp32_nodes=ship.exclude, fp32_tensors=ship.fallback_tensors, tried=result.tried)
    return ship.path, facts


def _equalized(prepared: Path, inputs: np.ndarray, groups: list[tuple[int, ...]], work: Path,
               config: QuantizeConfig) -> tuple[dict[tuple[int, ...], Path], dict[tuple[int, ...], int]]:
    """Each calibration group's equalized FP32 model (equalize: channel ranges from that group
    only, so a fold's model has seen none of the images that check it) and how many tensors
    it rescaled; nothing with equalization off."""
    from ednas.compress.quantize.equalize import equalize_file

    sources, counts = {}, {}
    for k, group in enumerate(groups if config.equalize else []):
        sources[group], counts[group] = equalize_file(prepared, inputs[list(group)], work / f"equalized{k}.onnx",
                                                      threads=config.threads)
    return sources, counts


def _recovery_mode(config: QuantizeConfig, key: str, prepared: Path) -> str:
    """config.finetune or config.adaround (`key`), or off where the graph has operators the
    torch interpreter both run on cannot run: `auto` logs it and goes on; `always` (asked
    for explicitly) is refused in one line."""
    from ednas.compress.quantize.finetune import UnsupportedGraph, unsupported_ops

    mode = getattr(config, key)
    unknown = unsupported_ops(load_onnx(prepared)) if mode != "off" else []
    if unknown and mode == "always":
        raise UnsupportedGraph(f"`{key}` always: it cannot run {', '.join(unknown)} nodes; use `{key}` auto or off")
    if unknown:
        log.warning("no %s: it cannot run %s nodes", key, ", ".join(unknown))
    return "off" if unknown else mode


def _inc_int8(model: Any, model_path: Path, contract: qmodel.Contract, inputs: Any, evaluate: Any,
              work: Path, config: QuantizeConfig, methods: list[str], files: list[Path],
              dataset: Any) -> tuple[Path, dict[str, Any]]:
    """Intel Neural Compressor PT2E (accuracy-aware via INC autotune): (INT8 path, summary facts).
    The shipped ONNX is re-scored with ONNX Runtime and must itself meet the bound."""
    from ednas.compress.quantize.inc_backend import ACT_ALGOS, quantize_inc
    from ednas.compress.quantize.accuracy_search import AccuracyBoundError

    from ednas.eval.bootstrap import paired_drop

    fp32 = evaluate(model_path) if evaluate is not None else None
    fp32_map = fp32.map() if fp32 is not None else None
    score = (lambda m: evaluate(m).map()) if evaluate is not None else None
    result = quantize_inc(model_path, config.recipe, inputs, contract, work, config.calib_method, score,
                          fp32_map, config.max_drop, config.threads)
    tuned = f"INC autotune over act_algo {'/'.join(ACT_ALGOS.values())} x act_sym, {config.calib_method} first"
    facts: dict[str, Any] = {"recipe": config.recipe, "calibration": {
        "method": config.calib_method if evaluate is None else tuned,
        "per_channel_weights": "QInt8 symmetric (INC X86InductorQuantizer)",
        "activations": "QUInt8 per-tensor; conv+activation outputs stay FP32", "format": "QDQ (PT2E, dynamo export)",
        "opset": qmodel.opset_of(load_onnx(result.path))}}
    if evaluate is None:
        return result.path, facts
    int8 = evaluate(result.path)
    drop = paired_drop(fp32, [int8], [np.ones(fp32.num_images, bool)])
    if drop.high > config.max_drop:
        raise AccuracyBoundError(
            f"`max_drop` {config.max_drop:g}: not shown with `backend` inc; its INT8 ONNX drops {drop.value:.2f} "
            f"points (95% CI {drop.low:.2f} to {drop.high:.2f}, mAP {int8.map():.4f} vs FP32 {fp32_map:.4f}); "
            "raise `max_drop` or use `backend` ort"
        )
    facts.update(fp32_map=fp32_map, int8_map=int8.map(), drop_points=drop.value, drop_ci95=[drop.low, drop.high],
                 inc_torch_maps={"fp32": result.torch_baseline, "trials": result.torch_trials})
    return result.path, facts


BUILDERS = {"ort": _ort_int8, "inc": _inc_int8}
BACKENDS = tuple(BUILDERS)


def quantize(
    model_path: str | Path, calib_dir: str | Path, out: str | Path,
    images: str | Path | None = None, ann: str | Path | None = None,
    config: QuantizeConfig = QuantizeConfig(), holdout: str | Path | None = None,
    holdout_ann: str | Path | None = None,
) -> dict[str, Any]:
    """Quantize `model_path`; write `out` and `out` with suffix .json; return the summary.
    With `holdout`/`holdout_ann` the shipped model's drop is also scored on those images,
    which must be apart from the calibration and selection images."""
    methods = [config.calib_method] if config.calib_method else list(GRID_METHODS)
    config = _check(config, images, ann)
    if (holdout is None) != (holdout_ann is None):
        raise InputError("`holdout` needs both the images folder and its annotations (`holdout_ann`)")
    out, model_path = Path(out), Path(model_path)
    if out.suffix.lower() == ".json":
        raise InputError(f"`out` {out}: give the .onnx path; the summary is written beside it as .json")
    for dest in (out, out.with_suffix(".json")):  # an unwritable destination is refused before any work
        check_output(dest)
    model = qmodel.name_nodes(load_onnx(model_path))
    _not_quantized(model, model_path)
    contract = qmodel.contract_of(model, str(model_path))
    files = calib.list_images(calib_dir, config.num_calib)
    inputs, files = calib.load_decodable(files, contract.input_size, calib_dir)
    dataset, evaluate = _evaluator(images, ann, config.threads) if images is not None else (None, None)
    unseen = None
    if holdout is not None:
        held, unseen = _evaluator(holdout, holdout_ann, config.threads)
        chosen_on = {"calib": calib.list_images(calib_dir)}
        if images is not None:
            chosen_on["images"] = [Path(images) / im["file_name"] for im in dataset.coco_gt()["images"]]
        _check_disjoint(Path(holdout), {Path(im["file_name"]).name for im in held.coco_gt()["images"]}, chosen_on)

    json_path = out.with_suffix(".json")
    with scratch_dir("quantize") as work, _temp_files_in(work):
        path, facts = BUILDERS[config.backend](model, model_path, contract, inputs, evaluate, work, config,
                                               methods, files, dataset)
        summary: dict[str, Any] = {"model": str(model_path), "backend": config.backend, "config": asdict(config)}
        summary.update(facts)
        summary["calibration"] = {"dir": str(calib_dir), "images": len(files), **facts["calibration"]}
        if evaluate is not None:
            summary["eval"] = {"images": str(images), "ann": str(ann), "count": len(dataset)}
        qmodel.check_contract(path, contract)
        if unseen is not None:
            summary["holdout"] = _holdout(model_path, path, unseen, holdout)
        timing = time_pair(model_path, path, config.threads, config.timing_runs)
        summary["latency"] = asdict(timing)
        summary["speedup"] = timing.speedup
        with output_set(out, json_path) as (model_tmp, json_tmp):
            shutil.copyfile(path, model_tmp)
            json_tmp.write_text(json.dumps(summary, indent=2))
    log.info("wrote %s and %s", out, json_path)
    return summary


@contextlib.contextmanager
def _temp_files_in(folder: Path) -> Iterator[None]:
    """Point Python's temp dir at `folder` for the block: the ONNX Runtime quantizer makes its
    own temporary folders, which a kill -9 would otherwise leave in $TMPDIR for good."""
    saved = tempfile.tempdir
    tempfile.tempdir = str(folder)
    try:
        yield
    finally:
        tempfile.tempdir = saved
