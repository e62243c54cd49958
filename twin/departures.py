"""Departure-time learning of the day-to-day equilibrium (``traffic.equilibrium.departure_shift``).

What travellers expect a departure to cost (:func:`expected_travel_times` on the
link times by entry, :func:`entry_link_times`) and how population agents shift
their remembered departures after a day (:func:`adapt_departures`); the model is
described in :mod:`twin.equilibrium`, which re-exports these names.
"""

from __future__ import annotations

import math

import numpy as np

from kernels import choice as kc
from twin.gap import _shortest_by_bin

__all__ = ["DEPARTURE_VARS", "adapt_departures", "candidate_shifts", "entry_link_times", "expected_travel_times"]

#: per-iteration variables of the population agents' departure learning (NaN without agents)
DEPARTURE_VARS: tuple[str, ...] = (
    "departures_shifted",
    "mean_departure_shift_s",
    "mean_abs_departure_shift_s",
    "agent_mean_travel_time_s",
    "agent_mean_cost_s",
)

#: counter-based random stream (slot) of who re-plans a departure after a day: + day
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
            go, chosen = _best_shifts(
                twin, trips, sel, shift_s[p[sel], g[sel]], link_time_s, bin_s=bin_s, settings=settings, is_open=is_open
            )
            new[p[sel[go]], g[sel[go]]] = chosen[go]
            moved = int(go.sum())
        stats["departures_shifted"] = float(moved)
    if p.size:
        after = new[p, g]
        stats["mean_departure_shift_s"] = float(after.mean())
        stats["mean_abs_departure_shift_s"] = float(np.abs(after).mean())
    return new, stats


def _best_shifts(
    twin,
    trips: dict,
    sel: np.ndarray,
    cur: np.ndarray,
    link_time_s: np.ndarray,
    *,
    bin_s: float,
    settings: dict,
    is_open: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    """For the re-planning trips ``sel`` (remembered shifts ``cur``): whether each moves (its
    best candidate shift costs less than keeping ``cur``) and the best candidate shift.

    The cost is the expected travel time (the knowledge, scaled by how far such expectations
    fell short of the day's trips) plus the schedule-delay penalty.
    """
    early, late = float(settings["early_penalty"]), float(settings["late_penalty"])
    tt = trips["arrive"] - trips["depart"]
    cand = candidate_shifts(float(settings["max"]), float(settings["step"]))
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
    return go, cand[j]


def _seed_key(seed: int) -> int:
    """The departure learning's random key under ``seed`` (its own component stream)."""
    from twin.rng import component_seed

    return int(component_seed(int(seed), "equilibrium.departures").generate_state(1, np.uint64)[0])
