"""Plain-python reference for :func:`kernels.traffic.advance` (and the routing around it).

Written from the model spec in the kernel's module docstring, the naive way:

* a ``collections.deque`` of vehicle ids per link and per origin node (no linked lists);
* the *full* lists of entry and exit times of every link: ``N_up`` / ``N_down`` are
  their lengths, the entry capacity spacing is from the last entry time, and the
  exit that frees space for a spillback check is looked up by number (no ring
  buffer); the exit schedule is a running value (it keeps one vehicle of credit
  when a move was held back downstream, which the time list alone does not tell);
* in-links of a node found by scanning all links; candidate crossing times recomputed
  from scratch every time a node looks for its next move;
* routing: every destination's potentials recomputed with the O(n^2) reference Dijkstra of
  :mod:`tests.reference.routing` from travel times counted off the queues.

The fair-queueing tags (merge fairness) are running values too: the tag of a
candidate from in-link ``a`` at node ``n`` is ``F_a + 1/q_a`` if its head vehicle
had reached the node (free-flow arrival) by the node's last move, else ``max(F_a, V_n) + 1/q_a`` (for the origin queue ``1/q``
of the link it enters), ``F_a`` the in-link's last tag and ``V_n`` the tag of the
node's last move.

Priority, plainly: at an unsignalised node whose in-links (of known, non-zero
priority) do not all share one priority, the in-links of the highest are major;
a lower non-zero one is minor.  A minor head vehicle's candidate time is raised
to its link's last exit time plus ``1 / c(q)``, Harders' capacity with critical
gap ``CRITICAL_GAP_S`` and follow-up time the link's headway, ``q`` the node's
major flow: ``r - 1/(2 tau)`` decayed by ``exp(-(T - t_r) / tau)`` to the
candidate's own time ``T`` when that is after ``t_r`` (0 if negative), where
every major move at time ``T'`` sets ``r <- r exp(-(T' - t_r) / tau) + 1 / tau``
and ``t_r <- T'``.  Candidates are ordered by (time, minor, tag, position).
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from tests.reference.routing import ref_route_table

__all__ = ["RefTraffic", "PENDING", "WAITING", "ARRIVED", "NO_ROUTE", "NO_PATH"]

#: the kernel's critical gap (s) and major-flow time constant (s)
CRITICAL_GAP_S = 6.5
MAJOR_FLOW_TAU_S = 60.0

# vehicle status codes (the same numbers as kernels.traffic.VEH_*)
PENDING = -3
WAITING = -1
ARRIVED = -2
NO_ROUTE = -4
NO_PATH = -6  # twin.traffic.VEH_NO_PATH: destination unreachable on the network as given


def _green_time(te: float, cycle: float, offset: float, gs: float, ge: float) -> float:
    """Earliest time >= te inside the green window [gs, ge) of a fixed-time cycle."""
    if cycle <= 0.0 or gs == ge:
        return te
    phase = (te - offset) % cycle
    if gs < ge:
        green = gs <= phase < ge
    else:  # the window wraps around the end of the cycle
        green = phase >= gs or phase < ge
    if green:
        return te
    return te + (gs - phase) % cycle


class RefTraffic:
    """Naive traffic model with the same rules as the kernel.

    Parameters
    ----------
    network
        A :class:`city_models.network.Network`.
    step_s
        Tick length.

    Link parameters follow the triangular fundamental diagram of each link:
    ``headway = 1 / q``, ``free_tt = L / vf``, ``storage = max(kj L, 1)``,
    ``lag = L / w`` with ``w = q / (kj - q / vf)``.
    """

    def __init__(
        self,
        network,
        *,
        step_s: float,
        route_tolerance: float = 0.02,
        route_dispersion_s: float = 30.0,
        travel_time_smoothing: float = 0.5,
        route_seed: int = 0,
        stuck_time_s: float = np.inf,
    ) -> None:
        net = network
        self.dt = float(step_s)
        self.n_nodes = net.n_nodes
        self.n_links = net.n_links
        self.src = [int(s) for s in net.src]
        self.dst = [int(d) for d in net.dst]
        self.length = [float(v) for v in net.length_m]
        self.free_tt = [float(L / v) for L, v in zip(net.length_m, net.free_speed_mps, strict=False)]
        self.headway = []
        self.lag = []
        self.storage = []
        for a in range(self.n_links):
            q = float(net.capacity_vph[a]) / 3600.0
            kj = float(net.jam_density_vpm[a])
            vf = float(net.free_speed_mps[a])
            L = self.length[a]
            self.headway.append(1.0 / q if q > 0 else np.inf)
            w = q / (kj - q / vf)
            self.lag.append(L / w if w > 0 else np.inf)
            self.storage.append(max(kj * L, 1.0))
        self.green_start = [float(v) for v in net.green_start_s]
        self.green_end = [float(v) for v in net.green_end_s]
        self.cycle = [float(v) for v in net.signal_cycle_s]
        self.offset = [float(v) for v in net.signal_offset_s]
        self.is_open = np.ones(self.n_links, np.uint8)  # callers may toggle entries
        self.priority = [int(p) for p in net.priority]
        self.major_rate = [0.0] * self.n_nodes
        self.major_t = [-np.inf] * self.n_nodes
        for a in range(self.n_links):
            w = float(net.wave_speed_mps[a])
            if np.isfinite(w) and w > 0 and self.headway[a] < np.inf:
                self.lag[a] = self.length[a] / w
        # link state
        self.queue = [deque() for _ in range(self.n_links)]
        self.entries: list[list[float]] = [[] for _ in range(self.n_links)]
        self.exits: list[list[float]] = [[] for _ in range(self.n_links)]
        self.vft = [0.0] * self.n_links
        self.oqueue = [deque() for _ in range(self.n_nodes)]
        self.oq_vft = [0.0] * self.n_nodes
        self.vclock = [0.0] * self.n_nodes
        self.released: list[int] = []
        self.last_t = [-np.inf] * self.n_nodes
        self.sched_exit = [-np.inf] * self.n_links
        self.tick = 0
        # vehicles
        self.orig: list[int] = []
        self.dest: list[int] = []
        self.depart: list[float] = []
        self.status: list[int] = []
        self.enter_t: list[float] = []
        self.arrive: list[float] = []
        self.dist: list[float] = []
        self.fftt: list[float] = []
        self.enter_net: list[float] = []
        self.pending: list[int] = []  # not yet released, sorted by (departure, id)
        self.pot: dict[int, np.ndarray] = {}  # destination node -> travel time to it from each node
        self.rweight = np.asarray(self.free_tt, dtype=float)  # link weights of the last route update
        self.tol = float(route_tolerance)
        self.scale = float(route_dispersion_s)
        self.smoothing = float(travel_time_smoothing)
        self.seed = int(route_seed)
        self.stuck = float(stuck_time_s)
        self.squeezed = [0] * self.n_links
        self.room_t = [-np.inf] * self.n_links  # last exit into a next link that had room

    # ---------------------------------------------------------------- demand
    def _reaches(self, o: int, d: int) -> bool:
        """Whether ``d`` can be reached from ``o`` with every link open (breadth first)."""
        succ: dict[int, list[int]] = {}
        for a in range(self.n_links):
            succ.setdefault(int(self.src[a]), []).append(int(self.dst[a]))
        seen, todo = {o}, deque([o])
        while todo:
            u = todo.popleft()
            if u == d:
                return True
            for v in succ.get(u, ()):
                if v not in seen:
                    seen.add(v)
                    todo.append(v)
        return False

    def add_trips(self, origin, destination, depart_s) -> None:
        for o, d, t in zip(origin, destination, depart_s, strict=False):
            self.orig.append(int(o))
            self.dest.append(int(d))
            self.depart.append(float(t))
            if not self._reaches(int(o), int(d)):  # never released, never waited for
                self.status.append(NO_PATH)
                for lst, val in (
                    (self.enter_t, np.nan),
                    (self.arrive, np.nan),
                    (self.dist, 0.0),
                    (self.fftt, 0.0),
                    (self.enter_net, np.nan),
                ):
                    lst.append(val)
                continue
            self.status.append(PENDING)
            self.enter_t.append(np.nan)
            self.arrive.append(np.nan)
            self.dist.append(0.0)
            self.fftt.append(0.0)
            self.enter_net.append(np.nan)
            self.pending.append(len(self.orig) - 1)
        self.pending.sort(key=lambda v: (self.depart[v], v))
        for d in set(int(d) for d in destination):
            if d not in self.pot:
                self.pot[d] = self._potential(d, self.rweight)

    # --------------------------------------------------------------- routing
    def link_travel_times(self) -> np.ndarray:
        """Predicted time of a vehicle entering each link now: at least its free-flow
        time, and the ``n`` vehicles on it ahead of it leaving one per discharge
        headway -- the capacity's, or once the head vehicle is queued, the mean
        headway of the link's last ``m = min(n, 32, ring length - 1)`` exits up to now
        if longer (the window starting no earlier than the head's arrival at the stop
        line less ``m - 1`` capacity headways)."""
        tt = np.empty(self.n_links)
        now = self.tick * self.dt
        for a in range(self.n_links):
            if not self.is_open[a] or self.headway[a] == np.inf:  # closed, or no capacity
                tt[a] = np.inf
                continue
            n = len(self.queue[a])
            est = self.free_tt[a]
            if n > 0:
                h = self.headway[a]
                ready = self.enter_t[self.queue[a][0]] + self.free_tt[a]
                exits = self.exits[a]
                if ready < now and exits:
                    ring_len = int(np.ceil(self.storage[a])) + 1
                    m = max(1, min(len(exits), ring_len - 1, n, 32))
                    start = max(exits[-m], ready - (m - 1) * h)
                    h = max(h, (now - start) / m)
                est = max(est, n * h)
            tt[a] = est
        return tt

    def _potential(self, dest: int, weight: np.ndarray) -> np.ndarray:
        _, dist = ref_route_table(np.array([dest]), np.asarray(self.src), np.asarray(self.dst), weight, self.n_nodes)
        return dist[0]

    def _draw(self, v: int, a: int) -> float:
        """The uniform number of decision (vehicle, arriving link): splitmix64's
        finaliser over a mix of the seed and the two keys."""
        mask = (1 << 64) - 1
        h = self.seed ^ ((v * 0x9E3779B97F4A7C15) & mask)
        h ^= ((a + 2) * 0xC2B2AE3D27D4EB4F) & mask
        h ^= h >> 30
        h = (h * 0xBF58476D1CE4E5B9) & mask
        h ^= h >> 27
        h = (h * 0x94D049BB133111EB) & mask
        h ^= h >> 31
        return (h >> 11) / 2.0**53

    def choice_weights(self, n: int, dest: int) -> dict[int, float]:
        """Out-link of ``n`` -> unnormalised weight of taking it towards ``dest``, in link
        order: out-links that get closer, weight 1 within ``tol`` of the best cost,
        ``exp(-(cost - band) / scale)`` beyond it (none beyond 7 scales)."""
        pot = self.pot[dest]
        if not pot[n] < np.inf:
            return {}
        outs = [b for b in range(self.n_links) if self.src[b] == n]
        ok = [b for b in outs if pot[self.dst[b]] < pot[n] and self.is_open[b]]
        if not ok:
            return {}
        cost = {b: self.rweight[b] + pot[self.dst[b]] for b in ok}
        best = min(cost.values())
        lim = best + best * self.tol
        w = {}
        for b in ok:
            if cost[b] <= lim:
                w[b] = 1.0
            elif self.scale > 0 and (cost[b] - lim) / self.scale < 7.0:
                w[b] = float(np.exp(-((cost[b] - lim) / self.scale)))
        return w

    def next_link(self, v: int, n: int, a: int) -> int:
        """Out-link of ``n`` for vehicle ``v`` arriving on link ``a`` (-1: origin): a draw
        keyed to (seed, v, a) over :meth:`choice_weights`, taken in link order;
        -1 if none."""
        w = self.choice_weights(n, self.dest[v])
        total = 0.0
        for x in w.values():
            total += x
        if total == 0.0:
            return -1
        u = self._draw(v, a) * total
        last = -1
        for b, x in w.items():
            last = b
            u -= x
            if u < 0:
                return b
        return last

    def update_routes(self) -> None:
        """Recompute every destination's potentials from the (smoothed) current travel times."""
        new = self.link_travel_times()
        both = np.isfinite(new) & np.isfinite(self.rweight)
        new[both] = self.smoothing * new[both] + (1.0 - self.smoothing) * self.rweight[both]
        self.rweight = new
        for d in self.pot:
            self.pot[d] = self._potential(d, self.rweight)
        # vehicles released without a route leave once their destination is reachable
        for v in self.released:
            if self.status[v] == NO_ROUTE and self.pot[self.dest[v]][self.orig[v]] < np.inf:
                self.status[v] = WAITING
                self.oqueue[self.orig[v]].append(v)

    # ------------------------------------------------------------ simulation
    def _in_links(self, n: int) -> list[int]:
        return [a for a in range(self.n_links) if self.dst[a] == n]

    def _receiving_time(self, b: int, t: float, squeeze: bool = False):
        """Earliest entry time into ``b`` allowed by its capacity and storage (None: full this tick).

        ``squeeze``: the vehicle has been stuck long enough to ignore the storage."""
        if self.headway[b] == np.inf:
            return None
        te = self.entries[b][-1] + self.headway[b] if self.entries[b] else -np.inf
        n_up = len(self.entries[b])
        n_down = len(self.exits[b])
        need = n_up + 1 - self.storage[b]  # exits needed before one more vehicle fits
        if need > 0 and not squeeze:
            e = int(np.ceil(need))
            if e > n_down:
                return None
            t_free = self.exits[b][e - 1]
            if t_free >= t:  # an exit frees space from the next tick on
                return None
            te = max(te, t_free + self.lag[b])
        return te

    def _top_priority(self, n: int) -> int:
        """The major priority at node ``n``; 0 when it has no minor approach (or a signal)."""
        ps = [self.priority[a] for a in self._in_links(n) if self.priority[a] > 0]
        if not ps or min(ps) == max(ps) or self.cycle[n] > 0:
            return 0
        return max(ps)

    def _is_minor(self, n: int, a: int) -> bool:
        return a >= 0 and 0 < self.priority[a] < self._top_priority(n)

    def _major_flow(self, n: int, when: float) -> float:
        q = self.major_rate[n] - 0.5 / MAJOR_FLOW_TAU_S
        if when > self.major_t[n]:
            q *= math.exp(-(when - self.major_t[n]) / MAJOR_FLOW_TAU_S)
        return max(q, 0.0)

    @staticmethod
    def gap_headway(q: float, tf: float) -> float:
        """1 / Harders' capacity: ``(1 - exp(-q tf)) exp(q t_c) / q`` (``tf`` at ``q = 0``)."""
        if not q > 0:
            return tf
        return -math.expm1(-q * tf) * math.exp(q * CRITICAL_GAP_S) / q

    def _candidate(self, n: int, a: int, t: float, t1: float):
        """(time, next link, tag, held) of the head vehicle of in-link ``a`` (-1: origin queue)."""
        if a >= 0:
            if not self.queue[a] or self.headway[a] == np.inf:
                return None
            v = self.queue[a][0]
            if self.enter_t[v] >= t:  # entered during this tick
                return None
            arrived = self.enter_t[v] + self.free_tt[a]
            ready = max(arrived, self.sched_exit[a])
            tag, h = self.vft[a], self.headway[a]
            if self._is_minor(n, a) and self.exits[a]:  # gap acceptance
                q = self._major_flow(n, ready)
                ready = max(ready, self.exits[a][-1] + self.gap_headway(q, h))
        else:
            if not self.oqueue[n]:
                return None
            v = self.oqueue[n][0]
            ready = arrived = self.depart[v]
            tag, h = self.oq_vft[n], None
        backlogged = arrived <= self.last_t[n]
        own = ready  # when its own link and signal would let it go
        if a >= 0:
            own = _green_time(own, self.cycle[n], self.offset[n], self.green_start[a], self.green_end[a])
        te = max(own, t)
        if a >= 0 and te > own:  # raised to the tick start: check the signal again
            te = _green_time(te, self.cycle[n], self.offset[n], self.green_start[a], self.green_end[a])
        if te >= t1:
            return None
        t_down = -np.inf  # when the next link would let it in
        b = -1  # -1: arrives here; -2: no way on from here, parks off the network
        if self.dest[v] != n:
            b = self.next_link(v, n, a)
            if b < 0 and self.pot[self.dest[v]][n] < np.inf:
                return None  # next links closed since the last re-route: wait
        if b == -2 or (b < 0 and self.dest[v] != n):
            b = -2
            if h is None:
                h = 0.0
        elif b >= 0:
            stuck = False
            if a >= 0:  # a head with no exit from its link for the stuck time may squeeze in
                since = max(arrived, self.room_t[a])
                stuck = t - since >= self.stuck
            t_down = self._receiving_time(b, t, stuck)
            if t_down is None:
                return None
            if t_down > te:
                te = t_down
                if a >= 0:
                    te = _green_time(te, self.cycle[n], self.offset[n], self.green_start[a], self.green_end[a])
            if h is None:
                h = self.headway[b]
        if te >= t1:
            return None
        if not backlogged:
            tag = max(tag, self.vclock[n])
        return te, b, tag + h, t_down > own

    def _move(self, n: int, a: int, te: float, b: int, tag: float, held: bool) -> None:
        if a >= 0:
            v = self.queue[a].popleft()
            self.exits[a].append(te)
            h = self.headway[a]
            self.sched_exit[a] = max(self.sched_exit[a] + h, te) if held else te + h
            self.vft[a] = tag
            top = self._top_priority(n)
            if top > 0 and self.priority[a] == top:  # a major move
                r = self.major_rate[n]
                if te > self.major_t[n]:
                    r *= math.exp(-(te - self.major_t[n]) / MAJOR_FLOW_TAU_S)
                self.major_rate[n] = r + 1.0 / MAJOR_FLOW_TAU_S
                self.major_t[n] = te
            self.dist[v] += self.length[a]
            self.fftt[v] += self.free_tt[a]
        else:
            v = self.oqueue[n].popleft()
            if b >= 0:
                self.enter_net[v] = te
            self.oq_vft[n] = tag
        self.vclock[n] = tag
        self.last_t[n] = te
        if b == -1:
            self.status[v] = ARRIVED
            self.arrive[v] = te
        elif b == -2:
            self.status[v] = NO_ROUTE
            self.orig[v] = n
        else:
            if len(self.entries[b]) - len(self.exits[b]) + 1 > self.storage[b]:
                self.squeezed[b] += 1
            elif a >= 0:
                self.room_t[a] = te
            self.queue[b].append(v)
            self.entries[b].append(te)
            self.status[v] = b
            self.enter_t[v] = te

    def _release(self, t1: float) -> None:
        while self.pending and self.depart[self.pending[0]] < t1:
            v = self.pending.pop(0)
            self.released.append(v)
            o, d = self.orig[v], self.dest[v]
            if o == d:
                self.status[v] = ARRIVED
                self.arrive[v] = self.depart[v]
                self.enter_net[v] = self.depart[v]
            elif not self.pot[d][o] < np.inf:
                self.status[v] = NO_ROUTE
            else:
                self.status[v] = WAITING
                self.oqueue[o].append(v)

    def advance(self, n_ticks: int) -> None:
        for _ in range(n_ticks):
            t = self.tick * self.dt
            t1 = t + self.dt
            self._release(t1)
            for n in range(self.n_nodes):
                sources = self._in_links(n) + [-1]
                while True:
                    best = None
                    for pos, a in enumerate(sources):
                        c = self._candidate(n, a, t, t1)
                        if c is None:
                            continue
                        te, b, tag, held = c
                        key = (te, self._is_minor(n, a), tag, pos)
                        if best is None or key < best[0]:
                            best = (key, a, te, b, tag, held)
                    if best is None:
                        break
                    _, a, te, b, tag, held = best
                    self._move(n, a, te, b, tag, held)
            self.tick += 1

    # --------------------------------------------------------------- records
    @property
    def now(self) -> float:
        return self.tick * self.dt

    def n_in(self) -> np.ndarray:
        return np.array([len(e) for e in self.entries], dtype=np.int64)

    def n_out(self) -> np.ndarray:
        return np.array([len(e) for e in self.exits], dtype=np.int64)

    def queues(self) -> list[list[int]]:
        return [list(q) for q in self.queue]

    def result(self) -> dict[str, np.ndarray]:
        return {
            "link": np.asarray(self.status, dtype=np.int64),
            "arrive": np.asarray(self.arrive),
            "dist": np.asarray(self.dist),
            "fftt": np.asarray(self.fftt),
            "enter_net": np.asarray(self.enter_net),
        }


def ref_status_counts(link: np.ndarray) -> np.ndarray:
    """Plain-numpy :func:`kernels.traffic_state.status_counts`: codes -1..-5, then vehicles on a link."""
    link = np.asarray(link)
    return np.array(
        [np.count_nonzero(link == s) for s in (-1, -2, -3, -4, -5)] + [np.count_nonzero(link >= 0)], np.int64
    )


def ref_destinations_in_use(link, dest_idx, order, depart, released: int, horizon_t: float, n_rows: int):
    """Plain-numpy :func:`kernels.traffic_state.destinations_in_use` by a scan of every vehicle:
    the rows flagged and how many vehicles have no route."""
    link = np.asarray(link)
    live = (link >= 0) | (link == -1) | (link == -4)
    out = np.zeros(n_rows, np.bool_)
    out[np.asarray(dest_idx)[live]] = True
    pending = np.asarray(order)[released:]
    out[np.asarray(dest_idx)[pending[np.asarray(depart)[pending] < horizon_t]]] = True
    return out, int(np.count_nonzero(link == -4))
