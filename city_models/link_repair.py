"""The mutable link table used while repairing a network, and the repairs done on it.

:func:`~city_models.validate.repair_network` copies a network's links into a
:class:`LinkTable`, repairs missing or impossible attributes
(:func:`repair_attributes`, refusing implausible ones), then merges links
shorter than the limit: across plain pass-through nodes first
(:func:`merge_pass_through`), then by contracting the rest
(:func:`contract_short`).
"""

from __future__ import annotations

import heapq

import numpy as np

from city_models.network import DEFAULT_JAM_DENSITY_PER_LANE, Network, default_capacity_vph
from city_models.roads import default_speed_kph

__all__ = [
    "MAX_FREE_SPEED_KPH",
    "MAX_LINK_M",
    "MAX_LANES",
    "MAX_JAM_DENSITY_PER_LANE",
    "LinkTable",
    "repair_attributes",
    "repair_fd",
    "merge_pass_through",
    "contract_short",
    "examples",
    "plural",
]

#: the fastest free speed a link may have, km/h (faster: refused, the data is broken)
MAX_FREE_SPEED_KPH = 200.0
#: the longest link, metres (200 km: longer is an error in the data)
MAX_LINK_M = 200_000.0
#: the most lanes one link (one direction) may have
MAX_LANES = 20.0
#: the densest jam, vehicles per metre and lane (1 m per stopped car)
MAX_JAM_DENSITY_PER_LANE = 1.0


def examples(ids: np.ndarray, k: int = 5) -> str:
    """The first ``k`` ids as a comma-separated list (``...`` where there are more), for notes."""
    ids = np.asarray(ids).ravel()
    head = ", ".join(str(int(i)) for i in ids[:k])
    return head + (", ..." if ids.size > k else "")


def plural(k: int, word: str) -> str:
    """``"1 link"``, ``"2 links"``: a count with its noun."""
    return f"{k} {word}" + ("" if k == 1 else "s")


def _fd_bad(cap: np.ndarray, vf: np.ndarray, jam: np.ndarray, wave: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        bad = ~np.isfinite(cap) | (cap <= 0) | (cap / 3600.0 / vf >= jam)
        top = vf * wave * jam / (vf + wave) * 3600.0  # the triangle's peak with the given wave speed
        out: np.ndarray = bad | (np.isfinite(wave) & (wave > 0) & (cap > top * (1.0 + 1e-9)))
        return out


class LinkTable:
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


def repair_attributes(net: Network, L: LinkTable, problems: list[str], notes: list[str]) -> None:
    """Repair missing or impossible link attributes in place (step 1 of the repairs).

    Parameters
    ----------
    net : Network
        The network being repaired (node coordinates and ids).
    L : LinkTable
        Its link table, changed in place.
    problems : list[str]
        What cannot be repaired is appended here.
    notes : list[str]
        What was repaired is appended here.
    """
    _repair_lengths(net, L, problems, notes)
    _refuse_implausible(net, L, problems)
    _fill_speeds(L, problems, notes)
    _repair_lanes_jam_wave(L, notes)
    repair_fd(L, notes, np.ones(L.src.size, dtype=bool))


def _repair_lengths(net: Network, L: LinkTable, problems: list[str], notes: list[str]) -> None:
    """Lengths from the node coordinates where missing; nodes without finite coordinates are problems."""
    x, y = net.x, net.y
    bad_xy = ~np.isfinite(x) | ~np.isfinite(y)
    if bad_xy.any():
        ids = np.flatnonzero(bad_xy)
        problems.append(
            f"{plural(ids.size, 'node')} have non-finite x/y coordinates (source ids {examples(net.node_osmid[ids])})"
        )
    bad_len = ~np.isfinite(L.length) | (L.length <= 0)
    if bad_len.any():
        ends_ok = ~bad_xy[L.src] & ~bad_xy[L.dst]
        fix = bad_len & ends_ok
        L.length[fix] = np.hypot(x[L.dst[fix]] - x[L.src[fix]], y[L.dst[fix]] - y[L.src[fix]])
        if fix.any():
            notes.append(
                f"Set the length of {plural(int(fix.sum()), 'link')} with a missing or non-positive length "
                f"to the straight-line distance between their nodes (links {examples(np.flatnonzero(fix))})."
            )
        stuck = bad_len & ~ends_ok
        if stuck.any():
            problems.append(
                f"{plural(int(stuck.sum()), 'link')} have a missing or non-positive length and no node "
                f"coordinates to measure it from (links {examples(np.flatnonzero(stuck))})"
            )


def _fill_speeds(L: LinkTable, problems: list[str], notes: list[str]) -> None:
    """Missing free speeds from the road kind, else the network's median speed."""
    bad_v = ~np.isfinite(L.vf) | (L.vf <= 0)
    if bad_v.any():
        nonpos = np.isfinite(L.vf) & (L.vf <= 0)
        if nonpos.any():
            notes.append(
                f"{plural(int(nonpos.sum()), 'link')} had a zero or negative free speed, which is read as missing "
                f"(links {examples(np.flatnonzero(nonpos))})."
            )
        good = ~bad_v
        median = float(np.median(L.vf[good])) if good.any() else np.nan
        by_kind: list[int] = []
        by_median: list[int] = []
        stuck_kinds: list[int] = []
        for i in np.flatnonzero(bad_v).tolist():
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
                f"Filled the missing free speed of {plural(len(by_kind), 'link')} from their road kind "
                f"({', '.join(kinds)})."
            )
        if by_median:
            notes.append(
                f"Filled the missing free speed of {plural(len(by_median), 'link')} of unknown road kind with "
                f"the network's median speed ({median * 3.6:.0f} km/h)."
            )
        if stuck_kinds:
            kinds = sorted({repr(str(L.kind[i])) for i in stuck_kinds})
            problems.append(
                f"{plural(len(stuck_kinds), 'link')} have no usable free speed and no default exists for their "
                f"road kind ({', '.join(kinds)}) nor any other link's speed to borrow (links {examples(np.array(stuck_kinds))})"
            )


def _repair_lanes_jam_wave(L: LinkTable, notes: list[str]) -> None:
    """Lanes below 1 set to 1, missing jam densities filled, bad wave speeds dropped."""
    bad_lanes = ~np.isfinite(L.lanes) | (L.lanes < 1)
    if bad_lanes.any():
        L.lanes[bad_lanes] = 1.0
        notes.append(
            f"Set lanes to 1 on {plural(int(bad_lanes.sum()), 'link')} that had zero, fewer than one or no lanes."
        )
    bad_jam = ~np.isfinite(L.jam) | (L.jam <= 0)
    if bad_jam.any():
        L.jam[bad_jam] = DEFAULT_JAM_DENSITY_PER_LANE * L.lanes[bad_jam]
        notes.append(
            f"Set the jam density of {plural(int(bad_jam.sum()), 'link')} with a missing or non-positive value "
            f"to {DEFAULT_JAM_DENSITY_PER_LANE} veh/m per lane."
        )
    bad_wave = (L.wave != 0) & ~(np.isfinite(L.wave) & (L.wave > 0))
    if bad_wave.any():
        L.wave[bad_wave] = 0.0
        notes.append(
            f"Dropped the non-positive or infinite backward wave speed (wave_speed) of "
            f"{plural(int(bad_wave.sum()), 'link')}; they use their triangular diagram's "
            f"(links {examples(np.flatnonzero(bad_wave))})."
        )


def _refuse_implausible(net: Network, L: LinkTable, problems: list[str]) -> None:
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
            src = f"; source ways {examples(ways)}" if np.any(ways >= 0) else ""
            problems.append(
                f"{plural(ids.size, 'link')} have {what}, which no road has (links {examples(ids)}: "
                f"{', '.join(f'{float(v):g}' for v in value[ids[:5]])} {unit}{src})"
            )


def repair_fd(L: LinkTable, notes: list[str], mask: np.ndarray) -> None:
    """Recompute capacities the fundamental diagram cannot have, on the links in ``mask``."""
    with np.errstate(invalid="ignore"):
        bad = _fd_bad(L.cap, L.vf, L.jam, L.wave) & mask & np.isfinite(L.vf) & (L.vf > 0)
    if bad.any():
        L.cap[bad] = default_capacity_vph(L.lanes[bad], L.vf[bad], L.jam[bad], L.wave[bad])
        notes.append(
            f"Recomputed the capacity of {plural(int(bad.sum()), 'link')} whose capacity was missing, non-positive "
            "or impossible for its fundamental diagram (capacity / free speed >= jam density, or above the "
            "triangle of a given wave speed), using a 1 s reaction time or the given wave speed "
            f"(links {examples(np.flatnonzero(bad))})."
        )


def merge_pass_through(
    L: LinkTable,
    *,
    x: np.ndarray,
    y: np.ndarray,
    cycle: np.ndarray,
    min_link_m: float,
    node_dead: np.ndarray,
    via: np.ndarray | None = None,
) -> int:
    """Join short links across plain pass-through nodes; return the number of nodes removed.

    Parameters
    ----------
    L : LinkTable
        The link table, changed in place.
    x, y : numpy.ndarray
        Node coordinates (straight pass-through nodes are removed first).
    cycle : numpy.ndarray
        Signal cycle per node; signalised nodes are never removed.
    min_link_m : float
        Links shorter than this are joined to their neighbour.
    node_dead : numpy.ndarray
        Bool per node, set for each node removed.
    via : numpy.ndarray, optional
        Per node, set to the link that now runs through each node removed.

    Returns
    -------
    int
        The number of nodes removed.
    """
    n = x.size
    ins: list[set[int]] = [set() for _ in range(n)]
    outs: list[set[int]] = [set() for _ in range(n)]
    for lk in np.flatnonzero(L.alive):
        outs[L.src[lk]].add(int(lk))
        ins[L.dst[lk]].add(int(lk))

    def join(l1: int, l2: int) -> None:
        # l1: a -> v, l2: v -> b  ==>  l1: a -> b
        v, b = L.dst[l1], L.dst[l2]
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
        nb = sorted({int(L.src[lk]) for lk in ins[v]} | {int(L.dst[lk]) for lk in outs[v]})
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
        if not any(L.length[lk] < min_link_m for lk in ins[v] | outs[v]):
            continue
        pairs = _pass_through_pairs(L, v, ins[v], outs[v])
        if not pairs:
            continue
        ends: set[int] = set()
        for l1, l2 in pairs:
            join(l1, l2)
            ends.update((int(L.src[l1]), int(L.dst[l1])))
        node_dead[v] = True
        if via is not None:
            via[v] = pairs[0][0]  # the link that now runs through v
        removed += 1
        for e in ends:
            if any(L.length[lk] < min_link_m for lk in ins[e] | outs[e]):
                heapq.heappush(work, (bend(e), e))
    return removed


def _pass_through_pairs(L: LinkTable, v: int, ins: set[int], outs: set[int]) -> list[tuple[int, int]]:
    """The (in, out) link pairs to join across node ``v``: one pair through a one-way
    pass-through node, two through a two-way one; none where ``v`` is anything else.
    """
    in_from = {int(L.src[lk]): lk for lk in ins}
    out_to = {int(L.dst[lk]): lk for lk in outs}
    if len(in_from) != len(ins) or len(out_to) != len(outs) or v in in_from or v in out_to:
        return []
    if len(ins) == 1 and len(outs) == 1:
        (a,), (b,) = in_from, out_to
        if a == b:
            return []
        return [(in_from[a], out_to[b])]
    if len(ins) == 2 and len(outs) == 2 and set(in_from) == set(out_to):
        a, b = sorted(in_from)
        return [(in_from[a], out_to[b]), (in_from[b], out_to[a])]
    return []


def contract_short(L: LinkTable, *, n: int, cycle: np.ndarray, min_link_m: float) -> tuple[np.ndarray, int, int]:
    """Contract the remaining short links: their two end nodes become one.

    Parameters
    ----------
    L : LinkTable
        The link table, changed in place.
    n : int
        The number of nodes.
    cycle : numpy.ndarray
        Signal cycle per node; a signalised node keeps its plan and position.
    min_link_m : float
        Links shorter than this are contracted.

    Returns
    -------
    tuple[numpy.ndarray, int, int]
        Node -> the node it was merged into (itself if none), the number of
        links contracted and the number of nodes merged.
    """
    parent = np.arange(n, dtype=np.int64)

    def find(u: int) -> int:
        while parent[u] != u:
            parent[u] = parent[parent[u]]
            u = parent[u]
        return int(u)

    short = np.flatnonzero(L.alive & (L.length < min_link_m) & (L.src != L.dst))
    merged = 0
    for lk in short[np.argsort(L.length[short], kind="stable")]:
        ru, rv = find(int(L.src[lk])), find(int(L.dst[lk]))
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
    for lk in np.flatnonzero(moved):
        r, o = L.dst[lk], old_dst[lk]
        if cycle[r] > 0 and (cycle[o] != cycle[r] or L.ge[lk] <= L.gs[lk]):
            L.gs[lk], L.ge[lk] = 0.0, cycle[r]
    return root, int(loops.sum()), merged
