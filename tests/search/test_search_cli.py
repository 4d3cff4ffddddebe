"""`ednas search` end to end on the tiny space with the fake evaluator (tests/search/fake_evaluator.py,
which logs every evaluation to a file: an independent record of "never evaluated twice"):
the run folder contract, reproducibility, bad input, many workers, kill -9, PostgreSQL."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import optuna
import pytest

from ednas.arch import ArchSpec
from ednas.cli import main
from ednas.search.run_folder import BREAKDOWN_COLUMNS, PARETO_COLUMNS, TRIALS_COLUMNS

from conftest import write_space, write_table

SEARCH_JSON_KEYS = {"space", "space_fingerprint", "metric", "budget_ms", "budget", "precision", "threads", "table",
                    "cpu", "storage", "study", "sampler", "seed", "trials_target", "eval_images", "base_ms",
                    "reference_ms"}


def args(tiny, out: Path, *extra: str, trials: int = 10, budget: str = "95%", supernet: Path | None = None) -> list[str]:
    return ["search", "--supernet", str(supernet or tiny.space_yml), f"--budget={budget}", "--table", str(tiny.table),
            "--images", str(tiny.images), "--ann", str(tiny.ann), "--trials", str(trials), "--seed", "1",
            "--out", str(out), *extra]


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def evaluations(log: Path) -> list[tuple[int, str]]:
    if not log.exists():
        return []
    return [(int(pid), digest) for pid, digest in (line.split() for line in log.read_text().splitlines())]


@pytest.fixture
def fake(fake_evaluator, monkeypatch, tmp_path) -> Path:
    """The evaluation log of the fake evaluator (each call takes 0.25 s)."""
    log = tmp_path / "evaluations.log"
    monkeypatch.setenv("EDNAS_FAKE_EVAL_LOG", str(log))
    monkeypatch.setenv("EDNAS_FAKE_EVAL_S", "0.25")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("EDNAS_FAKE_EVAL_PEERS", "0")
    return log


def check_run_folder(out: Path, target: int, verified: bool) -> tuple[dict, list, list]:
    """The run-folder contract (/tmp/brief/runfolder.md): files, columns, kinds, consistency."""
    record = json.loads((out / "search.json").read_text())
    assert SEARCH_JSON_KEYS <= set(record)
    assert record["trials_target"] == target and record["seed"] == 1 and record["metric"] == "mAP"
    trials = rows(out / "trials.csv")
    assert list(trials[0]) == TRIALS_COLUMNS
    runs = [r for r in trials if r["kind"] == "trial"]
    assert len(runs) == target and all(r["state"] == "COMPLETE" for r in runs)
    assert [r["name"] for r in runs] == [f"t{i:04d}" for i in range(target)]
    assert {r["name"] for r in trials if r["kind"] == "baseline"} == {"base", "uniform_0.5"}
    for r in trials:
        assert r["feasible"] == ("true" if float(r["predicted_ms"]) <= record["budget_ms"] else "false")
        assert len(r["arch_hash"]) == 12 and json.loads(r["genes"])
        if r["kind"] == "trial":
            assert (r["map"] == "") == (r["feasible"] == "false")  # over budget: never evaluated
        if r["map"]:
            assert 0 <= float(r["map"]) <= 1
    base = next(r for r in trials if r["name"] == "base")
    assert base["number"] == "-1" and base["map"] != ""  # baselines are always scored

    pareto = rows(out / "pareto.csv")
    assert list(pareto[0]) == PARETO_COLUMNS
    front = [r for r in pareto if r["kind"] == "pareto"]
    assert front and {r["kind"] for r in pareto} == {"pareto", "baseline"}
    by_ms = sorted(front, key=lambda r: float(r["predicted_ms"]))
    assert [float(r["map"]) for r in by_ms] == sorted(float(r["map"]) for r in by_ms)  # a real front
    assert all(float(r["predicted_ms"]) <= record["budget_ms"] for r in front)
    for r in pareto:
        if verified:
            assert float(r["measured_ms"]) > 0 and 0.2 < float(r["measured_over_predicted"]) < 5
        else:
            assert r["measured_ms"] == r["measured_over_predicted"] == ""
        arch = ArchSpec.load(out / "pareto" / f"{r['name']}.arch.yml")
        assert arch.hash() == r["arch_hash"]
    assert sorted(p.name for p in (out / "pareto").iterdir()) == sorted(f"{r['name']}.arch.yml" for r in pareto)
    breakdown = rows(out / "breakdown.csv")
    assert list(breakdown[0]) == BREAKDOWN_COLUMNS
    for r in pareto:
        parts = [float(b["ms"]) for b in breakdown if b["name"] == r["name"]]
        assert sum(parts) == pytest.approx(float(r["predicted_ms"]))
    leftovers = [p.name for p in out.rglob("*") if p.name.endswith(".tmp") or p.name.startswith(".verify")]
    assert leftovers == []
    return record, trials, pareto


def test_run_folder_contract(tiny, fake, tmp_path, capsys) -> None:
    out = tmp_path / "run"
    assert main(args(tiny, out, "--no-verify", trials=12)) == 0
    assert "12/12 trials complete" in capsys.readouterr().out
    record, trials, pareto = check_run_folder(out, 12, verified=False)
    assert record["budget"] == "95%" and record["budget_ms"] == pytest.approx(0.95 * record["base_ms"])
    assert record["reference_ms"] == {} and record["storage"] == str(out / "study.journal")
    front = [r for r in pareto if r["kind"] == "pareto"]
    assert len(front) >= 2  # the fake evaluator trades accuracy for latency
    # the front is exactly the non-dominated feasible trials
    feasible = [r for r in trials if r["kind"] == "trial" and r["feasible"] == "true"]
    for r in feasible:
        better = [f for f in front if float(f["map"]) >= float(r["map"])
                  and float(f["predicted_ms"]) <= float(r["predicted_ms"])]
        assert better, f"{r['name']} is not covered by the front"


def test_real_supernet_end_to_end(tiny, supernet, tmp_path, capsys, monkeypatch) -> None:
    """The supernet evaluator (slice, BN recalibration, COCO eval) and the ONNX Runtime verification."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    out = tmp_path / "run"
    assert main(args(tiny, out, "--calib-images", "4", trials=5, budget="97%", supernet=supernet)) == 0
    printed = capsys.readouterr().out
    # NanoDet-Plus-m (80 COCO classes) is no reference for a 6-class space: no line for it
    assert "5/5 trials complete" in printed and "NanoDet-Plus-m" not in printed
    record, _, _ = check_run_folder(out, 5, verified=True)
    assert record["eval_images"] == 5 and record["space"] == "tiny"
    assert record["reference_ms"] == {}
    assert record["cpu"]["cpu"]


def test_same_seed_same_trials(tiny, supernet, tmp_path, capsys) -> None:
    def search(out: Path, *extra: str) -> str:
        assert main(args(tiny, out, "--no-verify", "--calib-images", "4", *extra, trials=8, budget="90%",
                         supernet=supernet)) == 0
        return (out / "trials.csv").read_text()

    first = search(tmp_path / "a")
    assert first == search(tmp_path / "b")
    assert first == search(tmp_path / "a", "--seed", "2")  # the study is complete: a rerun adds nothing


@pytest.mark.parametrize("budget, message", [
    ("6", "--budget '6' has no unit"),
    ("0ms", "must be greater than zero"),
    ("-2ms", "must be greater than zero"),
    ("1us", "impossible: the smallest predicted latency in the search space is"),
])
def test_bad_budget(tiny, fake, tmp_path, capsys, budget: str, message: str) -> None:
    assert main(args(tiny, tmp_path / "run", budget=budget)) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def one_line_error(argv: list[str], capsys) -> str:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1, captured.err
    return captured.out + captured.err


def test_table_for_another_space_or_cpu(tiny, fake, tmp_path, capsys) -> None:
    space = tiny.space
    other = write_space(tmp_path / "other", tiny.space_yml.read_text().replace("width: [16, 24]", "width: [16]"))
    from ednas.arch.space import SearchSpace

    other_table = write_table(SearchSpace.load(other), tmp_path / "other.csv")
    err = one_line_error(args(tiny, tmp_path / "r1", "--table", str(other_table)), capsys)
    assert "measured for search space" in err and "ednas profile --space" in err
    cpu_table = write_table(space, tmp_path / "cpu.csv", cpu="Some Other CPU 9000")
    err = one_line_error(args(tiny, tmp_path / "r2", "--table", str(cpu_table)), capsys)
    assert "measured on CPU 'Some Other CPU 9000'" in err and "ednas profile" in err
    err = one_line_error(args(tiny, tmp_path / "r3", "--precision", "int8"), capsys)
    assert "measured at fp32" in err and "ednas profile" in err


def test_unreachable_storage_masks_the_password(tiny, fake, tmp_path, capsys) -> None:
    url = "postgresql+psycopg://ednas:Sup3rS3cret@127.0.0.1:1/ednas"
    text = one_line_error(args(tiny, tmp_path / "run", "--storage", url), capsys)
    assert "cannot open the database" in text and "ednas:***@127.0.0.1:1" in text and "Sup3rS3cret" not in text
    text = one_line_error(args(tiny, tmp_path / "run", "--storage", "mysql://u:Sup3rS3cret@h/db"), capsys)
    assert "use postgresql+psycopg://" in text and "Sup3rS3cret" not in text


def test_study_of_another_space_is_refused(tiny, fake, tmp_path, capsys) -> None:
    out = tmp_path / "run"
    assert main(args(tiny, out, "--no-verify", "--study", "shared", trials=2, budget="99%")) == 0
    other = write_space(tmp_path / "other", tiny.space_yml.read_text().replace("min: 64", "min: 96"))
    from ednas.arch.space import SearchSpace

    table = write_table(SearchSpace.load(other), tmp_path / "other.csv")
    text = one_line_error(["search", "--supernet", str(other), "--budget=99%", "--table", str(table),
                           "--images", str(tiny.images), "--ann", str(tiny.ann), "--study", "shared",
                           "--out", str(out)], capsys)
    assert "study 'shared'" in text and "exists with search space 'tiny'" in text


# -- many workers, killed workers, PostgreSQL -------------------------------------------------
def cli(argv: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "ednas.cli", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def load_study(storage: str | None, out: Path, name: str) -> optuna.Study:
    from optuna.storages.journal import JournalFileBackend

    store = storage or optuna.storages.JournalStorage(JournalFileBackend(str(out / "study.journal")))
    return optuna.load_study(study_name=name, storage=store)


def check_study(study: optuna.Study, log: Path, target: int, killed: set[int] = frozenset()) -> list:
    """Exactly `target` COMPLETE trials; every evaluated one in the evaluation log; no architecture
    evaluated twice (except one that a killed worker was evaluating when it died)."""
    trials = study.get_trials()
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == target
    done = evaluations(log)
    counts = Counter(d for _, d in done)
    killed_hashes = [d for pid, d in done if pid in killed]
    twice = {d for d, n in counts.items() if n > 1}
    assert twice <= set(killed_hashes[-1:]), f"evaluated twice: {twice}"
    evaluated = [t for t in complete if t.user_attrs.get("evaluated")]
    assert evaluated and {t.user_attrs["arch_hash"] for t in evaluated} <= set(counts)
    for t in complete:  # none lost: a feasible trial has its accuracy
        assert ("map" in t.user_attrs) == (t.user_attrs["predicted_ms"] <= study.user_attrs["budget_ms"])
    return trials


def run_two_workers(tiny, out: Path, log: Path, storage: list[str], study: str, n: int = 14) -> str:
    os.environ["EDNAS_FAKE_EVAL_PEERS"] = "2"  # (the `fake` fixture's monkeypatch restores the environment)
    p = cli(args(tiny, out, "--no-verify", "--workers", "2", "--study", study, *storage, trials=n, budget="99%"))
    output = p.communicate(timeout=240)[0]
    assert p.returncode == 0, output
    assert f"{n}/{n} trials complete" in output
    assert len({pid for pid, _ in evaluations(log)}) >= 2, "the second worker never evaluated"
    check_study(load_study(storage[1] if storage else None, out, study), log, n)
    return output


def kill_one_worker(tiny, out: Path, log: Path, storage: list[str], study: str, n: int = 12) -> str:
    """Two commands on one study; kill -9 one while it evaluates; the other finishes the study
    and retries the dead trial; the killed command, run again, resumes to the same result."""
    argv = args(tiny, out, "--no-verify", "--study", study, *storage, trials=n, budget="99%")
    victim, survivor = cli(argv), cli(argv)
    study_obj, number = None, None
    deadline = time.time() + 120
    while number is None and time.time() < deadline and victim.poll() is None:
        time.sleep(0.05)
        try:
            study_obj = study_obj or load_study(storage[1] if storage else None, out, study)
        except (KeyError, FileNotFoundError, ValueError):
            continue
        for t in study_obj.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            if t.user_attrs.get("claimed") and t.user_attrs.get("owner", "").endswith(f":{victim.pid}") \
                    and t.number >= 3:
                number = t.number
    assert number is not None, "the victim never started evaluating"
    os.kill(victim.pid, signal.SIGKILL)
    victim.communicate()
    output = survivor.communicate(timeout=240)[0]
    assert survivor.returncode == 0, output
    again = subprocess.run([sys.executable, "-m", "ednas.cli", *argv], capture_output=True, text=True, timeout=240)
    assert again.returncode == 0, again.stderr
    assert f"{n}/{n} trials complete" in again.stdout
    trials = check_study(load_study(storage[1] if storage else None, out, study), log, n, killed={victim.pid})
    dead = next(t for t in trials if t.number == number)
    assert dead.state == optuna.trial.TrialState.FAIL
    retry = [t for t in trials if t.user_attrs.get("retry_of") == number
             or t.system_attrs.get("failed_trial") == number]
    assert retry and retry[0].state == optuna.trial.TrialState.COMPLETE
    assert retry[0].user_attrs["arch_hash"] == dead.user_attrs["arch_hash"]
    trials_csv = rows(out / "trials.csv")
    assert sum(r["state"] == "COMPLETE" and r["kind"] == "trial" for r in trials_csv) == n
    return output + again.stdout + again.stderr


def test_two_workers_journal(tiny, fake, tmp_path) -> None:
    run_two_workers(tiny, tmp_path / "run", fake, [], "s")


def test_kill_worker_journal(tiny, fake, tmp_path) -> None:
    kill_one_worker(tiny, tmp_path / "run", fake, [], "s")


def postgres_url() -> str:
    url = os.environ.get("EDNAS_TEST_POSTGRES")
    if not url:
        pytest.skip("EDNAS_TEST_POSTGRES is not set: point it at postgresql+psycopg://USER:PASSWORD@HOST/DB "
                    "(.ci/run starts Debian's PostgreSQL and sets it)")
    import sqlalchemy

    try:
        with sqlalchemy.create_engine(url, connect_args={"connect_timeout": 3}).connect():
            pass
    except Exception:
        pytest.skip("no PostgreSQL server reachable at EDNAS_TEST_POSTGRES")
    return url


def assert_no_password(url: str, out: Path, *texts: str) -> None:
    from sqlalchemy.engine import make_url

    password = make_url(url).password
    assert password, "EDNAS_TEST_POSTGRES must carry a password for this check"
    for path in out.rglob("*"):
        if path.is_file():
            assert password.encode() not in path.read_bytes(), path
    for text in texts:
        assert password not in text
    assert "***" in (out / "search.json").read_text()


@pytest.mark.parametrize("scenario", [run_two_workers, kill_one_worker], ids=["two_workers", "kill"])
def test_postgres(tiny, fake, tmp_path, scenario) -> None:
    url = postgres_url()
    name = f"ednas-test-{uuid.uuid4().hex[:8]}"
    out = tmp_path / "run"
    try:
        output = scenario(tiny, out, fake, ["--storage", url], name, n=10)
        assert_no_password(url, out, output)
        assert not list(out.glob("*.journal*")) and not list(Path.cwd().glob("*.claims"))  # all in the database
    finally:
        optuna.delete_study(study_name=name, storage=url)
