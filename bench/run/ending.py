"""How a run ends: SIGTERM becomes an interruption the runner can record.

The runner closes its ``runs`` row on every exit path it controls: ``ok``/``failed`` when the
plan ran, ``failed`` on an exception, ``interrupted`` on KeyboardInterrupt or SIGTERM (raised
here as :class:`Terminated`). Docs: docs/decisions/store.md, "Runs that end".
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType


class Terminated(KeyboardInterrupt):
    """SIGTERM received: the run stops as if interrupted (exit status 143 by convention)."""


def _raise(signum: int, frame: FrameType | None) -> None:
    raise Terminated(f"signal {signum}")


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Within the block SIGTERM raises :class:`Terminated` (main thread only; restored after)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def status_of(err: BaseException | None, failed: int) -> str:
    """The run row's status for how the run ended (``err`` the exception that ended it)."""
    if isinstance(err, KeyboardInterrupt):
        return "interrupted"
    if err is not None:
        return "failed"
    return "failed" if failed else "ok"
