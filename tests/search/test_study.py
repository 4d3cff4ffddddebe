"""The study's pieces on an in-memory Optuna study: over-budget and duplicate trials, stale
trials of dead workers, masked storage URLs."""

from __future__ import annotations

import socket

import optuna
import pytest
from optuna.trial import TrialState

from ednas.latency import LatencyPredictor, LatencyTable
from ednas.search.genes import genes_of
from ednas.search.study import DIRECTIONS, Objective, mask_url, reap_stale


class Counting:
    """An evaluator that counts its calls."""

    metric = "mAP"

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, arch) -> float:
        self.calls.append(arch.hash())
        return 0.1 + 0.01 * len(self.calls)


@pytest.fixture
def setup(tiny, tmp_path):
    predict = LatencyPredictor(LatencyTable.load(tiny.table, tiny.space.fingerprint())).predict
    study = optuna.create_study(directions=list(DIRECTIONS), sampler=optuna.samplers.RandomSampler(seed=0))
    evaluator = Counting()
    return tiny.space, predict, study, evaluator, tmp_path / "claims"


def test_over_budget_is_recorded_without_evaluation(setup) -> None:
    space, predict, study, evaluator, lock = setup
    budget = predict(space.base) - 1e-6  # the base is just over
    study.enqueue_trial(genes_of(space, space.base))
    study.optimize(Objective(space, evaluator, predict, budget, 10, lock, seed=0), n_trials=1)
    t = study.trials[0]
    assert evaluator.calls == [] and t.state == TrialState.COMPLETE
    assert "map" not in t.user_attrs and t.user_attrs["evaluated"] is False
    assert t.constraints == {"latency": pytest.approx(1e-6)}


def test_duplicate_is_copied_and_a_neighbour_queued(setup) -> None:
    space, predict, study, evaluator, lock = setup
    genes = genes_of(space, space.base)
    objective = Objective(space, evaluator, predict, 1e9, 10, lock, seed=0)
    study.enqueue_trial(genes)
    study.enqueue_trial(genes)
    study.optimize(objective, n_trials=2)
    first, second = study.get_trials(states=(TrialState.COMPLETE,))
    assert evaluator.calls == [space.base.hash()]  # evaluated once
    assert second.user_attrs["duplicate_of"] == 0 and second.values == first.values
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert len(waiting) == 1 and waiting[0].user_attrs["neighbour_of"] == 1
    queued = waiting[0].system_attrs["fixed_params"]  # an enqueued trial's genes
    changed = [k for k in genes if queued.get(k, genes[k]) != genes[k]]
    assert len(changed) == 1


def test_dead_worker_trial_is_failed_and_retried(setup) -> None:
    space, predict, study, evaluator, lock = setup
    trial = study.ask()
    space.suggest(trial)
    trial.set_user_attr("owner", f"{socket.gethostname()}:{2 ** 22 + 7}")  # no such pid
    alive = study.ask()
    alive.set_user_attr("owner", f"{socket.gethostname()}:1")  # pid 1 lives
    assert reap_stale(study) == [trial.number]
    assert study.trials[trial.number].state == TrialState.FAIL
    retry = study.get_trials(states=(TrialState.WAITING,))
    assert len(retry) == 1 and retry[0].user_attrs["retry_of"] == trial.number
    assert retry[0].system_attrs["fixed_params"] == trial.params
    assert reap_stale(study) == []  # nothing twice


def test_mask_url() -> None:
    assert mask_url("postgresql+psycopg://u:p%40ss@db.example:5432/x") == "postgresql+psycopg://u:***@db.example:5432/x"
    assert mask_url("postgresql+psycopg://u@h/x") == "postgresql+psycopg://u@h/x"
    assert mask_url("runs/a/study.journal") == "runs/a/study.journal"
