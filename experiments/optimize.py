"""Optimisation designs: Optuna asks for factor values, each trial runs over the replications.

Each trial is a design point; its value is the KPI's mean over the replications, which use
the same seeds for every trial (common random numbers), so trials are compared on the same
draws.  Trials are asked in batches (``design.batch``, default the executor's slots) and
the batch's runs go to the executor together.  A resumed optimisation tells Optuna the
trials already in the store first.  The sampler is Optuna's TPE, seeded from the spec.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from experiments.executor import Executor, default_workers
from experiments.store import DONE, FAILED, PENDING

if TYPE_CHECKING:
    from experiments.runner import ExperimentRun
    from experiments.spec import ExperimentSpec, Factor
    from experiments.store import ExperimentStore

__all__ = ["optimize", "trial_value"]


def _suggest(trial: Any, f: Factor) -> Any:
    if f.kind == "range":
        lo, hi = f.values
        if f.integer:
            return trial.suggest_int(f.name, int(lo), int(hi))
        return trial.suggest_float(f.name, float(lo), float(hi))
    return trial.suggest_categorical(f.name, list(f.values))


def _distributions(spec: ExperimentSpec) -> dict[str, Any]:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out: dict[str, Any] = {}
    for f in spec.factors:
        if f.kind != "range":
            out[f.name] = CategoricalDistribution(list(f.values))
        elif f.integer:
            out[f.name] = IntDistribution(int(f.values[0]), int(f.values[1]))
        else:
            out[f.name] = FloatDistribution(float(f.values[0]), float(f.values[1]))
    return out


def trial_value(store: ExperimentStore, point: int, kpi: str) -> float:
    """The KPI's mean over a point's replications (NaN unless every one is done)."""
    status = store.status[point]
    if not (status == DONE).all() or kpi not in store.group:
        return math.nan
    values = np.asarray(store.group[kpi][point], dtype=np.float64)
    return float(values.mean())


def _resume(study: Any, spec: ExperimentSpec, store: ExperimentStore, kpi: str) -> int:
    """Tell the study the trials finished earlier; return the next point to ask."""
    import optuna

    status = store.status
    started = [p for p in range(status.shape[0]) if (status[p] != PENDING).any()]
    dists = _distributions(spec)
    for p in started:
        value = trial_value(store, p, kpi)
        state = optuna.trial.TrialState.COMPLETE if math.isfinite(value) else optuna.trial.TrialState.FAIL
        study.add_trial(
            optuna.trial.create_trial(
                params=store.factor_values(p),
                distributions=dists,
                value=value if math.isfinite(value) else None,
                state=state,
            )
        )
    return (max(started) + 1) if started else 0


def optimize(
    spec: ExperimentSpec,
    store: ExperimentStore,
    *,
    executor: Executor | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: bool | Callable[[int, int, int], None] = False,
) -> ExperimentRun:
    """Run an optimisation design into ``store`` (see the module docstring)."""
    import optuna

    from experiments.runner import ExperimentRun, _tasks, execute, progress_reporter

    t0 = time.perf_counter()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    design = spec.design
    kpi = design["kpi"]
    n_p, n_r = store.status.shape
    study = optuna.create_study(direction=design["direction"], sampler=optuna.samplers.TPESampler(seed=spec.seed))
    status = store.status
    skipped = int((status != PENDING).sum())
    # trials a killed run left half-done: finish their replications before resuming
    unfinished = [p for p in range(n_p) if (status[p] != PENDING).any() and (status[p] == PENDING).any()]
    own = executor is None and skipped < n_p * n_r
    if own:
        n = default_workers() if workers is None else workers
        executor = Executor(scheduler=scheduler, workers=n)
    if unfinished:
        assert executor is not None
        execute(spec, store, executor, _tasks(spec, store, unfinished, retry_failed=False))
    nxt = _resume(study, spec, store, kpi)
    batch = design["batch"] or (executor.n_workers if executor is not None else 1)
    total = n_p * n_r
    failed = int((store.status == FAILED).sum())
    bar, on_result = progress_reporter(progress, total, skipped=skipped, failed=failed, label="trials' runs")

    try:
        if bar is not None:
            bar.__enter__()
        while nxt < n_p:
            points = list(range(nxt, min(nxt + batch, n_p)))
            trials = {}
            for p in points:
                trial = study.ask()
                store.set_point(p, {f.name: _suggest(trial, f) for f in spec.factors})
                trials[p] = trial
            assert executor is not None
            execute(spec, store, executor, _tasks(spec, store, points, retry_failed=False), on_result=on_result)
            for p, trial in trials.items():
                value = trial_value(store, p, kpi)
                if math.isfinite(value):
                    study.tell(trial, value)
                else:
                    study.tell(trial, state=optuna.trial.TrialState.FAIL)
            nxt = points[-1] + 1
    finally:
        if bar is not None:
            bar.__exit__()
        if own and executor is not None:
            executor.close()
    status = store.status
    return ExperimentRun(
        Path(store.path),
        total,
        int((status == DONE).sum()),
        int((status == FAILED).sum()),
        skipped,
        time.perf_counter() - t0,
    )
