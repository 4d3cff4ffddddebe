"""SIGTERM handled like Ctrl-C: what `kill`, schedulers and container runtimes send to stop a
command must leave what Ctrl-C leaves (outputs complete or absent, scratch folders removed).

Python turns SIGINT into KeyboardInterrupt, so every `finally` and `except BaseException` of
the atomic writers and scratch folders (`ednas.io`) runs; SIGTERM's default ends the process on
the spot. Within `sigterm_as_interrupt()` SIGTERM raises `Terminated`, a KeyboardInterrupt, so
the same clean-up runs and the CLI reports it in one line with exit code 143 (128 + 15).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Any, Iterator


class Terminated(KeyboardInterrupt):
    """The process received SIGTERM (raised where it was, like Ctrl-C's KeyboardInterrupt)."""


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated()


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises Terminated in the main thread; the previous handler is
    restored after it. Outside the main thread (where Python allows no handler) a no-op."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
