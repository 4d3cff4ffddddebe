"""Every bundled recipe builds and runs; sizes match the published numbers exactly."""

from pathlib import Path

import pytest
import torch

from ednas.models import build_model
from ednas.models.complexity import complexity
from ednas.recipe import RECIPES_DIR, load_recipe

RECIPES = sorted(p.name for p in Path(RECIPES_DIR).glob("*.yml") if not p.name.startswith("pipeline_"))  # model recipes

PARAMS = {
    "enhanced_nanodet_s.yml": 813_632,
    "enhanced_nanodet_m.yml": 1_310_726,
    "enhanced_nanodet_l.yml": 2_664_072,
    "nanodet_plus_m.yml": 1_197_924,
    "nanodet_plus_m_1.5x.yml": 2_477_792,
}
MACS = {"enhanced_nanodet_s.yml": 0.595e9, "enhanced_nanodet_m.yml": 1.225e9, "nanodet_plus_m.yml": 0.451e9}


def test_all_recipes_are_present():
    assert len(RECIPES) >= 9


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_builds_and_runs(name):
    recipe = load_recipe(RECIPES_DIR / name)
    model = build_model(recipe.model).eval()
    s = recipe.model.input_size
    with torch.no_grad():
        out = model.inference(torch.randn(1, 3, s, s))
    levels = sum((-(-s // st)) ** 2 for st in recipe.model.strides)
    assert out.shape == (1, levels, len(recipe.class_names) + 32)
    assert 0 <= out[..., : len(recipe.class_names)].min() and out[..., : len(recipe.class_names)].max() <= 1


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_parameter_counts_are_exact(name):
    assert build_model(load_recipe(RECIPES_DIR / name).model).num_params() == PARAMS[name]


@pytest.mark.parametrize("name", sorted(MACS))
def test_macs_within_two_percent(name):
    macs = complexity(build_model(load_recipe(RECIPES_DIR / name).model))["macs"]
    assert abs(macs / MACS[name] - 1) < 0.02


def test_aux_branch_is_excluded_from_params_and_drives_training_forward():
    recipe = load_recipe("enhanced_nanodet_s")
    model = build_model(recipe.model, aux=True)
    assert model.num_params() == 813_632
    out, aux = model.forward_train(torch.randn(2, 3, 320, 320), detach_aux=True)
    assert out.shape == aux.shape == (2, 2125, 112)
