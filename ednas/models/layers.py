"""Building blocks shared by every part of the detector."""

from __future__ import annotations

from typing import Callable, Iterable

import torch
from torch import nn

_ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": lambda: nn.ReLU(inplace=True),
    "relu6": lambda: nn.ReLU6(inplace=True),
    "leaky_relu": lambda: nn.LeakyReLU(0.1, inplace=True),
    "hardswish": lambda: nn.Hardswish(inplace=True),
}


def activation(name: str | None) -> nn.Module:
    """A fresh activation module; None gives Identity."""
    if name is None:
        return nn.Identity()
    if name not in _ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; known: {', '.join(_ACTIVATIONS)}")
    return _ACTIVATIONS[name]()


class ConvBNAct(nn.Sequential):
    """conv (no bias) -> BatchNorm -> activation. `conv` may be any conv-like module."""

    def __init__(
        self, cin: int, cout: int, kernel_size: int = 1, stride: int = 1, groups: int = 1,
        act: str | None = None, conv: nn.Module | None = None,
    ) -> None:
        conv = conv or nn.Conv2d(cin, cout, kernel_size, stride, kernel_size // 2, groups=groups, bias=False)
        super().__init__()
        self.conv = conv
        self.bn = nn.BatchNorm2d(cout)
        self.act = activation(act)


def dw_conv(channels: int, kernel_size: int, stride: int = 1, act: str | None = None) -> ConvBNAct:
    """Depthwise conv + BN + act."""
    return ConvBNAct(channels, channels, kernel_size, stride, groups=channels, act=act)


class DepthwiseSeparable(nn.Sequential):
    """Depthwise k x k + BN + act, then pointwise 1x1 + BN + act (NanoDet's DepthwiseConvModule)."""

    def __init__(self, cin: int, cout: int, kernel_size: int, stride: int = 1, act: str | None = None) -> None:
        super().__init__()
        self.depthwise = dw_conv(cin, kernel_size, stride, act)
        self.pointwise = ConvBNAct(cin, cout, 1, act=act)


@torch.no_grad()
def fold_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A new conv equal to bn(conv(x)) in eval mode."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)  # (C,)
    fused = nn.Conv2d(
        conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
        conv.dilation, conv.groups, bias=True,
    ).to(conv.weight.device)
    fused.weight.copy_(conv.weight * scale.reshape(-1, 1, 1, 1))
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    fused.bias.copy_((bias - bn.running_mean) * scale + bn.bias)
    return fused


@torch.no_grad()
def fuse_bn(root: nn.Module) -> nn.Module:
    """Fold every BatchNorm that directly follows a conv into it (in place; eval mode).
    A conv module with its own `fuse` (kernel refine) freezes itself instead, and its BN
    stays: the gate multiplies between the two."""
    for module in root.modules():
        if isinstance(module, ConvBNAct):
            if hasattr(module.conv, "fuse"):
                module.conv.fuse()
            elif isinstance(module.bn, nn.BatchNorm2d):
                module.conv = fold_bn(module.conv, module.bn)
                module.bn = nn.Identity()
    return root.eval()


@torch.no_grad()
def set_bn_affine(bn: nn.BatchNorm2d, scale: torch.Tensor, shift: torch.Tensor) -> None:
    """Make `bn` compute x * scale + shift in eval mode (running stats 0 / 1 - eps)."""
    bn.running_mean.zero_()
    bn.running_var.fill_(1.0 - bn.eps)
    bn.weight.copy_(scale)
    bn.bias.copy_(shift)


RECALIBRATION_PIXELS = 64 * 320 * 320  # image pixels per forward pass (64 images at 320 px)


@torch.no_grad()
def recalibrate_batchnorms(model: nn.Module, batches: Iterable[torch.Tensor],
                           max_pixels: int = RECALIBRATION_PIXELS) -> None:
    """Re-estimate every BatchNorm's running statistics on the images of `batches`, keeping its
    learned scale and shift.

    The images go through in as few train-mode passes as possible (`max_pixels` each), not
    batch by batch: in one pass every BN normalises with the statistics of the whole set and
    records exactly those, so each layer's statistics are measured on the inputs it will see in
    eval mode. Averaging over small batches instead misses the spread between batch means and
    feeds later layers inputs normalised by each batch's own statistics; on the released
    Enhanced NanoDet_s (statistics restored on 64 images) batches of 16 cost 1.5 mAP on held-out
    COCO images, one pass of 64 costs 0.35."""
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    images = list(batches)
    if not bns or not images:
        return
    # channels-last for the pass: on CPU the large train-mode batch runs about 2x faster
    # (64 images at 320 px through Enhanced NanoDet_s: 7.1 -> 3.3-4.1 s on 2 cores)
    images = (torch.cat(images) if len(images) > 1 else images[0]).contiguous(memory_format=torch.channels_last)
    momenta = [bn.momentum for bn in bns]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over the passes
    layout = next((torch.channels_last for p in model.parameters()
                   if p.dim() == 4 and not p.is_contiguous() and p.is_contiguous(memory_format=torch.channels_last)),
                  torch.contiguous_format)  # the caller's, restored after the pass
    model.to(memory_format=torch.channels_last).train()
    per_pass = max(2, max_pixels // (images.shape[-2] * images.shape[-1]))
    try:
        for start in range(0, len(images), per_pass):
            model(images[start:start + per_pass])
    finally:
        for bn, momentum in zip(bns, momenta):
            bn.momentum = momentum
        model.to(memory_format=layout).eval()
