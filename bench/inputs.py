"""Checks of what a user types, run before any work: seeds, devices, names, output paths.

Each check raises :class:`core.errors.UserError` (one line, exit 2) naming the fault; the rules
and their reasons are in docs/decisions/errors.md.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Callable, Mapping
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


# Upper bounds of counts typed on the command line: far above any real use, low enough that a
# typo (an extra digit run, 10**20) is one line instead of an overflow deep inside torch.
MAX_THREADS = 1024
MAX_EPOCHS = 100_000
MAX_BATCH = 1 << 20
MAX_WIDTH = 4096
MAX_IMAGES = 100_000_000
MAX_STEPS = 1_000_000


def count_arg(low: int, high: int) -> Callable[[str], int]:
    """argparse ``type=`` for a whole number in ``[low, high]`` (0 is never "the default")."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text[:40]!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must lie in [{low}, {high}], got {text[:40]}")
        return value

    return parse


def finite_arg(low: float, high: float) -> Callable[[str], float]:
    """argparse ``type=`` for a number strictly inside ``(low, high)`` (never nan or inf)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text[:40]!r}") from None
        if not low < value < high:
            raise argparse.ArgumentTypeError(
                f"must be a finite number in ({low:g}, {high:g}), got {text[:40]}"
            )
        return value

    return parse


positive_float_arg = finite_arg(0.0, 1e6)  # a learning rate, a penalty: finite and > 0


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


Inputs = Mapping[str, "str | Path | None"]  # what a command reads: {"--store": path, ...}


def _nonempty(path: str | Path, what: str) -> Path:
    if not str(path).strip():
        raise UserError(f"{what} is empty: give a path")
    return Path(path)


def _same_or_inside(a: Path, b: Path) -> bool:
    """``a`` is ``b`` or lies inside it (resolved paths; either may not exist yet)."""
    ra, rb = a.resolve(), b.resolve()
    return ra == rb or rb in ra.parents


def _not_an_input(target: Path, what: str, inputs: Inputs, folder: bool) -> None:
    """An output may be no input, lie inside no input folder, and (a folder) hold no input."""
    for name, given in inputs.items():
        if given is None or not str(given).strip():
            continue
        source = Path(given)
        clash = _same_or_inside(target, source) or (folder and _same_or_inside(source, target))
        if clash:
            raise UserError(
                f"{what} {target} would overwrite or hold {name} {source}: outputs go elsewhere"
            )


def check_not_empty(args: argparse.Namespace) -> None:
    """A string option given as "" is refused: it would read as "not given" (a default)."""
    for name, value in vars(args).items():
        if isinstance(value, str) and not value.strip() and name not in EMPTY_ALLOWED:
            flag = "--" + name.replace("_", "-")
            raise UserError(f"{flag} is empty: give a value or leave the option out")


EMPTY_ALLOWED = frozenset({"name", "authors", "link", "venue"})  # bench submit's metadata


def check_output_dir(path: str | Path, what: str = "--out", inputs: Inputs | None = None) -> Path:
    """A folder we may create or write into: not an existing file, under a writable folder, not
    empty, and neither one of ``inputs`` nor a folder holding one."""
    target = _nonempty(path, what)
    if target.exists() and not target.is_dir():
        raise UserError(f"{what} {target} is an existing file, not a folder")
    _not_an_input(target, what, inputs or {}, folder=True)
    _writable_ancestor(target if target.exists() else target.parent, what, target)
    return target


def check_output_file(path: str | Path, what: str = "--out", inputs: Inputs | None = None) -> Path:
    """A file we may write: not a folder, not empty, none of ``inputs`` nor inside an input
    folder; an existing file writable, else its folder writable."""
    target = _nonempty(path, what)
    _not_an_input(target, what, inputs or {}, folder=False)
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
