"""Pascal VOC folders built in code: parsing, difficult objects, COCO conversion, errors."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from ednas.data import build_dataset
from ednas.data.voc import VocDataset
from ednas.errors import DataError
from ednas.recipe import DatasetConfig

CLASSES = ("helmet", "head", "person")


def _xml(filename, objects, size=(64, 48)):
    objs = "".join(
        f"<object><name>{name}</name><difficult>{int(difficult)}</difficult>"
        f"<bndbox><xmin>{box[0]}</xmin><ymin>{box[1]}</ymin><xmax>{box[2]}</xmax><ymax>{box[3]}</ymax></bndbox></object>"
        for name, box, difficult in objects
    )
    return (f"<annotation><filename>{filename}</filename><size><width>{size[0]}</width>"
            f"<height>{size[1]}</height><depth>3</depth></size>{objs}</annotation>")


def _write_voc(root, second_object=("person", (10, 12, 30, 40), False)):
    images, ann = root / "JPEGImages", root / "Annotations"
    images.mkdir()
    ann.mkdir()
    for name in ("a.jpg", "b.jpg"):
        cv2.imwrite(str(images / name), np.zeros((48, 64, 3), np.uint8))
    (ann / "a.xml").write_text(_xml("a.jpg", [("head", (1, 2, 20, 22), False), second_object]))
    (ann / "b.xml").write_text(_xml("b.jpg", [("helmet", (5, 5, 25, 25), True)]))
    return images, ann


def test_voc_folder_parses_into_records(tmp_path):
    images, ann = _write_voc(tmp_path)
    ds = build_dataset(DatasetConfig(format="voc", images=str(images), ann=str(ann)), CLASSES)
    assert isinstance(ds, VocDataset) and len(ds) == 2
    a, b = ds.records
    assert (a.id, b.id) == (1, 2)
    np.testing.assert_array_equal(a.boxes, [[1, 2, 20, 22], [10, 12, 30, 40]])
    assert a.labels.tolist() == [1, 2]
    assert len(b.boxes) == 0 and b.ignore.tolist() == [[5, 5, 25, 25]]  # difficult -> ignore
    sample = ds.load(0)
    assert sample.img.shape == (48, 64, 3) and sample.meta["id"] == 1


def test_voc_converts_to_a_coco_ground_truth(tmp_path):
    from pycocotools.coco import COCO

    images, ann = _write_voc(tmp_path)
    gt = VocDataset(images, ann, CLASSES).coco_gt()
    assert [c["id"] for c in gt["categories"]] == [1, 2, 3]
    coco = COCO()
    coco.dataset = gt
    coco.createIndex()
    anns = coco.loadAnns(coco.getAnnIds(imgIds=[1]))
    assert [a["bbox"] for a in anns] == [[1, 2, 19, 20], [10, 12, 20, 28]]
    assert [a["category_id"] for a in anns] == [2, 3]
    crowd = coco.loadAnns(coco.getAnnIds(imgIds=[2]))
    assert crowd[0]["iscrowd"] == 1 and crowd[0]["category_id"] == 1


def test_unknown_class_names_file_and_object(tmp_path):
    images, ann = _write_voc(tmp_path, second_object=("bicycle", (1, 1, 5, 5), False))
    with pytest.raises(DataError) as err:
        VocDataset(images, ann, CLASSES)
    text = str(err.value)
    assert "a.xml" in text and "object[1]" in text and "'bicycle'" in text and "\n" not in text


def test_malformed_box_is_a_data_error(tmp_path):
    images, ann = _write_voc(tmp_path)
    (ann / "a.xml").write_text(_xml("a.jpg", [("head", ("x", 2, 20, 22), False)]))
    with pytest.raises(DataError, match=r"a\.xml: object\[0\] \(head\): <xmin> must be a number"):
        VocDataset(images, ann, CLASSES)
    (ann / "a.xml").write_text("<annotation><filename>a.jpg")
    with pytest.raises(DataError, match="not valid XML"):
        VocDataset(images, ann, CLASSES)
