"""Learned weight rounding (AdaRound, Nagel et al. 2020) of a QDQ model, layer by layer.

Rounding every weight to its nearest integer is not the best INT8 model: what matters is each
conv's output, and rounding errors of one output channel's weights can cancel. AdaRound keeps
the QDQ model's scales and learns, per weight, whether to round down or up:

    W~ = s * clip(floor(W / s) + h(V), lo, hi),   h(V) = clip(sigmoid(V) * 1.2 - 0.1, 0, 1)

minimising, for each quantized conv in graph order, the squared error of its output against
the FP32 model's output of the same conv, with the conv's input taken from the *quantized*
model whose earlier layers are already rounded (so the error that reaches a layer is part of
what it corrects), plus a regulariser that drives every h(V) to 0 or 1 (its exponent annealed
from 20 to 2 after a warm-up). The result is hard-rounded and written into the same int8
initializers: graph, scales, contract and speed are the QDQ model's own. Unlike fine-tuning
(finetune.py), no weight moves by more than one integer step and no label or augmentation is
involved, only the calibration images.

Both graphs run in torch (finetune.QdqGraph) over the whole batch of calibration images at
once, node by node and in step, each tensor dropped after its last reader.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ednas.compress.quantize.finetune import QdqGraph, weight_range
from ednas.onnx_runtime import load_onnx

log = logging.getLogger(__name__)

ZETA, GAMMA = 1.1, -0.1  # the rectified sigmoid's stretch (AdaRound's values)


@dataclass(frozen=True)
class AdaRoundConfig:
    """How each layer's rounding is learned (AdaRound's defaults, scaled to a CPU)."""

    # Adam steps per conv (the paper: 10k on a GPU). s at 256 px, 64 images: output error 0.0327 ->
    # 0.0262 with 300 (50 ended above round-to-nearest); about 3 minutes on 2 cores
    iters: int = 300
    batch: int = 8  # calibration images per step
    images: int = 64  # calibration images whose activations are kept (both graphs, all at once)
    crop: int = 16  # output window of each step, in pixels of the conv's output (the whole map when smaller)
    lr: float = 1e-2  # Adam on V
    reg: float = 0.01  # weight of the rounding regulariser (AdaRound's lambda)
    warmup: float = 0.2  # share of the steps without the regulariser
    beta: tuple[float, float] = (20.0, 2.0)  # the regulariser's exponent, annealed from the first to the second
    seed: int = 0


def _h(v: Any) -> Any:
    import torch

    return torch.clamp(torch.sigmoid(v) * (ZETA - GAMMA) + GAMMA, 0, 1)


def _initial_v(rest: np.ndarray) -> np.ndarray:
    """V with h(V) equal to the fractional part `rest` (so learning starts at W itself)."""
    rest = np.clip(rest, 1e-4, 1 - 1e-4)
    return -np.log((ZETA - GAMMA) / (rest - GAMMA) - 1)


class _Crops:
    """Random crops of a conv's input and output for the learning steps: the input padded
    once as the conv pads it, an output window of `size` (the whole map when smaller) and
    the input window that produces it. On a CPU the high-resolution early layers cost far more
    per step than the rest; a window bounds every step alike."""

    def __init__(self, node: onnx.NodeProto, x: Any, y: Any, kernel: tuple[int, ...], size: int) -> None:
        import torch.nn.functional as F

        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        pads = list(attrs.get("pads", [0, 0, 0, 0]))
        self.x = F.pad(x, [pads[1], pads[3], pads[0], pads[2]])  # (N, C, H + pads, W + pads)
        self.y = y
        self.stride = list(attrs.get("strides", [1, 1]))
        self.dilation = list(attrs.get("dilations", [1, 1]))
        self.groups = int(attrs.get("group", 1))
        self.kernel, self.size = kernel, size

    def sample(self, batch: int, gen: Any) -> tuple[Any, Any]:
        """(input crops, output crops) of `batch` random images at one random window."""
        import torch

        pick = torch.randint(len(self.y), (min(batch, len(self.y)),), generator=gen)
        rows, cols = self.y.shape[2:]
        h, w = min(self.size, rows), min(self.size, cols)
        r0 = int(torch.randint(rows - h + 1, (1,), generator=gen))
        c0 = int(torch.randint(cols - w + 1, (1,), generator=gen))
        span = [(n - 1) * s + (k - 1) * d + 1 for n, s, k, d in zip((h, w), self.stride, self.kernel, self.dilation)]
        x = self.x[pick, :, r0 * self.stride[0]:r0 * self.stride[0] + span[0],
                   c0 * self.stride[1]:c0 * self.stride[1] + span[1]]
        return x, self.y[pick, :, r0:r0 + h, c0:c0 + w]

    def conv(self, x: Any, weight: Any, bias: Any) -> Any:
        import torch.nn.functional as F

        return F.conv2d(x, weight, bias, stride=self.stride, dilation=self.dilation, groups=self.groups)


def _learn(graph: QdqGraph, node: onnx.NodeProto, name: str, w_fp: np.ndarray, x: Any, bias: Any, y: Any,
           config: AdaRoundConfig, gen: Any) -> tuple[float, float]:
    """Learn the rounding of weight `name` of conv `node` (with its bias as the QDQ model
    has it) from its quantized input `x` to the FP32 output `y`; set the rounded weight in
    `graph`. (output error before, after)."""
    import torch

    scale, axis = graph.scales[name]
    lo, hi = graph.weight_range
    shape = [1] * w_fp.ndim
    shape[axis] = -1
    s = scale.reshape(shape) if scale.ndim == 1 else scale
    w = torch.from_numpy(w_fp.astype(np.float32))
    floor = torch.floor(w / s)
    v = torch.tensor(_initial_v((w / s - floor).numpy()), requires_grad=True)
    opt = torch.optim.Adam([v], lr=config.lr)
    warm = int(config.warmup * config.iters)

    def error(weight: Any) -> float:
        with torch.no_grad():
            return float(((graph.conv(node, x, weight, bias) - y) ** 2).sum(1).mean())

    before = error(torch.clamp(torch.round(w / s), lo, hi) * s)
    crops = _Crops(node, x, y, tuple(w.shape[2:]), config.crop)
    for step in range(config.iters):
        xs, ys = crops.sample(config.batch, gen)
        soft = torch.clamp(floor + _h(v), lo, hi) * s
        loss = ((crops.conv(xs, soft, bias) - ys) ** 2).sum(1).mean()
        if step >= warm:
            t = (step - warm) / max(config.iters - warm, 1)
            beta = config.beta[0] + t * (config.beta[1] - config.beta[0])
            loss = loss + config.reg * (1 - (2 * _h(v) - 1).abs().pow(beta)).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    hard = torch.clamp(floor + (v.detach() >= 0).float(), lo, hi) * s
    after = error(hard)
    if after >= before:  # the learned rounding did not pay on these images: keep the nearest
        hard, after = torch.clamp(torch.round(w / s), lo, hi) * s, before
    graph.params[name] = hard.requires_grad_(False)
    return before, after


def _fp32_outputs(graph: QdqGraph, x: Any, wanted: set[str]) -> Iterator[tuple[str, Any, np.ndarray]]:
    """(conv node name, its output, its FP32 weight) for each conv of `wanted`, in graph order."""
    env: dict[str, Any] = {}
    pending: onnx.NodeProto | None = None
    for node in graph.steps(x, env, free=True):
        if pending is not None:
            yield pending.name, env[pending.output[0]], np.asarray(graph.consts[pending.input[1]].numpy())
            pending = None
        if node.op_type == "Conv" and node.name in wanted:
            pending = node
    if pending is not None:
        yield pending.name, env[pending.output[0]], np.asarray(graph.consts[pending.input[1]].numpy())


def _target(name: str, targets: Iterator[tuple[str, Any, np.ndarray]],
            stash: dict[str, tuple[Any, np.ndarray]]) -> tuple[Any, np.ndarray] | None:
    """The FP32 (output, weight) of conv `name`, advancing the FP32 run as far as needed
    (outputs of convs passed on the way are kept for later)."""
    while name not in stash:
        found = next(targets, None)
        if found is None:
            return None
        stash[found[0]] = found[1:]
    return stash.pop(name)


def adaround_qdq(qdq_path: str | Path, fp32_path: str | Path, inputs: np.ndarray, out: str | Path,
                 reduce_range: bool, config: AdaRoundConfig = AdaRoundConfig(), threads: int | None = None) -> Path:
    """Write `qdq_path` with every quantized conv weight's rounding learned against
    `fp32_path` (the model it was quantized from: same conv names) on `inputs` (N, C, H, W)
    to `out`, and return it."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    started = time.monotonic()
    model = load_onnx(qdq_path)
    graph = QdqGraph(model, weight_range(reduce_range))
    reference = QdqGraph(load_onnx(fp32_path), weight_range(False))  # FP32: the range is not used
    weights = {n.name: graph.dq_param[n.input[1]] for n in model.graph.node
               if n.op_type == "Conv" and len(n.input) > 1 and graph.kind.get(graph.dq_param.get(n.input[1], "")) == "weight"}
    gen = torch.Generator().manual_seed(config.seed)
    pick = np.linspace(0, len(inputs) - 1, min(config.images, len(inputs))).round().astype(int)
    x = torch.from_numpy(np.ascontiguousarray(inputs[pick], np.float32))
    targets = _fp32_outputs(reference, x, set(weights))
    stash: dict[str, tuple[Any, np.ndarray]] = {}
    env: dict[str, Any] = {}
    errors = []
    with torch.no_grad():  # both forwards; each layer's learning turns gradients back on
        for node in graph.steps(x, env, free=True):
            if node.op_type != "Conv" or node.name not in weights:
                continue
            target = _target(node.name, targets, stash)
            if target is None or target[1].shape != tuple(graph.params[weights[node.name]].shape):
                log.warning("adaround: no FP32 conv %s of the same shape; its rounding is left as it is", node.name)
                continue
            bias = env[node.input[2]].detach() if len(node.input) > 2 and node.input[2] else None
            with torch.enable_grad():
                errors.append(_learn(graph, node, weights[node.name], target[1], env[node.input[0]], bias,
                                     target[0], config, gen))
            env[node.input[1]] = graph.params[weights[node.name]]  # its DequantizeLinear ran before the learning
    inits = {i.name: i for i in model.graph.initializer}
    for name, value in graph.state().items():
        if name in weights.values():
            inits[name].CopyFrom(numpy_helper.from_array(value, name))
    onnx.save(model, str(out))
    log.debug("per conv before/after: %s", [(round(b, 3), round(a, 3)) for b, a in errors])
    before, after = (float(np.mean([e[k] for e in errors])) if errors else 0.0 for k in (0, 1))
    log.info("learned rounding of %d convs on %d images in %.0f s: mean conv output error %.4g -> %.4g",
             len(errors), len(x), time.monotonic() - started, before, after)
    return Path(out)
