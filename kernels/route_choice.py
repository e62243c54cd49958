"""Route choice at a node: the near-shortest out-links, their logit weights and the keyed draw.

Building blocks inlined into the kernels (``inline="always"``), not entry points: the traffic
kernel (:func:`kernels.traffic.advance`) picks each vehicle's next link with
:func:`next_link`, and the observation operator (:func:`kernels.assimilation.sensor_crossings`)
spreads a trip over the same candidates with the same weights, so the two follow one rule.
They take scalars and the arrays their kernel has already checked, so they check nothing.

The rule: at node ``n``, bound for route row ``r`` (``pot[r]``: shortest travel time from every
node to the row's destination), a vehicle takes an open out-link ``b`` that gets strictly closer
(``pot[r, dst b] < pot[r, n]``); links whose cost ``weight[b] + pot[r, dst b]`` is within ``tol``
(relative) of the best count as equally good, and beyond that band a logit of scale ``scale``
seconds (none beyond ``CUTOFF`` scales) weighs them.  The draw is keyed to the decision
(:func:`choice_draw`), so it does not depend on the order of events.
"""

from __future__ import annotations

import numpy as np

from kernels._jit import Float, Int, njit

__all__ = ["CUTOFF", "choice_weight", "near_shortest", "choice_draw", "next_link"]

#: out-links costing more than ``CUTOFF`` logit scales beyond the band are never taken
CUTOFF = 7.0


@njit(cache=True, inline="always")
def choice_weight(c: Float, lim: Float, scale: Float) -> Float:
    """Unnormalised choice weight of an out-link whose cost (its own travel time plus
    the potential at its head) is ``c``, when costs up to ``lim`` count as best.
    """
    if c <= lim:
        return 1.0
    if scale > 0.0:
        x = (c - lim) / scale
        if x < CUTOFF:
            return float(np.exp(-x))
    return 0.0


@njit(cache=True, inline="always")
def near_shortest(
    n: Int,
    dn: Float,
    r: Int,
    out_indptr: np.ndarray,
    out_links: np.ndarray,
    l_dst: np.ndarray,
    l_open: np.ndarray,
    pot: np.ndarray,
    rw: np.ndarray,
    tol: Float,
    scale: Float,
) -> tuple[Float, Float]:  # noqa: PLR0913 (inlined: arrays unpacked, see advance)
    """The route choice's candidates at node ``n`` (route row ``r``, ``dn = pot[r, n]``):
    open out-links that get closer to the destination, each with the weight
    :func:`choice_weight` gives its cost, where costs up to ``lim`` (the best cost plus
    ``tol`` of it) count as best.  Returns ``(lim, total weight)``; ``(inf, 0)`` when
    none.  Shared by the traffic kernel and :func:`kernels.assimilation.sensor_crossings`,
    which must follow the same rule.
    """
    best = np.inf
    for k in range(out_indptr[n], out_indptr[n + 1]):
        b = out_links[k]
        dm = pot[r, l_dst[b]]
        if dm < dn and l_open[b] != 0:
            c = rw[b] + dm
            if c < best:
                best = c
    if best == np.inf:
        return best, 0.0
    lim = best + best * tol
    total: Float = 0.0
    for k in range(out_indptr[n], out_indptr[n + 1]):
        b = out_links[k]
        dm = pot[r, l_dst[b]]
        if dm < dn and l_open[b] != 0:
            total += choice_weight(rw[b] + dm, lim, scale)
    return lim, total


@njit(cache=True, inline="always")
def choice_draw(seed: np.uint64, v: Int, a: Int) -> Float:
    """A uniform number in [0, 1) keyed to (seed, vehicle ``v``, arriving link ``a``; -1 at
    its origin), which names the decision point: the same decision always draws the same
    number, whatever the order of events or the numbering of nodes (splitmix64 finaliser).
    """
    h = seed ^ (np.uint64(v) * np.uint64(0x9E3779B97F4A7C15))
    h ^= np.uint64(a + 2) * np.uint64(0xC2B2AE3D27D4EB4F)
    h ^= h >> np.uint64(30)
    h *= np.uint64(0xBF58476D1CE4E5B9)
    h ^= h >> np.uint64(27)
    h *= np.uint64(0x94D049BB133111EB)
    h ^= h >> np.uint64(31)
    return np.float64(h >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@njit(cache=True, inline="always")
def next_link(
    n: Int,
    a: Int,
    r: Int,
    v: Int,
    out_indptr: np.ndarray,
    out_links: np.ndarray,
    l_dst: np.ndarray,
    l_open: np.ndarray,
    pot: np.ndarray,
    rw: np.ndarray,
    tol: Float,
    scale: Float,
    seed: np.uint64,
) -> Int:  # noqa: PLR0913 (inlined)
    """The out-link vehicle ``v`` (route row ``r``) takes at node ``n``, coming from
    link ``a`` (-1: its origin); -1 if none.  A logit draw over :func:`near_shortest`'s
    candidates, keyed to the decision (:func:`choice_draw`).
    """
    dn = pot[r, n]
    if not dn < np.inf:
        return np.int64(-1)
    lim, total = near_shortest(n, dn, r, out_indptr, out_links, l_dst, l_open, pot, rw, tol, scale)
    if total == 0.0:
        return np.int64(-1)
    u = choice_draw(seed, v, a) * total
    last = np.int64(-1)
    for k in range(out_indptr[n], out_indptr[n + 1]):
        b = out_links[k]
        dm = pot[r, l_dst[b]]
        if dm < dn and l_open[b] != 0:
            w = choice_weight(rw[b] + dm, lim, scale)
            if w > 0.0:
                last = np.int64(b)
                u -= w
                if u < 0.0:
                    return last
    return last  # rounding left u at >= 0: the last candidate
