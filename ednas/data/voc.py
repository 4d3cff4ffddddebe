"""Pascal VOC: a folder of XML annotations and a folder of images, class names from the recipe.

Each `*.xml` (sorted by name; image ids 1, 2, ...) gives `filename`, `size` and `object`s with
`name` and `bndbox`. Objects marked `difficult` become ignore regions, as in the VOC protocol.
Labels follow the order of `class_names`; `coco_gt()` (category id = label + 1) lets the COCO
evaluator score a VOC set.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Sequence

from ednas.data.dataset import DetectionDataset, ImageRecord, make_record
from ednas.errors import DataError, InputError


class VocDataset(DetectionDataset):
    def __init__(self, images: str | Path, ann: str | Path, class_names: Sequence[str]) -> None:
        images, ann = Path(images), Path(ann)
        for folder, what in ((images, "images"), (ann, "annotations")):
            if not folder.is_dir():
                raise InputError(f"{folder}: no such {what} folder")
        files = sorted(ann.glob("*.xml"))
        if not files:
            raise DataError(f"{ann}: no *.xml annotation files (give the VOC Annotations folder)")
        label_of = {name: i for i, name in enumerate(class_names)}
        records = [_parse_xml(f, i + 1, images, label_of) for i, f in enumerate(files)]
        super().__init__(records, class_names, list(range(1, len(class_names) + 1)), str(ann))


def _text(node: ET.Element, tag: str, path: Path, where: str) -> str:
    child = node.find(tag)
    if child is None or child.text is None or not child.text.strip():
        raise DataError(f"{path}: {where}: missing <{tag}>")
    return child.text.strip()


def _number(node: ET.Element, tag: str, path: Path, where: str) -> float:
    text = _text(node, tag, path, where)
    try:
        return float(text)
    except ValueError:
        raise DataError(f"{path}: {where}: <{tag}> must be a number, got {text!r}") from None


def _parse_xml(path: Path, image_id: int, images: Path, label_of: dict[str, int]) -> ImageRecord:
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise DataError(f"{path}: not valid XML ({exc})") from None
    filename = _text(root, "filename", path, "annotation")
    size = root.find("size")
    if size is None:
        raise DataError(f"{path}: annotation: missing <size>")
    width = _number(size, "width", path, "size")
    height = _number(size, "height", path, "size")
    boxes, labels, ignore = [], [], []
    for k, obj in enumerate(root.iter("object")):
        name = obj.findtext("name", "").strip()
        where = f"object[{k}] ({name or 'no name'})"
        if name not in label_of:
            raise DataError(
                f"{path}: {where}: class {name!r} is not in the recipe's class names "
                f"({', '.join(label_of)})"
            )
        bnd = obj.find("bndbox")
        if bnd is None:
            raise DataError(f"{path}: {where}: missing <bndbox>")
        box = [_number(bnd, tag, path, where) for tag in ("xmin", "ymin", "xmax", "ymax")]
        if box[2] < box[0] or box[3] < box[1]:
            raise DataError(f"{path}: {where}: bndbox has xmax < xmin or ymax < ymin: {box}")
        boxes.append(box)
        labels.append(label_of[name])
        ignore.append(obj.findtext("difficult", "0").strip() == "1")
    return make_record(image_id, images / filename, int(width), int(height), boxes, labels, ignore)
