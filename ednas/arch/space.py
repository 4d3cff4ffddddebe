"""The search space: a base architecture plus the genes a search may change.

    base: enhanced_nanodet_s          # zoo name or ARCH.yml: the supernet baseline
    backbone:
      widths: [0.5, 0.75, 1.0, 1.25]  # width multiplier choices, one gene per backbone row
      kr: [true, false]               # kernel refine choices, one gene per KR-eligible block
    neck:
      block_types: [normal, plus]     # one gene per PAN block
      width: [64, 96, 128]            # neck width = head width
    input_size: {min: 256, max: 416, step: 32}

Parsed once into typed, frozen configs (unknown keys rejected). `sample(rng)` and
`suggest(trial)` share one decoding path (`decode`), so a random sample and an Optuna trial
describe the same space; both return an ArchSpec that `build_model` accepts.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from ednas.arch.spec import BUILDER_VERSION, ArchSpec, MobileNeXtArch, NeckBlock
from ednas.config import from_dict, load_yaml, to_dict
from ednas.errors import ConfigError

DEFAULT_SPACE = Path(__file__).resolve().parent.parent.parent / "search_spaces" / "enhanced_nanodet.yml"

# choose(gene name, choices) -> one of the choices
Chooser = Callable[[str, Sequence[Any]], Any]


@dataclass(frozen=True)
class BackboneGenes:
    widths: tuple[float, ...] = (1.0,)  # width multiplier choices per row (one gene per row)
    kr: tuple[bool, ...] = (True,)  # KR choices per KR-eligible block


@dataclass(frozen=True)
class NeckGenes:
    block_types: tuple[NeckBlock, ...] = ("plus",)  # choices per PAN block
    width: tuple[int, ...] = (96,)  # neck (and head) width choices


@dataclass(frozen=True)
class InputSizeRange:
    min: int = 320
    max: int = 320
    step: int = 32  # multiple of 32 (the coarsest stride)

    def __post_init__(self) -> None:
        if self.step <= 0 or self.step % 32 or self.min % 32 or self.min > self.max:
            raise ValueError(f"input_size {self.min}..{self.max} step {self.step}: use multiples of 32, min <= max")

    @property
    def choices(self) -> tuple[int, ...]:
        return tuple(range(self.min, self.max + 1, self.step))


@dataclass(frozen=True)
class SpaceConfig:
    """The YAML file, typed."""

    base: str = "enhanced_nanodet_s"  # zoo architecture name or ARCH.yml path
    backbone: BackboneGenes = field(default_factory=BackboneGenes)
    neck: NeckGenes = field(default_factory=NeckGenes)
    input_size: InputSizeRange = field(default_factory=InputSizeRange)

    def __post_init__(self) -> None:
        for name, choices in (("backbone.widths", self.backbone.widths), ("backbone.kr", self.backbone.kr),
                              ("neck.block_types", self.neck.block_types), ("neck.width", self.neck.width)):
            if not choices:
                raise ValueError(f"{name} needs at least one choice")
        bad = [w for w in self.neck.width if w % 8]
        if bad:
            raise ValueError(f"neck.width {bad[0]} must be a multiple of 8")


class SearchSpace:
    """Genes over a base ArchSpec. Only MobileNeXt backbones are searchable."""

    def __init__(self, config: SpaceConfig, base: ArchSpec, name: str = "space") -> None:
        if not isinstance(base.backbone, MobileNeXtArch):
            raise ConfigError(f"{name}: base {config.base!r} has a {base.backbone.type} backbone; "
                              "the search space needs a mobilenext one")
        self.config = config
        self.base = base
        self.name = name

    @classmethod
    def load(cls, path: str | Path | None = None) -> "SearchSpace":
        """Load a space YAML (default: search_spaces/enhanced_nanodet.yml)."""
        path = Path(path) if path is not None else DEFAULT_SPACE
        data = load_yaml(path)
        return cls.from_dict(data if data is not None else {}, where=str(path), name=path.stem,
                             base_dir=path.parent)

    @classmethod
    def from_dict(cls, data: dict, where: str = "space", name: str = "space",
                  base_dir: Path | None = None) -> "SearchSpace":
        from ednas.recipe import resolve_arch

        config = from_dict(SpaceConfig, data, where)
        base = resolve_arch({"arch": config.base}, f"{where}: base", base_dir)
        return cls(config, base, name)

    def to_dict(self) -> dict:
        return to_dict(self.config)

    def fingerprint(self) -> str:
        """Stable short hash of the genes and the resolved base architecture (not of file
        paths or formatting): tables measured for one space are refused by another."""
        payload = {"genes": {k: v for k, v in self.to_dict().items() if k != "base"},
                   "base": self.base.to_dict(), "builder": BUILDER_VERSION}
        blob = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    # -- decoding ------------------------------------------------------------------------
    def decode(self, choose: Chooser) -> ArchSpec:
        """The ArchSpec for the genes `choose` picks. One KR gene per KR-eligible (sandglass)
        block, named by block index so a gene always means the same block."""
        cfg, base = self.config, self.base
        backbone = base.backbone
        assert isinstance(backbone, MobileNeXtArch)
        widths = tuple(choose(f"width_row{r}", cfg.backbone.widths) for r in range(len(backbone.rows)))
        probe = dataclasses.replace(backbone, widths=widths, kr=())  # all KR on: find eligible blocks
        kr = tuple(choose(f"kr_block{i}", cfg.backbone.kr)
                   for i, b in enumerate(probe.blocks(), start=1) if b.form == "sandglass")
        width = choose("neck_width", cfg.neck.width)
        types = tuple(choose(f"neck_block{i}", cfg.neck.block_types) for i in range(len(base.neck.block_types)))
        return base.replace(
            backbone=dataclasses.replace(backbone, widths=widths, kr=kr),
            neck=dataclasses.replace(base.neck, width=width, block_types=types),
            head=dataclasses.replace(base.head, feat_channels=width),
            input_size=choose("input_size", cfg.input_size.choices),
        )

    def uniform(self, width: float) -> ArchSpec:
        """The base with every backbone row at `width` (the plain scaling a search must beat)."""
        b = self.base.backbone
        assert isinstance(b, MobileNeXtArch)
        return self.base.replace(backbone=dataclasses.replace(b, widths=(width,) * len(b.rows)))

    def sample(self, rng: random.Random) -> ArchSpec:
        """A uniformly random architecture (each gene independently)."""
        return self.decode(lambda _name, choices: rng.choice(list(choices)))

    def suggest(self, trial: Any) -> ArchSpec:
        """The architecture an Optuna trial suggests (categorical parameter per gene)."""
        return self.decode(lambda name, choices: trial.suggest_categorical(name, list(choices)))

    def covering_archs(self) -> Iterator[ArchSpec]:
        """Architectures that together contain every latency unit of the space.

        All width, neck-width and input-size combinations, each with every KR flag set alike
        and every neck block type alike: a unit depends on its own KR flag / block type and
        not on the other blocks', so uniform settings reach each per-block choice. (Parts are
        built once and combined: this runs over ~10^5 architectures.)"""
        cfg, base = self.config, self.base
        backbones = []
        for widths in itertools.product(cfg.backbone.widths, repeat=len(base.backbone.rows)):  # type: ignore[union-attr]
            probe = dataclasses.replace(base.backbone, widths=widths, kr=())
            eligible = sum(b.form == "sandglass" for b in probe.blocks())  # type: ignore[union-attr]
            backbones += [dataclasses.replace(probe, kr=(k,) * eligible) for k in cfg.backbone.kr]
        necks = [(dataclasses.replace(base.neck, width=w, block_types=(t,) * len(base.neck.block_types)),
                  dataclasses.replace(base.head, feat_channels=w))
                 for t, w in itertools.product(cfg.neck.block_types, cfg.neck.width)]
        for backbone, (neck, head), size in itertools.product(backbones, necks, cfg.input_size.choices):
            yield base.replace(backbone=backbone, neck=neck, head=head, input_size=size)

    def size(self) -> int:
        """Number of distinct gene assignments (upper bound on distinct architectures)."""
        cfg, base = self.config, self.base
        n_kr = sum(b.form == "sandglass" for b in base.backbone.blocks())  # type: ignore[union-attr]
        return (len(cfg.backbone.widths) ** len(base.backbone.rows)  # type: ignore[union-attr]
                * len(cfg.backbone.kr) ** n_kr * len(cfg.neck.block_types) ** len(base.neck.block_types)
                * len(cfg.neck.width) * len(cfg.input_size.choices))
