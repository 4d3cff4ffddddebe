"""ShuffleNetV2 as used by the NanoDet-Plus baseline (no final 1x1 conv)."""

from __future__ import annotations

import torch
from torch import nn

from ednas.arch import SHUFFLENET_CHANNELS, ShuffleNetV2Arch
from ednas.models.layers import ConvBNAct, dw_conv


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class ShuffleV2Block(nn.Module):
    def __init__(self, inp: int, oup: int, stride: int, act: str) -> None:
        super().__init__()
        self.stride = stride
        branch = oup // 2
        if stride > 1:
            self.branch1 = nn.Sequential(dw_conv(inp, 3, stride), ConvBNAct(inp, branch, 1, act=act))
        self.branch2 = nn.Sequential(
            ConvBNAct(inp if stride > 1 else branch, branch, 1, act=act),
            dw_conv(branch, 3, stride),
            ConvBNAct(branch, branch, 1, act=act),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            x1, x2 = x.chunk(2, dim=1)
            out = torch.cat((x1, self.branch2(x2)), dim=1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        return channel_shuffle(out, 2)


class ShuffleNetV2(nn.Module):
    def __init__(self, arch: ShuffleNetV2Arch) -> None:
        super().__init__()
        self.out_stages = arch.out_stages
        channels = SHUFFLENET_CHANNELS[arch.model_size]
        self.conv1 = ConvBNAct(3, channels[0], 3, stride=2, act=arch.activation)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.stages = nn.ModuleList()
        inp = channels[0]
        for repeats, oup in zip(arch.stage_repeats, channels[1:]):
            blocks = [ShuffleV2Block(inp, oup, 2, arch.activation)]
            blocks += [ShuffleV2Block(oup, oup, 1, arch.activation) for _ in range(repeats - 1)]
            self.stages.append(nn.Sequential(*blocks))
            inp = oup

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.maxpool(self.conv1(x))
        outs = []
        for i, stage in enumerate(self.stages, start=2):
            x = stage(x)
            if i in self.out_stages:
                outs.append(x)
        return outs
