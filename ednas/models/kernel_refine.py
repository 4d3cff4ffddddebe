"""Kernel refine (KR): a depthwise conv gated by a per-pixel map computed from its own kernel.

    y    = D(x)                              # depthwise output           (N, C, H, W)
    w    = sum of D.weight over (kh, kw)     # one number per channel     (C,)
    g    = conv1x1(x, w as a (1, C, 1, 1) kernel)                       # (N, 1, H, W)
    out  = sigmoid(BN1(g)) * y               # BN1: BatchNorm over that single channel

KR adds only BN1's two parameters. After `fuse()` BN1 and the kernel sum are frozen into a
plain 1x1 gate conv with bias, which is how the released ONNX stores it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class KernelRefineConv(nn.Module):
    def __init__(self, channels: int, kernel_size: int = 3, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size, stride, kernel_size // 2, groups=channels, bias=False)
        self.gate_bn = nn.BatchNorm2d(1)
        self.gate: nn.Conv2d | None = None  # set by fuse(): 1x1 conv C -> 1 with BN1 folded in

    # the output channel count, so that ConvBNAct(conv=KernelRefineConv(...)) reads naturally
    @property
    def out_channels(self) -> int:
        return self.conv.out_channels

    def gate_logits(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, 1, H', W') gate before the sigmoid."""
        if self.gate is not None:
            return self.gate(x)
        w = self.conv.weight.sum(dim=(2, 3)).reshape(1, -1, 1, 1)  # (1, C, 1, 1)
        return self.gate_bn(F.conv2d(x, w, stride=self.conv.stride))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)  # (N, C, H', W')
        return torch.sigmoid(self.gate_logits(x)) * y

    @torch.no_grad()
    def fuse(self) -> None:
        """Freeze kernel sum and BN1 into a 1x1 conv with bias (inference only)."""
        bn = self.gate_bn
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)  # (1,)
        gate = nn.Conv2d(self.conv.in_channels, 1, 1, self.conv.stride, bias=True).to(self.conv.weight.device)
        gate.weight.copy_(self.conv.weight.sum(dim=(2, 3)).reshape(1, -1, 1, 1) * scale)
        gate.bias.copy_(bn.bias - bn.running_mean * scale)
        self.gate = gate
