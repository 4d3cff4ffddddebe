"""The `ednas` command line. Each sub-command lives in `ednas/commands/<name>.py` and exposes
`register(subparsers)`; heavy imports happen inside the command, so `ednas --help` is instant.

The error boundary (`main`) turns every failure into one line on stderr:

- bad usage or a user error (EdnasError): `ednas CMD: error: ...`, exit code 2;
- a file-system error (permission, no space, read-only, a folder where a file belongs):
  the path and the fix, exit code 2;
- anything else is a bug: its type and message and "rerun with --debug", exit code 1;
- Ctrl-C: exit code 130; SIGTERM, handled the same way (`ednas.signals`): exit code 143. The
  clean-up of outputs and scratch folders runs in both cases.

`--debug` (anywhere on the line) adds the traceback. Third-party log lines and Python warnings
are shown only with `-v`.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import re
import sys
import traceback
import warnings
from typing import Iterator, NoReturn

from ednas import __version__
from ednas.errors import EdnasError, describe_os_error
from ednas.signals import Terminated, sigterm_as_interrupt

EXIT_USER_ERROR = 2  # bad input, bad usage, an output that cannot be written
EXIT_BUG = 1  # an unexpected exception: a bug to report (with the --debug traceback)
EXIT_INTERRUPTED = 130  # Ctrl-C (SIGINT)
EXIT_TERMINATED = 143  # SIGTERM (kill, schedulers), handled like Ctrl-C: 128 + 15
MAX_LINE = 2000  # an error line longer than this is cut: a library may embed a huge value


class UsageError(EdnasError):
    """Bad command-line usage (argparse's own checks), reported like any user error."""

    def __init__(self, prog: str, message: str) -> None:
        super().__init__(message)
        self.prog = prog


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (a UsageError) instead of usage + exit."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(self.prog, f"{message} (see {self.prog} --help)")

# module names under ednas.commands, in the order `ednas --help` lists them
COMMANDS = [
    "flops",
    "import_onnx",
    "export",
    "infer",
    "train",
    "test",
    "data",
    "profile",
    "latency",
    "gradcam",
    "prune",
    "quantize",
    "supernet",
    "search",
    "convert_checkpoint",
    "report",
    "run",
]


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="ednas", description="Hardware-aware compression and NAS for Enhanced NanoDet."
    )
    parser.add_argument("--version", action="version", version=f"ednas {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="debug logging, including third-party libraries' log lines and warnings")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error (also after COMMAND)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"ednas.commands.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit code (see the module docstring)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    command = "ednas"
    parser = args = None
    try:
        parser = build_parser()
        # positionals may follow options (`infer RECIPE --weights W IMG...`): hand the leftovers
        # to a command's variadic `inputs`, reject them everywhere else
        args, rest = parser.parse_known_args(argv)
        command = " ".join(["ednas", *(name for name, _ in _command_chain(parser, args) if name)])
        if rest:
            if isinstance(getattr(args, "inputs", None), list) and not any(r.startswith("-") for r in rest):
                args.inputs += rest
            else:
                raise UsageError(command, f"unrecognized arguments: {' '.join(rest)} (see {command} --help)")
        with _quiet_third_parties(args.verbose), sigterm_as_interrupt():
            return int(args.func(args) or 0)
    except UsageError as exc:
        return _fail(exc.prog, "error", str(exc), EXIT_USER_ERROR, debug)
    except EdnasError as exc:
        return _fail(command, "error", as_flags(_worker_message(str(exc)), parser, args), EXIT_USER_ERROR, debug)
    except OSError as exc:
        return _fail(command, "error", describe_os_error(exc), EXIT_USER_ERROR, debug)
    except KeyboardInterrupt as exc:
        by, code = ("SIGTERM", EXIT_TERMINATED) if isinstance(exc, Terminated) else ("the user", EXIT_INTERRUPTED)
        return _fail(command, "interrupted", f"stopped by {by}; outputs are unchanged or complete, scratch "
                     "files removed", code, debug)
    except MemoryError:
        return _fail(command, "error", "out of memory; use a smaller batch or input size", EXIT_USER_ERROR, debug)
    except Exception as exc:  # a bug: say what it was, keep the traceback for --debug
        message = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return _fail(command, "internal error", f"{message} (rerun with --debug for the traceback)", EXIT_BUG, debug)


def as_flags(message: str, parser: argparse.ArgumentParser | None, args: argparse.Namespace | None) -> str:
    """The library's message with each argument it names in backticks (`max_drop`) shown as
    the command's flag (--max-drop) or positional (RECIPE); other backticked words stay."""
    sub = _command_parser(parser, args) if "`" in message else None
    if sub is None:
        return message
    shown = {a.dest: max(a.option_strings, key=len) if a.option_strings else (a.metavar or a.dest.upper())
             for a in sub._actions if isinstance(a.metavar, (str, type(None)))}
    return re.sub(r"`(\w+)`", lambda m: shown.get(m.group(1), m.group(0)), message)


def _worker_message(message: str) -> str:
    """A user error raised in a DataLoader worker reaches the CLI with the worker's traceback
    in its message ("Caught DataError in DataLoader worker process 0. Original Traceback ...");
    keep the error's own message, the traceback's last line."""
    if "\nOriginal Traceback" not in message:
        return message
    last = [line for line in message.splitlines() if line.strip()][-1]
    return re.sub(r"^[\w.]+: ", "", last)


def _command_parser(parser: argparse.ArgumentParser | None, args: argparse.Namespace | None):
    """The (sub-)sub-parser that parsed `args` (`ednas data synth` -> synth's parser)."""
    chain = _command_chain(parser, args)
    return chain[-1][1] if chain and chain[-1][1] is not None else None


def _command_chain(parser: argparse.ArgumentParser | None,
                   args: argparse.Namespace | None) -> list[tuple[str, argparse.ArgumentParser | None]]:
    """(name, parser) of each command level that parsed `args`: `ednas supernet extract` ->
    [("supernet", its parser), ("extract", its parser)]; a level that did not parse ends it."""
    chain: list[tuple[str, argparse.ArgumentParser | None]] = []
    while parser is not None and args is not None:
        actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not actions:
            break
        name = getattr(args, actions[0].dest, None) or ""
        parser = actions[0].choices.get(name)
        chain.append((name, parser))
    return chain


def _fail(command: str, kind: str, message: str, code: int, debug: bool) -> int:
    """Print the one-line message (the traceback first with --debug); return the exit code."""
    if debug and sys.exc_info()[0] is not None:
        traceback.print_exc()
    line = " ".join(message[: 4 * MAX_LINE].split())  # one line, whatever a library put in its message
    if len(line) > MAX_LINE:
        line = f"{line[:MAX_LINE]}... (cut at {MAX_LINE} characters)"
    print(f"{command}: {kind}: {line}", file=sys.stderr)
    return code


@contextlib.contextmanager
def _quiet_third_parties(verbose: bool) -> Iterator[None]:
    """ednas INFO lines always; other libraries' log lines, Python warnings and ONNX Runtime's
    own logger only with -v (quantizer and profiler chatter otherwise buries the output)."""
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
    root, ours = logging.getLogger(), logging.getLogger("ednas")
    saved = root.level, ours.level
    root.setLevel(logging.DEBUG if verbose else logging.WARNING)
    ours.setLevel(logging.DEBUG if verbose else logging.INFO)
    if not verbose:
        with contextlib.suppress(ImportError):
            import onnxruntime

            onnxruntime.set_default_logger_severity(3)  # errors only
    try:
        with warnings.catch_warnings():
            if not verbose:
                warnings.simplefilter("ignore")
            yield
    finally:
        root.setLevel(saved[0])
        ours.setLevel(saved[1])


if __name__ == "__main__":
    sys.exit(main())
