"""`ednas supernet train`: train every sub-network of a supernet at once.

Each step (BigNAS / AttentiveNAS "sandwich rule"): one input resolution is drawn for the step;
the top (the largest sub-network; with a teacher, the base architecture the teacher was
trained as), the smallest and K random sub-networks run on the same batch; each is
trained with the detection loss (where the images have labels) plus in-place distillation of
class scores and box distributions from the teacher (the trained model the supernet started
from) or, without a teacher, from the largest sub-network once it has learned something
(`inplace_kd_from`, half the run by default: from scratch on the synthetic shapes, distilling
from the start left every sub-network, the largest included, at AP50 0.2-0.6 after 120
sandwich steps, against 4.9-7.3 with distillation from mid-run and 5.4-7.1 without any).
Gradients of all sub-networks are summed into the shared tensors before one optimizer step.

Deterministic and resumable: the image order is a function of (seed, epoch), the sampled
architectures and the augmentation draws of (seed, step), so a run killed with SIGKILL and
resumed ends with the same weights as one that was not. The state (`SUPER.pt.state`: weights,
optimizer, step) is written atomically every `save_every` steps and read back by `--resume`;
the supernet file is rewritten (atomically) right after it.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import torch
import torch.nn.functional as F

from ednas.arch import ArchSpec, MobileNeXtArch
from ednas.errors import InputError
from ednas.models.detector import Detector
from ednas.recipe import Recipe
from ednas.supernet.supernet import Supernet, widest
from ednas.train import distributed
from ednas.train.distill import DistillLoss
from ednas.train.loss import NanoDetPlusLoss

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SupernetTrainConfig:
    random_subnets: int = 2  # K random sub-networks per step, besides the largest and smallest
    epochs: int | None = None  # stop after this many epochs ...
    minutes: float | None = None  # ... or after this much wall time (whichever is given)
    lr: float = 2e-4  # AdamW; low when starting from trained weights
    weight_decay: float = 0.0
    warmup_steps: int = 20
    grad_clip: float = 35.0
    batch_size: int = 16  # images per step, summed over processes
    kd_weight: float = 1.0  # distillation loss weight
    inplace_kd_from: float = 0.5  # without a teacher: in-place distillation from this part of the run on
    det_weight: float = 1.0  # detection loss weight (0: distillation only, unlabeled images)
    save_every: int = 25  # steps between resumable states
    seed: int = 0

    def __post_init__(self) -> None:
        if (self.epochs is None) == (self.minutes is None):
            raise InputError("give exactly one of epochs or minutes for supernet training")
        if self.epochs is not None and self.epochs < 1:
            raise InputError(f"epochs {self.epochs}: give a positive number")
        if self.minutes is not None and self.minutes <= 0:
            raise InputError(f"minutes {self.minutes}: give a positive number")
        if not 0.0 <= self.inplace_kd_from <= 1.0:
            raise InputError(f"`inplace_kd_from` {self.inplace_kd_from:g}: give a part of the run between 0 and 1")
        if self.random_subnets < 0 or self.batch_size < 1 or self.lr <= 0 or self.save_every < 1:
            raise InputError("random sub-networks >= 0, batch size >= 1, lr > 0 and save interval >= 1 please")


def smallest(space) -> ArchSpec:
    """The space's smallest configuration (narrowest everything, lowest resolution)."""
    cfg, base = space.config, space.base
    b = base.backbone
    assert isinstance(b, MobileNeXtArch)
    width = min(cfg.neck.width)
    kinds = [k for k in ("normal", "plus") if k in cfg.neck.block_types]  # normal: no 1x1 shortcut pair
    narrow = dataclasses.replace(b, widths=(min(cfg.backbone.widths),) * len(b.rows), kr=())
    eligible = len(narrow.kr)
    narrow = dataclasses.replace(narrow, kr=(False if False in cfg.backbone.kr else True,) * eligible)
    return base.replace(backbone=narrow,
                        neck=dataclasses.replace(base.neck, width=width, block_types=(kinds[0],) * len(base.neck.block_types)),
                        head=dataclasses.replace(base.head, feat_channels=width),
                        input_size=min(cfg.input_size.choices))


def sandwich(supernet: Supernet, k: int, rng: random.Random, anchor: ArchSpec) -> tuple[int, list[ArchSpec]]:
    """(resolution, [anchor, smallest, k random]) for one step, all at one drawn resolution."""
    space = supernet.space
    size = rng.choice(space.config.input_size.choices)
    archs = [anchor, smallest(space)] + [space.sample(rng) for _ in range(k)]
    return size, [a.replace(input_size=size) for a in archs]


def resize_batch(img: torch.Tensor, boxes: list[torch.Tensor], size: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Images (N, 3, S, S) and their boxes at another square size."""
    s = img.shape[-1]
    if s == size:
        return img, boxes
    img = F.interpolate(img, size=(size, size), mode="bilinear", align_corners=False)
    return img, [b * (size / s) for b in boxes]


class SupernetTrainer:
    def __init__(self, supernet: Supernet, path: str | Path, recipe: Recipe, train_set: Any,
                 config: SupernetTrainConfig, teacher: Detector | None = None, progress: bool = True) -> None:
        self.env = distributed.setup()
        if config.batch_size % self.env.world_size:
            raise InputError(f"batch size {config.batch_size} is not divisible by {self.env.world_size} processes")
        self.supernet = supernet.to(self.env.device)
        self.path = Path(path)
        self.state_path = self.path.with_name(self.path.name + ".state")
        self.cfg = config
        self.train_set = train_set
        self.progress = progress and self.env.is_main
        base = supernet.space.base
        if teacher is not None and teacher.arch.num_classes != base.num_classes:
            raise InputError(f"the teacher predicts {teacher.arch.num_classes} classes, the supernet "
                             f"{base.num_classes}: give a teacher trained on the same classes")
        if teacher is None and config.det_weight == 0:
            raise InputError("distillation only (no detection loss) needs a teacher: give `teacher`, or use "
                             "the images' labels")
        self.teacher = teacher.to(self.env.device).eval() if teacher is not None else None
        # the sandwich's top: with a teacher, the base it was trained as (kept close to the
        # teacher, the rest learns from the teacher); without one, the largest sub-network,
        # whose outputs the others distil in place
        self.anchor = base if teacher is not None else widest(supernet.space)
        self.loss = NanoDetPlusLoss(base.num_classes, base.head.reg_max, base.strides, recipe.train)
        self.distill = DistillLoss(base.num_classes, base.head.reg_max)
        supernet.trainable(True)
        self.params = supernet.parameters()
        self.optimizer = torch.optim.AdamW(self.params, lr=config.lr, weight_decay=config.weight_decay)
        self.per_rank = config.batch_size // self.env.world_size
        self.steps_per_epoch = max(1, len(train_set) // config.batch_size)
        self.step = 0
        self.elapsed = 0.0  # training seconds over all sessions (for --minutes)

    # -- schedule ----------------------------------------------------------------------
    @property
    def total_steps(self) -> int | None:
        return self.cfg.epochs * self.steps_per_epoch if self.cfg.epochs is not None else None

    def lr_at(self, step: int) -> float:
        """Linear warm-up, then cosine to lr/10 over the run: over its steps with `epochs`, over
        its wall time with `minutes` (the part of the budget spent so far), so that a run by
        minutes also ends on settled weights rather than those of a few steps at full rate."""
        lr = self.cfg.lr
        if step < self.cfg.warmup_steps:
            return lr * (0.1 + 0.9 * step / self.cfg.warmup_steps)
        total = self.total_steps
        if total is None:
            t = self.progress_part()
        else:
            t = min(1.0, (step - self.cfg.warmup_steps) / max(1, total - self.cfg.warmup_steps))
        return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))

    def progress_part(self) -> float:
        """The part of the run done: of its steps with `epochs`, of its wall time with `minutes`."""
        if self.total_steps is not None:
            return min(1.0, self.step / max(1, self.total_steps))
        return min(1.0, self.elapsed / (60 * (self.cfg.minutes or 1)))

    def done(self) -> bool:
        if self.total_steps is not None:
            return self.step >= self.total_steps
        return self.elapsed >= 60 * (self.cfg.minutes or 0)

    # -- data ----------------------------------------------------------------------------
    def batches(self) -> Iterator[dict[str, Any]]:
        """Batches from the current step on: order fixed by (seed, epoch), this rank's share."""
        from ednas.data.transforms import collate

        n, b, ws = len(self.train_set), self.cfg.batch_size, self.env.world_size
        while True:
            epoch, within = divmod(self.step, self.steps_per_epoch)
            order = torch.randperm(n, generator=torch.Generator().manual_seed(self.cfg.seed * 7919 + epoch)).tolist()
            chunk = order[within * b:(within + 1) * b][self.env.rank::ws]
            # the dataset seeds each image's augmentation from torch's RNG: fix it per step
            torch.manual_seed((self.cfg.seed * 1_000_003 + self.step) * 64 + self.env.rank)
            yield collate([self.train_set[i] for i in chunk])

    # -- one step ------------------------------------------------------------------------
    def train_step(self, batch: dict[str, Any]) -> dict[str, float]:
        rng = random.Random(self.cfg.seed * 1_000_003 + self.step)
        size, archs = sandwich(self.supernet, self.cfg.random_subnets, rng, self.anchor)
        img, boxes = resize_batch(batch["img"].to(self.env.device), batch["gt_boxes"], size)
        labels = batch["gt_labels"]
        for g in self.optimizer.param_groups:
            g["lr"] = self.lr_at(self.step)
        self.optimizer.zero_grad(set_to_none=True)
        target = None
        if self.teacher is not None:
            with torch.no_grad():
                target = self.teacher(img)
        parts: dict[str, float] = {}
        for i, arch in enumerate(archs):
            out = self.supernet.forward(arch, img)
            loss = torch.zeros((), device=img.device)
            if self.cfg.det_weight > 0:
                det, _ = self.loss(out, boxes, labels, (size, size))
                loss = loss + self.cfg.det_weight * det
                parts[f"det{i}"] = float(det)
            if target is not None:
                kd, _ = self.distill(out, target)
                loss = loss + self.cfg.kd_weight * kd
                parts[f"kd{i}"] = float(kd)
            if i == 0 and self.teacher is None and self.progress_part() >= self.cfg.inplace_kd_from:
                target = out.detach()  # in-place distillation from the largest
            loss.backward()
        if self.env.distributed:
            for p in self.params:
                if p.grad is not None:
                    torch.distributed.all_reduce(p.grad)
                    p.grad /= self.env.world_size
        grads = [p for p in self.params if p.grad is not None]
        norm = torch.nn.utils.clip_grad_norm_(grads, self.cfg.grad_clip)
        if torch.isfinite(norm):
            self.optimizer.step()
        self.step += 1
        return {"largest": parts.get("kd0", parts.get("det0", 0.0)),
                "smallest": parts.get("kd1", parts.get("det1", 0.0)),
                "loss": sum(parts.values()) / max(1, len(archs))}

    # -- loop --------------------------------------------------------------------------------
    def fit(self) -> dict[str, Any]:
        from tqdm import tqdm

        total = self.total_steps
        bar = tqdm(total=total, initial=self.step, desc="supernet", unit="step", disable=not self.progress,
                   dynamic_ncols=True)
        last: dict[str, float] = {}
        for batch in self.batches():
            if self.done():
                break
            t0 = time.perf_counter()
            last = self.train_step(batch)
            self.elapsed += distributed_max(time.perf_counter() - t0)
            bar.update(1)
            bar.set_postfix({k: f"{v:.3f}" for k, v in last.items()})
            if self.cfg.minutes is not None and self.progress:
                bar.set_description(f"supernet {self.elapsed / 60:.1f}/{self.cfg.minutes:g} min")
            if self.step % self.cfg.save_every == 0:
                self.save()
        bar.close()
        self.save()
        return {"steps": self.step, "seconds": self.elapsed, **last}

    # -- state -----------------------------------------------------------------------------
    def save(self) -> None:
        """The supernet and the resumable state (main process; atomic each)."""
        if not self.env.is_main:
            distributed.barrier()
            return
        from ednas.models.checkpoint import atomic_save

        self.supernet.meta["trained_steps"] = self.step
        state = {"format": "ednas-supernet-state", "step": self.step, "elapsed": self.elapsed,
                 "optimizer": self.optimizer.state_dict(), "config": dataclasses.asdict(self.cfg),
                 "tensors": {k: v.detach().cpu() for k, v in self.supernet.tensors.items()}}
        atomic_save(state, self.state_path)  # weights and optimizer in one file: one step
        self.supernet.save(self.path)
        distributed.barrier()

    def resume(self) -> bool:
        """Continue from the saved state, if any (True when one was found)."""
        if not self.state_path.is_file():
            return False
        from ednas.models.checkpoint import safe_load

        state = safe_load(self.state_path, "supernet training state")
        if not isinstance(state, dict) or state.get("format") != "ednas-supernet-state":
            raise InputError(f"{self.state_path}: not a supernet training state; delete it to start over")
        self.step = int(state["step"])
        self.elapsed = float(state["elapsed"])
        with torch.no_grad():
            for k, t in self.supernet.tensors.items():
                t.copy_(state["tensors"][k])
        self.optimizer.load_state_dict(state["optimizer"])
        log.info("resumed at step %d (%.1f min trained)", self.step, self.elapsed / 60)
        return True


def distributed_max(value: float) -> float:
    """The largest of `value` over processes (so every rank stops at the same step)."""
    if not torch.distributed.is_available() or not torch.distributed.is_initialized():
        return value
    t = torch.tensor([value])
    torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
    return float(t)

