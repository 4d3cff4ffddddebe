"""Re-estimating BatchNorms folded into deploy weights keeps eval outputs and fixes training."""

import copy

import torch
from torch import nn

from conftest import tiny_arch
from ednas.models import build_model
from ednas.models.layers import set_bn_affine
from ednas.train.bn_unfold import folded_batchnorms, unfold_batchnorms


def _as_imported(model: nn.Module) -> nn.Module:
    """Every BN an exact affine `x * w + b` in eval mode, as `import-onnx` leaves folded BNs."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                set_bn_affine(m, 0.5 + torch.rand(n, generator=g), torch.randn(n, generator=g) * 0.1)
    return model


def test_unfold_keeps_eval_and_matches_train_mode():
    model = _as_imported(build_model(tiny_arch(), aux=True)).eval()
    x = torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        before = model(x)
    count = len(folded_batchnorms(model))
    assert count > 0
    assert unfold_batchnorms(model, [x]) == count
    assert folded_batchnorms(model) == []
    with torch.no_grad():
        assert torch.allclose(model(x), before, atol=1e-4)
        # train mode normalises with the statistics of `x` itself: now the same function
        train_out = copy.deepcopy(model).train()(x)
    assert torch.allclose(train_out, before, atol=1e-3)


def test_model_without_folded_bns_is_untouched():
    model = build_model(tiny_arch())
    model(torch.randn(2, 3, 64, 64))  # one train-mode pass: real running statistics
    assert unfold_batchnorms(model.eval(), [torch.randn(2, 3, 64, 64)]) == 0
