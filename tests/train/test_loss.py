"""The NanoDet-Plus head loss on plain tensors (no model)."""

import pytest
import torch

from ednas.models.decode import bbox2distance, make_priors
from ednas.recipe import TrainConfig
from ednas.train.loss import NanoDetPlusLoss

STRIDES = (8, 16, 32, 64)
C, R = 3, 7
A = len(make_priors((64, 64), STRIDES))  # 85


def _loss() -> NanoDetPlusLoss:
    return NanoDetPlusLoss(C, R, STRIDES, TrainConfig())


def _gts():
    return [torch.tensor([[8.0, 8.0, 40.0, 40.0]]), torch.zeros(0, 4)], [torch.tensor([1]), torch.zeros(0, dtype=torch.long)]


def test_parts_and_gradients():
    out = torch.randn(2, A, C + 4 * (R + 1), requires_grad=True)
    aux = torch.randn(2, A, C + 4 * (R + 1), requires_grad=True)
    boxes, labels = _gts()
    total, parts = _loss()(out, boxes, labels, (64, 64), aux)
    assert set(parts) == {"qfl", "giou", "dfl", "aux_qfl", "aux_giou", "aux_dfl"}
    assert torch.isfinite(total) and total.item() == pytest.approx(sum(v.item() for v in parts.values()), rel=1e-5)
    total.backward()
    assert out.grad.abs().sum() > 0 and aux.grad.abs().sum() > 0


def test_no_ground_truth_only_classification_loss():
    out = torch.zeros(1, A, C + 4 * (R + 1), requires_grad=True)
    total, parts = _loss()(out, [torch.zeros(0, 4)], [torch.zeros(0, dtype=torch.long)], (64, 64))
    assert parts["giou"] == 0 and parts["dfl"] == 0
    # QFL of zero logits on background only: A * C * ln2/4, divided by max(num_pos, 1) = 1
    assert parts["qfl"].item() == pytest.approx(A * C * 0.6931472 / 4, rel=1e-5)
    total.backward()
    assert out.grad is not None


def test_assignment_follows_the_aux_head():
    loss = _loss()
    seen = []
    assign = loss.assigner.assign
    loss.assigner.assign = lambda scores, priors, boxes, gb, gl: seen.append(boxes) or assign(scores, priors, boxes, gb, gl)
    out, aux = torch.zeros(1, A, C + 4 * (R + 1)), torch.randn(1, A, C + 4 * (R + 1))
    loss(out, [torch.tensor([[8.0, 8.0, 40.0, 40.0]])], [torch.tensor([0])], (64, 64), aux)
    priors = make_priors((64, 64), STRIDES)
    assert torch.allclose(seen[0], loss.decode(aux, priors)[0])
    loss(out, [torch.tensor([[8.0, 8.0, 40.0, 40.0]])], [torch.tensor([0])], (64, 64))
    assert torch.allclose(seen[1], loss.decode(out, priors)[0])


def test_perfect_regression_has_small_box_losses():
    priors = make_priors((64, 64), STRIDES)
    gt = torch.tensor([[8.0, 8.0, 40.0, 40.0]])
    target = bbox2distance(priors[:, :2], gt.expand(A, 4)) / priors[:, 2:3]  # (A, 4) in bins
    target = target.clamp(0, R - 0.01)
    # a sharp distribution on the nearest bin of each side, confident class score
    bins = torch.nn.functional.one_hot(target.round().long(), R + 1).float() * 20  # (A, 4, R+1)
    out = torch.cat([torch.full((A, C), -4.0), bins.reshape(A, -1)], 1)[None]
    out[0, :, 0] = 4.0
    _, parts = _loss()(out, [gt], [torch.tensor([0])], (64, 64))
    assert parts["giou"] < 0.1 * 2.0
