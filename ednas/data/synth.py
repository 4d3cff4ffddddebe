"""A synthetic COCO-format detection set: coloured shapes on cluttered backgrounds.

Small enough to train on a CPU in minutes, hard enough that a detector has to learn: six
shape classes (`class_names: shapes` in a recipe) at sizes from ~8 px to half the image, random colours and textures, gradient /
blob / noise backgrounds with unannotated clutter, several objects per image that may
partly occlude each other (boxes and areas are those of the visible part).

    out/images/000000.jpg ...
    out/annotations/train.json, out/annotations/val.json   (disjoint images)

Every image is drawn from its own generator seeded by (seed, index), so a set is
deterministic and image i does not depend on how many images are made.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ednas.data.classes import SHAPE_CLASSES
from ednas.errors import InputError
from ednas.io import write_error

log = logging.getLogger(__name__)

MIN_OBJECT = 8  # px, smallest object diameter
MAX_OBJECT_FRACTION = 0.5  # largest object diameter, fraction of the shorter image side
MIN_HEIGHT_FRACTION = 0.75  # image heights are 75-100 % of the width
MIN_VISIBLE = 0.4  # a new shape may not leave any object less than this fraction visible
JPEG_QUALITY = 92


@dataclass(frozen=True)
class SynthSet:
    """Where a generated set lives and what it holds."""

    images: Path  # folder of JPEGs
    train: Path  # COCO json of the training split
    val: Path  # COCO json of the held-out split
    num_train: int
    num_val: int
    num_boxes: int


def generate(
    out: str | Path, num_images: int, size: int = 320, seed: int = 0, val_fraction: float = 0.2,
    min_object: float = MIN_OBJECT,
) -> SynthSet:
    """Write `num_images` images and their train/val COCO annotations under `out`; object
    diameters are log-uniform between `min_object` px and half the shorter image side."""
    if num_images < 1:
        raise InputError(f"`images` {num_images}: give at least 1 image")
    if not 0 <= val_fraction < 1:
        raise InputError(f"`val_fraction` {val_fraction}: must be in [0, 1)")
    if size < 32:
        raise InputError(f"`size` {size}: must be at least 32 pixels")
    largest = MAX_OBJECT_FRACTION * MIN_HEIGHT_FRACTION * size  # the largest object of the flattest image
    if not 1 <= min_object < largest:
        raise InputError(f"`min_object` {min_object:g}: must be at least 1 and below {largest:g} px for `size` {size}")
    out = Path(out)
    images_dir, ann_dir = out / "images", out / "annotations"
    images_dir.mkdir(parents=True, exist_ok=True)
    ann_dir.mkdir(parents=True, exist_ok=True)

    num_val = min(num_images - 1, round(num_images * val_fraction)) if val_fraction else 0
    val_ids = set(np.random.default_rng(seed).permutation(num_images)[:num_val].tolist())
    splits: dict[str, dict[str, list]] = {"train": _empty(), "val": _empty()}
    for i in range(num_images):
        img, objects = render_image(np.random.default_rng([seed, i]), size, min_object)
        name = f"{i:06d}.jpg"
        if not cv2.imwrite(str(images_dir / name), img, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]):
            raise write_error(images_dir / name, "OpenCV could not write the image")
        split = splits["val" if i in val_ids else "train"]
        split["images"].append({"id": i + 1, "file_name": name, "width": img.shape[1], "height": img.shape[0]})
        for label, bbox, area in objects:
            split["annotations"].append({
                "id": 0, "image_id": i + 1, "category_id": label + 1, "bbox": bbox,
                "area": area, "iscrowd": 0,
            })
    num_boxes = 0
    for name, split in splits.items():
        for k, ann in enumerate(split["annotations"]):
            ann["id"] = num_boxes + k + 1
        num_boxes += len(split["annotations"])
        (ann_dir / f"{name}.json").write_text(json.dumps(split))
    log.debug("wrote %d images (%d val) with %d boxes to %s", num_images, num_val, num_boxes, out)
    return SynthSet(images_dir, ann_dir / "train.json", ann_dir / "val.json",
                    num_images - num_val, num_val, num_boxes)


def _empty() -> dict[str, list]:
    categories = [{"id": i + 1, "name": n, "supercategory": "shape"} for i, n in enumerate(SHAPE_CLASSES)]
    return {"images": [], "annotations": [], "categories": categories}


def render_image(
    rng: np.random.Generator, size: int, min_object: float = MIN_OBJECT
) -> tuple[np.ndarray, list[tuple[int, list[float], float]]]:
    """One image (BGR uint8, width `size`, height 75-100 % of it) and its objects as
    (label, [x, y, w, h] of the visible part, visible area in pixels)."""
    w, h = size, int(size * rng.uniform(MIN_HEIGHT_FRACTION, 1.0))
    img = _background(rng, w, h)
    masks, areas, labels = [], [], []  # visible masks, drawn areas, classes
    for _ in range(int(rng.integers(1, 9))):
        for _attempt in range(5):
            label = int(rng.integers(len(SHAPE_CLASSES)))
            mask = _shape_mask(rng, SHAPE_CLASSES[label], w, h, min_object)
            if cv2.countNonZero(mask) and all(
                _left_visible(m, mask) >= MIN_VISIBLE * a for m, a in zip(masks, areas)
            ):
                break
        else:
            continue
        _paint(rng, img, mask)
        for m in masks:
            m[mask > 0] = 0
        masks.append(mask)
        areas.append(cv2.countNonZero(mask))
        labels.append(label)
    img = _finish(rng, img)
    objects = []
    for label, mask in zip(labels, masks):
        x, y, bw, bh = cv2.boundingRect(mask)
        if bw and bh:
            objects.append((label, [float(x), float(y), float(bw), float(bh)], float(cv2.countNonZero(mask))))
    return img, objects


def _left_visible(existing: np.ndarray, new: np.ndarray) -> int:
    """Pixels of `existing` still visible once `new` is drawn on top."""
    return cv2.countNonZero(existing) - cv2.countNonZero(cv2.bitwise_and(existing, new))


def _random_color(rng: np.random.Generator) -> tuple[int, int, int]:
    return tuple(int(c) for c in rng.integers(0, 256, 3))


def _background(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """Gradient between two colours, blurred blobs and lines (unannotated clutter)."""
    # the smooth part is drawn at 1/4 resolution and upscaled: same look, 10x cheaper blur
    sw, sh = max(4, w // 4), max(4, h // 4)
    c0, c1 = np.array(_random_color(rng), np.float32), np.array(_random_color(rng), np.float32)
    angle = rng.uniform(0, 2 * math.pi)
    t = np.arange(sw, dtype=np.float32)[None, :] * math.cos(angle) + np.arange(sh, dtype=np.float32)[:, None] * math.sin(angle)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1.0)
    small = (c0 * (1 - t[..., None]) + c1 * t[..., None]).astype(np.uint8)
    for _ in range(int(rng.integers(2, 9))):
        center = (int(rng.integers(0, sw)), int(rng.integers(0, sh)))
        axes = (int(rng.integers(1, sw // 3 + 2)), int(rng.integers(1, sh // 3 + 2)))
        cv2.ellipse(small, center, axes, float(rng.uniform(0, 180)), 0, 360, _random_color(rng), -1)
    small = cv2.GaussianBlur(small, (0, 0), sigmaX=float(rng.uniform(2, 5)))  # soft: never shape-like
    img = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    for _ in range(int(rng.integers(0, 6))):
        p0 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        p1 = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        cv2.line(img, p0, p1, _random_color(rng), int(rng.integers(1, 4)), cv2.LINE_AA)
    return img


def _shape_mask(rng: np.random.Generator, kind: str, w: int, h: int, min_object: float) -> np.ndarray:
    """(h, w) uint8 mask of one shape at a random place, size (log-uniform) and rotation."""
    diameter = math.exp(rng.uniform(math.log(min_object), math.log(MAX_OBJECT_FRACTION * min(w, h))))
    r = diameter / 2
    cx, cy = rng.uniform(-0.2 * r, w + 0.2 * r), rng.uniform(-0.2 * r, h + 0.2 * r)  # may be cut by the border
    rot = rng.uniform(0, 2 * math.pi)
    mask = np.zeros((h, w), np.uint8)
    if kind in ("circle", "ring"):
        axes = (max(1, round(r)), max(1, round(r * rng.uniform(0.8, 1.0))))
        cv2.ellipse(mask, (round(cx), round(cy)), axes, math.degrees(rot), 0, 360, 255, -1)
        if kind == "ring":
            inner = (max(1, round(axes[0] * 0.55)), max(1, round(axes[1] * 0.55)))
            cv2.ellipse(mask, (round(cx), round(cy)), inner, math.degrees(rot), 0, 360, 0, -1)
        return mask
    if kind == "square":
        angles, radii = np.arange(4) * math.pi / 2 + math.pi / 4, np.full(4, r)
    elif kind == "triangle":
        angles, radii = np.arange(3) * 2 * math.pi / 3, np.full(3, r)
    elif kind == "star":
        angles, radii = np.arange(10) * math.pi / 5, np.where(np.arange(10) % 2, 0.45 * r, r)
    else:  # cross: a plus sign of arm half-width r/3
        a = r / 3
        pts = np.array([(a, r), (a, a), (r, a), (r, -a), (a, -a), (a, -r),
                        (-a, -r), (-a, -a), (-r, -a), (-r, a), (-a, a), (-a, r)])
        angles, radii = np.arctan2(pts[:, 1], pts[:, 0]), np.hypot(pts[:, 0], pts[:, 1])
    xs = cx + radii * np.cos(angles + rot)
    ys = cy + radii * np.sin(angles + rot)
    cv2.fillPoly(mask, [np.round(np.stack([xs, ys], 1)).astype(np.int32)], 255)
    return mask


def _paint(rng: np.random.Generator, img: np.ndarray, mask: np.ndarray) -> None:
    """Fill `mask` with a colour, optionally striped or shaded."""
    x, y, w, h = cv2.boundingRect(mask)
    if w == 0 or h == 0:
        return
    color = np.array(_random_color(rng), np.float32)
    fill = np.empty((h, w, 3), np.float32)
    fill[:] = color
    style = rng.integers(3)
    if style == 1:  # stripes in a second colour
        period = int(rng.integers(4, 12))
        slope = int(rng.choice([-1, 0, 1]))
        stripes = ((np.arange(w)[None, :] + slope * np.arange(h)[:, None]) // period) % 2 == 0
        fill[stripes] = _random_color(rng)
    elif style == 2:  # linear shading
        fill *= np.linspace(rng.uniform(0.5, 1.0), rng.uniform(1.0, 1.5), h, dtype=np.float32)[:, None, None]
    on = mask[y:y + h, x:x + w] > 0
    img[y:y + h, x:x + w][on] = np.clip(fill[on], 0, 255).astype(np.uint8)


def _finish(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """Slight blur and sensor noise over the whole image."""
    if rng.random() < 0.5:
        img = cv2.GaussianBlur(img, (3, 3), 0)
    amplitude = int(rng.integers(3, 16))
    noise = rng.integers(-amplitude, amplitude + 1, img.shape[:2], dtype=np.int16)  # luminance
    return np.clip(img + noise[..., None], 0, 255).astype(np.uint8)
