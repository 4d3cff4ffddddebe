"""Project exceptions: every user error is an EdnasError whose message is one line that
says what was wrong and how to fix it. The CLI prints it without a traceback."""

import errno
import reprlib


class EdnasError(Exception):
    """Base class for errors caused by user input (paths, recipes, models, budgets).

    A message names a library argument in backticks (`max_drop`); the CLI shows it as the
    flag the user typed (`--max-drop`)."""


class ConfigError(EdnasError):
    """A recipe, architecture or search-space file is malformed (unknown key, bad value)."""


class InputError(EdnasError):
    """A file given on the command line is missing, unreadable or of the wrong kind."""


class ModelMismatchError(EdnasError):
    """Weights (ONNX or checkpoint) do not fit the architecture they are loaded into."""


class DataError(EdnasError):
    """A dataset (images or annotations) is malformed."""


class OutputError(EdnasError):
    """An output cannot be written (read-only or full disk, no permission, a folder in the way)."""


def _short_repr() -> reprlib.Repr:
    short = reprlib.Repr()  # bounded work: a huge list or string is never rendered whole
    short.maxlevel, short.maxlist, short.maxtuple, short.maxdict = 3, 6, 6, 4
    short.maxstring = short.maxother = short.maxlong = 80
    return short


_SHORT = _short_repr()


def shorten(value: object, limit: int = 80, quote: bool = True) -> str:
    """`value` as an error message shows it: its repr (or str, `quote=False`) cut to about
    `limit` characters, so a huge value never floods the one error line."""
    try:
        text = _SHORT.repr(value) if quote else str(value)[: limit + 1]
    except ValueError:  # an int past Python's digit limit for str()
        text = f"<a {type(value).__name__} too long to show>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


# what to do about each file-system failure, by errno
_OS_FIXES: dict[int, str] = {
    errno.EACCES: "permission denied; choose a writable location or fix the folder's permissions",
    errno.EPERM: "operation not permitted; choose another location or fix its permissions",
    errno.EROFS: "read-only file system; write to a writable location",
    errno.ENOSPC: "no space left on the device; free some space or write elsewhere",
    errno.EDQUOT: "disk quota exceeded; free some space or write elsewhere",
    errno.EISDIR: "is a folder; give a file path",
    errno.ENOTDIR: "a part of this path is a file, not a folder; fix the path",
    errno.ENOENT: "no such file or folder; check the path",
    errno.EEXIST: "already exists; remove it or give another path",
    errno.ENAMETOOLONG: "file name too long; give a shorter path",
    errno.EMFILE: "too many open files; raise the limit (ulimit -n) and retry",
    errno.EIO: "input/output error from the device; check the disk",
}


def describe_os_error(exc: OSError, fix: str = "", default_path: str | None = None) -> str:
    """One line for a file-system error: `PATH: what went wrong; how to fix it`."""
    path = exc.filename if exc.filename is not None else default_path
    if exc.filename2 is not None:
        path = f"{path} -> {exc.filename2}"
    what = _OS_FIXES.get(exc.errno or -1) or (exc.strerror or str(exc) or type(exc).__name__)
    line = f"{path}: {what}" if path else what
    if fix and fix not in line:
        line += f" ({fix})"
    return " ".join(line.split())  # one line, whatever the OS put in strerror
