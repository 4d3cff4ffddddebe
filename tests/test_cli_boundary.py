"""The CLI's error boundary: one line per failure, exit 2 for the user's errors (file-system
ones included), exit 1 and "rerun with --debug" for a bug; third-party chatter only with -v."""

from __future__ import annotations

import errno
import logging
import warnings

import pytest

import ednas.commands.flops as flops
from ednas.cli import main
from ednas.errors import InputError


def _run_as_flops(monkeypatch, body) -> None:
    monkeypatch.setattr(flops, "run", lambda args: body())


def test_a_bug_is_one_line_with_exit_1_and_the_traceback_with_debug(monkeypatch, capsys):
    def broken():
        raise ValueError("shapes (3,) and (4,) do not align\nsecond line")

    _run_as_flops(monkeypatch, broken)
    assert main(["flops", "x"]) == 1
    err = capsys.readouterr().err
    assert err == ("ednas flops: internal error: ValueError: shapes (3,) and (4,) do not align second line "
                   "(rerun with --debug for the traceback)\n")
    assert main(["flops", "x", "--debug"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Traceback") and "in broken" in err and err.endswith("--debug for the traceback)\n")


@pytest.mark.parametrize("code, expect", [
    (errno.EACCES, "/data/x.ckpt: permission denied; choose a writable location"),
    (errno.ENOSPC, "/data/x.ckpt: no space left on the device"),
    (errno.EROFS, "/data/x.ckpt: read-only file system"),
    (errno.EISDIR, "/data/x.ckpt: is a folder; give a file path"),
])
def test_file_system_errors_name_the_path_and_the_fix(monkeypatch, capsys, code, expect):
    def fail():
        raise OSError(code, "os text", "/data/x.ckpt")

    _run_as_flops(monkeypatch, fail)
    assert main(["flops", "x"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"ednas flops: error: {expect}") and err.count("\n") == 1, err


def test_third_party_logs_and_warnings_only_with_verbose(monkeypatch, capsys):
    def chatty():
        logging.info("Increased scale of tensor 17")  # what ORT's quantizer does, on the root logger
        logging.getLogger("onnxruntime.quantization").info("calibrating")
        warnings.warn("TracerWarning: converting a tensor to a Python boolean")
        logging.getLogger("ednas.train").warning("ednas warnings always show")
        return 0

    _run_as_flops(monkeypatch, chatty)
    root = logging.getLogger()
    handler = logging.StreamHandler()  # pytest's capture handler does not print: watch stderr ourselves
    root.addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as quiet_warnings:
            warnings.simplefilter("always")
            assert main(["flops", "x"]) == 0
        quiet = capsys.readouterr().err
        with warnings.catch_warnings(record=True) as loud_warnings:
            warnings.simplefilter("always")
            assert main(["-v", "flops", "x"]) == 0
        loud = capsys.readouterr().err
    finally:
        root.removeHandler(handler)
    assert quiet == "ednas warnings always show\n" and not quiet_warnings
    assert "Increased scale" in loud and "calibrating" in loud and len(loud_warnings) == 1


def test_usage_errors_are_one_line(capsys):
    assert main(["export", "r", "--weights"]) == 2
    err = capsys.readouterr().err
    assert err == "ednas export: error: argument --weights: expected one argument (see ednas export --help)\n"


def test_library_argument_names_show_as_flags(monkeypatch, capsys):
    """A library error names its argument in backticks (`input_size`); the CLI shows the flag or
    positional the user typed."""
    def fail():
        raise InputError("`input_size` 33: give a multiple of 32 (the input_size of `recipe` is 320, `x` stays)")

    _run_as_flops(monkeypatch, fail)
    assert main(["flops", "x"]) == 2
    err = capsys.readouterr().err
    assert err == ("ednas flops: error: --input-size 33: give a multiple of 32 "
                   "(the input_size of RECIPE is 320, `x` stays)\n"), err


def test_a_sub_command_names_itself_in_its_errors(tmp_path, capsys):
    assert main(["supernet", "extract", str(tmp_path / "nope.pt"), str(tmp_path / "a.yml"),
                 "--out", str(tmp_path / "x.ckpt")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ednas supernet extract: error: ") and "no such supernet file" in err, err


def test_a_user_error_from_a_data_loader_worker_is_its_own_line(monkeypatch, capsys):
    """torch re-raises a worker's exception with the worker's traceback in its message: the
    line keeps only the error's own message."""
    from ednas.errors import DataError

    wrapped = ("Caught DataError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n"
               '  File "x.py", line 3, in load\n    raise DataError(...)\n'
               "ednas.errors.DataError: /d/a.jpg: annotated as 50x50 but the image is 64x32 as stored\n")

    def broken():
        raise DataError(wrapped)

    _run_as_flops(monkeypatch, broken)
    assert main(["flops", "x"]) == 2
    assert capsys.readouterr().err == ("ednas flops: error: /d/a.jpg: annotated as 50x50 but the image is "
                                       "64x32 as stored\n")


def test_a_huge_message_is_cut(monkeypatch, capsys):
    from ednas.cli import MAX_LINE

    _run_as_flops(monkeypatch, lambda: (_ for _ in ()).throw(InputError("value " + "x" * 10**7)))
    assert main(["flops", "x"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and len(err) < MAX_LINE + 100 and err.endswith(f"(cut at {MAX_LINE} characters)\n")
