"""A day-to-day equilibrium: the same day simulated again and again while travellers learn.

Planners ask what a change does "after people have adapted".  :func:`equilibrate`
answers by repeating the scenario's day.  Travellers' knowledge is a time-of-day
profile of link travel times, ``K[bin, link]`` (one bin per output interval):

- day 1 runs as ``twin run`` does (routes follow the day's own predicted travel
  times, refreshed every ``reroute_interval``);
- after day ``k`` the experienced link times ``X_k[bin, link]`` (the mean
  traversal time of the vehicles that left the link in the bin, from the
  recorder's space-mean speeds: ``length / speed``) update the knowledge
  ``K_{k+1} = K_k + s_k (X_k - K_k)``, with ``s_k = 1/k`` (``msa``: the method
  of successive averages) or a constant ``switch_share`` (``s_1 = 1``: after
  day 1, ``K_2 = X_1``);
- on day ``k + 1`` routes follow the knowledge: at every bin boundary the route
  weights become ``K_{k+1}[bin]`` (closed links are infinite), through
  :meth:`twin.traffic.TrafficModel.update_routes`; at each junction a vehicle
  still draws among the out-links that get closer with the logit of
  ``route_dispersion``, keyed to (seed, vehicle, link), so every day sees the
  same draws (common random numbers between days).

The knowledge a day routes on is a :class:`RouteKnowledge` on the twin
(``twin.route_knowledge``, numpy arrays and the time of its next refresh), so a
snapshot or fork of an equilibrated twin keeps it.

After each day the *relative gap* measures how far it is from equilibrium: the
sum over completed trips of the experienced travel time (scheduled departure to
arrival) minus the best possible one, over the sum of the best ones.  The best
possible time of a trip is its shortest path on the day's experienced link times
of its departure bin (links closed at the end of the bin excluded); a static
approximation of the time-dependent shortest path, good while trips are short
against the bins.  The iterations stop at ``gap_target``.

Population agents keep their departure times: only routes adapt.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from kernels.routing import route_table
from twin.errors import InputError
from twin.recorder import PRIORITY, at_time

__all__ = [
    "RouteKnowledge",
    "Equilibrium",
    "equilibrate",
    "kernel_threads",
    "experienced_link_times",
    "relative_gap",
    "run_day",
    "write_equilibrium",
    "ITERATION_VARS",
]

log = logging.getLogger(__name__)

#: per-iteration variables of ``equilibrium.nc``: name -> (units, long name)
ITERATION_VARS: dict[str, tuple[str, str]] = {
    "relative_gap": ("1", "experienced minus best possible travel time, over the best possible (completed trips)"),
    "mean_travel_time_s": ("s", "mean travel time of completed trips"),
    "mean_best_time_s": ("s", "mean best possible travel time of completed trips (the day's experienced link times)"),
    "vehicle_hours": ("h", "vehicle-hours travelled (every departed trip)"),
    "trips_completed": ("1", "trips completed"),
    "trips_unfinished": ("1", "trips departed, not arrived at the end of the day"),
    "switch_share": ("1", "share by which the knowledge moved towards this day's experience (s_k)"),
    "expectation_error": ("1", "flow-weighted mean of |experienced - remembered| / remembered link time (NaN on day 1)"),
    "wall_s": ("s", "seconds the day took (simulation, gap and learning)"),
}


# ------------------------------------------------------------------------ knowledge


class RouteKnowledge:
    """What travellers remember: link travel times by time of day, and the routing they drive.

    Parameters
    ----------
    link_time_s : array (bins, links)
        Remembered travel time of each link for a vehicle entering it in each bin, s.
    bin_s : float
        Length of a bin, s (bin ``b`` covers ``[b * bin_s, (b + 1) * bin_s)`` since
        the start).
    day : int
        The day (iteration) this knowledge is for (2 for the knowledge learnt on day 1).
    refresh_s : float, optional
        Seconds between route refreshes (default ``bin_s``; :func:`equilibrate` uses
        the scenario's re-routing cadence, ``reroute_interval / reroute_batches``).
    memory_weight : float, optional
        Weight of the remembered times against what travellers see today (default 0.5).

    Notes
    -----
    A :class:`~twin.model.Twin` built with ``route_knowledge=`` routes on it: at
    the start and every ``refresh_s`` the link weights of every destination in use
    become ``memory_weight * K(t) + (1 - memory_weight) * M(t)``, where ``K(t)`` is
    the remembered time interpolated linearly between bin centres and ``M(t)`` the
    day's own prediction for a vehicle entering the link now
    (:meth:`twin.traffic.TrafficModel.measured_travel_times`; infinite when closed).
    Memory alone makes everyone bound for one place in one bin take the same
    links (a shared table and a near-deterministic choice herd them), and today's
    view alone cannot anticipate; together they settle.  ``next_s`` is the time of
    the next refresh, kept here so a twin restored from a snapshot resumes the same
    schedule.
    """

    def __init__(self, link_time_s: np.ndarray, *, bin_s: float, day: int = 2, refresh_s: float | None = None,
                 memory_weight: float = 0.5) -> None:
        k = np.array(link_time_s, dtype=np.float64)
        if k.ndim != 2 or k.shape[0] == 0:
            raise ValueError(f"link_time_s must be (bins, links) with at least one bin, got shape {k.shape}")
        if not np.all(k > 0):
            raise ValueError("remembered link times must be positive (inf for a link never usable)")
        if not bin_s > 0:
            raise ValueError(f"bin_s must be positive, got {bin_s!r}")
        refresh_s = float(bin_s if refresh_s is None else refresh_s)
        if not refresh_s > 0:
            raise ValueError(f"refresh_s must be positive, got {refresh_s!r}")
        if not 0.0 <= memory_weight <= 1.0:
            raise ValueError(f"memory_weight must lie in [0, 1], got {memory_weight!r}")
        self.link_time_s = k
        self.bin_s = float(bin_s)
        self.day = int(day)
        self.refresh_s = refresh_s
        self.memory_weight = float(memory_weight)
        self.next_refresh = 0  # number of the next refresh (at next_refresh * refresh_s)
        self.next_s = 0.0

    @property
    def n_bins(self) -> int:
        return int(self.link_time_s.shape[0])

    def bin_of(self, t: float) -> int:
        """The bin of time ``t`` (s since the start), clamped to the profile."""
        return int(min(max(math.floor(t / self.bin_s + 1e-9), 0), self.n_bins - 1))

    def remembered(self, t: float) -> np.ndarray:
        """``K(t)``: the remembered link times at ``t``, linear between bin centres."""
        c = t / self.bin_s - 0.5
        b0 = int(min(max(math.floor(c), 0), self.n_bins - 1))
        b1 = min(b0 + 1, self.n_bins - 1)
        f = min(max(c - math.floor(c), 0.0), 1.0) if 0.0 <= c < self.n_bins - 1 else 0.0
        k = self.link_time_s
        return k[b0] if f == 0.0 else (1.0 - f) * k[b0] + f * k[b1]

    def update(self, twin) -> None:
        """Give the twin's routes the weights of now (see the class notes)."""
        tm = twin.traffic
        if self.link_time_s.shape[1] != tm.routes.weight.shape[0]:
            raise InputError(f"route knowledge covers {self.link_time_s.shape[1]} links, the city has "
                             f"{tm.routes.weight.shape[0]}: it was learnt on another network")
        a = self.memory_weight
        w = self.remembered(twin.now)
        if a < 1.0:
            w = a * w + (1.0 - a) * tm.measured_travel_times()
        tm.update_routes(self.refresh_s, weight=w)
        self.next_refresh = max(self.next_refresh, math.floor(twin.now / self.refresh_s + 1e-9) + 1)
        self.next_s = self.next_refresh * self.refresh_s

    def process(self, twin):
        """SimPy process: refresh the routes every ``refresh_s`` (the re-routing's priority)."""
        while True:
            yield at_time(twin.env, max(self.next_s, twin.env.now), PRIORITY["reroute"])
            twin.sync()
            self.update(twin)

    def __repr__(self) -> str:
        return (f"RouteKnowledge(day={self.day}, bins={self.n_bins}, links={self.link_time_s.shape[1]}, "
                f"bin_s={self.bin_s:g}, refresh_s={self.refresh_s:g}, memory_weight={self.memory_weight:g})")


# ------------------------------------------------------------------------ one day


def run_day(twin, *, bin_s: float) -> np.ndarray:
    """Run ``twin`` to the end of its day, a bin at a time; returns which links were
    open at the end of each bin, ``bool (bins, links)``.  (Splitting a run changes
    nothing in it.)"""
    n_bins = int(math.ceil(twin.duration_s / bin_s - 1e-9))
    is_open = np.ones((n_bins, twin.traffic.links.is_open.shape[0]), bool)
    for b in range(n_bins):
        twin.run_until(min((b + 1) * bin_s, twin.duration_s))
        is_open[b] = twin.traffic.links.is_open != 0
    return is_open


def experienced_link_times(twin) -> np.ndarray:
    """The day's experienced link times, s, ``(intervals, links)``: link length over the
    recorder's space-mean speed (the mean traversal time of the vehicles that left the
    link in the interval; free-flow time where none did and none queued).  Links at
    free speed get their free-flow time exactly, so uncongested links keep identical
    weights from bin to bin."""
    rec = twin.recorder
    links = twin.traffic.links
    if not rec.time:
        raise InputError("the twin has recorded nothing yet: run the day before reading its link times")
    speed = np.stack(rec.link["speed"])
    with np.errstate(divide="ignore"):
        x = links.length / speed
    free = np.broadcast_to(links.free_tt, x.shape)
    snap = np.abs(x - free) <= 1e-9 * free
    x = np.where(snap, free, x)
    return np.maximum(x, 1e-9)


def relative_gap(twin, link_time_s: np.ndarray, is_open: np.ndarray | None = None, *,
                 bin_s: float) -> dict[str, Any]:
    """The day's relative gap on its experienced link times.

    Parameters
    ----------
    twin
        A twin that ran its day.
    link_time_s : array (bins, links)
        The day's experienced link times (:func:`experienced_link_times`).
    is_open : bool array (bins, links), optional
        Links open in each bin (:func:`run_day`); closed ones are left out of the
        best paths.
    bin_s : float
        Bin length, s.

    Returns
    -------
    dict
        ``relative_gap``, ``mean_best_time_s``, ``experienced_s`` and ``best_s``
        (sums over completed trips), ``trips`` (completed trips counted) and
        ``best_time_s`` (per trip; NaN for trips not counted).
    """
    tm = twin.traffic
    n = tm.n_vehicles
    veh = tm.veh
    depart = veh.depart[:n]
    arrive = veh.arrive[:n]
    table = twin.trip_table()
    origin, dest = table["origin"], table["destination"]
    done = np.isfinite(arrive)
    best = np.full(n, np.nan)
    n_bins = link_time_s.shape[0]
    b_of = np.clip(np.floor(depart / bin_s + 1e-9).astype(np.int64), 0, n_bins - 1)
    idx = np.flatnonzero(done)
    if idx.size:
        dests, row = np.unique(dest[idx], return_inverse=True)
        dests = dests.astype(np.int32)
        g = tm.graph
        n_nodes = tm.network.n_nodes
        dist = np.full((dests.size, n_nodes), np.inf)
        no_next = np.empty((0, n_nodes), np.int32)
        bins = b_of[idx]
        order = np.argsort(bins, kind="stable")
        cuts = np.flatnonzero(np.diff(bins[order])) + 1
        for part in np.split(order, cuts):
            b = int(bins[part[0]])
            w = np.array(link_time_s[b], np.float64)
            if is_open is not None:
                w[~is_open[min(b, is_open.shape[0] - 1)]] = np.inf
            active = np.zeros(dests.size, np.bool_)
            active[row[part]] = True
            route_table(dests, active, g.in_indptr, g.in_links, g.src, w, no_next, dist)
            best[idx[part]] = dist[row[part], origin[idx[part]]]
    ok = done & np.isfinite(best)
    exp_sum = float((arrive[ok] - depart[ok]).sum())
    best_sum = float(best[ok].sum())
    return {
        "relative_gap": (exp_sum - best_sum) / best_sum if best_sum > 0 else math.nan,
        "mean_best_time_s": best_sum / ok.sum() if ok.any() else math.nan,
        "experienced_s": exp_sum,
        "best_s": best_sum,
        "trips": int(ok.sum()),
        "best_time_s": np.where(ok, best, np.nan),
    }


def _expectation_error(twin, knowledge: np.ndarray | None, experienced: np.ndarray) -> float:
    """Flow-weighted mean relative difference between experienced and remembered link times."""
    if knowledge is None:
        return math.nan
    flow = np.stack(twin.recorder.link["inflow"]).astype(np.float64)
    m = min(flow.shape[0], knowledge.shape[0], experienced.shape[0])
    k, x, f = knowledge[:m], experienced[:m], flow[:m]
    ok = np.isfinite(k) & np.isfinite(x) & (k > 0)
    total = float(f[ok].sum())
    if total <= 0:
        return math.nan
    return float((f[ok] * np.abs(x[ok] - k[ok]) / k[ok]).sum() / total)


# ------------------------------------------------------------------------ the iterations


@dataclass
class Equilibrium:
    """The outcome of :func:`equilibrate`.

    Attributes
    ----------
    twin : Twin
        The final day's twin (run to the end of the day); it holds the knowledge it
        routed on as ``twin.route_knowledge`` (``None`` if only day 1 ran).
    history : list of dict
        One row per day: the :data:`ITERATION_VARS` and ``kpis`` (the day's KPIs).
    knowledge : array (bins, links)
        What travellers know after the final day (it includes that day's experience):
        the knowledge a next day would route on.
    bin_s : float
        Knowledge bin length, s.
    converged : bool
        The final day's relative gap is at most ``gap_target``.
    settings : dict
        ``iterations``, ``method``, ``switch_share``, ``gap_target`` as used.
    wall_s : float
        Seconds for all days.
    """

    twin: Any
    history: list[dict]
    knowledge: np.ndarray
    bin_s: float
    converged: bool
    settings: dict
    wall_s: float = 0.0
    day1_kpis: dict = field(default_factory=dict)

    @property
    def iterations(self) -> int:
        return len(self.history)

    @property
    def final_gap(self) -> float:
        return float(self.history[-1]["relative_gap"])

    def next_knowledge(self) -> RouteKnowledge:
        """A :class:`RouteKnowledge` for another day after the final one (e.g.
        ``Twin(scenario, route_knowledge=eq.next_knowledge())``)."""
        tr = self.twin.scenario.traffic
        return RouteKnowledge(self.knowledge, bin_s=self.bin_s, day=self.iterations + 1,
                              refresh_s=float(tr.reroute_interval) / int(tr.reroute_batches))

    def dataset(self) -> xr.Dataset:
        """``equilibrium.nc``: the per-iteration series (dim ``iteration``) and the final
        knowledge (dims ``bin``, ``link``)."""
        from twin.results import package_version

        it = np.arange(1, len(self.history) + 1, dtype=np.int64)
        data = {}
        for name, (units, long_name) in ITERATION_VARS.items():
            data[name] = xr.Variable(("iteration",), np.array([h[name] for h in self.history], np.float64),
                                     attrs={"units": units, "long_name": long_name})
        nb, nl = self.knowledge.shape
        data["knowledge_link_time_s"] = xr.Variable(
            ("bin", "link"), self.knowledge,
            attrs={"units": "s", "long_name": "remembered link travel time after the final day, by time-of-day bin"})
        coords = {
            "iteration": xr.Variable(("iteration",), it, attrs={"units": "1", "long_name": "day (1: the immediate response)"}),
            "bin": xr.Variable(("bin",), np.arange(nb, dtype=np.float64) * self.bin_s,
                               attrs={"units": "s", "long_name": "start of the knowledge bin, seconds since the start"}),
            "link": xr.Variable(("link",), np.arange(nl, dtype=np.int64), attrs={"units": "1", "long_name": "link index"}),
        }
        tw = self.twin
        attrs = {
            "title": f"city twin day-to-day equilibrium: {tw.scenario.name}",
            "kind": "equilibrium",
            "scenario_name": tw.scenario.name,
            "scenario_hash": tw.scenario_hash,
            "seed": int(tw.seed),
            "package_version": package_version(),
            "method": str(self.settings["method"]),
            "switch_share": float(self.settings["switch_share"]),
            "gap_target": float(self.settings["gap_target"]),
            "max_iterations": int(self.settings["iterations"]),
            "iterations": int(len(self.history)),
            "converged": int(self.converged),
            "final_relative_gap": self.final_gap,
            "bin_s": float(self.bin_s),
            "wall_s": float(self.wall_s),
        }
        return xr.Dataset(data, coords=coords, attrs=attrs)


def _settings(scenario, **overrides) -> dict:
    spec = scenario.traffic.equilibrium
    s = {"iterations": spec.iterations, "method": spec.method, "switch_share": spec.switch_share,
         "gap_target": spec.gap_target}
    for key, value in overrides.items():
        if value is not None:
            s[key] = value
    it = s["iterations"]
    if isinstance(it, bool) or not isinstance(it, (int, np.integer)) or not 1 <= it <= 1000:
        raise InputError(f"traffic.equilibrium.iterations must be a whole number from 1 to 1000, got {it!r}")
    if s["method"] not in ("msa", "constant"):
        raise InputError(f"traffic.equilibrium.method must be 'msa' or 'constant', got {s['method']!r}")
    sh = s["switch_share"]
    if isinstance(sh, bool) or not isinstance(sh, (int, float)) or not 0.0 < sh <= 1.0:
        raise InputError(f"traffic.equilibrium.switch_share must lie in (0, 1], got {sh!r}")
    gt = s["gap_target"]
    if isinstance(gt, bool) or not isinstance(gt, (int, float)) or not 0.0 <= gt < 1.0:
        raise InputError(f"traffic.equilibrium.gap_target must lie in [0, 1), got {gt!r}")
    s["iterations"] = int(it)
    return s


@contextmanager
def kernel_threads(n: int | None):
    """Run the numba kernels on at most ``n`` threads inside the block (``None``: as they are)."""
    if n is None:
        yield
        return
    import numba

    old = numba.get_num_threads()
    numba.set_num_threads(max(1, min(int(n), numba.config.NUMBA_NUM_THREADS)))
    try:
        yield
    finally:
        numba.set_num_threads(old)


def equilibrate(scenario, *, seed: int | None = None, city=None, iterations: int | None = None,
                method: str | None = None, switch_share: float | None = None, gap_target: float | None = None,
                progress: Callable[[dict], None] | None = None, threads: int | None = 1) -> Equilibrium:
    """Simulate the scenario's day repeatedly, travellers learning between days.

    Parameters
    ----------
    scenario : Scenario
        The scenario; its ``traffic.equilibrium`` section gives the defaults of the
        settings below.
    seed : int, optional
        Overrides the scenario's seed (every day uses the same one).
    city : City, optional
        An already built city (built once otherwise, and shared by all days).
    iterations, method, switch_share, gap_target : optional
        Override the scenario's ``traffic.equilibrium`` settings.
    progress : callable, optional
        Called after each day with that day's history row.
    threads : int or None, optional
        Threads of the numba kernels during the days (default 1: on city-sized
        networks a kernel call is short, and threads that wait for busy cores cost far
        more than they give; ``None`` leaves numba's setting).

    Returns
    -------
    Equilibrium
    """
    s = _settings(scenario, iterations=iterations, method=method, switch_share=switch_share, gap_target=gap_target)
    with kernel_threads(threads):
        return _iterate(scenario, s, seed=seed, city=city, progress=progress)


def _iterate(scenario, s: dict, *, seed, city, progress) -> Equilibrium:
    from twin.model import Twin, build_city

    if city is None:
        city = build_city(scenario.city)
    bin_s = float(scenario.outputs.interval)
    refresh_s = float(scenario.traffic.reroute_interval) / int(scenario.traffic.reroute_batches)
    t_start = time.perf_counter()
    knowledge: np.ndarray | None = None
    history: list[dict] = []
    twin = None
    converged = False
    day1: dict = {}
    for day in range(1, s["iterations"] + 1):
        t0 = time.perf_counter()
        rk = None if knowledge is None else RouteKnowledge(knowledge, bin_s=bin_s, day=day, refresh_s=refresh_s)
        twin = Twin(scenario, seed=seed, city=city, route_knowledge=rk)
        is_open = run_day(twin, bin_s=bin_s)
        x = experienced_link_times(twin)
        if knowledge is not None and x.shape != knowledge.shape:
            raise InputError(f"day {day} recorded {x.shape[0]} intervals on {x.shape[1]} links, the knowledge has "
                             f"{knowledge.shape}: the output interval must divide the day the same way every day")
        gap = relative_gap(twin, x, is_open, bin_s=bin_s)
        kpis = twin.kpis()
        share = 1.0 if knowledge is None else (1.0 / day if s["method"] == "msa" else float(s["switch_share"]))
        row = {
            "iteration": day,
            "relative_gap": gap["relative_gap"],
            "mean_travel_time_s": kpis["mean_travel_time_s"],
            "mean_best_time_s": gap["mean_best_time_s"],
            "vehicle_hours": kpis["vehicle_hours"],
            "trips_completed": kpis["trips_completed"],
            "trips_unfinished": kpis["trips_unfinished"],
            "switch_share": share,
            "expectation_error": _expectation_error(twin, knowledge, x),
            "kpis": kpis,
        }
        if day == 1:
            day1 = dict(kpis)
        knowledge = x.copy() if knowledge is None else knowledge + share * (x - knowledge)
        row["wall_s"] = time.perf_counter() - t0
        history.append(row)
        log.info("day %d: relative gap %.4f, mean travel time %.1f s, %.1f s", day, row["relative_gap"],
                 row["mean_travel_time_s"], row["wall_s"])
        if progress is not None:
            progress(row)
        if math.isfinite(gap["relative_gap"]) and gap["relative_gap"] <= s["gap_target"]:
            converged = True
            break
    assert twin is not None and knowledge is not None
    return Equilibrium(twin=twin, history=history, knowledge=knowledge, bin_s=bin_s, converged=converged,
                       settings=s, wall_s=time.perf_counter() - t_start, day1_kpis=day1)


def write_equilibrium(eq: Equilibrium, out: str | Path) -> Path:
    """Write the final day's run folder (``results.nc``, ``summary.json``,
    ``scenario.yaml``) plus ``equilibrium.nc``, atomically (see :func:`twin.results.write_run`)."""
    import json

    from twin.atomic import json_safe, replace_folder
    from twin.results import fill_run

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"run folder {str(out)!r} exists and is not a folder")

    def fill(tmp: Path) -> None:
        fill_run(eq.twin, tmp, extra={"equilibrium.nc": eq.dataset()})
        summary = json.loads((tmp / "summary.json").read_text())
        summary["equilibrium"] = json_safe({
            **eq.settings, "iterations_run": eq.iterations, "converged": eq.converged, "final_relative_gap": eq.final_gap,
            "relative_gap": [h["relative_gap"] for h in eq.history], "wall_s": eq.wall_s,
            "day1_kpis": eq.day1_kpis,
        })
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2, allow_nan=False))

    return replace_folder(out, fill)
