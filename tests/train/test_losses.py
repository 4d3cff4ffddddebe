"""QFL, DFL and GIoU against values computed by hand."""

import math

import pytest
import torch

from ednas.train.losses import distribution_focal_loss, giou_loss, quality_focal_loss


def test_qfl_zero_logits_perfect_quality():
    # class 1 (background): softplus(0) * sigmoid(0)^2 = ln2 / 4; class 0: |0.5 - 0.5|^2 = 0
    loss = quality_focal_loss(torch.zeros(1, 2), torch.tensor([0]), torch.tensor([0.5]))
    assert loss.item() == pytest.approx(math.log(2) / 4, rel=1e-6)


def test_qfl_by_hand():
    # class 0 background: softplus(2) * sigmoid(2)^2 = 1.650078
    # class 1 positive, target 0.8: BCE(-1, 0.8) * |0.8 - sigmoid(-1)|^2 = 0.313966
    loss = quality_focal_loss(torch.tensor([[2.0, -1.0]]), torch.tensor([1]), torch.tensor([0.8]))
    assert loss.item() == pytest.approx(1.964044, abs=1e-5)


def test_qfl_background_row_and_beta():
    logits = torch.tensor([[0.0, 0.0]])
    bg = quality_focal_loss(logits, torch.tensor([2]), torch.tensor([0.0]), beta=1.0)  # 2 = background
    assert bg.item() == pytest.approx(2 * math.log(2) * 0.5, rel=1e-6)


def test_qfl_gradient_flows():
    logits = torch.zeros(3, 4, requires_grad=True)
    quality_focal_loss(logits, torch.tensor([0, 4, 2]), torch.tensor([0.9, 0.0, 0.3])).sum().backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_dfl_by_hand():
    # bins logits [0, 1, 2], target 0.25 -> 0.75 * CE(bin 0) + 0.25 * CE(bin 1)
    loss = distribution_focal_loss(torch.tensor([[0.0, 1.0, 2.0]]), torch.tensor([0.25]))
    lse = math.log(1 + math.e + math.e**2)
    assert loss.item() == pytest.approx(0.75 * lse + 0.25 * (lse - 1), rel=1e-6)


def test_dfl_uniform_is_log_bins():
    loss = distribution_focal_loss(torch.zeros(2, 8), torch.tensor([2.3, 6.9]))
    assert torch.allclose(loss, torch.full((2,), math.log(8)))


@pytest.mark.parametrize(
    "pred, target, expected",
    [
        ((0, 0, 2, 2), (1, 1, 3, 3), 1 - (1 / 7 - 2 / 9)),  # IoU 1/7, enclosing 9, union 7
        ((0, 0, 2, 2), (0, 0, 2, 2), 0.0),
        ((0, 0, 1, 1), (2, 0, 3, 1), 1 + 1 / 3),  # disjoint: IoU 0, enclosing 3, union 2
    ],
)
def test_giou_by_hand(pred, target, expected):
    loss = giou_loss(torch.tensor([pred], dtype=torch.float), torch.tensor([target], dtype=torch.float))
    assert loss.item() == pytest.approx(expected, abs=1e-6)
