"""SIGTERM is handled like Ctrl-C (issue 30): exit code 143 (130 for SIGINT), one line on
stderr, scratch folders removed and outputs complete or absent; the same command then runs
to the end."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

import ednas.commands.flops as flops
from ednas import io
from ednas.cli import main
from ednas.signals import Terminated, sigterm_as_interrupt
from fixture_modules import load_test_module

SET = ["p.arch.yml", "p.ckpt", "p.json"]  # what prune writes, as one set


def test_sigterm_raises_terminated_inside_the_block_only():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Terminated):
        with sigterm_as_interrupt():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler runs at the next bytecode: never reached
    assert signal.getsignal(signal.SIGTERM) is before
    assert issubclass(Terminated, KeyboardInterrupt)  # every clean-up written for Ctrl-C runs


@pytest.mark.parametrize("sig, code, by", [(signal.SIGTERM, 143, "SIGTERM"), (signal.SIGINT, 130, "the user")])
def test_a_signal_mid_command_is_one_line_and_removes_scratch(monkeypatch, tmp_path, capsys, sig, code, by):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    out = tmp_path / "dest" / "a.json"

    def long_command(args):
        with io.scratch_dir("test") as work, io.atomic_path(out) as tmp:
            (work / "partial").write_text("x")
            tmp.write_text("{")
            os.kill(os.getpid(), sig)
            time.sleep(5)
        return 0

    monkeypatch.setattr(flops, "run", long_command)
    out.parent.mkdir()
    assert main(["flops", "x"]) == code
    assert capsys.readouterr().err == (f"ednas flops: interrupted: stopped by {by}; outputs are unchanged or "
                                       "complete, scratch files removed\n")
    assert os.listdir(tmp_path) == ["dest"] and os.listdir(out.parent) == []


# -- a real command in a subprocess -----------------------------------------------------------
@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, Path]:
    kill_tests = load_test_module("kill_outputs", Path(__file__).resolve().parent / "test_kill_outputs.py")
    return kill_tests._tiny(tmp_path_factory.mktemp("tiny"))


def _prune(tiny: tuple[Path, Path], out: Path, tmpdir: Path) -> subprocess.Popen:
    recipe, ckpt = tiny
    env = {**os.environ, "TMPDIR": str(tmpdir), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "ednas.cli", "prune", str(recipe), "--weights", str(ckpt),
                             "--ratio", "0.3", "--threads", "1", "--out", str(out)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _scratch(tmpdir: Path) -> list[str]:
    """ednas' scratch folders in `tmpdir` (others' caches, e.g. torch's, are not ours to judge)."""
    return [n for n in os.listdir(tmpdir) if n.startswith("ednas-")]


def _signal_mid_run(proc: subprocess.Popen, tmpdir: Path, sig: int) -> str:
    """Send `sig` once the command's scratch folder exists (it is working); its stderr."""
    deadline = time.monotonic() + 180
    while not _scratch(tmpdir):
        assert proc.poll() is None, f"ended before its scratch folder appeared: {proc.communicate()[1]}"
        assert time.monotonic() < deadline, "no scratch folder after 180 s"
        time.sleep(0.05)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    return err


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_during_prune(tiny, tmp_path, sig, code):
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    out = tmp_path / "dest" / "p.ckpt"
    proc = _prune(tiny, out, tmpdir)
    err = _signal_mid_run(proc, tmpdir, sig)
    lines = [line for line in err.splitlines() if not line.startswith("INFO ednas") and "\r" not in line]
    assert proc.returncode == code, err
    assert len(lines) == 1 and lines[0].startswith("ednas prune: interrupted: stopped by"), err
    assert "Traceback" not in err
    assert _scratch(tmpdir) == []
    assert not out.parent.exists() or sorted(os.listdir(out.parent)) in ([], SET)


@pytest.mark.slow
def test_after_sigterm_the_same_prune_gives_the_same_set(tiny, tmp_path):
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    clean = tmp_path / "clean" / "p.ckpt"
    first = _prune(tiny, clean, tmpdir)
    first.communicate()
    assert first.returncode == 0
    out = tmp_path / "dest" / "p.ckpt"
    _signal_mid_run(_prune(tiny, out, tmpdir), tmpdir, signal.SIGTERM)
    proc = _prune(tiny, out, tmpdir)
    err = proc.communicate()[1]
    assert proc.returncode == 0, err
    assert sorted(os.listdir(out.parent)) == SET
    assert out.with_suffix(".arch.yml").read_text() == clean.with_suffix(".arch.yml").read_text()
    assert _scratch(tmpdir) == []
