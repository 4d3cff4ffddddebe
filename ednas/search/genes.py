"""Genes <-> architectures: the plain dict form of a point of a SearchSpace.

A gene dict (name -> value, e.g. {"width_row0": 0.75, "kr_block3": False, ...}) is what an
Optuna trial's params hold and what trials.csv shows. `genes_of` inverts `SearchSpace.decode`
so known architectures (the base, uniform width scalings) can be enqueued as trials.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

from ednas.arch import ArchSpec, MobileNeXtArch
from ednas.arch.space import SearchSpace

Genes = dict[str, Any]


def decode(space: SearchSpace, genes: Genes) -> tuple[ArchSpec, Genes]:
    """The architecture of `genes` and the genes it actually used (the KR genes that exist
    depend on the widths); a gene missing from `genes` takes its first choice."""
    used: Genes = {}

    def choose(name: str, choices: Sequence[Any]) -> Any:
        value = genes.get(name, choices[0])
        used[name] = value
        return value

    return space.decode(choose), used


def genes_of(space: SearchSpace, arch: ArchSpec) -> Genes | None:
    """The genes that decode to `arch`, or None when `arch` is not in `space`."""
    backbone = arch.backbone
    if not isinstance(backbone, MobileNeXtArch):
        return None
    blocks = backbone.blocks()
    wanted = {"neck_width": arch.neck.width, "input_size": arch.input_size}
    wanted.update({f"width_row{r}": w for r, w in enumerate(backbone.widths)})
    wanted.update({f"kr_block{i}": b.kr for i, b in enumerate(blocks, start=1)})
    wanted.update({f"neck_block{i}": t for i, t in enumerate(arch.neck.block_types)})
    genes: Genes = {}
    missing = False

    def choose(name: str, choices: Sequence[Any]) -> Any:
        nonlocal missing
        value = wanted.get(name)
        if value not in list(choices):
            missing = True
            value = choices[0]
        genes[name] = value
        return value

    try:
        decoded = space.decode(choose)
    except (ValueError, IndexError):
        return None
    return genes if not missing and decoded == arch else None


def descend(space: SearchSpace, genes: Genes, cost: Callable[[ArchSpec], float],
            max_rounds: int = 10) -> tuple[Genes, float]:
    """Per-gene descent on `cost` from `genes`: try every choice of every gene, keep any
    improvement, until a full round changes nothing. Returns (genes, cost)."""
    choices: dict[str, list[Any]] = {}

    def record(name: str, options: Sequence[Any]) -> Any:
        choices[name] = list(options)
        return genes.get(name, options[0])

    arch = space.decode(record)
    best = cost(arch)
    for _ in range(max_rounds):
        improved = False
        for name in list(choices):
            for value in choices[name]:
                if value == genes.get(name, choices[name][0]):
                    continue
                trial_arch, used = decode(space, {**genes, name: value})
                ms = cost(trial_arch)
                if ms < best:
                    best, genes, improved = ms, used, True
                    space.decode(record)  # the gene set may change with the widths
        if not improved:
            break
    return genes, best
