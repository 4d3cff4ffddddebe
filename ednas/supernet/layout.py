"""Where every weight of a sub-network lives inside the supernet.

A sub-network and the supernet differ in widths (per backbone row, neck/head width), in the
neck block type of each PAN block (the supernet holds both) and in kernel refine (the supernet
has a KR gate on every eligible block). Each weight tensor of a sub-network is a slice of one
supernet tensor, and this module says which one and where, per dimension.

Channels live in *spaces*: the output channels of a conv and everything tied to them (the
depthwise conv and BN after it, the residual stream of a MobileNeXt row, the cheap half of a
ghost module). A dimension of a tensor is a list of segments `(space, size, offset)`: `size`
channels of `space`, found at `offset` in the supernet tensor. Concatenations (ghost modules,
neck concats) give several segments, so a narrower sub-network takes the leading channels of
*each* part, not the leading channels of the whole.

The same description drives slicing (sub-network <- supernet), embedding (released model ->
supernet) and importance sorting (a permutation per space), so all three agree by construction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ednas.arch import ArchSpec, MobileNeXtArch

Segment = tuple[str, int, int]  # (space, channels in this network, offset in the supernet tensor)
Dim = tuple[Segment, ...] | None  # None: not sliced (kernel size, depthwise's 1)
FIXED = "!"  # prefix of spaces that are never permuted (image channels, head outputs)


@dataclass(frozen=True)
class Entry:
    name: str  # state_dict name in the sub-network (a Detector)
    key: str  # name of the supernet tensor it is a slice of
    dims: tuple[Dim, ...]  # one per tensor dimension


def _seg(space: str, size: int, big: int, offset: int = 0) -> Segment:
    if size > big:
        raise ValueError(f"{space}: {size} channels exceed the supernet's {big}")
    return (space, size, offset)


class _Walker:
    """Follows the detector's data flow, emitting one Entry per state tensor."""

    def __init__(self) -> None:
        self.entries: list[Entry] = []
        self.outputs: dict[str, tuple[Segment, ...]] = {}  # neck block -> its output layout

    def add(self, name: str, dims: tuple[Dim, ...], key: str | None = None) -> None:
        self.entries.append(Entry(name, key or name, dims))

    def bn(self, prefix: str, out: tuple[Segment, ...], key: str) -> None:
        for p in ("weight", "bias", "running_mean", "running_var"):
            self.add(f"{prefix}.{p}", (out,), f"{key}.{p}")
        self.add(f"{prefix}.num_batches_tracked", (), f"{key}.num_batches_tracked")

    def conv_bn(self, prefix: str, inp: tuple[Segment, ...], out: tuple[Segment, ...] | None,
                key: str | None = None, depthwise: bool = False, bn: bool = True,
                bias: bool = False, kr: bool = False, kernel_key: str | None = None) -> tuple[Segment, ...]:
        """A ConvBNAct (or a bare conv with `bn=False`); depthwise keeps the input layout.
        `kernel_key` stores the kernel elsewhere (a KR-off block's kernel is the KR conv's)."""
        key = key or prefix
        out = inp if depthwise else out
        assert out is not None
        conv = f"{prefix}.conv" if bn else prefix
        ckey = f"{key}.conv" if bn else key
        if kr:  # KernelRefineConv: its depthwise conv one level down, plus the gate BN
            self.add(f"{conv}.conv.weight", (out, None, None, None), kernel_key or f"{ckey}.conv.weight")
            self.bn(f"{conv}.gate_bn", ((FIXED + "gate", 1, 0),), f"{ckey}.gate_bn")
        else:
            self.add(f"{conv}.weight", (out, None if depthwise else inp, None, None), kernel_key or f"{ckey}.weight")
        if bias:
            self.add(f"{conv}.bias", (out,), f"{ckey}.bias")
        if bn:
            self.bn(f"{prefix}.bn", out, f"{key}.bn")
        return out


def _ghost(w: _Walker, prefix: str, key: str, inp, o: int, big: int) -> tuple[Segment, ...]:
    h, hb = math.ceil(o / 2), math.ceil(big / 2)
    space = f"{key}.primary"
    primary = (_seg(space, h, hb),)
    w.conv_bn(f"{prefix}.primary_conv", inp, primary, f"{key}.primary_conv")
    w.conv_bn(f"{prefix}.cheap_operation", primary, None, f"{key}.cheap_operation", depthwise=True)
    return (_seg(space, h, hb, 0), _seg(space, h, hb, hb))


def _neck_block(w: _Walker, prefix: str, kind: str, inp, o: int, big: int) -> tuple[Segment, ...]:
    out = _neck_block_body(w, prefix, kind, inp, o, big)
    w.outputs[prefix] = out
    return out


def _neck_block_body(w: _Walker, prefix: str, kind: str, inp, o: int, big: int) -> tuple[Segment, ...]:
    key = f"{prefix}.{kind}"
    if kind == "plus":  # ghost2former
        g = _ghost(w, f"{prefix}.ghost1", f"{key}.ghost1", inp, o, big)
        w.add(f"{prefix}.shortcut1.weight", (g, inp, None, None), f"{key}.shortcut1.weight")
        w.add(f"{prefix}.shortcut2.weight", (g, None, None, None), f"{key}.shortcut2.weight")
        return w.conv_bn(f"{prefix}.proj", g, (_seg(f"{key}.out", o, big),), f"{key}.proj")
    g1 = _ghost(w, f"{prefix}.ghost1", f"{key}.ghost1", inp, o, big)
    g2 = _ghost(w, f"{prefix}.ghost2", f"{key}.ghost2", g1, o, big)
    w.conv_bn(f"{prefix}.shortcut.0", inp, None, f"{key}.shortcut.0", depthwise=True)
    w.conv_bn(f"{prefix}.shortcut.1", inp, g2, f"{key}.shortcut.1")
    return g2


def _concat(a: tuple[Segment, ...], b: tuple[Segment, ...], a_big: int) -> tuple[Segment, ...]:
    return a + tuple((s, n, off + a_big) for s, n, off in b)


def _sep(w: _Walker, prefix: str, inp, out_space: str, o: int, big: int) -> tuple[Segment, ...]:
    """DepthwiseSeparable: dw (keeps layout) then 1x1 to a new space."""
    mid = w.conv_bn(f"{prefix}.depthwise", inp, None, depthwise=True)
    return w.conv_bn(f"{prefix}.pointwise", mid, (_seg(out_space, o, big),))


def entries(arch: ArchSpec, big: ArchSpec) -> list[Entry]:
    """Every state tensor of `build_model(arch)` (no auxiliary branch) as a slice of the
    supernet whose widest configuration is `big` (same structure, widths >= arch's)."""
    return _walk(arch, big).entries


def block_outputs(arch: ArchSpec, big: ArchSpec) -> dict[str, tuple[Segment, ...]]:
    """Output layout of each neck block (name -> segments), e.g. to align two block types."""
    return _walk(arch, big).outputs


def positions(dim: tuple[Segment, ...]) -> list[int]:
    """The supernet channel index of each channel of a layout, in order."""
    return [off + k for _, n, off in dim for k in range(n)]


def _walk(arch: ArchSpec, big: ArchSpec) -> _Walker:
    bb, bbig = arch.backbone, big.backbone
    if not isinstance(bb, MobileNeXtArch) or not isinstance(bbig, MobileNeXtArch):
        raise ValueError("supernets cover MobileNeXt backbones only")
    w = _Walker()
    x = w.conv_bn("backbone.features.0", ((FIXED + "image", 3, 0),),
                  (_seg("stem", bb.stem_channels, bbig.stem_channels),))
    spaces = [x]
    blocks, big_blocks = bb.blocks(), bbig.blocks()
    layer = 0
    for r, (_, _, n, _) in enumerate(bb.rows):
        for i in range(n):
            layer += 1
            spec, bspec = blocks[layer - 1], big_blocks[layer - 1]
            p = f"backbone.features.{layer}.layers"
            k = 0
            if spec.form == "sandglass":  # the supernet always has the KR gate; KR off uses its kernel
                w.conv_bn(f"{p}.0", x, None, depthwise=True, kr=spec.kr, kernel_key=f"{p}.0.conv.conv.weight")
                k = 1
            elif spec.form == "lead":
                w.conv_bn(f"{p}.0", x, None, depthwise=True)
                k = 1
            hidden = (_seg(f"block{layer}.hidden", spec.hidden, bspec.hidden),)
            w.conv_bn(f"{p}.{k}", x, hidden)
            out = (_seg(f"row{r}", spec.oup, bspec.oup),)
            w.conv_bn(f"{p}.{k + 1}", hidden, out)
            if spec.form != "pointwise":
                w.conv_bn(f"{p}.{k + 2}", out, None, depthwise=True)
            x = out
            spaces.append(x)
    feats = [spaces[i] for i in bb.out_stages]

    nw, nbig = arch.neck.width, big.neck.width
    reduced = [w.conv_bn(f"fpn.reduce_layers.{i}", f, (_seg(f"reduce{i}", nw, nbig),))
               for i, f in enumerate(feats)]
    n = len(reduced)
    types = arch.neck.block_types
    inner = [reduced[-1]]
    for i in range(n - 1):
        cat = _concat(inner[0], reduced[-2 - i], nbig)
        inner.insert(0, _neck_block(w, f"fpn.top_down_blocks.{i}", types[i], cat, nw, nbig))
    outs = [inner[0]]
    for i in range(n - 1):
        down = _sep(w, f"fpn.downsamples.{i}", outs[-1], f"down{i}", nw, nbig)
        cat = _concat(down, inner[i + 1], nbig)
        outs.append(_neck_block(w, f"fpn.bottom_up_blocks.{i}", types[n - 1 + i], cat, nw, nbig))
    for i in range(arch.neck.num_extra_level):
        space = f"extra{i}"  # in_conv and out_conv outputs are summed: one space
        _sep(w, f"fpn.extra_lvl_in_conv.{i}", reduced[-1], space, nw, nbig)
        outs.append(_sep(w, f"fpn.extra_lvl_out_conv.{i}", outs[-1], space, nw, nbig))

    hw, hbig = arch.head.feat_channels, big.head.feat_channels
    if arch.head.decoupled:
        raise ValueError("supernets cover the NanoDet-Plus head, not the decoupled one")
    head_out = ((FIXED + "head", arch.num_outputs, 0),)
    for lvl, feat in enumerate(outs):
        x = feat
        for j in range(arch.head.stacked_convs):
            x = _sep(w, f"head.cls_convs.{lvl}.{j}", x, f"head{lvl}.{j}", hw, hbig)
        w.add(f"head.gfl_cls.{lvl}.weight", (head_out, x, None, None))
        w.add(f"head.gfl_cls.{lvl}.bias", (head_out,))
    return w
