"""`ednas supernet init`: a supernet whose base sub-network is a trained model.

1. The trained model (released ONNX or an ednas checkpoint) is loaded as a detector of the
   space's base architecture; BatchNorms folded into an ONNX get real statistics again
   (outputs unchanged) so that training and recalibration start from the right place.
2. Its channels are sorted by importance, one order per channel space (channels tied by a
   residual add, a ghost module's cheap half or a summed extra level share one), so that a
   narrower sub-network keeps the channels that matter most. The permutation leaves the
   model's function unchanged.
3. It is written into the leading channels of the supernet. The consumers' weights on the
   channels the base does not have are set to zero, so every wider sub-network starts as
   exactly the trained function (Net2Net-style widening) and can learn to use the new width.
4. Neck blocks of the type the trained model does not use are fitted, block by block, to
   reproduce the trained block's output on real images (no labels needed).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from tqdm import tqdm

from ednas.arch import ArchSpec
from ednas.errors import InputError
from ednas.models.detector import Detector, build_model
from ednas.models.layers import recalibrate_batchnorms
from ednas.arch.space import SearchSpace
from ednas.supernet.layout import FIXED, block_outputs, entries, positions
from ednas.supernet.evaluate import CalibImages
from ednas.supernet.supernet import Supernet, _index

log = logging.getLogger(__name__)


def load_trained(path: str | Path, arch: ArchSpec) -> Detector:
    """A detector of `arch` with weights from an ONNX file or an ednas checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such model (give the released .onnx or an ednas .ckpt)")
    model = build_model(arch)
    if path.suffix.lower() == ".onnx":
        from ednas.models.onnx_import import import_onnx
        from ednas.onnx_runtime import load_onnx

        dims = [d.dim_value for d in load_onnx(path).graph.output[0].type.tensor_type.shape.dim]
        if dims and dims[-1] and dims[-1] != arch.num_outputs:
            raise InputError(f"{path} predicts {dims[-1] - (arch.num_outputs - arch.num_classes)} classes, the "
                             f"space's base {arch.num_classes}: give a model trained on the same classes")
        import_onnx(model, path)
    else:
        from ednas.models.checkpoint import checkpoint_arch, load_checkpoint

        own = checkpoint_arch(path)
        if own.num_classes != arch.num_classes:
            raise InputError(f"{path} predicts {own.num_classes} classes, the space's base {arch.num_classes}: "
                             "give a model trained on the same classes")
        if own.replace(aux=arch.aux) != arch.replace(aux=arch.aux):
            raise InputError(f"{path}: its architecture is not the space's base architecture; "
                             "give a model of the base (see the space file's `base:`)")
        load_checkpoint(model, path)
    return model.eval()


def channel_order(model: Detector) -> dict[str, torch.Tensor]:
    """One permutation per channel space, most important channel first.

    Importance of a channel: the L1 norm of the weights that read it in every dense conv
    consuming its space (each conv's share normalised by its mean, so wide and narrow
    consumers count alike), as Once-for-All sorts channels before elastic width."""
    arch = model.arch
    state = model.state_dict()
    score: dict[str, torch.Tensor] = {}
    for e in entries(arch, arch):
        t = state[e.name]
        if t.dim() != 4 or e.dims[1] is None:  # dense conv weights only: their input dim
            continue
        per_in = t.abs().sum(dim=(0, 2, 3))  # (Cin,)
        per_in = per_in / per_in.mean().clamp(min=1e-12)
        for space, n, off in e.dims[1]:
            score[space] = score.get(space, torch.zeros(n)) + per_in[off:off + n]
    for e in entries(arch, arch):  # spaces nobody reads densely: the producer's BN scale
        if e.name.endswith(".bn.weight") and e.dims[0]:
            for space, n, off in e.dims[0]:
                if space not in score:
                    score[space] = state[e.name][off:off + n].abs()
    return {s: torch.argsort(v, descending=True, stable=True) for s, v in score.items() if not s.startswith(FIXED)}


@torch.no_grad()
def permute(model: Detector, order: dict[str, torch.Tensor]) -> None:
    """Reorder `model`'s channels by `order` (space -> permutation), in place."""
    arch = model.arch
    state = model.state_dict()
    new = {}
    for e in entries(arch, arch):
        t = state[e.name]
        for d, dim in enumerate(e.dims):
            if dim is None or all(s.startswith(FIXED) for s, _, _ in dim):
                continue
            ix = torch.cat([off + order[s][:n] if s in order else torch.arange(off, off + n) for s, n, off in dim])
            t = t.index_select(d, ix)
        new[e.name] = t
    model.load_state_dict(new, strict=False)


FIT_BATCH = 4  # images per fitting step
KR_NEW_SCALE = 1e-3  # new channels' KR kernels: small, so the gate (their sum) barely moves


@torch.no_grad()
def zero_new_inputs(supernet: Supernet, arch: ArchSpec) -> None:
    """Zero the dense-conv weights that read channels `arch` does not have, so wider
    sub-networks compute `arch`'s function until trained. (A KR gate sums its input over
    all channels through the kernel sums: new channels get near-zero kernels instead, which
    keeps them alive.)"""
    for kind in ("plus", "normal"):
        big = supernet.big.replace(neck=dataclasses.replace(supernet.big.neck,
                                                            block_types=(kind,) * len(arch.neck.block_types)))
        base_keys = {e.key: e for e in entries(arch, supernet.big)}
        for e in entries(big, supernet.big):
            own = base_keys.get(e.key)
            t = supernet.tensors[e.key]
            if own is None or t.dim() != 4:
                continue
            kr = e.key.endswith(".conv.conv.weight")
            if not kr and e.dims[1] is None:
                continue
            d = 0 if kr else 1
            keep = _index(own.dims[d], "cpu")
            mask = torch.ones(t.shape[d], dtype=torch.bool)
            mask[torch.arange(keep) if isinstance(keep, int) else keep] = False
            if kr:
                t[mask] *= KR_NEW_SCALE
            else:
                t[:, mask] = 0


def fit_other_blocks(supernet: Supernet, teacher: Detector, batches: list[torch.Tensor], steps: int = 120,
                     lr: float = 1e-2) -> dict[str, float]:
    """Fit each neck block of the type `teacher` does not use to the teacher's block output
    (same input features, MSE on the channels its consumers read, relative to the target's
    mean square). The block's last BNs start near zero so it starts near a zero output
    instead of a random one. Returns the final relative error per block."""
    arch = teacher.arch
    feats: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {}
    blocks = {f"fpn.top_down_blocks.{i}": m for i, m in enumerate(teacher.fpn.top_down_blocks)}
    blocks.update({f"fpn.bottom_up_blocks.{i}": m for i, m in enumerate(teacher.fpn.bottom_up_blocks)})

    def hook(name):
        def record(_m, inputs, output):
            feats.setdefault(name, []).append((inputs[0].detach(), output.detach()))
        return record

    handles = [m.register_forward_hook(hook(n)) for n, m in blocks.items()]
    with torch.no_grad():
        for b in batches:
            teacher(b)
    for h in handles:
        h.remove()
    errors = {}
    types = list(arch.neck.block_types)
    for i, name in enumerate(blocks):
        other = "normal" if types[i] == "plus" else "plus"
        swapped = types.copy()
        swapped[i] = other
        sub = arch.replace(neck=dataclasses.replace(arch.neck, block_types=tuple(swapped)))
        student = supernet.extract(sub)
        block = dict(student.named_modules())[name].train()
        # align by supernet channel position: the student's output channel k is read by the
        # consumers where the teacher's channel at that position is read
        pos_teacher = positions(block_outputs(arch, supernet.big)[name])
        where = {p: k for k, p in enumerate(pos_teacher)}
        src = torch.tensor([where.get(p, -1) for p in positions(block_outputs(sub, supernet.big)[name])])
        valid = src >= 0
        with torch.no_grad():
            for m in _output_bns(block):
                m.weight.mul_(0.01)
                m.bias.zero_()
        opt = torch.optim.Adam(block.parameters(), lr=lr)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
        pairs = feats[name]
        scale = sum(y[:, src[valid]].pow(2).mean() for _, y in pairs) / len(pairs)
        for step in tqdm(range(steps), desc=f"fitting {name} ({other})", unit="step", leave=False, disable=None):
            x, y = pairs[step % len(pairs)]
            k = (step // len(pairs)) * FIT_BATCH % len(x)  # a few images a step: cheap on a CPU
            x, y = x[k:k + FIT_BATCH], y[k:k + FIT_BATCH]
            out = block(x)
            loss = F.mse_loss(out[:, valid], y[:, src[valid]]) / scale
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        block.eval()
        with torch.no_grad():  # BN statistics of the fitted block on the same features
            recalibrate_batchnorms(block, [x for x, _ in pairs])
            num = sum(F.mse_loss(block(x)[:, valid], y[:, src[valid]], reduction="sum") for x, y in pairs)
            den = sum((y[:, src[valid]] ** 2).sum() for _, y in pairs)
            errors[name] = float(num / den.clamp(min=1e-12))
        supernet.embed(sub, {k: v for k, v in student.state_dict().items()})
        log.info("fitted %s (%s): relative error %.3f", name, other, errors[name])
    return errors


def _output_bns(block: torch.nn.Module) -> list[torch.nn.BatchNorm2d]:
    """The BNs that produce a neck block's output (before the sum / as the projection)."""
    names = ("ghost2.primary_conv.bn", "ghost2.cheap_operation.bn", "shortcut.1.bn", "proj.bn")
    mods = dict(block.named_modules())
    return [mods[n] for n in names if n in mods]


def init_supernet(space: SearchSpace, out: str | Path | None = None, source: str | Path | None = None,
                  images: str | Path | None = None, calib_images: int = 64, fit_steps: int = 120,
                  seed: int = 0, class_names: Sequence[str] | None = None) -> Supernet:
    """Build the supernet of `space`; from `source` (a trained base model) when given, else
    with fresh weights (training from scratch). `images`: unlabeled images for the BN
    statistics of an ONNX source and for fitting the other block type. `class_names` (one
    per class of the base; default COCO's for 80 classes) go with it. Saved to `out`."""
    if class_names is not None and len(class_names) != space.base.num_classes:
        raise InputError(f"{len(class_names)} class names for a base that predicts {space.base.num_classes} classes")
    torch.manual_seed(seed)
    supernet = Supernet(space)
    meta: dict = {"source": str(source) if source else None, "trained_steps": 0,
                  "class_names": list(class_names) if class_names is not None else None}
    if source is not None:
        base = space.base
        model = load_trained(source, base)
        batches = CalibImages(images, calib_images).batches(base.input_size) if images else []
        from ednas.train.bn_unfold import folded_batchnorms, unfold_batchnorms

        if folded_batchnorms(model):
            if not batches:
                raise InputError(f"{source} has its BatchNorms folded (a deploy model): give --images DIR "
                                 "with a few dozen unlabeled images to restore their statistics")
            unfold_batchnorms(model, batches)
        permute(model, channel_order(model))
        supernet.embed(base, model.state_dict())
        zero_new_inputs(supernet, base)
        if batches and fit_steps > 0:
            meta["fit_error"] = fit_other_blocks(supernet, model, batches, fit_steps)
    supernet.meta.update(meta)
    if out is not None:
        supernet.save(out)
    return supernet
