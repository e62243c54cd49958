"""Run an experiment: every (point, replication) on the executor, each written as it ends.

Seeds come from one root, ``numpy.random.SeedSequence(spec.seed).spawn(replications)``,
and replication ``r`` uses the same seed at every design point: *common random numbers*,
so points differ by their factors and not by their draws.  A run that fails is recorded
with its error (``status`` -1 and ``error`` in the store) and the others go on.  Running
the same experiment into the same store again skips the runs already there.

Examples
--------
>>> run_experiment("ems_fleet_call_rate", "runs/ems.zarr", workers=2)   # doctest: +SKIP
"""

from __future__ import annotations

import importlib
import os
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from experiments.design import design_points
from experiments.executor import Executor, default_workers
from experiments.spec import ExperimentSpec, load_experiment
from experiments.store import DONE, FAILED, PENDING, ExperimentStore

__all__ = ["FLUSH_S", "ExperimentRun", "ProgressBar", "replication_seeds", "run_experiment", "run_one"]

#: runs that finish within this many seconds of the last write are written together
FLUSH_S = 0.5


def replication_seeds(root: int, replications: int) -> list[int]:
    """One seed per replication, spawned from ``root`` (the same at every point)."""
    children = np.random.SeedSequence(int(root)).spawn(int(replications))
    return [int(c.generate_state(1, dtype=np.uint32)[0]) for c in children]


# ------------------------------------------------------------------------ one run (on a worker)


def _call_function(function: str, values: Mapping[str, Any], seed: int) -> dict[str, float]:
    module, _, attr = function.partition(":")
    func = getattr(importlib.import_module(module), attr)
    return {k: float(v) for k, v in func(dict(values), seed).items()}


def _run_twin(scenario: Mapping[str, Any], seed: int, series: list[str]) -> dict[str, Any]:
    from scenarios import load_scenario
    from twin.model import Twin

    tw = Twin(load_scenario(dict(scenario)), seed=int(seed))
    tw.run()
    out: dict[str, Any] = {"kpis": {k: float(v) for k, v in tw.kpis().items()}}
    if series:
        ds = tw.results()
        missing = [s for s in series if s not in ds.variables]
        if missing:
            raise KeyError(
                f"outputs.series: no result variable {', '.join(missing)} (there: {', '.join(ds.data_vars)})"
            )
        out["series"] = {s: (ds[s].dims, np.asarray(ds[s].values, dtype=np.float64), dict(ds[s].attrs)) for s in series}
        dims = {d for s in series for d in ds[s].dims}
        out["coords"] = {d: (np.asarray(ds[d].values), dict(ds[d].attrs)) for d in dims if d in ds.coords}
    return out


def run_one(
    point: int,
    rep: int,
    seed: int,
    *,
    scenario: Mapping[str, Any] | None = None,
    function: str | None = None,
    values: Mapping[str, Any] | None = None,
    series: list[str] | None = None,
) -> dict[str, Any]:
    """One run (the task a worker runs); never raises: a failure comes back as ``error``.

    Parameters
    ----------
    point, rep, seed : int
        Where the run goes in the store, and its seed.
    scenario : mapping, optional
        The resolved scenario with the point's factor values written in.
    function : str, optional
        ``"module:callable"`` of an analytical model (instead of ``scenario``).
    values : mapping, optional
        The point's factor values (for ``function``).
    series : list of str, optional
        Result variables to send back besides the KPIs.

    Returns
    -------
    dict
        ``point``, ``rep``, ``kpis``, ``series``, ``coords``, ``error`` (None or the
        message), ``wall_s``.
    """
    t0 = time.perf_counter()
    result: dict[str, Any] = {"point": point, "rep": rep, "error": None, "kpis": {}}
    try:
        if function is not None:
            result["kpis"] = _call_function(function, values or {}, seed)
        else:
            result.update(_run_twin(scenario or {}, seed, list(series or [])))
    except Exception as exc:  # recorded in the store; the other runs go on
        last = traceback.extract_tb(exc.__traceback__)[-1:]
        where = f" (at {last[0].filename}:{last[0].lineno})" if last else ""
        result["error"] = f"{type(exc).__name__}: {exc}{where}"
    result["wall_s"] = time.perf_counter() - t0
    return result


# ------------------------------------------------------------------------ progress


class ProgressBar:
    """A rich progress bar: runs done/failed of all, throughput and ETA (a context manager).

    Parameters
    ----------
    total : int
        Runs in all.
    already : int, optional
        Runs found finished in the store.
    console : rich.console.Console, optional
    """

    def __init__(self, total: int, *, already: int = 0, console: Any = None, label: str = "runs") -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.failed = 0
        self._t0 = time.perf_counter()
        self._start = already
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("failed {task.fields[failed]}"),
            TextColumn("{task.fields[rate]}"),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self.task = self.progress.add_task(label, total=total, completed=already, failed=0, rate="")

    def __call__(self, done: int, failed: int, total: int) -> None:
        """Update with runs finished (done or failed) and failed so far."""
        elapsed = max(time.perf_counter() - self._t0, 1e-9)
        rate = (done - self._start) / elapsed
        self.progress.update(self.task, completed=done, total=total, failed=failed, rate=f"{rate:.2f} runs/s")

    def __enter__(self) -> ProgressBar:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()


# ------------------------------------------------------------------------ the experiment


@dataclass
class ExperimentRun:
    """What :func:`run_experiment` did.

    Attributes
    ----------
    store : Path
    runs, done, failed, skipped : int
        Runs in all; done and failed by the end; found finished and skipped.
    wall_s : float
        Seconds it took (start-up of the executor included).
    """

    store: Path
    runs: int
    done: int
    failed: int
    skipped: int
    wall_s: float


def progress_reporter(
    progress: Any, total: int, *, skipped: int, failed: int, label: str = "runs"
) -> tuple[ProgressBar | None, Callable[[dict[str, Any]], None]]:
    """A progress bar (``progress is True``) or the caller's callback, and the ``on_result``
    that counts finished and failed runs into it; shared by experiments and optimisation.
    """
    bar = ProgressBar(total, already=skipped, label=label) if progress is True else None
    report = bar if bar is not None else (progress if callable(progress) else None)
    counts = {"finished": skipped, "failed": failed}

    def on_result(result: dict[str, Any]) -> None:
        counts["finished"] += 1
        counts["failed"] += result["error"] is not None
        if report is not None:
            report(counts["finished"], counts["failed"], total)

    return bar, on_result


def _tasks(spec: ExperimentSpec, store: ExperimentStore, points: list[int], *, retry_failed: bool) -> list[tuple]:
    status = store.status
    seeds = store.seeds
    todo = []
    table = store.all_factor_values()
    for p in points:
        values = table[p]
        scenario = spec.scenario_for(values) if spec.base is not None else None
        for r, seed in enumerate(seeds):
            if status[p, r] == PENDING or (retry_failed and status[p, r] == FAILED):
                todo.append((p, r, seed, scenario, values))
    return todo


def execute(
    spec: ExperimentSpec,
    store: ExperimentStore,
    executor: Executor,
    tasks: list[tuple],
    *,
    on_result: Callable[[dict[str, Any]], None] | None = None,
) -> None:
    """Run ``tasks`` (from :func:`_tasks`) on ``executor``, writing each result as it lands."""
    from twin.results import kpi_labels

    labels = {k: tuple(v) for k, v in kpi_labels().items()} if spec.base is not None else {}
    items = [(p, r, seed) for (p, r, seed, _, _) in tasks]
    if not items:
        return
    from twin.emergency.dispatch import allowed_plugins

    # per-task keyword arguments differ: wrap them as one positional mapping each
    args = [(p, r, seed, {"scenario": sc, "values": v}) for (p, r, seed, sc, v) in tasks]

    buffer: list[dict[str, Any]] = []
    last = time.perf_counter()
    results = executor.as_completed(_task, args, function=spec.function, series=spec.series, plugins=allowed_plugins())
    try:
        for _, result in results:
            buffer.append(result)
            now = time.perf_counter()
            if now - last >= FLUSH_S:  # slow runs: each written as it lands; fast ones, in batches
                store.write_runs(buffer, labels)
                buffer, last = [], now
            if on_result is not None:
                on_result(result)
    finally:
        store.write_runs(buffer, labels)


def _task(
    point: int,
    rep: int,
    seed: int,
    per_task: dict[str, Any],
    *,
    function: str | None,
    series: list[str],
    plugins: tuple[str, ...] = (),
) -> dict[str, Any]:
    if plugins:  # the plug-ins this process was told to trust, trusted on the worker too
        from twin.emergency.dispatch import allow_plugins

        allow_plugins(plugins)
    values = per_task["values"]
    return run_one(point, rep, seed, scenario=per_task["scenario"], function=function, values=values, series=series)


def _open(spec_source: Any, out: str | os.PathLike[str], overwrite: bool) -> tuple[ExperimentSpec, ExperimentStore]:
    spec = spec_source if isinstance(spec_source, ExperimentSpec) else load_experiment(spec_source)
    points = design_points(spec)
    seeds = replication_seeds(spec.seed, spec.replications)
    return spec, ExperimentStore(out, spec, points, seeds, overwrite=overwrite)


def run_experiment(
    spec: Any,
    out: str | os.PathLike[str],
    *,
    executor: Executor | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: bool | Callable[[int, int, int], None] = False,
    retry_failed: bool = False,
    overwrite: bool = False,
) -> ExperimentRun:
    """Run an experiment into a Zarr store (resuming one already there).

    Parameters
    ----------
    spec : ExperimentSpec, path, built-in name or mapping
        The experiment (see :func:`experiments.spec.load_experiment`).
    out : path
        The store; an existing store of the same experiment is resumed.
    executor : Executor, optional
        Where runs go; default: a new one from ``scheduler``/``workers``, closed at the end.
    workers : int, optional
        Local worker processes (default: the cores); 0 runs in this process.
    scheduler : str, optional
        Address of a running Dask scheduler.
    progress : bool or callable, optional
        ``True``: a rich progress bar; a callable gets ``(finished, failed, total)``.
    retry_failed : bool, optional
        Run again the runs that failed last time (default: keep their errors).
    overwrite : bool, optional
        Replace a store of another experiment at ``out``.

    Returns
    -------
    ExperimentRun

    Raises
    ------
    ExperimentError
        A bad spec (before any run), or ``out`` holding something else.
    """
    t0 = time.perf_counter()
    spec, store = _open(spec, out, overwrite)
    if spec.design["kind"] == "optimize":
        from experiments.optimize import optimize

        return optimize(spec, store, executor=executor, workers=workers, scheduler=scheduler, progress=progress)
    n_p, n_r = store.status.shape
    tasks = _tasks(spec, store, list(range(n_p)), retry_failed=retry_failed)
    total = n_p * n_r
    skipped = total - len(tasks)
    own = executor is None and bool(tasks)
    if own:
        n = default_workers() if workers is None else workers
        executor = Executor(scheduler=scheduler, workers=min(n, len(tasks)))
    failed = int((store.status == FAILED).sum()) if not retry_failed else 0
    bar, on_result = progress_reporter(progress, total, skipped=skipped, failed=failed)

    try:
        if bar is not None:
            bar.__enter__()
        if tasks:
            assert executor is not None
            execute(spec, store, executor, tasks, on_result=on_result)
    finally:
        if bar is not None:
            bar.__exit__()
        if own and executor is not None:
            executor.close()
    status = store.status
    return ExperimentRun(
        Path(out), total, int((status == DONE).sum()), int((status == FAILED).sum()), skipped, time.perf_counter() - t0
    )
