"""Text outputs of the report: summary.md (a markdown table to paste into a PR) and pareto.csv
(the verified front and baselines, one row each, with their deployed variants joined)."""

from __future__ import annotations

import csv
import io
import json
from html import escape

from ednas.report.pareto import SCALE_RULE, ParetoView
from ednas.report.run_folder import VARIANTS


def render_markdown(view: ParetoView) -> str:
    """summary.md: the summary sentence and one table row per model, best first under budget."""
    s = view.run.search
    m = _md(view.metric)
    lines = [
        f"### ednas report: {_md(s.get('study') or view.run.path.name)}",
        "",
        _md(view.summary),
        "",
        f"Space `{_code(s.get('space', '?'))}`, {_md(s.get('precision', '?'))}, {_md(s.get('threads', '?'))} threads; "
        f"{sum(t.kind == 'trial' for t in view.run.trials)} trials. Latency measured with ONNX Runtime "
        "(predicted by the latency table in brackets; raw median of its timing session after the slash).",
        "",
        _md(SCALE_RULE),
        "",
        f"| model | kind | {m} % | latency ms | under budget | genes |",
        "|---|---|---:|---:|:---:|---|",
    ]
    for r in view.rows:
        name = f"**{_md(r.name)}**" if r is view.best else _md(r.name)
        kind = f"{_md(r.kind)} of {_md(r.parent)}" if r.parent else _md(r.kind)
        acc = f"{r.acc:.1f}" + (f" ({r.acc_low:.1f}–{r.acc_high:.1f})" if r.acc_low is not None
                                 and r.acc_high is not None else "")
        ms = f"{r.scaled_ms:.2f}" if r.scaled_ms is not None else "not measured"
        ms += f" ({r.predicted_ms:.2f})" if r.predicted_ms is not None else ""
        ms += f" / {r.measured_ms:.2f}" if r.measured_ms is not None else ""
        lines.append(f"| {name} | {kind} | {acc} | {ms} | {'yes' if r.under_budget else 'no'} | "
                     f"`{_code(r.genes)}` |")
    return "\n".join(lines) + "\n"


def render_pareto_csv(view: ParetoView) -> str:
    """pareto.csv: the run's pareto.csv columns plus `<variant>_map/_map_low/_map_high/_ms` of
    each deployed variant of the row (empty when it has none), and `withheld`: why a variant of
    the row was not shipped (empty when all were)."""
    front = {p.name: p for p in view.run.front}
    extra = [f"{v}_{c}" for v in VARIANTS
             for c in ("name", "map", "map_low", "map_high", "measured_ms", "table_scale_ms")]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["name", "kind", "arch_hash", "genes", "predicted_ms", "measured_ms",
                     "measured_over_predicted", "table_scale_ms", "map", "on_front", "under_budget", *extra,
                     "withheld"])
    for r in (r for r in view.rows if not r.parent):
        p = front[r.name]
        row = [p.name, p.kind, p.arch_hash, json.dumps(p.genes), p.predicted_ms, _blank(p.measured_ms),
               _blank(r.ratio), _blank(r.scaled_ms), p.map,
               str(r.on_front).lower(), str(r.under_budget).lower()]
        for kind in VARIANTS:
            v = next((v for v in view.run.variants if v.parent == p.name and v.variant == kind), None)
            placed = next((x.scaled_ms for x in view.variants if v is not None and x.name == v.name), None)
            row += ([v.name, v.map, _blank(v.map_low), _blank(v.map_high), v.measured_ms, _blank(placed)]
                    if v else [""] * 6)
        row.append("; ".join(f"{v.name}: {v.withheld}" for v in view.run.variants if v.parent == p.name and v.withheld))
        writer.writerow(row)
    return buf.getvalue()


def _blank(value: float | None) -> float | str:
    return "" if value is None else value


def _md(value: object) -> str:
    """Text safe in a markdown table cell: no HTML, no pipes, no line breaks, no emphasis."""
    text = escape(" ".join(str(value).split()), quote=False)
    for ch in "\\`*_[]|":
        text = text.replace(ch, "\\" + ch)
    return text


def _code(value: object) -> str:
    """Text inside `code`: backticks and pipes cannot be escaped there, so they are replaced."""
    return " ".join(str(value).split()).replace("`", "'").replace("|", "¦")

