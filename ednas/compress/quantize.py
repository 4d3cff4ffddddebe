"""`quantize()`: FP32 ONNX -> static INT8 QDQ ONNX + JSON summary, optionally accuracy-aware.

Two backends build the INT8 model (`BUILDERS`: ONNX Runtime, Intel Neural Compressor); the
rest is shared: calibration images, the contract check, the interleaved latency pair, the
summary and the atomic write.

Nothing is written unless every step succeeds: the model is built in a temporary folder,
its contract (input/output names and shapes) is checked, then it and the summary are moved
into place.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from ednas.compress import quantize_calib as calib
from ednas.compress import quantize_model as qmodel
from ednas.compress.quantize_latency import time_pair
from ednas.compress.quantize_ort import quantize_qdq
from ednas.errors import InputError

log = logging.getLogger(__name__)

REG_CHANNELS = 32  # 4 sides x (reg_max 7 + 1) distribution logits after the class scores


@dataclass(frozen=True)
class QuantizeConfig:
    """Settings of one quantization run."""

    backend: str = "ort"  # ort (ONNX Runtime) | inc (Intel Neural Compressor PT2E, see quantize_inc)
    calib_method: str | None = None  # minmax | percentile | entropy | mse; None: the backend's default
    recipe: str | None = None  # architecture of the ONNX (recipe name or YAML); inc rebuilds it in torch
    num_calib: int = 128  # calibration images (evenly spaced over the folder); 128 beat 64 (benchmark)
    max_drop: float = 0.5  # allowed mAP drop in points, accuracy-aware mode only
    threads: int = 2  # ORT intra-op threads for evaluation and timing (torch threads for inc)
    sens_images: int = 2  # calibration images for tensor sensitivity (a ranking needs few)
    timing_runs: int = 100  # interleaved FP32/INT8 rounds (~4 s for a 320 px NanoDet)


DEFAULT_METHOD = {"ort": "percentile", "inc": "minmax"}  # percentile/mse exist only in ort; see the benchmark


def _evaluator(images: str | Path, ann: str | Path, threads: int):
    """(dataset, fn ONNX path or Predictor -> mAP) for the annotated selection set."""
    from ednas.data.coco import CocoDataset
    from ednas.eval.coco_eval import evaluate
    from ednas.eval.predictors import OnnxPredictor, Predictor

    dataset = CocoDataset(images, ann)

    def score(model: Path | Predictor) -> float:
        predictor = model if isinstance(model, Predictor) else OnnxPredictor(model, threads)
        return float(evaluate(predictor, dataset, progress=False)["mAP"])

    return dataset, score


def _check(config: QuantizeConfig, images: object, ann: object) -> QuantizeConfig:
    """The config with the backend's default calibration method filled in; InputError (or
    BackendUnavailableError) for settings that cannot run."""
    if config.backend not in BACKENDS:
        raise InputError(f"--backend {config.backend!r} is not one of {', '.join(BACKENDS)}")
    config = replace(config, calib_method=config.calib_method or DEFAULT_METHOD[config.backend])
    if config.calib_method not in calib.METHODS:
        raise InputError(f"--calib-method {config.calib_method!r} is not one of {', '.join(calib.METHODS)}")
    if (images is None) != (ann is None):
        raise InputError("accuracy-aware mode needs both --images and --ann")
    if config.num_calib < 1:
        raise InputError(f"--num-calib {config.num_calib}: give at least 1 image")
    if config.backend == "inc":
        from ednas.compress.quantize_inc import require_inc

        if not config.recipe:
            raise InputError("--backend inc needs --recipe NAME, the architecture the ONNX was exported "
                             "from (e.g. enhanced_nanodet_s); or use --backend ort, which reads the ONNX alone")
        require_inc()
    return config


def _ort_int8(model: Any, model_path: Path, contract: qmodel.Contract, inputs: Any, evaluate: Any,
              work: Path, config: QuantizeConfig) -> tuple[Path, dict[str, Any]]:
    """ONNX Runtime QDQ (accuracy-aware via quantize_search): (INT8 path, summary facts)."""
    prepared, rewrites = qmodel.prepare(model, work)
    stats = calib.collect_stats(prepared, inputs, config.threads)
    tail = qmodel.tail_nodes(qmodel.load_model(prepared))
    facts: dict[str, Any] = {"calibration": {
        "method": config.calib_method, "per_channel_weights": "QInt8 (7-bit, reduce_range)",
        "activations": "QUInt8", "format": "QDQ", "opset": max(qmodel.opset_of(model), qmodel.MIN_OPSET),
        "exact_rewrites": rewrites}}
    if evaluate is None:
        ranges = calib.compute_ranges(stats, config.calib_method)
        facts.update(fp32_nodes=tail, fp32_tensors=[])
        return quantize_qdq(prepared, work / "int8.onnx", ranges, tail), facts
    from ednas.compress.quantize_search import search

    fp32_map = evaluate(prepared)
    num_scores = int(contract.output_shape[-1]) - REG_CHANNELS
    best, history = search(
        prepared, stats, config.calib_method, evaluate, fp32_map, config.max_drop, tail,
        inputs[: config.sens_images], num_scores, work, threads=config.threads,
    )
    facts["calibration"]["method"] = best.method
    facts.update(fp32_map=fp32_map, int8_map=best.map, drop_points=best.drop(fp32_map),
                 fp32_nodes=best.exclude, fp32_tensors=best.fallback_tensors, tried=history.tried)
    return best.path, facts


def _inc_int8(model: Any, model_path: Path, contract: qmodel.Contract, inputs: Any, evaluate: Any,
              work: Path, config: QuantizeConfig) -> tuple[Path, dict[str, Any]]:
    """Intel Neural Compressor PT2E (accuracy-aware via INC autotune): (INT8 path, summary facts).
    The shipped ONNX is re-scored with ONNX Runtime and must itself meet the bound."""
    from ednas.compress.quantize_inc import ACT_ALGOS, quantize_inc
    from ednas.compress.quantize_search import AccuracyBoundError

    fp32_map = evaluate(model_path) if evaluate is not None else None
    result = quantize_inc(model_path, config.recipe, inputs, contract, work, config.calib_method, evaluate,
                          fp32_map, config.max_drop, config.threads)
    tuned = f"INC autotune over act_algo {'/'.join(ACT_ALGOS.values())} x act_sym, {config.calib_method} first"
    facts: dict[str, Any] = {"recipe": config.recipe, "calibration": {
        "method": config.calib_method if evaluate is None else tuned,
        "per_channel_weights": "QInt8 symmetric (INC X86InductorQuantizer)",
        "activations": "QUInt8 per-tensor; conv+activation outputs stay FP32", "format": "QDQ (PT2E, dynamo export)",
        "opset": qmodel.opset_of(qmodel.load_model(result.path))}}
    if evaluate is None:
        return result.path, facts
    int8_map = evaluate(result.path)
    drop = (fp32_map - int8_map) * 100
    if drop > config.max_drop:
        raise AccuracyBoundError(
            f"--max-drop {config.max_drop:g}: not reachable with --backend inc; its INT8 ONNX drops {drop:.2f} "
            f"points (mAP {int8_map:.4f} vs FP32 {fp32_map:.4f}); raise --max-drop or use --backend ort"
        )
    facts.update(fp32_map=fp32_map, int8_map=int8_map, drop_points=drop,
                 inc_torch_maps={"fp32": result.torch_baseline, "trials": result.torch_trials})
    return result.path, facts


BUILDERS = {"ort": _ort_int8, "inc": _inc_int8}
BACKENDS = tuple(BUILDERS)


def quantize(
    model_path: str | Path, calib_dir: str | Path, out: str | Path,
    images: str | Path | None = None, ann: str | Path | None = None,
    config: QuantizeConfig = QuantizeConfig(),
) -> dict[str, Any]:
    """Quantize `model_path`; write `out` and `out` with suffix .json; return the summary."""
    config = _check(config, images, ann)
    out, model_path = Path(out), Path(model_path)
    model = qmodel.name_nodes(qmodel.load_model(model_path))
    contract = qmodel.contract_of(model, str(model_path))
    files = calib.list_images(calib_dir, config.num_calib)
    dataset, evaluate = _evaluator(images, ann, config.threads) if images is not None else (None, None)

    with tempfile.TemporaryDirectory(prefix="ednas-quantize-") as tmp:
        work = Path(tmp)
        inputs = calib.load_batch(files, contract.input_size)
        path, facts = BUILDERS[config.backend](model, model_path, contract, inputs, evaluate, work, config)
        summary: dict[str, Any] = {"model": str(model_path), "backend": config.backend, "config": asdict(config)}
        summary.update(facts)
        summary["calibration"] = {"dir": str(calib_dir), "images": len(files), **facts["calibration"]}
        if evaluate is not None:
            summary["eval"] = {"images": str(images), "ann": str(ann), "count": len(dataset)}
        qmodel.check_contract(path, contract)
        timing = time_pair(model_path, path, config.threads, config.timing_runs)
        summary["latency"] = asdict(timing)
        summary["speedup"] = timing.speedup
        qmodel.save_atomic(path, out)
        json_path = out.with_suffix(".json")
        (work / "summary.json").write_text(json.dumps(summary, indent=2))
        qmodel.save_atomic(work / "summary.json", json_path)
    log.info("wrote %s and %s", out, json_path)
    return summary
