"""``bench recipes``: the training recipes (``bench.training.recipes``) and docs/PROTOCOL.md."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "recipes",
        help="list the training recipes, show one, or print docs/PROTOCOL.md",
        description="Without NAME: one line per recipe. With NAME: its settings and sources. "
        "--markdown: the generated docs/PROTOCOL.md.",
    )
    p.add_argument("name", nargs="?", help="a recipe name, e.g. cell-natural-cifar10")
    p.add_argument("--markdown", action="store_true", help="print docs/PROTOCOL.md")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bench.training.recipes import RECIPES, describe, get_recipe

    if args.markdown:
        from bench.plan.protocol_doc import render

        print(render(), end="")
    elif args.name:
        print("\n".join(describe(get_recipe(args.name))))
    else:
        for r in RECIPES.values():
            epochs = r.settings["epochs"].value
            print(f"{r.name:28s} {r.family:5s} {r.training.value:7s} {r.dataset.value:14s} "
                  f"{epochs} epochs")  # fmt: skip
    return 0
