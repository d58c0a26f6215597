"""SIGTERM as a clean exit: it unwinds like Ctrl-C, so `finally` blocks run and the CLI can
say what was kept (a preempted SLURM job gets SIGTERM first, SIGKILL later)."""

from __future__ import annotations

import contextlib
import signal
import threading


class Terminated(SystemExit):
    """Raised by the SIGTERM handler of `terminate_as_exit`; `code` is 128 + the signal."""


@contextlib.contextmanager
def terminate_as_exit():
    """Within the block, SIGTERM raises `Terminated(143)` (main thread only; else no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Terminated(128 + signum)

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)
