"""COCO instances json + images folder.

Categories map by id to contiguous labels in the json's order. Crowd boxes become ignore
regions, not targets; boxes under 1 px wide or high are left out of the targets (as NanoDet
does) but stay in the ground truth used for evaluation, which is the json itself.
A malformed entry raises a one-line DataError naming the file and the entry.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any, Sequence

from ednas.data.dataset import DetectionDataset, ImageRecord, make_record, xywh_to_xyxy
from ednas.errors import DataError, InputError

log = logging.getLogger(__name__)


class CocoDataset(DetectionDataset):
    """A COCO-format detection set; `class_names` (e.g. the recipe's) replaces the json's names."""

    def __init__(
        self, images: str | Path, ann: str | Path, class_names: Sequence[str] | None = None
    ) -> None:
        images, ann = Path(images), Path(ann)
        if not images.is_dir():
            raise InputError(f"{images}: no such images folder")
        self._gt = _load_json(ann)
        self._said_empty = False  # the zero-size boxes' warning, once per dataset
        records, category_ids, names = _parse(self._gt, images, str(ann))
        super().__init__(records, class_names or names, category_ids, str(ann))

    def coco_gt(self) -> dict[str, Any]:
        """The json itself (its segment areas define small/medium/large), with `area` and
        `iscrowd` filled in where a hand-made json leaves them out. A box of zero width or
        height, which no detection can overlap, is scored as an ignore region (iscrowd), not
        as a miss; one warning counts them."""
        annotations = [
            {"area": a["bbox"][2] * a["bbox"][3], "iscrowd": 0, **a} for a in self._gt["annotations"]
        ]
        empty = [a for a in annotations if not a["iscrowd"] and min(a["bbox"][2:]) <= 0]
        if empty and not self._said_empty:
            self._said_empty = True
            log.warning("%s: %d boxes of zero width or height (e.g. annotation id %s) are ignored in scoring, "
                        "not counted as misses", self.source, len(empty), empty[0].get("id"))
        for a in empty:
            a["iscrowd"] = 1
        return {**self._gt, "annotations": annotations}


def annotated_sizes(ann: str | Path) -> dict[str, tuple[int, int]]:
    """File name -> annotated (width, height) of every image a COCO json lists: the frame an
    image is read in where its annotation is known (`preprocess.read_annotated_image`)."""
    gt = _load_json(Path(ann))
    sizes = {}
    for i, img in enumerate(gt["images"]):
        where = f"{ann}: {_entry('images', i, img)}"
        _require(img, ("file_name", "width", "height"), where)
        _check_size(img, where)
        sizes[Path(str(img["file_name"])).name] = (img["width"], img["height"])
    return sizes


def _load_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise InputError(f"{path}: no such annotation file (give a COCO instances json)")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a COCO instances object with images, annotations, categories")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise DataError(f"{path}: missing list {key!r} (not a COCO instances json?)")
    return data


def _entry(section: str, index: int, item: Any) -> str:
    """`annotations[12] (id 345)` — how messages name an entry."""
    ident = item.get("id") if isinstance(item, dict) else None
    return f"{section}[{index}]" + (f" (id {ident})" if ident is not None else "")


def _require(item: Any, keys: Sequence[str], where: str) -> None:
    if not isinstance(item, dict):
        raise DataError(f"{where}: expected an object, got {type(item).__name__}")
    for key in keys:
        if key not in item:
            raise DataError(f"{where}: missing key {key!r}")


def _check_size(img: dict[str, Any], where: str) -> None:
    """An image's annotated width and height: whole numbers of pixels, at least 1."""
    for key in ("width", "height"):
        value = img[key]
        whole = isinstance(value, (int, float)) and not isinstance(value, bool) and float(value).is_integer()
        if not whole or value < 1:
            raise DataError(f"{where}: {key} must be a whole number of pixels, at least 1, got {value!r}")


def _check_bbox(bbox: Any, where: str) -> None:
    numbers = isinstance(bbox, (list, tuple)) and len(bbox) == 4 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in bbox
    )
    if not numbers:
        raise DataError(f"{where}: bbox must have 4 numbers [x, y, width, height], got {bbox!r}")
    if bbox[2] < 0 or bbox[3] < 0:
        raise DataError(f"{where}: bbox width and height must be >= 0, got {bbox!r}")


def _parse(
    gt: dict[str, Any], images_dir: Path, source: str
) -> tuple[list[ImageRecord], list[int], list[str]]:
    """Validate the json and turn it into records, category ids and names (json order)."""
    label_of: dict[Any, int] = {}
    names = []
    for i, cat in enumerate(gt["categories"]):
        where = f"{source}: {_entry('categories', i, cat)}"
        _require(cat, ("id", "name"), where)
        if cat["id"] in label_of:
            raise DataError(f"{where}: duplicate category id {cat['id']}")
        label_of[cat["id"]] = len(names)
        names.append(str(cat["name"]))

    per_image: dict[Any, dict[str, list]] = {}
    for i, img in enumerate(gt["images"]):
        where = f"{source}: {_entry('images', i, img)}"
        _require(img, ("id", "file_name", "width", "height"), where)
        _check_size(img, where)
        if img["id"] in per_image:
            raise DataError(f"{where}: duplicate image id {img['id']}")
        per_image[img["id"]] = {"boxes": [], "labels": [], "ignore": []}

    for i, ann in enumerate(gt["annotations"]):
        where = f"{source}: {_entry('annotations', i, ann)}"
        _require(ann, ("image_id", "category_id", "bbox"), where)
        _check_bbox(ann["bbox"], where)
        if ann["category_id"] not in label_of:
            raise DataError(f"{where}: category_id {ann['category_id']!r} is not in categories")
        if ann["image_id"] not in per_image:
            raise DataError(f"{where}: image_id {ann['image_id']!r} is not in images")
        lists = per_image[ann["image_id"]]
        lists["boxes"].append(ann["bbox"])
        lists["labels"].append(label_of[ann["category_id"]])
        lists["ignore"].append(bool(ann.get("iscrowd", 0) or ann.get("ignore", False)))

    records = [
        make_record(
            img["id"], images_dir / img["file_name"], img["width"], img["height"],
            xywh_to_xyxy(per_image[img["id"]]["boxes"]), per_image[img["id"]]["labels"],
            per_image[img["id"]]["ignore"],
        )
        for img in gt["images"]
    ]
    return records, list(label_of), names
