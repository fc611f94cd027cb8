"""Progress bars (tqdm) with rate and ETA, shown only where someone is watching.

A bar is disabled when stderr is not a terminal, when ``RACL_BENCH_NO_PROGRESS=1`` is set, or when
the caller asks for none; a disabled bar still counts, so callers never branch on it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable

from tqdm.auto import tqdm


def progress_enabled(requested: bool = True) -> bool:
    """True when a bar should be drawn: requested, a TTY, and not switched off by the env."""
    if not requested or os.environ.get("RACL_BENCH_NO_PROGRESS") == "1":
        return False
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


def progress_bar(
    iterable: Iterable | None = None,
    *,
    total: int | None = None,
    desc: str = "",
    unit: str = "img",
    enabled: bool = True,
) -> tqdm:
    """A tqdm bar (rate in ``unit``/s and ETA), or a silent counter when not enabled."""
    return tqdm(
        iterable,
        total=total,
        desc=desc,
        unit=unit,
        unit_scale=True,
        dynamic_ncols=True,
        leave=False,
        disable=not progress_enabled(enabled),
    )
