"""Helpers shared by the sub-commands: option types that reject impossible values at the
boundary. (recipe + weights -> model lives in the library: `ednas.recipe.load_model`.)"""

from __future__ import annotations

import argparse

from ednas.cpu import usable_cpus
from ednas.recipe import SEARCHABLE_FIELDS, arch_difference, load_model  # noqa: F401  (the commands' import point)


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (counts: threads, batch sizes, images, epochs)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def local_threads(text: str) -> int:
    """argparse type: a thread count for work run here, from 1 to the CPUs this process can use."""
    value = positive_int(text)
    cpus = usable_cpus()
    if value > cpus:
        raise argparse.ArgumentTypeError(f"{value} is more than the {cpus} CPUs this process can use; "
                                         f"give at most {cpus}")
    return value


def nonnegative_int(text: str) -> int:
    """argparse type: an integer >= 0 (data-loader workers, fine-tune epochs, indices)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} must be 0 or more")
    return value


def input_size(text: str) -> int:
    """argparse type: a square input size, a multiple of 32 from 32 up (the detectors' strides)."""
    value = positive_int(text)
    if value % 32:
        raise argparse.ArgumentTypeError(f"{value} is not a multiple of 32 (e.g. {max(32, value // 32 * 32)})")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0 (learning rates, scores)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text} must be a positive number")
    return value


def unit_fraction(text: str) -> float:
    """argparse type: a number in [0, 1] (score thresholds)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text} must be between 0 and 1")
    return value


def add_recipe(parser: argparse.ArgumentParser, required: bool = True, card: bool = False) -> None:
    """The model argument; `card`: a peer card (recipes/peers/*.yml) is taken too."""
    peer = ", or a peer card (recipes/peers/*.yml) with --onnx" if card else ""
    parser.add_argument(
        "recipe", metavar="RECIPE", nargs=None if required else "?",
        help=f"recipe YAML, a bundled recipe name (e.g. enhanced_nanodet_s) or an ARCH.yml{peer}",
    )


def add_batch_size(parser: argparse.ArgumentParser, default: int, help: str) -> None:
    """`--batch-size N` (the one name across commands) with `--batch` kept as an alias."""
    parser.add_argument("--batch-size", "--batch", dest="batch_size", type=positive_int, default=default,
                        metavar="N", help=help)

