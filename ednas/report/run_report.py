"""`build_report`: a run folder -> report.html, report.png, pareto.csv, summary.md, written as a
set. Everything is rendered in memory first, then staged as temporary files beside their
targets and moved into place (four renames in one folder) only when all of them were written,
so a failure (bad input, a full disk, a folder in the way) leaves the previous report
untouched and no temporary file behind."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from ednas.errors import InputError
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
    """Write every file of `files` into `out`, all or none (see the module docstring)."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"--out {out}: cannot create the folder ({exc.strerror})") from None
    blocked = [name for name in files if (out / name).is_dir()]
    if blocked:  # checked before anything moves: a replace that would fail must not leave half a set
        raise InputError(f"--out {out}: {blocked[0]} is a folder; remove it or choose another --out")
    staged: list[tuple[str, Path]] = []
    try:
        for name, payload in files.items():
            fd, tmp = tempfile.mkstemp(dir=out, prefix=f".{name}.", suffix=".tmp")
            staged.append((tmp, out / name))
            with os.fdopen(fd, "wb") as f:
                f.write(payload)
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a report is meant to be shared
        for tmp, target in staged:
            os.replace(tmp, target)
    except OSError as exc:
        raise InputError(f"--out {out}: cannot write the report ({exc.strerror}); is the folder writable?") from None
    finally:
        for tmp, _ in staged:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return {name: out / name for name in files}


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
