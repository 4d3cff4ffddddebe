"""`ednas report`: what the report computes (front, best point, summary), what it writes (a
set of four files, atomically), that user strings are escaped in every output, and the
one-line errors for a missing or malformed run folder. The browser side is in
test_report_browser.py."""

from __future__ import annotations

import base64
import csv
import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
from run_fixture import BASE_MS, BUDGET_MS, EVIL_BASE, EVIL_GENE, EVIL_REF, EVIL_TRIAL, IMG, PWN, STUDY, make_run, read_rows

from ednas.cli import main
from ednas.errors import InputError, OutputError
from ednas.report.html_report import figure_dict, safe_json
from ednas.report.pareto import build_view, format_genes, labels_below, non_dominated
from ednas.report.run_folder import load_run
from ednas.report.run_report import REPORT_FILES, build_report, write_set


@pytest.fixture
def report(run_dir: Path) -> Path:
    build_report(run_dir)
    return run_dir / "report"


# --- what is computed --------------------------------------------------------------------


def test_non_dominated_keeps_ties_and_drops_beaten_points():
    pts = [("a", 1.0, 0.20), ("b", 2.0, 0.30), ("c", 2.0, 0.25), ("d", 3.0, 0.30), ("e", 1.0, 0.20)]
    assert non_dominated(pts) == {"a", "e", "b"}  # c: slower than a and worse than b; d: b is as good, faster


def test_genes_are_grouped_by_index_and_booleans_shortened():
    genes = {"width_row0": 0.5, "width_row1": 1.0, "kr_block2": True, "kr_block4": False, "neck_width": 96,
             "input_size": 320}
    assert format_genes(genes) == "width_row 0.5 1, kr_block 1 0, neck_width=96, input_size=320"


def placed_ms(run_dir: Path) -> dict[str, float]:
    """Every measured model's latency on the table's scale, from the files: verified points
    measured/predicted x predicted, deployed variants ratio to the base x the base's predicted."""
    out = {r["name"]: float(r["measured_over_predicted"]) * float(r["predicted_ms"])
           for r in read_rows(run_dir / "pareto.csv") if r["kind"] == "pareto"}
    return out | {r["name"]: float(r["ratio_to_base"]) * BASE_MS for r in read_rows(run_dir / "models.csv")}


def test_best_point_is_the_most_accurate_deployed_model_under_budget_on_held_out_images(run_dir):
    """The headline ranks the deployed variants, scored on held-out images; the front points'
    accuracies (on the search's selection images) do not compete with them."""
    view = build_view(load_run(run_dir))
    ms = placed_ms(run_dir)
    accuracy = {r["name"]: float(r["map"]) for r in read_rows(run_dir / "models.csv")}
    expected = max(((n, ms[n], a) for n, a in accuracy.items() if ms[n] <= BUDGET_MS), key=lambda m: m[2])
    assert view.best is not None and view.best.name == expected[0]
    assert view.best.acc == pytest.approx(100 * expected[2])
    assert f"{100 * expected[2]:.1f} mAP on held-out images" in view.summary
    assert f"at {expected[1]:.2f} ms" in view.summary
    assert "7.50 ms budget (75% of the base model)" in view.summary and "the speed of base" in view.summary
    # every front point, baseline and variant is a row; variants follow their parent
    assert len(view.rows) == len(read_rows(run_dir / "pareto.csv")) + len(read_rows(run_dir / "models.csv"))
    for i, row in enumerate(view.rows):
        if row.parent:
            assert any(r.name == row.parent for r in view.rows[:i])


def test_an_int8_variant_no_faster_than_its_parent_is_shown_marked_but_never_shipped(run_dir):
    """The pipeline withholds an INT8 model its own timing found no faster than FP32 (models.csv
    `withheld`): the report keeps the point, marked with the reason, off the front and out of
    the headline, whose best model is then the next deployed one."""
    rows = read_rows(run_dir / "models.csv")
    best = build_view(load_run(run_dir)).best
    assert best is not None and best.kind == "int8"
    for r in rows:
        r["withheld"] = "not shipped: 0.95x the speed of its FP32 parent in quantize's timing" \
            if r["name"] == best.name else ""
    with open(run_dir / "models.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    view = build_view(load_run(run_dir))
    marked = next(r for r in view.rows if r.name == best.name)
    assert marked.kind == "withheld" and not marked.on_front and "0.95x" in marked.note
    assert view.best is not None and view.best.name != best.name
    assert best.name not in view.summary
    figure = figure_dict(view)
    trace = next(t for t in figure["data"] if t.get("name", "").startswith("INT8 not shipped"))
    assert trace["customdata"] == [best.name] and "0.95x" in trace["hovertext"][0]
    assert all(best.name not in (t.get("customdata") or []) for t in figure["data"] if t.get("name") == "INT8")


# --- one latency scale (issue 13) --------------------------------------------------------


def test_models_timed_in_another_session_are_placed_by_their_ratio_to_the_base(run_dir):
    """models.csv's raw times come from a session 1.6x slower than the search's verification;
    every model is placed at (time / base time, same session) x the base's predicted latency,
    so the speed-up is 1 / its ratio to the base, not raw base ms / raw variant ms."""
    view = build_view(load_run(run_dir))
    models = {r["name"]: r for r in read_rows(run_dir / "models.csv")}
    for row in view.variants:
        ratio = float(models[row.name]["ratio_to_base"])
        assert row.ms == pytest.approx(ratio * BASE_MS) and row.measured_ms == float(models[row.name]["measured_ms"])
        assert row.measured_ms / row.ms == pytest.approx(1.6, rel=0.01)  # raw ms of the other session
    assert view.base is not None and view.base.ms == BASE_MS  # the unit of every session
    best = view.best
    assert best is not None and best.parent  # an INT8 model wins under the budget
    ratio = float(models[best.name]["ratio_to_base"])
    assert f"{1 / ratio:.2f}× the speed of base" in view.summary
    raw_base = next(float(r["measured_ms"]) for r in read_rows(run_dir / "pareto.csv") if r["name"] == "base")
    assert f"{raw_base / best.measured_ms:.2f}×" not in view.summary  # the two-session ratio it used to show


def test_labels_that_would_overlap_go_below_their_point():
    # base and uniform_0.5 side by side (the synthetic demo's report): the second label goes below
    assert labels_below([(1.03, 5.6), (1.02, 5.6)], x_span=1.0, y_span=4.0) == [True, False]
    # far apart in x, or in y: both stay above
    assert labels_below([(1.0, 5.6), (1.3, 5.6), (1.0, 2.0)], x_span=1.0, y_span=4.0) == [False, False, False]


def test_reference_labels_sit_low_clear_of_the_crowded_top(run_dir):
    fig = figure_dict(build_view(load_run(run_dir)))
    refs = [a for a in fig["layout"]["annotations"] if str(a.get("text", "")).endswith("7.90 ms")]
    assert len(refs) == 1 and refs[0]["yanchor"] == "bottom" and refs[0]["y"] < 0.25


def test_the_figure_puts_points_budget_and_references_on_one_scale(run_dir):
    fig = figure_dict(build_view(load_run(run_dir)))
    traces = {t["meta"]["source"]: t for t in fig["data"]}
    placed = placed_ms(run_dir)
    for source in ("pareto.csv:pareto", "models.csv:int8", "models.csv:pruned"):
        t = traces[source]
        assert t["x"] == pytest.approx([placed[n] for n in t["customdata"]])
    base = traces["pareto.csv:baseline"]
    assert base["x"][base["customdata"].index("base")] == BASE_MS
    assert "table's scale" in fig["layout"]["xaxis"]["title"]["text"]


def test_the_scale_rule_is_stated_in_the_page_and_the_summary(report):
    html = (report / "report.html").read_text(encoding="utf-8")
    md = (report / "summary.md").read_text(encoding="utf-8")
    assert "same timing session" in html and "same timing session" in md
    assert "raw meas. ms" in html


def test_models_csv_without_ratios_and_measured_without_ratio_are_refused(run_dir, capsys):
    _rewrite(run_dir / "models.csv", lambda header, rows: ([c for c in header if c != "ratio_to_base"], rows))
    assert main(["report", str(run_dir)]) == 2
    assert "column 'ratio_to_base' missing" in capsys.readouterr().err
    (run_dir / "models.csv").unlink()
    _rewrite(run_dir / "pareto.csv", lambda header, rows: (header, [{**r, "measured_over_predicted": ""} for r in rows]))
    assert main(["report", str(run_dir)]) == 2
    assert "'measured_over_predicted' is empty" in capsys.readouterr().err


def test_no_point_under_budget_names_the_fastest(tmp_path):
    run = make_run(tmp_path / "run")
    search = json.loads((run / "search.json").read_text())
    search["budget_ms"] = 1.0
    (run / "search.json").write_text(json.dumps(search))
    view = build_view(load_run(run))
    fastest = min((r for r in view.rows if r.kind != "baseline"), key=lambda r: r.ms)
    assert view.best is None
    assert view.summary.startswith("No verified model meets the 1.00 ms budget") and fastest.name in view.summary


def test_figure_has_one_marker_per_csv_row(run_dir):
    """The counts the browser test checks in the page, checked here on the figure data."""
    fig = figure_dict(build_view(load_run(run_dir)))
    counts = {t["meta"]["source"]: len(t["x"]) for t in fig["data"] if t.get("mode", "").startswith("markers")}
    trials = read_rows(run_dir / "trials.csv")
    pareto = read_rows(run_dir / "pareto.csv")
    models = read_rows(run_dir / "models.csv")
    assert counts["trials.csv:trial"] == sum(r["kind"] == "trial" and r["map"] != "" for r in trials)
    assert counts["trials.csv:unevaluated"] == sum(r["kind"] == "trial" and r["map"] == "" for r in trials)
    assert counts["pareto.csv:pareto"] == sum(r["kind"] == "pareto" for r in pareto)
    assert counts["pareto.csv:baseline"] == sum(r["kind"] == "baseline" for r in pareto)
    for kind in ("int8", "pruned"):
        assert counts[f"models.csv:{kind}"] == sum(r["variant"] == kind for r in models)
    arrows = [a for a in fig["layout"]["annotations"] if a.get("axref") == "x"]
    assert len(arrows) == len(models)  # one arrow FP32 parent -> variant
    lines = [s["x0"] for s in fig["layout"]["shapes"] if s["type"] == "line"]
    assert sorted(lines) == [BUDGET_MS, 7.9]  # the budget and the reference latency


# --- what is written ---------------------------------------------------------------------


def test_cli_writes_the_four_files_and_no_temporary_ones(run_dir, capsys):
    assert main(["report", str(run_dir)]) == 0
    out = run_dir / "report"
    assert sorted(p.name for p in out.iterdir()) == sorted(REPORT_FILES)
    assert "Best under the 7.50 ms budget" in capsys.readouterr().out
    png = (out / "report.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    import cv2

    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape[1] >= 1200 and image.std() > 20  # a drawn figure, not a blank canvas


def test_out_folder_option_and_run_folder_refused_as_out(run_dir, tmp_path):
    assert main(["report", str(run_dir), "--out", str(tmp_path / "elsewhere")]) == 0
    assert (tmp_path / "elsewhere" / "report.html").is_file() and not (run_dir / "report").exists()
    with pytest.raises(InputError, match="run folder itself"):
        build_report(run_dir, run_dir)


def test_pareto_csv_joins_the_variants_to_their_parent(report, run_dir):
    rows = read_rows(report / "pareto.csv")
    src = read_rows(run_dir / "pareto.csv")
    models = read_rows(run_dir / "models.csv")
    def placed(r: dict) -> float:
        return BASE_MS if r["name"] == "base" else float(r["measured_over_predicted"]) * float(r["predicted_ms"])

    assert [r["name"] for r in rows] == [r["name"] for r in sorted(
        src, key=lambda r: (r["kind"] != "pareto", placed(r), r["name"]))]
    assert [float(r["table_scale_ms"]) for r in rows] == pytest.approx([placed(r) for r in sorted(
        src, key=lambda r: (r["kind"] != "pareto", placed(r), r["name"]))])
    for m in models:
        row = next(r for r in rows if r["name"] == m["parent"])
        assert row[f"{m['variant']}_name"] == m["name"] and float(row[f"{m['variant']}_map"]) == float(m["map"])
        assert float(row[f"{m['variant']}_table_scale_ms"]) == pytest.approx(float(m["ratio_to_base"]) * BASE_MS)
    assert next(r for r in rows if r["name"] == "base")["int8_name"] == ""
    assert json.loads(next(r for r in rows if r["name"] == EVIL_TRIAL)["genes"])["neck_block0"] == EVIL_GENE


def test_a_failed_write_leaves_the_previous_report_and_no_temporary_file(report, monkeypatch):
    before = (report / "report.html").read_bytes()
    (report / "summary.md").unlink()
    (report / "summary.md").mkdir()  # a folder in the way of the last file of the set
    with pytest.raises(OutputError, match="summary.md: is a folder"):
        write_set(report, {"report.html": b"new", "summary.md": b"new"})
    assert (report / "report.html").read_bytes() == before

    (report / "summary.md").rmdir()
    real_write = Path.write_bytes
    written: list[Path] = []

    def write_bytes(self: Path, data: bytes) -> int:  # the disk fills up at the second staged file
        written.append(self)
        if len(written) == 2:
            raise OSError(28, "No space left on device", str(self))
        return real_write(self, data)

    monkeypatch.setattr(Path, "write_bytes", write_bytes)
    with pytest.raises(OutputError, match="summary.md: no space left"):
        write_set(report, {"report.html": b"new", "summary.md": b"new"})
    monkeypatch.undo()
    assert (report / "report.html").read_bytes() == before
    assert sorted(p.name for p in report.iterdir()) == sorted(set(REPORT_FILES) - {"summary.md"})


def test_a_malformed_run_leaves_the_previous_report_untouched(report, run_dir):
    before = {n: (report / n).read_bytes() for n in REPORT_FILES}
    (run_dir / "models.csv").write_text("name,parent,variant,map,map_low,map_high,measured_ms,path\n"
                                       "x,nope,int8,0.2,,,3,\n")
    assert main(["report", str(run_dir)]) == 2
    assert {n: (report / n).read_bytes() for n in REPORT_FILES} == before


# --- escaping ----------------------------------------------------------------------------


def test_html_holds_no_raw_user_markup_and_only_its_own_scripts(report):
    html = (report / "report.html").read_text(encoding="utf-8")
    for evil in (PWN, IMG, EVIL_TRIAL, EVIL_GENE, EVIL_REF, "window.__pwned=1</script>", "<b>bold</b>"):
        assert evil not in html
    # exactly three script elements: plotly.js, the JSON data (not executed), the page's own
    opens = re.findall(r"<script[^>]*>", html, flags=re.I)
    assert opens == ["<script>", '<script type="application/json" id="report-data">', "<script>"]
    assert len(re.findall(r"</script", html, flags=re.I)) == 3
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in html  # shown as text in the title
    assert 'study "A&amp;B"' in html or "study &quot;A&amp;B&quot;" in html


def test_csp_allows_exactly_the_inline_scripts_and_no_network(report):
    html = (report / "report.html").read_text(encoding="utf-8")
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html).group(1)
    csp = csp.replace("&#x27;", "'")
    assert "default-src 'none'" in csp and "connect-src 'none'" in csp
    scripts = re.findall(r"<script>(.*?)</script>", html, flags=re.S)
    hashes = {"'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'" for s in scripts}
    allowed = set(re.search(r"script-src ([^;]+);", csp).group(1).split())
    assert len(scripts) == 2 and allowed == hashes


def test_report_data_json_round_trips_user_strings(report):
    html = (report / "report.html").read_text(encoding="utf-8")
    raw = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', html, flags=re.S).group(1)
    assert "<" not in raw and ">" not in raw and "&" not in raw
    data = json.loads(raw)
    names = [n for t in data["figure"]["data"] for n in t.get("customdata", [])]
    assert EVIL_TRIAL in names and EVIL_BASE in names  # the raw names, for the page's own logic
    assert any(IMG in p for b in data["breakdown"].values() for p in b["parts"])
    assert safe_json({"a": "</script>\u2028"}) == '{"a":"\\u003c/script\\u003e\\u2028"}'


def test_summary_md_escapes_markup_and_table_pipes(report, tmp_path):
    md = (report / "summary.md").read_text(encoding="utf-8")
    lines = [line for line in md.splitlines() if line.startswith("| ")]
    assert len(lines) == len(build_view(load_run(report.parent)).rows) + 1  # header + one per model
    assert all(line.count(" | ") == 5 for line in lines)  # six cells each: no pipe leaked from a name
    text_outside_code = re.sub(r"`[^`]*`", "", md)
    assert "<script" not in text_outside_code and "<img" not in text_outside_code
    assert STUDY.split()[0] in md and "&lt;script&gt;" in md


# --- errors ------------------------------------------------------------------------------


def _one_line_error(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("ednas report: error: ")
    return err


def test_missing_run_folder(tmp_path, capsys):
    err = _one_line_error(capsys, ["report", str(tmp_path / "nope")])
    assert "no such run folder" in err


@pytest.mark.parametrize("name", ["search.json", "trials.csv", "pareto.csv"])
def test_missing_required_file(run_dir, capsys, name):
    (run_dir / name).unlink()
    err = _one_line_error(capsys, ["report", str(run_dir)])
    assert f"{name}: missing" in err and not (run_dir / "report").exists()


def _rewrite(path: Path, edit) -> None:
    rows = read_rows(path)
    header = list(rows[0].keys())
    header, rows = edit(header, rows)
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, header, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)


def test_missing_column_names_file_and_column(run_dir, capsys):
    _rewrite(run_dir / "pareto.csv", lambda h, rows: ([c for c in h if c != "measured_ms"], rows))
    err = _one_line_error(capsys, ["report", str(run_dir)])
    assert "pareto.csv" in err and "column 'measured_ms' missing" in err


def test_bad_number_names_file_row_and_column(run_dir, capsys):
    def edit(h, rows):
        rows[2]["predicted_ms"] = "fast"
        return h, rows

    _rewrite(run_dir / "trials.csv", edit)
    err = _one_line_error(capsys, ["report", str(run_dir)])
    assert "trials.csv row 4: column 'predicted_ms' value 'fast' is not a number" in err


def test_unknown_parent_and_bad_variant_in_models_csv(run_dir, capsys):
    def parent(h, rows):
        rows[0]["parent"] = "t9999"
        return h, rows

    _rewrite(run_dir / "models.csv", parent)
    assert "parent 't9999' is not a pareto.csv name" in _one_line_error(capsys, ["report", str(run_dir)])

    def variant(h, rows):
        rows[0]["parent"] = read_rows(run_dir / "pareto.csv")[0]["name"]
        rows[0]["variant"] = "int4"
        return h, rows

    _rewrite(run_dir / "models.csv", variant)
    assert "column 'variant' value 'int4' is not one of fp32, pruned, int8" in _one_line_error(
        capsys, ["report", str(run_dir)])


def test_empty_trials(run_dir, capsys):
    _rewrite(run_dir / "trials.csv", lambda h, rows: (h, [r for r in rows if r["kind"] == "baseline"]))
    assert "no trials yet" in _one_line_error(capsys, ["report", str(run_dir)])


def test_malformed_search_json_and_genes(run_dir, capsys):
    (run_dir / "search.json").write_text("{not json")
    assert "search.json: not valid JSON" in _one_line_error(capsys, ["report", str(run_dir)])
    make_run(run_dir)

    def genes(h, rows):
        rows[0]["genes"] = "[1, 2]"
        return h, rows

    _rewrite(run_dir / "pareto.csv", genes)
    assert "column 'genes' is not a JSON object" in _one_line_error(capsys, ["report", str(run_dir)])


def test_without_models_and_breakdown(tmp_path):
    run = make_run(tmp_path / "run", with_models=False)
    (run / "breakdown.csv").unlink()
    view, paths = build_report(run)
    assert not view.variants and view.best is not None and view.best.kind == "pareto"
    html = paths["report.html"].read_text(encoding="utf-8")
    assert '"initial":null' in html


def test_unverified_front_is_placed_at_its_predicted_latency(tmp_path):
    """`ednas search --no-verify` leaves measured_ms empty: points sit at their predicted latency
    and every text says so."""
    run = make_run(tmp_path / "run", with_models=False, verified=False)
    view, paths = build_report(run)
    rows = read_rows(run / "pareto.csv")
    assert all(r.measured_ms is None and r.ms == r.predicted_ms for r in view.rows)
    best = max((r for r in rows if r["kind"] == "pareto" and float(r["predicted_ms"]) <= BUDGET_MS),
               key=lambda r: float(r["map"]))
    assert view.best.name == best["name"] and f"{float(best['predicted_ms']):.2f} ms predicted" in view.summary
    fig = figure_dict(view)
    segments = next(t for t in fig["data"] if t["meta"]["source"] == "pareto.csv:segments")
    assert segments["x"] == []  # nothing measured: no predicted -> measured segments
    assert "not verified" in paths["report.html"].read_text(encoding="utf-8")
    assert "not measured" in paths["summary.md"].read_text(encoding="utf-8")
