"""The training job as a library function: what a run trains and where, checked before any work."""

import pytest

from conftest import TINY_RECIPE_YAML, write_coco
from ednas.errors import InputError
from ednas.recipe import load_recipe
from ednas.train.job import TrainOptions, plan, train


def test_plan_applies_overrides_and_data(tmp_path):
    write_coco(tmp_path / "coco")
    (tmp_path / "tiny.yml").write_text(TINY_RECIPE_YAML)
    recipe = load_recipe(tmp_path / "tiny.yml")
    planned, out = plan(recipe, TrainOptions(out=tmp_path / "run", data=str(tmp_path / "coco"), epochs=3, lr=0.01))
    assert out == tmp_path / "run" and planned.train.epochs == 3 and planned.train.lr == 0.01
    assert planned.train.batch_size == recipe.train.batch_size and planned.data.train.images


def test_resume_errors_name_the_arguments(tmp_path):
    write_coco(tmp_path / "coco")
    (tmp_path / "tiny.yml").write_text(TINY_RECIPE_YAML)
    recipe = load_recipe(tmp_path / "tiny.yml")
    with pytest.raises(InputError, match="drop `resume` or give the run's `out`"):
        plan(recipe, TrainOptions(out=tmp_path / "run", resume=True))
    result, out = train(recipe, TrainOptions(out=tmp_path / "run", data=str(tmp_path / "coco")))
    assert result.epochs == 1 and (out / "last.ckpt").exists()
    with pytest.raises(InputError, match="add `resume` to continue it or give another `out`"):
        plan(recipe, TrainOptions(out=tmp_path / "run"))
