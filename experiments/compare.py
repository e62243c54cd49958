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

import json
import logging
import math
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import xarray as xr

from experiments.executor import Executor, default_workers
from basics.errors import InputError

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
#: time series and per-trip variables a replication sends back
_SERIES = ("network_vehicles", "trips_arrived")
_LINK = ("link_speed", "link_outflow")
_TRIP = "trip_travel_time_s"
#: dims of the geometry coordinates copied into comparison.nc
_GEOMETRY_DIMS = frozenset({"link", "node", "zone", "facility"})
#: what a comparison compares: the day as simulated once, or each variant after travellers adapted
RESPONSES = {
    "day1": "day 1: the immediate response (travellers route on the day's own travel times)",
    "equilibrium": "at equilibrium: each variant after travellers adapted (day-to-day learning, twin equilibrate)",
}
#: labels of the KPIs an equilibrated replication adds
_EQ_LABELS = {
    "equilibrium_iterations": ("Days to equilibrium", ""),
    "equilibrium_relative_gap": ("Relative gap at equilibrium", ""),
}


class ComparisonError(InputError):
    """Two scenarios that cannot be compared, or a comparison asked for wrongly."""


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
        raise ValueError(f"expected two 1-d arrays of equal length, got shapes {b.shape} and {s.shape}")
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


# ------------------------------------------------------------------------ one run


@dataclass
class Replication:
    """What one run sends back to the comparison (pickle-safe, compact).

    Attributes
    ----------
    variant : str
        ``"baseline"`` or ``"scenario"``.
    index, seed : int
        Replication number and its seed.
    scenario_hash : str
        Hash of the re-validated scenario with this seed.
    kpis : dict
        The run's KPIs.
    data : xarray.Dataset
        ``link_speed``, ``link_outflow`` (time, link), ``network_vehicles``,
        ``trips_arrived`` (time), ``trip_travel_time_s`` (trip), with units.
    intervened : list of int
        Links named by a ``link_intervened`` result variable, if the run has one.
    wall_s : float
        Seconds the run took in its worker (building, simulating, extracting).
    labels : dict of str to (str, str)
        Label and unit of each KPI (so the caller need not import every component).
    geometry : xarray.Dataset or None
        The run's link/node/zone/facility coordinates (replication 0 only).
    run_files : dict of str to bytes, or None
        The run folder's files (replication 0 only).
    """

    variant: str
    index: int
    seed: int
    scenario_hash: str
    kpis: dict[str, float]
    data: xr.Dataset
    intervened: list[int] = field(default_factory=list)
    wall_s: float = 0.0
    labels: dict[str, tuple[str, str]] = field(default_factory=dict)
    geometry: xr.Dataset | None = None
    run_files: dict[str, bytes] | None = None
    day1_kpis: dict[str, float] | None = None


def _intervened_links(ds: xr.Dataset) -> list[int]:
    """Link indices a ``link_intervened`` variable marks (any non-zero over other dims)."""
    if "link_intervened" not in ds.variables:
        return []
    var = ds["link_intervened"]
    values = np.asarray(var.values)
    if "link" in var.dims:
        axes = tuple(i for i, d in enumerate(var.dims) if d != "link")
        marked = np.nan_to_num(values.astype(np.float64), nan=0.0) != 0
        if axes:
            marked = marked.any(axis=axes)
        return [int(i) for i in np.flatnonzero(marked)]
    flat = values.ravel()  # a list of link indices
    if flat.dtype.kind in "iu":
        return sorted({int(i) for i in flat if i >= 0})
    return []


def run_replication(
    scenario: Mapping[str, Any],
    seed: int,
    *,
    variant: str,
    index: int,
    expect_hash: str | None = None,
    keep_run: bool = False,
    response: str = "day1",
    iterations: int | None = None,
) -> Replication:
    """Run one replication in this process (the task a worker runs).

    Parameters
    ----------
    scenario : mapping
        The resolved scenario (:meth:`scenarios.Scenario.resolved`); validated again here.
    seed : int
        The replication's seed (replaces the scenario's).
    variant : str
        ``"baseline"`` or ``"scenario"`` (labels the result).
    index : int
        Replication number.
    expect_hash : str, optional
        The scenario hash (seed excluded) the caller computed; a mismatch (the worker sees
        other files than the caller) raises :class:`ComparisonError`.
    keep_run : bool, optional
        Also return the run folder's files and the geometry coordinates.
    response : {"day1", "equilibrium"}, optional
        ``equilibrium``: equilibrate the scenario (:func:`twin.equilibrium.equilibrate`,
        every day with this seed) and report its final day; its day 1 KPIs come back as
        ``day1_kpis``.
    iterations : int, optional
        Most days when equilibrating (default: the scenario's ``traffic.equilibrium``).

    Returns
    -------
    Replication
    """
    t0 = time.perf_counter()  # imports count: a fresh worker pays them once
    from scenarios import load_scenario, scenario_hash
    from twin.model import Twin
    from twin.results import kpi_labels

    sc = load_scenario(dict(scenario))
    got = scenario_hash(sc, include_seed=False)
    if expect_hash is not None and got != expect_hash:
        raise ComparisonError(
            f"the {variant} scenario {sc.name!r} differs on the worker (hash {got}, expected "
            f"{expect_hash}): its input files, or the project's code, are not the same there"
        )
    eq = None
    if response == "equilibrium":
        from twin.equilibrium import equilibrate

        eq = equilibrate(sc, seed=int(seed), iterations=iterations)
        tw = eq.twin
    else:
        tw = Twin(sc, seed=int(seed))
        tw.run()
    ds = tw.results()
    data = xr.Dataset(
        {name: ds[name].variable for name in (*_LINK, *_SERIES, _TRIP)},
        coords={"time": ds["time"].variable, "clock": ds["clock"].variable, "trip": ds["trip"].variable},
    )
    rep = Replication(
        variant=variant,
        index=int(index),
        seed=int(seed),
        scenario_hash=tw.scenario_hash,
        kpis={k: float(v) for k, v in tw.kpis().items()},
        data=data.load(),
        intervened=_intervened_links(ds),
    )
    if eq is not None:
        rep.kpis.update({"equilibrium_iterations": float(eq.iterations), "equilibrium_relative_gap": eq.final_gap})
        rep.day1_kpis = {k: float(v) for k, v in eq.day1_kpis.items()}
    rep.labels = {k: tuple(v) for k, v in {**kpi_labels(), **_EQ_LABELS}.items() if k in rep.kpis}
    if keep_run:
        rep.geometry = xr.Dataset(
            coords={name: c.variable for name, c in ds.coords.items() if c.dims and set(c.dims) <= _GEOMETRY_DIMS}
        )
        with tempfile.TemporaryDirectory(prefix="twin-rep-") as tmp:
            folder = tw.save(Path(tmp) / "run")
            rep.run_files = {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}
    rep.wall_s = time.perf_counter() - t0
    return rep


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
    from scenarios import Scenario, load_scenario

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
        from twin.model import build_city

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


def compare(
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
    from scenarios import scenario_hash

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
    t_start = time.perf_counter()
    scen = {"baseline": _load(baseline, "baseline"), "scenario": _load(scenario, "scenario")}
    _check_comparable(scen["baseline"], scen["scenario"])
    first = int(scen["baseline"].seed if seed is None else seed)
    if first < 0:
        raise ComparisonError(f"seed must be 0 or more, got {first}")
    seeds = [first + i for i in range(int(replications))]
    resolved = {v: scen[v].resolved() for v in VARIANTS}
    hashes = {v: scenario_hash(scen[v], include_seed=False) for v in VARIANTS}
    tasks = [(resolved[v], s, v, i) for i, s in enumerate(seeds) for v in VARIANTS]

    from twin.emergency.dispatch import allowed_plugins

    if checkpoint is None and out is not None:
        checkpoint = checkpoint_for(out)
    ckpt = None
    reps: list[Replication] = []
    if checkpoint is not None:
        ckpt = Checkpoint(checkpoint, _checkpoint_key(hashes, seeds, response, iterations), resume=resume)
        found = ckpt.load()
        reps = [found[(v, i)] for (_, _, v, i) in tasks if (v, i) in found]
        tasks_left = [t for t in tasks if (t[2], t[3]) not in found]
        if reps:
            log.info("resuming: %d of %d runs taken from %s", len(reps), len(tasks), ckpt.folder)
    else:
        tasks_left = tasks
    own = executor is None
    if own and tasks_left:
        n = default_workers() if workers is None else workers
        executor = Executor(scheduler=scheduler, workers=min(n, len(tasks_left)))
    try:
        t_runs = time.perf_counter()
        if progress is not None and reps:
            progress(len(reps), len(tasks))
        if tasks_left:
            for _, rep in executor.as_completed(
                _task,
                tasks_left,
                expect_hashes=hashes,
                response=response,
                iterations=iterations,
                plugins=allowed_plugins(),
            ):
                if ckpt is not None:
                    ckpt.save(rep)  # kept as it lands: a killed comparison loses only the runs in flight
                reps.append(rep)
                if progress is not None:
                    progress(len(reps), len(tasks))
        runs_wall = time.perf_counter() - t_runs
        slots = executor.n_workers if executor is not None else 0
        startup = executor.start_s if executor is not None else 0.0
    finally:
        if own and executor is not None:
            executor.close()
    log.info(
        "%d runs in %.1f s on %d slot(s) (set-up before them %.1f s)", len(tasks), runs_wall, slots, t_runs - t_start
    )
    by = {v: sorted((r for r in reps if r.variant == v), key=lambda r: r.index) for v in VARIANTS}
    dataset = _dataset(by, scen, seeds)
    summary = _summary(by, scen, seeds, confidence=confidence)
    summary["response"] = response
    summary["response_label"] = RESPONSES[response]
    if response == "equilibrium":
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
    dataset.attrs["response"] = response
    dataset.attrs["response_label"] = RESPONSES[response]
    log.info("comparison assembled in %.1f s", time.perf_counter() - t_runs - runs_wall)
    summary.update(
        {
            "wall_s": time.perf_counter() - t_start,
            "workers": int(slots),
            "runs_wall_s": runs_wall,
            "run_s": float(sum(r.wall_s for r in reps)),
            "startup_s": float(startup),
            "confidence": confidence,
        }
    )
    files = {v: dict(by[v][0].run_files or {}) for v in VARIANTS}
    result = Comparison(summary=summary, dataset=dataset, run_files=files)
    if out is not None:
        result.write(out)
        if ckpt is not None and Path(checkpoint) == checkpoint_for(out):
            ckpt.discard()
    return result


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
    from twin.emergency.dispatch import allow_plugins

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


# ------------------------------------------------------------------------ resuming


def checkpoint_for(out: str | os.PathLike[str]) -> Path:
    """The checkpoint folder of the comparison folder ``out``: ``.<name>.replications`` beside it."""
    out = Path(out)
    return out.parent / f".{out.name}.replications"


def _checkpoint_key(hashes: dict, seeds: list[int], response: str, iterations: int | None) -> dict:
    from twin.results import package_version

    return {
        "kind": "comparison replications",
        "baseline_hash": hashes["baseline"],
        "scenario_hash": hashes["scenario"],
        "seeds": [int(s) for s in seeds],
        "response": response,
        "iterations": iterations,
        "package_version": package_version(),
    }


def _plain_dataset(ds: xr.Dataset | None):
    if ds is None:
        return None

    def var(v: xr.Variable):
        return [list(v.dims), v.values, dict(v.attrs)]

    return {
        "vars": {str(n): var(ds[n].variable) for n in ds.data_vars},
        "coords": {str(n): var(c.variable) for n, c in ds.coords.items()},
        "attrs": dict(ds.attrs),
    }


def _dataset_from_plain(d) -> xr.Dataset | None:
    if d is None:
        return None
    return xr.Dataset(
        {n: xr.Variable(tuple(v[0]), v[1], v[2]) for n, v in d["vars"].items()},
        coords={n: xr.Variable(tuple(v[0]), v[1], v[2]) for n, v in d["coords"].items()},
        attrs=d["attrs"],
    )


def _replication_record(rep: Replication) -> dict:
    return {
        "variant": rep.variant,
        "index": rep.index,
        "seed": rep.seed,
        "scenario_hash": rep.scenario_hash,
        "kpis": dict(rep.kpis),
        "data": _plain_dataset(rep.data),
        "intervened": [int(i) for i in rep.intervened],
        "wall_s": float(rep.wall_s),
        "labels": {k: tuple(v) for k, v in rep.labels.items()},
        "geometry": _plain_dataset(rep.geometry),
        "run_files": None
        if rep.run_files is None
        else {name: np.frombuffer(payload, np.uint8) for name, payload in rep.run_files.items()},
        "day1_kpis": None if rep.day1_kpis is None else dict(rep.day1_kpis),
    }


def _replication_from_record(r: dict) -> Replication:
    return Replication(
        variant=str(r["variant"]),
        index=int(r["index"]),
        seed=int(r["seed"]),
        scenario_hash=str(r["scenario_hash"]),
        kpis=dict(r["kpis"]),
        data=_dataset_from_plain(r["data"]),
        intervened=list(r["intervened"]),
        wall_s=float(r["wall_s"]),
        labels={k: tuple(v) for k, v in r["labels"].items()},
        geometry=_dataset_from_plain(r["geometry"]),
        run_files=None if r["run_files"] is None else {k: v.tobytes() for k, v in r["run_files"].items()},
        day1_kpis=r["day1_kpis"],
    )


class Checkpoint:
    """A folder of finished replications of one comparison (see the module docstring).

    Parameters
    ----------
    folder : path
        Where the runs are kept (created when the first run lands).
    key : dict
        What identifies the comparison (scenario hashes, seeds, response, code version).
    resume : bool
        Take the runs already there (if the key matches); ``False`` starts afresh.
    """

    KIND = "comparison replication"

    def __init__(self, folder: str | os.PathLike[str], key: dict, *, resume: bool = True) -> None:
        self.folder = Path(folder)
        self.key = json.loads(json.dumps(key))
        self.resume = resume

    def _ours(self) -> dict | None:
        try:
            return json.loads((self.folder / "key.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def load(self) -> dict[tuple[str, int], Replication]:
        """The runs of this comparison already kept, by (variant, index); a checkpoint of another
        comparison (or ``resume=False``) is removed; a folder that is not a checkpoint is refused.
        """
        from twin.snapshot import SnapshotError, records_from_bytes

        if not self.folder.exists():
            return {}
        have = self._ours()
        if not isinstance(have, dict) or have.get("kind") != self.key["kind"]:
            raise ComparisonError(f"{str(self.folder)!r} exists and is not a comparison checkpoint: move it away")
        if have != self.key or not self.resume:
            log.info(
                "replacing the checkpoint %s (%s)",
                self.folder,
                "a fresh start" if not self.resume else "it belongs to another comparison",
            )
            self.discard()
            return {}
        found: dict[tuple[str, int], Replication] = {}
        for path in sorted(self.folder.glob("*.rep")):
            try:
                rep = _replication_from_record(
                    records_from_bytes(path.read_bytes(), kind=self.KIND, what=repr(str(path)))
                )
            except (SnapshotError, OSError, KeyError, TypeError, ValueError, AttributeError) as exc:
                log.warning("checkpoint run %s cannot be used (%s): it runs again", path.name, exc)
                continue
            if path.name == f"{rep.variant}-{rep.index}.rep" and rep.seed == self.key["seeds"][rep.index]:
                found[(rep.variant, rep.index)] = rep
        return found

    def save(self, rep: Replication) -> Path:
        """Keep one finished run (written atomically)."""
        from basics.atomic import write_bytes
        from twin.snapshot import records_bytes

        if not self.folder.exists():
            self.folder.mkdir(parents=True)
            write_bytes(self.folder / "key.json", json.dumps(self.key, indent=1).encode("utf-8"))
        return write_bytes(
            self.folder / f"{rep.variant}-{rep.index}.rep",
            records_bytes(_replication_record(rep), kind=self.KIND),
            fsync=True,
        )

    def discard(self) -> None:
        """Remove the folder (only a checkpoint: its files and key)."""
        import shutil

        if self.folder.exists() and isinstance(self._ours(), dict):
            shutil.rmtree(self.folder, ignore_errors=True)


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
    from twin.results import package_version

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

    trip_ids = [r.data["trip"].values for v in VARIANTS for r in by[v]]
    same_trips = all(ids.shape == trip_ids[0].shape and np.array_equal(ids, trip_ids[0]) for ids in trip_ids)
    n_trips = max(ids.size for ids in trip_ids)
    tt = np.full((2, len(seeds), n_trips), np.nan)
    for a, v in enumerate(VARIANTS):
        for b, r in enumerate(by[v]):
            vals = r.data[_TRIP].values
            tt[a, b, : vals.size] = vals
    data[_TRIP] = xr.Variable(
        ("variant", "replication", "trip"),
        tt,
        attrs=_attrs(
            ref.data[_TRIP].variable,
            "arrival minus scheduled departure"
            + ("" if same_trips else " (trips differ between runs: by position, NaN-padded)"),
        ),
    )

    labels = _labels(by)
    for key in _kpi_keys(by):
        label, unit = labels.get(key, (key, ""))
        data[f"kpi_{key}"] = xr.Variable(
            ("variant", "replication"), _kpi_matrix(by, key), attrs={"units": unit or "1", "long_name": label}
        )

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
            if same_trips
            else xr.Variable(
                ("trip",),
                np.arange(n_trips, dtype=np.int64),
                attrs={"units": "1", "long_name": "trip position in each run's trip table"},
            )
        ),
    }
    if ref.geometry is not None:
        coords.update({name: c.variable for name, c in ref.geometry.coords.items()})
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
    from basics.atomic import json_safe, replace_folder

    def fill(tmp: Path) -> None:
        comparison.dataset.to_netcdf(tmp / "comparison.nc", engine="h5netcdf")
        text = json.dumps(json_safe(comparison.summary), indent=2, allow_nan=False)
        (tmp / "summary.json").write_text(text, encoding="utf-8")
        for variant, files in comparison.run_files.items():
            folder = tmp / variant
            folder.mkdir()
            for name, payload in files.items():
                (folder / name).write_bytes(payload)

    return replace_folder(out, fill)
