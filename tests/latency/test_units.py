"""Cutting architectures into latency units."""

from __future__ import annotations

import random

import numpy as np
import onnxruntime as ort

from ednas.latency.export import export_unit
from ednas.latency.units import arch_units, space_units
from ednas.search import SearchSpace


def test_space_units_cover_sampled_archs() -> None:
    space = SearchSpace.load()
    units = space_units(space)
    rng = random.Random(3)
    for _ in range(50):
        arch = space.sample(rng)
        parts = arch_units(arch)
        assert all(u.key in units for _, u in parts)
        blocks = [dict(u.params) for _, u in parts if u.kind == "block"]
        assert [(b["inp"], b["oup"], b["kr"]) for b in blocks] == [
            (s.inp, s.oup, s.kr) for s in arch.backbone.blocks()]


def test_units_export_and_run(tiny_space, tmp_path) -> None:
    kinds = {}
    for _, unit in arch_units(tiny_space.base):
        kinds.setdefault(unit.kind, unit)
    assert set(kinds) == {"stem", "block", "reduce", "top_down", "bottom_up", "extra", "head", "tail"}
    for kind, unit in kinds.items():
        path = export_unit(unit, tmp_path / f"{kind}.onnx")
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        feeds = {i.name: np.zeros(s, np.float32) for i, s in zip(sess.get_inputs(), unit.inputs)}
        assert sess.run(None, feeds)[0].size > 0
