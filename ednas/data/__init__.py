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


def check_images_found(dataset: "DetectionDataset", images: str, ann: str) -> None:
    """Refuse a set none of whose annotated images is in the images folder (scoring it would
    report mAP 0 for what is a wrong images path, not a bad model), one without a box to score
    against (mAP undefined), and one with an EXIF-tagged
    image annotated in neither of its frames (`DetectionDataset.check_frames`)."""
    from ednas.errors import DataError

    if len(dataset) == 0 and not dataset.skipped:
        raise DataError(f"{ann}: annotates no images; give annotations with at least one image")
    if len(dataset) == 0:
        missing = len(dataset.skipped)
        example = f" (looked for e.g. {dataset.skipped[0][0]})" if dataset.skipped else ""
        raise DataError(f"{images}: holds none of the {missing} images annotated in {ann}{example}; "
                        "give the images folder that goes with the annotations")
    if not any(len(rec.boxes) for rec in dataset.records):
        raise DataError(f"{ann}: none of the {len(dataset)} images found has a box to score against (only "
                        "crowd boxes, boxes under 1 px or none); mAP would be undefined: give annotated images")
    dataset.check_frames()


def load_eval_set(images: str, ann: str, class_names: Sequence[str]) -> "DetectionDataset":
    """An annotated image set given as paths (COCO json or VOC folder), refused when the images
    folder holds none of its images."""
    dataset = build_dataset(split_from_paths(images, ann), class_names)
    check_images_found(dataset, images, ann)
    return dataset


def split_from_paths(images: str, ann: str) -> "DatasetConfig":
    """A split given on the command line: `ann` a COCO json, or a folder of VOC XML files."""
    from pathlib import Path

    from ednas.recipe import DatasetConfig

    return DatasetConfig(format="voc" if Path(ann).is_dir() else "coco", images=images, ann=ann)
