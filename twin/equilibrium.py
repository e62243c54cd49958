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
from typing import Any

import numpy as np
import xarray as xr

from kernels import choice as kc
from kernels.routing import route_table
from twin.errors import InputError
from twin.recorder import PRIORITY, at_time

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

#: per-iteration variables of the population agents' departure learning (NaN without agents)
DEPARTURE_VARS: tuple[str, ...] = (
    "departures_shifted",
    "mean_departure_shift_s",
    "mean_abs_departure_shift_s",
    "agent_mean_travel_time_s",
    "agent_mean_cost_s",
)

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
        if not 0.0 <= deadband < 1.0:
            raise ValueError(f"deadband must lie in [0, 1), got {deadband!r}")
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
                raise ValueError("departure_shift_s must be a finite (persons, legs) array of seconds")
        self.departure_shift_s = departure_shift_s

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
            yield at_time(twin.env, max(self.next_s, twin.env.now), PRIORITY["reroute"])
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


def run_day(twin, *, bin_s: float) -> np.ndarray:
    """Run ``twin`` to the end of its day, a bin at a time; returns which links were
    open at the end of each bin, ``bool (bins, links)``.  (Splitting a run changes
    nothing in it.)
    """
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
    weights from bin to bin.
    """
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


def _shortest_by_bin(
    twin, link_time_s: np.ndarray, is_open, bins: np.ndarray, origin: np.ndarray, dest: np.ndarray
) -> np.ndarray:
    """Shortest travel time of each (origin, dest) pair on the link times of its bin
    (``link_time_s[bins[i]]``; links closed at the end of that bin, ``is_open``, excluded):
    one route-table pass per bin over the destinations that bin needs.
    """
    tm = twin.traffic
    g = tm.graph
    n_nodes = tm.network.n_nodes
    out = np.full(bins.shape[0], np.inf)
    dests, row = np.unique(dest, return_inverse=True)
    dests = dests.astype(np.int32)
    dist = np.full((dests.size, n_nodes), np.inf)
    no_next = np.empty((0, n_nodes), np.int32)
    order = np.argsort(bins, kind="stable")
    cuts = np.flatnonzero(np.diff(bins[order])) + 1
    for part in np.split(order, cuts):
        if part.size == 0:
            continue
        b = int(bins[part[0]])
        w = np.array(link_time_s[b], np.float64)
        if is_open is not None:
            w[~is_open[min(b, is_open.shape[0] - 1)]] = np.inf
        active = np.zeros(dests.size, np.bool_)
        active[row[part]] = True
        route_table(dests, active, g.in_indptr, g.in_links, g.src, w, no_next, dist)
        out[part] = dist[row[part], origin[part]]
    return out


#: the relative gap is measured on at most this many completed trips (a sample keyed to
#: the trip, the same every day): each needs a shortest-path search per destination and
#: departure bin, which on a metro day would cost more than the day itself
GAP_SAMPLE = 50_000


def relative_gap(
    twin, link_time_s: np.ndarray, is_open: np.ndarray | None = None, *, bin_s: float, sample: int | None = GAP_SAMPLE
) -> dict[str, Any]:
    """The day's relative gap on its experienced link times.

    On more than ``sample`` completed trips it is measured on a sample of that many,
    drawn by a hash of the trip's number (the same trips every day while they complete);
    its standard error is about ``sd / sqrt(sample)`` of the per-trip gaps, a few
    hundredths of a percentage point at 50,000 (``None``: every trip).

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
    if sample is not None and idx.size > sample:
        from kernels.choice import hash_uniforms

        u = hash_uniforms(np.asarray(idx, np.uint64), 0x6A7, np.empty(idx.size))
        idx = idx[np.argsort(u, kind="stable")[:sample]]
        idx.sort()
        done = np.zeros_like(done)
        done[idx] = True
    if idx.size:
        best[idx] = _shortest_by_bin(twin, link_time_s, is_open, b_of[idx], origin[idx], dest[idx])
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


# ------------------------------------------------------------------------ departure times

#: counter-based random stream (slot) of who re-plans a departure after a day: + day
_SLOT_DEPARTURE = 1 << 43


def expected_travel_times(
    twin,
    link_time_s: np.ndarray,
    origin: np.ndarray,
    dest: np.ndarray,
    depart_s: np.ndarray,
    *,
    bin_s: float,
    is_open: np.ndarray | None = None,
) -> np.ndarray:
    """Travel times travellers expect from remembered link times, s, one per (origin, destination, departure).

    The shortest path from ``origin`` to ``dest`` on the link times of each bin
    (``link_time_s[bin]``, links closed at the end of that bin excluded), linear
    in the departure time between bin centres (held before the first centre and
    after the last); ``inf`` where the destination cannot be reached.
    """
    origin = np.asarray(origin, np.int64)
    dest = np.asarray(dest, np.int64)
    t = np.asarray(depart_s, np.float64)
    out = np.full(t.shape[0], np.inf)
    if t.size == 0:
        return out
    n_bins = link_time_s.shape[0]
    c = t / bin_s - 0.5
    b0 = np.clip(np.floor(c), 0, n_bins - 1).astype(np.int64)
    b1 = np.minimum(b0 + 1, n_bins - 1)
    f = np.where((c >= 0) & (c < n_bins - 1), c - np.floor(c), 0.0)
    value = _shortest_by_bin(
        twin,
        link_time_s,
        is_open,
        np.concatenate([b0, b1]),
        np.concatenate([origin, origin]),
        np.concatenate([dest, dest]),
    )
    v0, v1 = value[: t.size], value[t.size :]
    with np.errstate(invalid="ignore"):
        out = np.where(f == 0.0, v0, (1.0 - f) * v0 + f * v1)
    return np.where(np.isnan(out), np.inf, out)


def entry_link_times(link_time_s: np.ndarray, *, bin_s: float, iterations: int = 4) -> np.ndarray:
    """Link times by the time a vehicle *enters* the link, from times by the time vehicles left it.

    The experienced (and remembered) time of a bin is the mean traversal time of the
    vehicles that left the link in the bin; a vehicle entering at ``t`` leaves at
    ``t + tau(t)``, so ``tau(t) = X(t + tau(t))`` (``X`` linear between bin centres),
    solved by a few fixed-point steps from ``tau = X(t)`` at each bin centre.  Without
    it, a rising queue shows up a traversal time late and leaving just before a peak
    looks better than it is.
    """
    x = np.asarray(link_time_s, np.float64)
    nb = x.shape[0]
    centre = (np.arange(nb, dtype=np.float64) + 0.5) * bin_s
    col = np.arange(x.shape[1])[None, :]
    tau = x.copy()
    for _ in range(iterations):
        c = (centre[:, None] + np.where(np.isfinite(tau), tau, 0.0)) / bin_s - 0.5
        b0 = np.clip(np.floor(c), 0, nb - 1).astype(np.int64)
        b1 = np.minimum(b0 + 1, nb - 1)
        f = np.where((c >= 0) & (c < nb - 1), c - np.floor(c), 0.0)
        with np.errstate(invalid="ignore"):
            tau = np.where(f == 0.0, x[b0, col], (1.0 - f) * x[b0, col] + f * x[b1, col])
    return np.where(np.isnan(tau), np.inf, tau)


def _agent_car_trips(twin):
    """The day's completed agent car trips: person, leg, origin, destination, desired and actual
    departure, arrival (``None`` without a population).
    """
    pop = twin.components.get("population") if getattr(twin, "components", None) else None
    if pop is None or pop.desired_t is None:
        return None
    lg = pop.log
    veh = twin.traffic.veh
    vid = lg["vid"]
    car = (lg["mode"] == kc.MODE_CAR) & (vid >= 0)
    rows = np.flatnonzero(car)
    arrive = veh.arrive[vid[rows]]
    person = lg["person"][rows].astype(np.int64)
    leg = lg["leg"][rows].astype(np.int64)
    inside = leg < pop.desired_t.shape[1]
    desired = np.full(rows.size, np.nan)
    desired[inside] = pop.desired_t[person[inside], leg[inside]]
    ok = np.isfinite(arrive) & np.isfinite(desired)
    # one row per (person, leg): the first
    rows, person, leg, arrive, desired = rows[ok], person[ok], leg[ok], arrive[ok], desired[ok]
    _, first = np.unique(person * (pop.desired_t.shape[1] + 1) + leg, return_index=True)
    first.sort()
    rows = rows[first]
    return {
        "pop": pop,
        "person": person[first],
        "leg": leg[first],
        "orig": lg["orig"][rows].astype(np.int64),
        "dest": lg["dest"][rows].astype(np.int64),
        "desired": desired[first],
        "depart": veh.depart[vid[rows]],
        "arrive": arrive[first],
    }


def _expect(twin, k_entry, origin, dest, depart, bin_s, is_open) -> np.ndarray:
    """Expected travel times on entry link times, evaluated at the trip's midpoint: the time
    at departure ``T0`` first, then at ``depart + T0 / 2`` (one step of time dependence: a
    trip meets the conditions of about half-way through it).
    """
    t0 = expected_travel_times(twin, k_entry, origin, dest, depart, bin_s=bin_s, is_open=is_open)
    mid = depart + np.where(np.isfinite(t0), t0, 0.0) / 2.0
    return expected_travel_times(twin, k_entry, origin, dest, mid, bin_s=bin_s, is_open=is_open)


#: pseudo-trips (at factor 1) in each bin's shortfall factor, so a bin with few trips stays near 1
_SHORTFALL_PRIOR = 10.0


def _shortfall(
    expected: np.ndarray, actual: np.ndarray, depart: np.ndarray, *, bin_s: float, n_bins: int
) -> np.ndarray:
    """Per departure bin: the day's experienced travel time over the expected one (sums over the
    trips that left in the bin, shrunk towards 1 by :data:`_SHORTFALL_PRIOR` pseudo-trips).

    Shortest paths on link times miss what a trip actually meets (other routes in use,
    queues growing while it drives); this scales the expectations by time of day.
    """
    ok = np.isfinite(expected) & np.isfinite(actual) & (expected > 0)
    b = np.clip(np.floor(depart[ok] / bin_s), 0, n_bins - 1).astype(np.int64)
    e = np.bincount(b, weights=expected[ok], minlength=n_bins)
    a = np.bincount(b, weights=actual[ok], minlength=n_bins)
    n = np.bincount(b, minlength=n_bins)
    prior = _SHORTFALL_PRIOR * (float(expected[ok].mean()) if ok.any() else 1.0)
    return (a + prior) / (e + prior) if n.sum() else np.ones(n_bins)


def _at(per_bin: np.ndarray, t: np.ndarray, bin_s: float) -> np.ndarray:
    """A per-bin series at times ``t``, linear between bin centres (held beyond the first and last)."""
    nb = per_bin.shape[0]
    c = t / bin_s - 0.5
    b0 = np.clip(np.floor(c), 0, nb - 1).astype(np.int64)
    b1 = np.minimum(b0 + 1, nb - 1)
    f = np.where((c >= 0) & (c < nb - 1), c - np.floor(c), 0.0)
    return (1.0 - f) * per_bin[b0] + f * per_bin[b1]


def _penalty(shift_s: np.ndarray, early: float, late: float) -> np.ndarray:
    """Schedule-delay penalty of leaving ``shift_s`` seconds after the planned time, s of travel time."""
    return early * np.maximum(-shift_s, 0.0) + late * np.maximum(shift_s, 0.0)


def candidate_shifts(max_s: float, step_s: float) -> np.ndarray:
    """The candidate departure shifts, s: 0, -step, +step, -2 step, ... up to ``max_s`` either way
    (in this order: on equal cost the smaller shift, and of two equal ones the earlier, wins).
    """
    if not max_s > 0:
        return np.zeros(1)
    j = int(math.floor(max_s / step_s + 1e-9))
    out = [0.0]
    for i in range(1, j + 1):
        out += [-i * step_s, i * step_s]
    return np.array(out)


def adapt_departures(
    twin,
    shift_s: np.ndarray,
    link_time_s: np.ndarray,
    *,
    bin_s: float,
    share: float,
    day: int,
    settings: dict,
    is_open: np.ndarray | None = None,
) -> tuple[np.ndarray, dict]:
    """Population agents' departure times after a day (see the module notes).

    Parameters
    ----------
    twin
        The twin that ran the day (with a population component).
    shift_s : array (persons, legs)
        The remembered departure shifts the day ran with, s (not changed).
    link_time_s : array (bins, links)
        What travellers remember after the day (``K_{k+1}``): the expected travel times.
    bin_s : float
        Knowledge bin length, s.
    share : float
        Share of agent car trips that re-plan (``s_k``).
    day : int
        The day just run (which trips re-plan is a hash of the seed, person, leg and day).
    settings : dict
        ``traffic.equilibrium.departure_shift`` as a dict (``enabled``, ``max``, ``step``,
        ``early_penalty``, ``late_penalty``).
    is_open : bool array (bins, links), optional
        Links open in each bin of the day.

    Returns
    -------
    (array, dict)
        The shifts for the next day, and the day's ``departures_shifted``,
        ``mean_departure_shift_s``, ``mean_abs_departure_shift_s``,
        ``agent_mean_travel_time_s``, ``agent_mean_cost_s`` (NaN without agent car trips).
    """
    early, late = float(settings["early_penalty"]), float(settings["late_penalty"])
    new = np.array(shift_s, np.float64, copy=True)
    stats = dict.fromkeys(DEPARTURE_VARS, math.nan)
    trips = _agent_car_trips(twin)
    if trips is None:
        return new, stats
    p, g = trips["person"], trips["leg"]
    tt = trips["arrive"] - trips["depart"]
    if p.size:
        stats["agent_mean_travel_time_s"] = float(tt.mean())
        stats["agent_mean_cost_s"] = float((tt + _penalty(trips["depart"] - trips["desired"], early, late)).mean())
    moved = 0
    if settings["enabled"] and settings["max"] > 0 and p.size:
        base = np.uint64(_seed_key(twin.seed))
        keys = np.empty(p.size, np.uint64)
        kc.decision_keys(base, p, g, keys)
        u = kc.hash_uniforms(keys, int(_SLOT_DEPARTURE + day), np.empty(p.size))
        sel = np.flatnonzero(u < share)
        if sel.size:
            cand = candidate_shifts(float(settings["max"]), float(settings["step"]))
            cur = shift_s[p[sel], g[sel]]
            offs = np.concatenate([cur[:, None], np.broadcast_to(cand, (sel.size, cand.size))], axis=1)
            t = trips["desired"][sel][:, None] + offs
            m = offs.shape[1]
            k_entry = entry_link_times(link_time_s, bin_s=bin_s)
            # how far such expectations fell short of what the day's trips took, by departure time
            factor = _shortfall(
                _expect(twin, k_entry, trips["orig"], trips["dest"], trips["depart"], bin_s, is_open),
                tt,
                trips["depart"],
                bin_s=bin_s,
                n_bins=link_time_s.shape[0],
            )
            tf = t.ravel()
            exp_t = _expect(
                twin, k_entry, np.repeat(trips["orig"][sel], m), np.repeat(trips["dest"][sel], m), tf, bin_s, is_open
            ) * _at(factor, tf, bin_s)
            cost = exp_t.reshape(sel.size, m) + _penalty(offs, early, late)
            cost[(t < 0) | (t >= twin.duration_s)] = np.inf  # no leaving outside the day
            j = np.argmin(cost[:, 1:], axis=1)
            best = cost[np.arange(sel.size), 1 + j]
            go = np.isfinite(best) & (best < cost[:, 0] - 1e-6) & (cand[j] != cur)
            new[p[sel[go]], g[sel[go]]] = cand[j[go]]
            moved = int(go.sum())
        stats["departures_shifted"] = float(moved)
    if p.size:
        after = new[p, g]
        stats["mean_departure_shift_s"] = float(after.mean())
        stats["mean_abs_departure_shift_s"] = float(np.abs(after).mean())
    return new, stats


def _seed_key(seed: int) -> int:
    """The departure learning's random key under ``seed`` (its own component stream)."""
    from twin.rng import component_seed

    return int(component_seed(int(seed), "equilibrium.departures").generate_state(1, np.uint64)[0])


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
        return len(self.history)

    @property
    def final_gap(self) -> float:
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
    numba.set_num_threads(max(1, min(int(n), numba.config.NUMBA_NUM_THREADS)))
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
    twin = None
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
        trips, free = (None, None) if twin is None else (twin.trips, twin.trip_free_flow_s)
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
        pop = twin.components.get("population")
        if pop is None or pop.desired_t is None:
            row.update(dict.fromkeys(DEPARTURE_VARS, math.nan))
        else:
            # a share of agent car trips re-plans its departure (half at most: not all at once after day 1)
            new, dstats = adapt_departures(
                twin,
                np.zeros_like(pop.desired_t) if shift is None else shift,
                knowledge,
                bin_s=bin_s,
                share=min(share, 0.5),
                day=day,
                settings=dep,
                is_open=is_open,
            )
            shift = new if dep["enabled"] and dep["max"] > 0 else None
            row.update(dstats)
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


def write_equilibrium(eq: Equilibrium, out: str | Path) -> Path:
    """Write the final day's run folder (``results.nc``, ``summary.json``,
    ``scenario.yaml``) plus ``equilibrium.nc``, atomically (see :func:`twin.results.write_run`).
    """
    import json

    from twin.atomic import json_safe, replace_folder
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
