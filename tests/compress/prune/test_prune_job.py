"""The pruning job as a library function: a tiny model cut by a ratio, no evaluation images."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from ednas.arch import AuxArch, NeckArch
from ednas.arch.zoo import get_arch
from ednas.compress.prune.job import PruneOptions, parse_target, prune
from ednas.errors import InputError
from ednas.models import build_model, load_checkpoint
from ednas.recipe import Recipe


def _tiny_recipe() -> Recipe:
    base = get_arch("enhanced_nanodet_s")
    arch = dataclasses.replace(base, neck=NeckArch(width=32), head=dataclasses.replace(base.head, feat_channels=32),
                               aux=AuxArch(feat_channels=32, num_groups=8), input_size=64, num_classes=80)
    return Recipe(name="tiny", model=arch)


def test_prune_by_ratio_writes_the_set(tmp_path, calib_dir):
    torch.manual_seed(0)
    recipe = _tiny_recipe()
    model = build_model(recipe.model)
    out = tmp_path / "p.ckpt"
    result = prune(recipe, model, "tiny.ckpt", PruneOptions(out=out, ratio=0.3, threads=1, calib=str(calib_dir)))
    s = result.summary
    assert s["ratio"] == 0.3 and s["target_relative"] is None and s["source"] == "tiny.ckpt"
    assert s["params"]["after"] < s["params"]["before"] and s["macs"]["after"] < s["macs"]["before"]
    assert s["latency"]["relative_measured"] > 0 and s["latency"]["threads"] == 1 and "mAP" not in s
    assert json.loads(result.summary_path.read_text()) == s
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.arch.yml", "p.ckpt", "p.json"]
    from ednas.arch import ArchSpec

    pruned = build_model(ArchSpec.load(result.arch))
    load_checkpoint(pruned, result.checkpoint)
    assert pruned.arch.neck.width < recipe.model.neck.width


@pytest.mark.parametrize("options, match", [
    (dict(ratio=1.2), "`ratio` 1.2"),
    (dict(), "exactly one of `target_latency` and `ratio`"),
    (dict(ratio=0.3, finetune_epochs=2), "`finetune_epochs` needs `data`"),
    (dict(ratio=0.3, images="imgs"), "both `images` and `ann`"),
])
def test_bad_options_name_the_argument(tmp_path, options, match):
    with pytest.raises(InputError, match=match):
        PruneOptions(out=tmp_path / "p.ckpt", **options).check()


def test_target_errors_name_the_argument():
    with pytest.raises(InputError, match="`target_latency` 150%"):
        parse_target("150%")


def test_a_table_for_another_target_or_space_is_refused_before_any_work(tmp_path):
    """The committed table is for 2 threads and the enhanced_nanodet space (and possibly another
    CPU than this one): asked for 1 thread, or for a model outside its space, prune refuses in
    one line before exporting or measuring anything."""
    from pathlib import Path

    from ednas.latency.table import LatencyTableError

    table = str(Path(__file__).resolve().parents[3] / "latency_tables" / "enhanced_nanodet_cpu_fp32_2t.csv")
    recipe = _tiny_recipe()
    model = build_model(recipe.model)
    for threads, arch_recipe in ((1, recipe), (2, recipe)):  # threads 2: the tiny widths are not in the space
        with pytest.raises(LatencyTableError) as err:
            prune(arch_recipe, model, "tiny.ckpt", PruneOptions(out=tmp_path / "p.ckpt", ratio=0.3, threads=threads,
                                                                 table=table))
        assert "\n" not in str(err.value)
    assert not list(tmp_path.iterdir())
