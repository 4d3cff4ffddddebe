"""Grad-CAM: map alignment, shapes and errors on a random tiny detector; with the released
weights, the heatmap of a clear single object lies in its box."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
import torch

from ednas.arch import NeckArch
from ednas.cli import main
from ednas.errors import InputError
from ednas.models import build_model
from ednas.models.checkpoint import save_checkpoint
from ednas.arch.zoo import get_arch
from ednas.report.gradcam import cam_to_image, class_index, explain

NAMES = ("red", "green")
ZEBRA = "000000000034.jpg"  # coco-train128: one zebra over most of the image, no other object


@pytest.fixture(scope="module")
def tiny_model():
    """Enhanced NanoDet_s at quarter width, 64 px, 2 classes, random weights; class 0's bias
    raised so that it has detections to explain."""
    torch.manual_seed(0)
    base = get_arch("enhanced_nanodet_s")
    arch = dataclasses.replace(
        base, backbone=dataclasses.replace(base.backbone, widths=(0.25,) * 5), neck=NeckArch(width=32),
        head=dataclasses.replace(base.head, feat_channels=32), input_size=64, num_classes=len(NAMES),
    )
    model = build_model(arch)
    with torch.no_grad():
        for conv in model.head.gfl_cls:
            torch.nn.init.normal_(conv.weight, std=0.3)
            conv.bias[0] = 1.0
    return model.eval()


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (48, 80, 3), dtype=np.uint8)  # not square


def test_a_cell_lands_on_its_prior_point():
    cam = torch.zeros(5, 5)
    cam[1, 3] = 1.0  # cell (x=3, y=1) of a stride-16 map: input pixel (48, 16)
    heat = cam_to_image(cam, stride=16, input_size=80, scale=(2.0, 1.5), image_hw=(120, 160))
    assert heat.shape == (120, 160) and heat.dtype == np.float32
    y, x = np.unravel_index(heat.argmax(), heat.shape)
    assert (x, y) == (96, 24) and heat.max() == pytest.approx(1.0, abs=1e-3)


def test_class_level_heatmap_shapes_and_defaults(tiny_model, image):
    cam = explain(tiny_model, image, NAMES)
    assert cam.label == 0 and cam.method == "gradcam"  # class of the top-scoring detection
    assert cam.heatmap.shape == image.shape[:2] and cam.heatmap.dtype == np.float32
    assert 0.0 <= cam.heatmap.min() and cam.heatmap.max() == pytest.approx(1.0)
    assert cam.heatmap.std() > 0.01
    assert cam.overlay.shape == image.shape and cam.overlay.dtype == np.uint8
    assert cam.stride == tiny_model.arch.strides[cam.level]
    assert len(cam.detections.scores) and (cam.detections.labels == 0).all()

    other = explain(tiny_model, image, NAMES, label=1, level=3)
    assert (other.label, other.level, other.bbox) == (1, 3, None)  # no detection of class 1


def test_one_detection_uses_its_prior(tiny_model, image):
    cam = explain(tiny_model, image, NAMES, box=1)
    assert cam.method == "hirescam" and cam.detection == 1
    assert cam.bbox == pytest.approx(cam.detections.boxes[1].tolist())
    assert cam.score == pytest.approx(float(cam.detections.scores[1]))
    assert cam.heatmap.shape == image.shape[:2] and cam.heatmap.max() == pytest.approx(1.0)


@pytest.mark.parametrize("kwargs, message", [
    ({"level": 4}, "--level 4 is out of range: this model has levels 0..3"),
    ({"level": 0, "box": 0}, "give --box or --level, not both"),
    ({"box": 10_000}, "--box 10000: 'red' has"),
    ({"label": 1, "box": 0}, "'green' has 0 detections"),
    ({"method": "cam++"}, "valid methods: gradcam, hirescam"),
])
def test_bad_requests_are_one_line_errors(tiny_model, image, kwargs, message):
    with pytest.raises(InputError, match=message.replace("+", r"\+")) as err:
        explain(tiny_model, image, NAMES, **kwargs)
    assert "\n" not in str(err.value)


def test_unknown_class_lists_names():
    assert class_index("green", NAMES) == 1
    with pytest.raises(InputError, match="did you mean: green"):
        class_index("gren", NAMES)
    with pytest.raises(InputError, match="valid names: red, green"):
        class_index("zebra", NAMES)


def test_command_writes_png(tiny_model, image, tmp_path, capsys):
    weights, img, recipe = tmp_path / "tiny.ckpt", tmp_path / "img.png", tmp_path / "tiny.yml"
    save_checkpoint(weights, tiny_model)
    cv2.imwrite(str(img), image)
    recipe.write_text("model: {arch: enhanced_nanodet_s, input_size: 64}\n"
                      f"data: {{class_names: [{', '.join(NAMES)}]}}\n")
    common = [str(recipe), "--weights", str(weights), "--image", str(img)]
    out = tmp_path / "cam" / "red.png"
    assert main(["gradcam", *common, "--class", "red", "--box", "0", "--out", str(out)]) == 0
    assert "hirescam of 'red' logit, detection 0" in capsys.readouterr().out
    assert cv2.imread(str(out)).shape == image.shape

    assert main(["gradcam", *common, "--class", "blue", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ednas gradcam: error: --class 'blue'") and "\n" not in err


def test_released_model_looks_at_the_zebra(released_onnx, coco128):
    from ednas.data.preprocess import read_image
    from ednas.data.classes import COCO_CLASSES
    from ednas.models.onnx_import import import_onnx

    model = build_model(get_arch("enhanced_nanodet_s"))
    import_onnx(model, released_onnx)
    image = read_image(coco128 / "images" / ZEBRA)
    cam = explain(model, image, COCO_CLASSES)
    assert COCO_CLASSES[cam.label] == "zebra" and cam.score > 0.7 and len(cam.detections.scores) == 1
    heat = cam.heatmap
    assert heat.std() > 0.1  # not constant
    x1, y1, x2, y2 = (int(round(v)) for v in cam.bbox)
    inside = np.zeros(heat.shape, dtype=bool)
    inside[y1:y2, x1:x2] = True
    y, x = np.unravel_index(heat.argmax(), heat.shape)
    assert inside[y, x]
    assert heat[inside].mean() > 4 * heat[~inside].mean()
