"""Check a road network for every problem at once and repair what can be repaired.

:func:`validate_network` returns a repaired :class:`~city_models.network.Network`
and plain-sentence notes of what changed; :func:`validate_city` does the same
for a :class:`~city_models.city.City` and remaps its zones, facilities and
places onto the new node and link ids.

Repairs, in order:

1. link attributes: missing/non-positive lengths from the node coordinates,
   missing speeds from the road kind (or the network's median speed), lanes
   below 1 set to 1, missing jam densities (0.2 veh/m per lane), non-positive
   or infinite backward wave speeds dropped (the triangular diagram's is used),
   capacities the fundamental diagram cannot have (``capacity / free speed >=
   jam density``, or above ``vf w kj / (vf + w)`` with a given wave speed ``w``)
   recomputed;
2. self loops dropped;
3. links shorter than ``min_link_m`` merged: a short link through a plain
   pass-through node is joined to its neighbour on the same road (lengths and
   travel times add up); the remaining short links are contracted (their two
   nodes become one, other links are re-pointed);
4. what is kept (``keep``): ``"all"`` (the network as given, whether or not
   every node can reach every other), ``"largest_weak"`` (the largest weakly
   connected component: islands that no road joins are dropped) or
   ``"largest_strong"`` (the largest strongly connected component, so every
   node reaches every other; the old ``keep_largest_scc=True``).  Where the
   kept network is not strongly connected a note says how many nodes lie
   outside its largest strongly connected component: trips between nodes with
   no route are counted by the twin (``trips_no_route``), never refused;
5. nodes and links renumbered densely (``node_osmid``/``link_osmid`` keep the
   source ids) and the record rebuilt with :func:`make_network`.  The source id
   of every node merged into another or dropped becomes an alias of the node
   that replaced it (the merged-into node, else the nearest remaining node):
   ``Network.alias_osmid``/``alias_node``, read by
   :func:`~city_models.network.lookup_nodes`.

Implausible attributes are refused before anything is allocated for them, with
the links named: free speeds above :data:`MAX_FREE_SPEED_KPH`, lengths above
:data:`MAX_LINK_M`, more than :data:`MAX_LANES` lanes, jam densities above
:data:`MAX_JAM_DENSITY_PER_LANE`.

Duplicate parallel links are reported and kept.  Problems that cannot be
repaired (no links, non-finite coordinates, a speed that cannot be guessed)
raise :class:`~city_models.errors.CityError` listing all of them.
"""

from __future__ import annotations

import dataclasses
import heapq
import logging
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from city_models.city import City
from city_models.errors import CityError
from city_models.network import DEFAULT_JAM_DENSITY_PER_LANE, Network, default_capacity_vph, make_network
from city_models.roads import default_speed_kph

__all__ = [
    "validate_network",
    "validate_city",
    "RepairResult",
    "repair_network",
    "KEEP_MODES",
    "resolve_keep",
    "MAX_FREE_SPEED_KPH",
    "MAX_LINK_M",
    "MAX_LANES",
    "MAX_JAM_DENSITY_PER_LANE",
]

logger = logging.getLogger(__name__)

#: what :func:`repair_network` may keep: the network as given, its largest weakly or
#: strongly connected component
KEEP_MODES = ("all", "largest_weak", "largest_strong")
#: the fastest free speed a link may have, km/h (faster: refused, the data is broken)
MAX_FREE_SPEED_KPH = 200.0
#: the longest link, metres (200 km: longer is an error in the data)
MAX_LINK_M = 200_000.0
#: the most lanes one link (one direction) may have
MAX_LANES = 20.0
#: the densest jam, vehicles per metre and lane (1 m per stopped car)
MAX_JAM_DENSITY_PER_LANE = 1.0


def resolve_keep(keep: str | None = None, keep_largest_scc: bool | None = None) -> str:
    """The keep mode from ``keep`` and/or the older ``keep_largest_scc`` flag.

    ``keep_largest_scc=True`` is ``"largest_strong"``, ``False`` is ``"all"``;
    neither given: ``"largest_strong"`` (the Python API's default since before
    ``keep`` existed; scenarios default to ``"largest_weak"``).

    Raises
    ------
    CityError
        For an unknown mode, or a flag that contradicts ``keep``.
    """
    if keep is not None and keep not in KEEP_MODES:
        raise CityError(f"repair option 'keep' must be one of {', '.join(KEEP_MODES)}, got {keep!r}.")
    if keep_largest_scc is not None and not isinstance(keep_largest_scc, (bool, np.bool_)):
        raise CityError(f"option 'keep_largest_scc' must be true or false, got {keep_largest_scc!r}.")
    legacy = None if keep_largest_scc is None else ("largest_strong" if keep_largest_scc else "all")
    if (
        keep is not None
        and legacy is not None
        and keep != legacy
        and not (keep == "largest_weak" and not keep_largest_scc)
    ):
        raise CityError(
            f"repair option 'keep: {keep}' contradicts 'keep_largest_scc: {bool(keep_largest_scc)}'; give only 'keep'."
        )
    return keep or legacy or "largest_strong"


class RepairResult(NamedTuple):
    """What :func:`repair_network` returns."""

    network: Network
    notes: list[str]
    #: old node id -> new node id (-1: dropped)
    node_map: np.ndarray
    #: old link id -> new link id (-1: dropped)
    link_map: np.ndarray
    #: new node id -> the old node id it stands for
    node_origin: np.ndarray


def _examples(ids: np.ndarray, k: int = 5) -> str:
    ids = np.asarray(ids).ravel()
    head = ", ".join(str(int(i)) for i in ids[:k])
    return head + (", ..." if ids.size > k else "")


def _plural(k: int, word: str) -> str:
    return f"{k} {word}" + ("" if k == 1 else "s")


def _fd_bad(cap: np.ndarray, vf: np.ndarray, jam: np.ndarray, wave: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        bad = ~np.isfinite(cap) | (cap <= 0) | (cap / 3600.0 / vf >= jam)
        top = vf * wave * jam / (vf + wave) * 3600.0  # the triangle's peak with the given wave speed
        return bad | (np.isfinite(wave) & (wave > 0) & (cap > top * (1.0 + 1e-9)))


class _Links:
    """Mutable link table used while repairing."""

    def __init__(self, net: Network) -> None:
        self.src = net.src.astype(np.int64).copy()
        self.dst = net.dst.astype(np.int64).copy()
        self.length = net.length_m.astype(np.float64).copy()
        self.lanes = net.lanes.astype(np.float64).copy()
        self.vf = net.free_speed_mps.astype(np.float64).copy()
        self.cap = net.capacity_vph.astype(np.float64).copy()
        self.jam = net.jam_density_vpm.astype(np.float64).copy()
        self.wave = net.wave_speed_mps.astype(np.float64).copy()
        self.prio = net.priority.copy()
        self.gs = net.green_start_s.astype(np.float64).copy()
        self.ge = net.green_end_s.astype(np.float64).copy()
        self.osmid = net.link_osmid.copy()
        self.name = net.link_name.copy()
        self.kind = net.link_kind.copy()
        self.alive = np.ones(self.src.size, dtype=bool)
        self.link_to = np.arange(self.src.size, dtype=np.int64)  # merged into


def _repair_attributes(net: Network, L: _Links, problems: list[str], notes: list[str]) -> None:
    x, y = net.x, net.y
    bad_xy = ~np.isfinite(x) | ~np.isfinite(y)
    if bad_xy.any():
        ids = np.flatnonzero(bad_xy)
        problems.append(
            f"{_plural(ids.size, 'node')} have non-finite x/y coordinates (source ids {_examples(net.node_osmid[ids])})"
        )
    bad_len = ~np.isfinite(L.length) | (L.length <= 0)
    if bad_len.any():
        ends_ok = ~bad_xy[L.src] & ~bad_xy[L.dst]
        fix = bad_len & ends_ok
        L.length[fix] = np.hypot(x[L.dst[fix]] - x[L.src[fix]], y[L.dst[fix]] - y[L.src[fix]])
        if fix.any():
            notes.append(
                f"Set the length of {_plural(int(fix.sum()), 'link')} with a missing or non-positive length "
                f"to the straight-line distance between their nodes (links {_examples(np.flatnonzero(fix))})."
            )
        stuck = bad_len & ~ends_ok
        if stuck.any():
            problems.append(
                f"{_plural(int(stuck.sum()), 'link')} have a missing or non-positive length and no node "
                f"coordinates to measure it from (links {_examples(np.flatnonzero(stuck))})"
            )
    _refuse_implausible(net, L, problems)
    bad_v = ~np.isfinite(L.vf) | (L.vf <= 0)
    if bad_v.any():
        nonpos = np.isfinite(L.vf) & (L.vf <= 0)
        if nonpos.any():
            notes.append(
                f"{_plural(int(nonpos.sum()), 'link')} had a zero or negative free speed, which is read as missing "
                f"(links {_examples(np.flatnonzero(nonpos))})."
            )
        good = ~bad_v
        median = float(np.median(L.vf[good])) if good.any() else np.nan
        by_kind, by_median, stuck_kinds = [], [], []
        for i in np.flatnonzero(bad_v):
            kph = default_speed_kph(L.kind[i])
            if kph is not None:
                L.vf[i] = kph / 3.6
                by_kind.append(i)
            elif np.isfinite(median):
                L.vf[i] = median
                by_median.append(i)
            else:
                stuck_kinds.append(i)
        if by_kind:
            kinds = sorted({str(L.kind[i]) for i in by_kind})
            notes.append(
                f"Filled the missing free speed of {_plural(len(by_kind), 'link')} from their road kind "
                f"({', '.join(kinds)})."
            )
        if by_median:
            notes.append(
                f"Filled the missing free speed of {_plural(len(by_median), 'link')} of unknown road kind with "
                f"the network's median speed ({median * 3.6:.0f} km/h)."
            )
        if stuck_kinds:
            kinds = sorted({repr(str(L.kind[i])) for i in stuck_kinds})
            problems.append(
                f"{_plural(len(stuck_kinds), 'link')} have no usable free speed and no default exists for their "
                f"road kind ({', '.join(kinds)}) nor any other link's speed to borrow (links {_examples(np.array(stuck_kinds))})"
            )
    bad_lanes = ~np.isfinite(L.lanes) | (L.lanes < 1)
    if bad_lanes.any():
        L.lanes[bad_lanes] = 1.0
        notes.append(
            f"Set lanes to 1 on {_plural(int(bad_lanes.sum()), 'link')} that had zero, fewer than one or no lanes."
        )
    bad_jam = ~np.isfinite(L.jam) | (L.jam <= 0)
    if bad_jam.any():
        L.jam[bad_jam] = DEFAULT_JAM_DENSITY_PER_LANE * L.lanes[bad_jam]
        notes.append(
            f"Set the jam density of {_plural(int(bad_jam.sum()), 'link')} with a missing or non-positive value "
            f"to {DEFAULT_JAM_DENSITY_PER_LANE} veh/m per lane."
        )
    bad_wave = (L.wave != 0) & ~(np.isfinite(L.wave) & (L.wave > 0))
    if bad_wave.any():
        L.wave[bad_wave] = 0.0
        notes.append(
            f"Dropped the non-positive or infinite backward wave speed (wave_speed) of "
            f"{_plural(int(bad_wave.sum()), 'link')}; they use their triangular diagram's "
            f"(links {_examples(np.flatnonzero(bad_wave))})."
        )
    _repair_fd(L, notes, np.ones(L.src.size, dtype=bool))


def _refuse_implausible(net: Network, L: _Links, problems: list[str]) -> None:
    """Problems for attributes no road has (they would break the run or make it
    allocate without bound): named with link ids and source way ids.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        checks = (
            (
                np.isfinite(L.vf) & (L.vf * 3.6 > MAX_FREE_SPEED_KPH),
                L.vf * 3.6,
                f"a free speed above {MAX_FREE_SPEED_KPH:g} km/h",
                "km/h",
            ),
            (np.isfinite(L.length) & (L.length > MAX_LINK_M), L.length, f"a length above {MAX_LINK_M:g} m", "m"),
            (np.isfinite(L.lanes) & (L.lanes > MAX_LANES), L.lanes, f"more than {MAX_LANES:g} lanes", "lanes"),
            (
                np.isfinite(L.jam) & (L.jam / np.maximum(L.lanes, 1.0) > MAX_JAM_DENSITY_PER_LANE),
                L.jam / np.maximum(L.lanes, 1.0),
                f"a jam density above {MAX_JAM_DENSITY_PER_LANE:g} veh/m per lane",
                "veh/m per lane",
            ),
        )
    for bad, value, what, unit in checks:
        if bad.any():
            ids = np.flatnonzero(bad)
            ways = L.osmid[ids[:5]]
            src = f"; source ways {_examples(ways)}" if np.any(ways >= 0) else ""
            problems.append(
                f"{_plural(ids.size, 'link')} have {what}, which no road has (links {_examples(ids)}: "
                f"{', '.join(f'{float(v):g}' for v in value[ids[:5]])} {unit}{src})"
            )


def _repair_fd(L: _Links, notes: list[str], mask: np.ndarray) -> None:
    with np.errstate(invalid="ignore"):
        bad = _fd_bad(L.cap, L.vf, L.jam, L.wave) & mask & np.isfinite(L.vf) & (L.vf > 0)
    if bad.any():
        L.cap[bad] = default_capacity_vph(L.lanes[bad], L.vf[bad], L.jam[bad], L.wave[bad])
        notes.append(
            f"Recomputed the capacity of {_plural(int(bad.sum()), 'link')} whose capacity was missing, non-positive "
            "or impossible for its fundamental diagram (capacity / free speed >= jam density, or above the "
            "triangle of a given wave speed), using a 1 s reaction time or the given wave speed "
            f"(links {_examples(np.flatnonzero(bad))})."
        )


def _merge_pass_through(
    L: _Links,
    x: np.ndarray,
    y: np.ndarray,
    cycle: np.ndarray,
    min_link_m: float,
    node_dead: np.ndarray,
    via: np.ndarray | None = None,
) -> int:
    """Join short links across plain pass-through nodes; return the number of nodes removed."""
    n = x.size
    ins: list[set[int]] = [set() for _ in range(n)]
    outs: list[set[int]] = [set() for _ in range(n)]
    for l in np.flatnonzero(L.alive):
        outs[L.src[l]].add(int(l))
        ins[L.dst[l]].add(int(l))

    def join(l1: int, l2: int) -> None:
        # l1: a -> v, l2: v -> b  ==>  l1: a -> b
        a, v, b = L.src[l1], L.dst[l1], L.dst[l2]
        len1, len2 = L.length[l1], L.length[l2]
        tt = len1 / L.vf[l1] + len2 / L.vf[l2]
        longer = l1 if len1 >= len2 else l2
        L.kind[l1], L.name[l1], L.osmid[l1] = L.kind[longer], L.name[longer], L.osmid[longer]
        L.length[l1] = len1 + len2
        L.vf[l1] = (len1 + len2) / tt
        L.lanes[l1] = min(L.lanes[l1], L.lanes[l2])
        L.cap[l1] = min(L.cap[l1], L.cap[l2])
        L.jam[l1] = min(L.jam[l1], L.jam[l2])
        w1, w2 = L.wave[l1], L.wave[l2]  # 0: the triangular diagram's
        L.wave[l1] = w2 if w1 <= 0 else (w1 if w2 <= 0 else min(w1, w2))
        L.gs[l1], L.ge[l1] = L.gs[l2], L.ge[l2]
        L.prio[l1] = L.prio[l2]  # the rank where the joined link ends
        L.dst[l1] = b
        L.alive[l2] = False
        L.link_to[l2] = l1
        outs[v].discard(l2)
        ins[v].discard(l1)
        ins[b].discard(l2)
        ins[b].add(l1)

    def bend(v: int) -> float:
        # 0 for a straight pass-through node, up to pi for a U-turn: straight
        # nodes (shape points) are removed first, corners last
        nb = sorted({int(L.src[l]) for l in ins[v]} | {int(L.dst[l]) for l in outs[v]})
        if len(nb) != 2:
            return np.pi
        a1 = np.arctan2(y[nb[0]] - y[v], x[nb[0]] - x[v])
        a2 = np.arctan2(y[nb[1]] - y[v], x[nb[1]] - x[v])
        d = abs((a1 - a2 + np.pi) % (2 * np.pi) - np.pi)
        return float(np.pi - d) if np.isfinite(d) else np.pi

    removed = 0
    start = np.unique(np.concatenate([L.src, L.dst])[np.tile(L.alive & (L.length < min_link_m), 2)])
    work = [(bend(int(v)), int(v)) for v in start]
    heapq.heapify(work)
    while work:
        _, v = heapq.heappop(work)
        if node_dead[v] or cycle[v] > 0:
            continue
        inc = ins[v] | outs[v]
        if not any(L.length[l] < min_link_m for l in inc):
            continue
        in_from = {int(L.src[l]): l for l in ins[v]}
        out_to = {int(L.dst[l]): l for l in outs[v]}
        if len(in_from) != len(ins[v]) or len(out_to) != len(outs[v]) or v in in_from or v in out_to:
            continue
        if len(ins[v]) == 1 and len(outs[v]) == 1:
            (a,), (b,) = in_from, out_to
            if a == b:
                continue
            pairs = [(in_from[a], out_to[b])]
        elif len(ins[v]) == 2 and len(outs[v]) == 2 and set(in_from) == set(out_to):
            a, b = sorted(in_from)
            pairs = [(in_from[a], out_to[b]), (in_from[b], out_to[a])]
        else:
            continue
        ends = set()
        for l1, l2 in pairs:
            join(l1, l2)
            ends.update((int(L.src[l1]), int(L.dst[l1])))
        node_dead[v] = True
        if via is not None:
            via[v] = pairs[0][0]  # the link that now runs through v
        removed += 1
        for e in ends:
            if any(L.length[l] < min_link_m for l in ins[e] | outs[e]):
                heapq.heappush(work, (bend(e), e))
    return removed


def _contract_short(L: _Links, n: int, cycle: np.ndarray, min_link_m: float) -> tuple[np.ndarray, int, int]:
    """Contract the remaining short links; return (node -> root, links contracted, nodes merged)."""
    parent = np.arange(n, dtype=np.int64)

    def find(u: int) -> int:
        while parent[u] != u:
            parent[u] = parent[parent[u]]
            u = parent[u]
        return int(u)

    short = np.flatnonzero(L.alive & (L.length < min_link_m) & (L.src != L.dst))
    merged = 0
    for l in short[np.argsort(L.length[short], kind="stable")]:
        ru, rv = find(int(L.src[l])), find(int(L.dst[l]))
        if ru == rv:
            continue
        # a signalised node keeps its plan and position; otherwise the lower id wins
        sig_u, sig_v = cycle[ru] > 0, cycle[rv] > 0
        keep = (ru if sig_u else rv) if sig_u != sig_v else min(ru, rv)
        parent[rv if keep == ru else ru] = keep
        merged += 1
    root = np.array([find(u) for u in range(n)], dtype=np.int64)
    if merged == 0:
        return root, 0, 0
    old_dst = L.dst.copy()
    L.src = root[L.src]
    L.dst = root[L.dst]
    loops = L.alive & (L.src == L.dst)
    L.alive[loops] = False
    L.link_to[loops] = -1
    moved = L.alive & (old_dst != L.dst)
    for l in np.flatnonzero(moved):
        r, o = L.dst[l], old_dst[l]
        if cycle[r] > 0 and (cycle[o] != cycle[r] or L.ge[l] <= L.gs[l]):
            L.gs[l], L.ge[l] = 0.0, cycle[r]
    return root, int(loops.sum()), merged


def _components(
    net: Network, L: _Links, live_node: np.ndarray, alive: np.ndarray, keep_mode: str, notes: list[str]
) -> np.ndarray:
    """The nodes to keep (bool per node) under ``keep_mode``; notes what is dropped,
    and what cannot be reached where the network kept is not strongly connected.
    """
    n = live_node.size
    if alive.size:
        adj = sp.csr_matrix((np.ones(alive.size), (L.src[alive], L.dst[alive])), shape=(n, n))
        n_comp, labels = connected_components(adj, directed=True, connection="strong")
        n_weak, weak = connected_components(adj, directed=True, connection="weak")
    else:
        n_comp, labels = n, np.arange(n)
        n_weak, weak = n, np.arange(n)
    sizes = np.bincount(labels[live_node], minlength=n_comp)
    in_strong = (labels == int(np.argmax(sizes))) & live_node if n else np.zeros(0, bool)
    linked = np.zeros(n, dtype=bool)
    linked[L.src[alive]] = True
    linked[L.dst[alive]] = True
    wsizes = np.bincount(weak[live_node & linked], minlength=n_weak)
    in_weak = (weak == int(np.argmax(wsizes))) & live_node & linked if n else np.zeros(0, bool)
    if keep_mode == "largest_strong":
        if int(in_strong.sum()) < 2:
            raise CityError(
                "the network cannot be repaired: after repairs no two nodes can reach each other "
                f"({_plural(int(live_node.sum()), 'node')} and {_plural(alive.size, 'link')} left); "
                "keep: all or largest_weak runs a network that is not strongly connected as it is."
            )
        keep = in_strong
        why = (
            "cannot be reached from, or cannot reach, the rest of the network, keeping the largest strongly "
            f"connected component of {int(keep.sum())} nodes"
        )
    elif keep_mode == "largest_weak":
        if int(in_weak.sum()) < 2:
            raise CityError(
                f"the network cannot be repaired: no links are left ({_plural(int(live_node.sum()), 'node')})."
            )
        keep = in_weak
        why = (
            f"are not joined by any road to the rest of the network, keeping its largest connected part of "
            f"{int(keep.sum())} nodes"
        )
    else:
        if alive.size == 0:
            raise CityError(
                f"the network cannot be repaired: no links are left ({_plural(int(live_node.sum()), 'node')})."
            )
        keep = live_node
        why = ""
    outside = live_node & ~keep
    if outside.any():
        notes.append(
            f"Dropped {_plural(int(outside.sum()), 'node')} that {why} "
            f"(dropped source ids {_examples(net.node_osmid[np.flatnonzero(outside)])}; keep: {keep_mode})."
        )
    if keep_mode != "largest_strong":
        sub = keep & ~in_strong
        if sub.any():
            notes.append(
                f"The network is not strongly connected: {_plural(int(sub.sum()), 'node')} are outside the largest "
                f"strongly connected component of {int(in_strong.sum())} nodes (source ids "
                f"{_examples(net.node_osmid[np.flatnonzero(sub)])}); it runs as it is (keep: {keep_mode}), and trips "
                "that cannot reach their destination are counted as trips_no_route."
            )
    return keep


def _aliases(
    net: Network,
    L: _Links,
    keep: np.ndarray,
    new_node: np.ndarray,
    node_map: np.ndarray,
    pass_dead: np.ndarray,
    via: np.ndarray,
    link_to: np.ndarray,
    root: np.ndarray,
    notes: list[str],
) -> tuple[np.ndarray, np.ndarray]:
    """Source ids of nodes merged away or dropped -> the new node standing for each:
    the node merged into; for a pass-through node, the nearer end of the link joined
    through it; else the nearest kept node.  The input's own aliases are carried.
    """
    from scipy.spatial import cKDTree

    n = keep.size
    target = new_node.copy()
    merged = (target < 0) & ~pass_dead & (node_map >= 0)
    target[merged] = node_map[merged]
    dist = np.zeros(n)
    for v in np.flatnonzero(pass_dead & (via >= 0)):
        l = int(link_to[via[v]])
        if l < 0 or not L.alive[l]:
            continue
        ends = [int(e) for e in (L.src[l], L.dst[l]) if new_node[e] >= 0]
        if ends:
            d = [float(np.hypot(net.x[e] - net.x[v], net.y[e] - net.y[v])) for e in ends]
            j = int(np.argmin(d))
            target[v], dist[v] = new_node[ends[j]], d[j]
    rest = np.flatnonzero(target < 0)
    kept = np.flatnonzero(keep)
    if rest.size and kept.size:
        tree = cKDTree(np.column_stack([net.x[kept], net.y[kept]]))
        d, j = tree.query(np.column_stack([net.x[rest], net.y[rest]]))
        target[rest] = new_node[kept[j]]
        dist[rest] = d
    moved = np.flatnonzero(~keep)
    old_alias = np.asarray(net.alias_osmid, np.int64)
    old_target = np.asarray(net.alias_node, np.int64)
    ids = np.concatenate([net.node_osmid[moved], old_alias])
    to = np.concatenate([target[moved], target[old_target] if old_target.size else np.zeros(0, np.int64)])
    own = set(net.node_osmid[kept].tolist()) if ids.size else set()
    use = np.array([int(i) not in own for i in ids], dtype=bool) if ids.size else np.zeros(0, bool)
    ids, to = ids[use], to[use]
    order = np.argsort(ids, kind="stable")
    ids, to = ids[order], to[order]
    first = np.r_[True, ids[1:] != ids[:-1]] if ids.size else np.zeros(0, bool)
    ids, to = ids[first], to[first]
    if moved.size:
        by_via = np.zeros(n, dtype=bool)
        by_via[np.flatnonzero(pass_dead & (via >= 0))] = True
        by_via &= (target >= 0) & ~np.isin(np.arange(n), rest)
        contracted = int((merged & ~keep).sum())
        through = int(by_via.sum())
        other = int(rest.size)
        parts = []
        if contracted:
            parts.append(f"{contracted} merged into a neighbour (short links contracted)")
        if through:
            parts.append(
                f"{through} pass-through nodes of merged links (to the nearer end of the link joined through them, "
                f"at most {float(dist[by_via].max()):.0f} m away)"
            )
        if other:
            parts.append(
                f"{other} dropped (to the nearest remaining node, at most {float(dist[rest].max()):.0f} m away)"
            )
        notes.append(
            f"Remapped {_plural(int(moved.size), 'source node id')} onto the node that replaced each: "
            + "; ".join(parts)
            + ". Trips, sensors, stations and interventions may still name them."
        )
    return ids, to


def repair_network(
    net: Network, *, min_link_m: float = 10.0, keep_largest_scc: bool | None = None, keep: str | None = None
) -> RepairResult:
    """Validate and repair a network, keeping the old -> new id maps.

    The engine behind :func:`validate_network` and :func:`validate_city`; see
    the module docstring for what is checked and repaired.

    Parameters
    ----------
    net : Network
        The network to check.
    min_link_m : float
        Links shorter than this are merged away (0 disables merging).
    keep_largest_scc : bool, optional
        The older flag: true is ``keep="largest_strong"``, false ``keep="all"``.
    keep : str, optional
        ``"all"``, ``"largest_weak"`` or ``"largest_strong"`` (see
        :func:`resolve_keep` for the default).

    Returns
    -------
    RepairResult
        The new network, notes, and id maps.

    Raises
    ------
    CityError
        Listing every problem that cannot be repaired.
    """
    keep_mode = resolve_keep(keep, keep_largest_scc)
    n, m = net.n_nodes, net.n_links
    problems: list[str] = []
    notes: list[str] = []
    if n == 0:
        problems.append("the network has no nodes")
    if m == 0:
        problems.append("the network has no links")
    L = _Links(net)
    cycle = net.signal_cycle_s.astype(np.float64).copy()
    offset = net.signal_offset_s.astype(np.float64).copy()
    bad_cycle = ~np.isfinite(cycle) | (cycle < 0)
    if bad_cycle.any():
        cycle[bad_cycle] = 0.0
        notes.append(
            f"Removed the signal plan of {_plural(int(bad_cycle.sum()), 'node')} with a missing or negative cycle."
        )
    offset[~np.isfinite(offset)] = 0.0
    if m:
        _repair_attributes(net, L, problems, notes)
    if problems:
        raise CityError("the network cannot be repaired: " + "; ".join(problems) + ".")

    loops = L.src == L.dst
    if loops.any():
        L.alive[loops] = False
        L.link_to[loops] = -1
        notes.append(
            f"Dropped {_plural(int(loops.sum()), 'self-loop link')} (links {_examples(np.flatnonzero(loops))})."
        )

    node_dead = np.zeros(n, dtype=bool)
    via = np.full(n, -1, dtype=np.int64)  # removed pass-through node -> the link joined through it
    pass_dead = node_dead
    root = np.arange(n, dtype=np.int64)
    if min_link_m > 0:
        n_short = int((L.alive & (L.length < min_link_m)).sum())
        removed = _merge_pass_through(L, net.x, net.y, cycle, min_link_m, node_dead, via)
        if removed:
            notes.append(
                f"Merged links shorter than {min_link_m:g} m into the next link on the same road, "
                f"removing {_plural(removed, 'pass-through node')}."
            )
        root, n_contracted, n_merged = _contract_short(L, n, cycle, min_link_m)
        if n_contracted:
            notes.append(
                f"Contracted {_plural(n_contracted, 'link')} shorter than {min_link_m:g} m by merging their end "
                f"nodes ({_plural(n_merged, 'node')} merged into a neighbour)."
            )
        pass_dead = node_dead.copy()
        node_dead |= root != np.arange(n)
        if n_short:
            _repair_fd(L, notes, L.alive)
        logger.debug("%d short links before merging", n_short)

    alive = np.flatnonzero(L.alive)
    pair = L.src[alive] * max(n, 1) + L.dst[alive]
    _, counts = np.unique(pair, return_counts=True)
    n_dup = int((counts - 1).sum())
    if n_dup:
        notes.append(f"Kept {_plural(n_dup, 'duplicate parallel link')} (same start and end node as another link).")

    live_node = ~node_dead
    keep = _components(net, L, live_node, alive, keep_mode, notes)

    new_node = np.full(n, -1, dtype=np.int64)
    new_node[keep] = np.arange(int(keep.sum()))
    link_keep = L.alive & keep[L.src] & keep[L.dst]
    new_link = np.full(m, -1, dtype=np.int64)
    new_link[link_keep] = np.arange(int(link_keep.sum()))

    # resolve the maps through merges
    to = L.link_to.copy()
    for _ in range(m):
        nxt = np.where(to >= 0, to[np.maximum(to, 0)], -1)
        if np.array_equal(nxt, to):
            break
        to = nxt
    link_map = np.where(to >= 0, new_link[np.maximum(to, 0)], -1)
    node_map = np.where(pass_dead, -1, new_node[root])
    origin = np.flatnonzero(keep)
    alias_osmid, alias_node = _aliases(net, L, keep, new_node, node_map, pass_dead, via, to, root, notes)

    # links into unsignalised nodes never keep a green window
    no_sig = cycle[L.dst] <= 0
    L.gs[no_sig], L.ge[no_sig] = 0.0, 0.0
    k = link_keep
    out = make_network(
        x=net.x[keep],
        y=net.y[keep],
        lon=net.lon[keep],
        lat=net.lat[keep],
        node_osmid=net.node_osmid[keep],
        signal_cycle_s=cycle[keep],
        signal_offset_s=offset[keep],
        src=new_node[L.src[k]],
        dst=new_node[L.dst[k]],
        length_m=L.length[k],
        lanes=L.lanes[k],
        free_speed_mps=L.vf[k],
        capacity_vph=L.cap[k],
        jam_density_vpm=L.jam[k],
        wave_speed_mps=L.wave[k],
        priority=L.prio[k],
        green_start_s=L.gs[k],
        green_end_s=L.ge[k],
        link_osmid=L.osmid[k],
        link_name=list(L.name[k]),
        link_kind=list(L.kind[k]),
        alias_osmid=alias_osmid,
        alias_node=alias_node,
    )
    if out.n_links != m or out.n_nodes != n:
        logger.info("validated network: %d -> %d nodes, %d -> %d links", n, out.n_nodes, m, out.n_links)
    return RepairResult(network=out, notes=notes, node_map=node_map, link_map=link_map, node_origin=origin)


def validate_network(
    net: Network, *, min_link_m: float = 10.0, keep_largest_scc: bool | None = None, keep: str | None = None
) -> tuple[Network, list[str]]:
    """Check a network for every problem at once and repair what can be repaired.

    Parameters
    ----------
    net : Network
        The network to check.
    min_link_m : float
        Links shorter than this (metres) are merged away; 0 disables merging.
    keep_largest_scc : bool, optional
        The older flag: true keeps only the largest strongly connected
        component (``keep="largest_strong"``), false keeps everything.
    keep : str, optional
        ``"all"``, ``"largest_weak"`` or ``"largest_strong"`` (the default).

    Returns
    -------
    tuple[Network, list[str]]
        The repaired, densely renumbered network and plain-sentence notes of
        what changed (empty when nothing did).

    Raises
    ------
    CityError
        Listing every problem that cannot be repaired (no links, non-finite
        coordinates, a speed that cannot be guessed, ...).
    """
    res = repair_network(net, min_link_m=min_link_m, keep_largest_scc=keep_largest_scc, keep=keep)
    return res.network, res.notes


def _remap_place(value, node_map: np.ndarray, link_map: np.ndarray):
    def remap(ids, table):
        ids = np.asarray(ids, dtype=np.int64).ravel()
        ok = (ids >= 0) & (ids < table.size)
        new = table[ids[ok]]
        return np.unique(new[new >= 0])

    if isinstance(value, dict):
        out = {}
        for key, ids in value.items():
            table = node_map if key == "nodes" else link_map
            out[key] = remap(ids, table)
        return out, all(v.size == 0 for v in out.values())
    new = remap(value, link_map)
    return new, new.size == 0


def validate_city(
    city: City, *, min_link_m: float = 10.0, keep_largest_scc: bool | None = None, keep: str | None = None
) -> City:
    """Validate and repair a city's network and remap everything that points into it.

    Zones keep their totals; ``node_zone`` follows the surviving nodes.
    Facilities on dropped nodes move to the nearest surviving node.  Places
    are link-id arrays (or dicts with ``'links'``/``'nodes'`` arrays); those
    whose links all vanished are dropped.  Every change is a note appended to
    :attr:`City.notes`.

    Parameters
    ----------
    city : City
        The city to check.
    min_link_m, keep_largest_scc, keep
        As for :func:`validate_network`.

    Returns
    -------
    City
        A new city; the input is not changed.
    """
    net = city.network
    res = repair_network(net, min_link_m=min_link_m, keep_largest_scc=keep_largest_scc, keep=keep)
    notes = list(res.notes)
    new = res.network
    z = city.zones
    if z.node_zone.shape[0] != net.n_nodes:
        raise CityError(
            f"city {city.name!r}: zones.node_zone has {z.node_zone.shape[0]} entries but the network has "
            f"{net.n_nodes} nodes."
        )
    node_zone = np.asarray(z.node_zone)[res.node_origin].astype(np.int32)
    empty = np.setdiff1d(np.setdiff1d(np.arange(z.n_zones), node_zone), np.setdiff1d(np.arange(z.n_zones), z.node_zone))
    if empty.size:
        notes.append(f"{_plural(int(empty.size), 'zone')} no longer contain any network node ({_examples(empty)}).")
    zones = dataclasses.replace(z, node_zone=node_zone)

    facilities = []
    for f in city.facilities:
        old = int(f.node)
        target = int(res.node_map[old]) if 0 <= old < net.n_nodes else -1
        if target < 0:
            if not 0 <= old < net.n_nodes:
                raise CityError(f"city {city.name!r}: facility {f.name!r} is on node {old}, which does not exist.")
            d2 = (new.x - net.x[old]) ** 2 + (new.y - net.y[old]) ** 2
            target = int(np.argmin(d2))
            notes.append(
                f"Moved {f.kind} {f.name!r} to the nearest remaining node ({np.sqrt(d2[target]):.0f} m away) "
                "because its node was removed."
            )
        facilities.append(dataclasses.replace(f, node=target) if target != f.node else f)

    places = {}
    for name, value in city.places.items():
        mapped, gone = _remap_place(value, res.node_map, res.link_map)
        if gone:
            notes.append(f"Dropped place {name!r}: none of its links or nodes remain after validation.")
            continue
        places[name] = mapped
    for note in notes:
        logger.info("%s: %s", city.name, note)
    return City(
        name=city.name,
        network=new,
        zones=zones,
        facilities=tuple(facilities),
        notes=tuple(city.notes) + tuple(notes),
        places=places,
    )
