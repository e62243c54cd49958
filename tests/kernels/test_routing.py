"""kernels.routing against the plain reference and scipy.sparse.csgraph."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.sparse.csgraph import csgraph_from_dense, dijkstra

from city_models.network import make_network
from kernels.routing import (
    Graph,
    compute_route_table,
    compute_tree_from,
    compute_tree_to,
    extract_path,
    graph_of,
    route_table,
)
from tests.reference.routing import ref_path_links, ref_route_table, ref_tree_from, ref_tree_to

ATOL = 1e-9


# ---------------------------------------------------------------- builders


def _graph(n: int, src, dst) -> Graph:
    src = np.asarray(src, dtype=np.int32)
    dst = np.asarray(dst, dtype=np.int32)
    net = make_network(
        x=np.zeros(n),
        y=np.zeros(n),
        src=src,
        dst=dst,
        length_m=np.ones(src.size),
        lanes=1.0,
        free_speed_mps=10.0,
    )
    return graph_of(net)


def _random_case(seed: int, n: int = 40, m: int = 120):
    """Random graph with parallel links, self-loops, isolated nodes, zero and inf weights."""
    rng = np.random.default_rng(seed)
    src = rng.integers(0, n, m)
    dst = rng.integers(0, n, m)
    # isolated nodes: nothing touches the last 3 nodes
    src = np.where(src >= n - 3, 0, src)
    dst = np.where(dst >= n - 3, 1, dst)
    # parallel links: duplicate some links with other weights
    dup = rng.choice(m, m // 5, replace=False)
    src = np.concatenate([src, src[dup]])
    dst = np.concatenate([dst, dst[dup]])
    w = rng.uniform(0.0, 100.0, src.size)
    w[rng.random(src.size) < 0.1] = 0.0
    w[rng.random(src.size) < 0.1] = np.inf
    ties = rng.random(src.size) < 0.3  # small integer weights: many equal-length paths
    w[ties] = rng.integers(0, 4, int(ties.sum()))
    return _graph(n, src, dst), w


def _scipy_to(g: Graph, w: np.ndarray, dests) -> np.ndarray:
    """scipy distances to ``dests`` (reverse graph, min over parallel links)."""
    n = g.n_nodes
    dense = np.full((n, n), np.inf)
    np.minimum.at(dense, (g.dst, g.src), w)  # reversed graph
    np.fill_diagonal(dense, np.inf)
    csg = csgraph_from_dense(dense, null_value=np.inf)
    return dijkstra(csg, directed=True, indices=np.asarray(dests, dtype=np.int64)).reshape(len(dests), n)


def _assert_valid_tree_to(g: Graph, w: np.ndarray, dest: int, dist: np.ndarray, nxt: np.ndarray) -> None:
    """``next_link`` describes shortest paths: consistent, finite, acyclic."""
    n = g.n_nodes
    assert dist[dest] == 0.0 and nxt[dest] == -1
    reach = np.isfinite(dist)
    assert np.all(nxt[~reach] == -1)
    nodes = np.flatnonzero(reach & (np.arange(n) != dest))
    links = nxt[nodes]
    assert np.all(links >= 0)
    assert np.all(g.src[links] == nodes)
    assert np.all(np.isfinite(w[links]))
    np.testing.assert_allclose(dist[nodes], w[links] + dist[g.dst[links]], rtol=0, atol=ATOL)
    for v in nodes:
        path = extract_path(g, int(v), nxt)
        assert path.size and g.dst[path[-1]] == dest
        np.testing.assert_allclose(w[path].sum(), dist[v], rtol=0, atol=ATOL)


# ------------------------------------------------------------------- trees


@pytest.mark.parametrize("seed", range(6))
def test_tree_to_matches_reference_and_scipy(seed):
    g, w = _random_case(seed)
    for dest in (0, 1, 7, g.n_nodes - 1):
        dist, nxt = compute_tree_to(g, dest, w)
        assert dist.dtype == np.float64 and nxt.dtype == np.int32
        rdist, _ = ref_tree_to(dest, g.src, g.dst, w, g.n_nodes)
        np.testing.assert_allclose(dist, rdist, rtol=0, atol=ATOL)
        np.testing.assert_allclose(dist, _scipy_to(g, w, [dest])[0], rtol=0, atol=ATOL)
        _assert_valid_tree_to(g, w, dest, dist, nxt)


@pytest.mark.parametrize("seed", range(6))
def test_tree_from_matches_reference_and_scipy(seed):
    g, w = _random_case(100 + seed)
    n = g.n_nodes
    dense = np.full((n, n), np.inf)
    np.minimum.at(dense, (g.src, g.dst), w)
    np.fill_diagonal(dense, np.inf)
    sp = dijkstra(csgraph_from_dense(dense, null_value=np.inf), directed=True, indices=[0, 5])
    for i, orig in enumerate((0, 5)):
        dist, pred = compute_tree_from(g, orig, w)
        rdist, _ = ref_tree_from(orig, g.src, g.dst, w, n)
        np.testing.assert_allclose(dist, rdist, rtol=0, atol=ATOL)
        np.testing.assert_allclose(dist, sp[i], rtol=0, atol=ATOL)
        reach = np.isfinite(dist)
        assert pred[orig] == -1 and np.all(pred[~reach] == -1)
        nodes = np.flatnonzero(reach & (np.arange(n) != orig))
        links = pred[nodes]
        assert np.all(g.dst[links] == nodes)
        np.testing.assert_allclose(dist[nodes], dist[g.src[links]] + w[links], rtol=0, atol=ATOL)


def test_closed_links_are_never_used():
    # 0 -> 1 -> 2 cheap but 1 -> 2 closed; 0 -> 2 expensive
    g = _graph(3, [0, 1, 0], [1, 2, 2])
    w = np.array([1.0, np.inf, 50.0])
    dist, nxt = compute_tree_to(g, 2, w)
    assert dist.tolist() == [50.0, np.inf, 0.0]
    assert nxt.tolist() == [2, -1, -1]
    # close everything: only the destination is reachable
    dist, nxt = compute_tree_to(g, 2, np.full(3, np.inf))
    assert dist.tolist() == [np.inf, np.inf, 0.0] and nxt.tolist() == [-1, -1, -1]


def test_zero_weight_links_and_cycles():
    # zero-weight cycle 0 <-> 1 plus 1 -> 2
    g = _graph(3, [0, 1, 1], [1, 0, 2])
    w = np.array([0.0, 0.0, 3.0])
    dist, nxt = compute_tree_to(g, 2, w)
    assert dist.tolist() == [3.0, 3.0, 0.0]
    _assert_valid_tree_to(g, w, 2, dist, nxt)


def test_parallel_links_take_the_cheapest():
    g = _graph(2, [0, 0, 0], [1, 1, 1])
    w = np.array([5.0, 2.0, 9.0])
    dist, nxt = compute_tree_to(g, 1, w)
    assert dist[0] == 2.0 and nxt[0] == 1
    dist, pred = compute_tree_from(g, 0, w)
    assert dist[1] == 2.0 and pred[1] == 1


def test_single_node_and_no_links():
    g = _graph(1, [], [])
    w = np.zeros(0)
    dist, nxt = compute_tree_to(g, 0, w)
    assert dist.tolist() == [0.0] and nxt.tolist() == [-1]
    dist, pred = compute_tree_from(g, 0, w)
    assert dist.tolist() == [0.0] and pred.tolist() == [-1]
    g = _graph(4, [], [])
    nl, d = compute_route_table(g, np.array([2, 3]), w)
    assert np.all(nl == -1)
    assert d[0].tolist() == [np.inf, np.inf, 0.0, np.inf]
    assert extract_path(g, 0, nl[0]).size == 0


# ------------------------------------------------------------------- table


@pytest.mark.parametrize("seed", range(4))
def test_route_table_matches_reference_and_scipy(seed):
    g, w = _random_case(200 + seed, n=60, m=200)
    rng = np.random.default_rng(seed)
    dests = rng.integers(0, g.n_nodes, 25).astype(np.int32)
    dests[:2] = dests[2]  # repeated destinations
    nxt, dist = compute_route_table(g, dests, w)
    rnxt, rdist = ref_route_table(dests, g.src, g.dst, w, g.n_nodes)
    np.testing.assert_allclose(dist, rdist, rtol=0, atol=ATOL)
    np.testing.assert_allclose(dist, _scipy_to(g, w, dests), rtol=0, atol=ATOL)
    for r, d in enumerate(dests):
        _assert_valid_tree_to(g, w, int(d), dist[r], nxt[r])
    # next links without distances are the same table
    nxt2, none = compute_route_table(g, dests, w, with_dist=False)
    assert none is None
    np.testing.assert_array_equal(nxt2, nxt)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("spread", [1.0, 1e4])
def test_route_table_bucket_queue_matches_reference(seed, spread):
    """Positive weights take the bucket-queue (Dial) search; its distances are exact."""
    g, _ = _random_case(300 + seed, n=60, m=220)
    rng = np.random.default_rng(seed)
    w = rng.uniform(1.0, 1.0 + spread, g.n_links)
    w[rng.random(g.n_links) < 0.1] = np.inf
    w[rng.random(g.n_links) < 0.2] = w[np.isfinite(w)].min()  # many links at the bucket width
    dests = np.arange(g.n_nodes, dtype=np.int32)
    nxt, dist = compute_route_table(g, dests, w)
    rnxt, rdist = ref_route_table(dests, g.src, g.dst, w, g.n_nodes)
    np.testing.assert_allclose(dist, rdist, rtol=1e-12, atol=ATOL)
    np.testing.assert_allclose(dist, _scipy_to(g, w, dests), rtol=1e-12, atol=ATOL)
    for r, d in enumerate(dests):
        _assert_valid_tree_to(g, w, int(d), dist[r], nxt[r])


def test_route_table_only_touches_active_rows():
    g, w = _random_case(7)
    dests = np.array([0, 1, 2, 3], dtype=np.int32)
    active = np.array([True, False, True, False])
    nl = np.full((4, g.n_nodes), 12345, dtype=np.int32)
    dd = np.full((4, g.n_nodes), -7.0)
    out_nl, out_d = compute_route_table(g, dests, w, active=active, next_link=nl, dist=dd)
    assert out_nl is nl and out_d is dd
    assert np.all(nl[1] == 12345) and np.all(nl[3] == 12345)
    assert np.all(dd[1] == -7.0) and np.all(dd[3] == -7.0)
    for r in (0, 2):
        rdist, _ = ref_tree_to(int(dests[r]), g.src, g.dst, w, g.n_nodes)
        np.testing.assert_allclose(dd[r], rdist, rtol=0, atol=ATOL)
        _assert_valid_tree_to(g, w, int(dests[r]), dd[r], nl[r])
    # the raw kernel with no distance rows
    nl2 = np.full((4, g.n_nodes), 99, dtype=np.int32)
    route_table(g, dests, w, active=active, next_link_out=nl2, dist_out=np.empty((0, g.n_nodes)))
    np.testing.assert_array_equal(nl2[[0, 2]], nl[[0, 2]])
    assert np.all(nl2[[1, 3]] == 99)


def test_route_table_many_destinations_grid():
    # larger than the kernel's chunk count, so chunks hold several destinations
    nx = 12
    idx = np.arange(nx * nx).reshape(nx, nx)
    a, b = idx[:, :-1].ravel(), idx[:, 1:].ravel()
    c, d = idx[:-1, :].ravel(), idx[1:, :].ravel()
    g = _graph(nx * nx, np.concatenate([a, b, c, d]), np.concatenate([b, a, d, c]))
    w = np.random.default_rng(3).uniform(1, 10, g.n_links)
    dests = np.arange(g.n_nodes, dtype=np.int64)
    dests = np.concatenate([dests, dests, dests])
    nxt, dist = compute_route_table(g, dests, w)
    np.testing.assert_allclose(dist, _scipy_to(g, w, dests), rtol=0, atol=ATOL)
    for r in range(0, dests.size, 37):
        _assert_valid_tree_to(g, w, int(dests[r]), dist[r], nxt[r])


def test_empty_destination_list():
    g, w = _random_case(1)
    nl, d = compute_route_table(g, np.zeros(0, dtype=np.int32), w)
    assert nl.shape == (0, g.n_nodes) and d.shape == (0, g.n_nodes)
    nl, d = compute_route_table(g, [], w, with_dist=False)
    assert nl.shape == (0, g.n_nodes) and d is None


def test_path_links_matches_reference():
    g, w = _random_case(11)
    dist, nxt = compute_tree_to(g, 3, w)
    for v in range(g.n_nodes):
        np.testing.assert_array_equal(extract_path(g, v, nxt), ref_path_links(v, nxt, g.dst))
    assert extract_path(g, 3, nxt).size == 0
    # a corrupt row with a cycle stops after n_nodes steps
    g2 = _graph(2, [0, 1], [1, 0])
    cyc = np.array([0, 1], dtype=np.int32)
    assert extract_path(g2, 0, cyc).size == 2


# ---------------------------------------------------------------- wrappers


def test_graph_of_accepts_network_and_duck_types():
    g, _ = _random_case(0)

    class Duck:
        pass

    duck = Duck()
    for f in Graph._fields:
        setattr(duck, f, getattr(g, f).astype(np.int64))
    g2 = graph_of(duck)
    for f in Graph._fields:
        np.testing.assert_array_equal(getattr(g2, f), getattr(g, f))
    assert g2.src.dtype == np.int32 and g2.out_indptr.dtype == np.int64


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: delattr(d, "in_links"), "no attribute"),
        (lambda d: setattr(d, "src", d.src.astype(float)), "'src' must hold integers"),
        (lambda d: setattr(d, "dst", d.dst[:-1]), "'dst' has"),
        (lambda d: setattr(d, "src", np.where(np.arange(d.src.size) == 0, 99, d.src)), "outside 0..2"),
        (lambda d: setattr(d, "out_indptr", np.array([0, 2, 1, 3])), "not a CSR row pointer"),
        (lambda d: setattr(d, "out_links", np.array([1, 0, 2])), "disagree with 'src'"),
        (lambda d: setattr(d, "in_links", np.array([0, 0, 1])), "exactly once"),
        (lambda d: setattr(d, "src", d.src.reshape(1, -1)), "must be 1-D"),
    ],
)
def test_graph_of_errors(mutate, message):
    g = _graph(3, [0, 1, 2], [1, 2, 0])

    class Duck:
        pass

    duck = Duck()
    for f in Graph._fields:
        setattr(duck, f, np.array(getattr(g, f)))
    mutate(duck)
    with pytest.raises(ValueError, match=message):
        graph_of(duck)


def test_wrapper_errors():
    g = _graph(3, [0, 1, 2], [1, 2, 0])
    w = np.ones(3)
    with pytest.raises(ValueError, match="weight must be a float64"):
        compute_tree_to(g, 0, np.ones(3, dtype=np.float32))
    with pytest.raises(ValueError, match="weight must be a float64"):
        compute_tree_to(g, 0, [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match=r"shape \(n_links,\) = \(3,\)"):
        compute_tree_to(g, 0, np.ones(4))
    with pytest.raises(ValueError, match="NaN at link"):
        compute_tree_to(g, 0, np.array([1.0, np.nan, 1.0]))
    with pytest.raises(ValueError, match=">= 0"):
        compute_tree_from(g, 0, np.array([1.0, -1.0, 1.0]))
    with pytest.raises(ValueError, match="dest 3 is outside 0..2"):
        compute_tree_to(g, 3, w)
    with pytest.raises(ValueError, match="orig -1 is outside 0..2"):
        compute_tree_from(g, -1, w)
    with pytest.raises(ValueError, match="integer node index"):
        compute_tree_to(g, 1.0, w)
    with pytest.raises(ValueError, match="build it with graph_of"):
        compute_tree_to(tuple(g), 0, w)
    with pytest.raises(ValueError, match=r"dests has 1 node index\(es\) outside 0..2.*dests\[1\] = 5"):
        compute_route_table(g, np.array([0, 5]), w)
    with pytest.raises(ValueError, match="dests must hold integer"):
        compute_route_table(g, np.array([0.0, 1.0]), w)
    with pytest.raises(ValueError, match="dests must be a 1-D"):
        compute_route_table(g, np.array([[0, 1]]), w)
    with pytest.raises(ValueError, match="active must be a bool"):
        compute_route_table(g, np.array([0, 1]), w, active=np.array([1, 0]))
    with pytest.raises(ValueError, match=r"active must have shape \(len\(dests\),\) = \(2,\)"):
        compute_route_table(g, np.array([0, 1]), w, active=np.ones(3, dtype=bool))
    with pytest.raises(ValueError, match="next_link must be a int32"):
        compute_route_table(g, np.array([0, 1]), w, next_link=np.zeros((2, 3), dtype=np.int64))
    with pytest.raises(ValueError, match=r"dist must have shape .* = \(2, 3\)"):
        compute_route_table(g, np.array([0, 1]), w, dist=np.zeros((3, 3)))
    with pytest.raises(ValueError, match="next_link_row must be an int32"):
        extract_path(g, 0, np.zeros(3, dtype=np.int64))
    with pytest.raises(ValueError, match="next_link_row has link ids outside"):
        extract_path(g, 0, np.array([0, 7, -1], dtype=np.int32))


@pytest.mark.parametrize("seed", range(5))
def test_stale_rows_flags_every_row_whose_distances_change(seed):
    from kernels.routing import LinkChanges, changed_links, stale_rows

    g, _ = _random_case(500 + seed, n=50, m=180)
    rng = np.random.default_rng(seed)
    w0 = rng.uniform(1.0, 20.0, g.n_links)
    w0[rng.random(g.n_links) < 0.05] = np.inf
    w1 = w0.copy()
    change = rng.random(g.n_links) < 0.04
    w1[change] = np.where(rng.random(change.sum()) < 0.5, w1[change] * 3.0, w1[change] / 3.0)
    w1[rng.random(g.n_links) < 0.02] = np.inf  # closures
    w1[(w0 == np.inf) & (rng.random(g.n_links) < 0.5)] = 7.0  # reopenings
    dests = np.arange(g.n_nodes, dtype=np.int32)
    _, old = compute_route_table(g, dests, w0)
    _, new = compute_route_table(g, dests, w1)
    active = np.ones(g.n_nodes, bool)
    active[::7] = False
    out = np.zeros(g.n_nodes, bool)
    ch_indptr, ch_links = changed_links(w0[None, :], w1)
    assert ch_indptr.tolist() == [0, ch_links.size] and np.all(w0[ch_links] != w1[ch_links])
    assert np.array_equal(np.sort(ch_links), np.flatnonzero(w0 != w1))  # inf == inf is no change
    stale_rows(
        g,
        old,
        w1,
        LinkChanges(ch_indptr, ch_links),
        active=active,
        row_basis=np.zeros(g.n_nodes, np.int64),
        basis_weights=w0[None, :],
        out=out,
    )
    changed = np.array([not np.array_equal(old[r], new[r]) for r in range(g.n_nodes)])
    assert not out[~active].any()
    # every active row whose distances change is flagged; unflagged rows are exact as they are
    assert np.all(out[active & changed])
    assert changed[active].any() and (~out[active]).any()  # the case exercises both outcomes


@pytest.mark.parametrize("zero_weights", [False, True])
def test_route_table_distances_only(zero_weights):
    """Without next-link rows (how the traffic model calls it) the distances are the same."""
    g, w = _random_case(21)
    if not zero_weights:  # positive weights: the bucket queue
        w = np.where(np.isfinite(w), np.maximum(w, 0.5), np.inf)
    dests = np.arange(g.n_nodes, dtype=np.int32)
    _, dist = compute_route_table(g, dests, w)
    only = np.full((g.n_nodes, g.n_nodes), -1.0)
    route_table(
        g,
        dests,
        w,
        active=np.ones(g.n_nodes, np.bool_),
        next_link_out=np.empty((0, g.n_nodes), np.int32),
        dist_out=only,
    )
    np.testing.assert_array_equal(only, dist)
    np.testing.assert_allclose(only, _scipy_to(g, w, dests), rtol=0, atol=ATOL)


@pytest.mark.parametrize("seed", range(3))
def test_stale_rows_on_a_grid_of_ties_flags_exactly_enough(seed):
    """A uniform grid: nearly every link lies on some shortest path to every destination.
    A few links getting slower changes only the rows where they had no equal way round;
    every row whose distances change is flagged, and most of the others are left alone."""
    from city_models.network import make_network
    from kernels.routing import LinkChanges, changed_links, graph_of, stale_rows

    n = 8
    ii, jj = np.meshgrid(np.arange(n), np.arange(n))
    node = lambda i, j: j * n + i  # noqa: E731
    src, dst = [], []
    for j in range(n):
        for i in range(n):
            for di, dj in ((1, 0), (0, 1), (-1, 0), (0, -1)):
                if 0 <= i + di < n and 0 <= j + dj < n:
                    src.append(node(i, j))
                    dst.append(node(i + di, j + dj))
    net = make_network(
        x=ii.ravel() * 100.0,
        y=jj.ravel() * 100.0,
        src=np.array(src, np.int32),
        dst=np.array(dst, np.int32),
        length_m=np.full(len(src), 100.0),
        lanes=np.ones(len(src)),
        free_speed_mps=np.full(len(src), 10.0),
        capacity_vph=np.full(len(src), 1800.0),
    )
    g = graph_of(net)
    rng = np.random.default_rng(seed)
    w0 = np.full(g.n_links, 10.0)
    w1 = w0.copy()
    slow = rng.choice(g.n_links, 4, replace=False)
    w1[slow] = 13.0
    dests = np.arange(g.n_nodes, dtype=np.int32)
    _, old = compute_route_table(g, dests, w0)
    _, new = compute_route_table(g, dests, w1)
    out = np.zeros(g.n_nodes, bool)
    ch_indptr, ch_links = changed_links(w0[None, :], w1)
    stale_rows(
        g,
        old,
        w1,
        LinkChanges(ch_indptr, ch_links),
        active=np.ones(g.n_nodes, bool),
        row_basis=np.zeros(g.n_nodes, np.int64),
        basis_weights=w0[None, :],
        out=out,
    )
    changed = np.array([not np.array_equal(old[r], new[r]) for r in range(g.n_nodes)])
    assert np.all(out[changed])
    # the old rule (a slower link on any shortest path flags the row) flagged almost all of them
    on_path = np.array([any(old[r, g.src[b]] == w0[b] + old[r, g.dst[b]] for b in slow) for r in range(g.n_nodes)])
    assert on_path.mean() > 0.4
    assert out.sum() < 0.5 * on_path.sum()
