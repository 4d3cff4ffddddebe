"""Checkpoints: a torch file holding the architecture description and the weights, so a
checkpoint alone rebuilds its model (pruned or searched architectures included).

    {"format": "ednas", "arch": ArchSpec as dict, "model": state_dict, ...extra}

Torch files are data. Every one ednas reads goes through `safe_load`, i.e.
`torch.load(weights_only=True)`: only containers, numbers, strings and tensors come back, and
a file that needs anything else (a pickled class or function, which could run code on load)
is refused in one line. Everything ednas writes goes through `atomic_save`, which checks
that it is such plain data (numpy values and paths are turned into tensors, numbers and
strings) and writes it atomically (temporary file, then rename), so an interrupted write
never leaves a truncated file behind.

Files from older ednas versions that held numpy objects (the resume state's random state)
are rewritten as plain data by `ednas convert-checkpoint OLD --out NEW` (`convert`), which
runs no pickled code; a file holding other types needs `--trust` (full pickle).
"""

from __future__ import annotations

import dataclasses
import logging
import pickle
import pickletools
import re
import warnings
from collections import OrderedDict
from pathlib import Path, PurePath
from typing import Any

import numpy as np
import torch
from torch import nn

from ednas.arch import ArchSpec
from ednas.errors import InputError, ModelMismatchError

log = logging.getLogger(__name__)

FORMAT = "ednas"

# what a plain torch file may hold besides containers and tensors (exact types: a numpy
# float64 is a float subclass, yet needs numpy's globals to unpickle)
_SCALARS = (str, int, float, bool, complex, bytes, type(None))
_TORCH_VALUES = (torch.Size, torch.dtype, torch.device)
_TENSORS = (torch.Tensor, nn.Parameter)
_PICKLE_OPCODES = frozenset(op.code for op in pickletools.opcodes)


class UnsafeFileError(InputError):
    """A torch file needs more than plain data to load (a pickled class or function)."""


class NotPlainError(TypeError):
    """An object to be saved (or converted) holds a value with no plain-data form."""


# ---------------------------------------------------------------------------------- writing
def atomic_save(obj: Any, path: str | Path) -> None:
    """torch.save plain data (see `plain`) to a temporary file in the same folder, then
    rename it over `path`. Raises NotPlainError (a programming error) for other values, so
    nothing ednas writes fails to load under `safe_load`."""
    from ednas.io import atomic_path

    path = Path(path)
    obj = plain(obj, where=path.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:  # hidden temporary beside it, umask's mode, removed on failure
        torch.save(obj, tmp)


def plain(obj: Any, where: str = "value") -> Any:
    """`obj` as data `torch.load(weights_only=True)` reads back: containers, numbers,
    strings, tensors. numpy arrays become tensors, numpy scalars Python numbers, paths
    strings; any other type raises NotPlainError naming where it sits. Unchanged parts are
    returned as they are (a state_dict keeps its version metadata)."""
    kind = type(obj)
    if kind in _SCALARS or kind in _TORCH_VALUES or kind in _TENSORS:
        return obj
    if isinstance(obj, np.ndarray):
        if obj.dtype.hasobject:
            raise NotPlainError(f"{where}: a numpy array of Python objects is not plain data")
        try:
            return torch.from_numpy(np.array(obj, dtype=obj.dtype.newbyteorder("="), copy=True))
        except TypeError:  # strings, dates: no tensor dtype
            return plain(obj.tolist(), where)
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, PurePath):
        return str(obj)
    if isinstance(obj, dict):
        items = [(plain(k, f"{where} key"), plain(v, f"{where}[{k!r}]")) for k, v in obj.items()]
        if kind in (dict, OrderedDict) and all(k is k0 and v is v0 for (k, v), (k0, v0) in zip(items, obj.items())):
            return obj
        if not isinstance(obj, OrderedDict):
            return dict(items)
        out = OrderedDict(items)
        if isinstance(getattr(obj, "_metadata", None), dict):  # a state_dict's module versions
            out._metadata = plain(obj._metadata, f"{where}._metadata")  # type: ignore[attr-defined]
        return out
    if isinstance(obj, (list, tuple)):
        values = [plain(v, f"{where}[{i}]") for i, v in enumerate(obj)]
        if kind in (list, tuple) and all(v is v0 for v, v0 in zip(values, obj)):
            return obj
        return values if isinstance(obj, list) else tuple(values)
    if isinstance(obj, torch.Tensor):  # another tensor subclass: keep the data
        return obj.as_subclass(torch.Tensor)
    raise NotPlainError(
        f"{where}: a {_type_name(obj)} is not plain data (tensors, numbers, strings, lists, tuples, dicts)")


def save_checkpoint(path: str | Path, model: nn.Module, **extra: Any) -> None:
    """Save `model` (a Detector) with its architecture; `extra` entries are stored alongside."""
    arch: ArchSpec = model.arch  # type: ignore[assignment]
    atomic_save({"format": FORMAT, "arch": arch.to_dict(), "model": model.state_dict(), **extra}, path)


# ---------------------------------------------------------------------------------- reading
def safe_load(path: str | Path, what: str = "checkpoint") -> Any:
    """The contents of torch file `path`, read with `weights_only=True` (no code runs).

    One-line InputErrors for a missing, unreadable, truncated or foreign file; UnsafeFileError
    for a file that needs more than containers, numbers, strings and tensors, naming the type
    it holds and the command that converts a trusted file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such {what} (check the path)")
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols on foreign files
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Weights only load failed" not in str(exc) or _not_a_pickle(exc):
            raise _unreadable(path, what, exc) from None
        raise UnsafeFileError(_refusal(path, what, _culprit(path, exc))) from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read the {what} ({exc.strerror or type(exc).__name__})") from None
    except Exception as exc:  # torch raises many types for a corrupt or foreign file
        raise _unreadable(path, what, exc) from None
    foreign = _foreign(obj)  # the allowlist is global: refuse what another library added to it
    if foreign is not None:
        raise UnsafeFileError(_refusal(path, what, foreign))
    return obj


def _foreign(obj: Any) -> str | None:
    """The type name of the first value in `obj` that is not plain data, or None."""
    stack = [obj]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind in (dict, OrderedDict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif kind in (list, tuple):
            stack.extend(item)
        elif not (kind in _SCALARS or kind in _TORCH_VALUES or kind in _TENSORS):
            return _type_name(item)
    return None


def _unreadable(path: Path, what: str, exc: BaseException) -> InputError:
    return InputError(f"{path}: not a readable {what} ({type(exc).__name__}); is it truncated or not a torch file?")


def _refusal(path: Path, what: str, culprit: str) -> str:
    return (f"{path}: refused: it contains a pickled {culprit}, which could run code; ednas loads only "
            f"tensors, numbers, strings, lists and dicts. If you trust where this {what} came from, rewrite it "
            f"as plain data once with `ednas convert-checkpoint {path} --out NEW{path.suffix or '.ckpt'}`")


def _not_a_pickle(exc: Exception) -> bool:
    """True when the weights-only unpickler stopped at a byte that is no pickle instruction at
    all (a junk file), not at one it refuses."""
    m = re.search(r"Unsupported operand (\d+)", str(exc))
    return m is not None and chr(int(m.group(1))) not in _PICKLE_OPCODES


def _culprit(path: Path, exc: Exception) -> str:
    """The type or function the weights-only unpickler refused (from its message, completed
    with the module name from a scan of the file's pickle, which runs nothing)."""
    text = str(exc)
    try:
        found = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    except Exception:  # not a zip checkpoint: the message is all there is
        found = []
    for pattern in (r"GLOBAL ([\w.]+) was not an allowed global", r"Unsupported global: GLOBAL ([\w.]+)",
                    r"unsupported GLOBAL ([\w.]+) whose module",
                    r"unrecognized function ([\w.<>]+)", r"Unsupported class ([\w.]+)"):
        m = re.search(pattern, text)
        if m:
            name = m.group(1)
            return next((g for g in found if g == name or g.endswith("." + name)), name)
    m = re.search(r"Unsupported operand (\d+)", text)
    if m:
        return f"object (a raw pickle: instruction {m.group(1)} is not allowed)"
    return found[0] if found else "object"


def read_checkpoint(path: str | Path, what: str = "checkpoint") -> dict[str, Any]:
    """Load an ednas checkpoint dict, with one-line errors for missing, unsafe or foreign files."""
    ckpt = safe_load(path, what)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise InputError(f"{path}: not an ednas {what} (write one with `ednas import-onnx` or `ednas train`)")
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
    state = ckpt[key]
    if isinstance(state.get("model"), dict):  # a training state's EMA: {"model": weights, "updates": n}
        state = state["model"]
    load_state(model, state, str(path))
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


# ------------------------------------------------------------------------------- converting
@dataclasses.dataclass(frozen=True)
class Conversion:
    """What `convert` did: how the old file was read and where the plain copy went."""

    out: Path
    ran_pickle: bool  # True: the file needed full pickle (its code ran, as the user trusted it)


def convert(src: str | Path, out: str | Path, trust: bool = False) -> Conversion:
    """Rewrite torch file `src` (e.g. from an older ednas) as plain data at `out`.

    numpy arrays, scalars and dtypes (older resume states) are read without running code: an
    allow-list of numpy's reconstruction functions under the weights-only unpickler. A file
    that needs any other type is refused (UnsafeFileError) unless `trust`: then it is read with
    full pickle, which runs whatever code it holds. The copy is checked to load under
    `safe_load`."""
    src, out = Path(src), Path(out)
    if not src.is_file():
        raise InputError(f"{src}: no such file (give the checkpoint to convert)")
    if out.resolve() == src.resolve():
        raise InputError(f"`out` {out}: give a new path; the original stays until the copy is checked")
    ran_pickle = False
    try:
        obj = _load_with_numpy(src)
    except pickle.UnpicklingError as exc:
        if "Weights only load failed" not in str(exc) or _not_a_pickle(exc):
            raise _unreadable(src, "checkpoint", exc) from None
        culprit = _culprit(src, exc)
        if not trust:
            raise UnsafeFileError(
                f"{src}: refused: it contains a pickled {culprit}, which is not numpy data and could run code "
                "when read; nothing was run. Only if you trust where it came from, convert it with `trust` "
                "(full pickle runs the code it holds)") from None
        log.warning("%s holds %s: reading it with full pickle, which runs the code it contains", src, culprit)
        obj = _load_trusted(src)
        ran_pickle = True
    except Exception as exc:
        raise _unreadable(src, "checkpoint", exc) from None
    try:
        atomic_save(obj, out)
    except NotPlainError as exc:
        raise InputError(f"{src}: cannot convert: {exc}") from None
    safe_load(out)
    return Conversion(out, ran_pickle)


def _load_with_numpy(path: Path) -> Any:
    """weights_only load that also accepts numpy arrays and scalars (data, no code)."""
    core = getattr(np, "_core", None) or np.core
    allowed: list[Any] = [np.ndarray, np.dtype, core.multiarray._reconstruct, core.multiarray.scalar]
    allowed += [getattr(np.dtypes, n) for n in dir(np.dtypes) if n.endswith("DType")]
    with warnings.catch_warnings(), torch.serialization.safe_globals(allowed):
        warnings.simplefilter("ignore")
        return torch.load(path, map_location="cpu", weights_only=True)


def _load_trusted(path: Path) -> Any:
    """Full pickle: runs code in the file. Only `convert`, on the user's explicit request."""
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise _unreadable(path, "checkpoint", exc) from None


def _type_name(obj: Any) -> str:
    kind = type(obj)
    return f"{kind.__module__}.{kind.__qualname__}" if kind.__module__ != "builtins" else kind.__qualname__
