"""Structured channel pruning at the granularity of the architecture description.

A pruned model must stay expressible as an ArchSpec (so it rebuilds, exports, and is priced
by the latency table), so pruning decides *how many* channels each knob keeps (per-row
backbone widths, neck width, head width; multiples of 8) and torch-pruning's dependency
graph decides *which* ones: for every conv whose width shrinks, the channels of lowest
group magnitude go, together with everything coupled to them (residual chains, concats,
the ghost2former product, depthwise convs). The kernel-refine gate is registered as a custom
depthwise-like unit: its gate weights are the sums of its own (pruned) kernel, so removing
a channel from the kernel is all it needs.

Removing a channel also removes its mean contribution to every layer it fed, which shifts
all activations downstream. Given calibration images, the BatchNorms are first given real
statistics (imported weights have them folded away), and after pruning they re-estimate
their statistics on the same images (AdaBN), which restores the activation distributions.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from typing import Sequence

import torch
import torch_pruning as tp
from torch import nn

from ednas.arch import ArchSpec, MobileNeXtArch, make_divisible
from ednas.errors import EdnasError
from ednas.models import build_model
from ednas.models.checkpoint import load_state
from ednas.models.detector import Detector
from ednas.models.kernel_refine import KernelRefineConv
from ednas.models.layers import recalibrate_batchnorms

log = logging.getLogger(__name__)


class PruningError(EdnasError):
    """The requested pruning cannot be done (unsupported model, impossible target)."""


class KernelRefinePruner(tp.pruner.BasePruningFunc):
    """Depthwise-like: input and output channels are the same channels."""

    def prune_out_channels(self, layer: KernelRefineConv, idxs: Sequence[int]) -> KernelRefineConv:
        drop = set(int(i) for i in idxs)
        keep = [i for i in range(layer.conv.out_channels) if i not in drop]
        conv = layer.conv
        conv.weight = nn.Parameter(conv.weight.data[keep].clone(), requires_grad=conv.weight.requires_grad)
        conv.in_channels = conv.out_channels = conv.groups = len(keep)
        if layer.gate is not None:  # a fused gate is a 1x1 conv C -> 1 on the same channels
            layer.gate.weight = nn.Parameter(layer.gate.weight.data[:, keep].clone())
            layer.gate.in_channels = len(keep)
        return layer

    prune_in_channels = prune_out_channels

    def get_out_channels(self, layer: KernelRefineConv) -> int:
        return layer.conv.out_channels

    def get_in_channels(self, layer: KernelRefineConv) -> int:
        return layer.conv.in_channels


def _round8(value: float) -> int:
    return max(8, int(round(value / 8)) * 8)


def shrink_arch(arch: ArchSpec, ratio: float) -> ArchSpec:
    """`arch` with every prunable width scaled by (1 - ratio), rounded to multiples of 8:
    backbone rows (MobileNeXt), neck width and head width. The stem is kept."""
    if not 0.0 <= ratio < 1.0:
        raise PruningError(f"pruning ratio {ratio} must be in [0, 1)")
    keep = 1.0 - ratio
    backbone = arch.backbone
    if isinstance(backbone, MobileNeXtArch):
        widths = []
        for (_, c, _, _), w in zip(backbone.rows, backbone.widths):
            channels = make_divisible(c * w, 8)
            widths.append(_round8(channels * keep) / c)
        backbone = dataclasses.replace(backbone, widths=tuple(widths))
    neck = dataclasses.replace(arch.neck, width=_round8(arch.neck.width * keep))
    head = dataclasses.replace(arch.head, feat_channels=_round8(arch.head.feat_channels * keep))
    return dataclasses.replace(arch, backbone=backbone, neck=neck, head=head)


def _check_prunable(model: Detector) -> None:
    if not isinstance(model.arch.backbone, MobileNeXtArch):
        raise PruningError(
            f"pruning supports MobileNeXt backbones (Enhanced NanoDet); this model has "
            f"{model.arch.backbone.type!r}"
        )


def prune_weights(
    model: Detector, target: ArchSpec, calib: Sequence[torch.Tensor] | None = None
) -> Detector:
    """A new Detector of architecture `target` holding `model`'s most important channels.

    `target` must be `model.arch` with narrower widths (see shrink_arch). `calib`: batches
    (N, 3, S, S) of pre-processed images to recalibrate BatchNorm statistics on.
    """
    from ednas.train.bn_unfold import unfold_batchnorms

    _check_prunable(model)
    work = copy.deepcopy(model).cpu().eval()
    work.detach_aux()
    if calib:
        unfold_batchnorms(work, calib)
    pruned = build_model(target)
    target_out = {n: m.out_channels for n, m in pruned.named_modules() if isinstance(m, nn.Conv2d)}
    s = model.arch.input_size
    graph = tp.DependencyGraph().build_dependency(
        work, example_inputs=torch.zeros(1, 3, s, s),
        customized_pruners={KernelRefineConv: KernelRefinePruner()},
    )
    importance = tp.importance.GroupMagnitudeImportance(p=2)
    convs = [(n, m) for n, m in work.named_modules() if isinstance(m, nn.Conv2d) and m.groups == 1]
    # a ghost module's primary conv first: each of its channels carries two concatenated outputs,
    # so as a root it removes exactly the pair; rooted elsewhere the pair would be cut twice
    convs.sort(key=lambda item: "primary_conv" not in item[0])
    for name, conv in convs:
        if name not in target_out:
            raise PruningError(f"internal error: {name} has no counterpart in the target architecture")
        excess = conv.out_channels - target_out[name]
        if excess < 0:
            raise PruningError(f"{name}: target width {target_out[name]} exceeds {conv.out_channels}")
        if excess == 0:
            continue
        group = graph.get_pruning_group(conv, tp.prune_conv_out_channels, idxs=list(range(conv.out_channels)))
        scores = importance(group)  # (out_channels,) one score per root channel
        drop = scores.argsort()[:excess].tolist()
        group = graph.get_pruning_group(conv, tp.prune_conv_out_channels, idxs=drop)
        if not graph.check_pruning_group(group):
            raise PruningError(f"{name}: removing {excess} channels would empty a layer; prune less")
        group.prune()
    if calib:
        recalibrate_batchnorms(work, calib)
    load_state(pruned, work.state_dict(), "pruned model")
    return pruned.eval()
