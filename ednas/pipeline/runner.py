"""The run folder of `ednas run`: stages in order, each finished one recorded with the identity
of its inputs, so a re-run skips what is done and a killed run continues where it stopped.

A stage's record (`RUN_DIR/stages/NAME.json`, written atomically after its outputs, so it is
the commit point) holds:
    key         hash of the stage name, its config sections, the identity of its external
                input files and the `outputs_id` of every earlier stage it reads
    outputs     the files/folders it wrote (relative to RUN_DIR)
    outputs_id  hash of (path, size, mtime) of every file under `outputs`
    result      what later stages need (paths, names, numbers)
A stage is skipped when its record's key equals the key computed now and its outputs are
unchanged; otherwise it runs (again). Stages that can be long resume their own partial work
(the profiler's rows, the supernet's training state, the study journal, per-model files).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from ednas.errors import EdnasError, InputError
from ednas.io import write_json

log = logging.getLogger(__name__)

RECORDS = "stages"
RECORD_FORMAT = "ednas-stage-1"


class PipelineError(EdnasError):
    """The run folder or a stage cannot proceed (another run holds it, a bad --from)."""


@dataclass
class Context:
    """What a stage sees: the config, the run folder, and the results of the stages before."""

    config: Any  # PipelineConfig
    run_dir: Path
    results: dict[str, dict[str, Any]] = field(default_factory=dict)  # stage name -> result
    report: Callable[[str], None] = lambda line: None  # progress lines (the command prints them)
    forced: set[str] = field(default_factory=set)  # stages `--from` asked to redo from scratch

    def path(self, *parts: str) -> Path:
        return self.run_dir.joinpath(*parts)

    def rel(self, path: str | Path) -> str:
        """`path` relative to the run folder when inside it (records stay valid if it moves)."""
        p = Path(path)
        try:
            return str(p.resolve().relative_to(self.run_dir.resolve()))
        except ValueError:
            return str(p)

    def abs(self, path: str) -> Path:
        p = Path(path)
        return p if p.is_absolute() else self.run_dir / p


@dataclass(frozen=True)
class Stage:
    """One step. `run(ctx)` returns (result, outputs): plain data for later stages and the
    paths (relative to RUN_DIR) it wrote. `inputs(ctx)` lists external files it reads."""

    name: str
    run: Callable[[Context], tuple[dict[str, Any], list[str]]]
    sections: tuple[str, ...] = ()  # config sections (or top-level keys) hashed into the key
    after: tuple[str, ...] = ()  # earlier stages whose outputs it reads
    inputs: Callable[[Context], list[str]] = lambda ctx: []
    estimate_s: Callable[[Context], float] = lambda ctx: 10.0  # expected seconds (for the ETA)
    help: str = ""


def identity(paths: list[str | Path], root: Path | None = None) -> str:
    """Hash of (path, size, mtime) of every file under `paths` (folders walked, sorted); a
    missing path counts as missing, so its later appearance changes the identity."""
    h = hashlib.sha256()
    for p in paths:
        path = Path(p) if root is None or Path(p).is_absolute() else root / p
        for f in _files(path):
            try:
                st = f.stat()
            except OSError:
                h.update(f"{f}|missing\n".encode())
                continue
            name = f.relative_to(root) if root is not None and f.is_relative_to(root) else f
            h.update(f"{name}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def _files(path: Path) -> Iterator[Path]:
    if path.is_dir():
        for folder, dirs, names in os.walk(path):
            dirs.sort()
            for n in sorted(names):
                if not n.startswith("."):  # temporary files of a running writer
                    yield Path(folder) / n
    else:
        yield path


class Runner:
    """Runs `stages` in order in `run_dir` (see the module docstring)."""

    def __init__(self, stages: list[Stage], ctx: Context) -> None:
        names = [s.name for s in stages]
        if len(set(names)) != len(names):
            raise ValueError(f"stage names repeat: {names}")
        self.stages = stages
        self.ctx = ctx

    # -- records ---------------------------------------------------------------------------
    def record_path(self, name: str) -> Path:
        return self.ctx.path(RECORDS, f"{name}.json")

    def record(self, name: str) -> dict[str, Any] | None:
        try:
            data = json.loads(self.record_path(name).read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) and data.get("format") == RECORD_FORMAT else None

    def key(self, stage: Stage) -> str:
        cfg = self.ctx.config
        deps = {}
        for name in stage.after:
            rec = self.record(name)
            deps[name] = rec["outputs_id"] if rec else None
        payload = {
            "stage": stage.name,
            "config": {s: _plain(cfg.section(s) if hasattr(cfg, "section") else getattr(cfg, s)) for s in stage.sections},
            "inputs": {str(p): _stat_id(Path(p)) for p in stage.inputs(self.ctx)},
            "after": deps,
        }
        blob = json.dumps(payload, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def is_done(self, stage: Stage) -> bool:
        rec = self.record(stage.name)
        return (rec is not None and rec["key"] == self.key(stage)
                and rec["outputs_id"] == identity(rec["outputs"], self.ctx.run_dir))

    # -- running -----------------------------------------------------------------------------
    def run(self, start: str | None = None) -> dict[str, str]:
        """Run every stage (from `start` on: forced); returns stage name -> "ran" | "skipped"."""
        names = [s.name for s in self.stages]
        if start is not None and start not in names:
            raise InputError(f"--from {start!r}: not a stage; stages are {', '.join(names)}")
        forced = set(names[names.index(start):]) if start else set()
        self.ctx.forced = forced
        self.ctx.run_dir.mkdir(parents=True, exist_ok=True)
        status: dict[str, str] = {}
        with _lock(self.ctx.run_dir):
            t_run = time.time()
            for i, stage in enumerate(self.stages):
                if stage.name not in forced and self.is_done(stage):
                    self.ctx.results[stage.name] = self.record(stage.name)["result"]  # type: ignore[index]
                    status[stage.name] = "skipped"
                    self.ctx.report(f"[{i + 1}/{len(self.stages)}] {stage.name}: done before, inputs unchanged "
                                    "(skipped)")
                    continue
                left = sum(s.estimate_s(self.ctx) for s in self.stages[i:]
                           if s.name in forced or not self.is_done(s))
                self.ctx.report(f"[{i + 1}/{len(self.stages)}] {stage.name}: {stage.help} "
                                f"(~{_minutes(stage.estimate_s(self.ctx))}; pipeline ETA {_minutes(left)})")
                key = self.key(stage)
                earlier = self.record(stage.name)
                if earlier is not None and earlier["key"] != key:
                    forced.add(stage.name)  # its inputs changed: partial work (a study) is for others
                t0 = time.time()
                result, outputs = stage.run(self.ctx)
                seconds = time.time() - t0
                outputs = [self.ctx.rel(o) for o in outputs]
                write_json(self.record_path(stage.name), {
                    "format": RECORD_FORMAT, "stage": stage.name, "key": key, "outputs": outputs,
                    "outputs_id": identity(outputs, self.ctx.run_dir), "seconds": round(seconds, 2),
                    "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "result": result,
                })
                self.ctx.results[stage.name] = result
                status[stage.name] = "ran"
                self.ctx.report(f"[{i + 1}/{len(self.stages)}] {stage.name}: finished in {_minutes(seconds)}")
            self.ctx.report(f"pipeline finished in {_minutes(time.time() - t_run)} "
                            f"({sum(v == 'ran' for v in status.values())} stages ran, "
                            f"{sum(v == 'skipped' for v in status.values())} skipped)")
        return status


def _stat_id(path: Path) -> str:
    """Size and mtime of an external input (a folder's own entry: its files are not walked,
    a dataset folder may hold a hundred thousand images)."""
    try:
        st = path.stat()
    except OSError:
        return "missing"
    return f"{st.st_size}:{st.st_mtime_ns}"


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


class _lock:
    """An exclusive lock on RUN_DIR/.lock for the whole run (released by the OS on kill -9)."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / ".lock"
        self.fd: int | None = None

    def __enter__(self) -> "_lock":
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            raise PipelineError(f"{self.path.parent}: another `ednas run` is using this run folder; wait for it "
                                "or give another --out") from None
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
