"""Quantization-aware fine-tuning of a QDQ model by distillation from its FP32 model.

8-bit activations, not weights, cost this family its accuracy (diagnosis on s at 256 px, all
128 coco-train128 images: weights alone INT8 -0.4 points, activations alone 2.5). Ranges and
bias correction cannot undo rounding noise; weights and ranges trained with it can. So the QDQ
graph itself is run in torch (`QdqGraph`):

- every activation QuantizeLinear -> DequantizeLinear pair is a fake quantizer with the
  model's own zero point and (trainable, LSQ) scale, gradients passed straight through inside
  the range;
- every quantized conv weight is a float weight fake-quantized per channel with its own fixed
  scales (straight through), every int32 bias a float bias; FP32 convs (the output tail)
  train as they are;

and trained on augmented calibration images to bring its detector output close to FP32's
(`finetune_qdq`). The result is written back into the same initializers: int8 weights,
activation scales, and int32 biases re-scaled to input scale x weight scale as ONNX Runtime
requires. Graph, zero points, contract and speed are the QDQ model's own.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ednas.errors import InputError
from ednas.onnx_runtime import load_onnx

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FinetuneConfig:
    """How long and how hard to fine-tune."""

    steps: int = 200  # optimizer steps; 400 lowered no held-out output error further (s at 256 px, 64 images)
    batch: int = 8  # augmented images per step
    lr: float = 5e-5  # Adam on weights and biases, cosine to 0
    learn_ranges: bool = True  # activation scales trained too (LSQ): held-out output error -30 % instead of -17 %
    range_lr: float = 1e-3  # Adam on log(scale): at most ~20 % over 200 steps
    weigh_boxes: bool = True  # box errors weighted by FP32's top score at the anchor (_loss)
    seed: int = 0


class UnsupportedGraph(InputError):
    """The QDQ graph has an operator the torch interpreter does not know."""


def _attrs(node: onnx.NodeProto) -> dict[str, Any]:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _round_ste(x: Any) -> Any:
    """round(x) forward, identity backward."""
    return x + (x.round() - x).detach()


def _axis_view(t: Any, axis: int, ndim: int) -> Any:
    """A per-channel (C,) tensor shaped to broadcast along `axis` of an ndim tensor."""
    if t.ndim == 0 or ndim == 1:
        return t
    shape = [1] * ndim
    shape[axis] = -1
    return t.reshape(shape)


_QRANGE = {np.dtype(np.uint8): (0, 255), np.dtype(np.int8): (-128, 127)}


def weight_range(reduce_range: bool) -> tuple[int, int]:
    """The integer range of the QDQ model's int8 weights (7-bit with reduce_range, see ednas.cpu)."""
    return (-64, 64) if reduce_range else (-127, 127)


def unsupported_ops(model: onnx.ModelProto) -> list[str]:
    """Operator types of `model` that QdqGraph cannot run (empty: it can be fine-tuned)."""
    return sorted({n.op_type for n in model.graph.node} - set(_ops()) - set(_QDQ))


class QdqGraph:
    """A QDQ (or plain FP32) ONNX graph as a differentiable torch function of its input.

    `params` are the trainable tensors: the float shadow of every int8 conv weight, every
    int32 bias as a float, and every float conv weight and bias; `log_scales` the activation
    scales (learn_ranges). `state()` turns them back into initializers."""

    def __init__(self, model: onnx.ModelProto, weight_range: tuple[int, int], learn_ranges: bool = False) -> None:
        import torch

        self.model = model
        self.weight_range, self.learn_ranges = weight_range, learn_ranges
        unknown = unsupported_ops(model)
        if unknown:
            raise UnsupportedGraph(f"quantization-aware fine-tuning cannot run {', '.join(unknown)} nodes")
        inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
        self._producer = {o: n for n in model.graph.node for o in n.output}
        consumers: dict[str, list[tuple[onnx.NodeProto, int]]] = {}
        for node in model.graph.node:
            for k, name in enumerate(node.input):
                consumers.setdefault(name, []).append((node, k))
        self.consts: dict[str, Any] = {}
        for name, value in inits.items():
            self.consts[name] = torch.from_numpy(value.copy()) if value.dtype.kind == "f" else value
        self.fused: dict[str, tuple[str, str, int, int, int]] = {}  # DQ output -> (Q input, scale, zero, lo, hi)
        self.log_scales: dict[str, Any] = {}  # activation scale initializer -> its trainable log (learn_ranges)
        self.bias_scale: dict[str, tuple[str, str, str]] = {}  # bias -> (its scale, input scale, weight) inits
        self.skipped: set[str] = set()  # outputs of the QuantizeLinear nodes fused into their DQ
        self.params: dict[str, Any] = {}  # initializer name -> trainable float tensor
        self.kind: dict[str, str] = {}  # initializer name -> weight | bias | float
        self.dq_param: dict[str, str] = {}  # DequantizeLinear output -> initializer it reads
        self.scales: dict[str, Any] = {}  # initializer name -> its DequantizeLinear's scale (float tensor)
        for node in model.graph.node:
            uses = [(c.op_type, k) for c, k in consumers.get(node.output[0], [])] if node.output else []
            if node.op_type == "DequantizeLinear" and node.input[0] in inits and uses and \
                    all(op == "Conv" and k in (1, 2) for op, k in uses):
                name = node.input[0]
                scale = torch.from_numpy(np.asarray(inits[node.input[1]], np.float32).copy())
                zero = inits[node.input[2]] if len(node.input) > 2 and node.input[2] else 0
                if np.any(np.asarray(zero) != 0):
                    continue  # asymmetric weights: left as constants
                value = np.asarray(inits[name], np.float64)
                axis = _attrs(node).get("axis", 1)
                self.params[name] = torch.tensor(value * _axis_view(scale.double(), axis, value.ndim).numpy(),
                                                 dtype=torch.float32, requires_grad=True)
                self.kind[name] = "weight" if uses[0][1] == 1 else "bias"
                self.scales[name] = (scale, axis)
                self.dq_param[node.output[0]] = name
            elif node.op_type == "DequantizeLinear" and self._pairs(node, consumers):
                pass
            elif node.op_type == "Conv":
                self._link_bias(node)
                for name in node.input[1:]:
                    if name in inits and inits[name].dtype == np.float32 and name not in self.params:
                        self.params[name] = self.consts[name].clone().requires_grad_(True)
                        self.kind[name] = "float"

    def _pairs(self, dq: onnx.NodeProto, consumers: dict[str, list[tuple[onnx.NodeProto, int]]]) -> bool:
        """Fuse a per-tensor QuantizeLinear -> DequantizeLinear pair (same scale and zero point,
        the DQ its only reader) into one fake quantizer (one op instead of seven); with
        learn_ranges its scale becomes trainable (LSQ, Esser et al. 2020), its zero point stays."""
        producer = self._producer.get(dq.input[0])
        if producer is None or producer.op_type != "QuantizeLinear" or list(producer.input[1:]) != list(dq.input[1:]) \
                or len(consumers.get(producer.output[0], [])) != 1 or len(dq.input) < 3:
            return False
        scale, zero = np.asarray(self.consts[dq.input[1]]), np.asarray(self.consts[dq.input[2]])
        if scale.size != 1 or zero.dtype not in (np.uint8, np.int8):
            return False
        lo, hi = _QRANGE[zero.dtype]
        self.fused[dq.output[0]] = (producer.input[0], dq.input[1], int(zero), lo, hi)
        self.skipped.add(producer.output[0])
        if self.learn_ranges:
            import torch

            self.log_scales[dq.input[1]] = torch.tensor(float(np.log(float(scale))), requires_grad=True)
        return True

    def _link_bias(self, conv: onnx.NodeProto) -> None:
        """Remember which activation and weight scales a conv's int32 bias is scaled by (ORT:
        bias scale = input scale x weight scale), to re-scale it when the input's range moves."""
        if len(conv.input) < 3 or conv.input[2] not in self.dq_param:
            return
        x_dq, w_dq = self._producer.get(conv.input[0]), self._producer.get(conv.input[1])
        bias_dq = self._producer[conv.input[2]]
        if x_dq is not None and x_dq.op_type == "DequantizeLinear" and w_dq is not None and \
                w_dq.output[0] in self.dq_param:
            self.bias_scale[self.dq_param[conv.input[2]]] = (bias_dq.input[1], x_dq.input[1],
                                                             self.dq_param[w_dq.output[0]])

    def __call__(self, x: Any) -> list[Any]:
        env: dict[str, Any] = {}
        for _ in self.steps(x, env):
            pass
        return [env[o.name] for o in self.model.graph.output]

    def steps(self, x: Any, env: dict[str, Any], free: bool = False) -> Iterator[onnx.NodeProto]:
        """Run the graph on `x` into `env`, yielding each node before it runs (so a caller can
        read its inputs, or change its weights, first). `free`: drop every tensor after its last
        reader (the graph's outputs stay), for batches too large to keep whole."""
        env[self.model.graph.input[0].name] = x
        dead = self._dead_after() if free else {}
        for k, node in enumerate(self.model.graph.node):
            yield node
            self._run(node, env)
            for name in dead.get(k, ()):
                env.pop(name, None)

    def _dead_after(self) -> dict[int, list[str]]:
        """Node index -> tensors no later node reads (a fused DequantizeLinear reads its
        QuantizeLinear's input)."""
        last: dict[str, int] = {}
        for k, node in enumerate(self.model.graph.node):
            for name in node.input:
                last[name] = k
            if node.output and node.output[0] in self.fused:
                last[self.fused[node.output[0]][0]] = k
        for o in self.model.graph.output:
            last.pop(o.name, None)
        out: dict[int, list[str]] = {}
        for name, k in last.items():
            out.setdefault(k, []).append(name)
        return out

    def _run(self, node: onnx.NodeProto, env: dict[str, Any]) -> None:
        import torch

        if node.op_type == "DequantizeLinear" and node.output[0] in self.dq_param:
            env[node.output[0]] = self._weight(self.dq_param[node.output[0]])
            return
        if node.output and node.output[0] in self.skipped:
            return
        if node.output and node.output[0] in self.fused:
            source, scale, zero, lo, hi = self.fused[node.output[0]]
            if scale in self.log_scales:
                env[node.output[0]] = torch._fake_quantize_learnable_per_tensor_affine(
                    env[source], self.log_scales[scale].exp().reshape(1), torch.tensor([float(zero)]), lo, hi)
            else:
                env[node.output[0]] = torch.fake_quantize_per_tensor_affine(
                    env[source], float(self.consts[scale]), zero, lo, hi)
            return
        args = [self._value(env, name) for name in node.input]
        ops = _ops()
        out = ops[node.op_type](args, _attrs(node)) if node.op_type in ops else \
            _QDQ[node.op_type](args, _attrs(node), self._dtype(node))
        for name, value in zip(node.output, out if isinstance(out, (list, tuple)) else [out]):
            env[name] = value

    def conv(self, node: onnx.NodeProto, x: Any, weight: Any, bias: Any) -> Any:
        """The Conv `node` applied to `x` with another weight (its own attributes)."""
        return _conv([x, weight, bias], _attrs(node))

    def _value(self, env: dict[str, Any], name: str) -> Any:
        if not name:
            return None
        if name in env:
            return env[name]
        if name in self.log_scales:
            return self.log_scales[name].exp()
        return self.params[name] if name in self.params else self.consts[name]

    def _dtype(self, node: onnx.NodeProto) -> np.dtype:
        """The integer type a QuantizeLinear writes (its zero point's), uint8 without one."""
        if node.op_type == "QuantizeLinear" and len(node.input) > 2 and node.input[2] in self.consts:
            return np.asarray(self.consts[node.input[2]]).dtype
        return np.dtype(np.uint8)

    def _weight(self, name: str) -> Any:
        import torch

        value = self.params[name]
        if self.kind[name] == "bias":
            return value
        scale, axis = self.scales[name]
        lo, hi = self.weight_range
        if scale.ndim == 1:
            return torch.fake_quantize_per_channel_affine(value, scale, self._zeros(len(scale)), axis, lo, hi)
        return torch.fake_quantize_per_tensor_affine(value, float(scale), 0, lo, hi)

    def _zeros(self, n: int) -> Any:
        import torch

        return torch.zeros(n, dtype=torch.int32)

    def state(self) -> dict[str, np.ndarray]:
        """The trainable tensors as the initializers they replace (int8 weights, int32 biases and
        their scales, learned activation scales)."""
        out = {name: np.asarray(np.exp(float(v.detach())), np.float32).reshape(np.shape(self.consts[name]))
               for name, v in self.log_scales.items()}
        for name, value in self.params.items():
            v = value.detach().double().numpy()
            if self.kind[name] == "float":
                out[name] = v.astype(np.float32)
                continue
            scale, axis = self.scales[name]
            link = self.bias_scale.get(name)
            if self.kind[name] == "bias" and link is not None and link[1] in self.log_scales:
                scale = self.log_scales[link[1]].detach().exp() * self.scales[link[2]][0]
                out[link[0]] = scale.numpy().astype(np.float32).reshape(np.shape(self.consts[link[0]]))
            s = _axis_view(scale.double(), axis, v.ndim).numpy()
            if self.kind[name] == "weight":
                out[name] = np.clip(np.round(v / s), *self.weight_range).astype(np.int8)
            else:
                out[name] = np.clip(np.round(v / s), -2**31, 2**31 - 1).astype(np.int32)
        return out


def _q(args: list, attrs: dict, dtype: np.dtype) -> Any:
    import torch

    x, axis = args[0], attrs.get("axis", 1)
    value = _round_ste(x / _axis_view(_tensor(args[1]), axis, x.ndim))
    if len(args) > 2 and args[2] is not None:
        value = value + _axis_view(_tensor(args[2]), axis, x.ndim)
    return torch.clamp(value, *_QRANGE[dtype])


def _dq(args: list, attrs: dict, dtype: np.dtype) -> Any:
    q = _tensor(args[0])
    axis = attrs.get("axis", 1)
    zero = _tensor(args[2]) if len(args) > 2 and args[2] is not None else None
    scale = _axis_view(_tensor(args[1]), axis, q.ndim)
    return (q - _axis_view(zero, axis, q.ndim)) * scale if zero is not None else q * scale


def _tensor(value: Any) -> Any:
    """A float torch tensor of an initializer (int ones arrive as numpy arrays)."""
    import torch

    if isinstance(value, np.ndarray) or np.isscalar(value):
        return torch.as_tensor(np.asarray(value, np.float32))
    return value.float() if not value.is_floating_point() else value


def _conv(args: list, attrs: dict) -> Any:
    import torch.nn.functional as F

    x, w, b = args[0], args[1], args[2] if len(args) > 2 else None
    if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise UnsupportedGraph("quantization-aware fine-tuning needs explicit conv pads (auto_pad NOTSET)")
    pads = list(attrs.get("pads", [0] * (2 * (w.ndim - 2))))
    half = len(pads) // 2
    if pads[:half] != pads[half:]:
        x = F.pad(x, [p for i in reversed(range(half)) for p in (pads[i], pads[i + half])])
        pads = [0] * len(pads)
    return F.conv2d(x, w, b, stride=attrs.get("strides", 1), padding=pads[:half],
                    dilation=attrs.get("dilations", 1), groups=attrs.get("group", 1))


def _reshape(args: list, attrs: dict) -> Any:
    shape = [int(s) for s in np.asarray(args[1])]
    if shape and shape[0] == 1:  # a batch of one in the exported graph: keep the batch
        shape[0] = args[0].shape[0]
    return args[0].reshape([args[0].shape[i] if s == 0 else s for i, s in enumerate(shape)])


def _resize(args: list, attrs: dict) -> Any:
    import torch.nn.functional as F

    mode = attrs.get("mode", b"nearest")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    transform = attrs.get("coordinate_transformation_mode", b"half_pixel")
    transform = transform.decode() if isinstance(transform, bytes) else transform
    x = args[0]
    scales = args[2] if len(args) > 2 and args[2] is not None and np.asarray(args[2]).size else None
    size = None
    if scales is None:
        size = [int(s) for s in np.asarray(args[3])[2:]]
    if mode == "nearest" and transform == "asymmetric":
        return F.interpolate(x, size=size, scale_factor=None if size else [float(s) for s in np.asarray(scales)[2:]],
                             mode="nearest")
    if mode == "linear" and transform in ("half_pixel", "pytorch_half_pixel", "align_corners"):
        return F.interpolate(x, size=size, scale_factor=None if size else [float(s) for s in np.asarray(scales)[2:]],
                             mode="bilinear", align_corners=transform == "align_corners")
    raise UnsupportedGraph(f"quantization-aware fine-tuning cannot run Resize mode {mode} ({transform})")


def _pad(args: list, attrs: dict) -> Any:
    import torch.nn.functional as F

    mode = attrs.get("mode", b"constant")
    if (mode.decode() if isinstance(mode, bytes) else mode) != "constant":
        raise UnsupportedGraph("quantization-aware fine-tuning runs only constant Pad")
    pads = [int(p) for p in np.asarray(args[1])]
    half = len(pads) // 2
    value = float(np.asarray(_tensor(args[2]).detach())) if len(args) > 2 and args[2] is not None else 0.0
    return F.pad(args[0], [p for i in reversed(range(half)) for p in (pads[i], pads[i + half])], value=value)


def _clip(args: list, attrs: dict) -> Any:
    import torch

    lo = args[1] if len(args) > 1 and args[1] is not None else attrs.get("min")
    hi = args[2] if len(args) > 2 and args[2] is not None else attrs.get("max")
    return torch.clamp(args[0], None if lo is None else float(_tensor(lo)), None if hi is None else float(_tensor(hi)))


def _split(args: list, attrs: dict) -> Any:
    axis = attrs.get("axis", 0)
    sizes = [int(s) for s in np.asarray(args[1])] if len(args) > 1 and args[1] is not None else attrs.get("split")
    return list(args[0].split(sizes, dim=axis))


@functools.lru_cache(maxsize=None)
def _ops() -> dict[str, Callable[[list, dict], Any]]:
    """The float operators, by ONNX type (built on first use: torch is imported only here)."""
    import torch
    import torch.nn.functional as F

    return {
        "Conv": _conv,
        "Relu": lambda a, k: F.relu(a[0]),
        "LeakyRelu": lambda a, k: F.leaky_relu(a[0], k.get("alpha", 0.01)),
        "Clip": _clip,
        "Sigmoid": lambda a, k: torch.sigmoid(a[0]),
        "HardSigmoid": lambda a, k: torch.clamp(a[0] * k.get("alpha", 0.2) + k.get("beta", 0.5), 0, 1),
        "Add": lambda a, k: _tensor(a[0]) + _tensor(a[1]),
        "Mul": lambda a, k: _tensor(a[0]) * _tensor(a[1]),
        "Sub": lambda a, k: _tensor(a[0]) - _tensor(a[1]),
        "Div": lambda a, k: _tensor(a[0]) / _tensor(a[1]),
        "Concat": lambda a, k: torch.cat([_tensor(t) for t in a], dim=k["axis"]),
        "Transpose": lambda a, k: a[0].permute(*k["perm"]),
        "Reshape": _reshape,
        "Flatten": lambda a, k: a[0].flatten(k.get("axis", 1)),
        "Resize": _resize,
        "Pad": _pad,
        "Split": _split,
        "Softmax": lambda a, k: torch.softmax(a[0], dim=k.get("axis", -1)),
        "MaxPool": lambda a, k: F.max_pool2d(a[0], k["kernel_shape"], k.get("strides", 1),
                                             k.get("pads", [0, 0, 0, 0])[:2]),
        "GlobalAveragePool": lambda a, k: a[0].mean(dim=(2, 3), keepdim=True),
        "Identity": lambda a, k: a[0],
    }


_QDQ = {"QuantizeLinear": _q, "DequantizeLinear": _dq}


class _Teacher:
    """The FP32 model in ONNX Runtime: the targets, computed for each augmented batch."""

    def __init__(self, fp32: Path, threads: int | None) -> None:
        from ednas.onnx_runtime import session

        self.sess = session(fp32, threads)
        self.name = self.sess.get_inputs()[0].name

    def __call__(self, x: np.ndarray) -> np.ndarray:  # (B, C, H, W) -> (B, N, outputs)
        return np.concatenate([self.sess.run(None, {self.name: xi[None]})[0] for xi in x])


def _augment(x: Any, gen: Any) -> Any:
    """Random mirror, zoom (0.75-1.25), shift (10 %) and gain/offset (20 %, in normalised
    units) of a batch (B, C, H, W): 64 calibration images are too few to fine-tune on as they are
    (without this the held-out output error fell half as much as the fitted one)."""
    import torch
    import torch.nn.functional as F

    b = len(x)
    zoom = torch.empty(b).uniform_(0.75, 1.25, generator=gen)
    mirror = torch.where(torch.rand(b, generator=gen) < 0.5, -1.0, 1.0)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 1, 1] = mirror / zoom, 1 / zoom
    theta[:, :, 2] = torch.empty(b, 2).uniform_(-0.2, 0.2, generator=gen)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    y = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    gain = torch.empty(b, 1, 1, 1).uniform_(0.8, 1.2, generator=gen)
    return y * gain + torch.empty(b, 1, 1, 1).uniform_(-0.2, 0.2, generator=gen)


def _loss(out: Any, ref: Any, num_scores: int, var: tuple[float, float], weigh_boxes: bool = False) -> Any:
    """sensitivity.output_error as a torch loss: normalised squared error of scores and boxes;
    with weigh_boxes each anchor's box error counts by the FP32 model's top score there, so the
    boxes that become detections, not the background's, are what the weights learn."""
    box = ((out[..., num_scores:] - ref[..., num_scores:]) ** 2).mean(-1)  # (B, N)
    if weigh_boxes:
        w = ref[..., :num_scores].amax(-1)
        box = box * w / w.mean().clamp_min(1e-12)
    return ((out[..., :num_scores] - ref[..., :num_scores]) ** 2).mean() / var[0] + box.mean() / var[1]


def finetune_qdq(qdq_path: str | Path, fp32_path: str | Path, inputs: np.ndarray, out: str | Path,
                 num_scores: int, reduce_range: bool, config: FinetuneConfig = FinetuneConfig(),
                 threads: int | None = None) -> Path:
    """Write `qdq_path` fine-tuned towards `fp32_path` on augmented copies of `inputs`
    (N, C, H, W) to `out` and return it. (Its output error is measured by the caller, on
    ONNX Runtime: accuracy_search.Builder.)"""
    import torch

    if threads:
        torch.set_num_threads(threads)
    model = load_onnx(qdq_path)
    graph = QdqGraph(model, weight_range(reduce_range), config.learn_ranges)
    teacher = _Teacher(Path(fp32_path), threads)
    data = torch.from_numpy(np.ascontiguousarray(inputs, np.float32))
    ref = teacher(inputs)  # normalises the loss like sensitivity.output_error
    var = (float(ref[..., :num_scores].var()) + 1e-12, float(ref[..., num_scores:].var()) + 1e-12)
    opt = torch.optim.Adam([{"params": list(graph.params.values()), "lr": config.lr},
                            {"params": list(graph.log_scales.values()), "lr": config.range_lr}])
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(config.steps, 1))
    gen = torch.Generator().manual_seed(config.seed)

    losses = []
    for step in range(config.steps):
        x = _augment(data[torch.randint(len(data), (config.batch,), generator=gen)], gen)
        loss = _loss(graph(x)[0], torch.from_numpy(teacher(x.numpy())), num_scores, var, config.weigh_boxes)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
        if step % 50 == 0:
            log.debug("fine-tune step %d: loss %.4f", step, losses[-1])
    inits = {i.name: i for i in model.graph.initializer}
    for name, value in graph.state().items():
        inits[name].CopyFrom(numpy_helper.from_array(value, name))
    onnx.save(model, str(out))
    tenth = max(len(losses) // 10, 1)
    log.info("quantization-aware fine-tuning, %d steps of %d augmented images from %d: loss %.4f -> %.4f "
             "(first and last tenth)", config.steps, config.batch, len(inputs), np.mean(losses[:tenth]),
             np.mean(losses[-tenth:]))
    return Path(out)
