"""ONNX files for timing: units and whole models, FP32 or INT8, made the way deployment makes
them (BN folded, opset 13, onnxslim; INT8 = the model `ednas quantize` ships, through the same
function: ednas.compress.quantize.plain)."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Literal

import numpy as np
import torch

from ednas.arch import ArchSpec
from ednas.latency.units import Unit

if TYPE_CHECKING:
    from ednas.cpu import WeightChoice

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


CALIB_SAMPLES = 2  # random calibration feeds of an INT8 unit: ranges do not change its speed
# Ranges set scales and zero points only, never the graph (which ops are quantized, the rewrites,
# the FP32 tail, the weight bits) nor the integer kernels' speed; minmax costs nothing where
# the shipped default (mse) searches 1600 ranges per tensor (~45 s for a whole model).
TIMING_METHOD = "minmax"


def int8_weights() -> "WeightChoice":
    """The weight format `ednas quantize` picks on this machine (its default --target-cpu auto)."""
    from ednas.cpu import int8_weights as choose

    return choose("auto")


def quantize_int8(src: Path, dst: Path, samples: int = CALIB_SAMPLES, seed: int = 0) -> None:
    """What `ednas quantize` ships without annotated images (ednas.compress.quantize.plain: exact
    rewrites, FP32 output tail, this CPU's weight bits, bias correction), calibrated on random
    feeds with minmax ranges and no equalization (it changes weights, not the graph), which is
    enough for timing (TIMING_METHOD)."""
    import onnx

    from ednas.compress.quantize.plain import build_plain_int8
    from ednas.compress.quantize.prepare import name_nodes
    from ednas.io import atomic_path, scratch_dir

    model = name_nodes(onnx.load(str(src)))
    rng = np.random.default_rng(seed)
    weights = {i.name for i in model.graph.initializer}
    shapes = {i.name: [d.dim_value or 1 for d in i.type.tensor_type.shape.dim]
              for i in model.graph.input if i.name not in weights}
    inputs = [{n: rng.standard_normal(s, dtype=np.float32) for n, s in shapes.items()} for _ in range(samples)]
    with _quiet_quantizer(), warnings.catch_warnings(), scratch_dir("int8") as work:
        warnings.simplefilter("ignore")
        built = build_plain_int8(model, inputs, work, int8_weights().reduce_range, TIMING_METHOD,
                                 equalize=False)
        with atomic_path(dst) as tmp:
            shutil.copyfile(built.path, tmp)


@contextlib.contextmanager
def _quiet_quantizer() -> Iterator[None]:
    """A table build quantizes a thousand units: keep the quantizer's per-model INFO lines
    (ORT's on the root logger, ours) out of the progress bar."""
    root, ours = logging.getLogger(), logging.getLogger("ednas.compress.quantize")
    quiet, level = _DropQuantizerNoise(), ours.level
    root.addFilter(quiet)
    ours.setLevel(logging.WARNING)
    try:
        yield
    finally:
        root.removeFilter(quiet)
        ours.setLevel(level)


class _DropQuantizerNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.name != "root" or record.levelno >= logging.WARNING and "pre-processing" not in record.getMessage()


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
