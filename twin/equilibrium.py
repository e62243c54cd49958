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

Population agents (scenarios with a ``population``) also learn *when* to leave
(``traffic.equilibrium.departure_shift``; :func:`adapt_departures`).  Each leg
of an agent's plan has a desired departure (the time the plan says to leave)
and a remembered shift from it, 0 on day 1.  After day ``k`` a share
``min(s_k, 1/2)`` of the day's completed agent car trips (the share by which the
knowledge moved, but never all at once; which trips is a hash of (seed, person,
leg, day), so the same seed gives the same shifts) re-plans: among the shifts
``0, -step, +step, ..., ±max`` from the desired time it takes the one of least
expected cost and keeps its shift unless another is strictly better.  The cost
is the expected travel time plus the schedule delay priced as Vickrey and Small
do (``early_penalty`` seconds of travel time per second of leaving earlier than
planned, ``late_penalty`` per second later).  The expected travel time is the
shortest path from the trip's origin to its destination on what travellers
remember after the day, ``K_{k+1}``, turned into times by the moment of
*entering* each link (:func:`entry_link_times`: the knowledge is recorded as
vehicles leave), taken at the trip's midpoint (departure plus half the time
found at departure) and linear between bin centres; scaled by how far such
expectations fell short of what the day's agent car trips that left about then
actually took (per departure bin, shrunk towards 1 where few left), which
accounts for the routes in use and the queues that grow while a trip drives.
On day ``k + 1`` each agent's preferred departure is the plan's time plus the
remembered shift (the population's own within-day choice among its
``choice.shifts`` then counts from there).  Trips not made by car that day keep
their shift.  Each day reports how many agent trips moved their departure, the
mean signed and absolute remembered shift, and the agents' mean travel time and
mean experienced cost (travel time plus the schedule-delay penalty of leaving
earlier or later than planned).  ``departure_shift: {enabled: false}`` (or
``twin equilibrate --routes-only``) keeps the plans' times.

The knowledge a day routes on is a :class:`RouteKnowledge` on the twin
(``twin.route_knowledge``, numpy arrays and the time of its next refresh, and
the agents' remembered departure shifts), so a snapshot or fork of an
equilibrated twin keeps it; the population component holds the same shifts.

After each day the *relative gap* measures how far it is from equilibrium: the
sum over completed trips of the experienced travel time (scheduled departure to
arrival) minus the best possible one, over the sum of the best ones.  The best
possible time of a trip is its shortest path on the day's experienced link times
of its departure bin (links closed at the end of the bin excluded); a static
approximation of the time-dependent shortest path, good while trips are short
against the bins.  The iterations stop at ``gap_target``.
"""

from __future__ import annotations

import gc
import logging
import math
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from basics.errors import InputError
from twin.clock import PRIORITY, schedule_at
from twin.departures import (
    DEPARTURE_VARS,
    adapt_departures,
    candidate_shifts,
    entry_link_times,
    expected_travel_times,
)
from twin.gap import _expectation_error, experienced_link_times, relative_gap, run_day

if TYPE_CHECKING:
    from city_models.demand import Trips
    from twin.model import Twin

__all__ = [
    "RouteKnowledge",
    "Equilibrium",
    "adapt_departures",
    "expected_travel_times",
    "equilibrate",
    "kernel_threads",
    "experienced_link_times",
    "relative_gap",
    "run_day",
    "write_equilibrium",
    "ITERATION_VARS",
    "DEPARTURE_VARS",
    "candidate_shifts",
    "entry_link_times",
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
    "expectation_error": (
        "1",
        "flow-weighted mean of |experienced - remembered| / remembered link time (NaN on day 1)",
    ),
    "departures_shifted": (
        "1",
        "agent car trips whose remembered departure moved after this day (NaN without "
        "population agents or departure learning)",
    ),
    "mean_departure_shift_s": (
        "s",
        "mean remembered departure shift of the day's agent car trips after this day's "
        "learning, negative earlier (NaN without population agents)",
    ),
    "mean_abs_departure_shift_s": (
        "s",
        "mean absolute remembered departure shift of the day's agent car trips after "
        "this day's learning (NaN without population agents)",
    ),
    "agent_mean_travel_time_s": (
        "s",
        "mean travel time of the day's completed agent car trips (NaN without population agents)",
    ),
    "agent_mean_cost_s": (
        "s",
        "mean experienced cost of the day's completed agent car trips: travel time plus the "
        "schedule-delay penalty of leaving earlier or later than planned (learnt and "
        "within-day shifts together), in travel-time seconds (NaN without population agents)",
    ),
    "wall_s": ("s", "seconds the day took (simulation, gap and learning)"),
}


# ------------------------------------------------------------------------ knowledge


#: relative change of a link's expected time below which travellers keep the weight in use
KNOWLEDGE_DEADBAND = 0.02


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
    deadband : float, optional
        A link's weight changes at a refresh only when the new expected time differs
        from the weight in use by more than this share of it (default
        :data:`KNOWLEDGE_DEADBAND`, 2 %): travellers do not act on smaller changes.
    departure_shift_s : array (persons, legs), optional
        Population agents' remembered departure shifts, s (see :func:`adapt_departures`);
        the population component of a twin built with this knowledge leaves at the plans'
        times plus these.  ``None``: the plans' times.

    Notes
    -----
    A :class:`~twin.model.Twin` built with ``route_knowledge=`` routes on it: at
    the start and every ``refresh_s`` the link weights of every destination in use
    become ``memory_weight * K(t) + (1 - memory_weight) * M(t)``, where ``K(t)`` is
    the remembered time interpolated linearly between bin centres and ``M(t)`` the
    day's own prediction for a vehicle entering the link now
    (:meth:`twin.traffic.TrafficModel.measured_travel_times`; infinite when closed).
    A link keeps the weight in use where the new one differs from it by no more
    than ``deadband`` of it: changes of a per cent or two would not move a
    traveller, yet on a network of many equally good paths (a grid) each one
    makes the route searches of most destinations run again.
    Memory alone makes everyone bound for one place in one bin take the same
    links (a shared table and a near-deterministic choice herd them), and today's
    view alone cannot anticipate; together they settle.  ``next_s`` is the time of
    the next refresh, kept here so a twin restored from a snapshot resumes the same
    schedule.
    """

    def __init__(
        self,
        link_time_s: np.ndarray,
        *,
        bin_s: float,
        day: int = 2,
        refresh_s: float | None = None,
        memory_weight: float = 0.5,
        departure_shift_s: np.ndarray | None = None,
        deadband: float = KNOWLEDGE_DEADBAND,
    ) -> None:
        k = np.array(link_time_s, dtype=np.float64)
        if k.ndim != 2 or k.shape[0] == 0:
            raise InputError(f"link_time_s must be (bins, links) with at least one bin, got shape {k.shape}")
        if not np.all(k > 0):
            raise InputError("remembered link times must be positive (inf for a link never usable)")
        if not bin_s > 0:
            raise InputError(f"bin_s must be positive, got {bin_s!r}")
        refresh_s = float(bin_s if refresh_s is None else refresh_s)
        if not refresh_s > 0:
            raise InputError(f"refresh_s must be positive, got {refresh_s!r}")
        if not 0.0 <= memory_weight <= 1.0:
            raise InputError(f"memory_weight must lie in [0, 1], got {memory_weight!r}")
        if not 0.0 <= deadband < 1.0:
            raise InputError(f"deadband must lie in [0, 1), got {deadband!r}")
        self.deadband = float(deadband)
        self.link_time_s = k
        self.bin_s = float(bin_s)
        self.day = int(day)
        self.refresh_s = refresh_s
        self.memory_weight = float(memory_weight)
        self.next_refresh = 0  # number of the next refresh (at next_refresh * refresh_s)
        self.next_s = 0.0
        if departure_shift_s is not None:
            departure_shift_s = np.array(departure_shift_s, dtype=np.float64)
            if departure_shift_s.ndim != 2 or not np.all(np.isfinite(departure_shift_s)):
                raise InputError("departure_shift_s must be a finite (persons, legs) array of seconds")
        self.departure_shift_s = departure_shift_s

    @property
    def n_bins(self) -> int:
        """Number of time bins of the remembered link times."""
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
            raise InputError(
                f"route knowledge covers {self.link_time_s.shape[1]} links, the city has "
                f"{tm.routes.weight.shape[0]}: it was learnt on another network"
            )
        a = self.memory_weight
        w = self.remembered(twin.now)
        if a < 1.0:
            w = a * w + (1.0 - a) * tm.measured_travel_times()
        band = self.deadband
        if band > 0.0:  # changes travellers would not notice keep the weight in use
            cur = tm.routes.weight
            same = np.abs(w - cur) <= band * cur
            if same.any():
                w = np.where(same, cur, w)
        # destinations in the scenario's rotating batches, as on day 1 (every refresh brings
        # one batch up to date; all at once would cost the batch count times the searches)
        batches = int(getattr(twin, "reroute_batches", 1))
        phase = int(getattr(twin, "reroute_phase", 0)) % batches
        tm.update_routes(self.refresh_s * batches, weight=w, batches=batches, phase=phase)
        twin.reroute_phase = (phase + 1) % batches
        self.next_refresh = max(self.next_refresh, math.floor(twin.now / self.refresh_s + 1e-9) + 1)
        self.next_s = self.next_refresh * self.refresh_s

    def process(self, twin):
        """SimPy process: refresh the routes every ``refresh_s`` (the re-routing's priority)."""
        while True:
            yield schedule_at(twin.env, max(self.next_s, twin.env.now), PRIORITY["reroute"])
            twin.sync()
            self.update(twin)

    def __setstate__(self, state: dict) -> None:
        state.setdefault("departure_shift_s", None)  # snapshots from before departure learning
        state.setdefault("deadband", 0.0)  # snapshots from before the deadband
        self.__dict__.update(state)

    def __repr__(self) -> str:
        dep = (
            ""
            if self.departure_shift_s is None
            else f", departure shifts for {self.departure_shift_s.shape[0]} persons"
        )
        return (
            f"RouteKnowledge(day={self.day}, bins={self.n_bins}, links={self.link_time_s.shape[1]}, "
            f"bin_s={self.bin_s:g}, refresh_s={self.refresh_s:g}, memory_weight={self.memory_weight:g}{dep})"
        )


# ------------------------------------------------------------------------ one day


# run_day, experienced_link_times, relative_gap: twin/gap.py; departure learning: twin/departures.py


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
        ``iterations``, ``method``, ``switch_share``, ``gap_target`` and
        ``departure_shift`` (a dict) as used.
    wall_s : float
        Seconds for all days.
    departure_shift : array (persons, legs) or None
        Population agents' remembered departure shifts after the final day, s (what a
        next day would leave by); ``None`` without a population or departure learning.
    """

    twin: Any
    history: list[dict]
    knowledge: np.ndarray
    bin_s: float
    converged: bool
    settings: dict
    wall_s: float = 0.0
    day1_kpis: dict = field(default_factory=dict)
    departure_shift: np.ndarray | None = None

    @property
    def iterations(self) -> int:
        """Number of days iterated."""
        return len(self.history)

    @property
    def final_gap(self) -> float:
        """The last day's relative gap."""
        return float(self.history[-1]["relative_gap"])

    def next_knowledge(self) -> RouteKnowledge:
        """A :class:`RouteKnowledge` for another day after the final one (e.g.
        ``Twin(scenario, route_knowledge=eq.next_knowledge())``).
        """
        tr = self.twin.scenario.traffic
        return RouteKnowledge(
            self.knowledge,
            bin_s=self.bin_s,
            day=self.iterations + 1,
            refresh_s=float(tr.reroute_interval) / int(tr.reroute_batches),
            departure_shift_s=self.departure_shift,
        )

    def dataset(self) -> xr.Dataset:
        """``equilibrium.nc``: the per-iteration series (dim ``iteration``) and the final
        knowledge (dims ``bin``, ``link``).
        """
        from twin.results import package_version

        it = np.arange(1, len(self.history) + 1, dtype=np.int64)
        data = {}
        for name, (units, long_name) in ITERATION_VARS.items():
            data[name] = xr.Variable(
                ("iteration",),
                np.array([h[name] for h in self.history], np.float64),
                attrs={"units": units, "long_name": long_name},
            )
        nb, nl = self.knowledge.shape
        data["knowledge_link_time_s"] = xr.Variable(
            ("bin", "link"),
            self.knowledge,
            attrs={"units": "s", "long_name": "remembered link travel time after the final day, by time-of-day bin"},
        )
        coords = {
            "iteration": xr.Variable(
                ("iteration",), it, attrs={"units": "1", "long_name": "day (1: the immediate response)"}
            ),
            "bin": xr.Variable(
                ("bin",),
                np.arange(nb, dtype=np.float64) * self.bin_s,
                attrs={"units": "s", "long_name": "start of the knowledge bin, seconds since the start"},
            ),
            "link": xr.Variable(
                ("link",), np.arange(nl, dtype=np.int64), attrs={"units": "1", "long_name": "link index"}
            ),
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
            "departure_shift": int(self.departure_shift is not None),
            "departure_shift_max_s": float(self.settings["departure_shift"]["max"]),
            "departure_shift_step_s": float(self.settings["departure_shift"]["step"]),
            "early_penalty": float(self.settings["departure_shift"]["early_penalty"]),
            "late_penalty": float(self.settings["departure_shift"]["late_penalty"]),
            "max_iterations": int(self.settings["iterations"]),
            "iterations": int(len(self.history)),
            "converged": int(self.converged),
            "final_relative_gap": self.final_gap,
            "bin_s": float(self.bin_s),
            "wall_s": float(self.wall_s),
        }
        return xr.Dataset(data, coords=coords, attrs=attrs)


def _settings(scenario, *, departure_shift=None, **overrides) -> dict:
    spec = scenario.traffic.equilibrium
    s = {
        "iterations": spec.iterations,
        "method": spec.method,
        "switch_share": spec.switch_share,
        "gap_target": spec.gap_target,
    }
    for key, value in overrides.items():
        if value is not None:
            s[key] = value
    s["departure_shift"] = _departure_settings(spec.departure_shift.model_dump(), departure_shift)
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


def _departure_settings(base: dict, override) -> dict:
    """``traffic.equilibrium.departure_shift`` with an override: ``True``/``False`` (enabled) or a
    dict of fields; every value checked, errors naming the field.
    """
    d = dict(base)
    if isinstance(override, bool):
        d["enabled"] = override
    elif isinstance(override, dict):
        unknown = sorted(set(override) - set(d))
        if unknown:
            raise InputError(
                f"traffic.equilibrium.departure_shift.{unknown[0]} is not a setting (settings: {', '.join(d)})"
            )
        d.update(override)
    elif override is not None:
        raise InputError(
            f"traffic.equilibrium.departure_shift must be true, false or a mapping of settings, got {override!r}"
        )
    if not isinstance(d["enabled"], bool):
        raise InputError(f"traffic.equilibrium.departure_shift.enabled must be true or false, got {d['enabled']!r}")
    for key, lo, hi, lo_ok in (
        ("max", 0.0, 4 * 3600.0, True),
        ("step", 0.0, 4 * 3600.0, False),
        ("early_penalty", 0.0, 100.0, True),
        ("late_penalty", 0.0, 100.0, True),
    ):
        v = d[key]
        ok = (
            not isinstance(v, bool)
            and isinstance(v, (int, float, np.integer, np.floating))
            and math.isfinite(v)
            and (v >= lo if lo_ok else v > lo)
            and v <= hi
        )
        if not ok:
            raise InputError(
                f"traffic.equilibrium.departure_shift.{key} must be a number "
                f"{'from' if lo_ok else 'above'} {lo:g} {'to' if lo_ok else 'up to'} {hi:g}, got {v!r}"
            )
        d[key] = float(v)
    if d["max"] > 0 and d["step"] > d["max"]:
        raise InputError(
            f"traffic.equilibrium.departure_shift.step ({d['step']:g} s) must be at most max ({d['max']:g} s)"
        )
    return d


@contextmanager
def kernel_threads(n: int | None):
    """Run the numba kernels on at most ``n`` threads inside the block (``None``: as they are)."""
    if n is None:
        yield
        return
    import numba

    old = numba.get_num_threads()
    numba.set_num_threads(max(1, min(int(n), numba.config.NUMBA_NUM_THREADS)))  # type: ignore[attr-defined]  # numba.config sets its options at import
    try:
        yield
    finally:
        numba.set_num_threads(old)


def equilibrate(
    scenario,
    *,
    seed: int | None = None,
    city=None,
    iterations: int | None = None,
    method: str | None = None,
    switch_share: float | None = None,
    gap_target: float | None = None,
    departure_shift: bool | dict | None = None,
    progress: Callable[[dict], None] | None = None,
    threads: int | None = None,
) -> Equilibrium:
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
    departure_shift : bool or dict, optional
        Overrides ``traffic.equilibrium.departure_shift``: ``False`` for routes only,
        ``True`` to adapt departures, or a dict of its settings (``max``, ``step`` in
        seconds, ``early_penalty``, ``late_penalty``, ``enabled``).
    progress : callable, optional
        Called after each day with that day's history row.
    threads : int or None, optional
        Most threads of the numba kernels during the days (default ``None``: numba's
        setting; a routing call whose work is small runs on one thread anyway, see
        :data:`twin.traffic.PARALLEL_MIN_WORK`, so only the large route refreshes of
        a big city use more).

    Returns
    -------
    Equilibrium
    """
    s = _settings(
        scenario,
        iterations=iterations,
        method=method,
        switch_share=switch_share,
        gap_target=gap_target,
        departure_shift=departure_shift,
    )
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
    twin: Twin | None = None
    converged = False
    day1: dict = {}
    dep = s["departure_shift"]
    shift: np.ndarray | None = None  # population agents' remembered departure shifts
    for day in range(1, s["iterations"] + 1):
        t0 = time.perf_counter()
        rk = (
            None
            if knowledge is None
            else RouteKnowledge(knowledge, bin_s=bin_s, day=day, refresh_s=refresh_s, departure_shift_s=shift)
        )
        # every day has the same trips: build them (and their free-flow times) once;
        # the previous day's twin goes before the next is built
        trips: Trips | None = None if twin is None else twin.trips
        free: np.ndarray | None = None if twin is None else twin.trip_free_flow_s
        if twin is not None:
            # a twin is a web of cycles (model, agents, SimPy processes): free its arrays now,
            # not whenever the cyclic collector next runs (20 metro days held 6.9 GB without)
            twin = None
            gc.collect()
        twin = Twin(scenario, seed=seed, city=city, route_knowledge=rk, trips=trips, trip_free_flow_s=free)
        is_open = run_day(twin, bin_s=bin_s)
        x = experienced_link_times(twin)
        if knowledge is not None and x.shape != knowledge.shape:
            raise InputError(
                f"day {day} recorded {x.shape[0]} intervals on {x.shape[1]} links, the knowledge has "
                f"{knowledge.shape}: the output interval must divide the day the same way every day"
            )
        gap = relative_gap(twin, x, is_open, bin_s=bin_s)
        share = 1.0 if knowledge is None else (1.0 / day if s["method"] == "msa" else float(s["switch_share"]))
        row = _day_row(twin, day=day, gap=gap, share=share, expectation_error=_expectation_error(twin, knowledge, x))
        if day == 1:
            day1 = dict(row["kpis"])
        knowledge = x.copy() if knowledge is None else knowledge + share * (x - knowledge)
        shift = _replan_departures(
            twin, row, shift, knowledge, bin_s=bin_s, share=share, day=day, settings=dep, is_open=is_open
        )
        row["wall_s"] = time.perf_counter() - t0
        history.append(row)
        log.info(
            "day %d: relative gap %.4f, mean travel time %.1f s, %.1f s",
            day,
            row["relative_gap"],
            row["mean_travel_time_s"],
            row["wall_s"],
        )
        if progress is not None:
            progress(row)
        if math.isfinite(gap["relative_gap"]) and gap["relative_gap"] <= s["gap_target"]:
            converged = True
            break
    assert twin is not None and knowledge is not None
    return Equilibrium(
        twin=twin,
        history=history,
        knowledge=knowledge,
        bin_s=bin_s,
        converged=converged,
        settings=s,
        wall_s=time.perf_counter() - t_start,
        day1_kpis=day1,
        departure_shift=shift,
    )


def _day_row(twin, *, day: int, gap: dict, share: float, expectation_error: float) -> dict:
    """One day's history row: the gap, the main KPIs, the switch share (and all KPIs under ``kpis``)."""
    kpis = twin.kpis()
    return {
        "iteration": day,
        "relative_gap": gap["relative_gap"],
        "mean_travel_time_s": kpis["mean_travel_time_s"],
        "mean_best_time_s": gap["mean_best_time_s"],
        "vehicle_hours": kpis["vehicle_hours"],
        "trips_completed": kpis["trips_completed"],
        "trips_unfinished": kpis["trips_unfinished"],
        "switch_share": share,
        "expectation_error": expectation_error,
        "kpis": kpis,
    }


def _replan_departures(
    twin, row: dict, shift: np.ndarray | None, knowledge: np.ndarray, *, bin_s, share, day, settings, is_open
) -> np.ndarray | None:
    """Let a share of the agents' car trips re-plan their departure; the shifts to remember.

    Adds the departure statistics to ``row`` (NaN without a population that has desired times).
    """
    pop = twin.components.get("population")
    if pop is None or pop.desired_t is None:
        row.update(dict.fromkeys(DEPARTURE_VARS, math.nan))
        return shift
    # a share of agent car trips re-plans its departure (half at most: not all at once after day 1)
    new, dstats = adapt_departures(
        twin,
        np.zeros_like(pop.desired_t) if shift is None else shift,
        knowledge,
        bin_s=bin_s,
        share=min(share, 0.5),
        day=day,
        settings=settings,
        is_open=is_open,
    )
    row.update(dstats)
    return new if settings["enabled"] and settings["max"] > 0 else None


def write_equilibrium(eq: Equilibrium, out: str | Path) -> Path:
    """Write the final day's run folder (``results.nc``, ``summary.json``,
    ``scenario.yaml``) plus ``equilibrium.nc``, atomically (see :func:`twin.results.write_run`).
    """
    import json

    from basics.atomic import json_safe, replace_folder
    from twin.results import fill_run

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"run folder {str(out)!r} exists and is not a folder")

    def fill(tmp: Path) -> None:
        fill_run(eq.twin, tmp, extra={"equilibrium.nc": eq.dataset()})
        summary = json.loads((tmp / "summary.json").read_text())
        summary["equilibrium"] = json_safe(
            {
                **eq.settings,
                "iterations_run": eq.iterations,
                "converged": eq.converged,
                "final_relative_gap": eq.final_gap,
                "relative_gap": [h["relative_gap"] for h in eq.history],
                "wall_s": eq.wall_s,
                "departures_shifted": [h["departures_shifted"] for h in eq.history],
                "mean_departure_shift_s": [h["mean_departure_shift_s"] for h in eq.history],
                "day1_kpis": eq.day1_kpis,
            }
        )
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2, allow_nan=False))

    return replace_folder(out, fill)
