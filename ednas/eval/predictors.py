"""Predictors: anything that turns a pre-processed batch into the released ONNX output.

The evaluator only needs a Predictor, so ONNX Runtime models (released, exported, quantized)
and PyTorch models (trained, pruned, searched) are scored by exactly the same code.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np

from ednas.errors import InputError, ModelMismatchError
from ednas.onnx_runtime import load_onnx, session, sigmoid_feeds

if TYPE_CHECKING:
    import onnxruntime as ort


class Predictor(ABC):
    """Contract: a detector on square inputs that outputs the released ONNX tensor.

    `input_size`: side S of the square network input, in pixels.
    `__call__(batch)`: batch (N, 3, S, S) float32, normalised BGR (see data/preprocess.py)
    -> (N, A, num_classes + 4 * (reg_max + 1)) float32 numpy: per prior (in the order of
    `models.decode.make_priors`), SIGMOID class scores then the raw logits of the four
    box-side distributions.
    """

    input_size: int

    @abstractmethod
    def __call__(self, batch: np.ndarray) -> np.ndarray: ...


class OnnxPredictor(Predictor):
    """An ONNX model run with ONNX Runtime on the CPU; a fixed batch dimension is handled
    by running the batch in chunks of that size."""

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        path = Path(path)
        self.session = session(path, threads)
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        shape = inputs[0].shape if len(inputs) == 1 else []
        if len(shape) != 4 or shape[1] != 3 or not isinstance(shape[2], int) or shape[2] != shape[3]:
            found = ", ".join(f"{i.name} {i.shape}" for i in inputs)
            raise InputError(
                f"{path}: expected one input of shape [N, 3, S, S] with a fixed S, found {found}"
            )
        if len(outputs) != 1 or len(outputs[0].shape) != 3:
            found = ", ".join(f"{o.name} {o.shape}" for o in outputs)
            raise InputError(f"{path}: expected one output of shape [N, A, C + 4*(reg_max+1)], found {found}")
        if not sigmoid_feeds(load_onnx(path), outputs[0].name):
            raise ModelMismatchError(
                f"{path}: no Sigmoid feeds its output {outputs[0].name!r}, so its class scores are logits, "
                "where ednas models output sigmoid scores; score it with a peer card that says `scores: logits` "
                "(e.g. recipes/peers/nanodet_plus_m_416.yml), or import it: ednas import-onnx"
            )
        self.path = path
        self.input_name = inputs[0].name
        self.input_size: int = shape[2]
        self.fixed_batch: int | None = shape[0] if isinstance(shape[0], int) else None

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        check_batch(batch, self.input_size, f"{self.path} (input {self.input_name!r})")
        return np.concatenate([outs[0] for outs in run_chunks(self.session, self.input_name, batch, self.fixed_batch)])


def run_chunks(sess: "ort.InferenceSession", input_name: str, batch: np.ndarray,
               fixed_batch: int | None) -> Iterator[list[np.ndarray]]:
    """Every output of `sess` for `batch`, chunk by chunk: a model with a fixed batch dimension
    runs chunks of that size (the last one padded with zeros, its padding cut off again)."""
    batch = np.ascontiguousarray(batch, dtype=np.float32)
    step = fixed_batch or len(batch)
    for start in range(0, len(batch), step):
        chunk = batch[start:start + step]
        pad = step - len(chunk)
        if pad:  # the last chunk of a model with a fixed batch > 1
            chunk = np.concatenate([chunk, np.zeros((pad, *chunk.shape[1:]), np.float32)])
        outs = sess.run(None, {input_name: chunk})
        yield [out[: step - pad] for out in outs] if pad else outs


class TorchPredictor(Predictor):
    """A PyTorch detector, whose `inference(x)` returns the released ONNX tensor (see
    `ednas.models.build_model`), or a captured module called as is (the INC backend's PT2E
    graph). Run without gradients on the device its parameters are on; `per_image` runs a
    batch image by image (a module traced for batch 1)."""

    def __init__(self, model: Any, input_size: int | None = None, per_image: bool = False) -> None:
        if input_size is None:
            arch = getattr(model, "arch", None)
            if arch is None:
                raise InputError("TorchPredictor: give input_size (the model has no `arch`)")
            input_size = arch.input_size
        if hasattr(model, "inference"):
            self.model = model.eval()
            self.forward = model.inference
        else:  # a captured graph: no eval(), no inference()
            self.model = self.forward = model
        params = model.parameters() if hasattr(model, "parameters") else iter(())
        first = next(iter(params), None)
        self.device = first.device if first is not None else "cpu"
        self.input_size = int(input_size)
        self.per_image = per_image

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        import torch

        check_batch(batch, self.input_size, type(self.model).__name__)
        x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device)
        with torch.no_grad():
            out = torch.cat([self.forward(x[i:i + 1]) for i in range(len(x))]) if self.per_image else self.forward(x)
        return out.float().cpu().numpy()


def as_predictor(model: Any) -> Predictor:
    """A Predictor as is; a torch detector wrapped in a TorchPredictor."""
    return model if isinstance(model, Predictor) else TorchPredictor(model)


def check_batch(batch: np.ndarray, size: int, what: str) -> None:
    if batch.ndim != 4 or batch.shape[1:] != (3, size, size):
        raise InputError(f"{what}: expected a batch of shape (N, 3, {size}, {size}), got {tuple(batch.shape)}")
