"""A search run folder made in code (the contract of ednas/report/run_folder.py), with plausible
numbers and hostile strings: names, genes, parts and the study/space names hold `<script>`,
an `<img onerror>`, quotes and ampersands that a report must show as text."""

from __future__ import annotations

import csv
import json
import math
import random
from pathlib import Path

PWN = "<script>window.__pwned=1</script>"
IMG = "<img src=x onerror=window.__pwned=1>"
STUDY = f'study "A&B" {PWN}'
SPACE = f"space 'x'&y {IMG}"
EVIL_TRIAL = f"t0003{PWN}"  # a trial name that tries to close the script tag
EVIL_BASE = f'uniform_0.75 "{IMG}"'  # a baseline name with quotes and an onerror image
EVIL_GENE = "plus</script><script>window.__pwned=1</script>"  # a gene value
EVIL_REF = 'NanoDet-Plus-m "&" <b>bold</b><a href="javascript:window.__pwned=1">x</a>'  # plotly knows <b>, <a>
WIDTHS = (0.5, 0.75, 1.0, 1.25)
BUDGET_MS = 7.5
BASE_MS = 10.0
# raw milliseconds of `ednas run`'s measure session run this much slower than the table's
# scale (another load, another session): only ratios to the base in one session compare
MEASURE_SESSION_SLOWDOWN = 1.6


def _genes(rng: random.Random) -> dict:
    g = {f"width_row{i}": rng.choice(WIDTHS) for i in range(5)}
    g |= {f"kr_block{b}": rng.random() < 0.6 for b in (2, 4, 5, 7)}
    g["neck_width"] = rng.choice((64, 96, 128))
    g |= {f"neck_block{i}": rng.choice(("normal", "plus")) for i in range(4)}
    g["input_size"] = rng.choice((256, 288, 320, 352, 384, 416))
    return g


def _latency(g: dict) -> float:
    """A plausible predicted latency (ms): grows with widths, neck width and resolution."""
    w = sum(g[f"width_row{i}"] for i in range(5)) / 5
    return 2.0 + 6.0 * w * (g["input_size"] / 320) ** 2 * (0.8 + g["neck_width"] / 480)


def _accuracy(ms: float, rng: random.Random) -> float:
    """A plausible mAP fraction: diminishing returns in latency, plus noise."""
    return max(0.05, 0.12 + 0.075 * math.log(ms) + rng.gauss(0, 0.008))


def _write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def make_run(root: Path, n_trials: int = 40, with_models: bool = True, verified: bool = True, seed: int = 0) -> Path:
    """Write a run folder into `root` and return it (`verified=False`: as `ednas search --no-verify`
    writes it, without measured latencies)."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    (root / "search.json").write_text(json.dumps({
        "space": SPACE, "space_fingerprint": "0123456789ab", "metric": "mAP", "budget_ms": BUDGET_MS,
        "budget": "75%", "precision": "fp32", "threads": 2, "table": "latency_tables/x.csv",
        "cpu": {"model": "AMD EPYC 7B13 & co", "flags": ["avx2"]}, "storage": "postgresql://u:***@h/db",
        "study": STUDY, "sampler": "tpe", "seed": 0, "trials_target": n_trials, "eval_images": 64,
        "base_ms": BASE_MS, "reference_ms": {EVIL_REF: 7.9},
    }))

    trials, evaluated = [], []
    base_genes = {f"width_row{i}": 1.0 for i in range(5)} | {"neck_width": 96, "input_size": 320}
    for name, genes, ms, acc in (("base", base_genes, BASE_MS, 0.281),
                                 (EVIL_BASE, {k: (0.75 if k.startswith("width") else v) for k, v in base_genes.items()},
                                  7.8, 0.262)):
        trials.append([-1, name, "baseline", "COMPLETE", f"{rng.getrandbits(48):012x}", json.dumps(genes), ms, acc,
                       "true"])
    for i in range(n_trials):
        g = _genes(rng)
        if i == 3:
            g["neck_block0"] = EVIL_GENE
        name = EVIL_TRIAL if i == 3 else f"t{i:04d}"
        ms = _latency(g)
        state = "FAIL" if i == 7 else "COMPLETE"
        over = ms > BUDGET_MS * 1.3
        acc = "" if over or state != "COMPLETE" else round(_accuracy(ms, rng), 4)
        trials.append([i, name, "trial", state, f"{rng.getrandbits(48):012x}", json.dumps(g), round(ms, 3), acc,
                       str(not over).lower()])
        if acc != "":
            evaluated.append((name, g, ms, acc))
    _write_csv(root / "trials.csv", ["number", "name", "kind", "state", "arch_hash", "genes", "predicted_ms",
                                     "map", "feasible"], trials)

    # the verified front: the non-dominated evaluated trials (by predicted ms), measured a bit slower
    front = [t for t in evaluated if not any(o[2] <= t[2] and o[3] > t[3] for o in evaluated)]
    front = sorted(front, key=lambda t: t[2])[:7]
    if not any(t[0] == EVIL_TRIAL for t in front):
        front[-1] = next(t for t in evaluated if t[0] == EVIL_TRIAL)
    pareto = []
    for name, g, ms, acc in front:
        measured = round(ms * rng.uniform(1.0, 1.15), 3)
        pareto.append([name, "pareto", "a" * 12, json.dumps(g), round(ms, 3), measured, round(measured / ms, 4), acc])
    for row in trials[:2]:
        measured = round(row[6] * 1.05, 3)
        pareto.append([row[1], "baseline", row[4], row[5], row[6], measured, round(measured / row[6], 4), row[7]])
    if not verified:
        for row in pareto:
            row[5] = row[6] = ""
    _write_csv(root / "pareto.csv", ["name", "kind", "arch_hash", "genes", "predicted_ms", "measured_ms",
                                     "measured_over_predicted", "map"], pareto)
    (root / "pareto").mkdir(exist_ok=True)
    for i, row in enumerate(pareto):
        (root / "pareto" / f"p{i}.arch.yml").write_text(f"# {row[0]!r}\nbackbone: {{type: mobilenext}}\n")

    parts = ["backbone.stem", "backbone.block3", f"neck.{IMG}", "head"]
    breakdown = []
    for row in pareto:
        shares = [0.1, 0.45, 0.3, 0.15]
        breakdown += [[row[0], part, round(row[4] * s, 4)] for part, s in zip(parts, shares)]
    _write_csv(root / "breakdown.csv", ["name", "part", "ms"], breakdown)

    if with_models:
        models = []
        session_base = BASE_MS * MEASURE_SESSION_SLOWDOWN  # the base's raw time in the measure session
        for i, row in enumerate(r for r in pareto if r[1] == "pareto"):
            name, placed, acc = row[0], row[6] * row[4], row[7]  # measured/predicted x predicted
            q = acc - rng.uniform(0.002, 0.012)
            ratio = round(placed * 0.72 / BASE_MS, 4)
            models.append([f"{name}.int8", name, "int8", round(q, 4), round(q - 0.01, 4), round(q + 0.01, 4),
                           round(ratio * session_base, 3), ratio, f"models/{name}.int8.onnx"])
            if i % 3 == 0:
                p = acc - 0.015
                ratio = round(placed * 0.85 / BASE_MS, 4)
                models.append([f"{name}.pruned", name, "pruned", round(p, 4), "", "", round(ratio * session_base, 3),
                               ratio, f"models/{name}.pruned.onnx"])
        _write_csv(root / "models.csv", ["name", "parent", "variant", "map", "map_low", "map_high", "measured_ms",
                                         "ratio_to_base", "path"], models)
    return root


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))
