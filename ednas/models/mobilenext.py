"""MobileNeXt backbone ("sandglass" blocks) with kernel refine on the form-4 blocks.

The four block layouts (`SandglassSpec.form`, derived in ednas/arch.py):

    lead            dw3x3(inp)+BN+act -> 1x1(inp->hidden)+BN -> 1x1(hidden->oup)+BN+act -> dw3x3(oup, s)+BN
    pointwise       1x1(inp->hidden)+BN -> 1x1(hidden->oup)+BN+act
    pointwise_down  pointwise, then dw3x3(oup, stride 2)+BN
    sandglass       [KR-]dw3x3(inp)+BN+act -> 1x1+BN -> 1x1+BN+act -> dw3x3(oup)+BN (+ x if inp == oup)
"""

from __future__ import annotations

import torch
from torch import nn

from ednas.arch import MobileNeXtArch, SandglassSpec
from ednas.models.kernel_refine import KernelRefineConv
from ednas.models.layers import ConvBNAct, dw_conv


class SandglassBlock(nn.Module):
    def __init__(self, spec: SandglassSpec, act: str = "relu6") -> None:
        super().__init__()
        self.spec = spec
        layers: list[nn.Module] = []
        if spec.form in ("lead", "sandglass"):
            if spec.kr:
                layers.append(ConvBNAct(spec.inp, spec.inp, act=act, conv=KernelRefineConv(spec.inp, 3)))
            else:
                layers.append(dw_conv(spec.inp, 3, act=act))
        layers.append(ConvBNAct(spec.inp, spec.hidden, 1))
        layers.append(ConvBNAct(spec.hidden, spec.oup, 1, act=act))
        if spec.form != "pointwise":
            layers.append(dw_conv(spec.oup, 3, spec.stride))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layers(x)
        return out + x if self.spec.residual else out


class MobileNeXt(nn.Module):
    """Returns the feature maps after the layers listed in `arch.out_stages` (stem = layer 0)."""

    def __init__(self, arch: MobileNeXtArch) -> None:
        super().__init__()
        self.out_stages = arch.out_stages
        stem = ConvBNAct(3, arch.stem_channels, 3, stride=2, act=arch.activation)
        blocks = [SandglassBlock(spec, arch.activation) for spec in arch.blocks()]
        self.features = nn.ModuleList([stem, *blocks])[: max(arch.out_stages) + 1]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.out_stages:
                outs.append(x)
        return outs
