"""The road network as a frozen record of numpy arrays.

Everything downstream of the builders (kernels, the twin, viz) sees a
:class:`Network`: plain arrays, no networkx, no GeoDataFrames.  Node and link
ids are dense integers ``0..n-1``; ``node_osmid`` / ``link_osmid`` map them back
to the source ids (OSM ids, GraphML keys or generator ids).

Units: metres, seconds, vehicles.  ``capacity_vph`` is for the whole link (all
lanes); ``jam_density_vpm`` is vehicles per metre for the whole link (all lanes).
``wave_speed_mps`` is the backward wave speed where the source gave one (0:
the triangular diagram's ``q / (kj - q / vf)``, the default).  ``priority`` is
the link's road rank at its downstream node (int8, higher = major road, 0 =
unknown): at an unsignalised node whose in-links differ in it, the lower ones
yield (see :mod:`kernels.traffic`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "Network",
    "make_network",
    "lookup_nodes",
    "reachable",
    "DEFAULT_JAM_DENSITY_PER_LANE",
    "default_capacity_vph",
    "MAX_PRIORITY",
]

#: jam density per lane, veh/m (UXsim's default 0.2 veh/m; 5 m per stopped car)
DEFAULT_JAM_DENSITY_PER_LANE = 0.2
#: the largest road rank ``priority`` may hold (int8)
MAX_PRIORITY = 127


class Network(NamedTuple):
    """Frozen road network.  Build it with :func:`make_network`."""

    # nodes
    x: np.ndarray  # float64 (n_nodes,) metres, projected
    y: np.ndarray  # float64 (n_nodes,)
    lon: np.ndarray  # float64 (n_nodes,), NaN when unknown
    lat: np.ndarray  # float64 (n_nodes,), NaN when unknown
    node_osmid: np.ndarray  # int64 (n_nodes,) source id
    signal_cycle_s: np.ndarray  # float64 (n_nodes,), 0 = no signal
    signal_offset_s: np.ndarray  # float64 (n_nodes,)
    # links
    src: np.ndarray  # int32 (n_links,)
    dst: np.ndarray  # int32 (n_links,)
    length_m: np.ndarray  # float64
    lanes: np.ndarray  # float64 (>= 1)
    free_speed_mps: np.ndarray  # float64
    capacity_vph: np.ndarray  # float64, whole link
    jam_density_vpm: np.ndarray  # float64, whole link (all lanes)
    wave_speed_mps: np.ndarray  # float64 backward wave speed, 0: from the triangular diagram
    green_start_s: np.ndarray  # float64, green window start within dst's cycle
    green_end_s: np.ndarray  # float64, green window end (== start: not signal controlled)
    link_osmid: np.ndarray  # int64 source id (OSM way id, or -1)
    link_name: np.ndarray  # object array of str ('' when unnamed)
    link_kind: np.ndarray  # object array of str (OSM highway type or generator kind)
    priority: np.ndarray  # int8 road rank at dst: higher = major, 0 = unknown
    # CSR adjacency: out-links of node i are out_links[out_indptr[i]:out_indptr[i+1]]
    out_indptr: np.ndarray  # int64 (n_nodes+1,)
    out_links: np.ndarray  # int32 (n_links,)
    # in-links of node i are in_links[in_indptr[i]:in_indptr[i+1]]
    in_indptr: np.ndarray  # int64 (n_nodes+1,)
    in_links: np.ndarray  # int32 (n_links,)
    # source node ids that validation merged into another node or dropped, and the
    # dense node that now stands for each (sorted by id; see :func:`lookup_nodes`)
    alias_osmid: np.ndarray = np.zeros(0, np.int64)  # int64 (n_aliases,)
    alias_node: np.ndarray = np.zeros(0, np.int32)  # int32 (n_aliases,)

    @property
    def n_nodes(self) -> int:
        """The number of nodes."""
        return int(self.x.shape[0])

    @property
    def n_links(self) -> int:
        """The number of links."""
        return int(self.src.shape[0])

    @property
    def indptr(self) -> np.ndarray:
        """CSR row pointer (alias of ``out_indptr``)."""
        return self.out_indptr

    @property
    def indices(self) -> np.ndarray:
        """CSR column indices: destination node of each out-link, row by row."""
        out: np.ndarray = self.dst[self.out_links]
        return out

    @property
    def free_flow_time_s(self) -> np.ndarray:
        """Free-flow travel time of each link, seconds."""
        out: np.ndarray = self.length_m / self.free_speed_mps
        return out

    @property
    def backward_wave_speed_mps(self) -> np.ndarray:
        """Backward wave speed of each link: the given ``wave_speed_mps``, else its
        triangular fundamental diagram's.
        """
        q = self.capacity_vph / 3600.0
        with np.errstate(divide="ignore", invalid="ignore"):
            tri = q / (self.jam_density_vpm - q / self.free_speed_mps)
        w = self.wave_speed_mps
        return np.where(np.isfinite(w) & (w > 0), w, tri)

    def node_index(self, osmid: int) -> int:
        """Dense index of a node given its source id (also the id of a node that
        validation merged or dropped: the node standing for it); ``KeyError`` if unknown.
        """
        hits = np.flatnonzero(self.node_osmid == osmid)
        if hits.size:
            return int(hits[0])
        found = lookup_nodes(self, np.array([osmid], dtype=np.int64))
        if found[0] < 0:
            raise KeyError(osmid)
        return int(found[0])


def lookup_nodes(net: Network, osmids: ArrayLike) -> np.ndarray:
    """Dense node indices of source node ids; -1 where an id is unknown.

    An id of a node the validator merged into another node (a short link
    contracted, a pass-through node of a merged link) or dropped (outside the
    component kept) gives the node that stands for it (see
    :func:`city_models.validate.repair_network`), so trips, sensors, stations and
    interventions written against the source data's ids keep working.

    Parameters
    ----------
    net : Network
        The network.
    osmids : array_like of int
        Source node ids.

    Returns
    -------
    numpy.ndarray
        int64 dense indices, -1 for unknown ids.
    """
    try:
        ids = np.asarray(osmids, dtype=np.int64).ravel()
    except OverflowError:  # ids beyond 64 bits are in no network
        raw = [int(i) for i in np.asarray(osmids, dtype=object).ravel()]
        out = lookup_nodes(net, [i if -(2**63) <= i < 2**63 else 0 for i in raw])
        out[[not -(2**63) <= i < 2**63 for i in raw]] = -1
        return out
    keys = np.concatenate([np.asarray(net.node_osmid, np.int64), np.asarray(net.alias_osmid, np.int64)])
    vals = np.concatenate([np.arange(net.n_nodes, dtype=np.int64), np.asarray(net.alias_node, np.int64)])
    out = np.full(ids.shape[0], -1, dtype=np.int64)
    if keys.size == 0 or ids.size == 0:
        return out
    order = np.argsort(keys, kind="stable")  # a node's own id first, then an alias of it
    sk = keys[order]
    pos = np.minimum(np.searchsorted(sk, ids), sk.size - 1)
    hit = sk[pos] == ids
    out[hit] = vals[order[pos[hit]]]
    return out


#: reachability structures of the last few networks asked about (each entry keeps
#: its network's ``src`` array, so an identity check cannot be fooled by a reused id)
_REACH_CACHE: list[tuple[np.ndarray, np.ndarray, Any, dict[int, np.ndarray]]] = []
#: bytes of reachable sets (one bool per component, per destination component) kept per network
_REACH_BYTES_MAX = 32_000_000


def _reach_structure(net: Network) -> tuple[np.ndarray, Any, dict[int, np.ndarray]]:
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components

    for src, labels, cond_t, rows in _REACH_CACHE:
        if src is net.src and labels.shape[0] == net.n_nodes:
            return labels, cond_t, rows
    n = net.n_nodes
    adj = sp.csr_matrix((np.ones(net.n_links, np.int8), (net.src, net.dst)), shape=(n, n))
    n_comp, labels = connected_components(adj, directed=True, connection="strong")
    cs, cd = labels[net.src], labels[net.dst]
    between = cs != cd
    # reversed condensation: component b -> a for every link a -> b between components
    cond_t = sp.csr_matrix((np.ones(int(between.sum()), np.int8), (cd[between], cs[between])), shape=(n_comp, n_comp))
    entry: tuple[np.ndarray, np.ndarray, Any, dict[int, np.ndarray]] = (net.src, labels.astype(np.int64), cond_t, {})
    _REACH_CACHE.insert(0, entry)
    del _REACH_CACHE[4:]
    return entry[1], entry[2], entry[3]


def reachable(net: Network, origin: ArrayLike, destination: ArrayLike) -> np.ndarray:
    """Whether each origin node can reach its destination node on the network as
    given (every link open): a bool per pair.

    Strongly connected components and their condensation, one breadth-first
    search per destination component in use (cached for the network), so a
    strongly connected network costs one component labelling.

    Parameters
    ----------
    net : Network
        The network.
    origin, destination : array_like of int
        Dense node indices, one pair per entry.

    Returns
    -------
    numpy.ndarray
        bool, True where a path exists (a node reaches itself).
    """
    from scipy.sparse.csgraph import breadth_first_order

    o = np.asarray(origin, np.int64).ravel()
    d = np.asarray(destination, np.int64).ravel()
    if o.shape != d.shape:
        raise ValueError("origin and destination must have the same length")
    if o.size == 0 or net.n_nodes == 0:
        return np.ones(o.shape[0], dtype=bool)
    labels, cond_t, rows = _reach_structure(net)
    co, cd = labels[o], labels[d]
    ok: np.ndarray = co == cd
    if ok.all():
        return ok
    n_comp = cond_t.shape[0]
    for c in np.unique(cd[~ok]):
        can = rows.get(int(c))
        if can is None:
            can = np.zeros(n_comp, dtype=bool)
            can[breadth_first_order(cond_t, int(c), directed=True, return_predecessors=False)] = True
            if (len(rows) + 1) * n_comp <= _REACH_BYTES_MAX:
                rows[int(c)] = can
        sel = ~ok & (cd == c)
        ok[sel] = can[co[sel]]
    return ok


def _csr(keys: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(keys, kind="stable").astype(np.int32)
    counts = np.bincount(keys, minlength=n)
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    return indptr, order


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    a.flags.writeable = False
    return a


def make_network(  # noqa: PLR0913 (keyword-only, one per field of the Network record)
    *,
    x: ArrayLike,
    y: ArrayLike,
    src: ArrayLike,
    dst: ArrayLike,
    length_m: ArrayLike,
    lanes: ArrayLike,
    free_speed_mps: ArrayLike,
    capacity_vph: ArrayLike | None = None,
    jam_density_vpm: ArrayLike | None = None,
    wave_speed_mps: ArrayLike | None = None,
    priority: ArrayLike | None = None,
    lon: ArrayLike | None = None,
    lat: ArrayLike | None = None,
    node_osmid: ArrayLike | None = None,
    link_osmid: ArrayLike | None = None,
    link_name: Sequence[Any] | None = None,
    link_kind: Sequence[Any] | None = None,
    signal_cycle_s: ArrayLike | None = None,
    signal_offset_s: ArrayLike | None = None,
    green_start_s: ArrayLike | None = None,
    green_end_s: ArrayLike | None = None,
    alias_osmid: ArrayLike | None = None,
    alias_node: ArrayLike | None = None,
) -> Network:
    """Assemble a :class:`Network` from per-node and per-link sequences.

    Missing capacities follow the triangular fundamental diagram with a 1 s
    reaction time and the jam density (UXsim's convention):
    ``capacity = lanes * vf * w * kj / (vf + w)`` with ``w = 1 / (tau * kj_lane)``.
    Missing jam densities are ``0.2 veh/m`` per lane.  Where ``wave_speed_mps``
    is given (positive; 0 or NaN: not given), a missing capacity is the triangular diagram's with that
    wave speed, ``lanes * vf * w * kj_lane / (vf + w)``.  ``priority`` (road rank,
    integers 0..127, default 0 = unknown) is checked here; no other validation
    beyond shapes and dtypes happens here: see
    :func:`city_models.validate.validate_network`.

    Raises
    ------
    ValueError
        Naming the field: wrong lengths, node indices out of range, or a
        ``priority`` that is not an integer in 0..127.
    """
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[0]
    src = np.asarray(src, dtype=np.int32)
    m = src.shape[0]
    lanes_a, vf, jam, wave, cap = _fundamental_diagram(
        lanes, free_speed_mps, jam_density_vpm, wave_speed_mps, capacity_vph, m
    )
    prio = _priorities(priority, m)
    dst_a = np.asarray(dst, dtype=np.int32)
    out_indptr, out_links = _csr(src.astype(np.int64), n)
    in_indptr, in_links = _csr(dst_a.astype(np.int64), n)
    net = Network(
        x=x,
        y=np.asarray(y, dtype=np.float64),
        lon=_opt(lon, np.nan, np.float64, n),
        lat=_opt(lat, np.nan, np.float64, n),
        node_osmid=np.arange(n, dtype=np.int64) if node_osmid is None else np.asarray(node_osmid, dtype=np.int64),
        signal_cycle_s=_opt(signal_cycle_s, 0.0, np.float64, n),
        signal_offset_s=_opt(signal_offset_s, 0.0, np.float64, n),
        src=src,
        dst=dst_a,
        length_m=_opt(length_m, np.nan, np.float64, m),
        lanes=lanes_a,
        free_speed_mps=vf,
        capacity_vph=cap,
        jam_density_vpm=jam,
        wave_speed_mps=wave,
        green_start_s=_opt(green_start_s, 0.0, np.float64, m),
        green_end_s=_opt(green_end_s, 0.0, np.float64, m),
        link_osmid=_opt(link_osmid, -1, np.int64, m),
        link_name=_strs(link_name, m),
        link_kind=_strs(link_kind, m),
        priority=prio,
        out_indptr=out_indptr,
        out_links=out_links,
        in_indptr=in_indptr,
        in_links=in_links,
        alias_osmid=np.zeros(0, np.int64) if alias_osmid is None else np.asarray(alias_osmid, np.int64).reshape(-1),
        alias_node=np.zeros(0, np.int32) if alias_node is None else np.asarray(alias_node, np.int32).reshape(-1),
    )
    _check_shapes(net, n, m)
    return Network(*(_frozen(getattr(net, f)) for f in Network._fields))


def _opt(v: Any, fill: float, dtype: Any, size: int) -> np.ndarray:
    """``v`` as a 1-D array of ``size`` (a scalar broadcast), or ``fill`` everywhere where not given."""
    if v is None:
        return np.full(size, fill, dtype=dtype)
    return np.broadcast_to(np.asarray(v, dtype=dtype).reshape(-1), (size,)).copy()


def _strs(v: Sequence[Any] | None, size: int) -> np.ndarray:
    """Names as an object array of str ("" where not given)."""
    out = np.empty(size, dtype=object)
    out[:] = "" if v is None else [str(s) if s is not None else "" for s in v]
    return out


def _fundamental_diagram(
    lanes: ArrayLike,
    free_speed_mps: ArrayLike,
    jam_density_vpm: ArrayLike | None,
    wave_speed_mps: ArrayLike | None,
    capacity_vph: ArrayLike | None,
    m: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Lanes, free speed, jam density, wave speed and capacity per link, the missing ones filled in."""
    lanes_a = _opt(lanes, 1.0, np.float64, m)
    vf = _opt(free_speed_mps, np.nan, np.float64, m)
    if jam_density_vpm is None:
        jam = DEFAULT_JAM_DENSITY_PER_LANE * lanes_a
    else:
        jam = _opt(jam_density_vpm, np.nan, np.float64, m)
    wave = _opt(wave_speed_mps, 0.0, np.float64, m)
    wave[np.isnan(wave)] = 0.0  # not given
    if capacity_vph is None:
        kj_lane = jam / lanes_a
        w = np.where(np.isfinite(wave) & (wave > 0), wave, 1.0 / (1.0 * kj_lane))
        cap = lanes_a * vf * w * kj_lane / (vf + w) * 3600.0
    else:
        cap = _opt(capacity_vph, np.nan, np.float64, m)
    return lanes_a, vf, jam, wave, cap


def _check_shapes(net: Network, n: int, m: int) -> None:
    """A ValueError naming the field whose length is not one per node or link, or a bad node index."""
    src, dst_a = net.src, net.dst
    shapes = {f: getattr(net, f).shape[0] for f in Network._fields}
    node_fields = ("x", "y", "lon", "lat", "node_osmid", "signal_cycle_s", "signal_offset_s")
    for f in node_fields:
        if shapes[f] != n:
            raise ValueError(f"network field {f!r} has {shapes[f]} entries, expected {n} (one per node)")
    for f in Network._fields:
        if f in node_fields or f in ("out_indptr", "in_indptr", "alias_osmid", "alias_node"):
            continue
        if shapes[f] != m:
            raise ValueError(f"network field {f!r} has {shapes[f]} entries, expected {m} (one per link)")
    if m and (src.min() < 0 or src.max() >= n or dst_a.min() < 0 or dst_a.max() >= n):
        raise ValueError("network links refer to node indices outside 0..n_nodes-1")
    if net.alias_osmid.shape != net.alias_node.shape:
        raise ValueError("network fields 'alias_osmid' and 'alias_node' must have the same length")
    if net.alias_node.size and (net.alias_node.min() < 0 or net.alias_node.max() >= n):
        raise ValueError("network field 'alias_node' refers to node indices outside 0..n_nodes-1")


def _priorities(priority: ArrayLike | None, m: int) -> np.ndarray:
    """``priority`` as int8, or a ValueError naming the field and the first bad link."""
    if priority is None:
        return np.zeros(m, np.int8)
    raw = np.asarray(priority)
    if raw.dtype == object or raw.dtype.kind not in "biuf":
        try:
            raw = raw.astype(np.float64)
        except (TypeError, ValueError):
            raise ValueError(
                f"network field 'priority' must hold integers 0..{MAX_PRIORITY} (road rank), got non-numeric values"
            ) from None
    vals = np.broadcast_to(raw.astype(np.float64).reshape(-1), (m,)) if raw.size in (1, m) else raw.astype(np.float64)
    if vals.shape[0] != m:
        raise ValueError(f"network field 'priority' has {vals.shape[0]} entries, expected {m} (one per link)")
    bad = ~np.isfinite(vals) | (vals != np.round(vals)) | (vals < 0) | (vals > MAX_PRIORITY)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"network field 'priority' must hold integers 0..{MAX_PRIORITY} (road rank, 0 = unknown); "
            f"link {i} has {vals[i]!r} ({int(bad.sum())} bad in all)"
        )
    return vals.astype(np.int8)


def default_capacity_vph(
    lanes: ArrayLike,
    free_speed_mps: ArrayLike,
    jam_density_vpm: ArrayLike | None = None,
    wave_speed_mps: ArrayLike | None = None,
) -> np.ndarray:
    """Capacity (veh/h, whole link) of a triangular fundamental diagram.

    The same rule :func:`make_network` uses when no capacity is given: a 1 s
    reaction time, ``w = 1 / (tau * kj_lane)`` and
    ``capacity = lanes * vf * w * kj_lane / (vf + w)``.  The result is always
    below ``vf * jam_density`` so the diagram is well formed.

    Parameters
    ----------
    lanes, free_speed_mps : array_like
        Lanes (>= 1) and free speed (m/s) per link.
    jam_density_vpm : array_like, optional
        Jam density of the whole link (veh/m); ``0.2`` per lane when omitted.
    wave_speed_mps : array_like, optional
        Backward wave speed (m/s); 0, NaN or omitted: ``1 / (tau * kj_lane)``.

    Returns
    -------
    numpy.ndarray
        float64 capacities, one per link.
    """
    lanes = np.asarray(lanes, dtype=np.float64)
    vf = np.asarray(free_speed_mps, dtype=np.float64)
    if jam_density_vpm is None:
        jam = DEFAULT_JAM_DENSITY_PER_LANE * lanes
    else:
        jam = np.asarray(jam_density_vpm, dtype=np.float64)
    kj_lane = jam / lanes
    w = 1.0 / kj_lane
    if wave_speed_mps is not None:
        given = np.asarray(wave_speed_mps, dtype=np.float64)
        w = np.where(np.isfinite(given) & (given > 0), given, w)
    cap: np.ndarray = lanes * vf * w * kj_lane / (vf + w) * 3600.0
    return cap
