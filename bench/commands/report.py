"""``bench report``: turn a results store into the paper's tables, figures and index pages."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report",
        help="write tables (md/tex/csv), figures (png/pdf) and index pages from a results store",
        description="Regenerate the RACL paper's Tables 1-5 and Figure 3 from a results store, "
        "next to the paper's numbers, with an agreement checklist and index.md/index.html.",
    )
    parser.add_argument("--store", required=True, help="results store (SQLite file)")
    parser.add_argument("--out", required=True, help="output folder (created if missing)")
    parser.add_argument("--dataset", help="dataset to report (default: the store's most common)")
    parser.add_argument("--preset", help="preset to report (default: the store's most common)")
    parser.add_argument(
        "--map",
        action="append",
        metavar="NAME=PAPER_ROW",
        help="compare store model NAME with the paper's row (e.g. my_search=racl); repeatable",
    )
    parser.add_argument(
        "--matched-store",
        metavar="STORE",
        help="a `bench run --match` store of the same dataset, preset and budget: the paper's "
        "claims judged on it beside this store's (claims at matched capacity)",
    )
    parser.add_argument("--no-figures", action="store_true", help="skip the figures (faster)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from bench.inputs import check_output_dir
    from bench.report import ReportOptions, build_report
    from bench.report.paper import parse_model_map

    inputs = {"--store": args.store}
    if args.matched_store:
        inputs["--matched-store"] = args.matched_store
    check_output_dir(args.out, inputs=inputs)

    options = ReportOptions(
        dataset=args.dataset,
        preset=args.preset,
        model_map=parse_model_map(args.map),
        figures=not args.no_figures,
        matched_store=args.matched_store,
    )
    report = build_report(args.store, args.out, options)
    skipped = [t.key for t in report.tables if t.skipped]
    made = len(report.tables) - len(skipped)
    print(f"wrote {args.out}/index.html: {made} tables, {len(report.figures)} figures")
    for table in report.tables:
        if table.skipped:
            print(f"  skipped {table.key}: {table.skipped}")
    for key, why in report.skipped_figures:
        print(f"  skipped {key}: {why}")
    return 0
