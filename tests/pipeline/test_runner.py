"""The stage runner: records, skip on re-run, re-run after a config or input change, --from,
and a run killed with SIGKILL inside a stage that the same command then finishes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ednas.errors import EdnasError
from ednas.pipeline.runner import Context, Runner, Stage


@dataclass(frozen=True)
class Cfg:
    a: dict = field(default_factory=lambda: {"n": 1})
    b: dict = field(default_factory=lambda: {"n": 2})

    def section(self, name: str) -> dict:
        return getattr(self, name)


def make_stages(calls: list[str], external: Path | None = None) -> list[Stage]:
    def first(ctx: Context):
        calls.append("first")
        (ctx.path("first")).mkdir(exist_ok=True)
        ctx.path("first", "x.txt").write_text(str(ctx.config.a["n"]))
        return {"x": "first/x.txt"}, ["first"]

    def second(ctx: Context):
        calls.append("second")
        x = int(ctx.abs(ctx.results["first"]["x"]).read_text())
        ctx.path("second.txt").write_text(str(x + ctx.config.b["n"]))
        return {"sum": x + ctx.config.b["n"]}, ["second.txt"]

    return [Stage("first", first, ("a",), (), (lambda ctx: [str(external)]) if external else (lambda ctx: [])),
            Stage("second", second, ("b",), ("first",))]


def run(tmp_path: Path, cfg: Cfg | None = None, start: str | None = None, external: Path | None = None):
    calls: list[str] = []
    lines: list[str] = []
    ctx = Context(cfg or Cfg(), tmp_path / "run", report=lines.append)
    status = Runner(make_stages(calls, external), ctx).run(start)
    return calls, status, ctx, lines


def test_records_and_skip(tmp_path):
    calls, status, ctx, lines = run(tmp_path)
    assert calls == ["first", "second"] and status == {"first": "ran", "second": "ran"}
    rec = json.loads(ctx.path("stages", "second.json").read_text())
    assert rec["result"] == {"sum": 3} and rec["outputs"] == ["second.txt"] and rec["key"]
    assert any("ETA" in line for line in lines)
    calls, status, ctx, _ = run(tmp_path)
    assert calls == [] and status == {"first": "skipped", "second": "skipped"}
    assert ctx.results["second"] == {"sum": 3}  # results of skipped stages come from their records
    assert not [p for p in ctx.run_dir.rglob(".*") if p.name != ".lock"]  # no temporary files left


def test_config_change_reruns_that_stage_and_later(tmp_path):
    run(tmp_path)
    calls, _, _, _ = run(tmp_path, Cfg(b={"n": 5}))
    assert calls == ["second"]
    calls, _, ctx, _ = run(tmp_path, Cfg(a={"n": 4}, b={"n": 5}))
    assert calls == ["first", "second"] and ctx.results["second"] == {"sum": 9}


def test_changed_output_or_external_input_reruns(tmp_path):
    ext = tmp_path / "ann.json"
    ext.write_text("{}")
    run(tmp_path, external=ext)
    os.utime(ext, ns=(1, 1))
    calls, _, _, _ = run(tmp_path, external=ext)
    assert calls == ["first", "second"]
    (tmp_path / "run" / "second.txt").unlink()
    calls, _, _, _ = run(tmp_path, external=ext)
    assert calls == ["second"]


def test_from_stage(tmp_path):
    run(tmp_path)
    calls, status, _, _ = run(tmp_path, start="second")
    assert calls == ["second"] and status["first"] == "skipped"
    calls, _, _, _ = run(tmp_path, start="first")
    assert calls == ["first", "second"]
    with pytest.raises(EdnasError, match="not a stage; stages are first, second"):
        run(tmp_path, start="nope")


SCRIPT = textwrap.dedent("""
    import os, signal, sys, time
    from pathlib import Path
    from ednas.pipeline.runner import Context, Runner, Stage

    class Cfg:
        def section(self, name): return {"n": 1}

    run_dir, kill = Path(sys.argv[1]), sys.argv[2] == "kill"
    log = run_dir.parent / "calls.txt"

    def stage(name):
        def fn(ctx):
            with open(log, "a") as f: f.write(name + "\\n")
            ctx.path(name + ".part").write_text("partial")
            if kill and name == "second":
                os.kill(os.getpid(), signal.SIGKILL)
            ctx.path(name + ".txt").write_text(name)
            return {}, [name + ".txt"]
        return fn

    stages = [Stage(n, stage(n), (), tuple(p for p in ["first", "second"] if p < n and n != "first"))
              for n in ("first", "second", "third")]
    Runner(stages, Context(Cfg(), run_dir)).run()
""")


def test_kill_9_inside_a_stage_then_same_command_finishes(tmp_path):
    script = tmp_path / "pipe.py"
    script.write_text(SCRIPT)
    run_dir = tmp_path / "run"
    killed = subprocess.run([sys.executable, str(script), str(run_dir), "kill"])
    assert killed.returncode == -signal.SIGKILL
    assert (run_dir / "stages" / "first.json").is_file() and not (run_dir / "stages" / "second.json").exists()
    done = subprocess.run([sys.executable, str(script), str(run_dir), "ok"])
    assert done.returncode == 0
    assert (tmp_path / "calls.txt").read_text().split() == ["first", "second", "second", "third"]
    assert all((run_dir / f"{n}.txt").read_text() == n for n in ("first", "second", "third"))


def test_second_runner_on_the_same_folder_is_refused(tmp_path):
    import fcntl

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    fd = os.open(run_dir / ".lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        with pytest.raises(EdnasError, match="another `ednas run`"):
            run(tmp_path)
    finally:
        os.close(fd)
