"""Crash-safe outputs: every file a command writes appears complete or not at all.

- `atomic_path(dest)` yields a temporary path beside `dest` (same suffix, so writers that go by
  the extension still work); leaving the block renames it over `dest`, an error removes it.
  `write_text` / `write_bytes` / `write_json` / `write_yaml` are the one-call forms.
- `output_set(*dests)` commits several files as one unit: all are written to temporary names,
  a manifest (the commit point) is written, then they are renamed in order. A run killed after
  the manifest is rolled forward by `recover(folder)` (called by the next write into that
  folder and by readers such as `load_model`), so a set is always old-complete or new-complete.
- `atomic_dir(dest)` builds a folder beside `dest` and swaps it in the same way.
- `scratch_dir(what)` is a private working folder under the system temp dir, removed on
  success and on error; folders of killed runs are removed by the next `scratch_dir`.

Temporary names carry the writer's process id (`.NAME.ednas-PID-TOKEN.tmp.EXT`), so leftovers
of a process that no longer runs are recognised and removed, never those of a live one.
Outputs get the mode the umask gives new files (as `open` would), not mkstemp's 0600.
Write failures (no space, read-only, permission) raise OutputError naming the path and the fix.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
import secrets
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

from ednas.errors import EdnasError, OutputError, describe_os_error

log = logging.getLogger(__name__)

_TMP = re.compile(r"^\.(?P<name>.+)\.ednas-(?P<pid>\d+)-(?P<token>[0-9a-f]+)\.(?:tmp|old)(?:\..*)?$")
_MANIFEST = re.compile(r"^\.ednas-commit-(?P<pid>\d+)-(?P<token>[0-9a-f]+)\.json(?P<part>\.part)?$")
_SCRATCH = re.compile(r"^ednas-[a-z0-9_]+-(?P<pid>\d+)-[0-9a-f]+$")


def file_mode() -> int:
    """The mode `open()` would give a new file under the current umask (e.g. 0o644)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def temp_name(dest: Path, kind: str = "tmp") -> Path:
    """A unique hidden name beside `dest`, tagged with this process id, same suffix as dest."""
    token = secrets.token_hex(4)
    return dest.with_name(f".{dest.name}.ednas-{os.getpid()}-{token}.{kind}{dest.suffix}")


def check_output(dest: str | Path, folder: bool = False) -> Path:
    """Refuse, before any work, an output path that cannot be written: a folder where a file
    belongs (or the reverse), a parent that is a file, a read-only or unwritable folder."""
    final = Path(dest)
    if folder:
        if final.exists() and not final.is_dir():
            raise OutputError(f"{dest}: exists and is not a folder; give a folder path")
    elif final.is_dir():
        raise OutputError(f"{dest}: is a folder; give a file path to write to")
    parent = final if folder and final.is_dir() else final.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise OutputError(f"{parent}: is a file, not a folder; give an output path inside a folder")
    try:
        read_only = bool(os.statvfs(parent).f_flag & os.ST_RDONLY)
    except OSError:
        read_only = False
    if read_only:
        raise OutputError(describe_os_error(OSError(errno.EROFS, "read-only"), "", str(final)))
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(describe_os_error(OSError(errno.EACCES, "denied"), "", str(final)))
    return final


def write_error(path: str | Path, what: str) -> OutputError:
    """The error for a writer that only says it failed (cv2.imwrite returns False): the disk's
    state (full, read-only, no permission) when that explains it, else `what`."""
    return _write_failure(RuntimeError(what), [Path(path)]) or OutputError(
        f"{path}: {what}; check the folder's permissions and free space")


@contextlib.contextmanager
def atomic_path(dest: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write `dest` to; on success it replaces `dest` atomically."""
    with output_set(dest) as (tmp,):
        yield tmp


def write_bytes(dest: str | Path, data: bytes) -> Path:
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)
    return Path(dest)


def write_text(dest: str | Path, text: str) -> Path:
    with atomic_path(dest) as tmp:
        tmp.write_text(text)
    return Path(dest)


def write_json(dest: str | Path, obj: Any) -> Path:
    """`obj` as indented JSON plus a newline."""
    return write_text(dest, json.dumps(obj, indent=2) + "\n")


def write_yaml(dest: str | Path, obj: Any) -> Path:
    """Plain data as block-style YAML, keeping key order."""
    import yaml

    return write_text(dest, yaml.safe_dump(obj, sort_keys=False))


@contextlib.contextmanager
def output_set(*dests: str | Path) -> Iterator[tuple[Path, ...]]:
    """Yield one temporary path per destination; on success all replace their destinations as a
    unit (see the module docstring), on error all are removed and the destinations untouched."""
    finals = [Path(d).absolute() for d in dests]
    if len(set(finals)) != len(finals):
        raise ValueError(f"output_set: a destination is given twice: {dests}")
    for final in finals:
        _check_destination(final)
    for folder in {f.parent for f in finals}:
        recover(folder)
    tmps = [temp_name(f) for f in finals]
    try:
        yield tuple(tmps)
        missing = [t for t in tmps if not t.exists()]
        if missing:
            raise RuntimeError(f"output_set: {missing[0]} was never written")
        _commit(list(zip(tmps, finals)))
    except BaseException as exc:
        for tmp in tmps:
            _remove(tmp)
        _raise_for_destination(exc, list(zip(tmps, finals)))
        raise


@contextlib.contextmanager
def atomic_dir(dest: str | Path, marker: str | None = None) -> Iterator[Path]:
    """Yield an empty staging folder; on success it becomes `dest` (an old `dest` is replaced
    as a unit). An existing non-empty `dest` is only replaced when it holds `marker` (a file
    that identifies an earlier output of the same kind), so a user's folder is never wiped."""
    final = Path(dest).absolute()
    if final.exists():
        if not final.is_dir():
            raise OutputError(f"{dest}: exists and is not a folder; give a folder path for --out")
        if any(final.iterdir()) and not (marker and (final / marker).exists()):
            raise OutputError(f"{dest}: folder exists and is not empty; give a new or empty folder for --out")
    _check_parent(final.parent)
    recover(final.parent)
    staging = temp_name(final)
    try:
        staging.mkdir()  # mode from the umask, like any new folder
        yield staging
        _commit([(staging, final)])
    except BaseException as exc:
        _remove(staging)
        _raise_for_destination(exc, [(staging, final)])
        raise


@contextlib.contextmanager
def scratch_dir(what: str) -> Iterator[Path]:
    """A private working folder `<tmp>/ednas-WHAT-PID-TOKEN`, removed on leaving the block
    (success or error); folders left by killed runs are removed first."""
    base = Path(tempfile.gettempdir())
    _sweep_scratch(base)
    path = base / f"ednas-{what}-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        path.mkdir(mode=0o700)
    except OSError as exc:
        raise OutputError(describe_os_error(exc, "set TMPDIR to a writable folder with free space")) from None
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def recover(folder: str | Path) -> None:
    """Finish commits in `folder` that a killed process started (roll forward) and remove
    temporary files of processes that no longer run. Cheap: one directory listing."""
    folder = Path(folder)
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        m = _MANIFEST.match(name)
        if m and not pid_alive(int(m.group("pid"))):
            if m.group("part"):
                _remove(folder / name)  # killed while writing it: nothing was committed
            else:
                _roll_forward(folder / name)
    for name in names:
        m = _TMP.match(name)
        if m and not pid_alive(int(m.group("pid"))):
            _remove(folder / name)


def _commit(moves: list[tuple[Path, Path]]) -> None:
    """Rename every temporary over its destination; with more than one (or a folder), first
    write a manifest so that a kill in between is rolled forward by `recover`."""
    mode = file_mode()
    for tmp, _ in moves:
        if tmp.is_file():
            os.chmod(tmp, mode)
            _fsync(tmp)
    single_file = len(moves) == 1 and not moves[0][1].is_dir()
    if single_file:
        os.replace(moves[0][0], moves[0][1])
        _fsync_dir(moves[0][1].parent)
        return
    folder = moves[0][1].parent
    manifest = folder / f".ednas-commit-{os.getpid()}-{secrets.token_hex(4)}.json"
    staged = manifest.with_name(manifest.name + ".part")
    staged.write_text(json.dumps({"moves": [[str(t), str(f)] for t, f in moves]}))
    _fsync(staged)
    os.replace(staged, manifest)  # the commit point
    _fsync_dir(folder)
    _roll_forward(manifest)


def _roll_forward(manifest: Path) -> None:
    try:
        moves = json.loads(manifest.read_text())["moves"]
    except (OSError, ValueError, KeyError, TypeError):
        _remove(manifest)  # unreadable: it was never committed (written via a rename)
        return
    trash = []
    for tmp, final in moves:
        tmp, final = Path(tmp), Path(final)
        if not tmp.exists():
            continue  # already moved
        if final.is_dir():
            old = final.with_name(f".{final.name}.ednas-{os.getpid()}-{secrets.token_hex(4)}.old")
            os.rename(final, old)
            trash.append(old)
        os.replace(tmp, final)
        _fsync_dir(final.parent)
    for old in trash:
        _remove(old)
    _remove(manifest)
    log.debug("committed %d outputs (%s)", len(moves), manifest.name)


def _raise_for_destination(exc: BaseException, moves: list[tuple[Path, Path]]) -> None:
    """Re-raise a failed write as an OutputError about the destination the user named (not
    the temporary name); return (and let the caller re-raise) when it is not a write error."""
    if not isinstance(exc, Exception) or (isinstance(exc, EdnasError) and not isinstance(exc, OutputError)):
        return  # an interrupt, or the user's error that stopped the writer: not about the disk
    failure = exc if isinstance(exc, OutputError) else _write_failure(exc, [f for _, f in moves])
    if failure is None:
        return
    message = str(failure)
    for tmp, final in moves:
        message = message.replace(str(tmp), str(final))
    if message == str(failure) and failure is exc:
        return
    raise OutputError(message) from exc


def _check_destination(final: Path) -> None:
    if final.is_dir():
        raise OutputError(f"{final}: is a folder; give a file path to write to")
    _check_parent(final.parent)


def _check_parent(parent: Path) -> None:
    if not parent.exists():
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(describe_os_error(exc, "give an --out in a writable folder")) from None
    elif not parent.is_dir():
        raise OutputError(f"{parent}: is a file, not a folder; give an --out inside a folder")


def _write_failure(exc: Exception, finals: list[Path]) -> OutputError | None:
    """An OutputError for a failed write (OSError, or a library's own error on a full or
    read-only disk, e.g. torch's RuntimeError), None when the failure is not about the disk."""
    where = finals[0]
    if isinstance(exc, OSError):
        return OutputError(describe_os_error(exc, "", default_path=str(where)))
    try:
        st = os.statvfs(where.parent)
    except OSError:
        return None
    if st.f_flag & os.ST_RDONLY:
        return OutputError(describe_os_error(OSError(errno.EROFS, "read-only"), "", str(where)))
    if st.f_bavail * st.f_frsize < 4 * 2**20:  # under 4 MiB free: this write ran out of space
        return OutputError(describe_os_error(OSError(errno.ENOSPC, "no space"), "", str(where)))
    if not os.access(where.parent, os.W_OK):
        return OutputError(describe_os_error(OSError(errno.EACCES, "denied"), "", str(where)))
    return None


def _sweep_scratch(base: Path) -> None:
    try:
        names = os.listdir(base)
    except OSError:
        return
    for name in names:
        m = _SCRATCH.match(name)
        if m and not pid_alive(int(m.group("pid"))):
            shutil.rmtree(base / name, ignore_errors=True)


def pid_alive(pid: int) -> bool:
    """The process exists and is not a zombie (killed, not yet reaped by its parent)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _remove(path: Path) -> None:
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    except OSError:
        pass


def _fsync(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    _fsync(folder)
