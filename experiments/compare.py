"""Baseline versus scenario, over replications, with confidence intervals.

:func:`compare` runs a baseline and a scenario ``N`` times each with *common random
numbers*: replication ``i`` of both uses seed ``seed + i``, so both see the same draws
wherever they do the same thing (the same trips, unless the scenario changes demand) and
the paired difference ``scenario_i - baseline_i`` carries little noise. Each KPI is
reported as the baseline mean, the scenario mean, the mean paired difference and its
95 % confidence interval from the t-distribution with ``N - 1`` degrees of freedom; a
difference whose interval contains zero is *not significant*.

The runs are independent tasks on an :class:`~experiments.executor.Executor` (Dask
worker processes by default). Each task gets its scenario as a resolved, pickle-safe
dict, re-validates it, runs the :class:`~twin.model.Twin` and sends back only what the
comparison keeps (KPIs and a few arrays), not the twin.

The comparison folder (written atomically, see :func:`write_comparison`) holds:

- ``summary.json``: the KPI table with intervals, seeds, intervened links, timing;
- ``comparison.nc``: a Dataset with a ``variant`` dim (``baseline``, ``scenario``):
  link speed and outflow (mean over replications), network time series and trip travel
  times per replication, every KPI per replication, and the run's geometry coordinates;
- ``baseline/`` and ``scenario/``: replication 0's run folders, for drill-down.

Resuming: each replication is kept as it lands, in a checkpoint folder beside the
comparison folder (``.<out>.replications/``, see :func:`checkpoint_for`), one checksummed
records file per run (:func:`twin.snapshot.records_bytes`: plain data, read without
running code).  Running the same comparison again (same scenarios, seeds, response and
code version: its ``key.json``) takes the runs found there and runs only the rest, so a
killed comparison loses at most the runs that were in flight, and the resumed result is
the same as an uninterrupted one.  The folder is removed once the comparison folder is
written; a checkpoint of another comparison at the same place is replaced.

Nothing here cares *what* differs between the two scenarios, as long as they share the
road network and the recorded time axis.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import xarray as xr

from basics.atomic import json_safe, replace_folder
from basics.errors import InputError
from experiments.checkpoint import Checkpoint, _checkpoint_key, checkpoint_for
from experiments.executor import Executor, default_workers
from experiments.replication import _LINK, _SERIES, _TRIP, ComparisonError, Replication, run_replication
from scenarios import Scenario, load_scenario, scenario_hash
from twin.emergency.dispatch import allow_plugins, allowed_plugins
from twin.model import build_city
from twin.results import package_version, write_netcdf

__all__ = [
    "CONFIDENCE",
    "RESPONSES",
    "VARIANTS",
    "Comparison",
    "ComparisonError",
    "PairedDifference",
    "Replication",
    "compare",
    "paired_difference",
    "run_replication",
    "write_comparison",
    "checkpoint_for",
    "Checkpoint",
]

log = logging.getLogger(__name__)

#: confidence level of the intervals
CONFIDENCE = 0.95
#: the two variants, in the order of the ``variant`` dim
VARIANTS = ("baseline", "scenario")
#: what a comparison compares: the day as simulated once, or each variant after travellers adapted
RESPONSES = {
    "day1": "day 1: the immediate response (travellers route on the day's own travel times)",
    "equilibrium": "at equilibrium: each variant after travellers adapted (day-to-day learning, twin equilibrate)",
}
# ------------------------------------------------------------------------ statistics


class PairedDifference(NamedTuple):
    """One KPI over paired replications.

    Attributes
    ----------
    baseline, scenario : float
        Means over the replications (NaN values left out).
    difference : float
        Mean of ``scenario_i - baseline_i`` over the replications where both are finite.
    ci_low, ci_high : float
        Confidence interval of the mean difference (NaN with fewer than 2 pairs).
    significant : bool
        The interval excludes zero.
    n : int
        Pairs used.
    """

    baseline: float
    scenario: float
    difference: float
    ci_low: float
    ci_high: float
    significant: bool
    n: int


def _nanmean(x: np.ndarray) -> float:
    x = x[np.isfinite(x)]
    return float(x.mean()) if x.size else math.nan


def paired_difference(
    baseline: np.ndarray, scenario: np.ndarray, *, confidence: float = CONFIDENCE
) -> PairedDifference:
    """Mean paired difference with a t-interval.

    Parameters
    ----------
    baseline, scenario : array of float
        One value per replication, paired by position (same seed).
    confidence : float, optional
        Confidence level (default 0.95).

    Returns
    -------
    PairedDifference
        With ``d_i = scenario_i - baseline_i`` over pairs where both are finite, ``n``
        of them: ``mean(d) +- t_{(1+confidence)/2, n-1} * sd(d) / sqrt(n)`` (``sd`` with
        ``n - 1`` in the denominator). Identical pairs give ``[0, 0]``: not significant.
        A constant non-zero difference gives a zero-width interval away from zero:
        significant.
    """
    from scipy import stats

    b = np.asarray(baseline, dtype=np.float64)
    s = np.asarray(scenario, dtype=np.float64)
    if b.shape != s.shape or b.ndim != 1:
        raise InputError(f"expected two 1-d arrays of equal length, got shapes {b.shape} and {s.shape}")
    ok = np.isfinite(b) & np.isfinite(s)
    d = s[ok] - b[ok]
    n = int(d.size)
    mean = float(d.mean()) if n else math.nan
    lo = hi = math.nan
    if n >= 2:
        sd = float(d.std(ddof=1))
        half = float(stats.t.ppf(0.5 + confidence / 2.0, n - 1)) * sd / math.sqrt(n)
        lo, hi = mean - half, mean + half
    significant = bool(n >= 2 and (lo > 0.0 or hi < 0.0))
    return PairedDifference(_nanmean(b), _nanmean(s), mean, lo, hi, significant, n)


# ------------------------------------------------------------------------ the comparison


@dataclass
class Comparison:
    """A finished comparison: its summary, its Dataset, and replication 0's run folders.

    Attributes
    ----------
    summary : dict
        What ``summary.json`` holds (NaN as ``None``).
    dataset : xarray.Dataset
        What ``comparison.nc`` holds.
    run_files : dict
        ``{"baseline": {file: bytes}, "scenario": {...}}``: replication 0's run folders.
    out : Path or None
        The folder written, if any.
    """

    summary: dict[str, Any]
    dataset: xr.Dataset
    run_files: dict[str, dict[str, bytes]]
    out: Path | None = None

    def kpi(self, key: str) -> dict[str, Any]:
        """The summary's entry of one KPI."""
        for row in self.summary["kpis"]:
            if row["key"] == key:
                return row
        raise KeyError(f"no KPI {key!r}; known: {', '.join(r['key'] for r in self.summary['kpis'])}")

    def write(self, out: str | os.PathLike[str]) -> Path:
        """Write the comparison folder (see :func:`write_comparison`)."""
        self.out = write_comparison(self, out)
        return self.out


def _load(source: Any, label: str):

    if isinstance(source, Scenario):
        return source
    if source is None:
        raise ComparisonError(f"no {label} scenario given")
    return load_scenario(source)


def _check_comparable(base, scen) -> None:
    """Refuse pairs whose link-level results cannot be lined up (before running)."""
    problems = []
    if base.time != scen.time:
        problems.append("their time sections differ (start, duration or step)")
    if base.outputs.interval != scen.outputs.interval:
        problems.append("their outputs.interval differ")
    if base.city != scen.city:
        a, b = build_city(base.city).network, build_city(scen.city).network
        same = a.n_links == b.n_links and np.array_equal(a.src, b.src) and np.array_equal(a.dst, b.dst)
        if not same:
            problems.append(
                f"their road networks differ ({a.n_links:,} and {b.n_links:,} links): express "
                "the change as an intervention on one city"
            )
    if problems:
        raise ComparisonError(
            f"baseline {base.name!r} and scenario {scen.name!r} cannot be compared link by link: " + "; ".join(problems)
        )


def compare(  # noqa: PLR0913  (keyword-only options of one call, each documented)
    baseline: Any,
    scenario: Any,
    *,
    replications: int = 10,
    seed: int | None = None,
    executor: Executor | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    out: str | os.PathLike[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
    confidence: float = CONFIDENCE,
    response: str = "day1",
    iterations: int | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    resume: bool = True,
) -> Comparison:
    """Run baseline and scenario with common random numbers and compare them.

    Parameters
    ----------
    baseline, scenario : Scenario, path, built-in name or mapping
        The two scenarios (see :func:`scenarios.load_scenario`).
    replications : int, optional
        Runs of each (default 10; at least 2 for an interval).
    seed : int, optional
        Replication ``i`` uses seed ``seed + i`` for both (default: the baseline's seed).
    executor : Executor, optional
        Where runs go; default: a new one from ``scheduler``/``workers``, closed at the end.
    scheduler : str, optional
        Address of a running Dask scheduler.
    workers : int, optional
        Local worker processes (default: the cores, at most one per run); 0 runs serially
        in this process.
    out : path, optional
        Write the comparison folder there.
    progress : callable, optional
        Called with ``(runs done, runs in all)``.
    confidence : float, optional
        Confidence level of the intervals (default 0.95).
    response : {"day1", "equilibrium"}, optional
        ``day1`` (default): each run is the day simulated once, the immediate response.
        ``equilibrium``: each variant is equilibrated (:func:`twin.equilibrium.equilibrate`;
        every day of replication ``i`` of both variants uses seed ``seed + i``), the KPIs are
        those of its final day, and the summary also holds the day-1 table (``day1_kpis``)
        of the same runs. The summary's ``response`` and ``response_label`` say which.
    iterations : int, optional
        Most days per equilibrium (default: each scenario's ``traffic.equilibrium``).
    checkpoint : path, optional
        Keep each finished replication in this folder as it lands and take those already
        there from an earlier try of the same comparison (see the module docstring).
        Default: :func:`checkpoint_for` ``out`` when ``out`` is given (removed once ``out`` is
        written), else none.
    resume : bool, optional
        ``False``: start afresh (an existing checkpoint is replaced).

    Returns
    -------
    Comparison

    Raises
    ------
    ComparisonError
        Fewer than 2 replications, or scenarios with different networks or time axes.
    scenarios.ScenarioError
        A scenario that cannot be read.
    """
    _check_options(replications, confidence=confidence, response=response, iterations=iterations)
    t_start = time.perf_counter()
    scen, seeds, hashes, tasks = _plan(baseline, scenario, replications=int(replications), seed=seed)
    if checkpoint is None and out is not None:
        checkpoint = checkpoint_for(out)
    key = _checkpoint_key(hashes, seeds, response, iterations)
    ckpt = None if checkpoint is None else Checkpoint(checkpoint, key, resume=resume)
    options = {"expect_hashes": hashes, "response": response, "iterations": iterations}
    reps, timing = _run_all(
        tasks,
        executor,
        ckpt=ckpt,
        scheduler=scheduler,
        workers=workers,
        progress=progress,
        options=options,
        since=t_start,
    )
    t_runs_end = time.perf_counter()
    result = _assemble(reps, scen, seeds, response=response, confidence=confidence)
    log.info("comparison assembled in %.1f s", time.perf_counter() - t_runs_end)
    result.summary.update(wall_s=time.perf_counter() - t_start, **timing, confidence=confidence)
    if out is not None:
        result.write(out)
        if ckpt is not None and ckpt.folder == checkpoint_for(out):
            ckpt.discard()
    return result


def _run_all(
    tasks: list,
    executor: Executor | None,
    *,
    ckpt: Checkpoint | None,
    scheduler: str | None,
    workers: int | None,
    progress: Callable[[int, int], None] | None,
    options: dict,
    since: float,
) -> tuple[list, dict]:
    """Run the tasks the checkpoint does not hold, on ``executor`` (or on a new one, closed at the end).

    Returns every replication (kept and new) and the timings for the summary: ``workers``
    (the executor's slots), ``runs_wall_s``, ``run_s`` (the runs' own times added up) and
    ``startup_s`` (the executor's). ``since``: when the comparison started (for the log).
    """
    reps, tasks_left = _taken_from(ckpt, tasks)
    own = executor is None
    if own and tasks_left:
        n = default_workers() if workers is None else workers
        executor = Executor(scheduler=scheduler, workers=min(n, len(tasks_left)))
    t_runs = time.perf_counter()
    with _closing(executor if own else None):
        _run_tasks(executor, tasks_left, reps, n_tasks=len(tasks), ckpt=ckpt, progress=progress, task_options=options)
        runs_wall = time.perf_counter() - t_runs
        slots = executor.n_workers if executor is not None else 0
        startup = executor.start_s if executor is not None else 0.0
    log.info("%d runs in %.1f s on %d slot(s) (set-up %.1f s)", len(tasks), runs_wall, slots, t_runs - since)
    return reps, {
        "workers": int(slots),
        "runs_wall_s": runs_wall,
        "run_s": float(sum(r.wall_s for r in reps)),
        "startup_s": float(startup),
    }


def _plan(baseline: Any, scenario: Any, *, replications: int, seed: int | None):
    """Load and check both scenarios; their seeds, hashes and the runs to make."""
    scen = {"baseline": _load(baseline, "baseline"), "scenario": _load(scenario, "scenario")}
    _check_comparable(scen["baseline"], scen["scenario"])
    first = int(scen["baseline"].seed if seed is None else seed)
    if first < 0:
        raise ComparisonError(f"seed must be 0 or more, got {first}")
    seeds = [first + i for i in range(replications)]
    resolved = {v: scen[v].resolved() for v in VARIANTS}
    hashes = {v: scenario_hash(scen[v], include_seed=False) for v in VARIANTS}
    tasks = [(resolved[v], s, v, i) for i, s in enumerate(seeds) for v in VARIANTS]
    return scen, seeds, hashes, tasks


@contextlib.contextmanager
def _closing(executor: Executor | None) -> Iterator[None]:
    """Close ``executor`` (one :func:`compare` started) when the block ends, however it ends."""
    try:
        yield
    finally:
        if executor is not None:
            executor.close()


def _assemble(reps: list[Replication], scen, seeds: list[int], *, response: str, confidence: float) -> Comparison:
    """The comparison's summary, Dataset and replication-0 run files from its replications."""
    by = {v: sorted((r for r in reps if r.variant == v), key=lambda r: r.index) for v in VARIANTS}
    dataset = _dataset(by, scen, seeds)
    summary = _summary(by, scen, seeds, confidence=confidence)
    summary["response"] = response
    summary["response_label"] = RESPONSES[response]
    if response == "equilibrium":
        _add_day1(by, scen, seeds, summary=summary, dataset=dataset, confidence=confidence)
    dataset.attrs["response"] = response
    dataset.attrs["response_label"] = RESPONSES[response]
    files = {v: dict(by[v][0].run_files or {}) for v in VARIANTS}
    return Comparison(summary=summary, dataset=dataset, run_files=files)


def _check_options(replications: Any, *, confidence: float, response: str, iterations: int | None) -> None:
    """Refuse options :func:`compare` cannot use, before anything is loaded or run."""
    if isinstance(replications, bool) or not isinstance(replications, (int, np.integer)) or replications < 2:
        raise ComparisonError(
            f"replications must be a whole number of at least 2 (a confidence interval needs the "
            f"spread of two or more paired runs), got {replications!r}"
        )
    if not 0.0 < confidence < 1.0:
        raise ComparisonError(f"confidence must lie between 0 and 1, got {confidence!r}")
    if response not in RESPONSES:
        raise ComparisonError(f"response must be one of {', '.join(map(repr, RESPONSES))}, got {response!r}")
    if iterations is not None and (isinstance(iterations, bool) or not 1 <= int(iterations) <= 1000):
        raise ComparisonError(f"iterations must be from 1 to 1000, got {iterations!r}")


def _taken_from(ckpt: Checkpoint | None, tasks: list[tuple]) -> tuple[list[Replication], list[tuple]]:
    """The replications an earlier try left in ``ckpt`` (none without one), and the tasks still to run."""
    if ckpt is None:
        return [], list(tasks)
    found = ckpt.load()
    reps = [found[(v, i)] for (_, _, v, i) in tasks if (v, i) in found]
    tasks_left = [t for t in tasks if (t[2], t[3]) not in found]
    if reps:
        log.info("resuming: %d of %d runs taken from %s", len(reps), len(tasks), ckpt.folder)
    return reps, tasks_left


def _run_tasks(
    executor: Executor | None,
    tasks: list[tuple],
    reps: list[Replication],
    *,
    n_tasks: int,
    ckpt: Checkpoint | None,
    progress: Callable[[int, int], None] | None,
    task_options: dict[str, Any],
) -> None:
    """Run ``tasks`` on ``executor``, appending each replication to ``reps`` as it lands."""
    if progress is not None and reps:
        progress(len(reps), n_tasks)
    if not tasks or executor is None:
        return
    for _, rep in executor.as_completed(_task, tasks, plugins=allowed_plugins(), **task_options):
        if ckpt is not None:
            ckpt.save(rep)  # kept as it lands: a killed comparison loses only the runs in flight
        reps.append(rep)
        if progress is not None:
            progress(len(reps), n_tasks)


def _add_day1(by, scen, seeds, *, summary: dict, dataset: xr.Dataset, confidence: float) -> None:
    """Add the day-1 table and KPIs of equilibrated replications to ``summary`` and ``dataset``."""
    day1 = {
        v: [
            Replication(r.variant, r.index, r.seed, r.scenario_hash, r.day1_kpis or {}, r.data, labels=r.labels)
            for r in by[v]
        ]
        for v in VARIANTS
    }
    summary["day1_kpis"] = _summary(day1, scen, seeds, confidence=confidence)["kpis"]
    labels = _labels(day1)
    for key in _kpi_keys(day1):
        label, unit = labels.get(key, (key, ""))
        dataset[f"day1_kpi_{key}"] = xr.Variable(
            ("variant", "replication"),
            _kpi_matrix(day1, key),
            attrs={"units": unit or "1", "long_name": f"{label}, day 1 (the immediate response)"},
        )


def _task(
    scenario: dict,
    seed: int,
    variant: str,
    index: int,
    *,
    expect_hashes: dict,
    response: str = "day1",
    iterations: int | None = None,
    plugins: tuple[str, ...] = (),
) -> Replication:
    """One replication on a worker: the caller's trusted plug-ins, then :func:`run_replication`."""
    allow_plugins(plugins)  # the dispatch plug-ins the caller trusts (--allow-plugins), trusted here too
    return run_replication(
        scenario,
        seed,
        variant=variant,
        index=index,
        expect_hash=expect_hashes[variant],
        keep_run=index == 0,
        response=response,
        iterations=iterations,
    )


# ------------------------------------------------------------------------ assembling


def _kpi_keys(by: dict[str, list[Replication]]) -> list[str]:
    keys: list[str] = []
    for v in VARIANTS:
        for r in by[v]:
            keys.extend(k for k in r.kpis if k not in keys)
    return keys


def _kpi_matrix(by: dict[str, list[Replication]], key: str) -> np.ndarray:
    """(variant, replication) values of one KPI; NaN where a run lacks it."""
    return np.array([[r.kpis.get(key, math.nan) for r in by[v]] for v in VARIANTS], dtype=np.float64)


def _labels(by: dict[str, list[Replication]]) -> dict[str, tuple[str, str]]:
    """KPI labels and units, as the runs reported them."""
    out: dict[str, tuple[str, str]] = {}
    for v in VARIANTS:
        for r in by[v]:
            out.update(r.labels)
    return out


def _summary(by, scen, seeds, *, confidence: float) -> dict[str, Any]:
    labels = _labels(by)
    rows = []
    for key in _kpi_keys(by):
        m = _kpi_matrix(by, key)
        pd = paired_difference(m[0], m[1], confidence=confidence)
        label, unit = labels.get(key, (key, ""))
        rows.append(
            {
                "key": key,
                "label": label,
                "unit": unit,
                "baseline": pd.baseline,
                "scenario": pd.scenario,
                "difference": pd.difference,
                "ci_low": pd.ci_low,
                "ci_high": pd.ci_high,
                "significant": pd.significant,
            }
        )
    return {
        "kind": "comparison",
        "baseline": scen["baseline"].name,
        "scenario": scen["scenario"].name,
        "replications": len(seeds),
        "seeds": list(seeds),
        "kpis": rows,
        "intervened_links": list(by["scenario"][0].intervened),
    }


def _attrs(var: xr.Variable, long_name: str | None = None) -> dict[str, str]:
    attrs = {"units": var.attrs.get("units", "1"), "long_name": var.attrs.get("long_name", "")}
    if long_name:
        attrs["long_name"] = long_name
    return attrs


def _dataset(by: dict[str, list[Replication]], scen, seeds: list[int]) -> xr.Dataset:
    """The comparison Dataset (see the module docstring)."""
    ref = by["baseline"][0]
    _check_aligned(by)
    data: dict[str, xr.Variable] = {}
    for name in _LINK:
        stack = np.stack([np.stack([r.data[name].values.astype(np.float64) for r in by[v]]) for v in VARIANTS])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN cells stay NaN
            mean = np.nanmean(stack, axis=1)
        base = ref.data[name].variable
        data[name] = xr.Variable(
            ("variant", "time", "link"),
            mean,
            attrs=_attrs(base, f"{base.attrs.get('long_name', name)}, mean over replications"),
        )
    for name in _SERIES:
        arr = np.stack([np.stack([r.data[name].values for r in by[v]]) for v in VARIANTS])
        data[name] = xr.Variable(("variant", "replication", "time"), arr, attrs=_attrs(ref.data[name].variable))
    data[_TRIP], same_trips = _trip_times(by, n_replications=len(seeds))

    labels = _labels(by)
    for key in _kpi_keys(by):
        label, unit = labels.get(key, (key, ""))
        data[f"kpi_{key}"] = xr.Variable(
            ("variant", "replication"), _kpi_matrix(by, key), attrs={"units": unit or "1", "long_name": label}
        )
    coords = _coords(ref, seeds, trips=None if same_trips else data[_TRIP].shape[2])
    b, s = by["baseline"][0], by["scenario"][0]
    attrs = {
        "title": f"city twin comparison: {scen['scenario'].name} vs {scen['baseline'].name}",
        "kind": "comparison",
        "baseline_name": scen["baseline"].name,
        "scenario_name": scen["scenario"].name,
        "baseline_scenario_hashes": " ".join(r.scenario_hash for r in by["baseline"]),
        "scenario_scenario_hashes": " ".join(r.scenario_hash for r in by["scenario"]),
        "baseline_scenario_hash": b.scenario_hash,
        "scenario_scenario_hash": s.scenario_hash,
        "seeds": np.asarray(seeds, dtype=np.int64),
        "replications": len(seeds),
        "common_random_numbers": "replication i of both variants uses seeds[i]",
        "same_trips": int(same_trips),
        "package_version": package_version(),
    }
    return xr.Dataset(data, coords=coords, attrs=attrs)


def _check_aligned(by: dict[str, list[Replication]]) -> None:
    """Refuse replications whose time axis or link count differs from the baseline's first."""
    ref = by["baseline"][0]
    times = ref.data["time"].values
    n_links = ref.data.sizes["link"]
    for v in VARIANTS:
        for r in by[v]:
            if not np.array_equal(r.data["time"].values, times) or r.data.sizes["link"] != n_links:
                raise ComparisonError(
                    f"{v} replication {r.index} recorded {r.data.sizes['time']} times on "
                    f"{r.data.sizes['link']} links, the baseline {times.size} on {n_links}; "
                    "the two cannot be lined up"
                )


def _trip_times(by: dict[str, list[Replication]], *, n_replications: int) -> tuple[xr.Variable, bool]:
    """Every run's trip travel times (variant, replication, trip) and whether all runs had the same trips.

    Runs with different trip tables are lined up by position and padded with NaN.
    """
    ref = by["baseline"][0]
    trip_ids = [r.data["trip"].values for v in VARIANTS for r in by[v]]
    same_trips = all(ids.shape == trip_ids[0].shape and np.array_equal(ids, trip_ids[0]) for ids in trip_ids)
    n_trips = max(ids.size for ids in trip_ids)
    tt = np.full((2, n_replications, n_trips), np.nan)
    for a, v in enumerate(VARIANTS):
        for b, r in enumerate(by[v]):
            vals = r.data[_TRIP].values
            tt[a, b, : vals.size] = vals
    var = xr.Variable(
        ("variant", "replication", "trip"),
        tt,
        attrs=_attrs(
            ref.data[_TRIP].variable,
            "arrival minus scheduled departure"
            + ("" if same_trips else " (trips differ between runs: by position, NaN-padded)"),
        ),
    )
    return var, same_trips


def _coords(ref: Replication, seeds: list[int], *, trips: int | None) -> dict[str, xr.Variable]:
    """The comparison's coordinates; ``trips``: the trip positions when runs had different trips
    (``None``: the runs' own trip ids).
    """
    coords: dict[str, xr.Variable] = {
        "variant": xr.Variable(
            ("variant",), np.array(VARIANTS, dtype=str), attrs={"units": "1", "long_name": "which scenario"}
        ),
        "replication": xr.Variable(
            ("replication",),
            np.arange(len(seeds), dtype=np.int64),
            attrs={"units": "1", "long_name": "replication number"},
        ),
        "seed": xr.Variable(
            ("replication",),
            np.asarray(seeds, dtype=np.int64),
            attrs={"units": "1", "long_name": "seed of the replication (both variants)"},
        ),
        "time": ref.data["time"].variable,
        "clock": ref.data["clock"].variable,
        "trip": (
            ref.data["trip"].variable
            if trips is None
            else xr.Variable(
                ("trip",),
                np.arange(trips, dtype=np.int64),
                attrs={"units": "1", "long_name": "trip position in each run's trip table"},
            )
        ),
    }
    if ref.geometry is not None:
        coords.update({str(name): c.variable for name, c in ref.geometry.coords.items()})
    return coords


# ------------------------------------------------------------------------ writing


def write_comparison(comparison: Comparison, out: str | os.PathLike[str]) -> Path:
    """Write ``summary.json``, ``comparison.nc``, ``baseline/`` and ``scenario/`` into ``out``.

    Everything is written into a temporary folder beside ``out`` that then replaces
    ``out`` in one rename: an interruption leaves the previous folder (if any) as it was.

    Returns
    -------
    Path
        ``out``.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"comparison folder {str(out)!r} exists and is not a folder; choose another --out")

    def fill(tmp: Path) -> None:
        write_netcdf(comparison.dataset, tmp / "comparison.nc")  # a full disk is an OSError, not a crash in HDF5
        text = json.dumps(json_safe(comparison.summary), indent=2, allow_nan=False)
        (tmp / "summary.json").write_text(text, encoding="utf-8")
        for variant, files in comparison.run_files.items():
            folder = tmp / variant
            folder.mkdir()
            for name, payload in files.items():
                (folder / name).write_bytes(payload)

    return replace_folder(out, fill)
