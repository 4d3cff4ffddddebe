"""Dynamic soft label assigner on toy cases."""

import torch

from ednas.models.decode import make_priors
from ednas.train.assigner import DynamicSoftLabelAssigner

PRIORS = make_priors((64, 64), (8, 16, 32, 64))  # (85, 3)


def _inside(priors, box):
    x, y = priors[:, 0], priors[:, 1]
    return (x > box[0]) & (x < box[2]) & (y > box[1]) & (y < box[3])


def test_perfect_predictions_take_topk_positives_inside_the_box():
    gt = torch.tensor([[8.0, 8.0, 40.0, 40.0]])
    boxes = gt.expand(len(PRIORS), 4).clone()  # every prior predicts the gt exactly: IoU 1
    scores = torch.full((len(PRIORS), 3), 0.1)
    a = DynamicSoftLabelAssigner(topk=13).assign(scores, PRIORS, boxes, gt, torch.tensor([2]))
    pos = a.pos
    # 14 priors lie strictly inside (9 at stride 8, 4 at 16, 1 at 32); k = sum of top-13 IoUs = 13
    assert _inside(PRIORS, gt[0]).sum() == 14
    assert len(pos) == 13
    assert _inside(PRIORS[pos], gt[0]).all()
    assert (a.gt_index[pos] == 0).all() and torch.allclose(a.iou[pos], torch.ones(13))
    assert (a.gt_index[_inside(PRIORS, gt[0]).logical_not()] == -1).all()


def test_two_boxes_each_get_their_own_positives():
    gts = torch.tensor([[0.0, 0.0, 30.0, 30.0], [34.0, 34.0, 64.0, 64.0]])
    boxes = torch.tensor([[10.0, 10.0, 20.0, 20.0]]).expand(len(PRIORS), 4).clone()
    right = PRIORS[:, 0] > 32
    boxes[right] = torch.tensor([40.0, 40.0, 60.0, 60.0])
    scores = torch.rand(len(PRIORS), 2, generator=torch.Generator().manual_seed(0))
    a = DynamicSoftLabelAssigner().assign(scores, PRIORS, boxes, gts, torch.tensor([0, 1]))
    for g in range(2):
        mine = (a.gt_index == g).nonzero(as_tuple=True)[0]
        assert len(mine) >= 1
        assert _inside(PRIORS[mine], gts[g]).all()
    assert (a.iou[a.gt_index < 0] == 0).all()


def test_prior_claimed_twice_goes_to_the_cheaper_gt():
    # nested boxes: the inner priors are candidates of both; each keeps exactly one gt
    gts = torch.tensor([[0.0, 0.0, 64.0, 64.0], [4.0, 4.0, 28.0, 28.0]])
    boxes = gts[1].expand(len(PRIORS), 4).clone()
    a = DynamicSoftLabelAssigner().assign(torch.full((len(PRIORS), 1), 0.5), PRIORS, boxes, gts, torch.tensor([0, 0]))
    assert (a.gt_index[a.pos] == 1).any()
    assert a.gt_index.max() <= 1


def test_empty_ground_truth_is_all_background():
    a = DynamicSoftLabelAssigner().assign(
        torch.rand(len(PRIORS), 3), PRIORS, torch.rand(len(PRIORS), 4) * 64,
        torch.zeros(0, 4), torch.zeros(0, dtype=torch.long),
    )
    assert (a.gt_index == -1).all() and len(a.pos) == 0 and (a.iou == 0).all()


def test_box_between_prior_points_gets_no_positive():
    gt = torch.tensor([[1.0, 1.0, 7.0, 7.0]])  # contains no prior point strictly
    a = DynamicSoftLabelAssigner().assign(
        torch.rand(len(PRIORS), 3), PRIORS, torch.rand(len(PRIORS), 4) * 64, gt, torch.tensor([0])
    )
    assert len(a.pos) == 0
