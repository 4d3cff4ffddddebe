"""From a path the user types (`--data`) to the recipe's dataset sections, and from the recipe
to the datasets the trainer consumes.

Accepted layouts (the first that matches wins):

    COCO_DIR/annotations/instances_<split>.json + COCO_DIR/<split>/          (official COCO)
    COCO_DIR/annotations/*.json + COCO_DIR/images/[<split>/]                 (e.g. coco-train128)
    FILE.json  (images in ../<split>/, ../images/[<split>/] or ./images/ beside it)
    VOC_DIR/Annotations/*.xml + VOC_DIR/JPEGImages/                          (Pascal VOC)

A COCO folder with both a train and a val json gives both splits.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from ednas.errors import InputError
from ednas.recipe import DatasetConfig, Recipe

log = logging.getLogger(__name__)

SPLITS = ("train", "val")


def resolve_data(path: str | Path) -> dict[str, DatasetConfig]:
    """{"train": ..., "val": ...} found at `path` (a split is absent if not found).

    A single json or a folder with one json gives only "train"."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or folder (give a COCO folder, a COCO json or a VOC folder)")
    if path.is_file():
        if path.suffix != ".json":
            raise InputError(f"{path}: expected a COCO instances .json or a dataset folder")
        return {"train": _coco_split(path)}
    if (path / "Annotations").is_dir():
        images = next((path / d for d in ("JPEGImages", "images") if (path / d).is_dir()), None)
        if images is None:
            raise InputError(f"{path}: VOC folder without JPEGImages/ beside Annotations/")
        return {"train": DatasetConfig(format="voc", images=str(images), ann=str(path / "Annotations"))}
    jsons = sorted((path / "annotations").glob("*.json")) or sorted(path.glob("*.json"))
    if not jsons:
        raise InputError(
            f"{path}: no dataset found (expected annotations/*.json for COCO or Annotations/ for VOC)"
        )
    instances = [j for j in jsons if j.name.startswith("instances_")]
    jsons = instances or jsons  # official COCO also ships captions_* and person_keypoints_*
    if len(jsons) == 1:
        return {"train": _coco_split(jsons[0])}
    found = {}
    for split in SPLITS:
        matches = [j for j in jsons if split in j.stem.lower()]
        if len(matches) == 1:
            found[split] = _coco_split(matches[0])
    if "train" not in found:
        names = ", ".join(j.name for j in jsons)
        raise InputError(f"{path}: several annotation files ({names}); give the training json itself")
    return found


def _coco_split(ann: Path) -> DatasetConfig:
    """A COCO json and the images folder that goes with it."""
    split = ann.stem.removeprefix("instances_")
    root = ann.parent.parent if ann.parent.name == "annotations" else ann.parent
    candidates = [root / split, root / "images" / split, root / "images", ann.parent / "images"]
    images = next((c for c in candidates if c.is_dir()), None)
    if images is None:
        tried = ", ".join(str(c) for c in candidates)
        raise InputError(f"{ann}: cannot find its images folder (tried {tried})")
    return DatasetConfig(format="coco", images=str(images), ann=str(ann))


def with_data(recipe: Recipe, train: str | None, val: str | None) -> Recipe:
    """`recipe` with its dataset sections replaced by the layouts found at `train` / `val`.

    With `train` but no `val`, a val split found beside the training data is used, else the
    run has no validation (the recipe's own val set belongs to the recipe's own data)."""
    data = recipe.data
    if train is not None:
        found = resolve_data(train)
        data = dataclasses.replace(data, train=found["train"], val=found.get("val", DatasetConfig()))
    if val is not None:
        found = resolve_data(val)
        data = dataclasses.replace(data, val=found.get("val", found["train"]))
    return dataclasses.replace(recipe, data=data)


def has_split(cfg: DatasetConfig) -> bool:
    return bool(cfg.images and cfg.ann)


def build_train_set(recipe: Recipe) -> Any:
    """The augmented torch Dataset of the recipe's training split."""
    from ednas.data import build_dataset
    from ednas.data.transforms import TorchDetectionDataset, TrainTransform

    if not has_split(recipe.data.train):
        raise InputError(f"recipe {recipe.name}: no training data; give `data` (a folder or json) or set data.train")
    dataset = build_dataset(recipe.data.train, recipe.class_names)
    if len(dataset) == 0:
        raise InputError(f"{recipe.data.train.ann}: no readable training images")
    return TorchDetectionDataset(dataset, TrainTransform.from_config(recipe.data, recipe.model.input_size))


def build_val_set(recipe: Recipe) -> Any | None:
    """The recipe's validation DetectionDataset, or None when it has none."""
    from ednas.data import build_dataset

    if not has_split(recipe.data.val):
        return None
    return build_dataset(recipe.data.val, recipe.class_names)
