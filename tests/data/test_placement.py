"""Resize rules of foreign detectors: where the image lands in the square, and boxes back."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ednas.data.placement import RESIZE_RULES, place, to_image

W, H, S = 200, 100, 64
BOX = (40.0, 20.0, 120.0, 80.0)  # x1y1x2y2 in the image


def _image() -> np.ndarray:
    img = np.zeros((H, W, 3), np.uint8)
    x1, y1, x2, y2 = map(int, BOX)
    img[y1:y2, x1:x2] = 255
    return img


@pytest.mark.parametrize("rule", RESIZE_RULES)
def test_the_placed_rectangle_is_where_the_placement_says(rule):
    out, placement = place(_image(), S, rule, "nearest")
    (kx, ky), (ox, oy), size = placement
    assert out.shape == (S, S, 3) and size == (W, H)
    x1, y1, x2, y2 = BOX
    ys, xs = np.nonzero(out[..., 0] > 127)
    assert xs.min() == pytest.approx(x1 * kx + ox, abs=1.01) and xs.max() + 1 == pytest.approx(x2 * kx + ox, abs=1.01)
    assert ys.min() == pytest.approx(y1 * ky + oy, abs=1.01) and ys.max() + 1 == pytest.approx(y2 * ky + oy, abs=1.01)


@pytest.mark.parametrize("rule", RESIZE_RULES)
def test_boxes_go_back_to_the_image_and_are_clipped(rule):
    _, placement = place(_image(), S, rule)
    (kx, ky), (ox, oy), _ = placement
    box = torch.tensor([BOX])
    forward = box * torch.tensor([kx, ky, kx, ky]) + torch.tensor([ox, oy, ox, oy])
    torch.testing.assert_close(to_image(forward, placement), box)
    outside = torch.tensor([[-50.0, -50.0, 500.0, 500.0]])
    assert to_image(outside, placement).tolist() == [[0.0, 0.0, W, H]]


def test_keep_ratio_rules_centre_or_pad_at_the_top_left():
    img = np.full((H, W, 3), 200, np.uint8)
    centred, p = place(img, S, "keep_ratio_centre", pad=0)
    assert p.scale == (S / W, S / W) and p.offset == (0.0, S / 2 - S / W * H / 2)
    assert (centred[:15] == 0).all() and (centred[17:47] == 200).all() and (centred[49:] == 0).all()
    top_left, p = place(img, S, "keep_ratio_top_left", pad=114)
    assert p.offset == (0.0, 0.0) and (top_left[:32] == 200).all() and (top_left[32:] == 114).all()
    stretched, p = place(img, S, "stretch")
    assert p.scale == (S / W, S / H) and (stretched == 200).all()


def test_an_unknown_rule_lists_the_known_ones():
    with pytest.raises(ValueError, match="stretch, keep_ratio_centre, keep_ratio_top_left"):
        place(_image(), S, "letterbox")
