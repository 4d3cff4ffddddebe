"""The NanoDet-Plus training loop, single-process or DDP under `torchrun`.

AdamW with linear warm-up and cosine annealing, gradient clipping, an EMA of the weights (the
EMA model is what is evaluated and saved as `best.ckpt`), the auxiliary assign-guidance branch
detached from `detach_epoch` on. Every epoch the main process writes, atomically:

    OUT/last.ckpt   model (raw weights, aux branch included), ema, optimizer, scheduler,
                    epoch (epochs completed), step, rng (per process), best_map, recipe
    OUT/best.ckpt   model = the EMA weights with the best validation mAP so far
    OUT/log.jsonl   one line per epoch: mean losses, lr, seconds, validation metrics

`resume=True` continues from OUT/last.ckpt with the same epoch, step, optimizer, schedule,
EMA and random state, so an interrupted run ends where an uninterrupted one would.
"""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from ednas.config import dump_yaml
from ednas.errors import EdnasError, InputError
from ednas.models import build_model, save_checkpoint
from ednas.models.checkpoint import load_state, read_checkpoint
from ednas.recipe import Recipe
from ednas.train import distributed
from ednas.train.bn_unfold import folded_batchnorms, unfold_batchnorms
from ednas.train.distill import DistillLoss
from ednas.train.ema import ModelEMA
from ednas.train.loss import NanoDetPlusLoss
from ednas.train.schedule import WarmupCosine

log = logging.getLogger(__name__)

LAST, BEST, LOG = "last.ckpt", "best.ckpt", "log.jsonl"


class _TrainForward(nn.Module):
    """Routes DDP's `forward` to `Detector.forward_train`, so gradient sync sees the call."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, img: torch.Tensor, detach_aux: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.model.forward_train(img, detach_aux=detach_aux)


@dataclass
class TrainResult:
    epochs: int  # epochs completed
    steps: int  # optimizer steps taken
    best_map: float | None  # best validation mAP (None without a validation set)
    last_metrics: dict[str, float] | None  # the last evaluation
    out_dir: Path


class Trainer:
    """Trains `recipe.model` on `train_set` (a torch Dataset of dicts, see
    `ednas.data.transforms`); `val_set` (a DetectionDataset) is evaluated every
    `val_interval` epochs with the EMA weights. With a `teacher` (e.g. the model before
    pruning) the student also distils its class scores and box distributions."""

    def __init__(
        self, recipe: Recipe, out_dir: str | Path, train_set: Dataset,
        val_set: Any | None = None, weights: str | Path | None = None, resume: bool = False,
        collate_fn: Callable[[list], dict] | None = None, progress: bool = True,
        teacher: nn.Module | None = None, aux: bool = True,
    ) -> None:
        self.recipe = recipe
        self.cfg = cfg = recipe.train
        self.out_dir = Path(out_dir)
        self.env = distributed.setup()
        self.val_set = val_set
        self.progress = progress and self.env.is_main
        if cfg.batch_size % self.env.world_size:
            raise EdnasError(
                f"batch size {cfg.batch_size} is not divisible by the {self.env.world_size} processes; "
                "give `batch_size` a multiple of the process count"
            )
        if collate_fn is None:
            from ednas.data.transforms import collate as collate_fn
        self.train_set = train_set
        self.collate_fn = collate_fn

        torch.manual_seed(cfg.seed)  # identical initial weights on every process
        # aux=False trains without the assign guidance module (labels are then assigned with
        # the main head): a distillation fine-tune is guided by its teacher, at half the cost
        self.model = build_model(recipe.model, aux=aux).to(self.env.device)
        self.memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
        self.model.to(memory_format=self.memory_format)
        _seed_everything(cfg.seed + self.env.rank)  # then per-process augmentation streams
        self.loader_batch = cfg.batch_size // self.env.world_size
        self.steps_per_epoch = len(self._loader(0))
        if weights is not None and not resume:
            init_from_checkpoint(self.model, weights)
            if folded_batchnorms(self.model):  # deploy weights: give their BNs real statistics
                unfold_batchnorms(self.model, self._images(cfg.bn_unfold_images))
        self.train_model: nn.Module = _TrainForward(self.model)
        if self.env.distributed:  # (DDP also makes every process start from rank 0's weights)
            ids = [self.env.local_rank] if self.env.device.type == "cuda" else None
            self.train_model = DistributedDataParallel(self.train_model, device_ids=ids)
        self.ema = ModelEMA(self.model, cfg.ema_decay, cfg.ema_warmup)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.loss_fn = NanoDetPlusLoss(
            recipe.model.num_classes, recipe.model.head.reg_max, recipe.model.strides, cfg
        )
        self.teacher = teacher.to(self.env.device).eval() if teacher is not None else None
        self.distill = DistillLoss(
            recipe.model.num_classes, recipe.model.head.reg_max, cfg.distill_cls_weight, cfg.distill_reg_weight
        )
        self.scheduler = WarmupCosine(
            self.optimizer, cfg.lr, cfg.min_lr, cfg.epochs * self.steps_per_epoch,
            cfg.warmup_steps, cfg.warmup_ratio,
        )
        self.epoch = 0  # epochs completed
        self.step = 0  # optimizer steps taken
        self.best_map: float | None = None
        self.last_metrics: dict[str, float] | None = None
        if resume:
            self.resume(self.out_dir / LAST)

    # ------------------------------------------------------------------ loop
    def fit(self, stop_after: int | None = None) -> TrainResult:
        """Train up to `recipe.train.epochs`, or for at most `stop_after` epochs in this call
        (a time-boxed job; continue later with resume=True)."""
        cfg = self.cfg
        last = cfg.epochs if stop_after is None else min(cfg.epochs, self.epoch + stop_after)
        if self.env.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            dump_yaml(self.recipe.to_dict(), self.out_dir / "recipe.yml")
            log.info(
                "training %s: %d images, %d steps/epoch, epochs %d..%d, %d process(es) on %s",
                self.recipe.name, len(self.train_set), self.steps_per_epoch, self.epoch + 1,
                cfg.epochs, self.env.world_size, self.env.device,
            )
        while self.epoch < last:
            t0 = time.perf_counter()
            losses = self._train_epoch()
            self.epoch += 1
            record: dict[str, Any] = {
                "epoch": self.epoch, "step": self.step, "lr": self.optimizer.param_groups[0]["lr"],
                **losses, "seconds": round(time.perf_counter() - t0, 2),
            }
            if self.val_set is not None and (self.epoch % cfg.val_interval == 0 or self.epoch == cfg.epochs):
                metrics = self.evaluate()
                record.update({f"val_{k}": v for k, v in (metrics or {}).items()})
            rng = distributed.all_gather_object(_rng_state())
            if self.env.is_main:
                self._save(rng)
                with open(self.out_dir / LOG, "a") as f:
                    f.write(json.dumps(record) + "\n")
                log.info("epoch %d/%d %s", self.epoch, cfg.epochs, _fmt(record))
            distributed.barrier()
        return TrainResult(self.epoch, self.step, self.best_map, self.last_metrics, self.out_dir)

    def _loader(self, epoch: int) -> DataLoader:
        env = self.env
        sampler = DistributedSampler(
            self.train_set, num_replicas=env.world_size, rank=env.rank, shuffle=True,
            seed=self.cfg.seed, drop_last=False,
        )
        sampler.set_epoch(epoch)
        # drop a ragged last batch unless it is the only one (tiny fine-tuning sets)
        drop_last = len(sampler) >= 2 * self.loader_batch
        return DataLoader(
            self.train_set, batch_size=self.loader_batch, sampler=sampler, drop_last=drop_last,
            num_workers=self.cfg.workers, collate_fn=self.collate_fn,
            pin_memory=env.device.type == "cuda", persistent_workers=False,
        )

    def _images(self, limit: int) -> Iterator[torch.Tensor]:
        """Up to `limit` training images, batch by batch, on the device."""
        seen = 0
        for batch in self._loader(0):
            if seen >= limit:
                break
            yield batch["img"][: limit - seen].to(self.env.device)
            seen += len(batch["img"])

    def _train_epoch(self) -> dict[str, float]:
        cfg = self.cfg
        detach = self.epoch >= cfg.detach_epoch
        self.model.train()
        sums: dict[str, float] = {}
        count = 0
        batches = self._loader(self.epoch)
        bar = None
        if self.progress:
            from tqdm import tqdm

            bar = tqdm(batches, desc=f"epoch {self.epoch + 1}/{cfg.epochs}", leave=False, dynamic_ncols=True)
        for batch in bar if bar is not None else batches:
            parts = self.train_step(batch, detach)
            count += 1
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + v
            if bar is not None:
                bar.set_postfix({k: f"{v / count:.3f}" for k, v in sums.items() if not k.startswith("aux_")})
        if bar is not None:
            bar.close()
        return {k: round(v / max(count, 1), 5) for k, v in sums.items()}

    def train_step(self, batch: dict[str, Any], detach_aux: bool) -> dict[str, float]:
        """One optimizer step on `batch`; returns the loss parts as floats."""
        device = self.env.device
        img = batch["img"].to(device, non_blocking=True)  # (N, 3, S, S)
        img = img.contiguous(memory_format=self.memory_format)
        out, aux_out = self.train_model(img, detach_aux)  # (N, A, C + 4(R+1)) each
        loss, parts = self.loss_fn(
            out, batch["gt_boxes"], batch["gt_labels"], (img.shape[2], img.shape[3]), aux_out
        )
        if self.teacher is not None:
            with torch.no_grad():
                target = self.teacher(img)  # (N, A, C + 4(R+1)) raw logits
            kd, kd_parts = self.distill(out, target)
            loss = loss + kd
            parts = {**parts, **kd_parts}
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        lr = self.scheduler.apply()
        if torch.isfinite(grad_norm):  # the same on every process (gradients are all-reduced)
            self.optimizer.step()
            self.ema.update(self.model)
        else:
            log.warning("step %d: non-finite gradient norm, update skipped", self.step)
        self.scheduler.step()
        self.step += 1
        if self.progress and self.step % 50 == 0:
            log.debug("step %d lr %.3g loss %.4f", self.step, lr, loss.item())
        return {"loss": loss.item(), **{k: v.item() for k, v in parts.items()}}

    # ------------------------------------------------------------ evaluation
    def evaluate(self) -> dict[str, float] | None:
        """COCO metrics of the EMA weights on the validation set (main process; shared)."""
        metrics = None
        if self.env.is_main:
            from ednas.eval.coco_eval import evaluate_model

            model = self.ema.model.eval()
            result = evaluate_model(model, self.val_set, self.recipe, arch=self.recipe.model, progress=self.progress)
            metrics = {k: float(v) for k, v in result.items() if isinstance(v, (int, float))}
            self.last_metrics = metrics
            if self.best_map is None or metrics["mAP"] > self.best_map:
                self.best_map = metrics["mAP"]
                save_checkpoint(
                    self.out_dir / BEST, model, epoch=self.epoch, step=self.step, metrics=metrics,
                    class_names=list(self.recipe.class_names), recipe=self.recipe.to_dict(),
                )
                log.info("new best mAP %.4f at epoch %d -> %s", self.best_map, self.epoch, self.out_dir / BEST)
        metrics = distributed.broadcast_object(metrics)
        self.best_map = distributed.broadcast_object(self.best_map)
        return metrics

    # ----------------------------------------------------------- checkpoints
    def _save(self, rng: list[dict]) -> None:
        save_checkpoint(
            self.out_dir / LAST, self.model, ema=self.ema.state_dict(),
            optimizer=self.optimizer.state_dict(), scheduler=self.scheduler.state_dict(),
            epoch=self.epoch, step=self.step, rng=rng, best_map=self.best_map,
            last_metrics=self.last_metrics, class_names=list(self.recipe.class_names),
            recipe=self.recipe.to_dict(),
        )

    def resume(self, path: Path) -> None:
        """Restore the whole training state from `path` (a last.ckpt)."""
        if not path.is_file():
            raise InputError(f"{path}: nothing to resume (no last.ckpt in the output folder; drop `resume`)")
        ckpt = read_checkpoint(path, what="training state")
        if "optimizer" not in ckpt:
            raise InputError(f"{path}: not a training checkpoint (no optimizer state); use `weights` instead")
        load_state(self.model, ckpt["model"], str(path))
        self.ema.load_state_dict(ckpt["ema"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.epoch, self.step = int(ckpt["epoch"]), int(ckpt["step"])
        self.best_map, self.last_metrics = ckpt.get("best_map"), ckpt.get("last_metrics")
        rng = ckpt.get("rng") or []
        if len(rng) == self.env.world_size:
            _set_rng_state(rng[self.env.rank])
        else:
            log.warning("resuming with %d processes instead of %d: random state reseeded", self.env.world_size, len(rng))
            _seed_everything(self.cfg.seed + 1000 * self.epoch + self.env.rank)
        log.info("resumed from %s at epoch %d, step %d", path, self.epoch, self.step)


def init_from_checkpoint(model: nn.Module, path: str | Path) -> None:
    """Initialise `model` from checkpoint `path` ("ema" weights if present, else "model").

    A missing auxiliary branch is fine: as in NanoDet-Plus, the aux neck starts as a copy of
    the (loaded) neck and the aux head from scratch. When the class
    count differs, the class-prediction convs (`gfl_cls`) are left freshly initialised (a
    warning says so): fine-tuning COCO weights on a new class list just works."""
    ckpt = read_checkpoint(path)
    ema = ckpt.get("ema")
    state = ema["model"] if isinstance(ema, dict) and "model" in ema else ckpt["model"]
    own = model.state_dict()
    reset = [k for k, v in state.items() if ".gfl_cls" in k and k in own and own[k].shape != v.shape]
    if reset:
        log.warning("%s: %d class-prediction tensors do not fit the class count; left re-initialised", path, len(reset))
        state = {k: (own[k] if k in reset else v) for k, v in state.items()}
    load_state(model, state, str(path))
    if getattr(model, "aux_fpn", None) is not None and not any(k.startswith("aux_fpn.") for k in state):
        model.attach_aux()  # a deploy checkpoint: start the aux neck as a copy of the loaded neck
    log.info("initialised weights from %s", path)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _rng_state() -> dict[str, Any]:
    """This process's random state as plain data (a checkpoint loads it with weights_only)."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    numpy = {"name": str(name), "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
             "has_gauss": int(has_gauss), "cached_gaussian": float(gauss)}
    state = {"python": random.getstate(), "numpy": numpy, "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    """Restore `_rng_state()`; also takes numpy's own tuple (a state written by an older
    ednas and rewritten by `ednas convert-checkpoint`, its key array then a tensor)."""
    random.setstate(state["python"])
    numpy = state["numpy"]
    if isinstance(numpy, dict):
        numpy = (numpy["name"], numpy["keys"], numpy["pos"], numpy["has_gauss"], numpy["cached_gaussian"])
    name, keys, *rest = numpy
    keys = keys.numpy() if isinstance(keys, torch.Tensor) else np.asarray(keys)
    np.random.set_state((name, keys.astype(np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def _fmt(record: dict[str, Any]) -> str:
    skip = ("epoch", "step")
    return " ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items() if k not in skip
    )
