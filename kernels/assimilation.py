"""Ensemble Kalman filter update (perturbed observations), for parameters or states.

Given an ensemble of ``N`` members with parameters ``theta[N, p]`` and their
predictions of ``m`` observations ``pred[N, m]``, observations ``obs[m]`` with
error variances ``obs_var[m]`` and, per member, observation perturbations
``eps[N, m]`` (drawn by the caller from ``N(0, obs_var)``, so the kernel holds no
randomness), the update is the stochastic EnKF (Evensen 2003; Burgers et al. 1998)::

    A = theta - mean(theta),  Y = pred - mean(pred)          (anomalies)
    C_ty = A' Y / (N - 1),     C_yy = Y' Y / (N - 1)
    K = C_ty (C_yy + diag(obs_var))^-1
    theta_i <- theta_i + K (obs + eps_i - pred_i)

solved in observation space as ``(C_yy + R) X = (obs + eps_i - pred_i)``.
``inflation`` multiplies the parameter anomalies before the update (>= 1) to
keep a small ensemble from collapsing.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from basics.errors import InputError
from kernels._jit import Float, Int, njit
from kernels.route_choice import choice_weight, near_shortest
from kernels.routing import Graph

__all__ = ["enkf_update", "sensor_crossings"]


@njit(cache=True)
def _enkf(
    theta: np.ndarray, pred: np.ndarray, obs: np.ndarray, obs_var: np.ndarray, eps: np.ndarray, inflation: Float
) -> np.ndarray:
    n, p = theta.shape
    m = obs.shape[0]
    out = theta.copy()
    if n < 2 or m == 0:
        return out
    tmean = np.zeros(p)
    ymean = np.zeros(m)
    for i in range(n):
        tmean += theta[i]
        ymean += pred[i]
    tmean /= n
    ymean /= n
    A = np.empty((n, p))
    Y = np.empty((n, m))
    for i in range(n):
        A[i] = (theta[i] - tmean) * inflation
        Y[i] = pred[i] - ymean
    base = np.empty((n, p))
    for i in range(n):
        base[i] = tmean + A[i]
    S = (Y.T @ Y) / (n - 1)
    for j in range(m):
        S[j, j] += obs_var[j]
    D = np.empty((m, n))
    for i in range(n):
        for j in range(m):
            D[j, i] = obs[j] + eps[i, j] - pred[i, j]
    X = np.linalg.solve(S, D)  # (m, n)
    Cty = (A.T @ Y) / (n - 1)  # (p, m)
    inc = Cty @ X  # (p, n)
    for i in range(n):
        out[i] = base[i] + inc[:, i]
    return out


def enkf_update(
    theta: npt.ArrayLike,
    pred: npt.ArrayLike,
    obs: npt.ArrayLike,
    obs_var: npt.ArrayLike,
    eps: npt.ArrayLike,
    *,
    inflation: float = 1.0,
) -> np.ndarray:
    """The updated ensemble (see the module docstring); inputs are not changed.

    Parameters
    ----------
    theta : (N, p) float array
    pred : (N, m) float array
    obs, obs_var : (m,) float arrays (``obs_var`` > 0)
    eps : (N, m) float array of observation perturbations
    inflation : float >= 1
    """
    theta = np.ascontiguousarray(theta, np.float64)
    pred = np.ascontiguousarray(pred, np.float64)
    obs = np.ascontiguousarray(obs, np.float64)
    obs_var = np.ascontiguousarray(obs_var, np.float64)
    eps = np.ascontiguousarray(eps, np.float64)
    n, p = theta.shape
    if pred.ndim != 2 or pred.shape[0] != n or eps.shape != pred.shape:
        raise InputError(f"pred and eps must be ({n}, m); got {pred.shape} and {eps.shape}")
    m = pred.shape[1]
    if obs.shape != (m,) or obs_var.shape != (m,):
        raise InputError(f"obs and obs_var must have {m} entries")
    if m and not np.all(obs_var > 0):
        raise InputError("observation error variances must be positive")
    if not np.all(np.isfinite(pred)) or not np.all(np.isfinite(obs)):
        raise InputError("predictions and observations must be finite (drop missing ones first)")
    if not inflation >= 1.0:
        raise InputError(f"inflation must be >= 1, got {inflation}")
    return _enkf(theta, pred, obs, obs_var, eps, float(inflation))


# ----------------------------------------------------------------------------
# Where trips cross the sensor links: the analytic observation operator
# ----------------------------------------------------------------------------


class _RouteRows(NamedTuple):
    """The route rows a crossing pass follows: potentials, each row's nodes by decreasing
    potential (``order``) and each node's place in it (``rank``), the link weights.
    """

    pot: np.ndarray  # float64 [k, n_nodes]
    order: np.ndarray  # int64 [k, n_nodes]
    rank: np.ndarray  # int64 [k, n_nodes]
    weight: np.ndarray  # float64 [n_links]


class _SensorNet(NamedTuple):
    """Out-adjacency (CSR), head node, open flag and sensor index (-1: none) of each link."""

    out_indptr: np.ndarray  # int64
    out_links: np.ndarray  # int64
    l_dst: np.ndarray  # int64
    is_open: np.ndarray  # uint8
    sensor_of_link: np.ndarray  # int64


class _Crossings(NamedTuple):
    """Output of a crossing pass (zero-length arrays: count only)."""

    trip: np.ndarray  # int64
    sensor: np.ndarray  # int64
    share: np.ndarray  # float64
    dt: np.ndarray  # float64


@njit(cache=True)
def _crossings(
    orig: np.ndarray,
    row: np.ndarray,
    rr: _RouteRows,
    net: _SensorNet,
    band: tuple[Float, Float],
    out: _Crossings,
    frac: np.ndarray,
) -> Int:
    """Sensor crossings of every trip into ``out`` (see :func:`sensor_crossings`); returns
    how many there are (``out`` with no room: only counts them).  ``frac`` (zeros, one per
    node) is left all zeros.

    The fields are unpacked once into locals and the loop over a node's out-links stays
    inline: as an inlined helper taking the NamedTuples it ran 2.3 times slower (issue 14's
    micro-benchmark: 3,000 trips on the small grid, 5.2 ms against 12 ms).
    """
    pot, order, rank, weight = rr.pot, rr.order, rr.rank, rr.weight
    out_indptr, out_links, l_dst, is_open, sensor_of_link = net
    out_trip, out_sensor, out_share, out_dt = out
    tol, scale = band
    write = out_trip.shape[0] > 0
    n_nodes = pot.shape[1]
    k = 0
    for j in range(orig.shape[0]):
        r = row[j]
        o = orig[j]
        if r < 0 or not pot[r, o] < np.inf:
            continue
        p0 = pot[r, o]
        frac[o] = 1.0
        for pos in range(rank[r, o], n_nodes):
            node = order[r, pos]
            f = frac[node]
            if f == 0.0:
                continue
            frac[node] = 0.0
            dn = pot[r, node]
            lim, total = near_shortest(node, dn, r, out_indptr, out_links, l_dst, is_open, pot, weight, tol, scale)
            if total == 0.0:
                continue
            for q in range(out_indptr[node], out_indptr[node + 1]):
                b = out_links[q]
                dm = pot[r, l_dst[b]]
                if not (dm < dn and is_open[b] != 0):
                    continue
                w = choice_weight(weight[b] + dm, lim, scale)
                if w > 0.0:
                    share = f * (w / total)
                    frac[l_dst[b]] += share
                    s = sensor_of_link[b]
                    if s >= 0:
                        if write:
                            out_trip[k] = j
                            out_sensor[k] = s
                            out_share[k] = share
                            out_dt[k] = p0 - dm
                        k += 1
    return k


def _checked_arrays(
    graph: Graph,
    orig: Any,
    row: Any,
    pot: Any,
    weight: Any,
    is_open: Any,
    sensor_of_link: Any,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, _SensorNet, np.ndarray]:
    """The arguments of :func:`sensor_crossings` as the kernel's contiguous arrays, checked."""
    if not isinstance(graph, Graph):
        raise InputError(f"graph must be a kernels.routing.Graph (graph_of(network)), got {type(graph).__name__}")
    orig = np.ascontiguousarray(orig, np.int64)
    row = np.ascontiguousarray(row, np.int64)
    pot = np.ascontiguousarray(pot, np.float64)
    weight = np.ascontiguousarray(weight, np.float64)
    is_open = np.ascontiguousarray(is_open, np.uint8)
    out_indptr = np.ascontiguousarray(graph.out_indptr, np.int64)
    out_links = np.ascontiguousarray(graph.out_links, np.int64)
    l_dst = np.ascontiguousarray(graph.dst, np.int64)
    sensor_of_link = np.ascontiguousarray(sensor_of_link, np.int64)
    if orig.shape != row.shape or orig.ndim != 1:
        raise InputError(f"orig and row must be 1-D of one length, got {orig.shape} and {row.shape}")
    if pot.ndim != 2:
        raise InputError(f"pot must be (rows, n_nodes), got shape {pot.shape}")
    n_rows, n_nodes = pot.shape
    n_links = l_dst.shape[0]
    if weight.shape != (n_links,) or is_open.shape != (n_links,) or sensor_of_link.shape != (n_links,):
        raise InputError("weight, is_open and sensor_of_link need one entry per link")
    if out_indptr.shape != (n_nodes + 1,) or out_links.shape != (n_links,):
        raise InputError("graph.out_indptr / out_links do not match pot's nodes and the links")
    if orig.size and (orig.min() < 0 or orig.max() >= n_nodes or row.max() >= n_rows):
        raise InputError("orig or row out of range")
    return orig, row, pot, _SensorNet(out_indptr, out_links, l_dst, is_open, sensor_of_link), weight


def sensor_crossings(
    graph: Graph,
    orig: Any,
    row: Any,
    pot: Any,
    weight: Any,
    is_open: Any,
    sensor_of_link: Any,
    *,
    tol: float = 0.0,
    scale: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Which sensor links each trip crosses, with what probability and when.

    A trip from node ``orig[j]`` to the destination of route row ``row[j]``
    (``pot[row]``: shortest travel times to it from every node, for link travel
    times ``weight``) follows the traffic model's route choice: at each node it
    takes one of the open out-links that get strictly closer to the destination,
    with the probabilities of :func:`kernels.route_choice.near_shortest` (equal among
    those costing at most ``(1 + tol)`` times the best, a logit of scale ``scale``
    seconds beyond that).  The expected number of its passages over each link
    is propagated through the nodes in order of decreasing potential.  Checks the
    arguments, then runs the kernel :func:`_crossings` twice (count, then fill).

    Parameters
    ----------
    graph : kernels.routing.Graph
        The network's out-adjacency (CSR) and each link's head node.
    orig, row : int arrays (n,)
        Origin node and route row of each trip (``row < 0``: skipped).
    pot : float64[k, n_nodes]
        Shortest travel time from each node to each row's destination (``inf``: no route).
    weight : float64[n_links]
        Link travel times the potentials were computed with.
    is_open : uint8 or bool[n_links]
    sensor_of_link : int array (n_links,)
        Sensor index of each link, ``-1`` for a link without one.
    tol : float
        Relative cost band within which out-links count as equally good.
    scale : float
        Logit scale (s) of the choice beyond the band; 0: none beyond it.

    Returns
    -------
    trip, sensor : int64 arrays (c,)
        Trip and sensor of each crossing.
    share : float64 (c,)
        Probability that the trip crosses that sensor link.
    dt : float64 (c,)
        Seconds from the trip's departure until it leaves the sensor link
        (``pot[row, orig] - pot[row, head of the link]``).
    """
    orig, row, pot, net, weight = _checked_arrays(graph, orig, row, pot, weight, is_open, sensor_of_link)
    if not tol >= 0:
        raise InputError(f"tol must be >= 0, got {tol}")
    if not (np.isfinite(scale) and scale >= 0):
        raise InputError(f"scale must be a finite number >= 0, got {scale}")
    n_rows, n_nodes = pot.shape
    order = np.argsort(-pot, axis=1, kind="stable")
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(n_nodes)[None, :].repeat(n_rows, axis=0), axis=1)
    rr = _RouteRows(pot, order, rank, weight)
    frac = np.zeros(n_nodes)
    band = (float(tol), float(scale))
    e_i, e_f = np.empty(0, np.int64), np.empty(0, np.float64)
    c = _crossings(orig, row, rr, net, band, _Crossings(e_i, e_i, e_f, e_f), frac)
    out = _Crossings(np.empty(c, np.int64), np.empty(c, np.int64), np.empty(c), np.empty(c))
    _crossings(orig, row, rr, net, band, out, frac)
    return out.trip, out.sensor, out.share, out.dt
