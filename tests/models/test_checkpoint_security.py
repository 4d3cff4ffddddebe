"""Torch files are data: a checkpoint whose pickle would run code is refused by every command
that takes --weights (and by train --resume) before any of its code runs; what ednas writes
(checkpoints, training state) loads with weights_only; old pickles convert on request."""

from __future__ import annotations

import ast
import os
import pickle
import random
import shlex
import shutil
from pathlib import Path, PurePosixPath

import cv2
import numpy as np
import pytest
import torch

from ednas.cli import build_parser, main
from ednas.errors import InputError
from ednas.models import build_model, load_checkpoint, save_checkpoint
from ednas.models.checkpoint import (FORMAT, NotPlainError, UnsafeFileError, atomic_save, read_checkpoint,
                                     safe_load)
from ednas.arch.zoo import get_arch
from ednas.train.ema import ModelEMA
from ednas.train.schedule import WarmupCosine
from ednas.train.trainer import _rng_state, _set_rng_state

RECIPE = "enhanced_nanodet_s"
PACKAGE = Path(__file__).resolve().parents[2] / "ednas"


class _WritesMarker:
    """Unpickling this runs code: it writes `marker` (what a hostile checkpoint would do)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('code ran')",))


@pytest.fixture(scope="module")
def tiny_model() -> torch.nn.Module:
    return build_model(get_arch(RECIPE).replace(input_size=64))


@pytest.fixture
def hostile(tmp_path, tiny_model) -> tuple[Path, Path]:
    """(checkpoint, marker): a real ednas checkpoint plus one object whose unpickling writes marker."""
    marker = tmp_path / "marker.txt"
    path = tmp_path / "hostile.ckpt"
    torch.save({"format": FORMAT, "arch": tiny_model.arch.to_dict(), "model": tiny_model.state_dict(),
                "note": _WritesMarker(marker)}, path)
    return path, marker


def test_the_hostile_fixture_really_runs_code_under_full_pickle(hostile) -> None:
    path, marker = hostile
    torch.load(path, weights_only=False)  # what ednas did before: the side effect happens
    assert marker.read_text() == "code ran"


def _argv(command: str, tmp: Path, weights: Path) -> list[str]:
    image = tmp / "img.png"
    cv2.imwrite(str(image), np.full((64, 64, 3), 127, np.uint8))
    w = str(weights)
    return {
        "export": ["export", RECIPE, "--weights", w, "--out", str(tmp / "out.onnx")],
        "flops": ["flops", RECIPE, "--weights", w],
        "gradcam": ["gradcam", RECIPE, "--weights", w, "--image", str(image), "--out", str(tmp / "out.png")],
        "infer": ["infer", RECIPE, "--weights", w, str(image), "--out", str(tmp / "out")],
        "prune": ["prune", RECIPE, "--weights", w, "--ratio", "0.3", "--out", str(tmp / "out.ckpt")],
        "test": ["test", RECIPE, "--weights", w, "--images", str(tmp), "--ann", str(tmp / "ann.json")],
        "train": ["train", RECIPE, "--weights", w, "--epochs", "1", "--out", str(tmp / "out")],
    }[command]


WEIGHTS_COMMANDS = ["export", "flops", "gradcam", "infer", "prune", "test", "train"]


def test_every_command_with_weights_is_covered() -> None:
    sub = next(a for a in build_parser()._actions if a.__class__.__name__ == "_SubParsersAction")
    taking = {name for name, p in sub.choices.items()
              if any("--weights" in a.option_strings for a in p._actions)}
    assert taking == set(WEIGHTS_COMMANDS), f"add an argv for {taking - set(WEIGHTS_COMMANDS)} to _argv"


@pytest.mark.parametrize("command", WEIGHTS_COMMANDS)
def test_a_hostile_checkpoint_is_refused_before_its_code_runs(command, hostile, tmp_path, capsys) -> None:
    path, marker = hostile
    assert main(_argv(command, tmp_path, path)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert "refused: it contains a pickled builtins.exec, which could run code" in err, err
    assert f"ednas convert-checkpoint {path} --out" in err, err
    assert not marker.exists()
    assert not any((tmp_path / n).exists() for n in ("out.onnx", "out.png", "out.ckpt", "out"))


def test_train_resume_refuses_a_hostile_training_state(hostile, tmp_path, capsys) -> None:
    path, marker = hostile
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(path, run / "last.ckpt")
    assert main(["train", RECIPE, "--out", str(run), "--resume"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "refused" in err and "could run code" in err, err
    assert not marker.exists()


def test_other_pickle_forms_are_refused_too(tmp_path, tiny_model) -> None:
    marker = tmp_path / "marker.txt"
    legacy = tmp_path / "legacy.ckpt"  # torch's pre-1.6 (non-zip) format
    torch.save({"format": FORMAT, "x": _WritesMarker(marker)}, legacy, _use_new_zipfile_serialization=False)
    raw = tmp_path / "raw.ckpt"  # a bare pickle, not a torch file at all
    raw.write_bytes(__import__("pickle").dumps(_WritesMarker(marker)))
    for path in (legacy, raw):
        with pytest.raises(UnsafeFileError, match="refused: it contains a pickled"):
            safe_load(path)
    assert not marker.exists()


def test_missing_and_truncated_files_get_one_line_errors(tmp_path, tiny_model, capsys) -> None:
    good = tmp_path / "good.ckpt"
    save_checkpoint(good, tiny_model)
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    for path, expect in ((tmp_path / "none.ckpt", "no such checkpoint"), (cut, "is it truncated")):
        assert main(["flops", RECIPE, "--weights", str(path)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and expect in err, err
    with pytest.raises(InputError, match="no such supernet"):
        safe_load(tmp_path / "none.pt", "supernet")


def test_a_checkpoint_ednas_writes_loads_as_data(tmp_path, tiny_model, capsys) -> None:
    path = tmp_path / "s.ckpt"
    save_checkpoint(path, tiny_model, metrics={"mAP": np.float64(0.25)}, source=Path("/data/x.onnx"))
    raw = torch.load(path, weights_only=True)  # plain torch, no ednas allowlist involved
    assert raw["metrics"] == {"mAP": 0.25} and type(raw["metrics"]["mAP"]) is float and raw["source"] == "/data/x.onnx"
    fresh = build_model(tiny_model.arch)
    load_checkpoint(fresh, path)
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), tiny_model.state_dict().values()))
    assert main(["flops", RECIPE, "--weights", str(path), "--json"]) == 0, capsys.readouterr().err


def test_saving_something_that_is_not_data_fails_and_leaves_no_file(tmp_path) -> None:
    with pytest.raises(NotPlainError, match=r"x.pt\['opt'\]: a object is not plain data"):
        atomic_save({"opt": object()}, tmp_path / "x.pt")
    assert list(tmp_path.iterdir()) == []


def _draws() -> tuple[float, float, float]:
    return random.random(), float(np.random.random()), float(torch.rand(1))


def test_a_training_state_round_trips_under_weights_only(tmp_path, tiny_model) -> None:
    model = build_model(tiny_model.arch)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    sum((p * p).sum() for p in model.parameters()).backward()
    opt.step()
    sched = WarmupCosine(opt, 1e-3, 1e-5, 100)
    sched.step_count = 7
    ema = ModelEMA(model)
    ema.update(model)
    np.random.normal()  # numpy caches a gaussian: has_gauss = 1 must survive too
    rng = _rng_state()
    expected = _draws()
    path = tmp_path / "last.ckpt"
    save_checkpoint(path, model, ema=ema.state_dict(), optimizer=opt.state_dict(), scheduler=sched.state_dict(),
                    epoch=1, step=1, rng=[rng], best_map=None, last_metrics={"mAP": 0.1})
    state = read_checkpoint(path, "training state")
    opt2 = torch.optim.AdamW(model.parameters(), lr=1e-3)
    opt2.load_state_dict(state["optimizer"])
    assert torch.equal(opt2.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    sched2 = WarmupCosine(opt2, 1e-3, 1e-5, 100)
    sched2.load_state_dict(state["scheduler"])
    assert sched2.step_count == 7
    ModelEMA(model).load_state_dict(state["ema"])
    _draws()
    _set_rng_state(state["rng"][0])
    assert _draws() == expected


def _old_style_training_state(path: Path, model: torch.nn.Module) -> tuple[float, float, float]:
    """A last.ckpt as ednas wrote it before: full pickle, numpy's RNG tuple, a numpy scalar.
    Returns the draws that follow its random state."""
    rng = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    expected = _draws()
    torch.save({"format": FORMAT, "arch": model.arch.to_dict(), "model": model.state_dict(), "rng": [rng],
                "best_map": np.float64(0.5), "epoch": 3}, path)
    return expected


def test_an_old_training_state_is_refused_with_the_conversion_command_which_works(tmp_path, tiny_model,
                                                                                     capsys) -> None:
    old = tmp_path / "last.ckpt"
    expected = _old_style_training_state(old, tiny_model)
    with pytest.raises(UnsafeFileError, match=rf"pickled numpy\..*ednas convert-checkpoint {old} --out NEW.ckpt"):
        read_checkpoint(old)
    new = tmp_path / "converted.ckpt"
    assert main(["convert-checkpoint", str(old), "--out", str(new)]) == 0
    assert "read without running code" in capsys.readouterr().out
    state = read_checkpoint(new, "training state")
    assert type(state["best_map"]) is float and state["epoch"] == 3
    _draws()
    _set_rng_state(state["rng"][0])  # numpy's tuple, its key array now a tensor
    assert _draws() == expected


def test_conversion_of_other_types_needs_trust_and_says_so(tmp_path, capsys) -> None:
    old = tmp_path / "old.ckpt"
    torch.save({"format": FORMAT, "source": PurePosixPath("/models/s.onnx")}, old)
    with pytest.raises(UnsafeFileError, match="pickled pathlib"):
        safe_load(old)
    assert main(["convert-checkpoint", str(old), "--out", str(tmp_path / "new.ckpt")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pickled pathlib.PurePosixPath" in err and "--trust" in err
    assert not (tmp_path / "new.ckpt").exists()
    assert main(["convert-checkpoint", str(old), "--out", str(tmp_path / "new.ckpt"), "--trust"]) == 0
    assert "full pickle" in capsys.readouterr().out
    assert safe_load(tmp_path / "new.ckpt")["source"] == "/models/s.onnx"
    assert main(["convert-checkpoint", str(old), "--out", str(old)]) == 2
    assert "give a new path" in capsys.readouterr().err


class _RunsShell:
    """Unpickling this runs a shell command that creates `marker`."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(str(self.marker))}",))


def _raw_pickle_via_numpy(marker: Path) -> bytes:
    """A hand-made pickle that hides `exec` as the array subclass numpy's `_reconstruct` is
    given (the allow-listed function must not lend its permission to its arguments)."""
    core = "numpy._core.multiarray" if hasattr(np, "_core") else "numpy.core.multiarray"
    code = f"open({str(marker)!r}, 'w').write('code ran')".encode()
    return (b"\x80\x02c" + core.encode() + b"\n_reconstruct\n"
            + b"cbuiltins\nexec\n" + b"X" + len(code).to_bytes(4, "little") + code + b"\x85R"
            + b"K\x00\x85" + b"C\x01b" + b"\x87R.")


@pytest.mark.parametrize("kind", ["exec", "os.system", "with-numpy", "raw-pickle"])
def test_convert_runs_no_code_of_a_hostile_pickle(tmp_path, tiny_model, capsys, kind) -> None:
    """A hostile file given to convert-checkpoint (without --trust) leaves no marker and fails
    in one line with exit code 2, whether its payload sits beside numpy data or poses as it."""
    marker, old, new = tmp_path / "marker.txt", tmp_path / "old.ckpt", tmp_path / "new.ckpt"
    payload = _WritesMarker(marker) if kind == "exec" else _RunsShell(marker)
    if kind == "raw-pickle":
        old.write_bytes(_raw_pickle_via_numpy(marker))
    else:
        extra = {"rng": np.random.get_state(), "best": np.float64(0.5)} if kind == "with-numpy" else {}
        torch.save({"format": FORMAT, "model": tiny_model.state_dict(), "note": payload, **extra}, old)
    assert main(["convert-checkpoint", str(old), "--out", str(new)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and err.startswith("ednas convert-checkpoint: error:")
    assert "refused" in err or "not a readable checkpoint" in err
    assert not marker.exists() and not new.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.ckpt"]


def test_the_raw_hostile_pickle_really_runs_code_under_full_pickle(tmp_path) -> None:
    marker = tmp_path / "marker.txt"
    with pytest.raises(Exception):  # exec returns None, which numpy then fails to use: the code ran first
        pickle.loads(_raw_pickle_via_numpy(marker))
    assert marker.read_text() == "code ran"


def _calls(tree: ast.AST, module: str, names: set[str]):
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in names
                and isinstance(node.func.value, ast.Name) and node.func.value.id == module):
            yield node


def test_no_code_path_in_ednas_unpickles_or_loads_yaml_unsafely() -> None:
    """Every torch.load passes weights_only=True, except the one trusted read of `convert`;
    YAML is read with safe_load only."""
    trusted = []
    for source in PACKAGE.rglob("*.py"):
        tree = ast.parse(source.read_text(), str(source))
        funcs = {id(n): f.name for f in ast.walk(tree) if isinstance(f, ast.FunctionDef) for n in ast.walk(f)}
        for call in _calls(tree, "torch", {"load"}):
            flag = next((k.value for k in call.keywords if k.arg == "weights_only"), None)
            where = f"{source.relative_to(PACKAGE.parent)}:{call.lineno}"
            if isinstance(flag, ast.Constant) and flag.value is True:
                continue
            assert funcs.get(id(call)) == "_load_trusted", f"{where}: torch.load without weights_only=True"
            trusted.append(where)
        for call in _calls(tree, "yaml", {"load", "full_load", "unsafe_load", "load_all", "full_load_all",
                                          "unsafe_load_all"}):
            pytest.fail(f"{source}:{call.lineno}: yaml.{call.func.attr}; use yaml.safe_load")
        for call in _calls(tree, "pickle", {"load", "loads"}):
            pytest.fail(f"{source}:{call.lineno}: pickle.{call.func.attr} on a file")
    assert trusted == ["ednas/models/checkpoint.py:" + trusted[0].rsplit(":", 1)[-1]]
