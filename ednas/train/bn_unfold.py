"""Give BatchNorms that were folded away (weights imported from a deploy ONNX) real statistics.

An imported conv carries the folded BN in its weights and is followed by an identity BN
(running mean 0, variance 1 or 1 - eps: an exact `x * w + b` in eval mode). In eval mode that is exact, but training normalises with batch
statistics, so the first training step would turn every such layer into a different function
and wreck the pretrained detector. Here the input statistics (mean m, variance v) of each
identity BN are measured on real images, and the BN is rewritten so that its eval output is
unchanged while its running statistics (and therefore its train-mode behaviour) match the data:

    y = w * x / sqrt(r + eps) + b  ==  w' * (x - m) / sqrt(v + eps) + b'
    with w' = w * sqrt(v + eps) / sqrt(r + eps),   b' = b + w * m / sqrt(r + eps)

(r: the identity running variance, 1 or 1 - eps).
"""

from __future__ import annotations

import logging
from typing import Iterable

import torch
from torch import nn

log = logging.getLogger(__name__)


def folded_batchnorms(model: nn.Module) -> list[nn.BatchNorm2d]:
    """BNs still at their identity statistics, i.e. folded into the conv before them."""
    return [
        m for m in model.modules()
        if isinstance(m, nn.BatchNorm2d) and m.track_running_stats and m.affine
        and torch.all(m.running_mean == 0)
        and (torch.all(m.running_var == 1) or torch.all(m.running_var == 1 - m.eps))
    ]


@torch.no_grad()
def unfold_batchnorms(model: nn.Module, images: Iterable[torch.Tensor]) -> int:
    """Re-estimate the folded BNs of `model` on `images` (batches (N, 3, S, S) on the model's
    device); returns how many BNs were rewritten. Eval outputs are unchanged."""
    bns = folded_batchnorms(model)
    if not bns:
        return 0
    sums: dict[nn.Module, list[torch.Tensor]] = {bn: [] for bn in bns}

    def record(module: nn.Module, inputs: tuple[torch.Tensor]) -> None:
        x = inputs[0].double()  # (N, C, H, W)
        sums[module].append(torch.stack([
            x.sum(dim=(0, 2, 3)), (x * x).sum(dim=(0, 2, 3)),
            torch.full((x.shape[1],), x.numel() / x.shape[1], dtype=x.dtype, device=x.device),
        ]))

    hooks = [bn.register_forward_pre_hook(record) for bn in bns]
    was_training = model.training
    model.eval()
    try:
        seen = 0
        run = getattr(model, "forward_train", model)  # reaches the auxiliary branch too
        for batch in images:
            run(batch)
            seen += len(batch)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    if seen == 0:
        return 0
    bns = [bn for bn in bns if sums[bn]]  # (a BN the forward pass never reached keeps its form)
    for bn in bns:
        s, sq, n = torch.stack(sums[bn]).sum(0)  # (C,) each
        mean = s / n
        var = (sq / n - mean * mean).clamp(min=0).to(bn.running_var.dtype)
        mean = mean.to(bn.running_mean.dtype)
        old_scale = bn.weight / (bn.running_var + bn.eps).sqrt()  # (C,) eval: y = x * old_scale + b
        bn.bias.add_(old_scale * mean)
        bn.weight.copy_(old_scale * (var + bn.eps).sqrt())
        bn.running_mean.copy_(mean)
        bn.running_var.copy_(var)
    log.info("re-estimated %d folded BatchNorms on %d images", len(bns), seen)
    return len(bns)
