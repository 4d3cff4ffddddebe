"""A seeded search resumed in a new process proposes what the uninterrupted one did."""

import optuna
import pytest

from ednas.search.study import make_sampler

DISTRIBUTIONS = {"a": optuna.distributions.IntDistribution(0, 100),
                 "b": optuna.distributions.CategoricalDistribution(["x", "y", "z"])}


def _proposals(sampler_name: str, trials: int, killed: int | None = None) -> list[tuple]:
    """Ask/tell `trials` trials; at `killed`, the trial dies, a new process (a new sampler)
    takes over and retries its parameters as the next trial, as the search does."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=make_sampler(sampler_name, 3), directions=["maximize", "minimize"])
    out: list[tuple] = []
    while len(out) < trials:
        trial = study.ask(DISTRIBUTIONS)
        if len(out) == killed and trial.number == killed:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            study.sampler = make_sampler(sampler_name, 3)
            study.enqueue_trial(trial.params)
            continue
        out.append((trial.params["a"], trial.params["b"]))
        study.tell(trial, [trial.params["a"] % 7, trial.params["a"] / 10])
    return out


@pytest.mark.parametrize("sampler", ["tpe", "random", "nsga2"])
def test_resumed_after_a_kill_proposes_the_same(sampler: str) -> None:
    clean = _proposals(sampler, 24)
    assert len(set(clean)) > 12  # it does explore
    assert _proposals(sampler, 24, killed=13) == clean
