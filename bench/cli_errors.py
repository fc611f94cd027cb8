"""The CLI's one error path: every failure becomes one ``bench: error: ...`` line and an exit code.

Exit codes: 0 done, 1 a failure while computing (a full disk, an SQLite I/O error, a bug),
2 bad input (a bad argument, file or path), 130 interrupted, 141 a closed output pipe (128 +
SIGPIPE, what a shell reports for other tools). ``--debug`` or ``RACL_BENCH_DEBUG=1`` print the
traceback as well. The rules and their reasons: docs/decisions/errors.md.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import sys
import traceback

from core.errors import UserError, first_line

DEBUG_ENV = "RACL_BENCH_DEBUG"
EXIT_FAILURE, EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_BROKEN_PIPE = 1, 2, 130, 141

# errno values that say the path the user named cannot be used (exit 2); any other OSError is
# the machine failing during the work (a full disk, an I/O error: exit 1)
BAD_PATH_ERRNOS = frozenset(
    getattr(errno, name)
    for name in (
        "EACCES",
        "EPERM",
        "EROFS",
        "EISDIR",
        "ENOTDIR",
        "ENOENT",
        "EEXIST",
        "ENAMETOOLONG",
        "ELOOP",
        "EINVAL",
        "ENXIO",
        "ENODEV",
    )  # fmt: skip
    if hasattr(errno, name)
)
# SQLite messages that mean the file given is not a (sound) database: bad input (exit 2)
BAD_DATABASE = ("file is not a database", "database disk image is malformed")


def debug_wanted(flag: bool) -> bool:
    """Whether tracebacks are shown: ``--debug`` or ``RACL_BENCH_DEBUG`` set to a true value."""
    return flag or os.environ.get(DEBUG_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def describe(err: BaseException, store: str | None = None) -> tuple[str, int]:
    """The one-line message and the exit code for an exception that reached the CLI."""
    if isinstance(err, UserError):  # GenotypeError, ModelError, SearchError derive from it
        return first_line(err), EXIT_BAD_INPUT
    if isinstance(err, OSError):
        return _os_error(err)
    if isinstance(err, sqlite3.Error):
        where = f"store {store}: " if store else "store: "
        bad = isinstance(err, sqlite3.DatabaseError) and first_line(err) in BAD_DATABASE
        return f"{where}{first_line(err)}", EXIT_BAD_INPUT if bad else EXIT_FAILURE
    hint = "this is a bug; rerun with --debug (or RACL_BENCH_DEBUG=1) for the traceback"
    return f"internal error: {type(err).__name__}: {first_line(err)} ({hint})", EXIT_FAILURE


def _os_error(err: OSError) -> tuple[str, int]:
    reason = err.strerror or first_line(err)
    path = err.filename if err.filename is not None else None
    text = f"{path}: {reason}" if path is not None else f"I/O error: {reason}"
    if err.filename2 is not None:
        text += f" (-> {err.filename2})"
    return text, EXIT_BAD_INPUT if err.errno in BAD_PATH_ERRNOS else EXIT_FAILURE


def report(err: BaseException, *, store: str | None = None, debug: bool = False) -> int:
    """Print ``err`` as one line on stderr (the traceback first under ``debug``); its exit code."""
    if debug:
        traceback.print_exception(err)
    if isinstance(err, OSError) and err.filename is None:  # it may be stdout's own failure
        try:
            sys.stdout.flush()
        except OSError:
            drop_stdout()
            err = OSError(err.errno, err.strerror, "<stdout>")
    message, code = describe(err, store)
    print(f"bench: error: {message}", file=sys.stderr)
    return code


def flush_stdout() -> None:
    """Flush stdout; a full or failing stdout becomes an OSError naming ``<stdout>``."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        raise
    except OSError as err:
        drop_stdout()
        raise OSError(err.errno, err.strerror, "<stdout>") from None


def drop_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's exit flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # stdout without a descriptor (tests)
        pass


def broken_pipe() -> int:
    """Stdout's reader went away (``bench ... | head``): exit quietly, as other tools do."""
    drop_stdout()
    return EXIT_BROKEN_PIPE
