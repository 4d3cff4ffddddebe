"""Every command that takes a model accepts the three forms of one: a bundled recipe (or
architecture) name, a recipe YAML and an ARCH.yml (as search, prune and extract write)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from ednas.cli import main
from ednas.data.classes import COCO_CLASSES


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    from ednas.arch import AuxArch, NeckArch
    from ednas.arch.zoo import get_arch
    from ednas.models import build_model, save_checkpoint

    d = tmp_path_factory.mktemp("model_argument")
    base = get_arch("enhanced_nanodet_s")
    tiny = dataclasses.replace(base, neck=NeckArch(width=32), head=dataclasses.replace(base.head, feat_channels=32),
                               aux=AuxArch(feat_channels=32, num_groups=8), input_size=64)
    tiny.save(d / "tiny.arch.yml")
    (d / "tiny.yml").write_text("model: {arch: tiny.arch.yml, input_size: 64}\ndata: {class_names: coco}\n")
    save_checkpoint(d / "tiny.ckpt", build_model(tiny))
    save_checkpoint(d / "s.ckpt", build_model(base))
    rng = np.random.default_rng(0)
    (d / "imgs").mkdir()
    coco = {"images": [], "annotations": [],
            "categories": [{"id": i + 1, "name": n} for i, n in enumerate(COCO_CLASSES)]}
    for i in range(3):
        img = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
        cv2.rectangle(img, (10, 10), (40, 40), (255, 255, 255), -1)
        cv2.imwrite(str(d / "imgs" / f"{i}.jpg"), img)
        coco["images"].append({"id": i + 1, "file_name": f"{i}.jpg", "width": 64, "height": 64})
        coco["annotations"].append({"id": i + 1, "image_id": i + 1, "category_id": 1,
                                    "bbox": [10, 10, 30, 30], "area": 900, "iscrowd": 0})
    (d / "ann.json").write_text(json.dumps(coco))
    return d


FORMS = [("enhanced_nanodet_s", "s.ckpt"), ("{d}/tiny.yml", "tiny.ckpt"), ("{d}/tiny.arch.yml", "tiny.ckpt")]


@pytest.mark.parametrize("model, ckpt", FORMS, ids=["name", "recipe", "arch"])
def test_export_test_and_prune_take_every_form(inputs, tmp_path, capsys, model, ckpt):
    model = model.format(d=inputs)
    weights = str(inputs / ckpt)
    assert main(["export", model, "--weights", weights, "--out", str(tmp_path / "m.onnx")]) == 0
    assert (tmp_path / "m.onnx").stat().st_size > 0
    assert main(["test", model, "--weights", weights, "--images", str(inputs / "imgs"),
                 "--ann", str(inputs / "ann.json"), "--out", str(tmp_path / "m.json")]) == 0
    assert json.loads((tmp_path / "m.json").read_text())["images"] == 3
    assert main(["test", model, "--onnx", str(tmp_path / "m.onnx"), "--images", str(inputs / "imgs"),
                 "--ann", str(inputs / "ann.json")]) == 0
    out = tmp_path / "p.ckpt"
    assert main(["prune", model, "--weights", weights, "--ratio", "0.3", "--threads", "1", "--out", str(out)]) == 0
    assert json.loads(out.with_suffix(".json").read_text())["ratio"] == 0.3
    # what prune wrote is itself a model argument
    assert main(["flops", str(out.with_suffix(".arch.yml")), "--weights", str(out)]) == 0
    capsys.readouterr()


def test_latency_takes_every_form(tmp_path, capsys):
    """`ednas latency` prices the same model given by name, recipe YAML or ARCH.yml (the committed
    table of the enhanced_nanodet space; skipped on a CPU that table was not measured on)."""
    import re

    from ednas.arch.zoo import get_arch

    get_arch("enhanced_nanodet_s").save(tmp_path / "s.arch.yml")
    (tmp_path / "s.yml").write_text("model: {arch: enhanced_nanodet_s}\n")
    predicted = []
    for form in ("enhanced_nanodet_s", str(tmp_path / "s.yml"), str(tmp_path / "s.arch.yml")):
        code = main(["latency", form])
        out, err = capsys.readouterr()
        if code == 2 and "profile" in err and "latency table" not in out:
            pytest.skip(f"the committed table does not fit this machine: {err.strip()}")
        assert code == 0, err
        predicted.append(float(re.search(r"([0-9.]+) ms predicted", out).group(1)))
    assert predicted[0] > 0 and predicted.count(predicted[0]) == 3
