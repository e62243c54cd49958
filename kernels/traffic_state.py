"""The traffic kernel's state between advances: link travel times, counts, upkeep.

Kernels over the arrays of :mod:`kernels.traffic` (``Links``, ``LinkState``, ``Vehicles``)
that the model calls between two :func:`kernels.traffic.advance` calls: the travel times
routes are refreshed from (:func:`link_travel_times`), vehicles by status
(:func:`status_counts`), the route rows in use (:func:`destinations_in_use`), vehicles
without a route put back on (:func:`retry_no_route`) and the vehicle-seconds integral brought
up to date (:func:`flush_vehicle_seconds`).  Each public name is a checked wrapper (dtypes,
shapes, lengths: :func:`kernels.traffic.check_state`) over a private ``@njit`` kernel.
"""

from __future__ import annotations

import numpy as np

from basics.errors import InputError
from kernels._checks import check_array, check_scalar
from kernels._jit import Float, Int, njit
from kernels.traffic import VEH_NO_ROUTE, VEH_WAITING, Links, LinkState, Vehicles, check_state

__all__ = [
    "link_travel_times",
    "status_counts",
    "destinations_in_use",
    "retry_no_route",
    "flush_vehicle_seconds",
]

#: at most this many of a link's last exits give its observed discharge headway
_EXIT_WINDOW = 32


@njit(cache=True)
def _link_travel_times(links: Links, ls: LinkState, veh: Vehicles, now: Float, out: np.ndarray) -> np.ndarray:
    """Predicted travel time of a vehicle entering each link now (inf when closed).

    A point-queue prediction from the link's cumulative curves: the vehicle leaves
    no earlier than its free-flow time, and not before the ``n`` vehicles on the
    link ahead of it have left, one per discharge headway.  That headway is the
    capacity's while the head vehicle is still driving; once it is queued (it has
    driven the link), it is the mean headway of the link's last ``m`` exits up to
    now (``m`` at most ``_EXIT_WINDOW`` and the vehicles on the link; the window
    starting no earlier than the head's arrival at the stop line less ``m - 1``
    capacity headways), if longer: a link held back by spillback,
    a merge it loses or a red light discharges below capacity, and a blocked one
    not at all, so its estimate keeps growing while it stays blocked.  Unlike the
    head vehicle's age, this looks ahead: it falls as soon as a queue shortens.
    """
    ring = ls.exit_ring
    for a in range(links.src.shape[0]):
        if links.is_open[a] == 0 or links.headway[a] == np.inf:
            out[a] = np.inf
            continue
        tt = links.free_tt[a]
        n_on = ls.n_in[a] - ls.n_out[a]
        if n_on > 0:
            h = links.headway[a]
            n_out = ls.n_out[a]
            ready = ls.head_ready[a]
            if ready < now and n_out > 0:
                m = min(n_out, links.ring_len[a] - 1, n_on, _EXIT_WINDOW)
                if m < 1:
                    m = 1
                t0 = ring[links.ring_off[a] + (n_out - m) % links.ring_len[a]]
                # exits before the queue formed were spaced by arrivals, not by its discharge:
                # the window starts no earlier than the head's arrival at the stop line less
                # what m - 1 exits at capacity ahead of it would have taken
                q0 = ready - (m - 1) * h
                if q0 > t0:
                    t0 = q0
                h_obs = (now - t0) / m
                if h_obs > h:
                    h = h_obs
            q_tt = n_on * h
            if q_tt > tt:
                tt = q_tt
        out[a] = tt
    return out


@njit(cache=True)
def _status_counts(link: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Vehicles by status in one pass: ``out[-s - 1]`` counts status code ``s < 0``
    (``out[0]`` waiting, ``out[1]`` arrived, ``out[2]`` pending, ``out[3]`` no route,
    ``out[4]`` the caller's code -5), ``out[5]`` the vehicles on a link (``>= 0``).
    Codes below -5 are not counted.
    """
    out[:] = 0
    for v in range(link.shape[0]):
        s = link[v]
        if s >= 0:
            out[5] += 1
        elif s >= -5:
            out[-s - 1] += 1
    return out


@njit(cache=True)
def _destinations_in_use(
    veh: Vehicles, ls: LinkState, horizon_t: Float, cand: np.ndarray, n_cand: Int, released: Int, out: np.ndarray
) -> tuple[Int, Int]:
    """Flag route-table rows needed by vehicles on the network or departing before ``horizon_t``.

    Only vehicles already released can be on the network, waiting or without a
    route, so the caller keeps them in ``cand``: its first ``n_cand`` entries are
    the live ones found by the previous call, when ``released`` vehicles had been
    released (``ls.cursor[0]`` then); the vehicles released since,
    ``veh.order[released:ls.cursor[0]]``, are added.  ``cand`` needs room for
    ``n_cand + ls.cursor[0] - released`` entries.  The live ones (on a link,
    waiting, or without a route) are packed to the front of ``cand`` and flag
    their destination rows; so do the vehicles still pending that depart before
    ``horizon_t``.  ``released = 0, n_cand = 0`` scans every released vehicle.
    Returns (how many live vehicles now head ``cand``, how many have no route).
    """
    out[:] = False
    n = 0
    no_route = 0
    total = n_cand + ls.cursor[0] - released
    for i in range(total):
        v = cand[i] if i < n_cand else veh.order[released + i - n_cand]
        s = veh.link[v]
        if s >= 0 or s == VEH_WAITING or s == VEH_NO_ROUTE:
            cand[n] = v
            n += 1
            out[veh.dest_idx[v]] = True
            if s == VEH_NO_ROUTE:
                no_route += 1
    p = ls.cursor[0]
    while p < veh.order.shape[0]:
        v = veh.order[p]
        if veh.depart[v] >= horizon_t:
            break
        out[veh.dest_idx[v]] = True
        p += 1
    return n, no_route


@njit(cache=True)
def _retry_no_route(veh: Vehicles, ls: LinkState, pot: np.ndarray) -> Int:
    """Queue vehicles released without a route whose destination is now reachable.

    Their departure stays as scheduled, so the wait counts in their travel
    time.  Returns how many were queued.
    """
    n = 0
    for p in range(ls.cursor[0]):
        v = veh.order[p]
        if veh.link[v] != VEH_NO_ROUTE:
            continue
        o = veh.orig[v]
        if not pot[veh.dest_idx[v], o] < np.inf:
            continue
        veh.link[v] = VEH_WAITING
        veh.nxt[v] = -1
        tl = ls.oq_tail[o]
        if tl < 0:
            ls.oq_head[o] = v
        else:
            veh.nxt[tl] = v
        ls.oq_tail[o] = v
        ls.node_load[o] += 1
        n += 1
    return n


@njit(cache=True)
def _flush_vehicle_seconds(ls: LinkState, now: Float) -> None:
    """Bring every link's vehicle-seconds integral up to ``now``."""
    for a in range(ls.vs_t.shape[0]):
        ls.acc_vehsec[a] += (ls.n_in[a] - ls.n_out[a]) * (now - ls.vs_t[a])
        ls.vs_t[a] = now


# ----------------------------------------------------------------------------- checked wrappers


def link_travel_times(links: Links, ls: LinkState, veh: Vehicles, now: float, out: np.ndarray) -> np.ndarray:
    """Predicted travel time of a vehicle entering each link at ``now`` (inf when closed), into ``out``.

    Checks the arrays (:func:`kernels.traffic.check_state`) and ``out`` (float64, one entry per
    link), then runs :func:`_link_travel_times`, whose docstring gives the prediction.
    Returns ``out``.
    """
    check_state(links, None, ls, veh, None)
    check_array("out", out, np.float64, length=links.src.shape[0], writeable=True)
    return _link_travel_times(links, ls, veh, check_scalar("now", now), out)


def status_counts(link: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Vehicles by status in one pass, into ``out`` (int64, 6 entries); see :func:`_status_counts`.

    ``link`` is ``Vehicles.link`` (int32).  Returns ``out``.
    """
    check_array("link", link, np.int32)
    check_array("out", out, np.int64, length=6, writeable=True)
    return _status_counts(link, out)


def destinations_in_use(
    veh: Vehicles,
    ls: LinkState,
    horizon_t: float,
    cand: np.ndarray,
    n_cand: int,
    released: int,
    out: np.ndarray,
) -> tuple[int, int]:
    """Flag the route rows in use into ``out``; see :func:`_destinations_in_use`.

    Checks ``veh`` and ``ls``, ``cand`` (int32, room for ``n_cand + ls.cursor[0] - released``
    vehicles), ``0 <= released <= ls.cursor[0]``, ``0 <= n_cand`` and ``out`` (bool, one entry
    per route row, at least every row a vehicle's ``dest_idx`` names).  Returns (how many
    live vehicles now head ``cand``, how many have no route).
    """
    check_state(None, None, ls, veh, None)
    check_array("cand", cand, np.int32, writeable=True)
    check_array("out", out, np.bool_, writeable=True)
    cursor = int(ls.cursor[0])
    if not 0 <= released <= cursor:
        raise InputError(f"released must be in 0..ls.cursor[0] = {cursor}, got {released}")
    if not 0 <= n_cand <= cand.shape[0] or n_cand + cursor - released > cand.shape[0]:
        raise InputError(f"cand needs room for n_cand + cursor - released = {n_cand + cursor - released} vehicles")
    n, no_route = _destinations_in_use(veh, ls, float(horizon_t), cand, n_cand, released, out)
    return int(n), int(no_route)


def retry_no_route(veh: Vehicles, ls: LinkState, pot: np.ndarray) -> int:
    """Queue the vehicles released without a route whose destination is now reachable; see
    :func:`_retry_no_route`.  ``pot`` is ``Routes.pot`` (float64, one column per node).
    Returns how many were queued.
    """
    check_state(None, None, ls, veh, None)
    check_array("pot", pot, np.float64, ndim=2, shape=(None, ls.oq_head.shape[0]))
    return int(_retry_no_route(veh, ls, pot))


def flush_vehicle_seconds(ls: LinkState, now: float) -> None:
    """Bring every link's vehicle-seconds integral up to ``now`` (see :func:`_flush_vehicle_seconds`)."""
    check_state(None, None, ls, None, None)
    _flush_vehicle_seconds(ls, check_scalar("now", now))
