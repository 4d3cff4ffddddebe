"""The decoders, one per layout, on outputs whose boxes are known; the registry."""

from __future__ import annotations

import numpy as np
import pytest

from ednas.peers.layouts import LAYOUTS, anchor_points, get_layout
from ednas.peers.loader import parse_card

from tiny_peers import card_data

REG_MAX = 7


def _card(layout: str, strides=(8, 16, 32), scores: str = "probabilities", **output):
    return parse_card(card_data(layout, strides, scores, **output), "card.yml")


def _one_hot_sides(sides: list[int]) -> np.ndarray:
    """(4 * (REG_MAX + 1),) distribution logits whose expectations are exactly `sides` (in bins)."""
    logits = np.full((4, REG_MAX + 1), -50.0, np.float32)
    logits[np.arange(4), sides] = 50.0
    return logits.ravel()


@pytest.mark.parametrize("offset, shift, first", [(0.0, 0.0, 0.0), (0.5, 0.0, 4.0), (0.5, -0.5, 3.5)])
def test_anchor_points_follow_the_card(offset, shift, first):
    card = _card("nanodet_plus", anchor_offset=offset, anchor_shift=shift)
    points = anchor_points(card)
    assert points.shape == (8 * 8 + 4 * 4 + 2 * 2, 3)
    assert points[0].tolist() == [first, first, 8.0]
    assert points[1].tolist() == [first + 8, first, 8.0]  # row-major
    level2 = offset * 16 + shift
    assert points[64].tolist() == [level2, level2, 16.0]


def test_nanodet_plus_decodes_distributions_and_applies_the_sigmoid_to_logits():
    card = _card("nanodet_plus", scores="logits")
    a = len(anchor_points(card))
    out = np.zeros((1, a, 3 + 32), np.float32)
    out[0, :, 3:] = _one_hot_sides([1, 2, 3, 4])
    out[0, 9, :3] = [0.0, 10.0, -10.0]  # anchor 9: (8, 8) at stride 8
    decoded = get_layout("nanodet_plus").decode([out], card)
    assert decoded.shape == (1, a, 3 + 4)
    np.testing.assert_allclose(decoded[0, 9, :3], [0.5, 1 / (1 + np.exp(-10)), 1 / (1 + np.exp(10))], rtol=1e-5)
    np.testing.assert_allclose(decoded[0, 9, 3:], [8 - 8, 8 - 16, 8 + 24, 8 + 32], atol=1e-4)


def test_picodet_reads_all_scores_then_all_distributions():
    card = _card("picodet", anchor_offset=0.5)
    sizes = [64, 16, 4]
    scores = [np.full((1, n, 3), 0.1 * (k + 1), np.float32) for k, n in enumerate(sizes)]
    dists = [np.tile(_one_hot_sides([1, 1, 1, 1]), (1, n, 1)) for n in sizes]
    decoded = get_layout("picodet").decode(scores + dists, card)[0]
    np.testing.assert_allclose(decoded[[0, 64, 80], 0], [0.1, 0.2, 0.3], rtol=1e-6)
    np.testing.assert_allclose(decoded[64, 3:], [8 - 16, 8 - 16, 8 + 16, 8 + 16], atol=1e-4)  # point (0.5*16, 0.5*16)


def test_yolox_decodes_centres_exp_sizes_and_objectness_times_class():
    card = _card("yolox")
    out = np.zeros((1, len(anchor_points(card)), 5 + 3), np.float32)
    out[0, 65] = [0.5, 0.25, np.log(2.0), 0.0, 0.8, 0.5, 1.0, 0.0]  # anchor 65: cell (1, 0) at stride 16
    decoded = get_layout("yolox").decode([out], card)[0, 65]
    cx, cy, w, h = (1 + 0.5) * 16, (0 + 0.25) * 16, 2 * 16, 1 * 16
    np.testing.assert_allclose(decoded, [0.4, 0.8, 0.0, cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], rtol=1e-5)


def test_expected_shapes_follow_layout_strides_classes_and_size():
    card = _card("nanodet")
    assert get_layout("nanodet").expected(card) == [(64, 3), (16, 3), (4, 3), (64, 32), (16, 32), (4, 32)]
    assert not get_layout("nanodet").ordered and get_layout("picodet").ordered
    assert get_layout("yolox").expected(card) == [(84, 8)]
    assert get_layout("nanodet_plus").expected(card) == [(84, 35)]


def test_the_registry_holds_one_decoder_per_layout():
    assert sorted(LAYOUTS) == ["nanodet", "nanodet_plus", "picodet", "yolox"]
