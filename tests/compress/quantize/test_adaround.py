"""Learned weight rounding on a tiny detector made in code: it lowers the output error,
moves no weight by more than one integer step, and leaves graph and scales alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from onnx import numpy_helper

from ednas.compress.quantize.adaround import AdaRoundConfig, adaround_qdq
from ednas.compress.quantize.sensitivity import output_error
from ednas.onnx_runtime import load_onnx
from test_finetune import REDUCE, _images, _ort, built  # noqa: F401  (same folder; `built` is a fixture)
from test_job import NUM_CLASSES


def _inits(path: Path) -> dict[str, np.ndarray]:
    return {i.name: numpy_helper.to_array(i) for i in load_onnx(path).graph.initializer}


def test_learned_rounding_lowers_the_output_error_within_one_step(built, tmp_path: Path) -> None:  # noqa: F811
    prepared, qdq, x = built
    out = adaround_qdq(qdq, prepared, x, tmp_path / "ar.onnx", REDUCE, AdaRoundConfig(iters=80, batch=4, crop=8))
    held = _images(8, seed=5)  # images it did not learn on
    fp32 = _ort(prepared, held)
    assert output_error(fp32, _ort(out, held), NUM_CLASSES) < output_error(fp32, _ort(qdq, held), NUM_CLASSES)
    old, new = load_onnx(qdq), load_onnx(out)
    assert [(n.op_type, list(n.input)) for n in old.graph.node] == [(n.op_type, list(n.input)) for n in new.graph.node]
    a, b = _inits(qdq), _inits(out)
    changed = [k for k in a if not np.array_equal(a[k], b[k])]
    assert changed and all(a[k].dtype == np.int8 for k in changed)  # only int8 weights move ...
    assert all(np.abs(a[k].astype(int) - b[k].astype(int)).max() <= 1 for k in changed)  # ... by one step at most
    assert all(np.abs(b[k]).max() <= (64 if REDUCE else 127) for k in changed)
