"""The private ``@njit`` kernels of :mod:`kernels.routing` (shortest paths on CSR arrays).

Call them through :mod:`kernels.routing`'s checked wrappers; they trust their arguments.

* :func:`_shortest_tree_to` -- binary-heap Dijkstra on the reversed graph: the shortest
  travel time from every node *to* one destination, and the first out-link to take.
* :func:`_shortest_tree_from` -- binary-heap Dijkstra from one origin to every node, with
  each node's predecessor link.
* :func:`_route_table` -- :func:`_shortest_tree_to` for many destinations at once, in
  parallel, writing rows of preallocated tables (a bucket queue for positive weights).
* :func:`_stale_rows` -- which rows new weights make out of date (looking at the changed
  links only).
* :func:`_path_links` -- follow a next-link row from an origin to extract a path.

Weights are link travel times in seconds, ``>= 0``; ``inf`` marks a closed link, which is
never used.  Unreachable nodes get ``dist = inf`` and link ``-1``.  The heap is an indexed
binary heap with decrease-key, so it never holds more than ``n_nodes`` entries.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from kernels._jit import Float, Int, njit, prange


class Adjacency(Protocol):
    """The CSR arrays of :class:`kernels.routing.Graph` the kernels read (a NamedTuple)."""

    @property
    def src(self) -> np.ndarray: ...
    @property
    def dst(self) -> np.ndarray: ...
    @property
    def out_indptr(self) -> np.ndarray: ...
    @property
    def out_links(self) -> np.ndarray: ...
    @property
    def in_indptr(self) -> np.ndarray: ...
    @property
    def in_links(self) -> np.ndarray: ...


# --------------------------------------------------------------------------
# indexed binary heap (min-heap on float64 keys; pos[node] = slot or -1)
# --------------------------------------------------------------------------


@njit(cache=True)
def _sift_up(heap_node: np.ndarray, heap_key: np.ndarray, pos: np.ndarray, i: Int) -> None:
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
def _sift_down(heap_node: np.ndarray, heap_key: np.ndarray, pos: np.ndarray, size: Int, i: Int) -> None:
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
def _push_or_decrease(
    heap_node: np.ndarray, heap_key: np.ndarray, pos: np.ndarray, size: Int, node: Int, key: Float
) -> Int:
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
def _pop(heap_node: np.ndarray, heap_key: np.ndarray, pos: np.ndarray, size: Int) -> tuple[Int, Int]:
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
def _reverse_arrays(in_links: np.ndarray, src: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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
def _tree_to_into(
    dest: Int,
    in_indptr: np.ndarray,
    in_links: np.ndarray,
    rev_src: np.ndarray,
    rev_w: np.ndarray,
    dist: np.ndarray,
    next_link: np.ndarray,
    heap_node: np.ndarray,
    heap_key: np.ndarray,
    pos: np.ndarray,
) -> None:
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
    size: Int = 1
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
    dest: Int,
    in_indptr: np.ndarray,
    in_links: np.ndarray,
    rev_src: np.ndarray,
    rev_w: np.ndarray,
    inv_delta: Float,
    mask: Int,
    dist: np.ndarray,
    next_link: np.ndarray,
    bucket_head: np.ndarray,
    entry_node: np.ndarray,
    entry_key: np.ndarray,
    entry_next: np.ndarray,
    want_next: bool,
) -> None:
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


#: widest bucket queue (slots) before _route_table falls back to the binary heap
_MAX_BUCKETS = 1 << 20


@njit(cache=True)
def _shortest_tree_to(
    dest: Int, in_indptr: np.ndarray, in_links: np.ndarray, src: np.ndarray, weight: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
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
def _shortest_tree_from(
    orig: Int, out_indptr: np.ndarray, out_links: np.ndarray, dst: np.ndarray, weight: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
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
    size: Int = 1
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


#: parallel chunks in :func:`_route_table` (each owns one set of work arrays)
_MAX_CHUNKS = 256


@njit(cache=True)
def _dial_setup(rev_w: np.ndarray) -> tuple[Float, Int]:
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
def _route_table(
    graph: Adjacency,
    dests: np.ndarray,
    active: np.ndarray,
    weight: np.ndarray,
    next_link_out: np.ndarray,
    dist_out: np.ndarray,
) -> None:
    """Fill next-link (and distance) rows for the active destinations.

    Parameters
    ----------
    graph : kernels.routing.Graph
        Its ``in_indptr``, ``in_links`` and ``src`` (as in :func:`_shortest_tree_to`).
    dests : int32[k]
        Destination node of each row.
    active : bool[k]
        Rows to (re)compute; the rows of inactive destinations are untouched.
    weight : float64[n_links]
        Link travel times.
    next_link_out : int32[k, n_nodes]
        Output: row ``r`` receives :func:`_shortest_tree_to`'s ``next_link``
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
    in_indptr, in_links, src = graph.in_indptr, graph.in_links, graph.src
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
def _stale_rows(
    graph: Adjacency,
    pot: np.ndarray,
    weight: np.ndarray,
    changes: tuple[np.ndarray, np.ndarray],
    active: np.ndarray,
    row_basis: np.ndarray,
    basis_weights: np.ndarray,
    out: np.ndarray,
) -> None:
    """Flag the active rows whose distances change under new link weights.

    Row ``r`` holds exact shortest travel times ``pot[r]`` for the weights
    ``basis_weights[row_basis[r]]``; the links whose weight differs between
    basis ``i`` and ``weight`` are ``ch_links[ch_indptr[i]:ch_indptr[i + 1]]``
    (``changes``, a :class:`kernels.routing.LinkChanges`; see
    :func:`kernels.routing.changed_links`).  ``graph`` gives ``src``, ``dst`` and the
    out-adjacency.  The row stays exact under ``weight`` unless
    a link that lies on a shortest path (ties included) got slower or closed
    while its tail has no other shortest way on that did not get slower, or a
    link got fast enough to open a shortcut (``w + pot[dst] < pot[src]``);
    only such rows are flagged in ``out``.  Inactive rows are never flagged.

    (The tie rule is exact: going through the nodes by increasing distance, each
    keeps its distance through a shortest out-link that did not get slower, whose
    head is nearer and so keeps its own.  On a grid, where nearly every link lies
    on some shortest path, it is what keeps a slower link from flagging every row.)
    """
    src, dst, out_indptr, out_links = graph.src, graph.dst, graph.out_indptr, graph.out_links
    ch_indptr, ch_links = changes
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


@njit(cache=True)
def _path_links(orig: Int, dest_row_next_link: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Links of the path from ``orig`` that a next-link row describes.

    Parameters
    ----------
    orig : int
        Start node.
    dest_row_next_link : int32[n_nodes]
        A row of :func:`_route_table` (or :func:`_shortest_tree_to`'s
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
