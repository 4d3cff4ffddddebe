"""COCO json loading: label mapping, crowd regions, unreadable images, malformed entries."""

from __future__ import annotations

import json
import logging

import cv2
import numpy as np
import pytest

from ednas.data import build_dataset
from ednas.data.coco import CocoDataset
from ednas.errors import DataError
from ednas.recipe import DatasetConfig


def _write_set(root, annotations=None):
    """3 annotated images: a.jpg readable, b.jpg corrupt, c.jpg missing; categories 7 then 3."""
    (root / "images").mkdir()
    cv2.imwrite(str(root / "images" / "a.jpg"), np.full((40, 60, 3), 128, np.uint8))
    (root / "images" / "b.jpg").write_bytes(b"\xff\xd8 truncated")
    gt = {
        "images": [
            {"id": 1, "file_name": "a.jpg", "width": 60, "height": 40},
            {"id": 2, "file_name": "b.jpg", "width": 60, "height": 40},
            {"id": 3, "file_name": "c.jpg", "width": 60, "height": 40},
        ],
        "categories": [{"id": 7, "name": "cat"}, {"id": 3, "name": "dog"}],
        "annotations": annotations if annotations is not None else [
            {"id": 10, "image_id": 1, "category_id": 3, "bbox": [1, 2, 10, 20], "area": 150, "iscrowd": 0},
            {"id": 11, "image_id": 1, "category_id": 7, "bbox": [5, 5, 30, 30], "area": 900, "iscrowd": 0},
            {"id": 12, "image_id": 1, "category_id": 7, "bbox": [0, 0, 60, 40], "area": 2400, "iscrowd": 1},
            {"id": 13, "image_id": 1, "category_id": 7, "bbox": [3, 3, 0.5, 9]},  # under 1 px: no target
        ],
    }
    ann = root / "instances.json"
    ann.write_text(json.dumps(gt))
    return root / "images", ann


def test_labels_follow_json_order_and_crowd_is_ignored(tmp_path):
    images, ann = _write_set(tmp_path)
    ds = CocoDataset(images, ann)
    assert ds.class_names == ("cat", "dog") and ds.category_ids == [7, 3]
    rec = ds.records[0]
    np.testing.assert_array_equal(rec.boxes, [[1, 2, 11, 22], [5, 5, 35, 35]])
    assert rec.boxes.dtype == np.float32 and rec.labels.dtype == np.int64
    assert rec.labels.tolist() == [1, 0]
    np.testing.assert_array_equal(rec.ignore, [[0, 0, 60, 40]])
    assert rec.ignore_labels.tolist() == [0]


def test_unreadable_images_are_skipped_and_counted(tmp_path, caplog):
    images, ann = _write_set(tmp_path)
    with caplog.at_level(logging.WARNING):
        ds = CocoDataset(images, ann, class_names=["a", "b"])
        samples = list(ds)
        list(ds)  # a second pass counts nothing twice
    assert len(ds) == 2  # the missing file is left out up front
    assert [s.meta["id"] for s in samples] == [1]
    assert sorted(p.name for p, _ in ds.skipped) == ["b.jpg", "c.jpg"]
    assert "b.jpg" in caplog.text and "c.jpg" in caplog.text
    img, boxes, labels, meta = samples[0]
    assert img.shape == (40, 60, 3) and img.dtype == np.uint8
    assert (meta["width"], meta["height"]) == (60, 40)


def test_coco_gt_fills_area_and_iscrowd(tmp_path):
    images, ann = _write_set(tmp_path)
    gt = CocoDataset(images, ann).coco_gt()
    last = gt["annotations"][-1]
    assert last["area"] == pytest.approx(4.5) and last["iscrowd"] == 0
    assert gt["annotations"][0]["area"] == 150  # given areas are kept


@pytest.mark.parametrize("bad, message", [
    ({"id": 345, "image_id": 1, "category_id": 3, "bbox": [1, 2, 3]},
     "annotations[0] (id 345): bbox must have 4 numbers"),
    ({"id": 345, "image_id": 1, "category_id": 3, "bbox": [1, 2, -3, 4]},
     "annotations[0] (id 345): bbox width and height must be >= 0"),
    ({"id": 345, "image_id": 1, "category_id": 3}, "annotations[0] (id 345): missing key 'bbox'"),
    ({"id": 345, "image_id": 1, "category_id": 99, "bbox": [1, 2, 3, 4]},
     "annotations[0] (id 345): category_id 99 is not in categories"),
    ({"id": 345, "image_id": 42, "category_id": 3, "bbox": [1, 2, 3, 4]},
     "annotations[0] (id 345): image_id 42 is not in images"),
])
def test_malformed_annotation_is_a_one_line_data_error(tmp_path, bad, message):
    images, ann = _write_set(tmp_path, annotations=[bad])
    with pytest.raises(DataError) as err:
        CocoDataset(images, ann)
    text = str(err.value)
    assert message in text and str(ann) in text and "\n" not in text


def test_not_a_coco_json(tmp_path):
    ann = tmp_path / "x.json"
    ann.write_text("{oops")
    (tmp_path / "images").mkdir()
    with pytest.raises(DataError, match="not valid JSON"):
        CocoDataset(tmp_path / "images", ann)
    ann.write_text(json.dumps({"images": []}))
    with pytest.raises(DataError, match="missing list 'annotations'"):
        CocoDataset(tmp_path / "images", ann)


def test_build_dataset_from_a_recipe_section(tmp_path):
    images, ann = _write_set(tmp_path)
    ds = build_dataset(DatasetConfig(format="coco", images=str(images), ann=str(ann)), ["x", "y"])
    assert isinstance(ds, CocoDataset) and ds.class_names == ("x", "y")
    with pytest.raises(DataError, match="2 categories but 3 class names"):
        build_dataset(DatasetConfig(format="coco", images=str(images), ann=str(ann)), ["x", "y", "z"])


def test_released_coco_subset(coco128):
    """The shared coco-train128 set: 128 images, 939 boxes of which 10 crowd regions."""
    from ednas.data.classes import COCO_CLASSES

    ds = CocoDataset(coco128 / "images", coco128 / "annotations" / "instances_train128.json", COCO_CLASSES)
    assert len(ds) == 128 and not ds.skipped
    assert sum(len(r.ignore) for r in ds.records) == 10
    assert sum(len(r.boxes) for r in ds.records) <= 929
    assert ds.category_ids[:3] == [1, 2, 3] and ds.category_ids[-1] == 90
