"""Genes <-> architectures, warm start and the baselines."""

from __future__ import annotations

from ednas.search.genes import decode, descend, genes_of
from ednas.search.study import baseline_archs, warm_start_archs


def test_base_round_trips(tiny) -> None:
    space = tiny.space
    genes = genes_of(space, space.base)
    assert genes is not None and decode(space, genes)[0] == space.base


def test_arch_outside_the_space_has_no_genes(tiny) -> None:
    space = tiny.space
    assert genes_of(space, space.base.replace(input_size=128)) is None  # input sizes are 64..96


def test_uniform_scaling_changes_only_the_backbone_widths(tiny) -> None:
    space = tiny.space
    half = space.uniform(0.5)
    assert half.backbone.widths == (0.5,) * 4
    assert (half.neck, half.input_size, half.head) == (space.base.neck, space.base.input_size, space.base.head)
    assert genes_of(space, half) is not None
    assert set(warm_start_archs(space)) == {"base", "uniform_0.5", "base_64px"}  # widths, then input sizes
    assert set(baseline_archs(space)) == {"base", "uniform_0.5"}  # 0.75 is not a choice of this space


def test_descend_finds_the_smallest_input(tiny) -> None:
    space = tiny.space
    genes, cost = descend(space, genes_of(space, space.base), lambda a: a.input_size + a.neck.width)
    assert (genes["input_size"], genes["neck_width"], cost) == (64, 16, 80)
