"""A day of the day-to-day equilibrium, measured: its run, experienced link times and relative gap.

Split out of :mod:`twin.equilibrium`, which iterates days and re-exports these names.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from basics.errors import InputError
from kernels.routing import route_table

__all__ = ["GAP_SAMPLE", "experienced_link_times", "relative_gap", "run_day"]


def run_day(twin, *, bin_s: float) -> np.ndarray:
    """Run ``twin`` to the end of its day, a bin at a time.

    Returns which links were open at the end of each bin, ``bool (bins, links)``.
    (Splitting a run changes nothing in it.)
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
        route_table(g, dests, w, active=active, next_link_out=no_next, dist_out=dist)
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
