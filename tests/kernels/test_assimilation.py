"""The EnKF kernel against its plain-numpy reference, and on a case with a known answer."""

from __future__ import annotations

import numpy as np
import pytest

from kernels.assimilation import enkf_update
from tests.reference.assimilation import enkf_update as ref_update


@pytest.mark.parametrize("n, p, m, infl", [(8, 17, 60, 1.0), (5, 3, 2, 1.1), (2, 1, 1, 1.0), (30, 4, 100, 1.05)])
def test_kernel_matches_reference(n, p, m, infl):
    rng = np.random.default_rng(n * 100 + m)
    theta = rng.normal(size=(n, p))
    pred = theta @ rng.normal(size=(p, m)) + rng.normal(scale=0.1, size=(n, m))
    obs = rng.normal(size=m)
    var = rng.uniform(0.1, 2.0, m)
    eps = rng.normal(size=(n, m)) * np.sqrt(var)
    np.testing.assert_allclose(
        enkf_update(theta, pred, obs, var, eps, inflation=infl),
        ref_update(theta, pred, obs, var, eps, inflation=infl),
        rtol=1e-9,
        atol=1e-10,
    )


def test_edge_cases_leave_the_ensemble_alone():
    theta = np.arange(6.0).reshape(3, 2)
    assert np.array_equal(enkf_update(theta, np.zeros((3, 0)), np.zeros(0), np.zeros(0), np.zeros((3, 0))), theta)
    one = np.array([[1.0, 2.0]])
    assert np.array_equal(enkf_update(one, np.ones((1, 2)), np.zeros(2), np.ones(2), np.zeros((1, 2))), one)
    # identical predictions carry no information: nothing moves
    same = enkf_update(theta, np.ones((3, 4)), np.full(4, 5.0), np.ones(4), np.zeros((3, 4)))
    np.testing.assert_allclose(same, theta)


def test_linear_gaussian_case_converges_to_the_truth():
    """Estimate a scalar scale s from y = s * x + noise: the posterior mean approaches s."""
    rng = np.random.default_rng(1)
    n, true = 200, 1.3
    theta = rng.normal(1.0, 0.3, size=(n, 1))
    x = np.linspace(10, 50, 20)
    for _ in range(10):
        pred = theta * x
        obs = true * x + rng.normal(0, 1.0, x.size)
        var = np.ones(x.size)
        theta = enkf_update(theta, pred, obs, var, rng.normal(size=pred.shape))
    assert abs(theta.mean() - true) < 0.01
    assert theta.std() < 0.02


def test_bad_input_is_named():
    t = np.zeros((3, 2))
    with pytest.raises(ValueError, match="positive"):
        enkf_update(t, np.zeros((3, 2)), np.zeros(2), np.zeros(2), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="finite"):
        enkf_update(t, np.full((3, 2), np.nan), np.zeros(2), np.ones(2), np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"\(3, m\)"):
        enkf_update(t, np.zeros((2, 2)), np.zeros(2), np.ones(2), np.zeros((2, 2)))


# --------------------------------------------------------------- sensor crossings
def _grid(nx, ny, rng, *, integer=True):
    """A bidirectional nx x ny grid (ties galore with integer weights): arrays and a Graph."""
    from kernels.routing import Graph

    idx = lambda i, j: i * ny + j  # noqa: E731
    src, dst = [], []
    for i in range(nx):
        for j in range(ny):
            for di, dj in ((1, 0), (0, 1)):
                if i + di < nx and j + dj < ny:
                    src += [idx(i, j), idx(i + di, j + dj)]
                    dst += [idx(i + di, j + dj), idx(i, j)]
    src, dst = np.array(src, np.int32), np.array(dst, np.int32)
    n = nx * ny
    o = np.argsort(src, kind="stable")
    out_indptr = np.concatenate([[0], np.cumsum(np.bincount(src, minlength=n))]).astype(np.int64)
    i_ = np.argsort(dst, kind="stable")
    in_indptr = np.concatenate([[0], np.cumsum(np.bincount(dst, minlength=n))]).astype(np.int64)
    g = Graph(src, dst, out_indptr, o.astype(np.int32), in_indptr, i_.astype(np.int32))
    w = rng.integers(1, 4, src.size).astype(float) if integer else rng.uniform(1, 3, src.size)
    return g, w


def _as_dict(trip, sensor, share, dt):
    out = {}
    for j, s, p, t in zip(trip, sensor, share, dt, strict=False):
        key = (int(j), int(s), float(t))
        out[key] = out.get(key, 0.0) + float(p)
    return out


@pytest.mark.parametrize(
    "seed, tol, integer, scale",
    [
        (0, 0.0, True, 0.0),
        (1, 0.1, True, 0.0),
        (2, 0.02, False, 0.0),
        (3, 0.3, False, 0.0),
        (4, 0.02, False, 3.0),
        (5, 0.0, True, 0.5),
    ],
)
def test_crossings_match_the_route_enumeration(seed, tol, integer, scale):
    from kernels.assimilation import sensor_crossings
    from kernels.routing import compute_route_table
    from tests.reference.assimilation import sensor_crossings as ref

    rng = np.random.default_rng(seed)
    g, w = _grid(4, 5, rng, integer=integer)
    n, m = 20, g.src.size
    is_open = (rng.random(m) > 0.1).astype(np.uint8)
    weight = np.where(is_open == 1, w, np.inf)
    dests = np.array([0, 7, 19, 12], np.int32)
    _, pot = compute_route_table(g, dests, weight)
    sensor = np.full(m, -1)
    on = rng.choice(m, 12, replace=False)
    sensor[on] = np.arange(12)
    orig = rng.integers(0, n, 40)
    row = rng.integers(-1, 4, 40)  # some trips without a row
    orig[0], row[0] = dests[2], 2  # a trip already at its destination
    args = (orig, row, pot, weight, is_open, g.out_indptr, g.out_links, g.dst, sensor)
    got = _as_dict(*sensor_crossings(g, orig, row, pot, weight, is_open, sensor, tol=tol, scale=scale))
    want = ref(*args, tol=tol, scale=scale)
    assert got.keys() == want.keys()
    for k in want:
        assert got[k] == pytest.approx(want[k], rel=1e-12)
    # shares are probabilities, and a sensor on every link sees each routed trip leave its
    # origin with probability one in total over the origin's out-links
    assert all(0 < v <= 1 + 1e-12 for v in got.values())
    every = np.arange(m)
    trip, s, share, dt = sensor_crossings(g, orig, row, pot, weight, is_open, every, tol=tol, scale=scale)
    routed = [j for j in range(40) if row[j] >= 0 and 0 < pot[row[j], orig[j]] < np.inf]
    leave = np.array([share[(trip == j) & (g.src[s] == orig[j])].sum() for j in routed])
    np.testing.assert_allclose(leave, 1.0)
    # and the time to leave a link is the potential drop along the way, never negative
    assert (dt > 0).all()


def test_crossings_edge_cases():
    from kernels.assimilation import sensor_crossings
    from kernels.routing import compute_route_table

    rng = np.random.default_rng(5)
    g, w = _grid(3, 3, rng)
    m = g.src.size
    _, pot = compute_route_table(g, np.array([8], np.int32), w)
    ones = np.ones(m, np.uint8)
    every = np.arange(m)
    # no trips, no sensors, a trip with no row, an unreachable origin
    for orig, row, sensor in (
        (np.zeros(0, int), np.zeros(0, int), every),
        (np.array([0]), np.array([0]), np.full(m, -1)),
        (np.array([0]), np.array([-1]), every),
    ):
        t, s, p, d = sensor_crossings(g, orig, row, pot, w, ones, sensor)
        assert t.size == s.size == p.size == d.size == 0
    cut = np.full(m, np.inf)
    _, pot_cut = compute_route_table(g, np.array([8], np.int32), cut)
    t, *_ = sensor_crossings(g, np.array([0]), np.array([0]), pot_cut, cut, np.zeros(m, np.uint8), every)
    assert t.size == 0
    # a straight corridor: one route, each link crossed once, at the sum of the weights so far
    from kernels.routing import Graph

    src, dst = np.array([0, 1, 2], np.int32), np.array([1, 2, 3], np.int32)
    line = Graph(
        src,
        dst,
        np.array([0, 1, 2, 3, 3]),
        np.arange(3, dtype=np.int32),
        np.array([0, 0, 1, 2, 3]),
        np.arange(3, dtype=np.int32),
    )
    wl = np.array([10.0, 20.0, 5.0])
    _, pl = compute_route_table(line, np.array([3], np.int32), wl)
    t, s, p, d = sensor_crossings(
        line,
        np.array([0, 1]),
        np.array([0, 0]),
        pl,
        wl,
        np.ones(3, np.uint8),
        np.array([0, -1, 1]),
    )
    assert t.tolist() == [0, 0, 1] and s.tolist() == [0, 1, 1]
    np.testing.assert_allclose(p, 1.0)
    np.testing.assert_allclose(d, [10.0, 35.0, 25.0])
    with pytest.raises(ValueError, match="one entry per link"):
        sensor_crossings(
            line,
            np.array([0]),
            np.array([0]),
            pl,
            wl[:2],
            np.ones(3),
            np.array([0, -1, 1]),
        )
    with pytest.raises(ValueError, match="out of range"):
        sensor_crossings(
            line,
            np.array([9]),
            np.array([0]),
            pl,
            wl,
            np.ones(3),
            np.array([0, -1, 1]),
        )
