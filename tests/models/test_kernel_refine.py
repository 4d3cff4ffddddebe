import torch
import torch.nn.functional as F

from ednas.models.kernel_refine import KernelRefineConv


def _randomise(kr: KernelRefineConv) -> None:
    with torch.no_grad():
        kr.gate_bn.weight.fill_(1.7)
        kr.gate_bn.bias.fill_(-0.3)
        kr.gate_bn.running_mean.fill_(0.2)
        kr.gate_bn.running_var.fill_(2.5)


def test_kr_equals_its_formula():
    torch.manual_seed(0)
    kr = KernelRefineConv(8, 3).eval()
    _randomise(kr)
    x = torch.randn(2, 8, 11, 13)
    w = kr.conv.weight  # (C, 1, 3, 3)
    y = F.conv2d(x, w, padding=1, groups=8)
    g = (x * w.sum(dim=(2, 3)).reshape(1, 8, 1, 1)).sum(1, keepdim=True)  # (N, 1, H, W)
    bn = kr.gate_bn
    g = (g - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * bn.weight + bn.bias
    expected = torch.sigmoid(g) * y
    torch.testing.assert_close(kr(x), expected, rtol=1e-5, atol=1e-6)


def test_kr_adds_two_parameters_and_fuses_exactly():
    kr = KernelRefineConv(16, 3).eval()
    _randomise(kr)
    assert sum(p.numel() for p in kr.parameters()) == 16 * 9 + 2
    x = torch.randn(1, 16, 9, 9)
    before = kr(x)
    kr.fuse()
    torch.testing.assert_close(kr(x), before, rtol=1e-5, atol=1e-6)


def test_kr_gradients_reach_kernel_through_gate():
    kr = KernelRefineConv(4, 3).train()
    kr(torch.randn(2, 4, 6, 6)).sum().backward()
    assert kr.conv.weight.grad is not None and kr.conv.weight.grad.abs().sum() > 0
    assert kr.gate_bn.weight.grad is not None
