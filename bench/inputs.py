"""Checks of what a user types, run before any work: seeds, devices, names, output paths.

Each check raises :class:`core.errors.UserError` (one line, exit 2) naming the fault; the rules
and their reasons are in docs/decisions/errors.md.
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

from core.errors import UserError

# numpy's legacy seeding (np.random.seed, used by the training loop) takes [0, 2**32 - 1], the
# narrowest range of the generators a seed reaches; torch.manual_seed takes all of it
SEED_MAX = 2**32 - 1


def check_seed(value: object, what: str = "--seed") -> int:
    """``value`` as a seed: an integer in [0, 2**32 - 1]."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise UserError(f"{what} must be an integer in [0, {SEED_MAX}], got {value!r}")
    if not 0 <= value <= SEED_MAX:
        raise UserError(f"{what} must lie in [0, {SEED_MAX}] (2**32 - 1), got {value}")
    return value


def seed_arg(text: str) -> int:
    """argparse ``type=`` for a seed option (its error is argparse's one line, exit 2)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if not 0 <= value <= SEED_MAX:
        raise argparse.ArgumentTypeError(f"must lie in [0, {SEED_MAX}] (2**32 - 1), got {value}")
    return value


def minutes_arg(text: str) -> float:
    """argparse ``type=`` for a save interval in minutes: a finite number >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value < float("inf"):  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def check_device(device: str) -> None:
    """``cuda`` (or ``cuda:N``) on a machine without CUDA, or an unknown device: UserError."""
    from core.distributed import resolve_device

    resolve_device(device)


def check_output_dir(path: str | Path, what: str = "--out") -> Path:
    """A folder we may create or write into: not an existing file, under a writable folder."""
    target = Path(path)
    if target.exists() and not target.is_dir():
        raise UserError(f"{what} {target} is an existing file, not a folder")
    _writable_ancestor(target if target.exists() else target.parent, what, target)
    return target


def check_output_file(path: str | Path, what: str = "--out") -> Path:
    """A file we may write: not a folder; an existing file writable, else its folder writable."""
    target = Path(path)
    if target.is_dir():
        raise UserError(f"{what} {target} is a folder; give a file path")
    if target.exists():
        if not os.access(target, os.W_OK):
            raise UserError(f"{what} {target} is not writable")
        return target
    _writable_ancestor(target.parent, what, target)
    return target


def _writable_ancestor(folder: Path, what: str, target: Path) -> None:
    """The nearest existing folder at or above ``folder`` must be a writable folder."""
    probe = folder if str(folder) else Path(".")
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise UserError(f"{what} {target}: {probe} is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UserError(f"{what} {target}: cannot write in {probe} (read-only or no permission)")


# A searched genotype's name becomes a file name (<name>.json) and a run folder
# (runs/search/<name>): letters, digits, _ . - (the genotype files' rule), starting with a
# letter or digit (no hidden file, no "." or ".."), at most 64 characters
NAME_RULE = "letters, digits, _ . - only, starting with a letter or digit, at most 64 characters"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


def check_name(name: str, what: str = "--name") -> str:
    """A genotype name under :data:`NAME_RULE`, else UserError."""
    if not _NAME.match(name):
        raise UserError(f"{what} {name!r} is not a valid genotype name ({NAME_RULE})")
    return name
