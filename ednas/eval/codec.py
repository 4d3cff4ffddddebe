"""Codecs: how a detector reads an image and how its output becomes detections.

A Predictor only runs a network; its Codec says what to feed it and what its output means.
The evaluator and `ednas infer` go through a Codec, so ednas models (`NanoDetCodec`: the
recipe's pre-processing and the NanoDet-Plus head's output) and detectors of other projects
(`ednas.peers`: described by a card) are scored by the same loop, the same NMS and the same
COCO evaluation.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from ednas.data.preprocess import MEAN_BGR, STD_BGR, Scale, normalize, resize
from ednas.errors import ModelMismatchError
from ednas.models.decode import Detections, make_priors, postprocess


class Codec(ABC):
    """Contract: `encode(img)` takes a (H, W, 3) BGR uint8 image to ((3, S, S) float32 network
    input, placement), where S is `input_size`; `decode(output, placements)` takes the
    Predictor's output for a batch (N, ...) and each image's placement to N Detections in
    original-image pixels (score > 0.05, class-wise NMS at IoU 0.6, at most 100 per image).
    `class_names`: the names of its labels, or None where a recipe gives them."""

    input_size: int
    num_classes: int
    class_names: tuple[str, ...] | None = None

    @abstractmethod
    def encode(self, img: np.ndarray) -> tuple[np.ndarray, Any]: ...

    @abstractmethod
    def decode(self, output: np.ndarray, placements: Sequence[Any]) -> list[Detections]: ...


class NanoDetCodec(Codec):
    """ednas models: a recipe's pre-processing (data/preprocess.py) and the released output
    (N, A, C + 4 * (reg_max + 1)) decoded by `decode_output`."""

    def __init__(self, input_size: int, num_classes: int, strides: Sequence[int] = (8, 16, 32, 64),
                 reg_max: int = 7, keep_ratio: bool = False, mean: Sequence[float] = MEAN_BGR,
                 std: Sequence[float] = STD_BGR) -> None:
        self.input_size, self.num_classes = input_size, num_classes
        self.strides, self.reg_max = tuple(strides), reg_max
        self.keep_ratio, self.mean, self.std = keep_ratio, tuple(mean), tuple(std)

    def encode(self, img: np.ndarray) -> tuple[np.ndarray, Any]:
        resized, scale = resize(img, self.input_size, self.keep_ratio)
        return normalize(resized, self.mean, self.std), scale

    def decode(self, output: np.ndarray, placements: Sequence[Any]) -> list[Detections]:
        return decode_output(output, self.input_size, self.strides, self.num_classes, self.reg_max, placements)


def decode_output(
    output: np.ndarray, input_size: int, strides: Sequence[int], num_classes: int, reg_max: int,
    scales: Sequence[Scale],
) -> list[Detections]:
    """Predictor output -> detections per image in original-image pixels (shape-checked)."""
    channels = num_classes + 4 * (reg_max + 1)
    priors = len(make_priors((input_size, input_size), strides))
    if output.ndim != 3 or output.shape[1:] != (priors, channels):
        raise ModelMismatchError(
            f"model output {tuple(output.shape)} does not fit {num_classes} classes, reg_max {reg_max} "
            f"and strides {tuple(strides)} at input {input_size} (expected (N, {priors}, {channels})); "
            "check the recipe"
        )
    check_scores(output[..., :num_classes])
    with torch_threads(1):
        return postprocess(
            torch.from_numpy(output), (input_size, input_size), strides, num_classes, reg_max, scales
        )


def check_scores(scores: np.ndarray, tolerance: float = 1e-2) -> None:
    """Refuse class scores outside [0, 1]: logits read as probabilities would be scored without
    a word (NanoDet-Plus-m's ncnn rebuild outputs logits: 24.4 mAP on unseen images, not 37.3)."""
    if scores.size == 0:
        return
    low, high = float(scores.min()), float(scores.max())
    if low < -tolerance or high > 1 + tolerance:
        raise ModelMismatchError(
            f"the model's class scores run from {low:.2f} to {high:.2f}, outside [0, 1]: it outputs logits "
            "where ednas models output sigmoid scores; score it with a peer card that says `scores: logits` "
            "(e.g. recipes/peers/nanodet_plus_m_416.yml)"
        )


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run torch with `n` intra-op threads, restoring the previous count. Small-tensor work
    (decoding, NMS) runs on 1: with more, each tiny op pays thread hand-off, which on a busy
    CPU made NMS 20x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
