"""Tiny in-code fixtures for the evaluator tests: ONNX models made with onnx.helper and a
hand-made COCO set of blank images with known boxes."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

STRIDES = (8, 16, 32, 64)


def num_priors(size: int) -> int:
    return sum(math.ceil(size / s) ** 2 for s in STRIDES)


def write_onnx(path: Path, size: int = 64, channels: int = 6 + 32, batch: int | str = "N",
               input_shape: list | None = None) -> Path:
    """A model with the released contract: data (batch, 3, size, size) -> (batch, A, channels),
    computed as the sigmoid of mean-pooled colour times a fixed random matrix (outputs depend on
    the input; scores are in [0, 1] as the released model's are)."""
    a = num_priors(size)
    weight = np.random.default_rng(0).normal(size=(3, a * channels)).astype(np.float32)
    nodes = [
        helper.make_node("GlobalAveragePool", ["data"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"]),
        helper.make_node("MatMul", ["flat", "w"], ["mixed"]),
        helper.make_node("Reshape", ["mixed", "shape"], ["logits"]),
        helper.make_node("Sigmoid", ["logits"], ["output"]),
    ]
    graph = helper.make_graph(
        nodes, "tiny",
        [helper.make_tensor_value_info("data", TensorProto.FLOAT, input_shape or [batch, 3, size, size])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [batch, a, channels])],
        [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(np.array([-1, a, channels], np.int64), "shape")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.fixture
def tiny_onnx(tmp_path):
    """Factory: tiny_onnx(**write_onnx kwargs) -> path of a new tiny ONNX model."""
    counter = iter(range(100))
    return lambda **kw: write_onnx(tmp_path / f"tiny{next(counter)}.onnx", **kw)


@pytest.fixture
def boxes_set(tmp_path):
    """(images dir, annotations json): 4 blank images of different sizes with 1-5 boxes each,
    3 categories with ids 5, 9, 2 (the last has no boxes)."""
    rng = np.random.default_rng(0)
    images_dir = tmp_path / "images"
    images_dir.mkdir()
    gt = {"images": [], "annotations": [],
          "categories": [{"id": 5, "name": "a"}, {"id": 9, "name": "b"}, {"id": 2, "name": "c"}]}
    for i, (w, h) in enumerate([(200, 150), (90, 120), (64, 64), (300, 100)]):
        cv2.imwrite(str(images_dir / f"{i}.png"), np.zeros((h, w, 3), np.uint8))
        gt["images"].append({"id": 100 + i, "file_name": f"{i}.png", "width": w, "height": h})
        for _ in range(int(rng.integers(1, 6))):
            bw, bh = rng.uniform(0.2, 0.6) * w, rng.uniform(0.2, 0.6) * h
            x, y = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
            gt["annotations"].append({
                "id": len(gt["annotations"]) + 1, "image_id": 100 + i, "category_id": int(rng.choice([5, 9])),
                "bbox": [x, y, bw, bh], "area": bw * bh, "iscrowd": 0,
            })
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps(gt))
    return images_dir, ann
