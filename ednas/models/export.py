"""ONNX export with the released model's contract.

One input `data` (1, 3, S, S) (normalised BGR), one output `output`
(1, A, num_classes + 4*(reg_max+1)) = sigmoid class scores || distribution logits.
BatchNorm is folded first; the graph is then simplified with onnxslim.
"""

from __future__ import annotations

import copy
import logging
import warnings
from pathlib import Path

import torch
from torch import nn

from ednas.io import atomic_path
from ednas.models.detector import Detector

log = logging.getLogger(__name__)

INPUT_NAME = "data"
OUTPUT_NAME = "output"
MAX_OPSET = 20  # newest opset torch's TorchScript exporter writes


class DeployModule(nn.Module):
    """`model.inference` as `forward`: the module every exporter traces (released tensor out)."""

    def __init__(self, model: Detector) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.inference(x)


def export_onnx(
    model: Detector, path: str | Path, input_size: int | None = None, opset: int = 13,
    simplify: bool = True, fuse: bool = True,
) -> Path:
    """Write `model` as ONNX to `path` (atomically) and return the path."""
    path = Path(path)
    size = input_size or model.arch.input_size
    deploy = copy.deepcopy(model).cpu()
    deploy = deploy.fuse() if fuse else deploy.eval()
    with atomic_path(path) as tmp_path:
        tmp = str(tmp_path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                DeployModule(deploy), (torch.zeros(1, 3, size, size),), tmp,
                input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                opset_version=opset, dynamo=False, do_constant_folding=True,
            )
        if simplify:
            import onnx
            import onnxslim

            onnx.save(onnxslim.slim(onnx.load(tmp)), tmp)  # no output path: slim quietly
    log.debug("wrote %s (%d px, opset %d)", path, size, opset)
    return path
