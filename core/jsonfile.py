"""Reading a JSON file that a user, another program or a full disk may have written: every fault
(unreadable, not UTF-8, not JSON, nested too deep, an integer of thousands of digits, too large)
becomes one ``UserError`` naming the file, never a traceback."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from core.errors import UserError

MAX_BYTES = 64 << 20  # no file this suite reads as JSON comes near it


def read_json(
    path: str | os.PathLike[str], what: str = "file", error: type[UserError] = UserError
) -> Any:
    """The parsed content of ``path``; raises ``error`` (a UserError) naming ``what`` and the
    file on any fault."""
    path = Path(path)
    where = f"{what} {path}" if what else str(path)
    try:
        if path.stat().st_size > MAX_BYTES:
            raise error(f"{where}: larger than {MAX_BYTES >> 20} MiB; not read")
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise error(f"{where}: not JSON (cannot read it as UTF-8 text)") from None
    except OSError as err:
        raise error(f"{where}: cannot read ({err.strerror or err})") from None
    if not text.strip():
        raise error(f"{where}: empty (a write cut short?)")
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise error(f"{where}: not valid JSON ({err})") from None
    except RecursionError:
        raise error(f"{where}: nested too deeply to be ours") from None
    except (ValueError, MemoryError) as err:  # e.g. an integer of more than 4300 digits
        message = str(err).splitlines()[0][:120] if str(err) else type(err).__name__
        raise error(f"{where}: unreadable JSON ({message})") from None
