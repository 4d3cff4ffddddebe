"""Intel Neural Compressor backend: static INT8 through INC's PyTorch PT2E path, back to ONNX.

Route: the FP32 ONNX is loaded into its ednas architecture (`--recipe`, via
`models.onnx_import`), fused and wrapped like `models.export` exports it, captured with
`neural_compressor.torch.export.export`, then `prepare` -> calibration on the model's own
pre-processing -> `convert` (or INC's `autotune` over activation algorithm and symmetry when
an evaluator is given), and exported with the dynamo ONNX exporter. The TorchScript exporter
(`dynamo=False`) cannot: it has no symbolic for `quantized_decomposed::*`.

Known limits, measured on Enhanced NanoDet_s (ORT 1.32, AVX2 CPU without VNNI):
- the INT8 ONNX runs about 1.27x SLOWER than the FP32 one. INC's X86InductorQuantizer leaves
  Conv->LeakyRelu/Clip/Sigmoid outputs unquantized (it expects inductor to fuse conv+unary), so
  only about 40 of 105 convs become QLinearConv; weights stay FP32 behind a QuantizeLinear
  and a no-op Clip(-128, 127). `--backend ort` gives a faster model (1.1-1.2x FP32 speed).
- INC's tolerance is relative, (baseline - x) / baseline: `max_drop` points are converted with
  the FP32 mAP, and the shipped ONNX is re-scored with ONNX Runtime against the bound.
Why not INC's ONNX route (facts of Nov 2026):
- neural-compressor >= 3.8 has no ONNX quantization; 3.7 still has it but fails to import
  with onnx >= 1.19 (`onnx.mapping` was removed), and pinning older onnx would downgrade the
  main install.
- onnx-neural-compressor 1.0 (the only release of the ONNX successor) pins numpy<2, pulls
  transformers, imports undeclared prettytable/scipy, and calls exit(0) inside autotune when
  no config meets the bound; its tuning only varies op-type subsets and per-channel, which
  does not reach the bound on this model family (the loss is spread over the conv body).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ednas.compress.quantize.prepare import Contract
from ednas.errors import EdnasError, InputError
from ednas.eval.coco_eval import torch_threads
from ednas.eval.predictors import Predictor, TorchPredictor

log = logging.getLogger(__name__)

INSTALL = "pip install 'ednas[inc]'"
ACT_ALGOS = {"minmax": "minmax", "entropy": "kl"}  # ednas --calib-method -> INC act_algo
MAX_TRIALS = 4  # 2 algorithms x {asymmetric, symmetric} activations

Evaluate = Callable[[Path | Predictor], float]  # ONNX path or predictor -> mAP (fraction)


class BackendUnavailableError(EdnasError):
    """A quantization backend cannot run in this installation."""


@dataclass
class IncResult:
    """The INT8 ONNX written by `quantize_inc` and the scores INC saw (torch, QDQ emulation)."""

    path: Path
    torch_baseline: float | None = None  # INC's FP32 score, accuracy-aware mode only
    torch_trials: list[float] = field(default_factory=list)  # one score per INC trial


def require_inc() -> None:
    """BackendUnavailableError (one line, with the install command) unless INC's PT2E route
    and the dynamo ONNX exporter can be imported."""
    for module in ("neural_compressor.torch.quantization", "torchao", "onnxscript"):
        try:
            __import__(module)
        except ImportError as exc:
            raise BackendUnavailableError(
                f"`backend` inc needs Intel Neural Compressor's PyTorch route ({exc.name or module} is not "
                f"installed): {INSTALL}, and give `recipe` (the architecture of the ONNX)"
            ) from None


def deploy_module(model_path: str | Path, recipe: str):
    """The FP32 ONNX as the fused torch module that `models.export` exports."""
    from ednas.recipe import load_model
    from ednas.models.export import DeployModule
    from ednas.models.onnx_import import import_onnx

    _, model = load_model(recipe)
    import_onnx(model, model_path)
    return DeployModule(model.cpu().eval().fuse()).eval()


def export_int8(q_model: Any, example: tuple, contract: Contract, path: Path) -> Path:
    """Write the converted (QDQ) module as ONNX with the contract's tensor names."""
    import torch

    program = torch.onnx.export(
        torch.export.export(q_model, example), example, input_names=[contract.input_name],
        output_names=[contract.output_name], dynamo=True, external_data=False, optimize=True,
    )
    program.save(str(path))
    return path


def quantize_inc(
    model_path: str | Path, recipe: str, inputs: np.ndarray, contract: Contract, work_dir: Path,
    method: str = "minmax", evaluate: Evaluate | None = None, fp32_map: float | None = None,
    max_drop: float = 0.5, threads: int = 2,
) -> IncResult:
    """Static INT8 ONNX of `model_path` (architecture `recipe`) in `work_dir`, calibrated on
    `inputs` (N, 3, S, S). With `evaluate` (and the FP32 mAP), INC's autotune tries activation
    algorithms and symmetry, `method` first, until the drop is within `max_drop` points;
    AccuracyBoundError when no trial is."""
    require_inc()
    if method not in ACT_ALGOS:
        raise InputError(f"`calib_method` {method!r}: `backend` inc supports {', '.join(ACT_ALGOS)}")
    import torch
    from neural_compressor.torch.export import export
    from neural_compressor.torch.quantization import StaticQuantConfig, TuningConfig, autotune, convert, prepare

    from ednas.compress.quantize.accuracy_search import AccuracyBoundError

    size = contract.input_size
    example = (torch.zeros(1, 3, size, size),)
    batches = [torch.from_numpy(np.ascontiguousarray(x[None])) for x in inputs]

    def calibrate(model: Any) -> None:
        with torch.no_grad():
            for x in batches:
                model(x)

    with torch_threads(threads):
        graph = export(deploy_module(model_path, recipe), example)
        result = IncResult(work_dir / "int8.onnx")
        if evaluate is None:
            prepared = prepare(graph, StaticQuantConfig(act_algo=ACT_ALGOS[method]))
            calibrate(prepared)
            q_model = convert(prepared)
        else:
            if not fp32_map or fp32_map <= 0:
                raise AccuracyBoundError("FP32 mAP is 0 on `images`: INC's relative loss bound is undefined")
            scores: list[float] = []

            def score(model: Any) -> float:
                scores.append(evaluate(TorchPredictor(model, size, per_image=True)))
                return scores[-1]

            algos = [ACT_ALGOS[method]] + [a for a in ACT_ALGOS.values() if a != ACT_ALGOS[method]]
            tune = TuningConfig(
                config_set=[StaticQuantConfig(act_algo=algos, act_sym=[False, True])],  # a list: INC iterates it
                tolerable_loss=max_drop / 100 / fp32_map, max_trials=MAX_TRIALS,
            )
            q_model = autotune(graph, tune, eval_fn=score, run_fn=calibrate, example_inputs=example)
            result.torch_baseline, result.torch_trials = scores[0], scores[1:]
            if q_model is None:
                raise AccuracyBoundError(
                    f"`max_drop` {max_drop:g}: INC found no INT8 model within the bound (torch mAP of its "
                    f"trials {', '.join(f'{s:.4f}' for s in scores[1:])} vs FP32 {scores[0]:.4f}); "
                    "raise `max_drop` or use `backend` ort"
                )
        log.info("exporting the INT8 module to ONNX (dynamo exporter)")
        export_int8(q_model, example, contract, result.path)
    return result
