"""Latency units: the pieces an architecture is cut into for the lookup table.

A unit is one block configuration at one input shape. Units are chosen so that ONNX Runtime's
graph fusions stay inside them: the stem, each SandglassBlock, each neck reduce conv, each PAN
block with its upsample (top-down) or downsample (bottom-up) and concat, the extra level, each
head level, and the output tail (concat + sigmoid). Every unit is built from the model's own
modules (ednas.models), so the table times exactly what build_model instantiates.

    arch_units(arch) -> [(part, Unit)]     the ~26 units of one architecture, in graph order
    space_units(space) -> {key: Unit}      every distinct unit any architecture of a space uses
    Unit.build() -> nn.Module               its inputs are `Unit.inputs` shaped tensors
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING, Any, Callable, NamedTuple

import torch
from torch import nn

from ednas.arch import ArchSpec, HeadArch, MobileNeXtArch, NeckArch, SandglassSpec
from ednas.errors import ConfigError
from ednas.models.ghost_pan import GhostPAN
from ednas.models.heads import NanoDetPlusHead, deploy_output
from ednas.models.layers import fuse_bn
from ednas.models.mobilenext import MobileNeXt, SandglassBlock

if TYPE_CHECKING:
    from ednas.arch.space import SearchSpace

Shape = tuple[int, ...]


@dataclass(frozen=True)
class Unit:
    """One timed piece: `kind` picks the builder, `params` configure it, `inputs` are the
    (N, C, H, W) shapes it is fed. `key` names it in the table."""

    kind: str
    params: tuple[tuple[str, Any], ...]
    inputs: tuple[Shape, ...]

    @cached_property
    def key(self) -> str:
        params = " ".join(f"{k}={_fmt(v)}" for k, v in self.params)
        shapes = "+".join("x".join(map(str, s[1:])) for s in self.inputs)
        return f"{self.kind} {params} @{shapes}"

    @cached_property
    def io_elems(self) -> int:
        """Elements of the unit's inputs: what crosses a unit boundary (layout reorders,
        int8 quantize/dequantize) when the unit runs alone."""
        total = 0
        for shape in self.inputs:
            n = 1
            for d in shape:
                n *= d
            total += n
        return total

    def build(self) -> nn.Module:
        """A fresh float module (random weights, eval mode) computing this unit."""
        module = _BUILDERS[self.kind](**dict(self.params))
        return module.eval()


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, tuple):
        return ",".join(map(_fmt, value))
    return str(value)


# -- unit modules -----------------------------------------------------------------------------
class UnitModule(nn.Module):
    """Base of the unit wrappers: `fuse` is the detector's own BN folding, so a unit's ONNX
    graph matches the exported model's (KR gate frozen, BN folded)."""

    def fuse(self) -> nn.Module:
        return fuse_bn(self)


class Single(UnitModule):
    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x)


class PanStep(UnitModule):
    """One step of a (single-step) GhostPAN: `step` is "top_down", "bottom_up" or "extra"."""

    def __init__(self, pan: GhostPAN, step: str) -> None:
        super().__init__()
        self.pan = pan
        self.step = step

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return getattr(self.pan, self.step)(0, a, b)


class Tail(UnitModule):
    """Concatenate the flattened levels and apply the deployment sigmoid (Detector.inference)."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes

    def forward(self, *levels: torch.Tensor) -> torch.Tensor:
        return deploy_output(torch.cat(levels, dim=1), self.num_classes)  # (N, A, K)


def _pan(cin: tuple[int, ...], width: int, types: tuple[str, ...], kernel: int, extra: int, act: str) -> GhostPAN:
    return GhostPAN(cin, NeckArch(width=width, block_types=types, kernel_size=kernel,  # type: ignore[arg-type]
                                  num_extra_level=extra), act)


def _stem(channels: int, act: str) -> nn.Module:
    tiny = MobileNeXtArch(rows=((2, 8, 1, 1),), stem_channels=channels, activation=act,  # type: ignore[arg-type]
                          out_stages=(1, 1, 1))
    return Single(MobileNeXt(tiny).features[0])


def _block(inp: int, oup: int, hidden: int, stride: int, form: str, kr: bool, act: str) -> nn.Module:
    return Single(SandglassBlock(SandglassSpec(inp, oup, hidden, stride, form, kr), act))  # type: ignore[arg-type]


def _reduce(cin: int, width: int, act: str) -> nn.Module:
    return Single(_pan((cin,), width, (), 3, 0, act).reduce_layers[0])


def _top_down(block: str, width: int, kernel: int, act: str) -> nn.Module:
    return PanStep(_pan((width, width), width, (block, block), kernel, 0, act), "top_down")


def _bottom_up(block: str, width: int, kernel: int, act: str) -> nn.Module:
    return PanStep(_pan((width, width), width, (block, block), kernel, 0, act), "bottom_up")


def _extra(width: int, kernel: int, act: str) -> nn.Module:
    return PanStep(_pan((width,), width, (), kernel, 1, act), "extra")


def _head(width: int, feat: int, stacked: int, kernel: int, decoupled: bool, reg_max: int,
          classes: int, act: str) -> nn.Module:
    return Single(NanoDetPlusHead(classes, width, feat, 1, stacked, kernel, reg_max, act, decoupled))


def _tail(classes: int) -> nn.Module:
    return Tail(classes)


_BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "stem": _stem, "block": _block, "reduce": _reduce, "top_down": _top_down,
    "bottom_up": _bottom_up, "extra": _extra, "head": _head, "tail": _tail,
}


# -- cutting an architecture into units ---------------------------------------------------------
class Row(NamedTuple):
    """One MobileNeXt row as the backbone builds it: enough to rebuild its blocks alone.
    (A NamedTuple: it is hashed for every prediction.)"""

    cfg: tuple[int, int, int, int]  # (t, c, n, s)
    inp: int  # channels entering the row
    width: float  # width multiplier of the row


@lru_cache(maxsize=4096)
def row_template(row: Row, act: str) -> tuple[SandglassSpec, ...]:
    """The row's blocks with KR on wherever eligible, from the builder's own rules (a one-row
    backbone whose stem width is the row's input)."""
    one = MobileNeXtArch(rows=(row.cfg,), widths=(row.width,), kr=(), stem_channels=row.inp,
                         activation=act, out_stages=(1, 1, 1))  # type: ignore[arg-type]
    return tuple(one.blocks())


@lru_cache(maxsize=4096)
def _row_shape(row: Row, act: str) -> tuple[int, int, int]:
    """(KR-eligible blocks, blocks, output channels) of a row."""
    specs = row_template(row, act)
    return sum(s.form == "sandglass" for s in specs), len(specs), specs[-1].oup


def backbone_rows(backbone: MobileNeXtArch) -> list[tuple[Row, tuple[bool, ...]]]:
    """Rows of `backbone` (only those feeding the neck) with each row's slice of KR flags."""
    inp, kr_pos, layer, act, kr = backbone.stem_channels, 0, 1, backbone.activation, backbone.kr
    last = max(backbone.out_stages)
    out = []
    for cfg, width in zip(backbone.rows, backbone.widths):
        if layer > last:
            break
        row = Row(cfg, inp, width)
        n_kr, n_blocks, inp = _row_shape(row, act)
        out.append((row, kr[kr_pos: kr_pos + n_kr]))
        kr_pos += n_kr
        layer += n_blocks
    return out


def row_units(row: Row, kr: tuple[bool, ...], act: str, res: int, first_layer: int,
              last_layer: int) -> list[tuple[str, Unit]]:
    """Units of one row entered at resolution `res`; layers after `last_layer` are unused."""
    flags = iter(kr)
    out = []
    for i, spec in enumerate(row_template(row, act)):
        if first_layer + i > last_layer:
            break
        if spec.form == "sandglass":
            spec = dataclasses.replace(spec, kr=next(flags))
        params = (("inp", spec.inp), ("oup", spec.oup), ("hidden", spec.hidden), ("stride", spec.stride),
                  ("form", spec.form), ("kr", spec.kr), ("act", act))
        out.append((f"backbone.block{first_layer + i}", Unit("block", params, ((1, spec.inp, res, res),))))
        res = -(-res // spec.stride)
    return out


def neck_head_units(out_channels: tuple[int, ...], strides: tuple[int, ...], neck: NeckArch,
                    head: HeadArch, act: str, classes: int, num_outputs: int,
                    size: int) -> list[tuple[str, Unit]]:
    """GhostPAN and head units; they see the backbone only through its out channels."""
    w, k, n = neck.width, neck.kernel_size, len(out_channels)
    res = [-(-size // s) for s in strides]  # per level, fine to coarse
    out = [(f"neck.reduce{i}", Unit("reduce", (("cin", c), ("width", w), ("act", act)), ((1, c, r, r),)))
           for i, (c, r) in enumerate(zip(out_channels, res))]
    types = neck.block_types
    for i in range(n - 1):  # top-down, coarse to fine
        lvl = n - 2 - i
        params = (("block", types[i]), ("width", w), ("kernel", k), ("act", act))
        shapes = ((1, w, res[lvl + 1], res[lvl + 1]), (1, w, res[lvl], res[lvl]))
        out.append((f"neck.top_down{i}", Unit("top_down", params, shapes)))
    for i in range(n - 1):  # bottom-up, fine to coarse
        params = (("block", types[n - 1 + i]), ("width", w), ("kernel", k), ("act", act))
        shapes = ((1, w, res[i], res[i]), (1, w, res[i + 1], res[i + 1]))
        out.append((f"neck.bottom_up{i}", Unit("bottom_up", params, shapes)))
    for i in range(neck.num_extra_level):
        r = res[n - 1 + i]
        out.append((f"neck.extra{i}", Unit("extra", (("width", w), ("kernel", k), ("act", act)),
                                           ((1, w, r, r), (1, w, r, r)))))
    hp = (("width", w), ("feat", head.feat_channels), ("stacked", head.stacked_convs),
          ("kernel", head.kernel_size), ("decoupled", head.decoupled), ("reg_max", head.reg_max),
          ("classes", classes), ("act", act))
    out += [(f"head.level{i}", Unit("head", hp, ((1, w, r, r),))) for i, r in enumerate(res)]
    levels = tuple((1, r * r, num_outputs) for r in res)
    out.append(("head.tail", Unit("tail", (("classes", classes),), levels)))
    return out


def stem_units(channels: int, act: str, size: int) -> list[tuple[str, Unit]]:
    return [("backbone.stem", Unit("stem", (("channels", channels), ("act", act)), ((1, 3, size, size),)))]


# A segment is a cheap, hashable description of a run of units: the stem, one backbone row,
# the neck and head without the PAN blocks, one PAN block. Architectures share segments far
# more often than whole descriptions, so the predictor caches per segment; `segment_units`
# turns one into its units (always through the functions above).
Segment = tuple
_PAN_PARTS = ("neck.top_down", "neck.bottom_up")


def _neck_head(nh: tuple, types: tuple[str, ...]) -> list[tuple[str, Unit]]:
    out_channels, strides, width, kernel, extra, head, act, classes, num_outputs, size = nh
    neck = NeckArch(width=width, block_types=types, kernel_size=kernel, num_extra_level=extra)  # type: ignore[arg-type]
    return neck_head_units(out_channels, strides, neck, head, act, classes, num_outputs, size)


def _neck_fixed(nh: tuple, n_blocks: int) -> list[tuple[str, Unit]]:
    """Reduce convs, extra levels, head, tail: all but the PAN blocks (any block type will do)."""
    return [pu for pu in _neck_head(nh, ("normal",) * n_blocks) if not pu[0].startswith(_PAN_PARTS)]


def _pan_block(index: int, block: str, strides: tuple[int, ...], width: int, kernel: int, extra: int,
               act: str, size: int, n_blocks: int) -> list[tuple[str, Unit]]:
    """PAN block `index` (top-down blocks, then bottom-up) of type `block`. It sees neither
    the backbone's channels nor the head, so those are left out of its segment."""
    levels = len(strides) - extra
    nh = ((width,) * levels, strides, width, kernel, extra, HeadArch(feat_channels=width), act, 1, 1, size)
    return [[pu for pu in _neck_head(nh, (block,) * n_blocks) if pu[0].startswith(_PAN_PARTS)][index]]


_SEGMENT_UNITS: dict[str, Callable[..., list[tuple[str, Unit]]]] = {
    "stem": stem_units, "row": row_units, "neck": _neck_fixed, "pan": _pan_block,
}
_OUT_CHANNELS: dict[tuple, tuple[int, ...]] = {}
_STRIDES: dict[tuple, tuple[int, ...]] = {}


def segments(arch: ArchSpec) -> list[Segment]:
    """The segments of `arch`, in graph order (fast: cached pieces, no block rebuilding)."""
    bb = arch.backbone
    if not isinstance(bb, MobileNeXtArch):
        raise ConfigError(f"latency tables cover MobileNeXt backbones only, not {bb.type!r}")
    act = bb.activation
    segs: list[Segment] = [("stem", bb.stem_channels, act, arch.input_size)]
    res, layer, last = -(-arch.input_size // 2), 1, max(bb.out_stages)
    for row, kr in backbone_rows(bb):
        segs.append(("row", row, kr, act, res, layer, last))
        layer += _row_shape(row, act)[1]
        res = -(-res // row.cfg[3])
    ckey = (bb.rows, bb.widths, bb.stem_channels, bb.out_stages)
    if ckey not in _OUT_CHANNELS:
        _OUT_CHANNELS[ckey] = bb.out_channels()
    neck = arch.neck
    skey = (bb.rows, bb.out_stages, neck.num_extra_level)
    if skey not in _STRIDES:
        _STRIDES[skey] = arch.strides
    nh = (_OUT_CHANNELS[ckey], _STRIDES[skey], neck.width, neck.kernel_size, neck.num_extra_level,
          arch.head, arch.activation, arch.num_classes, arch.num_outputs, arch.input_size)
    n = len(neck.block_types)
    segs.append(("neck", nh, n))
    segs += [("pan", i, t, _STRIDES[skey], neck.width, neck.kernel_size, neck.num_extra_level, arch.activation,
              arch.input_size, n) for i, t in enumerate(neck.block_types)]
    return segs


@lru_cache(maxsize=65536)
def segment_units(segment: Segment) -> tuple[tuple[str, Unit], ...]:
    return tuple(_SEGMENT_UNITS[segment[0]](*segment[1:]))


def arch_units(arch: ArchSpec) -> list[tuple[str, Unit]]:
    """All units of `arch` in graph order, each with the name of the part it times."""
    return [pu for seg in segments(arch) for pu in segment_units(seg)]


def space_units(space: "SearchSpace") -> dict[str, Unit]:
    """Every distinct unit of the space, keyed and in first-seen order."""
    units: dict[str, Unit] = {}
    seen: set[Segment] = set()
    for arch in space.covering_archs():
        for seg in segments(arch):
            if seg not in seen:
                seen.add(seg)
                for _, unit in segment_units(seg):
                    units.setdefault(unit.key, unit)
    return units
