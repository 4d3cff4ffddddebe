"""The architecture description: one frozen dataclass, serialisable to YAML, that the search
space produces, the model builder consumes and the latency table uses as its key.

Everything derived (block widths, hidden widths, which blocks may carry kernel refine, the
neck's input channels) is computed here from the description, never written twice.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ednas.config import dump_yaml, from_dict, load_yaml, to_dict
from ednas.errors import ConfigError

# Bump when a derivation rule below changes what a description builds (block forms, hidden
# widths, ...): latency tables record it, so tables measured under old rules are refused.
BUILDER_VERSION = 2

Activation = Literal["relu", "relu6", "leaky_relu", "hardswish"]
NeckBlock = Literal["normal", "plus"]  # normal = NanoDet-Plus ghost_res, plus = ghost2former
SandglassForm = Literal["lead", "pointwise", "pointwise_down", "sandglass"]

# MobileNeXt rows (t expansion/reduction ratio, c output channels, n repeats, s first stride);
# row 5's stride is 2 for the s model and 1 for m and l.
MOBILENEXT_ROWS: tuple[tuple[int, int, int, int], ...] = (
    (2, 96, 1, 2),
    (6, 144, 1, 1),
    (6, 192, 3, 2),
    (6, 288, 3, 2),
    (6, 384, 4, 2),
    (6, 576, 4, 2),
    (6, 960, 2, 1),
)


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round `value` to a multiple of `divisor`, never going down by more than 10 %."""
    min_value = min_value or divisor
    new = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return new


@dataclass(frozen=True)
class SandglassSpec:
    """One resolved MobileNeXt block: what the builder instantiates and the LUT times."""

    inp: int  # input channels
    oup: int  # output channels
    hidden: int  # bottleneck width between the two 1x1 convs
    stride: int  # stride of the block's (last) depthwise conv
    form: SandglassForm  # which of the four sandglass layouts (see models/mobilenext.py)
    kr: bool  # first depthwise conv carries kernel refine (only form "sandglass")

    @property
    def residual(self) -> bool:
        return self.form == "sandglass" and self.inp == self.oup and self.stride == 1


@dataclass(frozen=True)
class MobileNeXtArch:
    """MobileNeXt backbone with kernel refine; ReLU6 throughout."""

    type: Literal["mobilenext"] = "mobilenext"
    rows: tuple[tuple[int, int, int, int], ...] = MOBILENEXT_ROWS[:5]  # (t, c, n, s) per row
    widths: tuple[float, ...] = ()  # width multiplier per row; () = 1.0 everywhere
    kr: tuple[bool, ...] = ()  # KR on/off per eligible (form "sandglass") block; () = all on
    out_stages: tuple[int, int, int] = (5, 8, 12)  # layer indices (stem = 0) feeding the neck
    stem_channels: int = 32  # 3x3 stride-2 stem conv
    activation: Activation = "relu6"

    def __post_init__(self) -> None:
        if not self.widths:
            object.__setattr__(self, "widths", (1.0,) * len(self.rows))
        if len(self.widths) != len(self.rows):
            raise ValueError(f"widths has {len(self.widths)} entries for {len(self.rows)} rows")
        eligible = sum(b.form == "sandglass" for b in self._blocks(kr_all=True))
        if not self.kr:
            object.__setattr__(self, "kr", (True,) * eligible)
        if len(self.kr) != eligible:
            raise ValueError(f"kr has {len(self.kr)} entries; this backbone has {eligible} KR-eligible blocks")
        if max(self.out_stages) > self.num_layers - 1:
            raise ValueError(f"out_stages {self.out_stages} exceed the {self.num_layers - 1} blocks")

    @property
    def num_layers(self) -> int:
        """Stem plus all blocks."""
        return 1 + sum(n for _, _, n, _ in self.rows)

    def blocks(self) -> list[SandglassSpec]:
        """All blocks in order (layer i of the backbone is blocks()[i - 1])."""
        return self._blocks(kr_all=False)

    def _blocks(self, kr_all: bool) -> list[SandglassSpec]:
        specs: list[SandglassSpec] = []
        inp = self.stem_channels
        kr_flags = iter(self.kr if not kr_all else ())
        for (t, c, n, s), width in zip(self.rows, self.widths):
            oup = make_divisible(c * width, 8)
            for i in range(n):
                stride = s if i == 0 else 1
                hidden = inp // t
                if hidden < oup / 6:
                    hidden = make_divisible(math.ceil(oup / 6), 16)
                # the form follows the row structure, not the realised widths, so that
                # narrowing or widening rows (search, pruning) never changes the topology
                if t == 2:
                    form = "lead"
                elif i > 0 or (n == 1 and s == 1):
                    form = "sandglass"
                elif stride == 2:
                    form = "pointwise_down"
                else:
                    form = "pointwise"
                kr = form == "sandglass" and (kr_all or next(kr_flags))
                specs.append(SandglassSpec(inp, oup, hidden, stride, form, kr))
                inp = oup
        return specs

    def out_channels(self) -> tuple[int, ...]:
        blocks = self.blocks()
        return tuple(blocks[i - 1].oup for i in self.out_stages)

    def out_strides(self) -> tuple[int, ...]:
        strides, total = [], 2  # the stem has stride 2
        for block in self.blocks():
            total *= block.stride
            strides.append(total)
        return tuple(strides[i - 1] for i in self.out_stages)


SHUFFLENET_CHANNELS = {"0.5x": (24, 48, 96, 192), "1.0x": (24, 116, 232, 464), "1.5x": (24, 176, 352, 704)}


@dataclass(frozen=True)
class ShuffleNetV2Arch:
    """ShuffleNetV2 as used by NanoDet-Plus (no final 1x1 conv)."""

    type: Literal["shufflenetv2"] = "shufflenetv2"
    model_size: Literal["0.5x", "1.0x", "1.5x"] = "1.0x"
    stage_repeats: tuple[int, int, int] = (4, 8, 4)
    out_stages: tuple[int, int, int] = (2, 3, 4)  # stage numbers (2..4) feeding the neck
    activation: Activation = "leaky_relu"

    def out_channels(self) -> tuple[int, ...]:
        return tuple(SHUFFLENET_CHANNELS[self.model_size][i - 1] for i in self.out_stages)

    def out_strides(self) -> tuple[int, ...]:
        return tuple(2 ** (i + 1) for i in self.out_stages)


BackboneArch = MobileNeXtArch | ShuffleNetV2Arch


@dataclass(frozen=True)
class NeckArch:
    """GhostPAN: reduce to `width`, top-down and bottom-up ghost blocks, extra levels."""

    width: int = 96  # channels of every neck level
    # block type per PAN block: top-down blocks (coarse to fine) then bottom-up (fine to coarse)
    block_types: tuple[NeckBlock, ...] = ("plus", "plus", "plus", "plus")
    kernel_size: int = 5  # depthwise kernel of downsamples, shortcuts and ghost2former
    num_extra_level: int = 1  # extra stride-2 levels on top of the backbone's coarsest

    def __post_init__(self) -> None:
        if self.width % 8:
            raise ValueError(f"neck width {self.width} must be a multiple of 8")


@dataclass(frozen=True)
class HeadArch:
    """NanoDet-Plus head: per-level depthwise-separable convs then one 1x1 prediction conv."""

    feat_channels: int = 0  # width of the head convs; 0 = the neck width
    stacked_convs: int = 2  # depthwise-separable convs per level
    kernel_size: int = 5  # depthwise kernel of those convs
    decoupled: bool = False  # l variant: separate regression branch after the stacked convs
    reg_max: int = 7  # each box side is a distribution over reg_max + 1 bins


@dataclass(frozen=True)
class AuxArch:
    """Training-only assign guidance module: a copy of the neck plus a conv head (GroupNorm)."""

    feat_channels: int = 192  # width of the auxiliary head's convs
    stacked_convs: int = 4  # 3x3 conv + GN + act per branch
    num_groups: int = 32  # GroupNorm groups


@dataclass(frozen=True)
class ArchSpec:
    """A whole detector. `num_classes` is filled from the recipe's class names."""

    backbone: BackboneArch = field(default_factory=MobileNeXtArch)
    neck: NeckArch = field(default_factory=NeckArch)
    head: HeadArch = field(default_factory=HeadArch)
    aux: AuxArch = field(default_factory=AuxArch)
    input_size: int = 320  # square network input (pixels)
    num_classes: int = 80
    activation: Activation = "leaky_relu"  # neck, head and auxiliary branch

    def __post_init__(self) -> None:
        if self.head.feat_channels == 0:
            object.__setattr__(self, "head", dataclasses.replace(self.head, feat_channels=self.neck.width))
        expected = 2 * (len(self.backbone.out_stages) - 1)
        if len(self.neck.block_types) != expected:
            raise ValueError(f"neck.block_types needs {expected} entries (one per PAN block)")
        if self.input_size % 32:
            raise ValueError(f"input_size {self.input_size} must be a multiple of 32")

    @property
    def strides(self) -> tuple[int, ...]:
        """Strides of the head's levels: the backbone's out strides plus the extra levels."""
        base = self.backbone.out_strides()
        return base + tuple(base[-1] * 2 ** (i + 1) for i in range(self.neck.num_extra_level))

    @property
    def num_outputs(self) -> int:
        """Channels per prior of the inference output: classes + 4 distributions."""
        return self.num_classes + 4 * (self.head.reg_max + 1)

    def replace(self, **changes) -> "ArchSpec":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return to_dict(self)

    def hash(self, length: int = 12) -> str:
        """Stable short hex digest of the description (same architecture, same hash)."""
        blob = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:length]

    @classmethod
    def from_dict(cls, data: dict, where: str = "arch") -> "ArchSpec":
        return from_dict(cls, data, where)

    def save(self, path: str | Path) -> None:
        dump_yaml(self.to_dict(), path)

    @classmethod
    def load(cls, path: str | Path) -> "ArchSpec":
        data = load_yaml(path)
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping of architecture fields")
        return cls.from_dict(data, where=str(path))
