"""Tiny in-code fixtures for the trainer tests: a 64-pixel two-class detector recipe and a
synthetic dataset of bright rectangles on noise (same dict format as ednas.data.transforms)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from ednas.arch import ArchSpec, AuxArch, NeckArch
from ednas.arch.zoo import get_arch
from ednas.recipe import DataConfig, Recipe, TrainConfig

SIZE = 64


class RectangleDataset(torch.utils.data.Dataset):
    """`n` images of one or two filled rectangles; label = rectangle colour (0 red, 1 green)."""

    def __init__(self, n: int = 8, size: int = SIZE, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.items = []
        for _ in range(n):
            img = torch.randn(3, size, size, generator=g) * 0.1
            boxes, labels = [], []
            for _ in range(int(torch.randint(1, 3, (), generator=g))):
                w, h = torch.randint(12, 40, (2,), generator=g).tolist()
                x, y = torch.randint(0, size - 40, (2,), generator=g).tolist()
                label = int(torch.randint(0, 2, (), generator=g))
                img[2 - label, y:y + h, x:x + w] += 2.0  # BGR: red or green
                boxes.append([x, y, x + w, y + h])
                labels.append(label)
            self.items.append({
                "img": img,
                "gt_boxes": torch.tensor(boxes, dtype=torch.float32),
                "gt_labels": torch.tensor(labels, dtype=torch.int64),
                "meta": {"id": len(self.items)},
            })

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        return self.items[i]


def tiny_arch() -> ArchSpec:
    """Enhanced NanoDet_s at a quarter of the width, 64-pixel input, 2 classes (~0.23 M params)."""
    base = get_arch("enhanced_nanodet_s")
    return dataclasses.replace(
        base, backbone=dataclasses.replace(base.backbone, widths=(0.25,) * 5),
        neck=NeckArch(width=32), head=dataclasses.replace(base.head, feat_channels=32),
        aux=AuxArch(feat_channels=32, num_groups=8), input_size=SIZE, num_classes=2,
    )


def tiny_recipe(**train) -> Recipe:
    arch = tiny_arch()
    cfg = TrainConfig(**{
        "epochs": 2, "batch_size": 4, "workers": 0, "warmup_steps": 2, "detach_epoch": 1,
        "ema_warmup": 10.0, **train,
    })
    return Recipe(name="tiny", model=arch, data=DataConfig(class_names=("red", "green")), train=cfg)


@pytest.fixture
def rect_data() -> RectangleDataset:
    return RectangleDataset()


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny convs run fastest single-threaded, above all on a shared machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


TINY_RECIPE_YAML = """\
model:
  arch: enhanced_nanodet_s
  input_size: 64
  backbone: {widths: [0.25, 0.25, 0.25, 0.25, 0.25]}
  neck: {width: 32}
  head: {feat_channels: 32}
  aux: {feat_channels: 32, num_groups: 8}
data:
  class_names: [red, green]
train: {epochs: 1, batch_size: 4, workers: 0, warmup_steps: 2, val_interval: 1}
"""


def write_coco(root: Path, n: int = 8, split: str = "train") -> Path:
    """A COCO folder (annotations/instances_<split>.json + <split>/*.jpg) of rectangles."""
    data = RectangleDataset(n, size=96, seed=1)
    (root / split).mkdir(parents=True)
    (root / "annotations").mkdir(exist_ok=True)
    images, anns = [], []
    for i, item in enumerate(data.items):
        img = (item["img"].permute(1, 2, 0).numpy() * 60 + 100).clip(0, 255).astype(np.uint8)
        name = f"{i:04d}.jpg"
        cv2.imwrite(str(root / split / name), img)
        images.append({"id": i + 1, "file_name": name, "width": 96, "height": 96})
        for (x1, y1, x2, y2), label in zip(item["gt_boxes"].tolist(), item["gt_labels"].tolist()):
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": label + 1,
                         "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "iscrowd": 0})
    cats = [{"id": 1, "name": "red"}, {"id": 2, "name": "green"}]
    ann = root / "annotations" / f"instances_{split}.json"
    ann.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return ann
