import pytest
import torch

from ednas.arch import NeckArch
from ednas.models.ghost_pan import NECK_BLOCKS, GhostPAN


@pytest.mark.parametrize("kind", ["normal", "plus"])
def test_block_shapes_and_gradients(kind):
    block = NECK_BLOCKS[kind](32, 16, 5, "leaky_relu")
    x = torch.randn(2, 32, 12, 10, requires_grad=True)
    y = block(x)
    assert y.shape == (2, 16, 12, 10)
    y.square().mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is not None for p in block.parameters())


def test_ghost2former_is_a_product_of_two_branches():
    block = NECK_BLOCKS["plus"](8, 8, 5, "leaky_relu").eval()
    with torch.no_grad():
        block.shortcut1.weight.zero_()  # r = 0 -> output is the BN shift only
    y = block(torch.randn(1, 8, 6, 6))
    bn = block.proj.bn
    shift = bn.bias - bn.running_mean * bn.weight / torch.sqrt(bn.running_var + bn.eps)
    torch.testing.assert_close(y, shift.reshape(1, -1, 1, 1).expand_as(y))


@pytest.mark.parametrize("types", [("plus",) * 4, ("normal",) * 4, ("plus", "normal", "normal", "plus")])
def test_pan_levels(types):
    pan = GhostPAN((24, 48, 96), NeckArch(width=32, block_types=types), "leaky_relu")
    outs = pan([torch.randn(1, 24, 16, 16), torch.randn(1, 48, 8, 8), torch.randn(1, 96, 4, 4)])
    assert [tuple(o.shape) for o in outs] == [(1, 32, 16, 16), (1, 32, 8, 8), (1, 32, 4, 4), (1, 32, 2, 2)]
