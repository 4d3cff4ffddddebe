"""`ednas test --onnx` end to end on a tiny ONNX model and a hand-made COCO set."""

from __future__ import annotations

import json

from ednas.cli import main


def _recipe(tmp_path, class_names):
    path = tmp_path / "tiny.yml"
    path.write_text(f"model: {{arch: enhanced_nanodet_s, input_size: 64}}\ndata: {{class_names: {class_names}}}\n")
    return str(path)


def test_onnx_evaluation_prints_a_table_and_writes_json(tmp_path, tiny_onnx, boxes_set, capsys):
    images, ann = boxes_set
    out = tmp_path / "metrics.json"
    code = main(["test", _recipe(tmp_path, "[a, b, c]"), "--onnx", str(tiny_onnx(channels=3 + 32)),
                 "--images", str(images), "--ann", str(ann), "--json", str(out), "--batch", "3"])
    assert code == 0
    text = capsys.readouterr().out
    assert "on 4 images" in text and "mAP" in text and "per-class AP" in text
    metrics = json.loads(out.read_text())
    assert {"mAP", "AP50", "AP75", "APs", "APm", "APl"} <= metrics.keys()
    assert 0 <= metrics["mAP"] <= 1 and metrics["per_class"]["c"] is None


def test_class_count_mismatch_is_a_one_line_error(tmp_path, tiny_onnx, boxes_set, capsys):
    images, ann = boxes_set
    code = main(["test", _recipe(tmp_path, "[a, b]"), "--onnx", str(tiny_onnx(channels=3 + 32)),
                 "--images", str(images), "--ann", str(ann)])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ednas test: error:") and "3 categories but 2 class names" in err
    assert "\n" not in err


def test_checkpoint_evaluation(tmp_path, boxes_set, capsys):
    """--weights: the checkpoint's own (here: a quarter-width) architecture, the recipe's classes."""
    import dataclasses

    from ednas.arch import AuxArch, NeckArch
    from ednas.models import build_model
    from ednas.models.checkpoint import save_checkpoint
    from ednas.arch.zoo import get_arch

    base = get_arch("enhanced_nanodet_s")
    arch = dataclasses.replace(
        base, backbone=dataclasses.replace(base.backbone, widths=(0.25,) * 5), neck=NeckArch(width=32),
        head=dataclasses.replace(base.head, feat_channels=32), aux=AuxArch(feat_channels=32, num_groups=8),
        input_size=64, num_classes=3,
    )
    ckpt = tmp_path / "tiny.ckpt"
    save_checkpoint(ckpt, build_model(arch))
    images, ann = boxes_set
    code = main(["test", _recipe(tmp_path, "[a, b, c]"), "--weights", str(ckpt),
                 "--images", str(images), "--ann", str(ann)])
    assert code == 0 and "on 4 images" in capsys.readouterr().out
