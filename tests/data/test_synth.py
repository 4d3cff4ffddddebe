"""The synthetic shapes set: deterministic, valid COCO, disjoint splits, CLI."""

from __future__ import annotations

import json

from ednas.cli import main
from ednas.data.classes import SHAPE_CLASSES
from ednas.data.coco import CocoDataset
from ednas.data.synth import generate


def _read(root):
    ann = {s: json.loads((root / "annotations" / f"{s}.json").read_text()) for s in ("train", "val")}
    images = {p.name: p.read_bytes() for p in sorted((root / "images").iterdir())}
    return ann, images


def test_same_seed_same_set_other_seed_other_set(tmp_path):
    generate(tmp_path / "a", 6, size=96, seed=3)
    generate(tmp_path / "b", 6, size=96, seed=3)
    generate(tmp_path / "c", 6, size=96, seed=4)
    assert _read(tmp_path / "a") == _read(tmp_path / "b")
    assert _read(tmp_path / "a")[1] != _read(tmp_path / "c")[1]


def test_valid_coco_with_disjoint_splits(tmp_path):
    out = generate(tmp_path, 20, size=128, seed=0, val_fraction=0.25)
    assert (out.num_train, out.num_val) == (15, 5)
    train, val = (CocoDataset(out.images, ann) for ann in (out.train, out.val))
    assert train.class_names == SHAPE_CLASSES and not train.skipped and not val.skipped
    assert not {r.id for r in train.records} & {r.id for r in val.records}
    gt = json.loads(out.train.read_text())
    ids = [a["id"] for a in gt["annotations"] + json.loads(out.val.read_text())["annotations"]]
    assert len(ids) == len(set(ids)) == out.num_boxes
    sizes = []
    for rec in train.records:
        assert ((rec.boxes[:, :2] >= 0) & (rec.boxes[:, 2:] <= [rec.width, rec.height])).all()
        sizes += (rec.boxes[:, 2] - rec.boxes[:, 0]).tolist()
    assert min(sizes) < 16 and max(sizes) > 40  # small and large objects
    assert len({a["category_id"] for a in gt["annotations"]}) >= 4


def test_cli(tmp_path, capsys):
    assert main(["data", "synth", "--out", str(tmp_path), "--images", "3", "--size", "64", "--val-fraction", "0"]) == 0
    assert "3 images (3 train, 0 val)" in capsys.readouterr().out
    assert len(list((tmp_path / "images").glob("*.jpg"))) == 3
    assert main(["data", "synth", "--out", str(tmp_path), "--images", "0"]) == 2


def test_min_object_sets_the_smallest_size(tmp_path):
    out = generate(tmp_path, 12, size=128, seed=0, val_fraction=0, min_object=24)
    rec_sizes = [max(r.boxes[:, 2] - r.boxes[:, 0]).item() for r in CocoDataset(out.images, out.train).records
                 if len(r.boxes)]
    # visible boxes may be cut by the border or by occlusion, but most keep the drawn size
    assert sorted(rec_sizes)[len(rec_sizes) // 2] >= 20
    assert main(["data", "synth", "--out", str(tmp_path / "x"), "--images", "2", "--size", "64",
                 "--min-object", "40"]) == 2
