"""Datasets (COCO json, Pascal VOC XML, synthetic), augmentation and pre-processing."""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from ednas.errors import ConfigError

if TYPE_CHECKING:
    from ednas.data.dataset import DetectionDataset
    from ednas.recipe import DatasetConfig

DATASET_FORMATS = ("coco", "voc")


def build_dataset(cfg: "DatasetConfig", class_names: Sequence[str]) -> "DetectionDataset":
    """The dataset a recipe's `data.train` / `data.val` section describes."""
    if not cfg.images or not cfg.ann:
        raise ConfigError("dataset needs both `images` (folder) and `ann` (COCO json or VOC XML folder)")
    if cfg.format == "coco":
        from ednas.data.coco import CocoDataset

        return CocoDataset(cfg.images, cfg.ann, class_names)
    if cfg.format == "voc":
        from ednas.data.voc import VocDataset

        return VocDataset(cfg.images, cfg.ann, class_names)
    raise ConfigError(f"data format {cfg.format!r} is not one of {', '.join(DATASET_FORMATS)}")


def split_from_paths(images: str, ann: str) -> "DatasetConfig":
    """A split given on the command line: `ann` a COCO json, or a folder of VOC XML files."""
    from pathlib import Path

    from ednas.recipe import DatasetConfig

    return DatasetConfig(format="voc" if Path(ann).is_dir() else "coco", images=images, ann=ann)
