"""`ednas run PIPELINE.yml`: the whole chain, from images to a report of re-measured INT8 models,
as resumable stages in one run folder."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    from ednas.pipeline.stages import STAGE_NAMES

    p = sub.add_parser(
        "run", help="the whole pipeline: data, latency table, supernet, search, INT8, re-evaluation, report",
        description="ednas run PIPELINE.yml [--out RUN_DIR] [--from STAGE]. Stages: " + " -> ".join(STAGE_NAMES)
                    + ". A re-run skips stages whose inputs are unchanged; a killed run continues where it "
                      "stopped. The report ends in RUN_DIR/report/report.html.")
    p.add_argument("pipeline", metavar="PIPELINE.yml", help="pipeline file, e.g. recipes/pipeline_synthetic.yml")
    p.add_argument("--out", metavar="RUN_DIR", help="run folder (default: runs/<pipeline file name>)")
    p.add_argument("--from", dest="start", metavar="STAGE", help=f"redo this stage and all after it ({', '.join(STAGE_NAMES)})")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a pipeline value, e.g. --set data.images=/data/coco/images --set search.trials=60")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import shutil
    from pathlib import Path

    from ednas.config import to_dict
    from ednas.errors import InputError
    from ednas.io import check_output, write_yaml
    from ednas.pipeline.config import check_paths, load_pipeline
    from ednas.pipeline.runner import Context, Runner
    from ednas.pipeline.stages import STAGE_NAMES, STAGES

    if args.start is not None and args.start not in STAGE_NAMES:
        raise InputError(f"--from {args.start!r}: not a stage; stages are {', '.join(STAGE_NAMES)}")
    config = load_pipeline(args.pipeline, args.overrides)
    check_paths(config)
    run_dir = Path(args.out or Path("runs") / Path(args.pipeline).stem)
    check_output(run_dir, folder=True)
    made = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        write_yaml(run_dir / "pipeline.yml", to_dict(config))  # what this run used, paths resolved
    except BaseException:
        if made:  # nothing ran: leave no empty run folder behind
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    ctx = Context(config, run_dir, report=lambda line: print(line, flush=True))
    Runner(STAGES, ctx).run(args.start)
    print(f"report: {run_dir / 'report' / 'report.html'}")
    return 0
