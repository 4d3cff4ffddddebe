"""Training augmentation: image and boxes warp together; the torch Dataset and collate."""

from __future__ import annotations

import json

import cv2
import numpy as np
import torch

from ednas.data.coco import CocoDataset
from ednas.data.dataset import Sample
from ednas.data.transforms import (
    TorchDetectionDataset, TrainTransform, ValTransform, collate, random_affine, warp_boxes,
)
from ednas.recipe import AugmentConfig

NEUTRAL = AugmentConfig(scale=(1, 1), stretch=((1, 1), (1, 1)), translate=0.0, flip=0.0,
                        brightness=0.0, contrast=(1, 1), saturation=(1, 1))


def _sample(w=120, h=90, box=(20, 10, 70, 60)):
    img = np.zeros((h, w, 3), np.uint8)
    x1, y1, x2, y2 = box
    img[y1:y2, x1:x2] = 255
    return Sample(img, np.array([box], np.float32), np.array([3]), {"id": 1})


def test_neutral_augmentation_is_the_validation_resize():
    sample = _sample()
    train = TrainTransform(64, NEUTRAL)(sample, np.random.default_rng(0))
    val = ValTransform(64)(sample)
    np.testing.assert_allclose(train.boxes, val.boxes, atol=1e-4)
    np.testing.assert_allclose(train.boxes, [[20 * 64 / 120, 10 * 64 / 90, 70 * 64 / 120, 60 * 64 / 90]], rtol=1e-5)
    # same pixels away from the border (OpenCV's warp and resize differ only in rounding there)
    assert np.abs(train.img[:, 1:-1, 1:-1] - val.img[:, 1:-1, 1:-1]).max() < 0.05


def test_flip_mirrors_the_boxes():
    aug = AugmentConfig(scale=(1, 1), stretch=((1, 1), (1, 1)), translate=0.0, flip=1.0)
    m = random_affine(np.random.default_rng(0), aug, (100, 100), 100)
    np.testing.assert_allclose(warp_boxes(np.array([[10, 20, 30, 40]], np.float32), m, 100), [[70, 20, 90, 40]])


def test_random_warp_keeps_boxes_on_their_pixels():
    """Over many random warps the warped box is the bright region's bounding box (±1.5 px)."""
    rng = np.random.default_rng(1)
    transform = TrainTransform(96, AugmentConfig(brightness=0.0, contrast=(1, 1), saturation=(1, 1)))
    checked = 0
    for _ in range(30):
        out = transform(_sample(), rng)
        if len(out.boxes) == 0:
            continue
        bright = out.img.mean(0) > 0.5  # the white square after normalisation
        ys, xs = np.nonzero(bright)
        np.testing.assert_allclose(out.boxes[0], [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], atol=1.5)
        assert out.labels.tolist() == [3]
        checked += 1
    assert checked > 20


def test_boxes_warped_out_of_the_input_are_dropped():
    aug = AugmentConfig(scale=(0.6, 0.6), stretch=((1, 1), (1, 1)), translate=0.0, flip=0.0)
    m = random_affine(np.random.default_rng(0), aug, (100, 100), 100)
    # the image shrinks around its centre: a box at the very corner stays inside,
    # a box beyond the image (e.g. bad annotation) ends up clipped to nothing
    boxes = warp_boxes(np.array([[0, 0, 10, 10], [-50, -50, -40, -40]], np.float32), m, 100)
    from ednas.data.transforms import keep_valid

    kept, labels = keep_valid(boxes, np.array([0, 1]))
    assert labels.tolist() == [0]
    np.testing.assert_allclose(kept, [[20, 20, 26, 26]])


def test_torch_dataset_and_collate(tmp_path):
    (tmp_path / "images").mkdir()
    images = []
    for i in range(3):
        cv2.imwrite(str(tmp_path / "images" / f"{i}.jpg"), np.full((50 + 10 * i, 80, 3), 40 * i, np.uint8))
        images.append({"id": i + 1, "file_name": f"{i}.jpg", "width": 80, "height": 50 + 10 * i})
    (tmp_path / "images" / "1.jpg").write_bytes(b"corrupt")
    gt = {"images": images, "categories": [{"id": 1, "name": "thing"}], "annotations": [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 30, 20]},
        {"id": 2, "image_id": 3, "category_id": 1, "bbox": [5, 5, 40, 40]},
        {"id": 3, "image_id": 3, "category_id": 1, "bbox": [40, 20, 20, 20]},
    ]}
    (tmp_path / "ann.json").write_text(json.dumps(gt))
    ds = TorchDetectionDataset(CocoDataset(tmp_path / "images", tmp_path / "ann.json"), TrainTransform(64))
    torch.manual_seed(0)
    batch = collate([ds[i] for i in range(3)])
    assert batch["img"].shape == (3, 3, 64, 64) and batch["img"].dtype == torch.float32
    assert [m["id"] for m in batch["meta"]] == [1, 3, 3]  # the corrupt image is replaced by the next
    for boxes, labels in zip(batch["gt_boxes"], batch["gt_labels"]):
        assert boxes.dtype == torch.float32 and boxes.shape[1:] == (4,)
        assert labels.dtype == torch.int64 and len(labels) == len(boxes)
        assert (boxes >= 0).all() and (boxes <= 64).all()
    assert batch["meta"][0]["warp_matrix"].shape == (3, 3)
    torch.manual_seed(0)
    again = collate([ds[i] for i in range(3)])
    assert torch.equal(batch["img"], again["img"])  # reproducible under torch.manual_seed
