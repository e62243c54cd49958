"""Shortest paths on the road network's CSR arrays.

Kernels (``@njit``, pure functions on arrays):

* :func:`shortest_tree_to` -- binary-heap Dijkstra on the reversed graph: the
  shortest travel time from every node *to* one destination, and the first
  out-link to take.
* :func:`shortest_tree_from` -- binary-heap Dijkstra from one origin to every
  node, with each node's predecessor link.
* :func:`route_table` -- :func:`shortest_tree_to` for many destinations at once,
  in parallel, writing rows of preallocated tables (a bucket queue for
  positive weights).
* :func:`stale_rows` -- which rows new weights make out of date (looking at
  the changed links only; :func:`changed_links` lists them).
* :func:`path_links` -- follow a next-link row from an origin to extract a path.

Public wrappers (plain Python, they check dtypes, shapes and ids and raise a
``ValueError`` that names what is wrong): :func:`graph_of`,
:func:`compute_tree_to`, :func:`compute_tree_from`,
:func:`compute_route_table`, :func:`extract_path`.

Weights are link travel times in seconds, ``>= 0``; ``inf`` marks a closed
link, which is never used.  Unreachable nodes get ``dist = inf`` and link
``-1``.  The heap is an indexed binary heap with decrease-key, so it never
holds more than ``n_nodes`` entries.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from numba import njit, prange

__all__ = [
    "Graph",
    "graph_of",
    "shortest_tree_to",
    "shortest_tree_from",
    "route_table",
    "stale_rows",
    "changed_links",
    "path_links",
    "compute_tree_to",
    "compute_tree_from",
    "compute_route_table",
    "extract_path",
]


# --------------------------------------------------------------------------
# indexed binary heap (min-heap on float64 keys; pos[node] = slot or -1)
# --------------------------------------------------------------------------


@njit(cache=True)
def _sift_up(heap_node, heap_key, pos, i):
    node = heap_node[i]
    key = heap_key[i]
    while i > 0:
        parent = (i - 1) >> 1
        if heap_key[parent] <= key:
            break
        heap_node[i] = heap_node[parent]
        heap_key[i] = heap_key[parent]
        pos[heap_node[i]] = i
        i = parent
    heap_node[i] = node
    heap_key[i] = key
    pos[node] = i


@njit(cache=True)
def _sift_down(heap_node, heap_key, pos, size, i):
    node = heap_node[i]
    key = heap_key[i]
    while True:
        child = 2 * i + 1
        if child >= size:
            break
        if child + 1 < size and heap_key[child + 1] < heap_key[child]:
            child += 1
        if heap_key[child] >= key:
            break
        heap_node[i] = heap_node[child]
        heap_key[i] = heap_key[child]
        pos[heap_node[i]] = i
        i = child
    heap_node[i] = node
    heap_key[i] = key
    pos[node] = i


@njit(cache=True)
def _push_or_decrease(heap_node, heap_key, pos, size, node, key):
    """Insert ``node`` or lower its key; return the new heap size."""
    p = pos[node]
    if p < 0:
        heap_node[size] = node
        heap_key[size] = key
        _sift_up(heap_node, heap_key, pos, size)
        return size + 1
    heap_key[p] = key
    _sift_up(heap_node, heap_key, pos, p)
    return size


@njit(cache=True)
def _pop(heap_node, heap_key, pos, size):
    """Remove the minimum; return ``(node, new_size)``."""
    top = heap_node[0]
    pos[top] = -1
    size -= 1
    if size > 0:
        heap_node[0] = heap_node[size]
        heap_key[0] = heap_key[size]
        _sift_down(heap_node, heap_key, pos, size, 0)
    return top, size


# --------------------------------------------------------------------------
# kernels
# --------------------------------------------------------------------------


@njit(cache=True)
def _reverse_arrays(in_links, src, weight):
    """Tail node and weight of each in-link, in CSR order (contiguous for the search)."""
    m = in_links.shape[0]
    rev_src = np.empty(m, dtype=np.int32)
    rev_w = np.empty(m, dtype=np.float64)
    for k in range(m):
        link = in_links[k]
        rev_src[k] = src[link]
        rev_w[k] = weight[link]
    return rev_src, rev_w


@njit(cache=True)
def _tree_to_into(dest, in_indptr, in_links, rev_src, rev_w, dist, next_link, heap_node, heap_key, pos):
    """Dijkstra on the reversed graph into caller-provided arrays.

    ``rev_src``/``rev_w`` come from :func:`_reverse_arrays`.  ``pos`` must be
    all ``-1`` on entry; it is all ``-1`` again on exit.
    """
    dist[:] = np.inf
    next_link[:] = -1
    dist[dest] = 0.0
    heap_node[0] = dest
    heap_key[0] = 0.0
    pos[dest] = 0
    size = 1
    while size > 0:
        u, size = _pop(heap_node, heap_key, pos, size)
        du = dist[u]
        for k in range(in_indptr[u], in_indptr[u + 1]):
            w = rev_w[k]
            if w == np.inf:
                continue
            v = rev_src[k]
            nd = du + w
            if nd < dist[v]:
                dist[v] = nd
                next_link[v] = in_links[k]
                size = _push_or_decrease(heap_node, heap_key, pos, size, v, nd)


@njit(cache=True)
def _tree_to_dial(
    dest,
    in_indptr,
    in_links,
    rev_src,
    rev_w,
    inv_delta,
    mask,
    dist,
    next_link,
    bucket_head,
    entry_node,
    entry_key,
    entry_next,
    want_next,
):
    """Dijkstra on the reversed graph with a bucket queue (Dial's algorithm).

    Buckets are ``1 / inv_delta`` wide, at most the smallest weight (shaved so
    that rounding never puts a relaxed node into the bucket being settled), so
    every node of the current bucket is final and the order inside a bucket
    does not matter: the distances are exact.  ``bucket_head`` is circular
    (``mask + 1`` slots, a power of two above ``max(weight) * inv_delta + 1``),
    all ``-1`` on entry and again on exit; the entry arrays need
    ``n_links + 1`` slots.  ``next_link`` is left alone unless ``want_next``.
    """
    dist[:] = np.inf
    if want_next:
        next_link[:] = -1
    dist[dest] = 0.0
    entry_node[0] = dest
    entry_key[0] = 0.0
    entry_next[0] = -1
    bucket_head[0] = 0
    n_entries = 1
    remaining = 1
    cur = 0
    while remaining > 0:
        slot = cur & mask
        e = bucket_head[slot]
        bucket_head[slot] = -1
        while e >= 0:
            u = entry_node[e]
            du = entry_key[e]
            e = entry_next[e]
            remaining -= 1
            if du != dist[u]:  # stale: u was improved after this entry
                continue
            for k in range(in_indptr[u], in_indptr[u + 1]):
                nd = du + rev_w[k]  # closed links (inf) never pass the test below
                v = rev_src[k]
                if nd < dist[v]:
                    dist[v] = nd
                    if want_next:
                        next_link[v] = in_links[k]
                    bslot = np.int64(nd * inv_delta) & mask
                    entry_node[n_entries] = v
                    entry_key[n_entries] = nd
                    entry_next[n_entries] = bucket_head[bslot]
                    bucket_head[bslot] = n_entries
                    n_entries += 1
                    remaining += 1
        cur += 1


#: widest bucket queue (slots) before route_table falls back to the binary heap
_MAX_BUCKETS = 1 << 20


@njit(cache=True)
def shortest_tree_to(dest, in_indptr, in_links, src, weight):
    """Shortest travel time from every node to ``dest``.

    Parameters
    ----------
    dest : int
        Destination node index.
    in_indptr : int64[n_nodes + 1]
        CSR row pointer of in-links.
    in_links : int32[n_links]
        In-links, grouped by their ``dst`` node.
    src : int32[n_links]
        Tail node of each link.
    weight : float64[n_links]
        Link travel times (``>= 0``; ``inf`` = closed).

    Returns
    -------
    dist : float64[n_nodes]
        Travel time to ``dest`` (``inf`` when unreachable).
    next_link : int32[n_nodes]
        First out-link on a shortest path to ``dest``; ``-1`` at ``dest`` and
        at nodes that cannot reach it.
    """
    n = in_indptr.shape[0] - 1
    dist = np.empty(n, dtype=np.float64)
    next_link = np.empty(n, dtype=np.int32)
    heap_node = np.empty(n, dtype=np.int32)
    heap_key = np.empty(n, dtype=np.float64)
    pos = np.full(n, -1, dtype=np.int32)
    rev_src, rev_w = _reverse_arrays(in_links, src, weight)
    _tree_to_into(dest, in_indptr, in_links, rev_src, rev_w, dist, next_link, heap_node, heap_key, pos)
    return dist, next_link


@njit(cache=True)
def shortest_tree_from(orig, out_indptr, out_links, dst, weight):
    """Shortest travel time from ``orig`` to every node.

    Parameters
    ----------
    orig : int
        Origin node index.
    out_indptr : int64[n_nodes + 1]
        CSR row pointer of out-links.
    out_links : int32[n_links]
        Out-links, grouped by their ``src`` node.
    dst : int32[n_links]
        Head node of each link.
    weight : float64[n_links]
        Link travel times (``>= 0``; ``inf`` = closed).

    Returns
    -------
    dist : float64[n_nodes]
        Travel time from ``orig`` (``inf`` when unreachable).
    pred_link : int32[n_nodes]
        Last link on a shortest path from ``orig``; ``-1`` at ``orig`` and at
        unreachable nodes.
    """
    n = out_indptr.shape[0] - 1
    dist = np.full(n, np.inf, dtype=np.float64)
    pred_link = np.full(n, -1, dtype=np.int32)
    heap_node = np.empty(n, dtype=np.int32)
    heap_key = np.empty(n, dtype=np.float64)
    pos = np.full(n, -1, dtype=np.int32)
    dist[orig] = 0.0
    heap_node[0] = orig
    heap_key[0] = 0.0
    pos[orig] = 0
    size = 1
    while size > 0:
        u, size = _pop(heap_node, heap_key, pos, size)
        du = dist[u]
        for k in range(out_indptr[u], out_indptr[u + 1]):
            link = out_links[k]
            w = weight[link]
            if w == np.inf:
                continue
            v = dst[link]
            nd = du + w
            if nd < dist[v]:
                dist[v] = nd
                pred_link[v] = link
                size = _push_or_decrease(heap_node, heap_key, pos, size, v, nd)
    return dist, pred_link


#: parallel chunks in :func:`route_table` (each owns one set of work arrays)
_MAX_CHUNKS = 256


@njit(cache=True)
def _dial_setup(rev_w):
    """``(inv_delta, n_buckets)`` of the bucket queue for these weights; ``n_buckets = 0``:
    use the binary heap (a zero weight, no finite weight, or too wide a spread).
    """
    w_min = np.inf
    w_max = 0.0
    for k in range(rev_w.shape[0]):
        w = rev_w[k]
        if w < np.inf:
            if w < w_min:
                w_min = w
            if w > w_max:
                w_max = w
    delta = w_min * (1.0 - 1e-9)
    if not (w_min < np.inf and delta > 0.0 and w_max / delta + 2.0 < _MAX_BUCKETS):
        return 0.0, np.int64(0)
    nb = np.int64(1)
    while nb < np.int64(w_max / delta) + 2:
        nb *= 2
    return 1.0 / delta, nb


@njit(cache=True, parallel=True)
def route_table(dests, active, in_indptr, in_links, src, weight, next_link_out, dist_out):
    """Fill next-link (and distance) rows for the active destinations.

    Parameters
    ----------
    dests : int32[k]
        Destination node of each row.
    active : bool[k]
        Rows to (re)compute; the rows of inactive destinations are untouched.
    in_indptr, in_links, src, weight
        As in :func:`shortest_tree_to`.
    next_link_out : int32[k, n_nodes]
        Output: row ``r`` receives :func:`shortest_tree_to`'s ``next_link``
        for ``dests[r]``.
    dist_out : float64[k, n_nodes] or float64[0, n_nodes]
        Output distances; pass a zero-row array to skip them.

    ``next_link_out`` may likewise have zero rows (distances only).

    Notes
    -----
    Destinations are split into at most ``_MAX_CHUNKS`` strided chunks run in
    parallel; each chunk allocates its work arrays once and reuses them for
    all of its destinations.  Positive weights use a bucket queue (Dial),
    otherwise a binary heap.  (The chunk count is a constant: asking numba for
    the thread count inside the kernel would stop it from being cached.)
    """
    n = in_indptr.shape[0] - 1
    rows = np.flatnonzero(active)
    n_rows = rows.shape[0]
    if n_rows == 0:
        return
    want_dist = dist_out.shape[0] > 0
    want_next = next_link_out.shape[0] > 0
    n_chunks = min(n_rows, _MAX_CHUNKS)
    rev_src, rev_w = _reverse_arrays(in_links, src, weight)
    inv_delta, n_buckets = _dial_setup(rev_w)
    use_dial = n_buckets > 0
    m = in_links.shape[0]
    for c in prange(n_chunks):
        heap_node = np.empty(0 if use_dial else n, dtype=np.int32)
        heap_key = np.empty(0 if use_dial else n, dtype=np.float64)
        pos = np.full(0 if use_dial else n, -1, dtype=np.int32)
        bucket_head = np.full(max(n_buckets, 1), -1, dtype=np.int64)
        entry_node = np.empty(m + 1 if use_dial else 0, dtype=np.int32)
        entry_key = np.empty(m + 1 if use_dial else 0, dtype=np.float64)
        entry_next = np.empty(m + 1 if use_dial else 0, dtype=np.int64)
        work = np.empty(0 if want_dist else n, dtype=np.float64)
        work_next = np.empty(0 if (want_next or use_dial) else n, dtype=np.int32)  # the heap needs one
        for j in range(c, n_rows, n_chunks):
            r = rows[j]
            dist = dist_out[r] if want_dist else work
            nxt = next_link_out[r] if want_next else work_next
            if use_dial:
                _tree_to_dial(
                    dests[r],
                    in_indptr,
                    in_links,
                    rev_src,
                    rev_w,
                    inv_delta,
                    n_buckets - 1,
                    dist,
                    nxt,
                    bucket_head,
                    entry_node,
                    entry_key,
                    entry_next,
                    want_next,
                )
            else:
                _tree_to_into(dests[r], in_indptr, in_links, rev_src, rev_w, dist, nxt, heap_node, heap_key, pos)


@njit(cache=True, parallel=True)
def stale_rows(
    active, row_basis, ch_indptr, ch_links, basis_weights, weight, pot, src, dst, out_indptr, out_links, out
):
    """Flag the active rows whose distances change under new link weights.

    Row ``r`` holds exact shortest travel times ``pot[r]`` for the weights
    ``basis_weights[row_basis[r]]``; the links whose weight differs between
    basis ``i`` and ``weight`` are ``ch_links[ch_indptr[i]:ch_indptr[i + 1]]``
    (see :func:`changed_links`).  The row stays exact under ``weight`` unless
    a link that lies on a shortest path (ties included) got slower or closed
    while its tail has no other shortest way on that did not get slower, or a
    link got fast enough to open a shortcut (``w + pot[dst] < pot[src]``);
    only such rows are flagged in ``out``.  Inactive rows are never flagged.

    (The tie rule is exact: going through the nodes by increasing distance, each
    keeps its distance through a shortest out-link that did not get slower, whose
    head is nearer and so keeps its own.  On a grid, where nearly every link lies
    on some shortest path, it is what keeps a slower link from flagging every row.)
    """
    for r in prange(active.shape[0]):
        out[r] = False
        if not active[r]:
            continue
        bi = row_basis[r]
        wb = basis_weights[bi]
        for j in range(ch_indptr[bi], ch_indptr[bi + 1]):
            b = ch_links[j]
            w0 = wb[b]
            w1 = weight[b]
            ps = pot[r, src[b]]
            pd = pot[r, dst[b]]
            if w1 < w0:
                if w1 + pd < ps:
                    out[r] = True
                    break
            elif ps < np.inf and w0 + pd == ps:
                u = src[b]
                other = False
                for k in range(out_indptr[u], out_indptr[u + 1]):
                    b2 = out_links[k]
                    if b2 != b and weight[b2] <= wb[b2] and wb[b2] + pot[r, dst[b2]] == ps:
                        other = True
                        break
                if not other:
                    out[r] = True
                    break


def changed_links(basis_weights: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(ch_indptr, ch_links)`` for :func:`stale_rows`: per basis row, the links whose
    weight differs from ``weight`` (``inf == inf`` counts as unchanged).
    """
    changed = [np.flatnonzero(b != weight).astype(np.int32) for b in basis_weights]
    ch_indptr = np.zeros(len(changed) + 1, np.int64)
    np.cumsum([c.size for c in changed], out=ch_indptr[1:])
    ch_links = np.concatenate(changed) if changed else np.zeros(0, np.int32)
    return ch_indptr, ch_links


@njit(cache=True)
def path_links(orig, dest_row_next_link, dst):
    """Links of the path from ``orig`` that a next-link row describes.

    Parameters
    ----------
    orig : int
        Start node.
    dest_row_next_link : int32[n_nodes]
        A row of :func:`route_table` (or :func:`shortest_tree_to`'s
        ``next_link``).
    dst : int32[n_links]
        Head node of each link.

    Returns
    -------
    int32[:]
        The links in travel order; stops at the first ``-1`` (destination
        reached, or no route) or after ``n_nodes`` steps.  Empty when ``orig``
        is the destination or cannot reach it.
    """
    n = dest_row_next_link.shape[0]
    count = 0
    node = orig
    while count < n:
        link = dest_row_next_link[node]
        if link < 0:
            break
        count += 1
        node = dst[link]
    out = np.empty(count, dtype=np.int32)
    node = orig
    for i in range(count):
        link = dest_row_next_link[node]
        out[i] = link
        node = dst[link]
    return out


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
        raise ValueError(f"graph array {name!r} must be 1-D, got shape {a.shape}")
    if a.dtype.kind not in "iu":
        raise ValueError(f"graph array {name!r} must hold integers, got dtype {a.dtype}")
    if a.size:
        info = np.iinfo(dtype)
        if a.min() < info.min or a.max() > info.max:
            raise ValueError(f"graph array {name!r} has values outside the range of {np.dtype(dtype).name}")
    return np.ascontiguousarray(a, dtype=dtype)


def _check_csr(g: Graph, indptr_name: str, links_name: str, key_name: str) -> None:
    indptr = getattr(g, indptr_name)
    links = getattr(g, links_name)
    key = getattr(g, key_name)
    n, m = g.n_nodes, g.n_links
    if indptr.shape[0] < 1:
        raise ValueError(f"graph array {indptr_name!r} must have n_nodes + 1 >= 1 entries, got 0")
    if indptr[0] != 0 or indptr[-1] != m or np.any(np.diff(indptr) < 0):
        raise ValueError(
            f"graph array {indptr_name!r} is not a CSR row pointer: it must start at 0, never decrease "
            f"and end at n_links={m} (starts at {indptr[0]}, ends at {indptr[-1]})"
        )
    if links.shape[0] != m:
        raise ValueError(f"graph array {links_name!r} has {links.shape[0]} entries, expected n_links={m}")
    if m:
        if links.min() < 0 or links.max() >= m:
            raise ValueError(f"graph array {links_name!r} has link ids outside 0..{m - 1}")
        if np.bincount(links, minlength=m).max() != 1:
            raise ValueError(f"graph array {links_name!r} must list every link exactly once")
        rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(indptr))
        if np.any(key[links] != rows):
            raise ValueError(
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
    ValueError
        An attribute is missing, not a 1-D integer array, out of range, or the
        CSR arrays are inconsistent with ``src``/``dst``.
    """
    missing = [f for f in Graph._fields if not hasattr(network, f)]
    if missing:
        raise ValueError(f"graph_of: the object has no attribute(s) {', '.join(missing)}")
    arrays = {f: _as_int_array(f, getattr(network, f), dt) for f, dt in _GRAPH_DTYPES.items()}
    g = Graph(**arrays)
    n, m = g.n_nodes, g.n_links
    if g.dst.shape[0] != m:
        raise ValueError(f"graph array 'dst' has {g.dst.shape[0]} entries, 'src' has {m}; they must match")
    if g.in_indptr.shape[0] != g.out_indptr.shape[0]:
        raise ValueError(
            f"graph arrays 'in_indptr' ({g.in_indptr.shape[0]} entries) and 'out_indptr' "
            f"({g.out_indptr.shape[0]} entries) must both have n_nodes + 1 entries"
        )
    if m and (min(g.src.min(), g.dst.min()) < 0 or max(g.src.max(), g.dst.max()) >= n):
        raise ValueError(f"graph arrays 'src'/'dst' refer to node indices outside 0..{n - 1}")
    _check_csr(g, "out_indptr", "out_links", "src")
    _check_csr(g, "in_indptr", "in_links", "dst")
    return g


def _check_graph_fast(graph: Graph) -> None:
    """O(1) dtype/shape checks (full checks happen in :func:`graph_of`)."""
    if not isinstance(graph, Graph):
        raise ValueError(f"expected a routing Graph (build it with graph_of(network)), got {type(graph).__name__}")
    for f, dt in _GRAPH_DTYPES.items():
        a = getattr(graph, f)
        if not isinstance(a, np.ndarray) or a.dtype != dt or a.ndim != 1 or not a.flags.c_contiguous:
            raise ValueError(
                f"Graph.{f} must be a contiguous 1-D {np.dtype(dt).name} array; build the Graph with graph_of"
            )


def _check_weight(graph: Graph, weight: Any) -> np.ndarray:
    if not isinstance(weight, np.ndarray) or weight.dtype != np.float64:
        got = weight.dtype if isinstance(weight, np.ndarray) else type(weight).__name__
        raise ValueError(f"weight must be a float64 numpy array (link travel times in s), got {got}")
    if weight.shape != (graph.n_links,):
        raise ValueError(f"weight must have shape (n_links,) = ({graph.n_links},), got {weight.shape}")
    if weight.size:
        if np.isnan(weight).any():
            raise ValueError(f"weight has NaN at link(s) {np.flatnonzero(np.isnan(weight))[:5].tolist()}")
        if weight.min() < 0:
            raise ValueError(
                f"weight must be >= 0 (inf = closed); negative at link(s) {np.flatnonzero(weight < 0)[:5].tolist()}"
            )
    return np.ascontiguousarray(weight)


def _check_node(graph: Graph, node: Any, what: str) -> int:
    if isinstance(node, (bool, np.bool_)) or not isinstance(node, (int, np.integer)):
        raise ValueError(f"{what} must be an integer node index, got {node!r}")
    if not 0 <= node < graph.n_nodes:
        raise ValueError(f"{what} {int(node)} is outside 0..{graph.n_nodes - 1} (n_nodes={graph.n_nodes})")
    return int(node)


def compute_tree_to(graph: Graph, dest: int, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Checked :func:`shortest_tree_to`: travel time and first link towards ``dest``.

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
    w = _check_weight(graph, weight)
    d = _check_node(graph, dest, "dest")
    return shortest_tree_to(d, graph.in_indptr, graph.in_links, graph.src, w)


def compute_tree_from(graph: Graph, orig: int, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Checked :func:`shortest_tree_from`: travel time and predecessor link from ``orig``.

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
    w = _check_weight(graph, weight)
    o = _check_node(graph, orig, "orig")
    return shortest_tree_from(o, graph.out_indptr, graph.out_links, graph.dst, w)


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
    """Checked :func:`route_table`: next-link rows towards many destinations.

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
    w = _check_weight(graph, weight)
    n = graph.n_nodes
    d = np.asarray(dests)
    if d.ndim != 1:
        raise ValueError(f"dests must be a 1-D array of node indices, got shape {d.shape}")
    if d.size and d.dtype.kind not in "iu":
        raise ValueError(f"dests must hold integer node indices, got dtype {d.dtype}")
    if d.size and (d.min() < 0 or d.max() >= n):
        bad = np.flatnonzero((d < 0) | (d >= n))
        raise ValueError(
            f"dests has {bad.size} node index(es) outside 0..{n - 1} (n_nodes={n}), e.g. dests[{bad[0]}] = {d[bad[0]]}"
        )
    d = np.ascontiguousarray(d, dtype=np.int32)
    k = d.shape[0]
    if active is None:
        act = np.ones(k, dtype=np.bool_)
    else:
        if not isinstance(active, np.ndarray) or active.dtype != np.bool_:
            got = active.dtype if isinstance(active, np.ndarray) else type(active).__name__
            raise ValueError(f"active must be a bool numpy array, got {got}")
        if active.shape != (k,):
            raise ValueError(f"active must have shape (len(dests),) = ({k},), got {active.shape}")
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
        route_table(d, act, graph.in_indptr, graph.in_links, graph.src, w, next_link, dist_arg)
    return next_link, (dist_arg if (dist is not None or with_dist) else None)


def _check_table(name: str, a: Any, dtype: type, shape: tuple[int, int]) -> None:
    if not isinstance(a, np.ndarray) or a.dtype != dtype:
        got = a.dtype if isinstance(a, np.ndarray) else type(a).__name__
        raise ValueError(f"{name} must be a {np.dtype(dtype).name} numpy array, got {got}")
    if a.shape != shape:
        raise ValueError(f"{name} must have shape (len(dests), n_nodes) = {shape}, got {a.shape}")
    if not a.flags.c_contiguous or not a.flags.writeable:
        raise ValueError(f"{name} must be a writeable C-contiguous array")


def extract_path(graph: Graph, orig: int, next_link_row: np.ndarray) -> np.ndarray:
    """Checked :func:`path_links`: the links from ``orig`` along a next-link row.

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
        raise ValueError(f"next_link_row must be an int32 numpy array, got {got}")
    if row.shape != (graph.n_nodes,):
        raise ValueError(f"next_link_row must have shape (n_nodes,) = ({graph.n_nodes},), got {row.shape}")
    if row.size and (row.min() < -1 or row.max() >= graph.n_links):
        raise ValueError(f"next_link_row has link ids outside -1..{graph.n_links - 1}")
    return path_links(o, row, graph.dst)
