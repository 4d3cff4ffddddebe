"""ONNX files for timing: units and whole models, FP32 or INT8, made the way deployment makes
them (BN folded, opset 13, onnxslim; INT8 = ORT static QDQ, per-channel, U8S8)."""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from ednas.arch import ArchSpec
from ednas.latency.units import Unit

log = logging.getLogger(__name__)

Precision = Literal["fp32", "int8"]
PRECISIONS: tuple[str, ...] = ("fp32", "int8")
OPSET = 13


def export_unit(unit: Unit, path: Path, precision: Precision = "fp32", seed: int = 0) -> Path:
    """Write `unit` (random weights) as a timing-ready ONNX file at `path`."""
    import onnx
    import onnxslim

    torch.manual_seed(seed)
    module = unit.build()
    module.fuse()
    names = [f"in{i}" for i in range(len(unit.inputs))]
    args = tuple(torch.zeros(s) for s in unit.inputs)
    with _scratch(path) as tmp:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, args, tmp, input_names=names, output_names=["out"],
                              opset_version=OPSET, dynamo=False, do_constant_folding=True)
        onnx.save(onnxslim.slim(onnx.load(tmp)), tmp)
        _finish(tmp, path, precision)
    return path


def export_arch(arch: ArchSpec, path: Path, precision: Precision = "fp32", seed: int = 0) -> Path:
    """Write the whole deployable model of `arch` (random weights) at `path`."""
    from ednas.models import build_model
    from ednas.models.export import export_onnx

    torch.manual_seed(seed)
    with _scratch(path) as tmp:
        export_onnx(build_model(arch), tmp, opset=OPSET)
        _finish(tmp, path, precision)
    return path


def quantize_int8(src: Path, dst: Path, samples: int = 4, seed: int = 0) -> None:
    """Static QDQ INT8 (per-channel, U8 activations, S8 weights: the combination ORT fuses to
    QLinearConv on AVX2 CPUs) calibrated on random data, which is enough for timing."""
    import onnxruntime as ort
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                          quantize_static)

    sess = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(seed)
    inputs = [(i.name, [d if isinstance(d, int) else 1 for d in i.shape]) for i in sess.get_inputs()]
    batches = [{n: rng.standard_normal(s).astype(np.float32) for n, s in inputs} for _ in range(samples)]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter(batches)

        def get_next(self) -> dict | None:
            return next(self.it, None)

    root = logging.getLogger()
    quiet = _DropPreprocessHint()
    root.addFilter(quiet)  # the quantizer logs a pre-processing hint on the root logger per call
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    finally:
        root.removeFilter(quiet)


class _DropPreprocessHint(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing" not in record.getMessage()


class _scratch:
    """A temporary .onnx path beside `path`, removed afterwards (atomic writes)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def __enter__(self) -> Path:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.stem}.", suffix=".onnx")
        os.close(fd)
        self.tmp = Path(tmp)
        return self.tmp

    def __exit__(self, *exc: object) -> None:
        for leftover in self.tmp.parent.glob(f"{self.tmp.stem}*"):
            leftover.unlink(missing_ok=True)


def _finish(tmp: Path, path: Path, precision: Precision) -> None:
    if precision == "int8":
        quantize_int8(tmp, path)
    else:
        os.replace(tmp, path)
