"""`build_report`: a run folder -> report.html, report.png, pareto.csv, summary.md, written as a
set. Everything is rendered in memory first, then written as one `ednas.io.output_set`, so a
failure (bad input, a full disk, a folder in the way) or a kill leaves the previous report
untouched (or the new one complete) and no temporary file behind."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from ednas.errors import InputError
from ednas.io import check_output, output_set
from ednas.report.html_report import render_html
from ednas.report.pareto import ParetoView, build_view
from ednas.report.png_report import render_png
from ednas.report.run_folder import load_run
from ednas.report.summary import render_markdown, render_pareto_csv

log = logging.getLogger(__name__)

REPORT_FILES = ("report.html", "report.png", "pareto.csv", "summary.md")


def build_report(run_dir: str | Path, out_dir: str | Path | None = None) -> tuple[ParetoView, dict[str, Path]]:
    """Render the report of `run_dir` into `out_dir` (default RUN_DIR/report)."""
    run = load_run(run_dir)
    out = Path(out_dir) if out_dir is not None else run.path / "report"
    if out.resolve() == run.path.resolve():
        raise InputError(f"--out {out}: is the run folder itself, whose pareto.csv it would overwrite "
                         "(choose another folder, e.g. RUN_DIR/report)")
    check_output(out, folder=True)  # before rendering
    view = build_view(run)
    files = {
        "report.html": render_html(view).encode("utf-8"),
        "report.png": render_png(view),
        "pareto.csv": render_pareto_csv(view).encode("utf-8"),
        "summary.md": render_markdown(view).encode("utf-8"),
    }
    paths = write_set(out, files)
    log.debug("report of %s written to %s", run.path, out)
    return view, paths


def write_set(out: Path, files: dict[str, bytes]) -> dict[str, Path]:
    """Write every file of `files` into `out` as one set (`ednas.io.output_set`): the old set
    or the new one, never a mix, even after a kill; a folder made for it is removed again when
    the set cannot be written."""
    out = check_output(out, folder=True)
    made = not out.exists()
    paths = {name: out / name for name in files}
    try:
        with output_set(*paths.values()) as tmps:
            for tmp, payload in zip(tmps, files.values()):
                tmp.write_bytes(payload)
    except BaseException:
        if made:
            shutil.rmtree(out, ignore_errors=True)
        raise
    return paths
