"""A foreign detector's ONNX file run as its card says: `PeerPredictor` (the network and its
layout's decoder) and `PeerCodec` (its pre-processing, then the evaluator's NMS and boxes
back to the image).

The file is checked against the card when the predictor is made, before any image is read:
one input of the card's size, outputs of the shapes the layout expects, and class outputs
that are probabilities or logits as the card says (a Sigmoid feeding them, or none).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ednas.data.placement import Placement, place, to_image
from ednas.data.preprocess import normalize
from ednas.errors import InputError, ModelMismatchError
from ednas.eval.codec import Codec, torch_threads
from ednas.eval.predictors import Predictor, check_batch, run_chunks
from ednas.models.decode import Detections, multiclass_nms
from ednas.onnx_runtime import load_onnx, session, sigmoid_feeds
from ednas.peers.card import PeerCard
from ednas.peers.layouts import Layout, Shape, get_layout

log = logging.getLogger(__name__)

SCORE_THR, IOU_THR, MAX_DET = 0.05, 0.6, 100  # the evaluator's, as for ednas models (models/decode.py)


class PeerCodec(Codec):
    """A card's pre-processing; detections from the layout-decoded (N, A, C + 4) tensor."""

    def __init__(self, card: PeerCard) -> None:
        self.card = card
        self.input_size, self.num_classes = card.input.size, card.num_classes
        self.class_names = tuple(card.class_names)

    def encode(self, img: np.ndarray) -> tuple[np.ndarray, Placement]:
        spec = self.card.input
        placed, placement = place(img, spec.size, spec.resize, spec.interpolation, spec.pad)
        if spec.colour == "rgb":
            placed = placed[..., ::-1]  # images are read as BGR
        return normalize(placed, spec.mean, spec.std), placement

    def decode(self, output: np.ndarray, placements: Sequence[Any]) -> list[Detections]:
        c = self.num_classes
        if output.ndim != 3 or output.shape[2] != c + 4:
            raise ModelMismatchError(f"{self.card.name}: decoded output {tuple(output.shape)} is not (N, A, {c + 4})")
        results = []
        with torch_threads(1):
            for out, placement in zip(torch.from_numpy(output), placements):
                det = multiclass_nms(out[:, c:], out[:, :c], SCORE_THR, IOU_THR, MAX_DET)
                results.append(Detections(to_image(det.boxes, placement), det.scores, det.labels))
        return results


class PeerPredictor(Predictor):
    """A peer's ONNX file on ONNX Runtime (CPU): a batch (N, 3, S, S) as the codec encodes it
    -> (N, A, C + 4) class probabilities and boxes x1y1x2y2 in network-input pixels."""

    def __init__(self, card: PeerCard, path: str | Path, threads: int | None = None) -> None:
        path = Path(path)
        self.card, self.path = card, path
        self.layout: Layout = get_layout(card.output.layout)
        self.session = session(path, threads)
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        self.input_name, self.fixed_batch = _check_input(inputs, card, path)
        found = [(o.name, o.shape) for o in outputs]
        self.order = match_outputs(found, self.layout.expected(card), self.layout.ordered, card, path)
        _check_scores(load_onnx(path), [found[self.order[i]][0] for i in self.layout.score_outputs(card)],
                      card, path)
        self.input_size: int = card.input.size
        self.codec = PeerCodec(card)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        check_batch(batch, self.input_size, f"{self.path} (input {self.input_name!r})")
        expected = self.layout.expected(self.card)
        decoded = []
        for outs in run_chunks(self.session, self.input_name, batch, self.fixed_batch):
            picked = [outs[i] if outs[i].ndim == 3 else outs[i][None] for i in self.order]  # (n, A, K)
            for out, shape in zip(picked, expected):
                if out.shape[1:] != shape:
                    raise ModelMismatchError(f"{self.path}: an output is {out.shape[1:]}, the card expects {shape}")
            decoded.append(self.layout.decode([o.astype(np.float32) for o in picked], self.card))
        return np.concatenate(decoded)


def _check_input(inputs: Sequence[Any], card: PeerCard, path: Path) -> tuple[str, int | None]:
    """(input name, fixed batch size or None) of a model with one [N, 3, S, S] input, S the card's."""
    shape = inputs[0].shape if len(inputs) == 1 else []
    size = card.input.size
    if len(shape) != 4 or shape[1] != 3 or [d for d in shape[2:] if isinstance(d, int) and d != size]:
        found = ", ".join(f"{i.name} {i.shape}" for i in inputs)
        raise InputError(f"{path}: expected one input of shape [N, 3, {size}, {size}] (the card's input.size), "
                         f"found {found}")
    return inputs[0].name, shape[0] if isinstance(shape[0], int) else None


def match_outputs(found: Sequence[tuple[str, Sequence[Any]]], expected: Sequence[Shape], ordered: bool,
                  card: PeerCard, path: Path) -> list[int]:
    """Index into `found` of the output read as each `expected` shape: position by position, or
    (`ordered` False) the first unused output of that shape. An output is [A, K] or [N, A, K];
    a named (symbolic) dimension matches any size. Refused in one line when they do not fit."""
    def fits(shape: Sequence[Any], want: Shape) -> bool:
        dims = list(shape)[-2:] if len(shape) in (2, 3) else []
        return len(dims) == 2 and all(not isinstance(d, int) or d == w for d, w in zip(dims, want))

    order: list[int] = []
    if len(found) == len(expected):
        for k, want in enumerate(expected):
            candidates = [k] if ordered else [i for i in range(len(found)) if i not in order]
            match = next((i for i in candidates if fits(found[i][1], want)), None)
            if match is None:
                break
            order.append(match)
    if len(order) != len(expected):
        listed = ", ".join(str(list(shape)) for _, shape in found)
        out = card.output
        raise ModelMismatchError(
            f"{path}: the card's {out.layout} layout ({card.num_classes} classes, strides {list(out.strides)}, "
            f"input {card.input.size}) expects outputs {', '.join(str(list(s)) for s in expected)}"
            f"{'' if ordered else ' (any order)'}, the file has {listed}; check the card's output section"
        )
    return order


def _check_scores(proto: Any, names: Sequence[str], card: PeerCard, path: Path) -> None:
    """Refuse a card whose `scores` (probabilities or logits) the graph contradicts."""
    fed = [sigmoid_feeds(proto, n) for n in names]
    if card.output.scores == "probabilities" and not all(fed):
        name = names[fed.index(False)]
        raise ModelMismatchError(f"{path}: no Sigmoid feeds its class output {name!r}, so its scores are logits, "
                                 "but the card says `scores: probabilities`; set `output.scores: logits`")
    if card.output.scores == "logits" and any(fed):
        name = names[fed.index(True)]
        raise ModelMismatchError(f"{path}: a Sigmoid feeds its class output {name!r}, so its scores are "
                                 "probabilities, but the card says `scores: logits`; set `output.scores: probabilities`")
    log.debug("%s: class outputs are %s, as the card says", path, card.output.scores)
