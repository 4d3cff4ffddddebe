"""`quantize()`: FP32 ONNX -> static INT8 QDQ ONNX + JSON summary, optionally accuracy-aware.

Nothing is written unless every step succeeds: the model is built in a temporary folder,
its contract (input/output names and shapes) is checked, then it and the summary are moved
into place.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ednas.compress import quantize_calib as calib
from ednas.compress import quantize_model as qmodel
from ednas.compress.quantize_latency import time_pair
from ednas.compress.quantize_ort import quantize_qdq
from ednas.errors import InputError

log = logging.getLogger(__name__)

BACKENDS = ("ort", "inc")
REG_CHANNELS = 32  # 4 sides x (reg_max 7 + 1) distribution logits after the class scores


@dataclass(frozen=True)
class QuantizeConfig:
    """Settings of one quantization run."""

    backend: str = "ort"  # ort | inc (see quantize_inc for why inc is unavailable)
    calib_method: str = "percentile"  # minmax | percentile | entropy | mse
    num_calib: int = 64  # calibration images (evenly spaced over the folder)
    max_drop: float = 0.5  # allowed mAP drop in points, accuracy-aware mode only
    threads: int = 2  # ORT intra-op threads for evaluation and timing
    sens_images: int = 2  # calibration images for tensor sensitivity (a ranking needs few)
    timing_runs: int = 50  # interleaved FP32/INT8 pairs


def _evaluator(images: str | Path, ann: str | Path, threads: int):
    """(dataset, fn path -> mAP) for the annotated selection set."""
    from ednas.data.coco import CocoDataset
    from ednas.eval.coco_eval import evaluate
    from ednas.eval.predictors import OnnxPredictor

    dataset = CocoDataset(images, ann)

    def score(path: Path) -> float:
        return float(evaluate(OnnxPredictor(path, threads), dataset, progress=False)["mAP"])

    return dataset, score


def quantize(
    model_path: str | Path, calib_dir: str | Path, out: str | Path,
    images: str | Path | None = None, ann: str | Path | None = None,
    config: QuantizeConfig = QuantizeConfig(),
) -> dict[str, Any]:
    """Quantize `model_path`; write `out` and `out` with suffix .json; return the summary."""
    if config.backend not in BACKENDS:
        raise InputError(f"--backend {config.backend!r} is not one of {', '.join(BACKENDS)}")
    if config.backend == "inc":
        from ednas.compress.quantize_inc import quantize_inc

        quantize_inc()
    if config.calib_method not in calib.METHODS:
        raise InputError(f"--calib-method {config.calib_method!r} is not one of {', '.join(calib.METHODS)}")
    if (images is None) != (ann is None):
        raise InputError("accuracy-aware mode needs both --images and --ann")
    if config.num_calib < 1:
        raise InputError(f"--num-calib {config.num_calib}: give at least 1 image")
    out = Path(out)
    model = qmodel.name_nodes(qmodel.load_model(model_path))
    contract = qmodel.contract_of(model, str(model_path))
    files = calib.list_images(calib_dir, config.num_calib)
    dataset, evaluate = _evaluator(images, ann, config.threads) if images is not None else (None, None)

    with tempfile.TemporaryDirectory(prefix="ednas-quantize-") as tmp:
        work = Path(tmp)
        prepared = qmodel.prepare(model, work)
        inputs = calib.load_batch(files, contract.input_size)
        stats = calib.collect_stats(prepared, inputs, config.threads)
        tail = qmodel.tail_nodes(qmodel.load_model(prepared))
        summary: dict[str, Any] = {
            "model": str(model_path), "backend": config.backend, "config": asdict(config),
            "calibration": {"dir": str(calib_dir), "images": len(files), "method": config.calib_method,
                            "per_channel_weights": "QInt8 (7-bit, reduce_range)", "activations": "QUInt8",
                            "format": "QDQ", "opset": max(qmodel.opset_of(model), qmodel.MIN_OPSET)},
        }
        if evaluate is None:
            ranges = calib.compute_ranges(stats, config.calib_method)
            path = quantize_qdq(prepared, work / "int8.onnx", ranges, tail)
            summary.update(fp32_nodes=tail, fp32_tensors=[])
        else:
            from ednas.compress.quantize_search import search

            fp32_map = evaluate(prepared)
            num_scores = int(contract.output_shape[-1]) - REG_CHANNELS
            best, history = search(
                prepared, stats, config.calib_method, evaluate, fp32_map, config.max_drop, tail,
                inputs[: config.sens_images], num_scores, work, threads=config.threads,
            )
            path = best.path
            summary["calibration"]["method"] = best.method
            summary.update(
                eval={"images": str(images), "ann": str(ann), "count": len(dataset)},
                fp32_map=fp32_map, int8_map=best.map, drop_points=best.drop(fp32_map),
                fp32_nodes=best.exclude, fp32_tensors=best.fallback_tensors, tried=history.tried,
            )
        qmodel.check_contract(path, contract)
        timing = time_pair(model_path, path, config.threads, config.timing_runs)
        summary["latency"] = asdict(timing)
        summary["speedup"] = timing.speedup
        qmodel.save_atomic(path, out)
        json_path = out.with_suffix(".json")
        tmp_json = work / "summary.json"
        tmp_json.write_text(json.dumps(summary, indent=2))
        json_path.write_text(tmp_json.read_text())
    log.info("wrote %s and %s", out, json_path)
    return summary

