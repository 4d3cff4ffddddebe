"""The report page in a real browser: Debian's headless Chromium driven by playwright (never
`playwright install`: .ci/run installs /usr/bin/chromium with apt-get). The page is opened
offline from a run folder whose names hold `<script>`, `<img onerror>`, quotes and ampersands."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from run_fixture import EVIL_BASE, EVIL_REF, EVIL_TRIAL, IMG, PWN, STUDY, make_run, read_rows

from ednas.report.pareto import format_genes
from ednas.report.run_report import build_report

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(),
                                reason="Debian's chromium is not installed (apt-get install -y chromium; .ci/run does)")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e .[dev])")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    run = make_run(tmp_path_factory.mktemp("browser") / "run")
    build_report(run)
    return run


@pytest.fixture(scope="module")
def session(run_dir):
    """(page, requests, errors) for the loaded report; requests and errors keep growing."""
    requests: list[str] = []
    errors: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("request", lambda r: requests.append(r.url))
        page.on("console", lambda m: errors.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning")
                else None)
        page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
        page.on("dialog", lambda d: (errors.append(f"dialog: {d.message}"), d.dismiss()))
        page.goto((run_dir / "report" / "report.html").as_uri())
        try:
            page.wait_for_selector("#pareto-plot .scatterlayer path.point", timeout=15_000)
            page.wait_for_selector("#breakdown-plot .barlayer path", timeout=5_000)
        except sync_api.TimeoutError:
            browser.close()
            pytest.fail(f"the page drew no plot; its errors: {errors}")
        yield page, requests, errors
        browser.close()


def test_one_marker_per_csv_row(session, run_dir):
    page, _, _ = session
    traces = page.evaluate("""() => document.getElementById("pareto-plot").data
        .filter(t => t.mode.startsWith("markers")).map(t => [t.meta.source, t.x.length])""")
    counts = dict(traces)
    trials = read_rows(run_dir / "trials.csv")
    pareto = read_rows(run_dir / "pareto.csv")
    models = read_rows(run_dir / "models.csv")
    assert counts["trials.csv:trial"] + counts["trials.csv:unevaluated"] == sum(r["kind"] == "trial" for r in trials)
    assert counts["trials.csv:unevaluated"] == sum(r["kind"] == "trial" and r["map"] == "" for r in trials) > 0
    assert counts["pareto.csv:pareto"] == sum(r["kind"] == "pareto" for r in pareto)
    assert counts["pareto.csv:baseline"] == sum(r["kind"] == "baseline" for r in pareto)
    assert counts["models.csv:int8"] + counts["models.csv:pruned"] == len(models)
    # and plotly drew them: one SVG point per marker
    drawn = page.evaluate("""() => document.querySelectorAll("#pareto-plot .scatterlayer path.point").length""")
    assert drawn == sum(counts.values())


def test_no_network_and_no_console_error(session):
    page, requests, errors = session
    page.mouse.move(400, 500)
    page.wait_for_timeout(200)
    assert requests and all(url.startswith("file://") for url in requests), requests
    assert errors == []


def test_screenshot_is_not_blank(session):
    page, _, _ = session
    image = cv2.imdecode(np.frombuffer(page.screenshot(), np.uint8), cv2.IMREAD_COLOR)
    plot = page.locator("#pareto-plot").screenshot()
    plot = cv2.imdecode(np.frombuffer(plot, np.uint8), cv2.IMREAD_COLOR)
    assert image.std() > 15 and plot.std() > 15
    colours = {tuple(c) for c in plot.reshape(-1, 3)[::7]}
    assert len(colours) > 50  # markers, lines, text: not a flat card


def test_hover_shows_the_architecture(session, run_dir):
    page, _, _ = session
    row = next(r for r in read_rows(run_dir / "pareto.csv") if r["name"] == EVIL_TRIAL)
    xy = page.evaluate("""(name) => {
        const gd = document.getElementById("pareto-plot");
        const t = gd.data.find(t => t.meta.source === "pareto.csv:pareto");
        const j = t.customdata.indexOf(name), fl = gd._fullLayout, box = gd.getBoundingClientRect();
        return [box.left + fl._size.l + fl.xaxis.d2p(t.x[j]), box.top + fl._size.t + fl.yaxis.d2p(t.y[j])];
    }""", EVIL_TRIAL)
    page.mouse.move(0, 0)
    page.mouse.move(*xy)
    hover = page.wait_for_selector("#pareto-plot .hoverlayer .hovertext", timeout=5_000)
    text = hover.text_content()
    genes = format_genes(json.loads(row["genes"]))
    assert EVIL_TRIAL in text  # the name, `<script>` and all, as text
    assert "genes: " + genes[:40] in text and "predicted" in text and "measured" in text
    assert "FP32 mAP" in text and "INT8 mAP" in text
    assert page.evaluate("() => window.__pwned") is None


def test_injected_markup_is_text_and_never_runs(session):
    page, _, errors = session
    assert page.evaluate("() => typeof window.__pwned") == "undefined"
    assert page.evaluate("() => document.querySelectorAll('img').length") == 0
    assert page.evaluate("() => document.scripts.length") == 3  # plotly.js, the JSON data, the page's own
    body = page.evaluate("() => document.body.innerText")
    assert STUDY in body and PWN in body and EVIL_BASE in body
    assert page.title() == f"Pareto report: {STUDY}"
    labels = page.evaluate("""() => Array.from(document.querySelectorAll("#pareto-plot .textpoint"))
        .map(e => e.textContent)""")
    assert EVIL_BASE in labels  # the baseline's label, drawn as text
    notes = page.evaluate("""() => Array.from(document.querySelectorAll("#pareto-plot .annotation-text"))
        .map(e => e.textContent)""")
    assert f"{EVIL_REF} 7.90 ms" in notes  # plotly's own markup (<b>, <a href>) stays text too
    assert page.evaluate("() => document.querySelectorAll('#pareto-plot svg a, #pareto-plot svg b').length") == 0
    ticks = page.evaluate("""() => Array.from(document.querySelectorAll("#breakdown-plot .ytick"))
        .map(e => e.textContent)""")
    assert any(IMG in t for t in ticks)
    assert errors == []


def test_table_sorts_and_breakdown_follows_the_dropdown(session, run_dir):
    page, _, errors = session
    page.click("#models th button:text('ms (table scale)')")
    values = page.evaluate("""() => Array.from(document.querySelectorAll("#models tbody tr"))
        .map(r => parseFloat(r.cells[4].getAttribute("data-v")))""")
    assert values == sorted(values)
    page.click("#models th button:text('ms (table scale)')")
    values = page.evaluate("""() => Array.from(document.querySelectorAll("#models tbody tr"))
        .map(r => parseFloat(r.cells[4].getAttribute("data-v")))""")
    assert values == sorted(values, reverse=True)

    page.select_option("#breakdown-select", "base")
    page.wait_for_function(
        """() => document.querySelector("#breakdown-plot .gtitle").textContent.startsWith("base:")""")
    total = sum(float(r["ms"]) for r in read_rows(run_dir / "breakdown.csv") if r["name"] == "base")
    assert f"{total:.2f} ms predicted" in page.text_content("#breakdown-plot .gtitle")
    assert errors == []
