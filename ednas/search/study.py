"""The Optuna study of `ednas search`: two objectives (accuracy up, predicted latency down), the
budget as a constraint, warm start, storage, many workers, and recovery from killed ones.

Every trial leaves its story in user attrs, so any worker (or a later run) can act on it:
    owner          "host:pid" of the worker process that runs it
    arch_hash      ArchSpec.hash() of the suggested architecture (the dedupe key)
    predicted_ms   predicted latency
    map            accuracy (fraction) when known; absent for an over-budget candidate
    evaluated      True only where this trial paid for the accuracy evaluation
    duplicate_of   trial number whose accuracy it copied (same architecture)
    neighbour_of   the duplicate whose random one-gene neighbour this trial is (gets a stuck
                   sampler moving)
    retry_of       the stale trial this one re-runs
Storage: a journal file in RUN_DIR (no server; dead owners are found by pid), or PostgreSQL
through RDBStorage with heartbeats (stale trials failed and re-enqueued by Optuna).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import logging
import math
import os
import random
import socket
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import optuna
from optuna.trial import FrozenTrial, TrialState

from ednas.arch import ArchSpec
from ednas.errors import EdnasError
from ednas.search.evaluator import Evaluator
from ednas.io import pid_alive
from ednas.search.genes import genes_of
from ednas.search.pareto import Point, pareto_front
from ednas.signals import Terminated, sigterm_as_interrupt
from ednas.arch.space import SearchSpace

log = logging.getLogger(__name__)

SAMPLERS = ("tpe", "nsga2", "gp", "random")
DIRECTIONS = ("maximize", "minimize")  # accuracy, predicted ms
JOURNAL = "study.journal"
HEARTBEAT_S = 5  # RDB heartbeat interval; a trial silent for GRACE_S is stale
GRACE_S = 20
ORPHAN_S = 60  # a RUNNING trial with no owner attr this old was killed right after creation
POLL_S = 0.5
DEFAULT_EVALUATOR = "ednas.supernet.evaluate:SupernetEvaluator.from_file"
_HOST = socket.gethostname()


class StudyError(EdnasError):
    """The study cannot be opened or does not fit this search."""


@dataclass(frozen=True)
class SearchSettings:
    """Everything a worker process needs to join the study (picklable: sent to spawned workers)."""

    supernet: str  # supernet file the evaluator slices
    out: str  # RUN_DIR
    budget_ms: float
    table: str  # latency table CSV
    trials: int  # target number of COMPLETE trials in the study
    study: str  # study name
    storage: str | None = None  # postgresql+psycopg:// URL or a journal path; None: RUN_DIR/study.journal
    sampler: str = "tpe"
    seed: int | None = None
    timeout_s: float | None = None  # per invocation, every worker
    images: str | None = None
    ann: str | None = None
    calib_images: int = 64
    eval_images: int | None = None
    metric: str = "mAP"
    eval_threads: int = 1  # torch threads of each worker's evaluator
    # "module:callable" building the evaluator from these settings (EDNAS_SEARCH_EVALUATOR: another
    # implementation of the Evaluator protocol, e.g. a cheap proxy)
    evaluator: str = field(default_factory=lambda: os.environ.get("EDNAS_SEARCH_EVALUATOR", DEFAULT_EVALUATOR))


# -- storage ----------------------------------------------------------------------------------
def mask_url(url: str) -> str:
    """`url` with any password replaced by ***."""
    from sqlalchemy.engine import make_url

    if "://" not in url:
        return url
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not parseable: hide everything between :// and @
        head, _, rest = url.partition("://")
        return f"{head}://***@{rest.rpartition('@')[2]}" if "@" in rest else url


def storage_label(settings: SearchSettings) -> str:
    """How the storage is shown to people and written to files (password masked)."""
    return mask_url(settings.storage) if settings.storage else str(Path(settings.out) / JOURNAL)


def check_storage_url(url: str | None) -> None:
    """Refuse a --storage that names no supported backend (before any work is done)."""
    if url is None or "://" not in url:
        return
    if not url.startswith("postgresql+psycopg://"):
        raise StudyError(f"--storage {mask_url(url)}: use postgresql+psycopg://USER:PASSWORD@HOST/DB "
                         "or a journal file path (default: RUN_DIR/study.journal)")


def journal_path(settings: SearchSettings) -> Path:
    return Path(settings.storage) if settings.storage else Path(settings.out) / JOURNAL


def claims_file(settings: SearchSettings) -> Path:
    """The lock file that serialises "who evaluates this architecture" on a journal study."""
    path = journal_path(settings)
    return path.with_name(path.name + ".claims")


def open_storage(settings: SearchSettings) -> optuna.storages.BaseStorage:
    """The study storage; an unreachable database is one line with the masked URL."""
    url = settings.storage
    check_storage_url(url)
    if url is None or "://" not in url:
        path = journal_path(settings)
        path.parent.mkdir(parents=True, exist_ok=True)
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    try:
        return optuna.storages.RDBStorage(
            url, engine_kwargs={"pool_pre_ping": True, "connect_args": {"connect_timeout": 10}},
            heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S,
            failed_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=3))
    except Exception as exc:  # sqlalchemy / psycopg: OperationalError and friends
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        password = _password(url)
        if password:
            reason = reason.replace(password, "***")
        raise StudyError(f"--storage {mask_url(url)}: cannot open the database ({reason}); start the server "
                         "or fix the URL") from None


def _password(url: str) -> str | None:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).password  # type: ignore[return-value]
    except Exception:
        return None


def make_sampler(name: str, seed: int | None) -> optuna.samplers.BaseSampler:
    """A multi-objective sampler that honours trial constraints; with a seed, its draws for a
    trial depend on the finished trials only (HistorySeeded), so a resumed study proposes what
    an uninterrupted one would have."""
    if name == "tpe":
        sampler: optuna.samplers.BaseSampler = optuna.samplers.TPESampler(seed=seed)
    elif name == "nsga2":
        sampler = optuna.samplers.NSGAIISampler(seed=seed)
    elif name == "gp":
        sampler = optuna.samplers.GPSampler(seed=seed)
    elif name == "random":
        sampler = optuna.samplers.RandomSampler(seed=seed)
    else:
        raise StudyError(f"--sampler {name!r}: choose one of {', '.join(SAMPLERS)}")
    return sampler if seed is None else HistorySeeded(sampler, seed)


def history_seed(seed: int | None, study: optuna.Study, salt: str = "") -> int:
    """A seed made of `seed` and the number of finished trials: the same for the same history,
    however many draws this process made before and whatever number the trial got (a trial
    retried after a kill gets a new number, but the history it follows is the same)."""
    done = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    return int(hashlib.sha256(f"{seed}:{done}:{salt}".encode()).hexdigest()[:8], 16)


class HistorySeeded(optuna.samplers.BaseSampler):
    """Wraps a seeded sampler and re-seeds its random states (its own and its sub-samplers')
    before every trial from `history_seed`. Optuna's samplers draw from one stream per process,
    so after a restart an unwrapped sampler would start that stream over and propose
    differently from the uninterrupted run."""

    def __init__(self, inner: optuna.samplers.BaseSampler, seed: int) -> None:
        self.inner, self.seed = inner, seed

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        _reseed(self.inner, history_seed(self.seed, study))
        self.inner.before_trial(study, trial)

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, Any]:
        return self.inner.infer_relative_search_space(study, trial)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, Any]) -> dict[str, Any]:
        return self.inner.sample_relative(study, trial, search_space)

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: Any) -> Any:
        return self.inner.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState,
                    values: Any) -> None:
        self.inner.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.inner.reseed_rng()


def _reseed(sampler: object, seed: int, depth: int = 0) -> None:
    """Seed every numpy RandomState held by `sampler` (Optuna keeps them as `_rng.rng`) and,
    recursively, by the samplers it delegates to."""
    import numpy as np

    for k, value in enumerate(sorted(vars(sampler).items())):
        held = value[1]
        if isinstance(getattr(held, "rng", None), np.random.RandomState):
            held.rng.seed((seed + k) % 2**32)
        elif isinstance(held, optuna.samplers.BaseSampler) and depth < 4:
            _reseed(held, (seed * 31 + k) % 2**32, depth + 1)


def open_study(settings: SearchSettings, space: SearchSpace, sampler: optuna.samplers.BaseSampler,
               storage: optuna.storages.BaseStorage | None = None) -> optuna.Study:
    """Create or join the study; one that exists for another space, metric or budget is refused."""
    storage = storage or open_storage(settings)
    # optuna logs a failed trial with its traceback (a Ctrl-C mid-trial: ~100 lines) before
    # re-raising, which the CLI reports in one line; its own lines show with -v
    verbose = logging.getLogger("ednas").isEnabledFor(logging.DEBUG)
    optuna.logging.set_verbosity(optuna.logging.WARNING if verbose else optuna.logging.ERROR)
    study = optuna.create_study(storage=storage, sampler=sampler, study_name=settings.study,
                                directions=list(DIRECTIONS), load_if_exists=True)
    if [d.name.lower() for d in study.directions] != list(DIRECTIONS):
        raise StudyError(f"study {settings.study!r} in {storage_label(settings)} is not an ednas search "
                         "(other objectives); choose another --study")
    wanted = {"space_fingerprint": space.fingerprint(), "metric": settings.metric,
              "budget_ms": round(settings.budget_ms, 6)}
    have = study.user_attrs
    for key, value in wanted.items():
        if key in have and have[key] != value:
            what = (f"search space {have.get('space', '?')!r} ({have[key]})" if key == "space_fingerprint"
                    else f"metric {have[key]}" if key == "metric" else f"a budget of {have[key]:.3f} ms")
            raise StudyError(f"study {settings.study!r} in {storage_label(settings)} exists with {what}, not this "
                             f"search's ({value}); choose another --study or --out")
    for key, value in {**wanted, "space": space.name}.items():
        if key not in have:
            study.set_user_attr(key, value)
    return study


# -- warm start and stale trials --------------------------------------------------------------
def warm_start_archs(space: SearchSpace) -> dict[str, ArchSpec]:
    """The base, every uniform width scaling of the space's backbone choices and the base at
    every other input size of the space (the two plain ways to scale a detector)."""
    archs = {"base": space.base}
    for width in space.config.backbone.widths:
        arch = space.uniform(width)
        if arch != space.base:
            archs[f"uniform_{width:g}"] = arch
    for size in space.config.input_size.choices:
        if size != space.base.input_size:
            archs[f"base_{size}px"] = space.base.replace(input_size=size)
    return archs


def warm_start(study: optuna.Study, space: SearchSpace) -> int:
    """Enqueue the warm-start architectures (skipped when already in the study)."""
    n = 0
    for name, arch in warm_start_archs(space).items():
        genes = genes_of(space, arch)
        if genes is not None:
            study.enqueue_trial(genes, user_attrs={"warm_start": name}, skip_if_exists=True)
            n += 1
    return n


def owner_alive(trial: FrozenTrial, now: float | None = None) -> bool:
    """Whether the worker running `trial` may still be alive: a dead pid on this host is dead;
    an owner on another host is alive (its heartbeat decides, in RDB storage); a trial with no
    owner yet is alive for ORPHAN_S after it started."""
    owner = trial.user_attrs.get("owner")
    if owner is None:
        start = trial.datetime_start.timestamp() if trial.datetime_start else 0.0
        return (now or time.time()) - start < ORPHAN_S
    host, _, pid = str(owner).rpartition(":")
    return host != _HOST or pid_alive(int(pid))


def reap_stale(study: optuna.Study) -> list[int]:
    """Fail every RUNNING trial whose worker is dead and enqueue its architecture again;
    returns the failed trial numbers. Safe when several workers reap at once: only the one
    whose state change succeeds re-enqueues. (RDB storage: also Optuna's heartbeat check.)"""
    if rdb_storage(study) is not None:
        optuna.storages.fail_stale_trials(study)
    storage, reaped = study._storage, []
    now = time.time()
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if owner_alive(t, now):
            continue
        try:
            storage.set_trial_user_attr(t._trial_id, "stale", True)
            if not storage.set_trial_state_values(t._trial_id, TrialState.FAIL):
                continue
        except (RuntimeError, optuna.exceptions.UpdateFinishedTrialError):
            continue  # another worker got there first
        if t.params:
            study.enqueue_trial(t.params, user_attrs={"retry_of": t.number})
        log.warning("trial %d: its worker %s died; retrying its architecture", t.number,
                    t.user_attrs.get("owner", "(unknown)"))
        reaped.append(t.number)
    return reaped


# -- the objective ----------------------------------------------------------------------------
class Objective:
    """One trial: suggest, price, and (only when within budget and new) evaluate."""

    def __init__(self, space: SearchSpace, evaluator: Evaluator, predict: Callable[[ArchSpec], float],
                 budget_ms: float, target: int, lock_file: Path, seed: int | None = None) -> None:
        self.space, self.evaluator, self.predict = space, evaluator, predict
        self.budget_ms, self.target, self.seed = budget_ms, target, seed
        self.lock_file = lock_file  # the claim lock of a journal study (unused with PostgreSQL)
        self.owner = f"{_HOST}:{os.getpid()}"

    def __call__(self, trial: optuna.Trial) -> tuple[float, float]:
        trial.set_user_attr("owner", self.owner)
        arch = self.space.suggest(trial)
        ms = float(self.predict(arch))
        digest = arch.hash()
        trial.set_user_attr("arch_hash", digest)
        trial.set_user_attr("predicted_ms", ms)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trial.set_constraint("latency", ms - self.budget_ms)
        if self._surplus(trial):
            trial.set_user_attr("surplus", True)
            raise optuna.TrialPruned("the study reached its trial target")
        if ms > self.budget_ms:
            trial.set_user_attr("evaluated", False)
            return 0.0, ms  # over budget: infeasible by its constraint; accuracy never paid for
        known = self._claim(trial, digest)
        if known is not None:
            trial.set_user_attr("duplicate_of", known.number)
            trial.set_user_attr("evaluated", False)
            trial.set_user_attr("map", known.user_attrs["map"])
            self._enqueue_neighbour(trial)
            return float(known.user_attrs["map"]), ms
        accuracy = float(self.evaluator(arch))
        trial.set_user_attr("map", accuracy)
        trial.set_user_attr("evaluated", True)
        return accuracy, ms

    def _enqueue_neighbour(self, trial: optuna.Trial) -> None:
        """A sampler that proposes a known architecture is stuck (TPE's early, peaked kernels
        do this): queue a random one-gene neighbour of it as the next trial. Seeded by the
        finished trials (history_seed), so a one-worker run stays reproducible, resumed or not."""
        trials = trial.study.get_trials(deepcopy=False)
        done = sum(t.state == TrialState.COMPLETE for t in trials)
        running = sum(t.state == TrialState.RUNNING and owner_alive(t) for t in trials)  # this one too
        if done + running >= self.target:
            return  # the study ends with the trials already running: nothing would take it
        rng = random.Random(history_seed(self.seed, trial.study, "neighbour"))
        params = dict(trial.params)
        name = rng.choice(sorted(params))
        options = [c for c in trial.distributions[name].choices if c != params[name]]  # type: ignore[attr-defined]
        if options:
            params[name] = rng.choice(options)
            trial.study.enqueue_trial(params, user_attrs={"neighbour_of": trial.number}, skip_if_exists=True)

    def _surplus(self, trial: optuna.Trial) -> bool:
        """Another worker's earlier trial already takes the last slot of the target."""
        trials = trial.study.get_trials(deepcopy=False)
        done = sum(t.state == TrialState.COMPLETE for t in trials)
        earlier = sum(t.state == TrialState.RUNNING and t.number < trial.number and owner_alive(t)
                      for t in trials)
        return done + earlier >= self.target

    def _claim(self, trial: optuna.Trial, digest: str) -> FrozenTrial | None:
        """Claim the evaluation of this architecture, or return the finished trial that already
        has its accuracy. Check-and-claim runs under the study's claim lock, so of two workers
        that drew the same architecture exactly one evaluates; the other waits for it (or, when
        its worker dies, takes over)."""
        while True:
            with claim_lock(trial.study, self.lock_file):
                same = [t for t in trial.study.get_trials(deepcopy=False)
                        if t.number != trial.number and t.user_attrs.get("arch_hash") == digest]
                done = [t for t in same if t.state == TrialState.COMPLETE and "map" in t.user_attrs]
                if done:
                    return min(done, key=lambda t: t.number)
                busy = [t for t in same if t.state == TrialState.RUNNING and t.user_attrs.get("claimed")
                        and owner_alive(t)]
                if not busy:
                    trial.set_user_attr("claimed", True)
                    return None
            time.sleep(POLL_S)
            reap_stale(trial.study)


def rdb_storage(study: optuna.Study) -> optuna.storages.RDBStorage | None:
    """The study's RDBStorage (Optuna wraps it in a cache), or None for other storages."""
    storage = study._storage
    inner = getattr(storage, "_backend", None)
    for candidate in (storage, inner):
        if isinstance(candidate, optuna.storages.RDBStorage):
            return candidate
    return None


@contextlib.contextmanager
def claim_lock(study: optuna.Study, lock_file: Path) -> Iterator[None]:
    """A study-wide mutex: a PostgreSQL advisory lock (RDB storage), else an flock on
    `lock_file` (beside the journal). Both are released when the holder dies."""
    rdb = rdb_storage(study)
    if rdb is not None:
        from sqlalchemy import text

        key = int(hashlib.sha256(f"ednas:{study.study_name}".encode()).hexdigest()[:15], 16)
        with rdb.engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                conn.commit()
        return
    import fcntl

    with open(lock_file, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


# -- workers ----------------------------------------------------------------------------------
def build_evaluator(settings: SearchSettings) -> Evaluator:
    """The accuracy evaluator named by `settings.evaluator` ("module:attr.attr")."""
    module, _, attr = settings.evaluator.partition(":")
    factory: Any = importlib.import_module(module)
    for part in attr.split("."):
        factory = getattr(factory, part)
    return factory(settings.supernet, settings.images, settings.ann, calib_images=settings.calib_images,
                   eval_images=settings.eval_images, metric=settings.metric, threads=settings.eval_threads)


def build_predictor(settings: SearchSettings, space: SearchSpace) -> Callable[[ArchSpec], float]:
    from ednas.latency import LatencyPredictor, LatencyTable

    return LatencyPredictor(LatencyTable.load(settings.table, space.fingerprint())).predict


@dataclass
class Progress:
    """What a progress line says."""

    done: int
    target: int
    best: float | None  # best feasible accuracy
    front: int  # Pareto front size
    eta_s: float | None

    def line(self) -> str:
        best = f"{100 * self.best:.1f}" if self.best is not None else "-"  # percent, one decimal
        eta = f"{self.eta_s / 60:.1f} min" if self.eta_s is not None else "-"
        return f"{self.done}/{self.target} trials, best feasible accuracy {best}, Pareto {self.front}, ETA {eta}"


def progress(trials: list[FrozenTrial], target: int, budget_ms: float, done0: int, t0: float) -> Progress:
    done = sum(t.state == TrialState.COMPLETE for t in trials)
    points = [Point(str(t.number), float(t.user_attrs["map"]), float(t.user_attrs["predicted_ms"]))
              for t in trials if t.state == TrialState.COMPLETE and "map" in t.user_attrs
              and t.user_attrs.get("predicted_ms", math.inf) <= budget_ms]
    rate = (done - done0) / max(time.time() - t0, 1e-9)
    eta = (target - done) / rate if rate > 0 and done < target else (0.0 if done >= target else None)
    return Progress(done, target, max((p.accuracy for p in points), default=None), len(pareto_front(points)), eta)


def run_worker(settings: SearchSettings, worker: int = 0, evaluator: Evaluator | None = None) -> int:
    """Join the study and run trials until it holds `settings.trials` COMPLETE trials (or the
    timeout passes). Returns the number of trials this worker ran."""
    t0 = time.time()
    evaluator = evaluator or build_evaluator(settings)
    space: SearchSpace = evaluator.space  # type: ignore[attr-defined]
    predict = build_predictor(settings, space)
    storage = open_storage(settings)
    probe = optuna.load_study(study_name=settings.study, storage=storage)
    others = any(t.state == TrialState.RUNNING and owner_alive(t) for t in probe.get_trials(deepcopy=False))
    seed = settings.seed
    if seed is not None and (worker or others):  # distinct proposals per worker, worker 0 alone reproducible
        seed = seed + worker + (os.getpid() if others else 0)
    study = open_study(settings, space, make_sampler(settings.sampler, seed), storage)
    objective = Objective(space, evaluator, predict, settings.budget_ms, settings.trials, claims_file(settings), seed)
    done0 = sum(t.state == TrialState.COMPLETE for t in study.get_trials(deepcopy=False))
    ran = 0
    while True:
        reap_stale(study)
        trials = study.get_trials(deepcopy=False)
        done = sum(t.state == TrialState.COMPLETE for t in trials)
        if done >= settings.trials:
            break
        if settings.timeout_s is not None and time.time() - t0 > settings.timeout_s:
            log.info("worker %d: --timeout reached with %d/%d trials", worker, done, settings.trials)
            break
        running = sum(t.state == TrialState.RUNNING and owner_alive(t) for t in trials)
        if done + running >= settings.trials:
            time.sleep(POLL_S)  # the last trials are running elsewhere: wait for them (or their death)
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.optimize(objective, n_trials=1, gc_after_trial=False)
        ran += 1
        last = study.get_trials(deepcopy=False)
        t = max((t for t in last if t.user_attrs.get("owner") == objective.owner), key=lambda t: t.number,
                default=None)
        if t is not None and not t.user_attrs.get("surplus"):
            what = ("over budget" if t.user_attrs.get("evaluated") is False and "map" not in t.user_attrs
                    else f"duplicate of {t.user_attrs['duplicate_of']}" if "duplicate_of" in t.user_attrs
                    else f"accuracy {100 * t.user_attrs['map']:.1f}" if "map" in t.user_attrs else t.state.name)
            log.info("worker %d trial %d (%.2f ms, %s): %s", worker, t.number,
                     t.user_attrs.get("predicted_ms", float("nan")), what,
                     progress(last, settings.trials, settings.budget_ms, done0, t0).line())
    return ran


def _spawned_worker(settings: SearchSettings, worker: int) -> None:
    """Entry point of a spawned worker process: logs like the CLI (ednas INFO, others WARNING)."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("ednas").setLevel(logging.INFO)
    try:
        with sigterm_as_interrupt():
            run_worker(settings, worker)
    except EdnasError as exc:
        log.error("worker %d: %s", worker, exc)
        raise SystemExit(2) from None
    except KeyboardInterrupt as exc:  # the command line reports it, once: no traceback per worker
        raise SystemExit(143 if isinstance(exc, Terminated) else 130) from None


def run_workers(settings: SearchSettings, workers: int, evaluator: Evaluator) -> None:
    """Run `workers` local workers on the study: worker 0 in this process (with `evaluator`),
    the others spawned. A spawned worker that dies is reported; the others retry its trial."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_spawned_worker, args=(settings, i), name=f"ednas-search-{i}")
             for i in range(1, workers)]
    for p in procs:
        p.start()
    try:
        run_worker(settings, 0, evaluator)
    finally:
        for p in procs:
            p.join()
    for p in procs:
        if p.exitcode:
            log.warning("worker %s ended with exit code %s (see above); a trial it left running is retried",
                        p.name, p.exitcode)


# -- the table and the results ----------------------------------------------------------------
def check_table(path: Path, space: SearchSpace, precision: str, threads: int | None) -> Any:
    """The latency table for this search: the supernet's space, the asked precision and
    threads (None: the table's), and this CPU (ednas.latency.target.check_table)."""
    from ednas.latency import LatencyTable
    from ednas.latency.table import meta_path, read_meta
    from ednas.latency.target import LatencyTarget

    if threads is None and meta_path(Path(path)).is_file():
        threads = read_meta(meta_path(Path(path))).threads
    return LatencyTable.load(path, space.fingerprint(), target=LatencyTarget.here(precision, threads or 2))


def trial_rows(study: optuna.Study, budget_ms: float) -> list["Row"]:
    """trials.csv rows of every trial, by number."""
    from ednas.search.run_folder import Row, trial_name

    rows = []
    for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        ms = t.user_attrs.get("predicted_ms")
        rows.append(Row(number=t.number, name=trial_name(t.number), kind="trial", state=t.state.name,
                        arch_hash=t.user_attrs.get("arch_hash", ""), genes=dict(t.params),
                        predicted_ms=ms, map=t.user_attrs.get("map"),
                        feasible=ms is not None and ms <= budget_ms))
    return rows


def baseline_archs(space: SearchSpace) -> dict[str, ArchSpec]:
    """The base and its uniform 0.75 / 0.5 backbone scalings (those the space can price)."""
    archs = {"base": space.base}
    for width in (0.75, 0.5):
        if width in space.config.backbone.widths:
            archs[f"uniform_{width:g}"] = space.uniform(width)
    return archs
