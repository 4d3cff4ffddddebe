"""The interactive report page: one self-contained HTML file (plotly.js inlined, no network).

Safety: every string from the run folder is escaped for where it lands. Text we write into the
page goes through `html.escape`; text plotly draws (hover, labels, ticks) is pseudo-HTML, so it
is escaped too; all data reaches the page as JSON inside a non-executed
`<script type="application/json">` with `<`, `>` and `&` written as \\u escapes, so no value
can close the tag. A Content-Security-Policy allows only the page's own inline scripts (by
hash) and no network at all.
"""

from __future__ import annotations

import base64
import hashlib
import json
import statistics
from html import escape
from typing import Any

from ednas.report.pareto import (REF_LABEL_Y, SCALE_RULE, Hover, ParetoView, Row, front_line, labels_below,
                                 latency_range)

# colours (colour-blind safe where it matters: front vs INT8 vs pruned)
C_TRIAL = "#94a3b8"
C_FRONT = "#2563eb"
C_VARIANT = {"fp32": "#7c3aed", "pruned": "#059669", "int8": "#ea580c", "withheld": "#9ca3af"}
C_BASE = "#111827"
C_BUDGET = "#dc2626"
C_REF = "#6b7280"
SYMBOL = {"fp32": "square", "pruned": "triangle-up", "int8": "star", "withheld": "star-open"}
LABEL = {"fp32": "FP32 re-evaluated", "pruned": "pruned", "int8": "INT8",
         "withheld": "INT8 not shipped (no faster than FP32)"}


def render_html(view: ParetoView) -> str:
    """The report page for `view`."""
    search = view.run.search
    title = f"Pareto report: {search.get('study') or view.run.path.name}"
    data = {
        "figure": figure_dict(view),
        "config": {"displaylogo": False, "responsive": True, "modeBarButtonsToRemove": ["lasso2d", "select2d"]},
        "breakdown": _breakdowns(view),
        "parentOf": {r.name: r.parent for r in view.variants},
        "initial": _initial_breakdown(view),
    }
    plotly_js = _plotly_js()
    own_js = _OWN_JS
    csp = ("default-src 'none'; "
           f"script-src {_sha(plotly_js)} {_sha(own_js)}; "
           "style-src 'unsafe-inline'; img-src data: blob:; font-src data:; connect-src 'none'; "
           "base-uri 'none'; form-action 'none'")
    return _PAGE.format(
        csp=escape(csp),
        title=escape(title),
        subtitle=_subtitle(view),
        summary=_summary_html(view),
        stats=_stats(view),
        legend_note=escape(_legend_note(view)),
        table=_table(view),
        options=_options(view, data["initial"]),
        style=_STYLE,
        plotly_js=plotly_js,
        data=safe_json(data),
        own_js=own_js,
        footer=escape(f"ednas report of {view.run.path.resolve()}"),
    )


def safe_json(obj: Any) -> str:
    """JSON that can sit inside a <script> element: no `<`, `>` or `&` left to close it or
    open a comment, and the two line separators JavaScript once rejected escaped too."""
    text = json.dumps(obj, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(ch, esc)
    return text


def figure_dict(view: ParetoView) -> dict[str, Any]:
    """The main plotly figure (accuracy % against latency ms) as plain data. Every trace carries
    `meta.source`, the file its points come from, so a test can count them against the CSV."""
    y_range = _y_range(view)
    traces = _trial_traces(view, y_range[0])
    traces += _front_traces(view)
    variant_traces, arrows = _variant_traces(view)
    x_range = latency_range(view)
    traces += variant_traces + _baseline_traces(view, x_range, y_range)
    shapes, labels = _guides(view, x_range[1])
    layout = {
        "height": 620,
        "margin": {"l": 70, "r": 20, "t": 40, "b": 60},
        "font": {"family": "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", "size": 13, "color": "#1f2937"},
        "xaxis": {"title": {"text": "latency (ms on the latency table's scale, lower is better)"}, "range": x_range, "zeroline": False,
                  "ticksuffix": " ms", "showline": True, "linecolor": "#9ca3af", "gridcolor": "#eef0f3"},
        "yaxis": {"title": {"text": f"{_esc(view.metric)} (%, higher is better)"}, "range": y_range,
                  "zeroline": False, "showline": True, "linecolor": "#9ca3af", "gridcolor": "#eef0f3"},
        "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.01, "x": 0, "font": {"size": 12}},
        "hovermode": "closest",
        "hoverlabel": {"bgcolor": "white", "bordercolor": "#d1d5db", "font": {"size": 12, "color": "#111827"},
                       "align": "left"},
        "shapes": shapes,
        "annotations": arrows + labels,
    }
    return {"data": traces, "layout": layout}


def _y_range(view: ParetoView) -> list[float]:
    """Accuracy range with room below for the rug of unevaluated trials."""
    acc = [r.acc for r in view.rows] + [100 * t.map for t in view.evaluated_trials + view.extra_baselines]
    lo, hi = min(acc), max(acc)
    pad = max(1.0, 0.08 * (hi - lo))
    return [lo - 1.6 * pad, hi + 1.2 * pad]


def _trial_traces(view: ParetoView, y_floor: float) -> list[dict[str, Any]]:
    """Every trial, faint, at its predicted latency; unevaluated ones as a rug along the bottom."""
    trials, rug = view.evaluated_trials, view.unevaluated_trials
    traces = [_scatter(
        "trials (predicted)", [t.predicted_ms for t in trials], [100 * t.map for t in trials],
        [_hover_text(view.trial_hover(t), view.metric) for t in trials], [t.name for t in trials],
        {"color": C_TRIAL, "size": 6, "opacity": 0.45, "line": {"width": 0}}, "trials.csv:trial")]
    if rug:
        traces.append(_scatter(
            "not evaluated", [t.predicted_ms for t in rug], [y_floor + 0.25] * len(rug),
            [_hover_text(view.trial_hover(t), view.metric, note=f"not evaluated ({t.state.lower()})") for t in rug],
            [t.name for t in rug], {"color": C_TRIAL, "size": 9, "symbol": "line-ns-open", "opacity": 0.7},
            "trials.csv:unevaluated"))
    return traces


def _front_traces(view: ParetoView) -> list[dict[str, Any]]:
    """Measured front points with a dotted segment to their predicted latency; the front line."""
    measured = [r for r in view.rows if not r.parent and r.measured_ms is not None]  # predicted known too
    seg_x: list[float | None] = []
    seg_y: list[float | None] = []
    for r in measured:
        seg_x += [r.predicted_ms, r.ms, None]
        seg_y += [r.acc, r.acc, None]
    front = view.front
    line_x, line_y = _staircase(front_line(front))
    return [
        {"type": "scatter", "mode": "lines", "name": "predicted → measured", "x": seg_x, "y": seg_y,
         "line": {"color": C_REF, "width": 1, "dash": "dot"}, "hoverinfo": "skip", "showlegend": False,
         "legendgroup": "pred", "meta": {"source": "pareto.csv:segments"}},
        _scatter("predicted latency", [r.predicted_ms for r in measured], [r.acc for r in measured],
                 [_hover_text(view.hover(r), view.metric, note="at its predicted latency") for r in measured],
                 [r.name for r in measured],
                 {"color": "rgba(0,0,0,0)", "size": 7, "line": {"color": C_REF, "width": 1}},
                 "pareto.csv:predicted", legendgroup="pred"),
        {"type": "scatter", "mode": "lines", "name": "Pareto front (FP32)", "x": line_x, "y": line_y,
         "line": {"color": C_FRONT, "width": 2.5, "shape": "hv"}, "hoverinfo": "skip", "legendgroup": "front",
         "showlegend": False, "meta": {"source": "pareto.csv:front-line"}},
        _scatter("Pareto front (FP32)", [r.ms for r in front], [r.acc for r in front],
                 [_hover_text(view.hover(r), view.metric) for r in front], [r.name for r in front],
                 {"color": C_FRONT, "size": 10, "line": {"color": "white", "width": 1.5}}, "pareto.csv:pareto",
                 legendgroup="front"),
    ]


def _variant_traces(view: ParetoView) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(traces, arrows): deployed variants by kind with their 95 % intervals, the INT8 front line,
    and an arrow from each FP32 parent to its variant."""
    traces: list[dict[str, Any]] = []
    arrows: list[dict[str, Any]] = []
    for kind, rows in view.variants_by_kind():
        color = C_VARIANT[kind]
        if kind == "int8":  # the deployable front
            line_x, line_y = _staircase(front_line(rows))
            traces.append({"type": "scatter", "mode": "lines", "name": "INT8 front", "x": line_x, "y": line_y,
                           "line": {"color": color, "width": 1.5, "shape": "hv", "dash": "dash"},
                           "hoverinfo": "skip", "legendgroup": kind, "showlegend": False,
                           "meta": {"source": "models.csv:int8-line"}})
        trace = _scatter(
            LABEL[kind], [r.ms for r in rows], [r.acc for r in rows],
            [_hover_text(view.hover(r), view.metric) for r in rows], [r.name for r in rows],
            {"color": color, "size": 13 if kind == "int8" else 10, "symbol": SYMBOL[kind],
             "line": {"color": "white", "width": 1}}, f"models.csv:{kind}", legendgroup=kind)
        if any(r.acc_low is not None and r.acc_high is not None for r in rows):
            trace["error_y"] = {"type": "data", "symmetric": False, "color": color, "thickness": 1, "width": 3,
                                "array": [(r.acc_high - r.acc) if r.acc_high is not None else 0 for r in rows],
                                "arrayminus": [(r.acc - r.acc_low) if r.acc_low is not None else 0 for r in rows]}
        traces.append(trace)
        for r in rows:
            parent = view.fp32_of(r)
            if parent is not None:
                arrows.append({"x": r.ms, "y": r.acc, "ax": parent.ms, "ay": parent.acc,
                               "xref": "x", "yref": "y", "axref": "x", "ayref": "y", "text": "",
                               "showarrow": True, "arrowhead": 2, "arrowsize": 1, "arrowwidth": 1.3,
                               "arrowcolor": color, "opacity": 0.8, "standoff": 5, "startstandoff": 5})
    return traces, arrows


def _baseline_traces(view: ParetoView, x_range: list[float], y_range: list[float]) -> list[dict[str, Any]]:
    """Labelled baselines: measured (pareto.csv), else at their predicted latency (trials.csv);
    a label that would overlap another goes below its point."""
    bases, extra = view.baselines, view.extra_baselines
    points = [(r.ms, r.acc) for r in bases] + [(t.predicted_ms, 100 * t.map) for t in extra]
    sides = ["bottom center" if b else "top center"
             for b in labels_below(points, x_range[1] - x_range[0], y_range[1] - y_range[0])]
    traces = [_scatter(
        "baselines", [r.ms for r in bases], [r.acc for r in bases],
        [_hover_text(view.hover(r), view.metric) for r in bases], [r.name for r in bases],
        {"color": C_BASE, "size": 11, "symbol": "diamond", "line": {"color": "white", "width": 1}},
        "pareto.csv:baseline", mode="markers+text", text=[_esc(r.name) for r in bases],
        textposition=sides[:len(bases)])]
    if extra:
        traces.append(_scatter(
            "baselines (predicted ms)", [t.predicted_ms for t in extra], [100 * t.map for t in extra],
            [_hover_text(view.trial_hover(t), view.metric) for t in extra], [t.name for t in extra],
            {"color": C_BASE, "size": 10, "symbol": "diamond-open"}, "trials.csv:baseline",
            mode="markers+text", text=[_esc(t.name) for t in extra], textposition=sides[len(bases):]))
    return traces


def _guides(view: ParetoView, x_max: float) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(shapes, annotations): the budget (line and shaded region beyond it), the reference
    latencies as labelled vertical lines, and a callout on the best point under budget."""
    shapes: list[dict[str, Any]] = []
    labels: list[dict[str, Any]] = []
    if view.budget_ms is not None:
        shapes.append({"type": "rect", "xref": "x", "yref": "paper", "x0": view.budget_ms, "x1": x_max, "y0": 0,
                       "y1": 1, "fillcolor": C_BUDGET, "opacity": 0.05, "line": {"width": 0}, "layer": "below"})
        shapes.append(_vline(view.budget_ms, C_BUDGET, "dash", 2))
        labels.append(_vlabel(view.budget_ms, f"budget {view.budget_ms:.2f} ms", C_BUDGET, 1.0))
    for i, (name, ms) in enumerate(sorted(view.run.reference_ms.items(), key=lambda kv: kv[1])):
        shapes.append(_vline(ms, C_REF, "dashdot", 1.5))
        labels.append(_vlabel(ms, f"{_esc(name)} {ms:.2f} ms", C_REF, REF_LABEL_Y + 0.06 * (i % 3), "bottom"))
    if view.best is not None:
        b = view.best
        labels.append({"x": b.ms, "y": b.acc, "xref": "x", "yref": "y", "ax": -40, "ay": -42,
                       "text": f"<b>best under budget</b><br>{_esc(b.name)}: {b.acc:.1f} {_esc(view.metric)}, "
                               f"{b.ms:.2f} ms",
                       "showarrow": True, "arrowhead": 0, "arrowcolor": C_BASE, "font": {"size": 12},
                       "bgcolor": "rgba(255,255,255,0.9)", "bordercolor": C_BASE, "borderwidth": 1,
                       "borderpad": 4, "align": "left"})
    return shapes, labels


# --- pieces of the figure ----------------------------------------------------------------


def _scatter(name: str, x: list, y: list, hover: list[str], names: list[str], marker: dict[str, Any],
             source: str, mode: str = "markers", legendgroup: str | None = None,
             text: list[str] | None = None, textposition: list[str] | None = None) -> dict[str, Any]:
    trace: dict[str, Any] = {"type": "scatter", "mode": mode, "name": name, "x": x, "y": y, "hovertext": hover,
                             "hoverinfo": "text", "customdata": names, "marker": marker, "meta": {"source": source}}
    if legendgroup:
        trace["legendgroup"] = legendgroup
    if text is not None:
        trace.update(text=text, textposition=textposition or "top center", textfont={"size": 12, "color": C_BASE})
    return trace


def _staircase(rows: list[Row]) -> tuple[list[float], list[float]]:
    return [r.ms for r in rows], [r.acc for r in rows]


def _vline(x: float, color: str, dash: str, width: float) -> dict[str, Any]:
    return {"type": "line", "xref": "x", "yref": "paper", "x0": x, "x1": x, "y0": 0, "y1": 1,
            "line": {"color": color, "width": width, "dash": dash}}


def _vlabel(x: float, text: str, color: str, y: float, yanchor: str = "auto") -> dict[str, Any]:
    return {"x": x, "y": y, "xref": "x", "yref": "paper", "text": text, "showarrow": False, "xanchor": "left",
            "yanchor": yanchor, "xshift": 4, "font": {"color": color, "size": 12},
            "bgcolor": "rgba(255,255,255,0.8)"}


def _hover_text(h: Hover, metric: str, note: str = "") -> str:
    """Plotly hover text (pseudo-HTML: user strings escaped)."""
    kinds = {"pareto": "Pareto point", "baseline": "baseline", "trial": "trial"} | LABEL
    head = f"<b>{_esc(h.name)}</b> · {kinds.get(h.kind, _esc(h.kind))}"
    head += f" of {_esc(h.parent)}" if h.parent else ""
    lines = [head + (f" · {note}" if note else "")]
    lines += [f"genes: {_esc(chunk)}" if i == 0 else f"&nbsp;&nbsp;{_esc(chunk)}"
              for i, chunk in enumerate(_wrap(h.genes or "(none)", 70))]
    lat = []
    if h.scaled_ms is not None:
        lat.append(f"measured {h.scaled_ms:.2f} ms (table scale)")
    if h.predicted_ms is not None:
        lat.append(f"predicted {h.predicted_ms:.2f} ms")
    if h.ratio is not None:
        lat.append(f"measured/predicted {h.ratio:.2f}")
    elif h.measured_ms is None and h.kind in ("pareto", "baseline"):
        lat.append("not verified")
    if h.measured_ms is not None:
        lat.append(f"raw median {h.measured_ms:.2f} ms")
    if h.speedup is not None:
        lat.append(f"{h.speedup:.2f}× the speed of its FP32 parent")
    lines.append(" · ".join(lat))
    m = _esc(metric)
    acc = []
    if h.fp32_acc is not None:
        acc.append(f"FP32 {m} {h.fp32_acc:.1f}")
    if h.parent and h.acc is not None:  # a variant: its own accuracy, change and interval
        change = f" ({h.acc - h.fp32_acc:+.1f})" if h.fp32_acc is not None else ""
        known = h.acc_low is not None and h.acc_high is not None
        interval = f", 95% CI {h.acc_low:.1f}–{h.acc_high:.1f}" if known else ""
        acc.append(f"{LABEL.get(h.kind, _esc(h.kind))} {m} {h.acc:.1f}{change}{interval}")
    elif h.int8_acc is not None:
        acc.append(f"INT8 {m} {h.int8_acc:.1f} at {h.int8_ms:.2f} ms")
    if acc:
        lines.append(" · ".join(acc))
    if h.note:
        lines.append(_esc(h.note))
    return "<br>".join(lines)


def _wrap(text: str, width: int) -> list[str]:
    out, line = [], ""
    for word in text.split(", "):
        if line and len(line) + len(word) + 2 > width:
            out.append(line + ",")
            line = word
        else:
            line = f"{line}, {word}" if line else word
    return out + [line]


def _h(text: Any) -> str:
    """Text for HTML we write (element content and quoted attributes)."""
    return escape(str(text), quote=True)


def _esc(text: Any) -> str:
    """Text for plotly's pseudo-HTML (hover, labels, titles): it knows only a few named entities
    (&amp; &lt; &gt;, not &quot;), and with no `<` left no tag can form, so quotes stay."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# --- page parts ----------------------------------------------------------------------------


def _breakdowns(view: ParetoView) -> dict[str, Any]:
    out = {}
    for name, parts in view.run.breakdown.items():
        parts = list(reversed(parts))  # plotly draws horizontal bars bottom-up: first block on top
        out[name] = {"labels": [_esc(p) for p, _ in parts], "parts": [p for p, _ in parts],
                     "ms": [ms for _, ms in parts], "title": _esc(name), "total": sum(ms for _, ms in parts)}
    return out


def _initial_breakdown(view: ParetoView) -> str | None:
    names = view.run.breakdown
    if not names:
        return None
    if view.best is not None and (view.best.parent or view.best.name) in names:
        return view.best.parent or view.best.name
    return next(iter(names))


def _options(view: ParetoView, initial: str | None) -> str:
    if not view.run.breakdown:
        return ""
    kinds = {r.name: r.kind for r in view.rows}
    return "".join(f'<option value="{_h(n)}"{" selected" if n == initial else ""}>{_h(n)} '
                   f'({escape(kinds.get(n, "?"))}, {sum(ms for _, ms in parts):.2f} ms predicted)</option>'
                   for n, parts in view.run.breakdown.items())


def _summary_html(view: ParetoView) -> str:
    """The summary sentence, the best model's name in bold."""
    text = _h(view.summary)
    if view.best is not None:
        name = _h(view.best.name)
        text = text.replace(name, f"<strong>{name}</strong>", 1)
    return text


def _stats(view: ParetoView) -> str:
    """The key numbers as cards: (label, value, detail), all escaped."""
    m = view.metric
    cards: list[tuple[str, str, str]] = []
    b, base = view.best, view.base
    if b is not None:
        cards.append(("best under budget", f"{b.acc:.1f} {m}", f"{b.name} · {b.ms:.2f} ms"))
        if base is not None:
            cards.append((f"vs {base.name}", f"{base.ms / b.ms:.2f}× faster",
                          f"{b.acc - base.acc:+.1f} {m} ({base.acc:.1f} at {base.ms:.2f} ms)"))
    if view.budget_ms is not None:
        n_under = sum(r.under_budget for r in view.rows if r.kind != "baseline")
        cards.append(("budget", f"{view.budget_ms:.2f} ms", f"{n_under} of {len(view.rows) - len(view.baselines)} "
                                                               "models under it"))
    ratios = sorted(r.ratio for r in view.rows if r.ratio is not None)
    if ratios:
        mid = statistics.median(ratios)
        cards.append(("measured / predicted", f"×{mid:.2f}", f"median of {len(ratios)} models "
                                                            f"({ratios[0]:.2f}–{ratios[-1]:.2f})"))
    n_trials = sum(t.kind == "trial" for t in view.run.trials)
    cards.append(("search", f"{n_trials} trials", f"{len(view.evaluated_trials)} evaluated · {len(view.front)} "
                                                  f"on the verified front · {len(view.variants)} variants"))
    return "".join(f'<div class="stat"><div class="k">{_h(k)}</div><div class="v">{_h(v)}</div>'
                   f'<div class="d">{_h(d)}</div></div>' for k, v, d in cards)


def _subtitle(view: ParetoView) -> str:
    s = view.run.search
    cpu = s.get("cpu") if isinstance(s.get("cpu"), dict) else {}
    cpu_name = cpu.get("model") or cpu.get("name") or cpu.get("model_name") or ""
    n_trials = sum(t.kind == "trial" for t in view.run.trials)
    parts = [f"space {s.get('space', '?')}", f"{view.metric} against latency",
             f"{s.get('precision', '?')}, {s.get('threads', '?')} threads" + (f" on {cpu_name}" if cpu_name else ""),
             f"{n_trials} trials, {len(view.front)} verified Pareto points, {len(view.variants)} deployed variants"]
    return " · ".join(_h(p) for p in parts)


def _legend_note(view: ParetoView) -> str:
    return ("Faint points: every trial at its predicted latency. Filled markers: models measured with "
            "ONNX Runtime; the dotted segment leads to the latency the table predicted (hollow circle). "
            "Arrows join each deployed variant to its FP32 parent. Click a point for its latency by block. "
            + SCALE_RULE)


def _table(view: ParetoView) -> str:
    head = ["model", "kind", f"{view.metric} %", "95% CI", "ms (table scale)", "pred. ms", "meas/pred",
            "raw meas. ms", "≤ budget", "front", "genes"]
    numeric = {2, 3, 4, 5, 6, 7}
    ths = "".join(f'<th{" class=num" if i in numeric else ""}><button type="button" data-col="{i}">'
                  f"{escape(h)}</button></th>" for i, h in enumerate(head))
    body = []
    for r in view.rows:
        interval = f"{r.acc_low:.1f}–{r.acc_high:.1f}" if r.acc_low is not None and r.acc_high is not None else ""
        kind = f"{r.kind} of {r.parent}" if r.parent else r.kind
        cells = [  # (text shown, sort value, class)
            (r.name, r.name, ""), (kind, kind, ""),
            (f"{r.acc:.1f}", r.acc, "num"), (interval, r.acc_low if r.acc_low is not None else "", "num"),
            (f"{r.scaled_ms:.2f}" if r.scaled_ms is not None else "", r.scaled_ms or "", "num"),
            (f"{r.predicted_ms:.2f}" if r.predicted_ms is not None else "", r.predicted_ms or "", "num"),
            (f"{r.ratio:.2f}" if r.ratio else "", r.ratio or "", "num"),
            (f"{r.measured_ms:.2f}" if r.measured_ms is not None else "", r.measured_ms or "", "num"),
            ("yes" if r.under_budget else "no", int(r.under_budget), ""),
            ("✓" if r.on_front else "", int(r.on_front), ""),
            ("" if r.parent else r.genes, r.genes, "genes"),  # a variant sits under its parent's genes
        ]
        cls = " ".join(c for c in ("best" if r is view.best else "", "over" if not r.under_budget else "",
                                   "variant" if r.parent else "") if c)
        tds = "".join(f'<td data-v="{_h(v)}"{f" class={c}" if c else ""}>{_h(t)}</td>' for t, v, c in cells)
        body.append(f'<tr class="{cls}">{tds}</tr>' if cls else f"<tr>{tds}</tr>")
    return f'<table id="models" class="sortable"><thead><tr>{ths}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _sha(script: str) -> str:
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode()
    return f"'sha256-{digest}'"


def _plotly_js() -> str:
    from plotly.offline import get_plotlyjs

    js = get_plotlyjs()
    if "</script" in js.lower():  # it never has; inlining would break the page if it did
        raise RuntimeError("plotly.js contains '</script': cannot inline it")
    return js


_STYLE = """
:root { --ink:#111827; --muted:#6b7280; --line:#e5e7eb; --accent:#2563eb; }
* { box-sizing: border-box; }
body { margin:0; font-family: system-ui,-apple-system,"Segoe UI",Roboto,sans-serif; color:var(--ink);
  background:#f8fafc; }
main { max-width: 1360px; margin: 0 auto; padding: 24px 28px 40px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 32px 0 8px; }
.sub { color: var(--muted); margin: 0 0 14px; font-size: 14px; }
.summary { background:#eff6ff; border-left: 4px solid var(--accent); padding: 12px 16px; margin: 0 0 16px;
  font-size: 16px; line-height: 1.45; border-radius: 4px; }
.stats { display:flex; gap:12px; flex-wrap:wrap; margin: 0 0 16px; }
.stat { flex: 1 1 160px; background:white; border:1px solid var(--line); border-radius:8px; padding:10px 14px; }
.stat .k { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.stat .v { font-size: 22px; font-weight: 650; margin: 2px 0; font-variant-numeric: tabular-nums; }
.stat .d { color: var(--muted); font-size: 13px; overflow-wrap: anywhere; }
.card { background:white; border:1px solid var(--line); border-radius:8px; padding: 8px 10px; }
.note { color: var(--muted); font-size: 13px; margin: 6px 2px 0; }
table { border-collapse: collapse; width: 100%; font-size: 13px; background: white; }
th, td { padding: 5px 7px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
th { position: sticky; top: 0; background: #f1f5f9; }
th button { all: unset; cursor: pointer; font-weight: 600; }
th button::after { content: " \\2195"; color: #9ca3af; }
th.num, td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
th { white-space: nowrap; }
td:first-child, td:nth-child(2) { min-width: 110px; overflow-wrap: anywhere; }
td.genes { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 11.5px; color:#374151; min-width: 280px; }
tr.best td { background: #fef9c3; font-weight: 600; }
tr.over td { color: #9ca3af; }
tr.variant td:first-child { padding-left: 22px; }
.scroll { max-height: 520px; overflow: auto; border: 1px solid var(--line); border-radius: 8px; }
label { font-size: 14px; }
select { font-size: 14px; padding: 4px 6px; margin-left: 6px; max-width: 100%; }
footer { color: var(--muted); font-size: 12px; margin-top: 28px; }
"""

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{style}</style>
</head>
<body>
<main>
<h1>{title}</h1>
<p class="sub">{subtitle}</p>
<p class="summary" id="summary">{summary}</p>
<div class="stats">{stats}</div>
<div class="card"><div id="pareto-plot" style="height:620px"></div></div>
<p class="note">{legend_note}</p>
<h2>Models</h2>
<div class="scroll">{table}</div>
<h2>Predicted latency by block</h2>
<label for="breakdown-select">Model</label><select id="breakdown-select">{options}</select>
<div class="card" style="margin-top:8px"><div id="breakdown-plot"></div></div>
<footer>{footer}</footer>
</main>
<script>{plotly_js}</script>
<script type="application/json" id="report-data">{data}</script>
<script>{own_js}</script>
</body>
</html>
"""

# the page's own behaviour: draw the figures, the breakdown dropdown, click-to-select, sorting.
# It never writes HTML from data (textContent / plotly only).
_OWN_JS = """
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("report-data").textContent);
  var main = document.getElementById("pareto-plot");
  Plotly.newPlot(main, data.figure.data, data.figure.layout, data.config);
  var select = document.getElementById("breakdown-select");
  var bd = document.getElementById("breakdown-plot");
  function showBreakdown(name) {
    var b = data.breakdown[name];
    if (!b) { bd.textContent = "No per-block breakdown in breakdown.csv."; return; }
    Plotly.react(bd, [{type: "bar", orientation: "h", x: b.ms, y: b.labels, marker: {color: "#2563eb"},
      hovertemplate: "%{y}: %{x:.3f} ms<extra></extra>"}], {
      margin: {l: 190, r: 20, t: 40, b: 50}, height: Math.max(260, 100 + 26 * b.ms.length),
      title: {text: b.title + ": " + b.total.toFixed(2) + " ms predicted", font: {size: 15}},
      xaxis: {title: {text: "predicted latency (ms)"}, ticksuffix: " ms"}, yaxis: {automargin: true},
      font: {family: "system-ui, sans-serif", size: 12}
    }, data.config);
  }
  if (data.initial !== null) { showBreakdown(data.initial); }
  else { bd.textContent = "No per-block breakdown in breakdown.csv."; }
  select.addEventListener("change", function () { showBreakdown(select.value); });
  main.on("plotly_click", function (ev) {
    var name = ev.points[0].customdata;
    if (typeof name !== "string") { return; }
    if (data.parentOf[name]) { name = data.parentOf[name]; }
    if (data.breakdown[name]) { select.value = name; showBreakdown(name); }
  });
  var table = document.getElementById("models");
  Array.prototype.forEach.call(table.querySelectorAll("th button"), function (btn) {
    btn.addEventListener("click", function () {
      var col = Number(btn.getAttribute("data-col"));
      var asc = btn.getAttribute("data-dir") !== "asc";
      Array.prototype.forEach.call(table.querySelectorAll("th button"), function (b) {
        b.removeAttribute("data-dir");
      });
      btn.setAttribute("data-dir", asc ? "asc" : "desc");
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[col].getAttribute("data-v"), y = b.cells[col].getAttribute("data-v");
        var nx = parseFloat(x), ny = parseFloat(y), c;
        if (!isNaN(nx) && !isNaN(ny)) { c = nx - ny; }
        else if (x === "" || y === "") { c = (x === "") - (y === ""); return c; }
        else { c = x.localeCompare(y); }
        return asc ? c : -c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
}());
"""
