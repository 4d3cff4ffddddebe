"""What a Pareto report shows, computed once from a run folder and rendered by any backend
(HTML, PNG, markdown): the points, the verified front, the best point under the budget, the
one-sentence summary and the table rows. Accuracy is turned into percent here; strings stay
raw (each renderer escapes for its own format).

One latency scale (SCALE_RULE): models are timed in separate sessions (the search's
verification, `ednas run`'s measure stage), each interleaved with the base architecture, and
raw milliseconds of two sessions differ with the machine's load. So a measured model is placed
at (its time / the base's time in the same session) x the base's predicted latency: the
latency table's scale, on which the budget, the trials and the reference lines already are.
Every speed-up is a ratio of placed latencies, i.e. of ratios to the base each measured in one
session. Raw medians stay in the table and the hover.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable

from ednas.report.run_folder import VARIANTS, FrontPoint, RunFolder, Trial, Variant

_INDEXED = re.compile(r"^(.*?)(\d+)$")

WITHHELD = "withheld"  # the kind of a deployed variant the pipeline did not ship (Variant.withheld says why)

SCALE_RULE = ("Latency is on the latency table's scale: a measured model is placed at its time divided by the "
              "base architecture's time in the same timing session, times the base's predicted latency, so "
              "points timed in different sessions, the budget and the reference lines compare directly; every "
              "speed-up is a ratio of these. Raw measured medians are listed in the table.")


@dataclass(frozen=True)
class Row:
    """One model of the report's table: a front point, a baseline or a deployed variant."""

    name: str
    kind: str  # "pareto" | "baseline" | "fp32" | "pruned" | "int8"
    parent: str  # the FP32 front point a variant comes from; "" for front points
    genes: str  # compact, see format_genes
    predicted_ms: float | None
    measured_ms: float | None  # raw median of its timing session; None: a front point that was not verified
    ratio: float | None  # measured / predicted, load-cancelled (front points)
    scaled_ms: float | None  # measured, on the table's scale (see SCALE_RULE); None when not measured
    acc: float  # percent
    acc_low: float | None  # percent, 95 % interval of a variant
    acc_high: float | None
    on_front: bool  # not dominated by another measured point (latency down, accuracy up)
    under_budget: bool
    note: str = ""  # a withheld variant: why it is not shipped

    @property
    def ms(self) -> float:
        """Where the report puts it: its measured latency on the table's scale, else its predicted one."""
        return self.scaled_ms if self.scaled_ms is not None else self.predicted_ms  # type: ignore[return-value]

    @property
    def ms_kind(self) -> str:
        return "measured" if self.scaled_ms is not None else "predicted"


@dataclass(frozen=True)
class Hover:
    """What hovering a drawn point tells: its architecture and every number known of it."""

    name: str
    kind: str
    genes: str
    predicted_ms: float | None
    measured_ms: float | None  # raw, its own session
    ratio: float | None  # measured / predicted
    acc: float | None  # percent, this point's own
    fp32_acc: float | None  # the FP32 model's (itself or its parent)
    int8_acc: float | None
    int8_ms: float | None  # on the table's scale
    scaled_ms: float | None = None  # measured, on the table's scale
    speedup: float | None = None  # a variant: its FP32 parent's latency / its own (both placed)
    parent: str = ""  # the FP32 front point of a variant
    acc_low: float | None = None  # percent, 95 % interval of a variant
    acc_high: float | None = None
    note: str = ""  # a withheld variant: why it is not shipped


@dataclass(frozen=True)
class ParetoView:
    run: RunFolder
    metric: str
    budget_ms: float | None
    rows: list[Row]  # front points (by latency), baselines, then variants after their parent
    best: Row | None  # the most accurate measured model under the budget
    base: Row | None  # the baseline named "base" (or the first baseline)
    summary: str  # one sentence, plain text

    @property
    def front(self) -> list[Row]:
        return [r for r in self.rows if r.kind == "pareto"]

    @property
    def baselines(self) -> list[Row]:
        return [r for r in self.rows if r.kind == "baseline"]

    @property
    def variants(self) -> list[Row]:
        return [r for r in self.rows if r.parent]

    @property
    def evaluated_trials(self) -> list[Trial]:
        return [t for t in self.run.trials if t.kind == "trial" and t.map is not None and t.predicted_ms is not None]

    @property
    def unevaluated_trials(self) -> list[Trial]:
        """Priced but not evaluated (over budget, pruned, failed): drawn as a rug on the x axis."""
        return [t for t in self.run.trials if t.kind == "trial" and t.map is None and t.predicted_ms is not None]

    @property
    def extra_baselines(self) -> list[Trial]:
        """trials.csv baselines that pareto.csv does not hold (drawn at their predicted latency)."""
        measured = {r.name for r in self.baselines}
        return [t for t in self.run.trials if t.kind == "baseline" and t.name not in measured and t.map is not None
                and t.predicted_ms is not None]

    def hover(self, row: Row) -> Hover:
        fp32 = self.fp32_of(row)
        int8 = self.variant_of(fp32.name if fp32 else row.name, "int8")
        speedup = fp32.ms / row.ms if row.parent and fp32 is not None else None
        return Hover(row.name, row.kind, row.genes, row.predicted_ms, row.measured_ms, row.ratio, row.acc,
                     fp32.acc if fp32 else None, int8.acc if int8 else None, int8.ms if int8 else None,
                     scaled_ms=row.scaled_ms, speedup=speedup, parent=row.parent, acc_low=row.acc_low,
                     acc_high=row.acc_high, note=row.note)

    def variants_by_kind(self) -> list[tuple[str, list[Row]]]:
        """(kind, rows) of each deployed-variant kind present, in VARIANTS order."""
        return [(kind, rows) for kind in (*VARIANTS, WITHHELD)
                if (rows := [r for r in self.variants if r.kind == kind])]

    def trial_hover(self, t: Trial) -> Hover:
        acc = pct(t.map)
        return Hover(t.name, t.kind, format_genes(t.genes), t.predicted_ms, None, None, acc, acc, None, None)

    def fp32_of(self, row: Row) -> Row | None:
        name = row.parent or row.name
        return next((r for r in self.rows if r.name == name and not r.parent), None)

    def variant_of(self, parent: str, variant: str) -> Row | None:
        return next((r for r in self.rows if r.parent == parent and r.kind == variant), None)


def build_view(run: RunFolder) -> ParetoView:
    """The report's content for `run`."""
    budget = run.budget_ms
    base_ms = run.base_predicted_ms

    def scaled(p: FrontPoint) -> float | None:
        return front_scaled_ms(p, base_ms)

    def ms(p: FrontPoint) -> float:
        placed = scaled(p)
        return placed if placed is not None else p.predicted_ms

    def variant_ms(v: Variant) -> float:
        return v.ratio_to_base * base_ms  # type: ignore[operator]  (load_run checked base_ms is known)

    placed: list[tuple[str, float, float]] = [(p.name, ms(p), p.map) for p in run.front]
    placed += [(v.name, variant_ms(v), v.map) for v in run.variants if not v.withheld]  # shipped ones only
    front_names = non_dominated(placed)

    def under(ms: float) -> bool:
        return budget is None or ms <= budget

    points = sorted(run.front, key=lambda p: (p.kind != "pareto", ms(p), p.name))
    by_parent: dict[str, list[Variant]] = {}
    for v in run.variants:
        by_parent.setdefault(v.parent, []).append(v)
    rows: list[Row] = []
    for p in points:
        rows.append(_front_row(p, scaled(p), p.name in front_names, under(ms(p))))
        for v in sorted(by_parent.get(p.name, []), key=lambda v: ("fp32", "pruned", "int8").index(v.variant)):
            rows.append(_variant_row(v, p, variant_ms(v), v.name in front_names, under(variant_ms(v))))

    # the headline ranks held-out accuracy when the run has it (the deployed variants, scored on
    # images the search never saw); a front point's accuracy is on the search's selection images
    variants = [r for r in rows if r.kind in VARIANTS]
    candidates = [r for r in (variants or rows) if r.kind != "baseline" and r.under_budget]
    best = max(candidates, key=lambda r: (r.acc, -r.ms)) if candidates else None
    baselines = [r for r in rows if r.kind == "baseline"]
    base = next((r for r in baselines if r.name == "base"), baselines[0] if baselines else None)
    if variants and base is not None:  # compare like with like: the base's own held-out FP32 score
        base = next((r for r in variants if r.parent == base.name and r.kind == "fp32"), base)
    view = ParetoView(run, run.metric, budget, rows, best, base, "")
    return ParetoView(run, run.metric, budget, rows, best, base, _summary(view))


def front_scaled_ms(p: FrontPoint, base_ms: float | None) -> float | None:
    """A verified point's latency on the table's scale: (time / base time, one session) x base
    predicted = measured_over_predicted x its predicted latency. The base itself is the unit of
    every session, so it sits at its predicted latency by definition."""
    if p.measured_ms is None or p.measured_over_predicted is None:
        return None
    if p.kind == "baseline" and p.name == "base" and base_ms is not None:
        return base_ms
    return p.measured_over_predicted * p.predicted_ms


def latency_range(view: ParetoView) -> list[float]:
    """The x-axis range that shows every point, predicted latency, reference line and the budget."""
    xs = [r.ms for r in view.rows] + [r.predicted_ms for r in view.rows if r.predicted_ms is not None]
    xs += [t.predicted_ms for t in view.evaluated_trials + view.unevaluated_trials + view.extra_baselines]
    xs += list(view.run.reference_ms.values()) + ([view.budget_ms] if view.budget_ms is not None else [])
    return [max(0.0, min(xs) * 0.9), max(xs) * 1.06]


def front_line(rows: list[Row]) -> list[Row]:
    """The non-dominated rows of `rows`, by latency: the staircase a front is drawn as."""
    keep = non_dominated((r.name, r.ms, r.acc) for r in rows)
    return sorted((r for r in rows if r.name in keep), key=lambda r: r.ms)


# Reference-line labels sit low (a fraction of the plot's height, above the rug of unevaluated
# trials): the models worth reading crowd the top.
REF_LABEL_Y = 0.05
LABEL_BOX = (0.10, 0.06)  # a point label's footprint, as fractions of the plot's x and y spans


def labels_below(points: list[tuple[float, float]], x_span: float, y_span: float) -> list[bool]:
    """For text labels centred above (x, y) points: which go below their point instead, so that
    no two labels above overlap (left to right, a label that would touch one already above
    goes below)."""
    w, h = LABEL_BOX[0] * x_span, LABEL_BOX[1] * y_span
    above: list[tuple[float, float]] = []
    below = [False] * len(points)
    for i in sorted(range(len(points)), key=lambda k: points[k]):
        x, y = points[i]
        if any(abs(x - ax) < w and abs(y - ay) < h for ax, ay in above):
            below[i] = True
        else:
            above.append((x, y))
    return below


def non_dominated(points: Iterable[tuple[str, float, float]]) -> set[str]:
    """Names of the (name, ms, accuracy) points no other point beats on both (ties kept)."""
    pts = list(points)
    return {n for n, ms, acc in pts
            if not any((m <= ms and a >= acc) and (m < ms or a > acc) for _, m, a in pts)}


def format_genes(genes: dict[str, Any]) -> str:
    """Genes in one short line: indexed genes grouped (`width_row0..4` -> `width_row 0.5 1 1 …`),
    booleans as 1/0, so an architecture fits in a hover box or a table cell."""
    groups: dict[str, list[str]] = {}
    for key, value in genes.items():
        m = _INDEXED.match(str(key))
        stem = m.group(1).rstrip("_") if m and m.group(1) else str(key)
        groups.setdefault(stem, []).append(_gene_value(value))
    return ", ".join(f"{stem} {' '.join(vals)}" if len(vals) > 1 else f"{stem}={vals[0]}"
                     for stem, vals in groups.items())


def pct(fraction: float | None) -> float | None:
    return None if fraction is None else 100.0 * fraction


def _gene_value(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _front_row(p: FrontPoint, scaled_ms: float | None, on_front: bool, under: bool) -> Row:
    return Row(p.name, p.kind, "", format_genes(p.genes), p.predicted_ms, p.measured_ms, p.measured_over_predicted,
               scaled_ms, 100.0 * p.map, None, None, on_front, under)


def _variant_row(v: Variant, parent: FrontPoint, scaled_ms: float, on_front: bool, under: bool) -> Row:
    genes = format_genes(parent.genes)  # pruning keeps the genes' structure but not their widths
    genes = f"channels pruned from {genes}" if v.variant == "pruned" else genes
    return Row(v.name, WITHHELD if v.withheld else v.variant, parent.name, genes, None, v.measured_ms, None, scaled_ms,
               100.0 * v.map, pct(v.map_low), pct(v.map_high), on_front, under, v.withheld)


def _summary(view: ParetoView) -> str:
    metric = view.metric
    budget = view.budget_ms
    typed = view.run.search.get("budget")
    if budget is None:
        budget_txt = "run (no budget)"
    else:
        budget_txt = f"{budget:.2f} ms budget" + (f" ({typed} of the base model)"
                                                   if typed and "%" in str(typed) else "")
    best, base = view.best, view.base
    if best is None:
        fastest = min((r for r in view.rows if r.kind != "baseline"), key=lambda r: r.ms, default=None)
        if fastest is None:
            return f"No model was verified yet: pareto.csv holds no front point for the {budget_txt}."
        return (f"No verified model meets the {budget_txt}; the fastest, {fastest.name}, "
                f"takes {fastest.ms:.2f} ms ({fastest.ms_kind}) at {fastest.acc:.1f} {metric}.")
    kind = best.kind.upper() if best.kind in ("fp32", "int8") else best.kind
    what = f"{best.name} ({kind} of {best.parent})" if best.parent else best.name
    held_out = f" on held-out images ({best.acc_low:.1f}–{best.acc_high:.1f})" if best.acc_low is not None else ""
    text = f"Best under the {budget_txt}: {what}, {best.acc:.1f} {metric}{held_out} at {best.ms:.2f} ms {best.ms_kind}"
    text += " (table scale)" if best.scaled_ms is not None else ""
    if base is not None:
        delta = best.acc - base.acc
        text += (f", {base.ms / best.ms:.2f}× the speed of {base.name} "
                 f"({base.acc:.1f} {metric} at {base.ms:.2f} ms, {delta:+.1f} {metric})")
    return text + "."
