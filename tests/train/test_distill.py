import torch

from ednas.train.distill import DistillLoss


def test_student_equal_to_teacher_costs_nothing():
    out = torch.randn(2, 50, 3 + 32)
    loss, parts = DistillLoss(3, 7)(out, out.clone())
    assert loss.abs() < 1e-6 and set(parts) == {"kd_cls", "kd_reg"}


def test_disagreement_costs_and_pulls_towards_teacher():
    torch.manual_seed(0)
    teacher = torch.randn(1, 40, 2 + 32) * 3
    student = torch.randn(1, 40, 2 + 32, requires_grad=True)
    loss_fn = DistillLoss(2, 7)
    first, _ = loss_fn(student, teacher)
    assert first > 0
    opt = torch.optim.Adam([student], lr=0.1)
    for _ in range(200):
        opt.zero_grad()
        loss_fn(student, teacher)[0].backward()
        opt.step()
    assert loss_fn(student, teacher)[0] < 0.3 * first
