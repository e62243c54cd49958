"""The traffic model: network state, vehicles and routes around the numba kernel.

:class:`TrafficModel` owns the arrays the kernel works on.  It knows nothing of
SimPy: the :class:`~twin.model.Twin` drives it from a clock process, and
:func:`simulate` drives it directly for benchmarks and scripts.
"""

from __future__ import annotations

import logging
import math
import time
from contextlib import contextmanager
from dataclasses import dataclass

import numba
import numpy as np

from basics.errors import InputError
from city_models.network import Network, reachable
from kernels import traffic as k
from kernels import traffic_state as ks
from kernels.routing import Graph, changed_links, graph_of, route_table, stale_rows

log = logging.getLogger(__name__)

__all__ = ["TrafficModel", "SimResult", "simulate", "time_in_system", "link_parameters", "VEH_CANCELLED", "VEH_NO_PATH"]


#: logit scale of route choice beyond the tolerance band, s (see :mod:`kernels.traffic`)
DEFAULT_DISPERSION_S = 30.0
#: weight of a new travel-time estimate against the previous smoothed one
DEFAULT_SMOOTHING = 0.5

_VEHICLE_BASE = ("orig", "depart", "order", "arrive", "enter_net", "fhot", "ihot")


def _vehicles(orig, depart, order, arrive, enter_net, fhot, ihot) -> k.Vehicles:
    """The vehicle record over its base arrays (the other fields are column views)."""
    return k.Vehicles(
        orig=orig,
        dest=ihot[:, k.I_DEST],
        dest_idx=ihot[:, k.I_DIDX],
        depart=depart,
        order=order,
        link=ihot[:, k.I_LINK],
        enter_t=fhot[:, k.F_ENTER],
        nxt=ihot[:, k.I_NXT],
        arrive=arrive,
        dist=fhot[:, k.F_DIST],
        enter_net=enter_net,
        fftt=fhot[:, k.F_FFTT],
        fhot=fhot,
        ihot=ihot,
    )


#: status of a trip cancelled before it departed (never released; see ``cancel_trips``)
VEH_CANCELLED = -5
#: status of a trip whose destination its origin cannot reach on the network as given
#: (every link open): never released, counted as ``trips_no_route``.  A trip that only
#: a closure cuts off waits for a route instead (``VEH_NO_ROUTE``).
VEH_NO_PATH = -6


def _vehicle_buffers(n: int) -> dict[str, np.ndarray]:
    """Base vehicle arrays for ``n`` vehicles, in their initial state."""
    fhot = np.zeros((n, 3), np.float64)
    fhot[:, k.F_ENTER] = np.nan
    ihot = np.zeros((n, 4), np.int32)
    ihot[:, k.I_NXT] = -1
    ihot[:, k.I_LINK] = k.VEH_PENDING
    return {
        "orig": np.zeros(n, np.int32),
        "depart": np.zeros(n, np.float64),
        "order": np.zeros(n, np.int32),
        "arrive": np.full(n, np.nan),
        "enter_net": np.full(n, np.nan),
        "fhot": fhot,
        "ihot": ihot,
    }


def _empty_vehicles(n: int) -> k.Vehicles:
    return _vehicles(**_vehicle_buffers(n))


def link_parameters(length_m, capacity_vph, free_speed_mps, jam_density_vpm, wave_speed_mps=None):
    """The kernel's per-link parameters from a link's fundamental diagram.

    Returns ``(headway, free_tt, storage, lag)``: seconds per vehicle at
    capacity (inf for no capacity), free-flow time, vehicles the link holds
    at jam density (at least 1), and the backward wave's travel time.  The
    one formula both the initial build and every later change use, so a
    change that is reverted restores the arrays bit for bit.  The backward
    wave speed is the triangular diagram's ``q / (kj - q / vf)`` unless
    ``wave_speed_mps`` gives one (entries 0: the triangular one).
    """
    cap_vps = np.asarray(capacity_vph, np.float64) / 3600.0
    length_m = np.asarray(length_m, np.float64)
    vf = np.asarray(free_speed_mps, np.float64)
    kj = np.asarray(jam_density_vpm, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        headway = np.where(cap_vps > 0, 1.0 / cap_vps, np.inf)
        w = cap_vps / (kj - cap_vps / vf)
        if wave_speed_mps is not None:
            given = np.asarray(wave_speed_mps, np.float64)
            w = np.where(np.isfinite(given) & (given > 0), given, w)
        lag = np.where(cap_vps > 0, length_m / w, np.inf)
    storage = np.maximum(kj * length_m, 1.0)
    return headway, length_m / vf, storage, lag


#: below this much work (route rows x nodes, or rows x changed links) a parallel kernel
#: runs on one thread: waking the others costs more than it saves, and on a busy machine
#: (threads descheduled) far more -- a small city's day ran 10x slower on 2 threads.
PARALLEL_MIN_WORK = 2_000_000


@contextmanager
def _threads_for(work: int):
    """Run the enclosed numba parallel kernel on one thread when ``work`` is small."""
    if work >= PARALLEL_MIN_WORK:
        yield
        return
    before = numba.get_num_threads()
    if before == 1:
        yield
        return
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(before)


def _empty_state(nl: int, nn: int, ring_len: np.ndarray) -> k.LinkState:
    """The state of an empty network of ``nl`` links and ``nn`` nodes (exit rings of ``ring_len``)."""
    return k.LinkState(
        head=np.full(nl, -1, np.int32),
        head_ready=np.full(nl, np.inf),
        tail=np.full(nl, -1, np.int32),
        n_in=np.zeros(nl, np.int64),
        n_out=np.zeros(nl, np.int64),
        next_exit=np.full(nl, -np.inf),
        next_entry=np.full(nl, -np.inf),
        vft=np.zeros(nl),
        exit_ring=np.zeros(int(ring_len.sum())),
        acc_in=np.zeros(nl, np.int64),
        acc_out=np.zeros(nl, np.int64),
        acc_vehsec=np.zeros(nl),
        vs_t=np.zeros(nl),
        acc_tt=np.zeros(nl),
        oq_head=np.full(nn, -1, np.int32),
        oq_tail=np.full(nn, -1, np.int32),
        node_load=np.zeros(nn, np.int64),
        oq_vft=np.zeros(nn),
        vclock=np.zeros(nn),
        last_t=np.full(nn, -np.inf),
        major_rate=np.zeros(nn),
        major_t=np.full(nn, -np.inf),
        squeezed=np.zeros(nl, np.int64),
        room_t=np.full(nl, -np.inf),
        cursor=np.zeros(2, np.int64),
    )


def _check_options(
    *,
    step_s: float,
    route_tolerance: float,
    route_dispersion_s: float,
    travel_time_smoothing: float,
    route_seed: int,
    stuck_time_s: float,
) -> None:
    """Refuse a traffic model option out of range, naming it (an :class:`InputError`, a ``ValueError``)."""
    if not step_s > 0:
        raise InputError(f"time step must be positive, got {step_s!r}")
    if not route_tolerance >= 0:
        raise InputError(f"route tolerance must be >= 0, got {route_tolerance!r}")
    if not (math.isfinite(route_dispersion_s) and route_dispersion_s >= 0):
        raise InputError(f"route dispersion must be a finite number of seconds >= 0, got {route_dispersion_s!r}")
    if not 0 < travel_time_smoothing <= 1:
        raise InputError(f"travel-time smoothing must be in (0, 1], got {travel_time_smoothing!r}")
    if not stuck_time_s > 0:
        raise InputError(f"stuck time must be a positive number of seconds (inf: never), got {stuck_time_s!r}")
    if not 0 <= int(route_seed) < 2**64:
        raise InputError(f"route seed must be in 0 .. 2**64 - 1, got {route_seed!r}")


def _links(net: Network, *, stuck_time_s: float) -> k.Links:
    """The kernel's link arrays: the network's, with the fundamental diagram's parameters and
    each link's slice of the exit ring (all links open).
    """
    headway, free_tt, storage, lag = link_parameters(
        net.length_m, net.capacity_vph, net.free_speed_mps, net.jam_density_vpm, net.wave_speed_mps
    )
    ring_len = np.ceil(storage).astype(np.int64) + 1
    ring_off = np.zeros(net.n_links, np.int64)
    if net.n_links:
        np.cumsum(ring_len[:-1], out=ring_off[1:])
    return k.Links(
        src=net.src.copy(),
        dst=net.dst.copy(),
        length=net.length_m.copy(),
        free_tt=free_tt,
        headway=headway,
        storage=storage,
        lag=lag,
        green_start=net.green_start_s.copy(),
        green_end=net.green_end_s.copy(),
        is_open=np.ones(net.n_links, np.uint8),
        ring_off=ring_off,
        ring_len=ring_len,
        priority=net.priority.copy(),
        stuck=np.full(net.n_links, float(stuck_time_s)),
    )


class TrafficModel:
    """Mesoscopic kinematic-wave traffic on a :class:`~city_models.network.Network`.

    Parameters
    ----------
    network
        The (validated) road network.
    step_s
        Tick length in seconds.
    route_tolerance
        Relative cost margin within which out-links count as equally good;
        vehicles bound for one destination spread over them (see
        :mod:`kernels.traffic`).
    route_dispersion_s, travel_time_smoothing, route_seed
        The logit scale beyond the tolerance band, the exponential smoothing of
        predicted link times, and the key of every route-choice draw.
    stuck_time_s
        When a link's head vehicle has been at its node this long and no vehicle
        has left the link into a next link with room, the link's vehicles may
        enter their next link although it is full (its capacity still holds),
        until one leaves into room again: queues that close a cycle of streets
        clear instead of locking up for good.  ``inf`` (the default here): never,
        pure kinematic-wave storage.  Scenarios set 60 s (``traffic.stuck_time``).
    """

    def __init__(
        self,
        network: Network,
        *,
        step_s: float = 2.0,
        route_tolerance: float = 0.02,
        route_dispersion_s: float = DEFAULT_DISPERSION_S,
        travel_time_smoothing: float = DEFAULT_SMOOTHING,
        route_seed: int = 0,
        stuck_time_s: float = math.inf,
    ) -> None:
        _check_options(
            step_s=step_s,
            route_tolerance=route_tolerance,
            route_dispersion_s=route_dispersion_s,
            travel_time_smoothing=travel_time_smoothing,
            route_seed=route_seed,
            stuck_time_s=stuck_time_s,
        )
        self.smoothing = float(travel_time_smoothing)
        self.network = network
        self.dt = float(step_s)
        net = network
        self.links = _links(net, stuck_time_s=stuck_time_s)
        self.graph: Graph = graph_of(net)  # the static adjacency, shared with the node arrays
        g = self.graph
        self.nodes = k.Nodes(
            in_indptr=g.in_indptr,
            in_links=g.in_links,
            out_indptr=g.out_indptr,
            out_links=g.out_links,
            cycle=net.signal_cycle_s.copy(),
            offset=net.signal_offset_s.copy(),
        )
        nl, nn = net.n_links, net.n_nodes
        self.state = _empty_state(nl, nn, self.links.ring_len)
        self._vbuf = _vehicle_buffers(0)  # vehicle arrays with spare room; ``veh`` views the used part
        self.veh = _empty_vehicles(0)
        self.dest_row = np.full(nn, -1, np.int32)  # node -> route-table row
        self.dest_nodes = np.zeros(0, np.int32)
        self.routes = k.Routes(
            pot=np.full((0, nn), np.inf),
            weight=self.links.free_tt.copy(),
            tol=np.array([route_tolerance], np.float64),
            scale=np.array([route_dispersion_s], np.float64),
            seed=np.array([int(route_seed)], np.uint64),
        )
        self._no_next = np.empty((0, nn), np.int32)
        # weights each route row was computed with: rows keep a version number,
        # versions their weight arrays (only those some row still uses are kept)
        self._row_version = np.zeros(0, np.int64)
        self._versions: dict[int, np.ndarray] = {0: self.routes.weight}
        self._version = 0
        self._interval_start = 0.0
        self._reset_live()

    # ------------------------------------------------------------- pickling
    def __getstate__(self) -> dict:
        # the vehicle record holds views into fhot/ihot: pickle the base arrays
        # and rebuild the views, or a restored model would update copies
        state = self.__dict__.copy()
        state["veh"] = {f: getattr(self.veh, f) for f in _VEHICLE_BASE}
        del state["_vbuf"]  # the spare room is not state
        for key in ("_live", "_n_live", "_live_released"):  # a cache, rebuilt by a full scan
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict) -> None:
        state = dict(state)
        state["_vbuf"] = {f: np.ascontiguousarray(a) for f, a in state["veh"].items()}
        state["veh"] = _vehicles(**state["_vbuf"])
        self.__dict__.update(state)
        self._reset_live()

    def _reset_live(self) -> None:
        """Forget the live-vehicle list of :meth:`_destinations_in_use` (the next call scans all released)."""
        self._live = np.zeros(0, np.int32)
        self._n_live = 0
        self._live_released = 0

    def _destinations_in_use(self, horizon_t: float, out: np.ndarray) -> int:
        """Flag the route rows in use (:func:`kernels.traffic_state.destinations_in_use`) into
        ``out``; returns how many vehicles have no route.  Keeps the live vehicles of
        this call for the next, so a refresh looks at the vehicles on the road and
        those released since rather than at every trip of the day.
        """
        released = int(self.state.cursor[0])
        n_live, since = self._n_live, self._live_released
        if since > released:  # the release order was rebuilt: scan it all
            n_live, since = 0, 0
        need = n_live + released - since
        live = self._live
        if live.shape[0] < need:
            grown = np.empty(max(need, 2 * live.shape[0], 1024), np.int32)
            grown[:n_live] = live[:n_live]
            live = grown
        n_live, no_route = ks.destinations_in_use(self.veh, self.state, horizon_t, live, n_live, since, out)
        self._live, self._n_live, self._live_released = live, int(n_live), released
        return int(no_route)

    # ------------------------------------------------------------------ time
    @property
    def tick(self) -> int:
        """The current tick index."""
        return int(self.state.cursor[1])

    @property
    def now(self) -> float:
        """Simulated seconds since the start (a tick boundary)."""
        return self.tick * self.dt

    def advance_to(self, t: float) -> int:
        """Run whole ticks until the clock reaches ``t`` (rounded up to a tick). Returns arrivals."""
        return self.advance_ticks(math.ceil(t / self.dt - 1e-9) - int(self.state.cursor[1]))

    def advance_ticks(self, n: int) -> int:
        """Run ``n`` whole ticks (nothing when ``n <= 0``). Returns arrivals."""
        if n <= 0:
            return 0
        return int(k.advance(n, self.dt, self.links, self.nodes, self.state, self.veh, self.routes))

    # --------------------------------------------------------------- demand
    @property
    def n_vehicles(self) -> int:
        """Number of vehicles (trips) loaded."""
        return int(self.veh.orig.shape[0])

    def add_trips(self, origin, destination, depart_s) -> np.ndarray:
        """Add vehicles (dense node indices, departure times in s); returns their ids.

        Departures earlier than the current clock leave at the next tick.  A trip
        whose destination cannot be reached from its origin on the network as
        given (every link open; see :func:`city_models.network.reachable`) is
        marked ``VEH_NO_PATH`` at once and never released: counted, logged with
        its origin and destination, never waited for.
        """
        origin = np.asarray(origin, np.int32)
        destination = np.asarray(destination, np.int32)
        depart_s = np.asarray(depart_s, np.float64)
        m = origin.shape[0]
        if not (destination.shape[0] == depart_s.shape[0] == m):
            raise InputError("origin, destination and depart_s must have the same length")
        nn = self.network.n_nodes
        for name, arr in (("origin", origin), ("destination", destination)):
            if m and (arr.min() < 0 or arr.max() >= nn):
                bad = int(np.flatnonzero((arr < 0) | (arr >= nn))[0])
                raise InputError(f"trip {bad}: {name} {int(arr[bad])} is not a node index (0..{nn - 1})")
        if m and not np.all(np.isfinite(depart_s)):
            raise InputError("trip departure times must be finite")
        n0 = self.n_vehicles
        no_path = ~reachable(self.network, origin, destination)
        self._reserve(n0 + m)
        buf = self._vbuf
        released = int(self.state.cursor[0])
        new = np.arange(n0, n0 + m, dtype=np.int32)
        rest = np.concatenate([buf["order"][released:n0], new[~no_path]])
        buf["orig"][n0 : n0 + m] = origin
        buf["ihot"][n0 : n0 + m, k.I_DEST] = destination
        buf["depart"][n0 : n0 + m] = depart_s
        self._ensure_rows(np.unique(destination))
        buf["ihot"][n0 : n0 + m, k.I_DIDX] = self.dest_row[destination]
        failed = new[no_path]
        if failed.size:  # just behind the release pointer, as cancelled trips: the kernel never sees them
            buf["ihot"][failed, k.I_LINK] = VEH_NO_PATH
            buf["order"][released : released + failed.size] = failed
            released += failed.size
            self.state.cursor[0] = released
            self._log_no_path(origin[no_path], destination[no_path])
        buf["order"][released : n0 + m] = rest[np.argsort(buf["depart"][rest], kind="stable")]
        self.veh = _vehicles(**{f: a[: n0 + m] for f, a in buf.items()})
        return np.arange(n0, n0 + m, dtype=np.int64)

    def _log_no_path(self, origin: np.ndarray, destination: np.ndarray) -> None:
        pairs = ", ".join(f"{o} -> {d} ({c})" for (o, d), c in self._top_pairs(origin, destination))
        log.warning(
            "%d trip(s) have no route on the network as given (their origin cannot reach their "
            "destination) and are counted as trips_no_route; most frequent (source node ids): %s",
            origin.shape[0],
            pairs,
        )

    def _top_pairs(self, origin: np.ndarray, destination: np.ndarray, top: int = 5) -> list:
        ids = np.asarray(self.network.node_osmid, np.int64)
        pairs, counts = np.unique(np.column_stack([origin, destination]).astype(np.int64), axis=0, return_counts=True)
        order = np.lexsort((pairs[:, 1], pairs[:, 0], -counts))[:top]
        return [((int(ids[pairs[i, 0]]), int(ids[pairs[i, 1]])), int(counts[i])) for i in order]

    def no_path_pairs(self, top: int = 5) -> list[tuple[tuple[int, int], int]]:
        """The most frequent origin-destination pairs (source node ids) among the trips
        with no route on the network as given, with their counts, most frequent first.
        """
        bad = np.flatnonzero(self.veh.link == VEH_NO_PATH)
        if bad.size == 0:
            return []
        return self._top_pairs(self.veh.orig[bad], self.veh.dest[bad], top)

    def _reserve(self, n: int) -> None:
        """Make room for ``n`` vehicles (growing geometrically, so adding trips in
        many small batches costs amortised constant time per trip).
        """
        cap = self._vbuf["orig"].shape[0]
        if n <= cap:
            return
        new = _vehicle_buffers(max(n, 2 * cap, 1024))
        used = self.n_vehicles
        for f, a in self._vbuf.items():
            new[f][:used] = a[:used]
        self._vbuf = new
        self.veh = _vehicles(**{f: a[:used] for f, a in new.items()})

    def cancel_trips(self, ids) -> np.ndarray:
        """Cancel trips that have not departed yet; returns the ids actually cancelled.

        Cancelled vehicles are marked ``VEH_CANCELLED`` and never enter the
        network; trips already released (waiting, driving, arrived) are left
        as they are.
        """
        ids = np.unique(np.asarray(ids, np.int64))
        if ids.size and (ids.min() < 0 or ids.max() >= self.n_vehicles):
            raise InputError(f"vehicle ids must be in 0..{self.n_vehicles - 1}")
        veh = self.veh
        ids = ids[veh.link[ids] == k.VEH_PENDING]
        if ids.size == 0:
            return ids
        veh.link[ids] = VEH_CANCELLED
        # move them to just behind the release pointer: the kernel never sees them.  The
        # pending part of the release order is sorted by departure, so only its stretch up
        # to the latest departure cancelled needs reordering.
        released = int(self.state.cursor[0])
        order, depart = veh.order, veh.depart
        last = float(depart[ids].max())
        lo, hi = released, order.shape[0]
        while lo < hi:
            mid = (lo + hi) // 2
            if depart[order[mid]] <= last:
                lo = mid + 1
            else:
                hi = mid
        rest = order[released:lo]
        gone = np.isin(rest, ids)
        order[released:lo] = np.concatenate([rest[gone], rest[~gone]])
        self.state.cursor[0] = released + ids.size
        return ids

    def reserve_destinations(self, nodes) -> None:
        """Make route rows for these destination nodes now (one reallocation for all,
        instead of one each time a new destination first appears).
        """
        self._ensure_rows(np.unique(np.asarray(nodes, np.int32)))

    def current_rows(self, nodes) -> tuple[np.ndarray, np.ndarray]:
        """``(rows, exact)``: each node's route-table row (-1: none) and whether that row
        is exact for the current weights (so a caller may copy it instead of searching).
        """
        rows = self.dest_row[np.asarray(nodes, np.int64)]
        exact = np.zeros(rows.shape, bool)
        has = rows >= 0
        exact[has] = self._row_version[rows[has]] == self._version
        return rows, exact

    def _ensure_rows(self, dests: np.ndarray) -> None:
        missing = dests[self.dest_row[dests] < 0]
        if missing.size == 0:
            return
        r0 = self.dest_nodes.shape[0]
        self.dest_nodes = np.concatenate([self.dest_nodes, missing.astype(np.int32)])
        self.dest_row[missing] = np.arange(r0, r0 + missing.size, dtype=np.int32)
        pot = np.full((self.dest_nodes.shape[0], self.network.n_nodes), np.inf)
        pot[:r0] = self.routes.pot
        self.routes = self.routes._replace(pot=pot)
        self._row_version = np.concatenate([self._row_version, np.zeros(missing.size, np.int64)])
        active = np.zeros(self.dest_nodes.shape[0], np.bool_)
        active[r0:] = True
        self._fill_routes(active)

    # --------------------------------------------------------- link changes
    def set_link_params(
        self,
        links,
        *,
        capacity_vph,
        free_speed_mps,
        jam_density_vpm,
        is_open,
    ) -> None:
        """Give ``links`` a new fundamental diagram and open/closed state, from now on.

        Vehicles already on a changed link keep their place; the head vehicle's
        free-flow exit time follows the new speed.  A link whose storage grows
        past its exit-time ring gets a larger ring (older exits are kept).
        Reverting to the network's own values restores the parameter arrays
        exactly (:func:`link_parameters` is the one formula).
        """
        idx = np.asarray(links, np.int64)
        if idx.size == 0:
            return
        lk = self.links
        headway, free_tt, storage, lag = link_parameters(
            lk.length[idx], capacity_vph, free_speed_mps, jam_density_vpm, self.network.wave_speed_mps[idx]
        )
        lk.headway[idx] = headway
        lk.free_tt[idx] = free_tt
        lk.storage[idx] = storage
        lk.lag[idx] = lag
        lk.is_open[idx] = np.asarray(is_open, np.uint8)
        need = np.ceil(lk.storage).astype(np.int64) + 1
        if np.any(need > lk.ring_len):
            self._resize_rings(np.maximum(need, lk.ring_len))
        ls, veh = self.state, self.veh
        h = ls.head[idx]
        busy = h >= 0
        ls.head_ready[idx[busy]] = veh.enter_t[h[busy]] + lk.free_tt[idx[busy]]

    def _resize_rings(self, ring_len: np.ndarray) -> None:
        lk, ls = self.links, self.state
        off = np.zeros_like(ring_len)
        if off.size:
            np.cumsum(ring_len[:-1], out=off[1:])
        ring = np.full(int(ring_len.sum()), -np.inf)  # exits older than the old ring: long gone
        for a in np.flatnonzero(ring_len != lk.ring_len):
            n_out, old, new = int(ls.n_out[a]), int(lk.ring_len[a]), int(ring_len[a])
            for e in range(max(0, n_out - old), n_out):
                ring[off[a] + e % new] = ls.exit_ring[lk.ring_off[a] + e % old]
        same = np.flatnonzero(ring_len == lk.ring_len)  # unchanged rings move as blocks
        lens = ring_len[same]
        within = np.arange(int(lens.sum())) - np.repeat(np.cumsum(lens) - lens, lens)
        ring[np.repeat(off[same], lens) + within] = ls.exit_ring[np.repeat(lk.ring_off[same], lens) + within]
        self.links = lk._replace(ring_off=off, ring_len=ring_len)
        self.state = ls._replace(exit_ring=ring)

    def set_signal_plan(self, nodes, *, cycle_s, offset_s, links=None, green_start_s=None, green_end_s=None) -> None:
        """Change fixed-time signal plans: each node's cycle and offset, and the
        green window ``[start, end)`` within the cycle of each in-link given.
        """
        nodes = np.asarray(nodes, np.int64)
        self.nodes.cycle[nodes] = cycle_s
        self.nodes.offset[nodes] = offset_s
        if links is not None:
            links = np.asarray(links, np.int64)
            self.links.green_start[links] = green_start_s
            self.links.green_end[links] = green_end_s

    # -------------------------------------------------------------- routing
    def _fill_routes(self, rows: np.ndarray) -> None:
        """Recompute the flagged rows from the current weights."""
        g = self.graph
        with _threads_for(int(rows.sum()) * self.network.n_nodes):
            route_table(
                g,
                self.dest_nodes,
                self.routes.weight,
                active=rows,
                next_link_out=self._no_next,
                dist_out=self.routes.pot,
            )
        self._row_version[rows] = self._version

    def measured_travel_times(self) -> np.ndarray:
        """Each link's predicted travel time for a vehicle entering it now, before
        smoothing (:func:`kernels.traffic_state.link_travel_times`; inf when closed).
        """
        weight = np.empty_like(self.routes.weight)
        ks.link_travel_times(self.links, self.state, self.veh, self.now, weight)
        return weight

    def update_routes(
        self, horizon_s: float, *, weight: np.ndarray | None = None, batches: int = 1, phase: int = 0
    ) -> int:
        """Refresh the link weights and the route rows in use.

        The weights are the links' predicted travel times
        (:meth:`measured_travel_times`), smoothed exponentially with the previous
        weights (``travel_time_smoothing`` per refresh of the whole table: with
        ``batches`` > 1 the per-call weight is scaled so the time constant stays
        the same), or ``weight`` when given (e.g. a day-to-day equilibrium's
        expected times).  Rows of destinations of vehicles on the network or
        departing before ``now + horizon_s`` are brought up to date -- with
        ``batches`` > 1 only those whose row number is ``phase`` modulo
        ``batches`` (a rotating share, so destinations switch at different
        times).  A row is recomputed only when the new weights change its
        distances (see :func:`kernels.routing.stale_rows`), so the result is the
        same as recomputing them all.  Returns how many rows were recomputed.
        """
        if batches < 1 or not 0 <= phase < batches:
            raise InputError(f"need batches >= 1 and 0 <= phase < batches, got {batches}, {phase}")
        if weight is None:
            weight = self.measured_travel_times()
            a = 1.0 - (1.0 - self.smoothing) ** (1.0 / batches)
            if a < 1.0:  # exponential smoothing (a link closed or just reopened starts afresh)
                prev = self.routes.weight
                both = np.isfinite(weight) & np.isfinite(prev)
                weight[both] = a * weight[both] + (1.0 - a) * prev[both]
        else:
            weight = np.array(weight, np.float64)
            if weight.shape != self.routes.weight.shape:
                raise InputError(f"weight needs one entry per link ({self.routes.weight.shape[0]}), got {weight.shape}")
            weight[self.links.is_open == 0] = np.inf
        self._version += 1
        self._versions[self._version] = weight
        self.routes = self.routes._replace(weight=weight)
        active = np.zeros(self.dest_nodes.shape[0], np.bool_)
        no_route = self._destinations_in_use(self.now + horizon_s + self.dt, active)
        if batches > 1:
            active[np.arange(active.shape[0]) % batches != phase] = False
        stale = np.zeros_like(active)
        if active.any():
            used = np.unique(self._row_version[active])
            slot = np.searchsorted(used, self._row_version)
            basis = np.stack([self._versions[int(v)] for v in used])
            changes = changed_links(basis, weight)
            with _threads_for(int(active.sum()) * int(changes.links.shape[0])):
                stale_rows(
                    self.graph,
                    self.routes.pot,
                    weight,
                    changes,
                    active=active,
                    row_basis=np.minimum(slot, used.size - 1),
                    basis_weights=basis,
                    out=stale,
                )
            if stale.any():
                self._fill_routes(stale)
            self._row_version[active] = self._version  # the rows left alone are exact for these weights too
            if no_route:
                ks.retry_no_route(self.veh, self.state, self.routes.pot)
        keep = set(np.unique(self._row_version).tolist()) | {self._version}
        self._versions = {v: w for v, w in self._versions.items() if v in keep}
        return int(stale.sum())

    # ------------------------------------------------------------- records
    def counts(self) -> dict[str, int]:
        """Vehicles by state: pending, waiting, on_network, arrived, no_route, cancelled."""
        c = ks.status_counts(self.veh.link, np.zeros(6, np.int64))
        return {
            "pending": int(c[-k.VEH_PENDING - 1]),
            "waiting": int(c[-k.VEH_WAITING - 1]),
            "on_network": int(c[5]),
            "arrived": int(c[-k.VEH_ARRIVED - 1]),
            "no_route": int(c[-k.VEH_NO_ROUTE - 1]),
            "cancelled": int(c[-VEH_CANCELLED - 1]),
            "no_path": int(np.count_nonzero(self.veh.link == VEH_NO_PATH)),
        }

    @property
    def squeezed(self) -> int:
        """Entries so far into full links under the stuck rule (``stuck_time_s``)."""
        return int(self.state.squeezed.sum())

    def take_interval(self) -> dict[str, np.ndarray]:
        """Link measures since the last call, and reset the accumulators.

        ``speed`` is the space-mean speed of the vehicles that left each link
        in the interval (link length over their mean traversal time); where
        none left, it is estimated from the vehicles queued on the link, and
        links that stayed empty report free speed.
        """
        ls, lk = self.state, self.links
        ks.flush_vehicle_seconds(ls, self.now)
        span = max(self.now - self._interval_start, 1e-9)
        out = ls.acc_out.copy()
        on_now = ls.n_in - ls.n_out
        with np.errstate(divide="ignore", invalid="ignore"):
            speed = np.where(out > 0, lk.length * out / np.maximum(ls.acc_tt, 1e-9), np.nan)
            est = lk.length / np.maximum(lk.free_tt, on_now * lk.headway)
        speed = np.where(np.isnan(speed), np.where(on_now > 0, est, lk.length / lk.free_tt), speed)
        speed = np.minimum(speed, lk.length / lk.free_tt)
        res = {
            "inflow": ls.acc_in.copy(),
            "outflow": out,
            "vehicles": ls.acc_vehsec / span,
            "speed": speed,
        }
        ls.acc_in[:] = 0
        ls.acc_out[:] = 0
        ls.acc_vehsec[:] = 0.0
        ls.acc_tt[:] = 0.0
        self._interval_start = self.now
        return res


def time_in_system(depart_s: np.ndarray, arrive_s: np.ndarray, now: float) -> np.ndarray:
    """Seconds each trip has spent since its scheduled departure: to arrival, or to
    ``now`` while unfinished (0 before departure).
    """
    end = np.where(np.isfinite(arrive_s), arrive_s, now)
    return np.clip(end - depart_s, 0.0, None)


@dataclass
class SimResult:
    """Per-trip outcome of :func:`simulate`."""

    depart_s: np.ndarray
    arrive_s: np.ndarray
    length_m: np.ndarray
    wall_s: float
    sim_end_s: float

    @property
    def travel_time_s(self) -> np.ndarray:
        """Travel time of each trip, s (NaN until it arrives)."""
        return self.arrive_s - self.depart_s

    @property
    def completed(self) -> int:
        """Number of trips that arrived."""
        return int(np.count_nonzero(np.isfinite(self.arrive_s)))

    @property
    def vehicle_hours(self) -> float:
        """Hours from scheduled departure to arrival (or to the end for unfinished trips)."""
        return float(time_in_system(self.depart_s, self.arrive_s, self.sim_end_s).sum() / 3600.0)


def simulate(
    network: Network,
    trips,
    *,
    step_s: float = 2.0,
    duration_s: float | None = None,
    reroute_s: float = 300.0,
    route_tolerance: float = 0.02,
) -> SimResult:
    """Run trips through the network with periodic re-routing; no clock, no records.

    ``trips`` has ``origin``, ``destination``, ``depart_s`` (dense node
    indices; e.g. :class:`city_models.demand.Trips`).  ``duration_s`` defaults
    to the last departure plus two hours.  ``wall_s`` covers the simulation
    proper (routing included, set-up excluded).
    """
    model = TrafficModel(network, step_s=step_s, route_tolerance=route_tolerance)
    model.add_trips(trips.origin, trips.destination, trips.depart_s)
    if duration_s is None:
        duration_s = float(np.max(trips.depart_s, initial=0.0)) + 7200.0
    t0 = time.perf_counter()
    t = 0.0
    while t < duration_s:
        model.update_routes(reroute_s)
        t = min(t + reroute_s, duration_s)
        model.advance_to(t)
    wall = time.perf_counter() - t0
    return SimResult(
        depart_s=model.veh.depart.copy(),
        arrive_s=model.veh.arrive.copy(),
        length_m=model.veh.dist.copy(),
        wall_s=wall,
        sim_end_s=model.now,
    )
