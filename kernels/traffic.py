"""Mesoscopic traffic kernel: individual vehicles on a link-transmission network.

The model
---------
Each link has a triangular fundamental diagram (free speed ``vf``, capacity
``q``, jam density ``kj``, backward wave speed ``w = q / (kj - q / vf)``).
Vehicles are individuals in a FIFO queue per link.  Time advances in ticks
``[t, t + dt)``; within a tick every move gets an exact (continuous) time, so
free-flow travel times and discharge headways are not rounded to the tick.

A vehicle ``v`` at the head of link ``a`` (entered at ``e_v``) crossing node
``n`` into link ``b`` at time ``T`` must satisfy, as in Yperman's link
transmission model (the kinematic-wave solution for a triangular diagram):

* sending (link ``a``):  ``T >= e_v + L_a / vf_a`` (it has driven the link) and
  ``T >= S_out(a)`` (capacity);
* receiving (link ``b``): ``T >= S_in(b)`` (capacity) and
  ``N_up(b) + 1 <= N_down(b, T - L_b / w_b) + kj_b L_b`` (space freed by the
  backward wave: spillback), i.e. ``T >= tau_e + L_b / w_b`` where ``tau_e``
  is the exit time of the ``e = ceil(N_up + 1 - kj L)``-th vehicle to leave
  ``b``, kept in a ring buffer of the last ``ceil(kj L) + 1`` exit times;
* signals: ``T`` inside the green window of link ``a`` at a signalised node.

``T`` is the smallest time meeting all of them; the move happens in the tick
that contains it.  After a move at ``T`` the entry schedule is
``S_in <- T + 1/q``; the exit schedule too, unless the vehicle was held back by
the downstream link (a merge it lost, a full link): then ``S_out <- max(S_out +
1/q, T)``, one vehicle of credit, so an in-link that yields at a merge still
gets its share of the out-link's capacity.  Links with zero capacity pass
nobody.  A vehicle cannot leave a link in the tick it entered it,
and an exit made in the current tick frees no space until the next one, so
node updates within a tick are independent of the order in which nodes are
visited (and exact whenever ``L / vf >= dt`` and ``L / w >= dt``).

Node model: at each node, repeatedly move the head vehicle (over all in-links
and the node's origin queue) that can move earliest; ties go to the smallest
self-clocked fair-queueing tag: ``F_a + 1/q_a`` for a source whose head vehicle
had reached the node (free-flow arrival) by the node's last move, ``max(F_a, V_n) + 1/q_a`` for one that has
just arrived (``F_a`` the source's last tag, ``V_n`` the tag of the node's
last move; the origin queue uses the capacity of the link it enters).  This
splits a congested merge in proportion to the in-links' capacities.
Diverges are FIFO: a head vehicle whose next link is full blocks its link.

Priority (unsignalised nodes whose in-links have different ``Links.priority``,
higher = major road, 0 = unknown): the in-links of the node's highest priority
are the major approaches and are served as above; an in-link of a lower
(non-zero) priority is a minor approach that yields to them.  A minor head
vehicle may only leave once the gap-acceptance headway ``1 / c(q_c)`` has
passed since its link's last exit, ``c`` being Harders' (HCM) capacity
``c = q_c exp(-q_c t_c) / (1 - exp(-q_c t_f))`` with critical gap
``t_c = CRITICAL_GAP_S`` and follow-up time ``t_f`` the link's own headway
``1/q_a`` (so with no major flow the minor approach has its own capacity).
``q_c`` is the node's major flow: an exponentially smoothed rate of moves off
its major in-links (time constant ``MAJOR_FLOW_TAU_S``), taken midway through
its jump at the last such move and decayed to the candidate's own time
``max(free-flow arrival, S_out)`` when that is later, so it does not depend on
the tick.  On a tie in time a minor source loses to any other (the major road
keeps its flow); the origin queue and in-links of unknown priority are never
held and do not count as major flow.  Nodes whose in-links share one priority
(or that are signalised) behave exactly as without priorities.

Routing: the caller keeps, per destination, the shortest travel time from
every node (``Routes.pot``, refreshed periodically from current link travel
times, with those weights in ``Routes.weight``).  At a node, a vehicle takes an
open out-link ``b`` that gets strictly closer to its destination and whose
cost ``weight[b] + pot[dst b]`` is within ``tol`` (relative) of the best; when
several qualify, a hash of (vehicle, link it arrives on) picks one, so vehicles bound for one
destination spread over equally good paths (a grid has many) instead of all
piling onto one, and the choice stays deterministic.  Potentials strictly
decrease along the way, so no vehicle loops.  A vehicle whose destination can no
longer be reached from its node (after a re-route, say a closure cut it
off) leaves its link there and waits off the network, like a trip released
without a route, until a re-route finds a way on (``retry_no_route``).

All state lives in NamedTuples of arrays, so a snapshot is a copy of them.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from basics.errors import InputError
from kernels._checks import check_array, check_scalar
from kernels._jit import Float, Int, njit
from kernels.junction import MAJOR_FLOW_TAU_S, gap_headway, green_time, major_flow
from kernels.route_choice import next_link

__all__ = [
    "Routes",
    "Links",
    "LinkState",
    "Nodes",
    "Vehicles",
    "VEH_PENDING",
    "VEH_WAITING",
    "VEH_ARRIVED",
    "VEH_NO_ROUTE",
    "advance",
    "check_state",
]

#: vehicle status codes stored in ``Vehicles.link`` (>= 0 is the current link)
VEH_PENDING = -3  # departure time not reached
VEH_WAITING = -1  # released, waiting at its origin to enter the network
VEH_ARRIVED = -2
VEH_NO_ROUTE = -4  # no path to its destination: waits off the network at ``orig`` for one


class Links(NamedTuple):
    """Per-link parameters (``headway``/``is_open`` may change: interventions)."""

    src: np.ndarray  # int32
    dst: np.ndarray  # int32
    length: np.ndarray  # float64 m
    free_tt: np.ndarray  # float64 s
    headway: np.ndarray  # float64 s/veh (1 / capacity); inf: no flow
    storage: np.ndarray  # float64 veh (kj * L)
    lag: np.ndarray  # float64 s (L / w)
    green_start: np.ndarray  # float64 s within the cycle of dst
    green_end: np.ndarray  # float64 s; == green_start: not signal controlled
    is_open: np.ndarray  # uint8: 0 = no vehicle may enter
    ring_off: np.ndarray  # int64 offsets into LinkState.exit_ring
    ring_len: np.ndarray  # int64 (ceil(storage) + 1)
    priority: np.ndarray  # int8 road rank at dst (higher = major; 0 = unknown)
    stuck: np.ndarray  # float64 s: a head held this long with no exit may enter a full next link (inf: never)


class Routes(NamedTuple):
    """Route choice: potentials per destination, the link weights they came from, the choice's band, scale and seed."""

    pot: np.ndarray  # float64 [n_dest, n_nodes]: travel time to each destination (inf: none)
    weight: np.ndarray  # float64 [n_links]: link travel times the potentials were built from
    tol: np.ndarray  # float64 (1,): relative cost band within which out-links count as equally good
    scale: np.ndarray  # float64 (1,): logit scale in s beyond the band (0: nothing beyond it)
    seed: np.ndarray  # uint64 (1,): key of every route-choice draw


class Nodes(NamedTuple):
    """Per-node topology (CSR in- and out-links) and signal timing."""

    in_indptr: np.ndarray  # int64 (n_nodes + 1,)
    in_links: np.ndarray  # int32
    out_indptr: np.ndarray  # int64 (n_nodes + 1,)
    out_links: np.ndarray  # int32
    cycle: np.ndarray  # float64 s, 0 = unsignalised
    offset: np.ndarray  # float64 s


class LinkState(NamedTuple):
    """The network's dynamic state: per-link queues and counters, per-node origin queues and clocks."""

    head: np.ndarray  # int32 first vehicle (-1 empty)
    head_ready: np.ndarray  # float64 free-flow exit time of the head vehicle (inf: empty)
    tail: np.ndarray  # int32
    n_in: np.ndarray  # int64 cumulative entries
    n_out: np.ndarray  # int64 cumulative exits
    next_exit: np.ndarray  # float64 earliest next exit (capacity)
    next_entry: np.ndarray  # float64 earliest next entry (capacity)
    vft: np.ndarray  # float64 virtual finish time (merge fairness)
    exit_ring: np.ndarray  # float64 ring buffers of the last exit times
    acc_in: np.ndarray  # int64 entries this output interval
    acc_out: np.ndarray  # int64 exits this output interval
    acc_vehsec: np.ndarray  # float64 vehicle-seconds this interval, up to vs_t
    vs_t: np.ndarray  # float64 time of the link's last entry or exit
    acc_tt: np.ndarray  # float64 traversal seconds of vehicles that exited
    # per node (origin queues)
    oq_head: np.ndarray  # int32
    oq_tail: np.ndarray  # int32
    node_load: np.ndarray  # int64 per node: vehicles on its in-links or in its origin queue
    oq_vft: np.ndarray  # float64
    vclock: np.ndarray  # float64 per node: tag of the last vehicle served (fair queueing)
    last_t: np.ndarray  # float64 per node: time of the last move
    major_rate: np.ndarray  # float64 per node: smoothed major flow (veh/s) just after its last major move
    major_t: np.ndarray  # float64 per node: time of that move (-inf: none yet)
    squeezed: np.ndarray  # int64 per link: entries past its storage (the stuck rule), cumulative
    room_t: np.ndarray  # float64 per link: its last exit into a next link that had room (-inf: none yet)
    # scalars in arrays: [0] next pending index, [1] tick counter
    cursor: np.ndarray  # int64 (2,)


#: ``advance``'s per-head cache of the way on: not looked up yet / must wait at the node
_UNKNOWN = -3
_WAIT = -5

# columns of Vehicles.fhot / Vehicles.ihot: what a move touches sits in one row
F_ENTER, F_DIST, F_FFTT = 0, 1, 2
I_DEST, I_DIDX, I_NXT, I_LINK = 0, 1, 2, 3


class Vehicles(NamedTuple):
    """Per-vehicle arrays.

    The fields a move reads and writes live row-wise in ``fhot`` (float64
    ``[n, 3]``) and ``ihot`` (int32 ``[n, 4]``), so a move touches two cache
    lines per vehicle instead of seven; ``enter_t``, ``dist``, ``fftt``,
    ``dest``, ``dest_idx``, ``nxt`` and ``link`` are column views of them.
    """

    orig: np.ndarray  # int32 node
    dest: np.ndarray  # int32 node (view of ihot)
    dest_idx: np.ndarray  # int32 row of the route table (view of ihot)
    depart: np.ndarray  # float64 scheduled departure, s
    order: np.ndarray  # int32 vehicle ids sorted by departure (release order)
    link: np.ndarray  # int32 current link or a VEH_* status (view of ihot)
    enter_t: np.ndarray  # float64 entry time into the current link (view of fhot)
    nxt: np.ndarray  # int32 next vehicle in the same queue (view of ihot)
    arrive: np.ndarray  # float64 arrival time (NaN until arrived)
    dist: np.ndarray  # float64 metres driven (view of fhot)
    enter_net: np.ndarray  # float64 time it entered the network (NaN before)
    fftt: np.ndarray  # float64 free-flow time of the links driven, s (view of fhot)
    fhot: np.ndarray  # float64 [n, 3]: enter_t, dist, fftt
    ihot: np.ndarray  # int32 [n, 4]: dest, dest_idx, nxt, link


@njit(cache=True, inline="always")
def _stuck(a: Int, t: Float, head_ready: np.ndarray, room_t: np.ndarray, l_stuck: np.ndarray) -> bool:
    """Whether link ``a``'s head has been ready at the node, and no vehicle has left ``a`` into a next link with room, for ``l_stuck[a]`` s by ``t``.

    Such a link's vehicles may enter their next link even when it is full (its
    capacity still applies), until one of them leaves into room again: for as
    long as a jam holds it, the link is a point queue.  The rule that keeps a
    grid from locking up for good once queues close a cycle of streets, like
    SUMO's time-to-teleport, but vehicles drive on instead of jumping ahead.
    """
    since = head_ready[a]
    if room_t[a] > since:
        since = room_t[a]
    return bool(t - since >= l_stuck[a])


@njit(cache=True, inline="always")
def _initial_wake(
    l_dst: np.ndarray, head_ready: np.ndarray, oq_head: np.ndarray, v_depart: np.ndarray, n_nodes: Int
) -> np.ndarray:
    """A lower bound per node on when its next move can be.

    The earliest free-flow exit of its in-links' head vehicles and the departure
    of its origin queue's head.  A node whose bound is past the tick has nothing
    to move in it, and the bound only falls when a vehicle becomes a head
    (entering an empty link or queue), so :func:`advance` skips such nodes.
    """
    wake = np.full(n_nodes, np.inf)
    for a in range(l_dst.shape[0]):
        if head_ready[a] < wake[l_dst[a]]:
            wake[l_dst[a]] = head_ready[a]
    for n in range(n_nodes):
        if oq_head[n] >= 0 and v_depart[oq_head[n]] < wake[n]:
            wake[n] = v_depart[oq_head[n]]
    return wake


@njit(cache=True, inline="always")
def _major_priority(l_dst: np.ndarray, l_prio: np.ndarray, n_cycle: np.ndarray, n_nodes: Int) -> np.ndarray:
    """The highest priority among each node's in-links (of known priority), kept
    only where a lower one meets it at an unsignalised node: 0 elsewhere.
    """
    pmax = np.zeros(n_nodes, np.int64)
    pmin = np.full(n_nodes, np.int64(1 << 30))
    for a in range(l_dst.shape[0]):
        p = np.int64(l_prio[a])
        if p > 0:
            d = l_dst[a]
            pmax[d] = max(pmax[d], p)
            pmin[d] = min(pmin[d], p)
    for n in range(n_nodes):
        if pmin[n] >= pmax[n] or n_cycle[n] > 0.0:
            pmax[n] = 0
    return pmax


@njit(cache=True, inline="always")
def _release(
    t1: Float,
    cursor: np.ndarray,
    pot: np.ndarray,
    v_order: np.ndarray,
    v_orig: np.ndarray,
    v_depart: np.ndarray,
    v_arrive: np.ndarray,
    v_enter_net: np.ndarray,
    ih: np.ndarray,
    oq_head: np.ndarray,
    oq_tail: np.ndarray,
    node_load: np.ndarray,
    way: np.ndarray,
    wake: np.ndarray,
) -> Int:
    """Release the departures before ``t1`` into their origin queues (from ``cursor[0]`` on).

    A trip whose origin is its destination arrives at once; one with no path waits off
    the network (``VEH_NO_ROUTE``).  Returns the number of arrivals.
    """
    n_links = way.shape[0] - oq_head.shape[0]
    arrived = 0
    p = cursor[0]
    while p < v_order.shape[0]:
        v = v_order[p]
        if v_depart[v] >= t1:
            break
        p += 1
        o = v_orig[v]
        if ih[v, I_DEST] == o:
            ih[v, I_LINK] = VEH_ARRIVED
            v_arrive[v] = v_depart[v]
            v_enter_net[v] = v_depart[v]
            arrived += 1
            continue
        if not pot[ih[v, I_DIDX], o] < np.inf:
            ih[v, I_LINK] = VEH_NO_ROUTE
            continue
        ih[v, I_LINK] = VEH_WAITING
        ih[v, I_NXT] = -1
        tl = oq_tail[o]
        if tl < 0:
            oq_head[o] = v
            way[n_links + o] = _UNKNOWN
            if v_depart[v] < wake[o]:
                wake[o] = v_depart[v]
        else:
            ih[tl, I_NXT] = v
        oq_tail[o] = v
        node_load[o] += 1
    cursor[0] = p
    return arrived


@njit(cache=True)
def _advance(n_ticks: Int, dt: Float, links: Links, nodes: Nodes, ls: LinkState, veh: Vehicles, routes: Routes) -> Int:  # noqa: C901, PLR0915 (the node loop stays whole: see below)
    """Advance the network by ``n_ticks`` ticks of ``dt`` seconds.

    The current tick index is ``ls.cursor[1]``; vehicles are released in
    ``veh.order`` from ``ls.cursor[0]``.  Returns the number of arrivals.

    The set-up and the release of departures are inlined helpers
    (:func:`_initial_wake`, :func:`_major_priority`, :func:`_release`).  The node
    loop is not split further, though it is long and nests 8 deep: every split tried
    was bit-identical and slower on ``grid21`` (issue 14's benchmark,
    ``python -m benchmarks.run --cases grid21 --peers none``, fastest of 5 runs, the
    variants alternated in one shell, load 1.4-1.9 on 2 cores; this loop whole:
    0.174-0.214 s):

    * first attempt, many helpers taking their arrays as arguments: 4 to 8 times slower,
      plain calls too;
    * one inlined helper for a vehicle entering its next link (20 arrays: its link's
      queue, counters and clocks, the vehicle's row), whether it takes the NamedTuples
      ``(ls, links, veh, ...)``, the 20 arrays, or one small NamedTuple of them built
      before the loop: 0.25-0.28 s (about 1.45 times); as a plain call 0.37-0.42 s;
    * one inlined helper taking 4 arrays (appending the vehicle to the link's queue):
      0.19-0.22 s, within noise, but it would shorten the loop by four lines only.

    The cost grows with the arrays that reach a helper (each appears to cost a
    reference-count round trip per call, and here a call is made per vehicle move),
    not with how they are passed; the loop reads the arrays unpacked once, above it.
    """
    # Arrays are unpacked once: attribute access on the NamedTuples inside the
    # branchy node loop costs a reference-count round trip each time.
    l_dst = links.dst
    l_length = links.length
    l_free_tt = links.free_tt
    l_headway = links.headway
    l_storage = links.storage
    l_lag = links.lag
    l_gs = links.green_start
    l_ge = links.green_end
    l_open = links.is_open
    l_roff = links.ring_off
    l_rlen = links.ring_len
    l_prio = links.priority
    l_stuck = links.stuck
    in_indptr = nodes.in_indptr
    in_links = nodes.in_links
    out_indptr = nodes.out_indptr
    out_links = nodes.out_links
    pot = routes.pot
    rw = routes.weight
    tol = routes.tol[0]
    scale = routes.scale[0]
    seed = routes.seed[0]
    n_cycle = nodes.cycle
    n_offset = nodes.offset
    head = ls.head
    head_ready = ls.head_ready
    tail = ls.tail
    n_in = ls.n_in
    n_out = ls.n_out
    next_exit = ls.next_exit
    next_entry = ls.next_entry
    vft = ls.vft
    ring = ls.exit_ring
    acc_in = ls.acc_in
    acc_out = ls.acc_out
    acc_vehsec = ls.acc_vehsec
    vs_t = ls.vs_t
    node_load = ls.node_load
    acc_tt = ls.acc_tt
    oq_head = ls.oq_head
    oq_tail = ls.oq_tail
    oq_vft = ls.oq_vft
    vclock = ls.vclock
    last_t = ls.last_t
    major_rate = ls.major_rate
    major_t = ls.major_t
    squeezed = ls.squeezed
    room_t = ls.room_t
    cursor = ls.cursor
    v_orig = veh.orig
    v_depart = veh.depart
    v_order = veh.order
    v_arrive = veh.arrive
    v_enter_net = veh.enter_net
    fh = veh.fhot
    ih = veh.ihot

    n_nodes = in_indptr.shape[0] - 1
    arrived = 0
    # The way on chosen for each head vehicle (in-link heads, then origin-queue
    # heads at n_links + node), kept while it stays the head: the choice only
    # depends on the vehicle, its node and link and on the routes and open
    # links, which do not change within one call, while a node looks at each
    # head again after every move it makes.  _UNKNOWN: not looked up yet.
    n_links = l_dst.shape[0]
    way = np.full(n_links + n_nodes, _UNKNOWN, np.int64)
    wake = _initial_wake(l_dst, head_ready, oq_head, v_depart, n_nodes)  # skips nodes with nothing to move
    pmax = _major_priority(l_dst, l_prio, n_cycle, n_nodes)
    for _ in range(n_ticks):
        k = cursor[1]
        t = k * dt
        t1 = t + dt
        arrived += _release(
            t1,
            cursor,
            pot,
            v_order,
            v_orig,
            v_depart,
            v_arrive,
            v_enter_net,
            ih,
            oq_head,
            oq_tail,
            node_load,
            way,
            wake,
        )

        for n in range(n_nodes):
            if node_load[n] == 0 or wake[n] >= t1:  # nothing there, or nothing can reach the node in this tick
                continue
            lo = in_indptr[n]
            hi = in_indptr[n + 1]
            cycle = n_cycle[n]
            offset = n_offset[n]
            top = pmax[n]
            while True:
                # pick the head vehicle (over in-links and the origin queue)
                # that can cross node n earliest in this tick
                best_j: Int = np.int64(-1)
                best_te = np.inf
                best_tag = np.inf
                best_b = np.int64(-1)
                best_held = False
                best_minor = False
                soonest = np.inf  # the node's new lower bound, if nothing moves
                for j in range(lo, hi + 1):
                    a = np.int64(-1)
                    minor = False
                    if j < hi:
                        a = in_links[j]
                        te = head_ready[a]
                        if te < soonest:
                            soonest = te
                        if te >= t1 or l_headway[a] == np.inf:  # empty, still driving, or no capacity
                            continue
                        v = head[a]
                        if fh[v, F_ENTER] >= t:  # entered during this tick
                            continue
                        backlogged = te <= last_t[n]
                        if next_exit[a] > te:
                            te = next_exit[a]
                        tag = vft[a]
                        h_src = l_headway[a]
                        if top > 0:
                            p = np.int64(l_prio[a])
                            if p > 0 and p < top:  # a minor approach: gap acceptance
                                minor = True
                                if n_out[a] > 0:
                                    qc = major_flow(major_rate[n], major_t[n], te)
                                    gate = ring[l_roff[a] + (n_out[a] - 1) % l_rlen[a]] + gap_headway(qc, h_src)
                                    if gate > te:
                                        te = gate
                    else:
                        v = oq_head[n]
                        if v < 0:
                            continue
                        te = v_depart[v]
                        if te < soonest:
                            soonest = te
                        tag = oq_vft[n]
                        h_src = 0.0
                        backlogged = te <= last_t[n]
                    # fair-queueing tag (self-clocked): a source whose head vehicle
                    # had reached the node by its last move keeps its own finish
                    # tag; one that has just arrived starts from the node's clock
                    own = te  # when its own link and signal would let it go
                    if a >= 0:
                        own = green_time(own, cycle, offset, l_gs[a], l_ge[a])
                    te = own
                    if te < t:
                        te = t
                        if a >= 0:
                            te = green_time(te, cycle, offset, l_gs[a], l_ge[a])
                    if te >= t1:
                        continue
                    t_down = -np.inf  # when the next link would let it in
                    # -1: arrives here; -2: parks here (no way on); _WAIT: waits; else next link
                    slot = a if a >= 0 else n_links + n
                    b = way[slot]
                    if b == _UNKNOWN:
                        b = np.int64(-1)
                        if ih[v, I_DEST] != n:
                            b = next_link(
                                n, a, ih[v, I_DIDX], v, out_indptr, out_links, l_dst, l_open, pot, rw, tol, scale, seed
                            )
                            if b < 0:
                                if pot[ih[v, I_DIDX], n] < np.inf:
                                    b = _WAIT  # its next links closed since the last re-route: wait for it
                                else:
                                    b = np.int64(-2)
                        way[slot] = b
                    if b == _WAIT:
                        continue
                    if b >= 0:
                        if l_headway[b] == np.inf:
                            continue
                        if a < 0:
                            h_src = l_headway[b]
                        t_down = next_entry[b]
                        need = n_in[b] + 1 - l_storage[b]
                        if need > 0.0 and not (a >= 0 and _stuck(a, t, head_ready, room_t, l_stuck)):
                            e = np.int64(np.ceil(need))  # 1-based number of the exit freeing the space
                            if e > n_out[b]:
                                continue
                            t_free = ring[l_roff[b] + (e - 1) % l_rlen[b]]
                            if t_free >= t:  # exits of this tick free space from the next tick on
                                continue
                            t_free += l_lag[b]
                            if t_free > t_down:
                                t_down = t_free
                        if t_down > te:
                            te = t_down
                            if a >= 0:
                                te = green_time(te, cycle, offset, l_gs[a], l_ge[a])
                            if te >= t1:
                                continue
                    if not backlogged and vclock[n] > tag:
                        tag = vclock[n]
                    tag += h_src
                    if te < best_te or (
                        te == best_te and (best_minor > minor or (best_minor == minor and tag < best_tag))
                    ):
                        best_j = j
                        best_te = te
                        best_tag = tag
                        best_b = b
                        best_held = t_down > own
                        best_minor = minor
                if best_j < 0:
                    wake[n] = soonest
                    break
                # move it
                te = best_te
                b = best_b
                if best_j < hi:
                    a = in_links[best_j]
                    v = head[a]
                    nh = ih[v, I_NXT]
                    head[a] = nh
                    way[a] = _UNKNOWN
                    if nh < 0:
                        tail[a] = -1
                        head_ready[a] = np.inf
                    else:
                        head_ready[a] = fh[nh, F_ENTER] + l_free_tt[a]
                    ring[l_roff[a] + n_out[a] % l_rlen[a]] = te
                    acc_vehsec[a] += (n_in[a] - n_out[a]) * (te - vs_t[a])
                    vs_t[a] = te
                    n_out[a] += 1
                    acc_out[a] += 1
                    acc_tt[a] += te - fh[v, F_ENTER]
                    if best_held:  # held back downstream: keep one vehicle of credit
                        next_exit[a] = max(next_exit[a] + l_headway[a], te)
                    else:
                        next_exit[a] = te + l_headway[a]
                    vft[a] = best_tag
                    if top > 0 and l_prio[a] == top:  # a major move: the major flow's estimate jumps
                        r = major_rate[n]
                        if te > major_t[n]:
                            r *= np.exp(-(te - major_t[n]) / MAJOR_FLOW_TAU_S)
                        major_rate[n] = r + 1.0 / MAJOR_FLOW_TAU_S
                        major_t[n] = te
                    fh[v, F_DIST] += l_length[a]
                    fh[v, F_FFTT] += l_free_tt[a]
                else:
                    v = oq_head[n]
                    oq_head[n] = ih[v, I_NXT]
                    way[n_links + n] = _UNKNOWN
                    if oq_head[n] < 0:
                        oq_tail[n] = -1
                    if b >= 0:
                        v_enter_net[v] = te
                    oq_vft[n] = best_tag
                vclock[n] = best_tag
                last_t[n] = te
                node_load[n] -= 1
                ih[v, I_NXT] = -1
                if b == -1:
                    v_arrive[v] = te
                    ih[v, I_LINK] = VEH_ARRIVED
                    arrived += 1
                elif b == -2:  # off the network at n until a re-route finds a way on
                    ih[v, I_LINK] = VEH_NO_ROUTE
                    v_orig[v] = n
                else:
                    tl = tail[b]
                    if tl < 0:
                        head[b] = v
                        head_ready[b] = te + l_free_tt[b]
                        way[b] = _UNKNOWN
                        if head_ready[b] < wake[l_dst[b]]:
                            wake[l_dst[b]] = head_ready[b]
                    else:
                        ih[tl, I_NXT] = v
                    tail[b] = v
                    ih[v, I_LINK] = b
                    fh[v, F_ENTER] = te
                    if n_in[b] - n_out[b] + 1 > l_storage[b]:
                        squeezed[b] += 1
                    elif best_j < hi:
                        room_t[in_links[best_j]] = te
                    acc_vehsec[b] += (n_in[b] - n_out[b]) * (te - vs_t[b])
                    vs_t[b] = te
                    n_in[b] += 1
                    node_load[l_dst[b]] += 1
                    acc_in[b] += 1
                    next_entry[b] = te + l_headway[b]

        cursor[1] = k + 1
    return arrived


# ----------------------------------------------------------------------------- checked wrappers

_F, _I32, _I64, _U8 = np.dtype(np.float64), np.dtype(np.int32), np.dtype(np.int64), np.dtype(np.uint8)
_U64 = np.dtype(np.uint64)

#: field: (dtype, ndim, length key) -- "l" links, "n" nodes, "n1" nodes + 1, "v" vehicles, None any
_Spec = dict[str, tuple[np.dtype[Any], str | None]]
_LINKS: _Spec = {
    f: (_F, "l") for f in ("length", "free_tt", "headway", "storage", "lag", "green_start", "green_end", "stuck")
}
_LINKS |= {"src": (_I32, "l"), "dst": (_I32, "l"), "is_open": (_U8, "l"), "priority": (np.dtype(np.int8), "l")}
_LINKS |= {"ring_off": (_I64, "l"), "ring_len": (_I64, "l")}
_NODES: _Spec = {
    "in_indptr": (_I64, "n1"),
    "in_links": (_I32, "l"),
    "out_indptr": (_I64, "n1"),
    "out_links": (_I32, "l"),
    "cycle": (_F, "n"),
    "offset": (_F, "n"),
}
_STATE: _Spec = {f: (_I32, "l") for f in ("head", "tail")}
_STATE |= {f: (_I64, "l") for f in ("n_in", "n_out", "acc_in", "acc_out", "squeezed")}
_STATE |= {f: (_F, "l") for f in ("head_ready", "next_exit", "next_entry", "vft", "acc_vehsec", "vs_t", "acc_tt")}
_STATE |= {"room_t": (_F, "l"), "exit_ring": (_F, None), "cursor": (_I64, None)}
_STATE |= {f: (_I32, "n") for f in ("oq_head", "oq_tail")}
_STATE |= {"node_load": (_I64, "n")} | {f: (_F, "n") for f in ("oq_vft", "vclock", "last_t", "major_rate", "major_t")}
_VEHICLES: _Spec = {f: (_I32, "v") for f in ("orig", "dest", "dest_idx", "order", "link", "nxt")}
_VEHICLES |= {f: (_F, "v") for f in ("depart", "enter_t", "arrive", "dist", "enter_net", "fftt")}
_VEHICLES |= {"fhot": (_F, "v"), "ihot": (_I32, "v")}  # 2-D: their columns are checked apart
#: per NamedTuple, its fields in order: (name, dtype, length key, ndim)
_FIELDS: dict[type, tuple[tuple[str, np.dtype[Any], str | None, int], ...]] = {
    cls: tuple((f, spec[f][0], spec[f][1], 2 if f in ("fhot", "ihot") else 1) for f in cls._fields)
    for cls, spec in ((Links, _LINKS), (Nodes, _NODES), (LinkState, _STATE), (Vehicles, _VEHICLES))
}


def check_state(
    links: Links | None,
    nodes: Nodes | None,
    ls: LinkState | None,
    veh: Vehicles | None,
    routes: Routes | None,
) -> None:
    """Check the traffic kernel's NamedTuples (those given; ``None``: skipped) against each other.

    Every field must be a numpy array of its dtype (see the classes' comments) and length: one
    entry per link (``Links``, the per-link ``LinkState`` fields, ``Nodes.in_links`` /
    ``out_links``), per node (``Nodes.cycle`` / ``offset``, ``LinkState``'s origin queues and
    clocks; ``n_nodes + 1`` for the CSR pointers), per vehicle (``Vehicles``; ``fhot`` /
    ``ihot`` have 3 / 4 columns), per route row and node (``Routes.pot``).  The sizes come from
    the first array given of each kind.  O(number of fields): index ranges inside the arrays
    are their builder's (:class:`twin.traffic.TrafficModel`) to keep.

    Raises
    ------
    basics.errors.InputError
        Naming the argument and field (``ls.head``) and what it should be.
    """
    n_links = _size(links, "src", ls, "head", nodes, "in_links")
    n_nodes = _size(ls, "oq_head", nodes, "cycle", None, "")
    n_veh = veh.orig.shape[0] if isinstance(veh, Vehicles) and isinstance(veh.orig, np.ndarray) else None
    sizes = {"l": n_links, "n": n_nodes, "n1": None if n_nodes is None else n_nodes + 1, "v": n_veh, None: None}
    for what, nt, cls in (
        ("links", links, Links),
        ("nodes", nodes, Nodes),
        ("ls", ls, LinkState),
        ("veh", veh, Vehicles),
    ):
        if nt is None:
            continue
        if not isinstance(nt, cls):
            raise InputError(f"{what} must be a {cls.__name__}, got {type(nt).__name__}")
        # a tight loop (the models call this per advance): the full check, and its message,
        # only for a field that fails it
        for a, (f, dt, key, nd) in zip(nt, _FIELDS[cls], strict=True):
            n = sizes[key]
            if (
                type(a) is not np.ndarray
                or (a.dtype is not dt and a.dtype != dt)
                or a.ndim != nd
                or (n is not None and a.shape[0] != n)
            ):
                check_array(f"{what}.{f}", a, dt, ndim=nd, length=n)
    if ls is not None and ls.cursor.shape[0] != 2:
        raise InputError(f"ls.cursor must have 2 entries (next release, tick), got {ls.cursor.shape[0]}")
    if veh is not None and (veh.fhot.shape[1] != 3 or veh.ihot.shape[1] != 4):
        check_array("veh.fhot", veh.fhot, _F, ndim=2, shape=(n_veh, 3))
        check_array("veh.ihot", veh.ihot, _I32, ndim=2, shape=(n_veh, 4))
    if routes is not None:
        if not isinstance(routes, Routes):
            raise InputError(f"routes must be a Routes, got {type(routes).__name__}")
        pot = check_array("routes.pot", routes.pot, _F, ndim=2)
        if n_nodes is not None and pot.shape[1] != n_nodes:
            check_array("routes.pot", pot, _F, ndim=2, shape=(None, n_nodes))
        check_array("routes.weight", routes.weight, _F, length=n_links)
        check_array("routes.tol", routes.tol, _F, length=1)
        check_array("routes.scale", routes.scale, _F, length=1)
        check_array("routes.seed", routes.seed, _U64, length=1)


def _size(a: object, fa: str, b: object, fb: str, c: object, fc: str) -> int | None:
    """The length of the first of ``a.fa``, ``b.fb``, ``c.fc`` that is an array (None: none is)."""
    for nt, f in ((a, fa), (b, fb), (c, fc)):
        arr = getattr(nt, f, None) if nt is not None else None
        if isinstance(arr, np.ndarray) and arr.ndim >= 1:
            return int(arr.shape[0])
    return None


def advance(n_ticks: int, dt: float, links: Links, nodes: Nodes, ls: LinkState, veh: Vehicles, routes: Routes) -> int:
    """Advance the network by ``n_ticks`` ticks of ``dt`` seconds (the module docstring gives the model).

    The current tick index is ``ls.cursor[1]``; vehicles are released in ``veh.order`` from
    ``ls.cursor[0]``.  ``ls`` and ``veh`` are updated in place.  Checks every array
    (:func:`check_state`: O(number of fields), about 20 microseconds) and the scalars, then runs
    the kernel :func:`_advance` once for all ``n_ticks``: the per-tick loop is inside the kernel,
    so the check is paid once per call, not per tick.

    Returns
    -------
    int
        The number of vehicles that arrived.
    """
    check_state(links, nodes, ls, veh, routes)
    if isinstance(n_ticks, (bool, np.bool_)) or not isinstance(n_ticks, (int, np.integer)) or n_ticks < 0:
        raise InputError(f"n_ticks must be an integer >= 0, got {n_ticks!r}")
    step = check_scalar("dt", dt)
    if not step > 0.0:
        raise InputError(f"dt must be > 0 s, got {dt!r}")
    return int(_advance(int(n_ticks), step, links, nodes, ls, veh, routes))
