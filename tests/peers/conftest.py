"""Fixtures for the peer tests: a COCO set of two blank images (tiny peers: tiny_peers.py)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from tiny_peers import CLASSES


@pytest.fixture
def blank_set(tmp_path) -> tuple[Path, Path]:
    """(images dir, annotations json): two blank images with a box each, categories a, b, c."""
    images = tmp_path / "images"
    images.mkdir()
    gt = {"images": [], "annotations": [], "categories": [{"id": i + 1, "name": n} for i, n in enumerate(CLASSES)]}
    for i, (w, h) in enumerate([(120, 80), (64, 96)]):
        cv2.imwrite(str(images / f"{i}.png"), np.zeros((h, w, 3), np.uint8))
        gt["images"].append({"id": i, "file_name": f"{i}.png", "width": w, "height": h})
        gt["annotations"].append({"id": i + 1, "image_id": i, "category_id": 1, "bbox": [5, 5, 30, 30],
                                  "area": 900, "iscrowd": 0})
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps(gt))
    return images, ann
