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
import logging
from typing import Any, NamedTuple

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from city_models.city import City
from city_models.errors import CityError
from city_models.link_repair import (
    MAX_FREE_SPEED_KPH,
    MAX_JAM_DENSITY_PER_LANE,
    MAX_LANES,
    MAX_LINK_M,
    LinkTable,
    contract_short,
    examples,
    merge_pass_through,
    plural,
    repair_attributes,
    repair_fd,
)
from city_models.network import Network, make_network

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


def _components(
    net: Network, L: LinkTable, live_node: np.ndarray, alive: np.ndarray, keep_mode: str, notes: list[str]
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
                f"({plural(int(live_node.sum()), 'node')} and {plural(alive.size, 'link')} left); "
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
                f"the network cannot be repaired: no links are left ({plural(int(live_node.sum()), 'node')})."
            )
        keep = in_weak
        why = (
            f"are not joined by any road to the rest of the network, keeping its largest connected part of "
            f"{int(keep.sum())} nodes"
        )
    else:
        if alive.size == 0:
            raise CityError(
                f"the network cannot be repaired: no links are left ({plural(int(live_node.sum()), 'node')})."
            )
        keep = live_node
        why = ""
    outside = live_node & ~keep
    if outside.any():
        notes.append(
            f"Dropped {plural(int(outside.sum()), 'node')} that {why} "
            f"(dropped source ids {examples(net.node_osmid[np.flatnonzero(outside)])}; keep: {keep_mode})."
        )
    if keep_mode != "largest_strong":
        sub = keep & ~in_strong
        if sub.any():
            notes.append(
                f"The network is not strongly connected: {plural(int(sub.sum()), 'node')} are outside the largest "
                f"strongly connected component of {int(in_strong.sum())} nodes (source ids "
                f"{examples(net.node_osmid[np.flatnonzero(sub)])}); it runs as it is (keep: {keep_mode}), and trips "
                "that cannot reach their destination are counted as trips_no_route."
            )
    return keep


def _aliases(
    net: Network,
    L: LinkTable,
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
        lk = int(link_to[via[v]])
        if lk < 0 or not L.alive[lk]:
            continue
        ends = [int(e) for e in (L.src[lk], L.dst[lk]) if new_node[e] >= 0]
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
            f"Remapped {plural(int(moved.size), 'source node id')} onto the node that replaced each: "
            + "; ".join(parts)
            + ". Trips, sensors, stations and interventions may still name them."
        )
    return ids, to


def _repair_signals(net: Network, notes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Signal cycles and offsets per node: a missing or negative cycle removes the plan."""
    cycle = net.signal_cycle_s.astype(np.float64).copy()
    offset = net.signal_offset_s.astype(np.float64).copy()
    bad_cycle = ~np.isfinite(cycle) | (cycle < 0)
    if bad_cycle.any():
        cycle[bad_cycle] = 0.0
        notes.append(
            f"Removed the signal plan of {plural(int(bad_cycle.sum()), 'node')} with a missing or negative cycle."
        )
    offset[~np.isfinite(offset)] = 0.0
    return cycle, offset


def _drop_self_loops(L: LinkTable, notes: list[str]) -> None:
    """Self-loop links marked dead."""
    loops = L.src == L.dst
    if loops.any():
        L.alive[loops] = False
        L.link_to[loops] = -1
        notes.append(f"Dropped {plural(int(loops.sum()), 'self-loop link')} (links {examples(np.flatnonzero(loops))}).")


def _merge_short(
    net: Network, L: LinkTable, cycle: np.ndarray, min_link_m: float, notes: list[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Links shorter than ``min_link_m`` merged (step 3).

    Returns the nodes removed (bool per node), those removed as pass-through
    nodes, the link joined through each of those (-1: none) and each node's
    root after contraction.
    """
    n = net.n_nodes
    node_dead = np.zeros(n, dtype=bool)
    via = np.full(n, -1, dtype=np.int64)  # removed pass-through node -> the link joined through it
    pass_dead = node_dead
    root = np.arange(n, dtype=np.int64)
    if min_link_m > 0:
        n_short = int((L.alive & (L.length < min_link_m)).sum())
        removed = merge_pass_through(
            L, x=net.x, y=net.y, cycle=cycle, min_link_m=min_link_m, node_dead=node_dead, via=via
        )
        if removed:
            notes.append(
                f"Merged links shorter than {min_link_m:g} m into the next link on the same road, "
                f"removing {plural(removed, 'pass-through node')}."
            )
        root, n_contracted, n_merged = contract_short(L, n=n, cycle=cycle, min_link_m=min_link_m)
        if n_contracted:
            notes.append(
                f"Contracted {plural(n_contracted, 'link')} shorter than {min_link_m:g} m by merging their end "
                f"nodes ({plural(n_merged, 'node')} merged into a neighbour)."
            )
        pass_dead = node_dead.copy()
        node_dead |= root != np.arange(n)
        if n_short:
            repair_fd(L, notes, L.alive)
        logger.debug("%d short links before merging", n_short)
    return node_dead, pass_dead, via, root


def _note_duplicates(L: LinkTable, alive: np.ndarray, n: int, notes: list[str]) -> None:
    """A note counting parallel links (kept as they are)."""
    pair = L.src[alive] * max(n, 1) + L.dst[alive]
    _, counts = np.unique(pair, return_counts=True)
    n_dup = int((counts - 1).sum())
    if n_dup:
        notes.append(f"Kept {plural(n_dup, 'duplicate parallel link')} (same start and end node as another link).")


def _resolve_merges(link_to: np.ndarray) -> np.ndarray:
    """Old link -> the surviving link it was merged into (followed through chains of merges; -1: dropped)."""
    to = link_to.copy()
    for _ in range(link_to.size):
        nxt = np.where(to >= 0, to[np.maximum(to, 0)], -1)
        if np.array_equal(nxt, to):
            break
        to = nxt
    return to


def _rebuild(
    net: Network,
    L: LinkTable,
    kept: np.ndarray,
    link_keep: np.ndarray,
    new_node: np.ndarray,
    cycle: np.ndarray,
    offset: np.ndarray,
    alias_osmid: np.ndarray,
    alias_node: np.ndarray,
) -> Network:
    """The repaired network record: kept nodes and links, densely renumbered (step 5)."""
    # links into unsignalised nodes never keep a green window
    no_sig = cycle[L.dst] <= 0
    L.gs[no_sig], L.ge[no_sig] = 0.0, 0.0
    k = link_keep
    return make_network(
        x=net.x[kept],
        y=net.y[kept],
        lon=net.lon[kept],
        lat=net.lat[kept],
        node_osmid=net.node_osmid[kept],
        signal_cycle_s=cycle[kept],
        signal_offset_s=offset[kept],
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
    L = LinkTable(net)
    cycle, offset = _repair_signals(net, notes)
    if m:
        repair_attributes(net, L, problems, notes)
    if problems:
        raise CityError("the network cannot be repaired: " + "; ".join(problems) + ".")
    _drop_self_loops(L, notes)
    node_dead, pass_dead, via, root = _merge_short(net, L, cycle, min_link_m, notes)
    alive = np.flatnonzero(L.alive)
    _note_duplicates(L, alive, n, notes)
    kept = _components(net, L, ~node_dead, alive, keep_mode, notes)

    new_node = np.full(n, -1, dtype=np.int64)
    new_node[kept] = np.arange(int(kept.sum()))
    link_keep = L.alive & kept[L.src] & kept[L.dst]
    new_link = np.full(m, -1, dtype=np.int64)
    new_link[link_keep] = np.arange(int(link_keep.sum()))
    to = _resolve_merges(L.link_to)
    link_map = np.where(to >= 0, new_link[np.maximum(to, 0)], -1)
    node_map = np.where(pass_dead, -1, new_node[root])
    origin = np.flatnonzero(kept)
    alias_osmid, alias_node = _aliases(net, L, kept, new_node, node_map, pass_dead, via, to, root, notes)
    out = _rebuild(net, L, kept, link_keep, new_node, cycle, offset, alias_osmid, alias_node)
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


def _remap_place(value: Any, node_map: np.ndarray, link_map: np.ndarray) -> tuple[Any, bool]:
    def remap(ids: Any, table: np.ndarray) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.int64).ravel()
        ok = (ids >= 0) & (ids < table.size)
        new = table[ids[ok]]
        return np.unique(new[new >= 0])

    if isinstance(value, dict):
        out: dict[str, np.ndarray] = {}
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
        notes.append(f"{plural(int(empty.size), 'zone')} no longer contain any network node ({examples(empty)}).")
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

    places: dict[str, Any] = {}
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
        link_shapes=city.link_shapes,  # found again by source ids (city_models.shapes)
    )
