"""ednas.io: outputs appear complete or not at all; sets of files are old-complete or
new-complete even when the writer is killed (-9) between its renames; scratch folders go away."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from ednas import io
from ednas.errors import OutputError

NAMES = ("m.ckpt", "m.arch.yml", "m.json")

# a writer of a three-file set that kills itself (SIGKILL) at a chosen point
WRITER = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from ednas import io

    folder, point = Path(sys.argv[1]), sys.argv[2]
    finals = [folder / n for n in ("m.ckpt", "m.arch.yml", "m.json")]
    real_replace, renamed = os.replace, []

    def replace(src, dst):
        real_replace(src, dst)
        if Path(dst) in finals:
            renamed.append(dst)
            if point == f"rename{len(renamed)}":
                os.kill(os.getpid(), signal.SIGKILL)

    os.replace = replace
    with io.output_set(*finals) as tmps:
        for i, tmp in enumerate(tmps):
            tmp.write_text("new\\n")
            if point == "writing" and i == 1:
                os.kill(os.getpid(), signal.SIGKILL)
    if point == "done":
        sys.exit(0)
""")


def _old_set(folder: Path) -> None:
    for name in NAMES:
        (folder / name).write_text("old\n")


def _contents(folder: Path) -> set[str]:
    return {(folder / n).read_text() if (folder / n).exists() else "missing" for n in NAMES}


@pytest.mark.parametrize("point, after_recover", [
    ("writing", "old\n"),   # killed before the commit point: the old set stays
    ("rename1", "new\n"),   # killed between renames: rolled forward to the new set
    ("rename2", "new\n"),
    ("rename3", "new\n"),   # killed after the last rename, before the manifest went away
    ("done", "new\n"),
])
def test_killed_writer_leaves_old_or_new_set(tmp_path, point, after_recover):
    _old_set(tmp_path)
    proc = subprocess.run([sys.executable, "-c", WRITER, str(tmp_path), point], capture_output=True, text=True)
    assert proc.returncode == (0 if point == "done" else -9), proc.stderr
    pending = any(n.startswith(".ednas-commit-") for n in os.listdir(tmp_path))
    assert pending or len(_contents(tmp_path)) == 1  # a mix only while a commit is pending
    io.recover(tmp_path)  # what the next write into the folder or load_model does
    assert _contents(tmp_path) == {after_recover}
    assert sorted(os.listdir(tmp_path)) == sorted(NAMES), "temporary files or a manifest left behind"


def test_load_model_finishes_a_pending_commit(tmp_path):
    """Readers see the new set: load_model rolls a killed prune's commit forward first."""
    from ednas.recipe import load_model
    from ednas.models import build_model, save_checkpoint
    from ednas.arch.zoo import get_arch

    arch = get_arch("enhanced_nanodet_s").replace(input_size=64)
    save_checkpoint(tmp_path / "new.ckpt", build_model(arch))
    (tmp_path / "m.ckpt").write_text("old, unreadable\n")
    # a commit whose writer died (a pid that no longer runs) before its rename
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    tmp = tmp_path / f".m.ckpt.ednas-{dead}-abcd.tmp.ckpt"
    (tmp_path / "new.ckpt").rename(tmp)
    manifest = tmp_path / f".ednas-commit-{dead}-abcd.json"
    manifest.write_text('{"moves": [["%s", "%s"]]}' % (tmp, tmp_path / "m.ckpt"))
    _, model = load_model("enhanced_nanodet_s", str(tmp_path / "m.ckpt"))
    assert model.arch.input_size == 320 and not manifest.exists() and not tmp.exists()


def test_atomic_write_keeps_the_old_file_on_error(tmp_path):
    dest = tmp_path / "a.json"
    dest.write_text("old")
    with pytest.raises(ZeroDivisionError):
        with io.atomic_path(dest) as tmp:
            tmp.write_text("half")
            1 / 0
    assert dest.read_text() == "old" and os.listdir(tmp_path) == ["a.json"]


def test_outputs_follow_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        io.write_json(tmp_path / "a.json", {"x": 1})
        io.write_yaml(tmp_path / "a.yml", {"x": 1})
        io.write_bytes(tmp_path / "a.bin", b"1")
    finally:
        os.umask(old)
    for name in ("a.json", "a.yml", "a.bin"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o640, name


def test_write_errors_name_the_path_and_the_fix(tmp_path, monkeypatch):
    def denied(src, dst):
        raise PermissionError(errno.EACCES, "Permission denied", str(dst))

    monkeypatch.setattr(os, "replace", denied)
    with pytest.raises(OutputError, match=r"a\.json: permission denied; choose a writable location"):
        io.write_text(tmp_path / "a.json", "x")
    assert os.listdir(tmp_path) == []


def test_library_errors_on_a_full_disk_become_output_errors(tmp_path, monkeypatch):
    """torch.save reports a full disk as a RuntimeError: recognised from the file system."""
    class Full:
        f_flag, f_bavail, f_frsize = 0, 0, 4096

    monkeypatch.setattr(os, "statvfs", lambda path: Full())
    with pytest.raises(OutputError, match="no space left"):
        with io.atomic_path(tmp_path / "m.ckpt") as tmp:
            tmp.write_bytes(b"partial")
            raise RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed")
    assert os.listdir(tmp_path) == []


def test_atomic_dir_replaces_an_earlier_output_but_not_a_user_folder(tmp_path):
    out = tmp_path / "set"
    for text in ("first", "second"):
        with io.atomic_dir(out, marker="done") as stage:
            (stage / "done").write_text(text)
    assert (out / "done").read_text() == "second" and os.listdir(tmp_path) == ["set"]
    user = tmp_path / "mine"
    user.mkdir()
    (user / "thesis.tex").write_text("precious")
    with pytest.raises(OutputError, match="not empty"):
        with io.atomic_dir(user, marker="done"):
            pass
    assert os.listdir(user) == ["thesis.tex"]


def test_scratch_dir_is_removed_on_error_and_after_a_kill(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with pytest.raises(KeyError):
        with io.scratch_dir("prune") as work:
            (work / "x.onnx").write_bytes(b"1")
            raise KeyError
    assert not work.exists()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    stale = tmp_path / f"ednas-profile-{dead}-deadbeef"
    stale.mkdir()
    alive = tmp_path / f"ednas-profile-{os.getppid()}-deadbeef"  # a running process's folder stays
    alive.mkdir()
    with io.scratch_dir("prune") as work:
        assert work.is_dir() and not stale.exists() and alive.exists()
    assert not work.exists()
