"""The weight-sharing supernet: one tensor per weight of the widest network of a search space
(both neck block types, a KR gate on every eligible block), from which any architecture of
the space is cut (`extract`) or run with shared, trainable weights (`forward`).

File format (plain data, loads with `torch.load(weights_only=True)`):

    {"format": "ednas-supernet", "version": 1, "space": SpaceConfig dict, "base": ArchSpec dict,
     "fingerprint": SearchSpace.fingerprint(), "tensors": {key: tensor}, "meta": {...}}
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
from torch.func import functional_call

from ednas.arch import ArchSpec, MobileNeXtArch
from ednas.errors import ConfigError, InputError
from ednas.models.detector import Detector, build_model
from ednas.config import from_dict
from ednas.arch.space import SearchSpace, SpaceConfig
from ednas.supernet.layout import Entry, entries

FORMAT = "ednas-supernet"
VERSION = 1


class SupernetError(InputError):
    """A supernet file or an architecture does not fit (another space, truncated file...)."""


def widest(space: SearchSpace, block_type: str = "plus") -> ArchSpec:
    """The space's largest configuration with every PAN block of `block_type`."""
    base, cfg = space.base, space.config
    backbone = base.backbone
    assert isinstance(backbone, MobileNeXtArch)
    rows = len(backbone.rows)
    wide = dataclasses.replace(backbone, widths=(max(cfg.backbone.widths),) * rows, kr=())
    width = max(cfg.neck.width)
    return base.replace(
        backbone=wide,
        neck=dataclasses.replace(base.neck, width=width, block_types=(block_type,) * len(base.neck.block_types)),
        head=dataclasses.replace(base.head, feat_channels=width),
        input_size=space.config.input_size.max,
    )


def _index(dim, device) -> torch.Tensor | int | None:
    """Index along one dimension: None (all), an int (leading count) or a LongTensor."""
    if dim is None:
        return None
    if len(dim) == 1 and dim[0][2] == 0:
        return dim[0][1]
    return torch.cat([torch.arange(off, off + n, device=device) for _, n, off in dim])


def take(t: torch.Tensor, plan: tuple) -> torch.Tensor:
    """Slice `t` by a per-dimension plan from `_index` (differentiable)."""
    for d, ix in enumerate(plan):
        if ix is None:
            continue
        t = t.narrow(d, 0, ix) if isinstance(ix, int) else t.index_select(d, ix)
    return t


def put(t: torch.Tensor, plan: tuple, value: torch.Tensor) -> None:
    """Write `value` into the slice of `t` that `take(t, plan)` reads (in place)."""
    ix = []
    for d, p in enumerate(plan):
        if p is None:
            ix.append(torch.arange(t.shape[d]))
        elif isinstance(p, int):
            ix.append(torch.arange(p))
        else:
            ix.append(p.cpu())
    if not ix:
        t.copy_(value)
        return
    grid = torch.meshgrid(*ix, indexing="ij")
    t[grid] = value.to(t.dtype)


class Supernet:
    """Shared tensors for every architecture of `space`."""

    def __init__(self, space: SearchSpace, tensors: dict[str, torch.Tensor] | None = None,
                 meta: dict[str, Any] | None = None) -> None:
        self.space = space
        self.big = widest(space)
        self.meta = dict(meta or {})
        shapes: dict[str, torch.Size] = {}
        fresh: dict[str, torch.Tensor] = {}
        for kind in ("plus", "normal"):  # fresh weights: PyTorch's default initialisation
            arch = widest(space, kind)
            state = build_model(arch).state_dict()
            for e in entries(arch, self.big):
                shapes.setdefault(e.key, state[e.name].shape)
                fresh.setdefault(e.key, state[e.name])
        if tensors is None:
            tensors = fresh
        missing = set(shapes) - set(tensors)
        if missing:
            raise SupernetError(f"supernet lacks tensor {sorted(missing)[0]!r}: it was built for another space")
        for k, shape in shapes.items():
            if tuple(tensors[k].shape) != tuple(shape):
                raise SupernetError(f"supernet tensor {k} has shape {tuple(tensors[k].shape)}, "
                                    f"the space needs {tuple(shape)}: built for another space")
        self.tensors = {k: tensors[k] for k in shapes}
        for t in self.tensors.values():
            if t.is_floating_point():
                t.requires_grad_(False)
        self._plans: OrderedDict[str, tuple[list[Entry], list[tuple]]] = OrderedDict()
        self._skeletons: OrderedDict[str, Detector] = OrderedDict()

    # -- architectures --------------------------------------------------------------------
    def check(self, arch: ArchSpec) -> None:
        """One-line error unless `arch` is a configuration of this supernet's space."""
        base = self.space.base
        if arch.num_classes != base.num_classes or arch.activation != base.activation \
                or type(arch.backbone) is not type(base.backbone):
            raise SupernetError("architecture is not in the supernet's space (classes, activation or backbone differ)")
        b, bb = arch.backbone, base.backbone
        assert isinstance(b, MobileNeXtArch) and isinstance(bb, MobileNeXtArch)
        cfg = self.space.config
        problems = []
        if b.rows != bb.rows or b.out_stages != bb.out_stages:
            problems.append("backbone rows/out_stages")
        problems += [f"row {i} width {w}" for i, w in enumerate(b.widths) if w not in cfg.backbone.widths]
        if arch.neck.width not in cfg.neck.width:
            problems.append(f"neck width {arch.neck.width}")
        if arch.head.feat_channels != arch.neck.width:
            problems.append("head width != neck width")
        if any(t not in cfg.neck.block_types for t in arch.neck.block_types):
            problems.append(f"neck block types {arch.neck.block_types}")
        if not all(b.kr) and False not in cfg.backbone.kr:
            problems.append("kernel refine off")
        if arch.input_size not in cfg.input_size.choices:
            problems.append(f"input size {arch.input_size}")
        if problems:
            raise SupernetError(f"architecture is outside the supernet's space {self.space.name!r}: "
                                f"{', '.join(problems)}; choose values listed in the space file")

    def _plan(self, arch: ArchSpec) -> tuple[list[Entry], list[tuple]]:
        key = arch.hash()
        plan = self._plans.get(key)
        if plan is None:
            self.check(arch)
            es = entries(arch, self.big)
            plan = (es, [tuple(_index(d, "cpu") for d in e.dims) for e in es])
            self._plans[key] = plan
            if len(self._plans) > 256:
                self._plans.popitem(last=False)
        return plan

    def state_for(self, arch: ArchSpec) -> dict[str, torch.Tensor]:
        """The state dict of `build_model(arch)` cut from the shared tensors (differentiable)."""
        es, plans = self._plan(arch)
        return {e.name: take(self.tensors[e.key], p) for e, p in zip(es, plans)}

    def extract(self, arch: ArchSpec) -> Detector:
        """A standalone detector of `arch` with the supernet's weights (copied)."""
        model = build_model(arch)
        with torch.no_grad():
            model.load_state_dict({k: v.detach().clone() for k, v in self.state_for(arch).items()})
        return model.eval()

    def embed(self, arch: ArchSpec, state: dict[str, torch.Tensor]) -> None:
        """Write a detector's state (of architecture `arch`) into the shared tensors."""
        es, plans = self._plan(arch)
        with torch.no_grad():
            for e, p in zip(es, plans):
                put(self.tensors[e.key], p, state[e.name])

    def skeleton(self, arch: ArchSpec) -> Detector:
        """A cached module of `arch` to run with `forward` (its own weights are unused)."""
        key = arch.hash()
        model = self._skeletons.get(key)
        if model is None:
            model = self._skeletons[key] = build_model(arch).to(self.device)
            if len(self._skeletons) > 32:
                self._skeletons.popitem(last=False)
        self._skeletons.move_to_end(key)
        return model

    def forward(self, arch: ArchSpec, x: torch.Tensor, train: bool = True) -> torch.Tensor:
        """Raw logits of sub-network `arch` on `x`, gradients flowing into the shared tensors."""
        model = self.skeleton(arch).train(train)
        return functional_call(model, self.state_for(arch), (x,))

    # -- training helpers ----------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(iter(self.tensors.values())).device

    def to(self, device: torch.device | str) -> "Supernet":
        self.tensors = {k: v.to(device) for k, v in self.tensors.items()}
        self._plans.clear()
        self._skeletons.clear()
        return self

    def parameters(self) -> list[torch.Tensor]:
        """The trainable tensors (floating-point weights; BN running statistics excluded)."""
        return [t for k, t in self.tensors.items() if t.is_floating_point() and not k.endswith(_STATS)]

    def trainable(self, on: bool = True) -> None:
        for t in self.parameters():
            t.requires_grad_(on)

    # -- files ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, "space": self.space.to_dict(),
                "base": self.space.base.to_dict(), "space_name": self.space.name,
                "fingerprint": self.space.fingerprint(),
                "tensors": {k: v.detach().cpu() for k, v in self.tensors.items()}, "meta": self.meta}

    def save(self, path: str | Path) -> None:
        from ednas.models.checkpoint import atomic_save

        atomic_save(self.to_dict(), path)

    @classmethod
    def load(cls, path: str | Path, space: SearchSpace | None = None) -> "Supernet":
        """Read a supernet file (data only); with `space`, refuse one built for another space."""
        data = read_supernet(path)
        try:  # the base is stored resolved: a relative `base:` path need not exist here
            config = from_dict(SpaceConfig, data["space"], f"{path}: space")
            loaded = SearchSpace(config, ArchSpec.from_dict(data["base"], f"{path}: base"),
                                 str(data.get("space_name", "space")))
        except (ConfigError, ValueError, TypeError) as exc:
            raise SupernetError(f"{path}: its search space does not load here ({exc})") from None
        if space is not None and space.fingerprint() != data["fingerprint"]:
            raise SupernetError(f"{path} was built for space {data.get('space_name')!r} "
                                f"(fingerprint {data['fingerprint']}), not {space.name!r} ({space.fingerprint()}); "
                                f"build one with `ednas supernet init --space {space.name}`")
        return cls(loaded, data["tensors"], data.get("meta"))


_STATS = ("running_mean", "running_var", "num_batches_tracked")


def read_supernet(path: str | Path) -> dict[str, Any]:
    """The raw supernet dict, with one-line errors for missing, truncated or foreign files."""
    path = Path(path)
    if not path.is_file():
        raise SupernetError(f"{path}: no such supernet file (make one with `ednas supernet init`)")
    from ednas.models.checkpoint import safe_load

    data = safe_load(path, "supernet")  # data only: a file whose pickle would run code is refused
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("tensors"), dict):
        raise SupernetError(f"{path}: not an ednas supernet file (make one with `ednas supernet init`)")
    if data.get("version") != VERSION:
        raise SupernetError(f"{path}: supernet format version {data.get('version')}, this ednas reads {VERSION}")
    return data

