"""The `ednas` command line. Each sub-command lives in `ednas/commands/<name>.py` and exposes
`register(subparsers)`; heavy imports happen inside the command, so `ednas --help` is instant.
User errors (EdnasError) are printed as one line, without a traceback."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from ednas import __version__
from ednas.errors import EdnasError

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
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ednas", description="Hardware-aware compression and NAS for Enhanced NanoDet."
    )
    parser.add_argument("--version", action="version", version=f"ednas {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"ednas.commands.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    # positionals may follow options (`infer RECIPE --weights W IMG...`): hand the leftovers
    # to a command's variadic `inputs`, reject them everywhere else
    args, rest = parser.parse_known_args(argv)
    if rest:
        if isinstance(getattr(args, "inputs", None), list) and not any(r.startswith("-") for r in rest):
            args.inputs += rest
        else:
            parser.error(f"unrecognized arguments: {' '.join(rest)}")
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except EdnasError as exc:
        print(f"ednas {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"ednas {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
