"""Shortest paths on the road network's CSR arrays: checked wrappers over private kernels.

Each public function checks its arguments (dtypes, shapes, lengths, node and link indices;
:class:`basics.errors.InputError` naming the argument) and runs a private ``@njit`` kernel of
:mod:`kernels._paths`:

* :func:`compute_tree_to` -- shortest travel time from every node *to* one destination, and
  the first out-link to take (Dijkstra on the reversed graph).
* :func:`compute_tree_from` -- from one origin to every node, with predecessor links.
* :func:`compute_route_table` / :func:`route_table` -- next-link and distance rows towards
  many destinations at once, in parallel (new tables, or rows of the caller's tables).
* :func:`stale_rows` -- which rows new weights make out of date (looking at the links
  :func:`changed_links` lists only).
* :func:`extract_path` -- the links of a path along a next-link row.

The network's arrays travel as a :class:`Graph` (built and checked once by :func:`graph_of`);
the wrappers re-check only its dtypes (O(1)).  Weights are link travel times in seconds,
``>= 0``; ``inf`` marks a closed link, which is never used.  Unreachable nodes get
``dist = inf`` and link ``-1``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from basics.errors import InputError
from kernels._paths import _path_links, _route_table, _shortest_tree_from, _shortest_tree_to, _stale_rows

__all__ = [
    "Graph",
    "LinkChanges",
    "graph_of",
    "check_weight",
    "changed_links",
    "compute_tree_to",
    "compute_tree_from",
    "compute_route_table",
    "route_table",
    "stale_rows",
    "extract_path",
]


# --------------------------------------------------------------------------
# public wrappers
# --------------------------------------------------------------------------


class Graph(NamedTuple):
    """The link arrays routing needs (see :class:`city_models.network.Network`).

    Build it with :func:`graph_of`, which checks and converts the arrays.
    """

    src: np.ndarray  # int32 (n_links,)
    dst: np.ndarray  # int32 (n_links,)
    out_indptr: np.ndarray  # int64 (n_nodes+1,)
    out_links: np.ndarray  # int32 (n_links,)
    in_indptr: np.ndarray  # int64 (n_nodes+1,)
    in_links: np.ndarray  # int32 (n_links,)

    @property
    def n_nodes(self) -> int:
        """Number of nodes."""
        return int(self.out_indptr.shape[0]) - 1

    @property
    def n_links(self) -> int:
        """Number of links."""
        return int(self.src.shape[0])


_GRAPH_DTYPES = {
    "src": np.int32,
    "dst": np.int32,
    "out_indptr": np.int64,
    "out_links": np.int32,
    "in_indptr": np.int64,
    "in_links": np.int32,
}


def _as_int_array(name: str, value: Any, dtype: type) -> np.ndarray:
    a = np.asarray(value)
    if a.ndim != 1:
        raise InputError(f"graph array {name!r} must be 1-D, got shape {a.shape}")
    if a.dtype.kind not in "iu":
        raise InputError(f"graph array {name!r} must hold integers, got dtype {a.dtype}")
    if a.size:
        info = np.iinfo(dtype)
        if a.min() < info.min or a.max() > info.max:
            raise InputError(f"graph array {name!r} has values outside the range of {np.dtype(dtype).name}")
    return np.ascontiguousarray(a, dtype=dtype)


def _check_csr(g: Graph, indptr_name: str, links_name: str, key_name: str) -> None:
    indptr = getattr(g, indptr_name)
    links = getattr(g, links_name)
    key = getattr(g, key_name)
    n, m = g.n_nodes, g.n_links
    if indptr.shape[0] < 1:
        raise InputError(f"graph array {indptr_name!r} must have n_nodes + 1 >= 1 entries, got 0")
    if indptr[0] != 0 or indptr[-1] != m or np.any(np.diff(indptr) < 0):
        raise InputError(
            f"graph array {indptr_name!r} is not a CSR row pointer: it must start at 0, never decrease "
            f"and end at n_links={m} (starts at {indptr[0]}, ends at {indptr[-1]})"
        )
    if links.shape[0] != m:
        raise InputError(f"graph array {links_name!r} has {links.shape[0]} entries, expected n_links={m}")
    if m:
        if links.min() < 0 or links.max() >= m:
            raise InputError(f"graph array {links_name!r} has link ids outside 0..{m - 1}")
        if np.bincount(links, minlength=m).max() != 1:
            raise InputError(f"graph array {links_name!r} must list every link exactly once")
        rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(indptr))
        if np.any(key[links] != rows):
            raise InputError(
                f"graph arrays {indptr_name!r}/{links_name!r} disagree with {key_name!r}: "
                f"a link is listed under a node that is not its {key_name}"
            )


def graph_of(network: Any) -> Graph:
    """Check and bundle the routing arrays of a network-like object.

    Parameters
    ----------
    network : object
        Anything with attributes ``src, dst, out_indptr, out_links, in_indptr,
        in_links`` (e.g. :class:`city_models.network.Network`).

    Returns
    -------
    Graph
        Contiguous arrays of the kernels' dtypes (no copy when they already are).

    Raises
    ------
    basics.errors.InputError
        An attribute is missing, not a 1-D integer array, out of range, or the
        CSR arrays are inconsistent with ``src``/``dst``.
    """
    missing = [f for f in Graph._fields if not hasattr(network, f)]
    if missing:
        raise InputError(f"graph_of: the object has no attribute(s) {', '.join(missing)}")
    arrays = {f: _as_int_array(f, getattr(network, f), dt) for f, dt in _GRAPH_DTYPES.items()}
    g = Graph(**arrays)
    n, m = g.n_nodes, g.n_links
    if g.dst.shape[0] != m:
        raise InputError(f"graph array 'dst' has {g.dst.shape[0]} entries, 'src' has {m}; they must match")
    if g.in_indptr.shape[0] != g.out_indptr.shape[0]:
        raise InputError(
            f"graph arrays 'in_indptr' ({g.in_indptr.shape[0]} entries) and 'out_indptr' "
            f"({g.out_indptr.shape[0]} entries) must both have n_nodes + 1 entries"
        )
    if m and (min(g.src.min(), g.dst.min()) < 0 or max(g.src.max(), g.dst.max()) >= n):
        raise InputError(f"graph arrays 'src'/'dst' refer to node indices outside 0..{n - 1}")
    _check_csr(g, "out_indptr", "out_links", "src")
    _check_csr(g, "in_indptr", "in_links", "dst")
    return g


def _check_graph_fast(graph: Graph) -> None:
    """O(1) dtype/shape checks (full checks happen in :func:`graph_of`)."""
    if not isinstance(graph, Graph):
        raise InputError(f"expected a routing Graph (build it with graph_of(network)), got {type(graph).__name__}")
    for f, dt in _GRAPH_DTYPES.items():
        a = getattr(graph, f)
        if not isinstance(a, np.ndarray) or a.dtype != dt or a.ndim != 1 or not a.flags.c_contiguous:
            raise InputError(
                f"Graph.{f} must be a contiguous 1-D {np.dtype(dt).name} array; build the Graph with graph_of"
            )


def check_weight(graph: Graph, weight: Any) -> np.ndarray:
    """``weight`` if it is a float64 array of one travel time (s, ``>= 0``, no NaN; ``inf``: closed)
    per link of ``graph``; else :class:`InputError`.  O(n_links).
    """
    if not isinstance(weight, np.ndarray) or weight.dtype != np.float64:
        got = weight.dtype if isinstance(weight, np.ndarray) else type(weight).__name__
        raise InputError(f"weight must be a float64 numpy array (link travel times in s), got {got}")
    if weight.shape != (graph.n_links,):
        raise InputError(f"weight must have shape (n_links,) = ({graph.n_links},), got {weight.shape}")
    if weight.size:
        if np.isnan(weight).any():
            raise InputError(f"weight has NaN at link(s) {np.flatnonzero(np.isnan(weight))[:5].tolist()}")
        if weight.min() < 0:
            raise InputError(
                f"weight must be >= 0 (inf = closed); negative at link(s) {np.flatnonzero(weight < 0)[:5].tolist()}"
            )
    return np.ascontiguousarray(weight)


def _check_node(graph: Graph, node: Any, what: str) -> int:
    if isinstance(node, (bool, np.bool_)) or not isinstance(node, (int, np.integer)):
        raise InputError(f"{what} must be an integer node index, got {node!r}")
    if not 0 <= node < graph.n_nodes:
        raise InputError(f"{what} {int(node)} is outside 0..{graph.n_nodes - 1} (n_nodes={graph.n_nodes})")
    return int(node)


def compute_tree_to(graph: Graph, dest: int, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Checked :func:`kernels._paths._shortest_tree_to`: travel time and first link towards ``dest``.

    Parameters
    ----------
    graph : Graph
        From :func:`graph_of`.
    dest : int
        Destination node index.
    weight : float64[n_links]
        Link travel times in s (``>= 0``; ``inf`` = closed).

    Returns
    -------
    dist : float64[n_nodes]
    next_link : int32[n_nodes]
    """
    _check_graph_fast(graph)
    w = check_weight(graph, weight)
    d = _check_node(graph, dest, "dest")
    return _shortest_tree_to(d, graph.in_indptr, graph.in_links, graph.src, w)


def compute_tree_from(graph: Graph, orig: int, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Checked :func:`kernels._paths._shortest_tree_from`: travel time and predecessor link from ``orig``.

    Parameters
    ----------
    graph : Graph
        From :func:`graph_of`.
    orig : int
        Origin node index.
    weight : float64[n_links]
        Link travel times in s (``>= 0``; ``inf`` = closed).

    Returns
    -------
    dist : float64[n_nodes]
    pred_link : int32[n_nodes]
    """
    _check_graph_fast(graph)
    w = check_weight(graph, weight)
    o = _check_node(graph, orig, "orig")
    return _shortest_tree_from(o, graph.out_indptr, graph.out_links, graph.dst, w)


def compute_route_table(
    graph: Graph,
    dests: Any,
    weight: np.ndarray,
    *,
    active: np.ndarray | None = None,
    next_link: np.ndarray | None = None,
    dist: np.ndarray | None = None,
    with_dist: bool = True,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Checked :func:`kernels._paths._route_table`: next-link rows towards many destinations.

    Parameters
    ----------
    graph : Graph
        From :func:`graph_of`.
    dests : int array (k,)
        Destination node indices, one per row.
    weight : float64[n_links]
        Link travel times in s (``>= 0``; ``inf`` = closed).
    active : bool[k], optional
        Rows to compute (default: all).  Other rows of ``next_link``/``dist``
        are left as they are.
    next_link : int32[k, n_nodes], optional
        Table to update in place (default: a new one filled with ``-1``).
    dist : float64[k, n_nodes], optional
        Distance table to update in place (default: a new one filled with
        ``inf`` when ``with_dist``).
    with_dist : bool
        Whether to return distances (ignored when ``dist`` is given).

    Returns
    -------
    next_link : int32[k, n_nodes]
    dist : float64[k, n_nodes] or None
    """
    _check_graph_fast(graph)
    w = check_weight(graph, weight)
    n = graph.n_nodes
    d = np.asarray(dests)
    if d.ndim != 1:
        raise InputError(f"dests must be a 1-D array of node indices, got shape {d.shape}")
    if d.size and d.dtype.kind not in "iu":
        raise InputError(f"dests must hold integer node indices, got dtype {d.dtype}")
    if d.size and (d.min() < 0 or d.max() >= n):
        bad = np.flatnonzero((d < 0) | (d >= n))
        raise InputError(
            f"dests has {bad.size} node index(es) outside 0..{n - 1} (n_nodes={n}), e.g. dests[{bad[0]}] = {d[bad[0]]}"
        )
    d = np.ascontiguousarray(d, dtype=np.int32)
    k = d.shape[0]
    if active is None:
        act = np.ones(k, dtype=np.bool_)
    else:
        if not isinstance(active, np.ndarray) or active.dtype != np.bool_:
            got = active.dtype if isinstance(active, np.ndarray) else type(active).__name__
            raise InputError(f"active must be a bool numpy array, got {got}")
        if active.shape != (k,):
            raise InputError(f"active must have shape (len(dests),) = ({k},), got {active.shape}")
        act = np.ascontiguousarray(active)
    if next_link is None:
        next_link = np.full((k, n), -1, dtype=np.int32)
    else:
        _check_table("next_link", next_link, np.int32, (k, n))
    if dist is None:
        dist_arg = np.full((k, n), np.inf, dtype=np.float64) if with_dist else np.empty((0, n), dtype=np.float64)
    else:
        _check_table("dist", dist, np.float64, (k, n))
        dist_arg = dist
    if k:
        _route_table(graph, d, act, w, next_link, dist_arg)
    return next_link, (dist_arg if (dist is not None or with_dist) else None)


def _check_table(name: str, a: Any, dtype: type, shape: tuple[int, int]) -> None:
    if not isinstance(a, np.ndarray) or a.dtype != dtype:
        got = a.dtype if isinstance(a, np.ndarray) else type(a).__name__
        raise InputError(f"{name} must be a {np.dtype(dtype).name} numpy array, got {got}")
    if a.shape != shape:
        raise InputError(f"{name} must have shape (len(dests), n_nodes) = {shape}, got {a.shape}")
    if not a.flags.c_contiguous or not a.flags.writeable:
        raise InputError(f"{name} must be a writeable C-contiguous array")


def extract_path(graph: Graph, orig: int, next_link_row: np.ndarray) -> np.ndarray:
    """Checked :func:`kernels._paths._path_links`: the links from ``orig`` along a next-link row.

    Parameters
    ----------
    graph : Graph
        From :func:`graph_of`.
    orig : int
        Start node index.
    next_link_row : int32[n_nodes]
        One row of a route table (or a ``next_link`` from :func:`compute_tree_to`).

    Returns
    -------
    int32[:]
        Links in travel order (empty when ``orig`` is the destination or has no route).
    """
    _check_graph_fast(graph)
    o = _check_node(graph, orig, "orig")
    row = next_link_row
    if not isinstance(row, np.ndarray) or row.dtype != np.int32:
        got = row.dtype if isinstance(row, np.ndarray) else type(row).__name__
        raise InputError(f"next_link_row must be an int32 numpy array, got {got}")
    if row.shape != (graph.n_nodes,):
        raise InputError(f"next_link_row must have shape (n_nodes,) = ({graph.n_nodes},), got {row.shape}")
    if row.size and (row.min() < -1 or row.max() >= graph.n_links):
        raise InputError(f"next_link_row has link ids outside -1..{graph.n_links - 1}")
    return _path_links(o, row, graph.dst)


class LinkChanges(NamedTuple):
    """Per basis weight row, the links whose weight differs from the new weights (CSR)."""

    indptr: np.ndarray  # int64 (n_basis + 1,)
    links: np.ndarray  # int32: links[indptr[i]:indptr[i + 1]] changed since basis row i


def changed_links(basis_weights: np.ndarray, weight: np.ndarray) -> LinkChanges:
    """The :class:`LinkChanges` for :func:`stale_rows`: per basis row, the links whose
    weight differs from ``weight`` (``inf == inf`` counts as unchanged).
    """
    changed = [np.flatnonzero(b != weight).astype(np.int32) for b in basis_weights]
    ch_indptr = np.zeros(len(changed) + 1, np.int64)
    np.cumsum([c.size for c in changed], out=ch_indptr[1:])
    ch_links = np.concatenate(changed) if changed else np.zeros(0, np.int32)
    return LinkChanges(ch_indptr, ch_links)


def _check_rows(what: str, a: Any, n_rows: int, dtype: type, n_nodes: int) -> np.ndarray:
    """A writeable C-contiguous ``dtype`` table of ``n_rows`` (or 0) rows and ``n_nodes`` columns."""
    if not isinstance(a, np.ndarray) or a.dtype != dtype:
        got = a.dtype if isinstance(a, np.ndarray) else type(a).__name__
        raise InputError(f"{what} must be a {np.dtype(dtype).name} numpy array, got {got}")
    if a.ndim != 2 or a.shape[1] != n_nodes or a.shape[0] not in (0, n_rows):
        raise InputError(f"{what} must have shape ({n_rows} or 0, n_nodes={n_nodes}), got {a.shape}")
    if not a.flags.c_contiguous or not a.flags.writeable:
        raise InputError(f"{what} must be a writeable C-contiguous array")
    return a


def _check_flags(what: str, a: Any, k: int) -> np.ndarray:
    if not isinstance(a, np.ndarray) or a.dtype != np.bool_:
        got = a.dtype if isinstance(a, np.ndarray) else type(a).__name__
        raise InputError(f"{what} must be a bool numpy array, got {got}")
    if a.shape != (k,):
        raise InputError(f"{what} must have shape ({k},), got {a.shape}")
    return np.ascontiguousarray(a)


def _check_ids(what: str, a: Any, n: int, dtype: type) -> np.ndarray:
    """``a`` as a contiguous ``dtype`` array of integer ids in ``0..n - 1`` (O(len(a)))."""
    d = np.asarray(a)
    if d.ndim != 1:
        raise InputError(f"{what} must be a 1-D array of indices, got shape {d.shape}")
    if d.size and d.dtype.kind not in "iu":
        raise InputError(f"{what} must hold integer indices, got dtype {d.dtype}")
    if d.size and (d.min() < 0 or d.max() >= n):
        bad = int(np.flatnonzero((d < 0) | (d >= n))[0])
        raise InputError(f"{what} has an index outside 0..{n - 1}: {what}[{bad}] = {d[bad]}")
    return np.ascontiguousarray(d, dtype=dtype)


def route_table(
    graph: Graph,
    dests: Any,
    weight: np.ndarray,
    *,
    active: np.ndarray,
    next_link_out: np.ndarray,
    dist_out: np.ndarray,
) -> None:
    """Fill next-link and distance rows towards the active destinations, in place.

    The checked wrapper of :func:`kernels._paths._route_table` (parallel over rows; the rows of
    inactive destinations are left as they are).

    Parameters
    ----------
    graph : Graph
        From :func:`graph_of`.
    dests : int array (k,)
        Destination node of each row.
    weight : float64[n_links]
        Link travel times in s (``>= 0``; ``inf`` = closed).
    active : bool[k]
        Rows to (re)compute.
    next_link_out : int32[k, n_nodes] or int32[0, n_nodes]
        Row ``r`` receives the first link towards ``dests[r]`` from every node; zero rows:
        not wanted.
    dist_out : float64[k, n_nodes] or float64[0, n_nodes]
        Row ``r`` receives the travel times to ``dests[r]``; zero rows: not wanted.
    """
    _check_graph_fast(graph)
    w = check_weight(graph, weight)
    d = _check_ids("dests", dests, graph.n_nodes, np.int32)
    k = d.shape[0]
    act = _check_flags("active", active, k)
    _check_rows("next_link_out", next_link_out, k, np.int32, graph.n_nodes)
    _check_rows("dist_out", dist_out, k, np.float64, graph.n_nodes)
    if k:
        _route_table(graph, d, act, w, next_link_out, dist_out)


def stale_rows(
    graph: Graph,
    pot: np.ndarray,
    weight: np.ndarray,
    changes: LinkChanges,
    *,
    active: np.ndarray,
    row_basis: Any,
    basis_weights: np.ndarray,
    out: np.ndarray,
) -> None:
    """Flag into ``out`` the active rows of ``pot`` whose distances change under ``weight``.

    The checked wrapper of :func:`kernels._paths._stale_rows`, whose docstring gives the
    (exact) rule.

    Parameters
    ----------
    graph : Graph
        From :func:`graph_of`.
    pot : float64[k, n_nodes]
        Row ``r``: exact shortest travel times to its destination for the weights
        ``basis_weights[row_basis[r]]``.
    weight : float64[n_links]
        The new link travel times.
    changes : LinkChanges
        From :func:`changed_links` (``basis_weights``, ``weight``).
    active : bool[k]
        Rows to look at; inactive rows are never flagged.
    row_basis : int array (k,)
        Basis row of each row of ``pot``.
    basis_weights : float64[n_basis, n_links]
        The weights each basis row holds.
    out : bool[k]
        Output flags (written for the active rows that change).
    """
    _check_graph_fast(graph)
    w = check_weight(graph, weight)
    n, m = graph.n_nodes, graph.n_links
    if not isinstance(pot, np.ndarray) or pot.dtype != np.float64 or pot.ndim != 2 or pot.shape[1] != n:
        got = f"{pot.dtype} {pot.shape}" if isinstance(pot, np.ndarray) else type(pot).__name__
        raise InputError(f"pot must be a float64 array of shape (rows, n_nodes={n}), got {got}")
    k = pot.shape[0]
    if not isinstance(basis_weights, np.ndarray) or basis_weights.dtype != np.float64 or basis_weights.ndim != 2:
        raise InputError("basis_weights must be a 2-D float64 array (one weight row per basis)")
    if basis_weights.shape[1] != m:
        raise InputError(f"basis_weights must have n_links={m} columns, got shape {basis_weights.shape}")
    nb = basis_weights.shape[0]
    ch_indptr, ch_links = changes
    if not isinstance(ch_indptr, np.ndarray) or ch_indptr.dtype != np.int64 or ch_indptr.shape != (nb + 1,):
        raise InputError(f"changes.indptr must be an int64 array of n_basis + 1 = {nb + 1} entries (changed_links)")
    if not isinstance(ch_links, np.ndarray) or ch_links.dtype != np.int32 or ch_links.shape != (ch_indptr[-1],):
        raise InputError(f"changes.links must be an int32 array of changes.indptr[-1] = {ch_indptr[-1]} entries")
    act = _check_flags("active", active, k)
    basis = _check_ids("row_basis", row_basis, nb, np.int64)
    if basis.shape[0] != k:
        raise InputError(f"row_basis must have one entry per row of pot ({k}), got {basis.shape[0]}")
    if not isinstance(out, np.ndarray) or out.dtype != np.bool_ or out.shape != (k,) or not out.flags.writeable:
        raise InputError(f"out must be a writeable bool array of shape ({k},)")
    _stale_rows(graph, pot, w, (ch_indptr, ch_links), act, basis, np.ascontiguousarray(basis_weights), out)
