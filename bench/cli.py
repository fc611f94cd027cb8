"""The ``bench`` command line: parses arguments and calls the library. Nothing else lives here.

Each subcommand is a module in :mod:`bench.commands` exposing ``register(subparsers)`` (adds its
parser and sets ``func``) and keeping heavy imports inside the function it calls, so that
``bench --help`` stays fast. A user mistake surfaces as a one-line ``bench: error: ...`` on stderr
and exit code 2, never a traceback; every other failure goes through the same one-line path
(:mod:`bench.cli_errors`, exit codes in docs/decisions/errors.md).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from bench import cli_errors
from bench.inputs import check_not_empty

COMMANDS = (
    "zoo",
    "train",
    "recipes",
    "run",
    "results",
    "search",
    "search-seeds",
    "report",
    "submit",
)


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line: ``bench: error: ...`` (exit 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"bench: error: {self.prog}: {message} (see {self.prog} --help)\n")


DEBUG_HELP = "show the full traceback of a failure (also RACL_BENCH_DEBUG=1)"


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="bench",
        description="racl-bench: train, attack, evaluate and report NAS models' robustness.",
    )
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"bench.commands.{name.replace('-', '_')}").register(sub)
    for command in sub.choices.values():  # `bench run ... --debug` works as well
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                             help=DEBUG_HELP)  # fmt: skip
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; any failure is one line on stderr and an exit code, never a traceback."""
    if sys.stdout is None or sys.stderr is None:  # started with a closed descriptor (>&-)
        if sys.stderr is not None:
            print("bench: error: standard output is closed; nothing to write to", file=sys.stderr)
        return cli_errors.EXIT_BAD_INPUT
    args = build_parser().parse_args(argv)
    args.argv = list(argv) if argv is not None else sys.argv[1:]  # `bench run --workers` reuses it
    debug = cli_errors.debug_wanted(bool(getattr(args, "debug", False)))
    try:
        check_not_empty(args)  # "" is no value: it would read as "not given"
        code = int(args.func(args) or 0)
        cli_errors.flush_stdout()  # a closed pipe or full disk surfaces here, not at exit
        return code
    except BrokenPipeError:
        return cli_errors.broken_pipe()
    except KeyboardInterrupt:
        print("bench: interrupted; finished results are in the store", file=sys.stderr)
        return cli_errors.EXIT_INTERRUPTED
    except Exception as err:  # noqa: BLE001 - the one error path: one line, an exit code
        return cli_errors.report(err, store=getattr(args, "store", None), debug=debug)


if __name__ == "__main__":
    sys.exit(main())
