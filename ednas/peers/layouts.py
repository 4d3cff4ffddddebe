"""One decoder per output layout of a foreign detector, in a registry (`LAYOUTS`).

Every decoder turns the network's raw outputs into one tensor, (N, A, C + 4): class
probabilities then the box x1y1x2y2 in network-input pixels, per anchor point. From there
every detector is post-processed alike (`peers.predictor.PeerCodec`: NMS, boxes back to the
image).

Anchor points are row-major per level, levels in card order; the point of cell (x, y) at
stride s is ((x + anchor_offset) * s + anchor_shift, ...) (see `card.OutputCard`).
"""

from __future__ import annotations

import functools
import math
from abc import ABC, abstractmethod

import numpy as np

from ednas.errors import ConfigError
from ednas.peers.card import PeerCard

Shape = tuple[int, int]  # (anchors, channels) of one output, without its batch dimension


class Layout(ABC):
    """Contract: `expected(card)` lists the (anchors, channels) shape of each output, in the order
    `decode` reads them; `ordered` False lets the file list them in any order (matched by shape).
    `score_outputs(card)` gives the indices (into `expected`) of the outputs that carry class
    scores. `decode(outputs, card)`: outputs in `expected` order, each (N, anchors, channels)
    float32 -> (N, A, C + 4) class probabilities and boxes x1y1x2y2 in network-input pixels."""

    ordered: bool = True

    @abstractmethod
    def expected(self, card: PeerCard) -> list[Shape]: ...

    @abstractmethod
    def score_outputs(self, card: PeerCard) -> list[int]: ...

    @abstractmethod
    def decode(self, outputs: list[np.ndarray], card: PeerCard) -> np.ndarray: ...


def level_sizes(card: PeerCard) -> list[int]:
    """Anchor points per level: stride-2 convs with padding round the feature map up."""
    return [math.ceil(card.input.size / s) ** 2 for s in card.output.strides]


def anchor_points(card: PeerCard) -> np.ndarray:
    """(A, 3) float32: x, y, stride of every anchor point, levels in card order."""
    out = card.output
    return _anchor_points(card.input.size, out.strides, out.anchor_offset, out.anchor_shift)


@functools.lru_cache(maxsize=16)
def _anchor_points(size: int, strides: tuple[int, ...], offset: float, shift: float) -> np.ndarray:
    """Cached: every batch needs them (callers only read them)."""
    rows = []
    for s in strides:
        n = math.ceil(size / s)
        ys, xs = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")  # (n, n) cells, row-major
        xy = (np.stack([xs.ravel(), ys.ravel()], 1) + offset) * s + shift
        rows.append(np.concatenate([xy, np.full((n * n, 1), float(s))], 1))
    return np.concatenate(rows).astype(np.float32)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-x))).astype(np.float32)


def distribution_boxes(dist: np.ndarray, points: np.ndarray, reg_max: int) -> np.ndarray:
    """(N, A, 4 * (reg_max + 1)) side-distribution logits -> (N, A, 4) boxes x1y1x2y2: each side's
    distance is the expectation of its softmax over bins 0..reg_max, times the stride."""
    logits = dist.reshape(*dist.shape[:-1], 4, reg_max + 1)
    logits = logits - logits.max(-1, keepdims=True)
    probs = np.exp(logits)
    probs /= probs.sum(-1, keepdims=True)
    sides = probs @ np.arange(reg_max + 1, dtype=np.float32) * points[:, 2:3]  # (N, A, 4) pixels
    x, y = points[:, 0], points[:, 1]
    return np.stack([x - sides[..., 0], y - sides[..., 1], x + sides[..., 2], y + sides[..., 3]], -1)


class _PerLevel(Layout):
    """Per level, a class-score output (A_l, C) and a side-distribution output (A_l, 4 (R+1))."""

    def expected(self, card: PeerCard) -> list[Shape]:
        bins = 4 * (card.output.reg_max + 1)
        sizes = level_sizes(card)
        return [(a, card.num_classes) for a in sizes] + [(a, bins) for a in sizes]

    def score_outputs(self, card: PeerCard) -> list[int]:
        return list(range(len(card.output.strides)))

    def decode(self, outputs: list[np.ndarray], card: PeerCard) -> np.ndarray:
        levels = len(card.output.strides)
        scores = np.concatenate(outputs[:levels], axis=1)
        if card.output.scores == "logits":
            scores = sigmoid(scores)
        boxes = distribution_boxes(np.concatenate(outputs[levels:], axis=1), anchor_points(card),
                                   card.output.reg_max)
        return np.concatenate([scores, boxes], -1).astype(np.float32)


class NanoDetLayout(_PerLevel):
    """NanoDet (2020): per level class scores and box-side distributions, in whatever order the
    file lists them (the released files differ, and their output names are not reliable):
    matched by shape."""

    ordered = False


class PicoDetLayout(_PerLevel):
    """PP-PicoDet: the class scores of every level, then the side distributions of every level."""


class NanoDetPlusLayout(Layout):
    """NanoDet-Plus: one output (A, C + 4 (R+1)), class scores then side distributions."""

    def expected(self, card: PeerCard) -> list[Shape]:
        return [(sum(level_sizes(card)), card.num_classes + 4 * (card.output.reg_max + 1))]

    def score_outputs(self, card: PeerCard) -> list[int]:
        return [0]

    def decode(self, outputs: list[np.ndarray], card: PeerCard) -> np.ndarray:
        out = outputs[0]
        scores = out[..., :card.num_classes]
        if card.output.scores == "logits":
            scores = sigmoid(scores)
        boxes = distribution_boxes(out[..., card.num_classes:], anchor_points(card), card.output.reg_max)
        return np.concatenate([scores, boxes], -1).astype(np.float32)


class YoloxLayout(Layout):
    """YOLOX: one output (A, 5 + C): centre offsets (dx, dy) in cells, log width and height in
    strides, objectness, class scores; score = objectness x class."""

    def expected(self, card: PeerCard) -> list[Shape]:
        return [(sum(level_sizes(card)), 5 + card.num_classes)]

    def score_outputs(self, card: PeerCard) -> list[int]:
        return [0]

    def decode(self, outputs: list[np.ndarray], card: PeerCard) -> np.ndarray:
        out = outputs[0]
        points = anchor_points(card)
        stride = points[:, 2:3]
        centre = points[:, :2] + out[..., 0:2] * stride  # (N, A, 2)
        half = np.exp(out[..., 2:4]) * stride / 2
        objectness, classes = out[..., 4:5], out[..., 5:]
        if card.output.scores == "logits":
            objectness, classes = sigmoid(objectness), sigmoid(classes)
        boxes = np.concatenate([centre - half, centre + half], -1)
        return np.concatenate([objectness * classes, boxes], -1).astype(np.float32)


LAYOUTS: dict[str, Layout] = {
    "nanodet": NanoDetLayout(),
    "nanodet_plus": NanoDetPlusLayout(),
    "picodet": PicoDetLayout(),
    "yolox": YoloxLayout(),
}


def get_layout(name: str, where: str = "output.layout") -> Layout:
    """The registered layout `name`; an unknown name lists the known ones."""
    if name not in LAYOUTS:
        raise ConfigError(f"{where}: {name!r} is not a known layout; known layouts are: {', '.join(LAYOUTS)}")
    return LAYOUTS[name]
