"""Tiny peers made in code: ONNX models with a peer's outputs (onnx.helper) and their cards."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import onnx
import yaml
from onnx import TensorProto, helper, numpy_helper

SIZE = 64
CLASSES = ["a", "b", "c"]


def write_peer_onnx(path: Path, outputs: Sequence[tuple[Sequence[int], bool]], size: int = SIZE) -> Path:
    """A model image (1, 3, size, size) -> one output per (shape, sigmoid) in `outputs`: mean-pooled
    colour times a fixed random matrix, reshaped, through a Sigmoid where asked."""
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("GlobalAveragePool", ["image"], ["pooled"]),
             helper.make_node("Flatten", ["pooled"], ["flat"])]
    inits, graph_outputs = [], []
    for k, (shape, sigmoid) in enumerate(outputs):
        weight = rng.normal(size=(3, int(np.prod(shape)))).astype(np.float32)
        inits += [numpy_helper.from_array(weight, f"w{k}"), numpy_helper.from_array(np.array(shape, np.int64), f"s{k}")]
        raw = f"raw{k}" if sigmoid else f"out{k}"
        nodes += [helper.make_node("MatMul", ["flat", f"w{k}"], [f"mixed{k}"]),
                  helper.make_node("Reshape", [f"mixed{k}", f"s{k}"], [raw])]
        if sigmoid:
            nodes.append(helper.make_node("Sigmoid", [raw], [f"out{k}"]))
        graph_outputs.append(helper.make_tensor_value_info(f"out{k}", TensorProto.FLOAT, list(shape)))
    graph = helper.make_graph(nodes, "tiny_peer",
                              [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, size, size])],
                              graph_outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def card_data(layout: str = "yolox", strides: Sequence[int] = (8, 16, 32), scores: str = "probabilities",
              **output: object) -> dict:
    """A card (plain data) of a tiny 3-class peer at SIZE px."""
    return {
        "name": f"tiny {layout}",
        "input": {"size": SIZE, "colour": "bgr", "mean": [0, 0, 0], "std": [255, 255, 255],
                  "resize": "stretch", "interpolation": "linear"},
        "output": {"layout": layout, "strides": list(strides), "scores": scores, **output},
        "class_names": CLASSES,
    }


def write_card(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path
