"""The static report figure (PNG, matplotlib Agg): the same picture as the page's main plot,
for places without a browser (a PR, a terminal image viewer, a paper draft)."""

from __future__ import annotations

import io

from ednas.report.html_report import C_BASE, C_BUDGET, C_FRONT, C_REF, C_TRIAL, C_VARIANT, LABEL
from ednas.report.pareto import REF_LABEL_Y, ParetoView, front_line, labels_below, latency_range

_MPL_SYMBOL = {"fp32": "s", "pruned": "^", "int8": "*", "withheld": "*"}


def render_png(view: ParetoView, dpi: int = 150) -> bytes:
    """PNG bytes of accuracy (%) against latency (ms)."""
    from matplotlib.figure import Figure  # no pyplot: no global state; savefig renders PNG with Agg

    fig = Figure(figsize=(10, 6.2), dpi=dpi, layout="constrained")
    ax = fig.add_subplot()
    text = dict(parse_math=False)  # user strings may hold '$': never mathtext

    trials = view.evaluated_trials
    ax.scatter([t.predicted_ms for t in trials], [100 * t.map for t in trials], s=14, c=C_TRIAL, alpha=0.45,
               linewidths=0, label="trials (predicted ms)", zorder=1)
    rug = view.unevaluated_trials
    if rug:
        ax.plot([t.predicted_ms for t in rug], [0.0] * len(rug), "|", color=C_TRIAL, ms=10, alpha=0.8,
                transform=ax.get_xaxis_transform(), label="not evaluated", zorder=1)

    measured = [r for r in view.rows if not r.parent and r.measured_ms is not None]
    for r in measured:
        ax.plot([r.predicted_ms, r.ms], [r.acc, r.acc], ":", color=C_REF, lw=1, zorder=2)
    ax.scatter([r.predicted_ms for r in measured], [r.acc for r in measured], s=22, facecolors="none",
               edgecolors=C_REF, linewidths=0.8, label="predicted latency", zorder=2)

    front = view.front
    line = front_line(front)
    ax.step([r.ms for r in line], [r.acc for r in line], where="post", color=C_FRONT, lw=2.2, zorder=3)
    ax.scatter([r.ms for r in front], [r.acc for r in front], s=46, c=C_FRONT, edgecolors="white",
               linewidths=1, label="Pareto front (FP32, measured)", zorder=4)

    for kind, rows in view.variants_by_kind():
        color = C_VARIANT[kind]
        if kind == "int8":  # the deployable front
            line = front_line(rows)
            ax.step([r.ms for r in line], [r.acc for r in line], where="post", color=color, lw=1.3, ls="--",
                    zorder=3)
        for r in rows:
            parent = view.fp32_of(r)
            if parent is not None:
                ax.annotate("", xy=(r.ms, r.acc), xytext=(parent.ms, parent.acc),
                            arrowprops=dict(arrowstyle="->", color=color, lw=1.1, alpha=0.8, shrinkA=4, shrinkB=4),
                            zorder=3)
            if r.acc_low is not None and r.acc_high is not None:
                ax.plot([r.ms] * 2, [r.acc_low, r.acc_high], color=color, lw=1, alpha=0.7, zorder=4)
        ax.scatter([r.ms for r in rows], [r.acc for r in rows], s=110 if kind == "int8" else 50, c=color,
                   marker=_MPL_SYMBOL[kind], edgecolors="white", linewidths=0.8, label=LABEL[kind], zorder=5)

    bases = view.baselines
    ax.scatter([r.ms for r in bases], [r.acc for r in bases], s=60, c=C_BASE, marker="D",
               edgecolors="white", linewidths=0.8, label="baselines", zorder=5)
    ax.set_xlim(*latency_range(view))
    y_lo, y_hi = ax.get_ylim()
    below = labels_below([(r.ms, r.acc) for r in bases], ax.get_xlim()[1] - ax.get_xlim()[0], y_hi - y_lo)
    for r, low in zip(bases, below):
        ax.annotate(r.name, (r.ms, r.acc), xytext=(0, -8 if low else 8), textcoords="offset points", ha="center",
                    va="top" if low else "bottom", fontsize=9, color=C_BASE, **text)

    if view.budget_ms is not None:
        ax.axvline(view.budget_ms, color=C_BUDGET, ls="--", lw=1.6, zorder=0)
        ax.axvspan(view.budget_ms, ax.get_xlim()[1] * 10, color=C_BUDGET, alpha=0.05, zorder=0)
        ax.text(view.budget_ms, 0.99, f" budget {view.budget_ms:.2f} ms", color=C_BUDGET, va="top", fontsize=9,
                transform=ax.get_xaxis_transform(), **text)
    for i, (name, ms) in enumerate(sorted(view.run.reference_ms.items(), key=lambda kv: kv[1])):
        ax.axvline(ms, color=C_REF, ls="-.", lw=1.2, zorder=0)
        ax.text(ms, REF_LABEL_Y + 0.05 * (i % 3), f" {name} {ms:.2f} ms", color=C_REF, va="bottom", fontsize=9,
                transform=ax.get_xaxis_transform(), **text)
    if view.best is not None:
        b = view.best
        ax.annotate(f"best under budget\n{b.name}: {b.acc:.1f} {view.metric}, {b.ms:.2f} ms",
                    (b.ms, b.acc), xytext=(-30, 30), textcoords="offset points", ha="right", fontsize=9,
                    bbox=dict(boxstyle="round,pad=0.3", fc="white", ec=C_BASE, lw=0.8),
                    arrowprops=dict(arrowstyle="-", color=C_BASE, lw=0.8), zorder=6, **text)

    ax.set_xlabel("latency (ms on the latency table's scale: time / base time in one session x base predicted)")
    ax.set_ylabel(f"{view.metric} (%, higher is better)", **text)
    title = f"{view.run.search.get('study') or view.run.path.name}: {view.metric} against latency"
    ax.set_title(title, loc="left", fontsize=12, fontweight="bold", **text)
    ax.grid(True, color="#e5e7eb", lw=0.8)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.legend(loc="lower right", fontsize=8, framealpha=0.9)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, facecolor="white")
    return buf.getvalue()
