"""A Pascal VOC folder built in code: `ednas train` takes a step on it and evaluates, and
`ednas test` scores the trained checkpoint on the same folder (XML annotations)."""

import json

import cv2
import numpy as np

from conftest import TINY_RECIPE_YAML, RectangleDataset
from ednas.cli import main
from ednas.models.checkpoint import read_checkpoint

CLASSES = ("red", "green")


def write_voc(root, n=4, size=96):
    """VOC_DIR/JPEGImages/*.jpg + VOC_DIR/Annotations/*.xml of rectangles (one marked difficult)."""
    (root / "JPEGImages").mkdir(parents=True)
    (root / "Annotations").mkdir()
    data = RectangleDataset(n, size=size, seed=2)
    for i, item in enumerate(data.items):
        img = (item["img"].permute(1, 2, 0).numpy() * 60 + 100).clip(0, 255).astype(np.uint8)
        cv2.imwrite(str(root / "JPEGImages" / f"{i:04d}.jpg"), img)
        objects = "".join(
            f"<object><name>{CLASSES[label]}</name><difficult>{int(i == 0 and k == 0)}</difficult>"
            f"<bndbox><xmin>{x1 + 1:.0f}</xmin><ymin>{y1 + 1:.0f}</ymin>"
            f"<xmax>{x2:.0f}</xmax><ymax>{y2:.0f}</ymax></bndbox></object>"
            for k, ((x1, y1, x2, y2), label) in enumerate(zip(item["gt_boxes"].tolist(), item["gt_labels"].tolist()))
        )
        (root / "Annotations" / f"{i:04d}.xml").write_text(
            f"<annotation><filename>{i:04d}.jpg</filename><size><width>{size}</width><height>{size}</height>"
            f"<depth>3</depth></size>{objects}</annotation>"
        )
    return root


def test_train_one_step_and_evaluate_on_voc(tmp_path, capsys):
    voc = write_voc(tmp_path / "voc")
    recipe = tmp_path / "tiny.yml"
    recipe.write_text(TINY_RECIPE_YAML)
    out = tmp_path / "run"
    args = ["train", str(recipe), "--data", str(voc), "--val-data", str(voc), "--out", str(out)]
    assert main(args) == 0
    assert "trained 1 epochs (1 steps)" in capsys.readouterr().out  # 4 images, batch 4
    record = json.loads((out / "log.jsonl").read_text())
    assert 0.0 <= record["val_mAP"] <= 1.0 and np.isfinite(record["loss"])
    best = read_checkpoint(out / "best.ckpt")
    assert best["class_names"] == list(CLASSES) and best["metrics"]["mAP"] == record["val_mAP"]

    metrics = tmp_path / "metrics.json"
    assert main(["test", str(recipe), "--weights", str(out / "best.ckpt"), "--images", str(voc / "JPEGImages"),
                 "--ann", str(voc / "Annotations"), "--json", str(metrics)]) == 0
    scored = json.loads(metrics.read_text())
    assert scored["images"] == 4 and set(scored["per_class"]) == set(CLASSES)
    assert abs(scored["mAP"] - record["val_mAP"]) < 1e-6  # the trainer and `ednas test` agree
