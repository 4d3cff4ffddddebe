"""Held-out halves of a COCO set: images sorted by file name, even-indexed ones in one half,
odd-indexed ones in the other (symlinked folders + annotation files), so a model can be
trained, calibrated or selected on one half and measured on images nothing chose it by."""

from __future__ import annotations

import json
from pathlib import Path

from ednas.errors import DataError, InputError

HALVES = ("even", "odd")


def coco_halves(images: str | Path, ann: str | Path, out: str | Path) -> dict[str, tuple[Path, Path]]:
    """{"even"|"odd": (images folder, annotation json)} written under `out` (reused if there)."""
    images, ann, out = Path(images), Path(ann), Path(out)
    if not ann.is_file():
        raise InputError(f"{ann}: no such COCO annotation file")
    try:
        gt = json.loads(ann.read_text())
        chosen_all = sorted(gt["images"], key=lambda im: im["file_name"])
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{ann}: not a COCO instances file ({type(exc).__name__}: {exc})") from None
    result = {}
    for half, chosen in zip(HALVES, (chosen_all[0::2], chosen_all[1::2])):
        folder, target = out / half, out / f"{half}.json"
        folder.mkdir(parents=True, exist_ok=True)
        for im in chosen:
            link = folder / im["file_name"]
            if not link.exists():
                link.symlink_to((images / im["file_name"]).resolve())
        ids = {im["id"] for im in chosen}
        sub = {**gt, "images": chosen, "annotations": [a for a in gt["annotations"] if a["image_id"] in ids]}
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_text(json.dumps(sub))
        tmp.replace(target)
        result[half] = (folder, target)
    return result
