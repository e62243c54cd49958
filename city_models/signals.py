"""Fixed-time signal plans: Webster's cycle and splits, two phases by bearing.

Used by the OSM and GraphML readers (plans for nodes tagged as signals that the
source gives no plan for) and by :func:`retime_signals` (plans sized from a
day's flows).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from city_models.network import Network

__all__ = [
    "webster_cycle",
    "webster_signal_plans",
    "retime_signals",
    "MIN_CYCLE_S",
    "MAX_CYCLE_S",
    "MIN_GREEN_S",
    "DESIGN_FLOW_SHARE",
]

#: bounds of a Webster cycle, s
MIN_CYCLE_S = 40.0
MAX_CYCLE_S = 120.0
#: the all-red intergreen after each phase, s (the plan's lost time per phase)
_ALL_RED_S = 3.0
#: shortest green of a phase that has approaches, s
MIN_GREEN_S = 5.0
#: design flow of an approach as a share of its capacity, when no flows are known
DESIGN_FLOW_SHARE = 0.4


def _phases(x: np.ndarray, y: np.ndarray, src: np.ndarray, dst: np.ndarray, signalised: np.ndarray) -> np.ndarray:
    """Phase (0 or 1) of every link into a signalised node, by bearing: links within
    45 degrees of the node's first in-link's axis go in phase 0; -1 elsewhere.
    """
    phase = np.full(src.size, -1, np.int64)
    into = np.flatnonzero(signalised[dst])
    if into.size == 0:
        return phase
    angle = np.mod(np.arctan2(y[dst[into]] - y[src[into]], x[dst[into]] - x[src[into]]), np.pi)
    order = np.argsort(dst[into], kind="stable")
    ref: dict[int, float] = {}
    for kk in order:
        node = int(dst[into[kk]])
        a = ref.setdefault(node, float(angle[kk]))
        diff = abs(float(angle[kk]) - a) % np.pi
        phase[into[kk]] = 0 if min(diff, np.pi - diff) < np.pi / 4 else 1
    return phase


def webster_cycle(
    flow_ratios: ArrayLike, *, lost_s: float | None = None, cycle_s: float | None = None
) -> tuple[float, np.ndarray]:
    """Webster's optimum cycle and green splits for phases with critical flow ratios ``y``.

    ``C0 = (1.5 L + 5) / (1 - Y)`` with ``Y = sum(y)`` and ``L`` the lost time
    (default: one all-red intergreen, 3 s, per phase), kept within
    ``MIN_CYCLE_S .. MAX_CYCLE_S`` (``MAX_CYCLE_S`` when ``Y >= 0.95``); the
    effective green ``C - L`` is split in proportion to ``y``, each phase with
    approaches getting at least ``MIN_GREEN_S`` (the cycle grows to fit).

    Parameters
    ----------
    flow_ratios : array_like
        Critical flow ratio (design flow / saturation flow, >= 0) of each phase;
        a phase with ratio 0 and no approaches gets no green.
    lost_s : float, optional
        Lost time per cycle, s.
    cycle_s : float, optional
        A cycle to split instead of Webster's (e.g. one the source data gives).

    Returns
    -------
    tuple[float, numpy.ndarray]
        The cycle (s) and each phase's green (s).
    """
    yv = np.asarray(flow_ratios, dtype=np.float64)
    if yv.ndim != 1 or yv.size == 0 or not np.all(np.isfinite(yv) & (yv >= 0)):
        raise ValueError(f"flow ratios must be finite numbers >= 0, one per phase, got {flow_ratios!r}")
    lost = _ALL_RED_S * yv.size if lost_s is None else float(lost_s)
    big_y = float(yv.sum())
    cycle = MAX_CYCLE_S if big_y >= 0.95 else min(max((1.5 * lost + 5.0) / (1.0 - big_y), MIN_CYCLE_S), MAX_CYCLE_S)
    if cycle_s is not None and math.isfinite(cycle_s):
        cycle = float(cycle_s)
    share = yv / big_y if big_y > 0 else np.full(yv.size, 1.0 / yv.size)
    green = (cycle - lost) * share
    short = (yv > 0) & (green < MIN_GREEN_S)
    if short.any():  # minimum greens first, the rest split as before; the cycle grows if it must
        rest = (yv > 0) & ~short
        green[short] = MIN_GREEN_S
        left = cycle - lost - MIN_GREEN_S * int(short.sum())
        if rest.any():
            green[rest] = np.maximum(left * share[rest] / float(share[rest].sum()), MIN_GREEN_S)
        cycle = max(cycle, lost + float(green.sum()))
    return float(cycle), green


def webster_signal_plans(
    x: np.ndarray,
    y: np.ndarray,
    src: np.ndarray,
    dst: np.ndarray,
    signalised: np.ndarray,
    capacity_vph: np.ndarray,
    *,
    design_flow_vph: np.ndarray | None = None,
    cycle_s: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fixed-time two-phase plans sized by Webster's method at the signalised nodes.

    In-links of a signal are split into two phases by bearing (:func:`_phases`).
    A phase's critical flow ratio is the largest ``design flow / capacity`` of
    its approaches (the link's capacity is its saturation flow in green); the
    cycle and greens are :func:`webster_cycle`'s.  Phase 0 is green from 0,
    phase 1 after phase 0's green and a 3 s all-red, and 3 s all-red ends the
    cycle.  Offsets are 0.

    Parameters
    ----------
    x, y : numpy.ndarray
        Node coordinates, metres.
    src, dst : numpy.ndarray
        Link end nodes.
    signalised : numpy.ndarray
        bool per node.
    capacity_vph : numpy.ndarray
        Link capacities (veh/h).
    design_flow_vph : numpy.ndarray, optional
        Expected flow per link (veh/h), e.g. a day's assigned flows; default
        ``DESIGN_FLOW_SHARE`` of each capacity.
    cycle_s : numpy.ndarray, optional
        Per node, a cycle to keep (only its splits are Webster's); NaN: Webster's.

    Returns
    -------
    tuple of numpy.ndarray
        ``(cycle_s, offset_s)`` per node and ``(green_start_s, green_end_s)`` per link.
    """
    src = np.asarray(src, dtype=np.int64)
    dst = np.asarray(dst, dtype=np.int64)
    signalised = np.asarray(signalised, dtype=bool)
    cap = np.asarray(capacity_vph, dtype=np.float64)
    flow = DESIGN_FLOW_SHARE * cap if design_flow_vph is None else np.asarray(design_flow_vph, dtype=np.float64)
    n, m = signalised.size, src.size
    cycle = np.zeros(n)
    offset = np.zeros(n)
    gs = np.zeros(m)
    ge = np.zeros(m)
    phase = _phases(np.asarray(x, float), np.asarray(y, float), src, dst, signalised)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(cap > 0, flow / cap, 0.0)
    ratio = np.where(np.isfinite(ratio) & (ratio > 0), ratio, 0.0)
    for node in np.flatnonzero(signalised):
        into = np.flatnonzero(dst == node)
        if into.size == 0:
            continue
        ys = np.zeros(2)
        for p in (0, 1):
            mine = into[phase[into] == p]
            if mine.size:
                ys[p] = max(float(ratio[mine].max()), 1e-6)
        c, g = webster_cycle(ys, cycle_s=None if cycle_s is None else float(cycle_s[node]))
        cycle[node] = c
        for a in into:
            if phase[a] == 0:
                gs[a], ge[a] = 0.0, g[0]
            else:
                gs[a], ge[a] = g[0] + _ALL_RED_S, g[0] + _ALL_RED_S + g[1]
    return cycle, offset, gs, ge


def retime_signals(
    net: Network, *, design_flow_vph: np.ndarray | None = None, nodes: ArrayLike | None = None
) -> Network:
    """A copy of ``net`` whose signals (or just ``nodes``) get Webster plans sized
    from their approaches' capacities and ``design_flow_vph`` (per link, veh/h;
    e.g. the flows of a day's run); see :func:`webster_signal_plans`.
    """
    which = net.signal_cycle_s > 0
    if nodes is not None:
        pick = np.zeros(net.n_nodes, bool)
        pick[np.asarray(nodes, np.int64)] = True
        which &= pick
    cycle, offset, gs, ge = webster_signal_plans(
        net.x, net.y, net.src, net.dst, which, net.capacity_vph, design_flow_vph=design_flow_vph
    )
    into = which[net.dst]
    new = dict(
        signal_cycle_s=np.where(which, cycle, net.signal_cycle_s),
        signal_offset_s=np.where(which, offset, net.signal_offset_s),
        green_start_s=np.where(into, gs, net.green_start_s),
        green_end_s=np.where(into, ge, net.green_end_s),
    )
    for arr in new.values():
        arr.flags.writeable = False
    return net._replace(**new)
