"""The search space: loading, unknown keys, sampling, Optuna, fingerprint."""

from __future__ import annotations

import random

import optuna
import pytest
import torch

from ednas.errors import ConfigError
from ednas.models import build_model
from ednas.search import SearchSpace


@pytest.fixture(scope="module")
def space() -> SearchSpace:
    return SearchSpace.load()


def test_default_space_has_the_issue_genes(space: SearchSpace) -> None:
    cfg = space.config
    assert cfg.backbone.widths == (0.5, 0.75, 1.0, 1.25)
    assert cfg.neck.width == (64, 96, 128)
    assert cfg.input_size.choices == (256, 288, 320, 352, 384, 416)
    assert space.base.backbone.widths == (1.0,) * 5  # the full Enhanced NanoDet_s


def test_fingerprint_is_stable_and_sensitive(space: SearchSpace, tmp_path) -> None:
    again = SearchSpace.from_dict(space.to_dict())
    assert again.fingerprint() == space.fingerprint()
    data = space.to_dict()
    data["neck"]["width"] = [64, 96]
    assert SearchSpace.from_dict(data).fingerprint() != space.fingerprint()


@pytest.mark.parametrize("data, where", [
    ({"backbone": {"widthz": [1.0]}}, "widthz"),
    ({"searchable": True}, "searchable"),
    ({"input_size": {"min": 250, "max": 320}}, "multiples of 32"),
])
def test_bad_space_is_rejected(data: dict, where: str) -> None:
    with pytest.raises(ConfigError, match=where):
        SearchSpace.from_dict(data)


def test_unknown_key_in_file_lists_valid_keys(tmp_path) -> None:
    path = tmp_path / "space.yml"
    path.write_text("base: enhanced_nanodet_s\nneck: {width: [64], depth: [2]}\n")
    with pytest.raises(ConfigError, match="valid keys are: block_types, width"):
        SearchSpace.load(path)


def test_every_sample_builds_and_runs(space: SearchSpace) -> None:
    rng = random.Random(0)
    for _ in range(4):
        arch = space.sample(rng)
        model = build_model(arch).eval()
        with torch.no_grad():
            out = model(torch.zeros(1, 3, 64, 64))
        assert out.shape[-1] == arch.num_outputs


def test_kr_genes_follow_the_eligible_blocks(space: SearchSpace) -> None:
    # row 2 at 1.0 (144 ch) into row 3 at 0.75 (144 ch): equal widths around a stride-2 block
    genes = {"width_row1": 1.0, "width_row2": 0.75}
    names = []

    def choose(name, choices):
        names.append(name)
        return genes.get(name, 1.0 if name.startswith("width") else choices[0])

    arch = space.decode(choose)
    eligible = [i for i, b in enumerate(arch.backbone.blocks(), 1) if b.form == "sandglass"]
    assert [n for n in names if n.startswith("kr_")] == [f"kr_block{i}" for i in eligible]
    build_model(arch)


def test_suggest_matches_decode(space: SearchSpace) -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    trial = study.ask()
    arch = space.suggest(trial)
    assert arch == space.decode(lambda name, _choices: trial.params[name])
