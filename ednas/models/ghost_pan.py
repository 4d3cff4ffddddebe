"""GhostPAN neck with two interchangeable block types per PAN block.

- `normal` (NanoDet-Plus "ghost_res"): ghost1(in->mid, act) -> ghost2(mid->out), plus a
  shortcut dw k x k(in)+BN -> 1x1(in->out)+BN; output = sum.
- `plus` (Enhanced NanoDet "ghost2former"): g = ghost1(in->out, act); r = 1x1(in->out);
  d = dw k x k(out)(g); output = BN(1x1(out->out)(d * r)) -- a convolutional modulation.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ednas.arch import NeckArch
from ednas.models.layers import ConvBNAct, DepthwiseSeparable, dw_conv


class GhostModule(nn.Module):
    """Primary 1x1 conv to ceil(out/2) channels, cheap dw 3x3 on those, concatenated."""

    def __init__(self, cin: int, cout: int, act: str | None) -> None:
        super().__init__()
        init = math.ceil(cout / 2)
        self.primary_conv = ConvBNAct(cin, init, 1, act=act)
        self.cheap_operation = dw_conv(init, 3, act=act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.primary_conv(x)
        return torch.cat([x1, self.cheap_operation(x1)], dim=1)


class GhostBottleneck(nn.Module):
    """`normal` block (NanoDet-Plus ghost_res)."""

    def __init__(self, cin: int, cout: int, kernel_size: int, act: str) -> None:
        super().__init__()
        mid = cout  # expand 1
        self.ghost1 = GhostModule(cin, mid, act)
        self.ghost2 = GhostModule(mid, cout, None)
        self.shortcut = nn.Sequential(dw_conv(cin, kernel_size), ConvBNAct(cin, cout, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ghost2(self.ghost1(x)) + self.shortcut(x)


class Ghost2Former(nn.Module):
    """`plus` block (Enhanced NanoDet ghost2former)."""

    def __init__(self, cin: int, cout: int, kernel_size: int, act: str) -> None:
        super().__init__()
        self.ghost1 = GhostModule(cin, cout, act)
        self.shortcut1 = nn.Conv2d(cin, cout, 1, bias=False)
        self.shortcut2 = nn.Conv2d(cout, cout, kernel_size, padding=kernel_size // 2, groups=cout, bias=False)
        self.proj = ConvBNAct(cout, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = self.ghost1(x)  # (N, out, H, W)
        r = self.shortcut1(x)  # (N, out, H, W)
        d = self.shortcut2(g)
        return self.proj(d * r)


NECK_BLOCKS: dict[str, Callable[..., nn.Module]] = {"normal": GhostBottleneck, "plus": Ghost2Former}


def upsample2x(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)


class GhostPAN(nn.Module):
    """Inputs: backbone maps (fine to coarse). Outputs: len(inputs) + extra levels, all `width`."""

    def __init__(self, in_channels: tuple[int, ...], arch: NeckArch, act: str) -> None:
        super().__init__()
        w, k, n = arch.width, arch.kernel_size, len(in_channels)
        self.reduce_layers = nn.ModuleList([ConvBNAct(c, w, 1, act=act) for c in in_channels])
        types = list(arch.block_types)
        self.top_down_blocks = nn.ModuleList([NECK_BLOCKS[t](2 * w, w, k, act) for t in types[: n - 1]])
        self.downsamples = nn.ModuleList([DepthwiseSeparable(w, w, k, 2, act) for _ in range(n - 1)])
        self.bottom_up_blocks = nn.ModuleList([NECK_BLOCKS[t](2 * w, w, k, act) for t in types[n - 1:]])
        self.extra_lvl_in_conv = nn.ModuleList(
            [DepthwiseSeparable(w, w, k, 2, act) for _ in range(arch.num_extra_level)])
        self.extra_lvl_out_conv = nn.ModuleList(
            [DepthwiseSeparable(w, w, k, 2, act) for _ in range(arch.num_extra_level)])

    def top_down(self, i: int, coarse: torch.Tensor, fine: torch.Tensor) -> torch.Tensor:
        """Top-down step i: block(cat(upsample(coarse), fine))."""
        return self.top_down_blocks[i](torch.cat([upsample2x(coarse), fine], 1))

    def bottom_up(self, i: int, fine: torch.Tensor, inner: torch.Tensor) -> torch.Tensor:
        """Bottom-up step i: block(cat(downsample(fine), inner))."""
        return self.bottom_up_blocks[i](torch.cat([self.downsamples[i](fine), inner], 1))

    def extra(self, i: int, top: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
        """Extra level i: conv_in(coarsest reduced input) + conv_out(last output)."""
        return self.extra_lvl_in_conv[i](top) + self.extra_lvl_out_conv[i](last)

    def forward(self, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
        inputs = [reduce(x) for x, reduce in zip(inputs, self.reduce_layers)]
        # top-down: coarse to fine
        inner_outs = [inputs[-1]]
        for i in range(len(self.top_down_blocks)):
            inner_outs.insert(0, self.top_down(i, inner_outs[0], inputs[-2 - i]))
        # bottom-up: fine to coarse
        outs = [inner_outs[0]]
        for i in range(len(self.bottom_up_blocks)):
            outs.append(self.bottom_up(i, outs[-1], inner_outs[i + 1]))
        for i in range(len(self.extra_lvl_in_conv)):
            outs.append(self.extra(i, inputs[-1], outs[-1]))
        return outs
