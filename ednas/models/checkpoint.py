"""Checkpoints: a torch file holding the architecture description and the weights, so a
checkpoint alone rebuilds its model (pruned or searched architectures included).

    {"format": "ednas", "arch": ArchSpec as dict, "model": state_dict, ...extra}

Written atomically (temporary file, then rename), so an interrupted write never leaves a
truncated checkpoint behind.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ednas.arch import ArchSpec
from ednas.errors import InputError, ModelMismatchError

FORMAT = "ednas"


def atomic_save(obj: Any, path: str | Path) -> None:
    """torch.save to a temporary file in the same folder, then rename over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_checkpoint(path: str | Path, model: nn.Module, **extra: Any) -> None:
    """Save `model` (a Detector) with its architecture; `extra` entries are stored alongside."""
    arch: ArchSpec = model.arch  # type: ignore[assignment]
    atomic_save({"format": FORMAT, "arch": arch.to_dict(), "model": model.state_dict(), **extra}, path)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint dict, with one-line errors for missing or foreign files."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such checkpoint (give a .ckpt written by ednas)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises many types for a corrupt file
        raise InputError(f"{path}: not a readable checkpoint ({type(exc).__name__}); was it truncated?") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise InputError(f"{path}: not an ednas checkpoint (write one with `ednas import-onnx` or `ednas train`)")
    return ckpt


def checkpoint_arch(path: str | Path) -> ArchSpec:
    return ArchSpec.from_dict(read_checkpoint(path)["arch"], where=f"{path}: arch")


def load_checkpoint(model: nn.Module, path: str | Path, key: str = "model") -> dict[str, Any]:
    """Load weights `key` ("model" or "ema") of checkpoint `path` into `model`.

    The auxiliary branch may be absent on either side; any other difference raises
    ModelMismatchError naming the first mismatching parameter. Returns the checkpoint dict.
    """
    ckpt = read_checkpoint(path)
    if key not in ckpt:
        raise InputError(f"{path}: checkpoint has no {key!r} weights (has: {', '.join(k for k in ckpt if k != 'arch')})")
    load_state(model, ckpt[key], str(path))
    return ckpt


def load_state(model: nn.Module, state: dict[str, torch.Tensor], where: str) -> None:
    own = model.state_dict()
    is_aux = lambda k: k.startswith(("aux_fpn.", "aux_head."))  # noqa: E731
    for name, value in state.items():
        if name not in own:
            if is_aux(name):
                continue
            raise ModelMismatchError(f"{where}: parameter {name!r} does not exist in this architecture")
        if own[name].shape != value.shape:
            raise ModelMismatchError(
                f"{where}: {name} has shape {tuple(value.shape)}, the architecture expects {tuple(own[name].shape)}"
            )
    missing = [k for k in own if k not in state and not is_aux(k)]
    if missing:
        raise ModelMismatchError(f"{where}: checkpoint lacks {missing[0]!r} (and {len(missing) - 1} more)")
    model.load_state_dict(state, strict=False)
