"""`--data` path resolution for the usual dataset layouts."""

import pytest

from conftest import tiny_recipe
from ednas.errors import InputError
from ednas.train.datasets import resolve_data, with_data


def _touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{}")
    return path


def test_official_coco_layout_gives_both_splits(tmp_path):
    for split in ("train2017", "val2017"):
        _touch(tmp_path / "annotations" / f"instances_{split}.json")
        _touch(tmp_path / "annotations" / f"person_keypoints_{split}.json")
        (tmp_path / split).mkdir()
    found = resolve_data(tmp_path)
    assert found["train"].images == str(tmp_path / "train2017")
    assert found["val"].ann == str(tmp_path / "annotations" / "instances_val2017.json")
    assert found["train"].format == "coco"


def test_single_json_with_images_folder(tmp_path):
    ann = _touch(tmp_path / "annotations" / "instances_train128.json")
    (tmp_path / "images").mkdir()
    assert resolve_data(tmp_path) == resolve_data(ann)
    assert resolve_data(ann)["train"].images == str(tmp_path / "images")
    assert "val" not in resolve_data(ann)


def test_voc_folder(tmp_path):
    (tmp_path / "Annotations").mkdir()
    (tmp_path / "JPEGImages").mkdir()
    cfg = resolve_data(tmp_path)["train"]
    assert (cfg.format, cfg.images, cfg.ann) == ("voc", str(tmp_path / "JPEGImages"), str(tmp_path / "Annotations"))


@pytest.mark.parametrize("make", ["missing", "no_images", "empty"])
def test_bad_paths_are_user_errors(tmp_path, make):
    if make == "no_images":
        _touch(tmp_path / "annotations" / "instances_train.json")
    path = tmp_path / "nope" if make == "missing" else tmp_path
    with pytest.raises(InputError):
        resolve_data(path)


def test_with_data_replaces_the_recipe_splits(tmp_path):
    ann = _touch(tmp_path / "a" / "instances_train.json")
    (tmp_path / "a" / "images").mkdir()
    recipe = with_data(tiny_recipe(), str(ann), str(ann))
    assert recipe.data.train.ann == recipe.data.val.ann == str(ann)
