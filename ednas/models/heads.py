"""NanoDet-Plus detection head and the training-only auxiliary conv head (AGM)."""

from __future__ import annotations

import math

import torch
from torch import nn

from ednas.models.layers import DepthwiseSeparable, activation


def _flatten_levels(outputs: list[torch.Tensor]) -> torch.Tensor:
    """Per-level (N, K, H, W) -> (N, sum H*W, K) in level order."""
    return torch.cat([o.flatten(start_dim=2) for o in outputs], dim=2).permute(0, 2, 1)


def deploy_output(logits: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Raw logits (N, A, C + 4*(R+1)) -> the deployment contract: sigmoid class scores ||
    raw distribution logits."""
    return torch.cat([logits[..., :num_classes].sigmoid(), logits[..., num_classes:]], dim=-1)


class NanoDetPlusHead(nn.Module):
    """Per level (weights not shared): `stacked_convs` depthwise-separable convs, then a 1x1 conv
    to num_classes + 4*(reg_max+1). Decoupled (l variant): classes by a 1x1 conv, regression by
    one more depthwise-separable conv and a 1x1 conv."""

    def __init__(
        self, num_classes: int, in_channels: int, feat_channels: int, num_levels: int,
        stacked_convs: int, kernel_size: int, reg_max: int, act: str, decoupled: bool = False,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.decoupled = decoupled
        reg_out = 4 * (reg_max + 1)
        self.cls_convs = nn.ModuleList([
            nn.Sequential(*[
                DepthwiseSeparable(in_channels if i == 0 else feat_channels, feat_channels, kernel_size, 1, act)
                for i in range(stacked_convs)
            ])
            for _ in range(num_levels)
        ])
        cls_out = num_classes if decoupled else num_classes + reg_out
        self.gfl_cls = nn.ModuleList([nn.Conv2d(feat_channels, cls_out, 1) for _ in range(num_levels)])
        if decoupled:
            self.gfl_reg = nn.ModuleList([
                nn.Sequential(DepthwiseSeparable(feat_channels, feat_channels, kernel_size, 1, act),
                              nn.Conv2d(feat_channels, reg_out, 1))
                for _ in range(num_levels)
            ])
        self.init_weights()

    def init_weights(self) -> None:
        prior_bias = -4.595  # sigmoid^-1(0.01), as NanoDet-Plus
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.01)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        for conv in self.gfl_cls:
            nn.init.constant_(conv.bias[: self.num_classes], prior_bias)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        """Neck maps -> raw logits (N, A, num_classes + 4*(reg_max+1))."""
        outputs = []
        for i, feat in enumerate(feats):
            feat = self.cls_convs[i](feat)
            out = self.gfl_cls[i](feat)
            if self.decoupled:
                out = torch.cat([out, self.gfl_reg[i](feat)], dim=1)
            outputs.append(out)
        return _flatten_levels(outputs)


class Scale(nn.Module):
    """A learnable scalar multiplier."""

    def __init__(self, value: float = 1.0) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(value, dtype=torch.float))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


def _conv_gn_act(cin: int, cout: int, groups: int, act: str) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.GroupNorm(groups, cout), activation(act))


class SimpleConvHead(nn.Module):
    """Auxiliary head of the assign guidance module: 3x3 conv + GroupNorm + act stacks, shared
    across levels, separate class and box branches, a learnable scale per level."""

    def __init__(
        self, num_classes: int, in_channels: int, feat_channels: int, num_levels: int,
        stacked_convs: int, reg_max: int, num_groups: int, act: str,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        chans = [in_channels] + [feat_channels] * stacked_convs
        self.cls_convs = nn.Sequential(*[_conv_gn_act(a, b, num_groups, act) for a, b in zip(chans, chans[1:])])
        self.reg_convs = nn.Sequential(*[_conv_gn_act(a, b, num_groups, act) for a, b in zip(chans, chans[1:])])
        self.gfl_cls = nn.Conv2d(feat_channels, num_classes, 3, padding=1)
        self.gfl_reg = nn.Conv2d(feat_channels, 4 * (reg_max + 1), 3, padding=1)
        self.scales = nn.ModuleList([Scale(1.0) for _ in range(num_levels)])
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.01)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        nn.init.constant_(self.gfl_cls.bias, -math.log((1 - 0.01) / 0.01))

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        outputs = []
        for feat, scale in zip(feats, self.scales):
            cls = self.gfl_cls(self.cls_convs(feat))
            reg = scale(self.gfl_reg(self.reg_convs(feat))).float()
            outputs.append(torch.cat([cls, reg], dim=1))
        return _flatten_levels(outputs)
