"""The ``bench`` command line: parses arguments and calls the library. Nothing else lives here.

Each subcommand is a module in :mod:`bench.commands` exposing ``register(subparsers)`` (adds its
parser and sets ``func``) and keeping heavy imports inside the function it calls, so that
``bench --help`` stays fast. A user mistake surfaces as a one-line ``bench: error: ...`` on stderr
and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from core.errors import UserError

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench",
        description="racl-bench: train, attack, evaluate and report NAS models' robustness.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"bench.commands.{name.replace('-', '_')}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UserError as err:  # GenotypeError, ModelError, SearchError derive from it
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if isinstance(err, KeyError) and message.startswith(("'", '"')):
            message = message[1:-1]
        print(f"bench: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bench: interrupted; finished results are in the store", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
