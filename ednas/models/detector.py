"""The whole detector: backbone -> GhostPAN -> NanoDet-Plus head, plus (training only) the
assign guidance module: a copy of the neck and a conv head fed with both necks' features."""

from __future__ import annotations

import copy

import torch
from torch import nn

from ednas.arch import ArchSpec, MobileNeXtArch, ShuffleNetV2Arch
from ednas.models.ghost_pan import GhostPAN
from ednas.models.heads import NanoDetPlusHead, SimpleConvHead, deploy_output
from ednas.models.layers import fuse_bn
from ednas.models.mobilenext import MobileNeXt
from ednas.models.shufflenetv2 import ShuffleNetV2

_BACKBONES = {MobileNeXtArch: MobileNeXt, ShuffleNetV2Arch: ShuffleNetV2}


class Detector(nn.Module):
    def __init__(self, arch: ArchSpec, aux: bool = False) -> None:
        super().__init__()
        self.arch = arch
        num_levels = len(arch.strides)
        self.backbone = _BACKBONES[type(arch.backbone)](arch.backbone)
        self.fpn = GhostPAN(arch.backbone.out_channels(), arch.neck, arch.activation)
        h = arch.head
        self.head = NanoDetPlusHead(
            arch.num_classes, arch.neck.width, h.feat_channels, num_levels, h.stacked_convs,
            h.kernel_size, h.reg_max, arch.activation, h.decoupled,
        )
        self.aux_fpn: GhostPAN | None = None
        self.aux_head: SimpleConvHead | None = None
        if aux:
            self.attach_aux()

    def attach_aux(self) -> None:
        """Add the training-only assign guidance module (a copy of the current neck)."""
        a = self.arch
        self.aux_fpn = copy.deepcopy(self.fpn)
        self.aux_head = SimpleConvHead(
            a.num_classes, 2 * a.neck.width, a.aux.feat_channels, len(a.strides),
            a.aux.stacked_convs, a.head.reg_max, a.aux.num_groups, a.activation,
        ).to(next(self.parameters()).device)

    def detach_aux(self) -> None:
        """Drop the auxiliary branch (inference, export, parameter counts)."""
        self.aux_fpn = None
        self.aux_head = None

    def inference_modules(self) -> nn.ModuleList:
        """The modules of the inference model (auxiliary branch excluded)."""
        return nn.ModuleList([self.backbone, self.fpn, self.head])

    def num_params(self) -> int:
        """Parameters of the inference model, BN unfused, auxiliary branch excluded."""
        return sum(p.numel() for p in self.inference_modules().parameters())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) normalised BGR -> raw logits (N, A, num_classes + 4*(reg_max+1))."""
        return self.head(self.fpn(self.backbone(x)))

    def inference(self, x: torch.Tensor) -> torch.Tensor:
        """The deployment contract: sigmoid class scores || raw distribution logits."""
        return deploy_output(self.forward(x), self.arch.num_classes)

    def forward_train(self, x: torch.Tensor, detach_aux: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Raw logits of the head and of the auxiliary head (None if not attached).
        With `detach_aux` the auxiliary branch sees detached backbone and neck features."""
        feats = self.backbone(x)
        fpn_feats = self.fpn(feats)
        out = self.head(fpn_feats)
        if self.aux_fpn is None or self.aux_head is None:
            return out, None
        if detach_aux:
            feats = [f.detach() for f in feats]
            fpn_feats = [f.detach() for f in fpn_feats]
        aux_feats = self.aux_fpn(feats)
        aux_out = self.aux_head([torch.cat([f, a], dim=1) for f, a in zip(fpn_feats, aux_feats)])
        return out, aux_out

    def fuse(self) -> "Detector":
        """Deploy form: auxiliary branch dropped, every BN that directly follows a conv
        folded into it (the KR gate's BN is frozen into its 1x1 gate conv; the BN behind a
        KR gate stays). Outputs are unchanged to float tolerance."""
        self.detach_aux()
        fuse_bn(self)
        return self


def build_model(arch: ArchSpec, aux: bool = False) -> Detector:
    """The detector described by `arch`; `aux=True` adds the training-only AGM branch."""
    return Detector(arch, aux=aux)
