"""`ednas report`: the Pareto report of a search run folder (HTML page, PNG, CSV, markdown)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report", help="Pareto report of a search run: report.html, report.png, pareto.csv, summary.md",
        description="ednas report RUN_DIR [--out DIR]. Reads the folder `ednas search` (and `ednas run`) "
                    "wrote and draws accuracy against latency: every trial, the verified Pareto front, "
                    "baselines, reference latencies and the pruned / INT8 variants. The page is one "
                    "offline HTML file.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="search run folder (search.json, trials.csv, pareto.csv, ...)")
    p.add_argument("--out", metavar="DIR", help="where to write the report (default: RUN_DIR/report)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ednas.report.run_report import build_report

    view, paths = build_report(args.run_dir, args.out)
    print(view.summary)
    print(f"{len(view.run.trials)} trials.csv rows, {len(view.front)} Pareto points, {len(view.baselines)} "
          f"baselines, {len(view.variants)} variants")
    for name, path in paths.items():
        print(f"  {path}")
    return 0
