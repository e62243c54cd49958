"""Plain-numpy EnKF update: the textbook formula with an explicit gain matrix."""

from __future__ import annotations

import math

import numpy as np


def enkf_update(theta, pred, obs, obs_var, eps, *, inflation=1.0):
    theta = np.asarray(theta, float)
    n = theta.shape[0]
    if n < 2 or pred.shape[1] == 0:
        return theta.copy()
    tm = theta.mean(axis=0)
    A = (theta - tm) * inflation
    Y = pred - pred.mean(axis=0)
    C_ty = A.T @ Y / (n - 1)
    C_yy = Y.T @ Y / (n - 1)
    K = C_ty @ np.linalg.inv(C_yy + np.diag(obs_var))
    return np.array([tm + A[i] + K @ (obs + eps[i] - pred[i]) for i in range(n)])


def sensor_crossings(
    orig, row, pot, weight, is_open, out_indptr, out_links, l_dst, sensor_of_link, *, tol=0.0, scale=0.0
):
    """Enumerate every route a trip may take (recursively, with its probability) and
    list the sensor links on each: slow, but plainly what the kernel computes."""
    acc = {}

    def walk(j, r, node, prob, p0):
        dn = pot[r, node]
        cands = [b for b in out_links[out_indptr[node] : out_indptr[node + 1]] if pot[r, l_dst[b]] < dn and is_open[b]]
        if not cands:
            return
        cost = {b: weight[b] + pot[r, l_dst[b]] for b in cands}
        best = min(cost.values())
        lim = best + best * tol
        wt = {}
        for b in cands:  # weight 1 within the band, a logit of scale ``scale`` beyond it, none past 7 scales
            if cost[b] <= lim:
                wt[b] = 1.0
            elif scale > 0 and (cost[b] - lim) / scale < 7.0:
                wt[b] = math.exp(-(cost[b] - lim) / scale)
        total = sum(wt.values())
        for b, x in wt.items():
            p = prob * x / total
            if sensor_of_link[b] >= 0:
                key = (j, int(sensor_of_link[b]), float(p0 - pot[r, l_dst[b]]))
                acc[key] = acc.get(key, 0.0) + p
            walk(j, r, l_dst[b], p, p0)

    for j, (o, r) in enumerate(zip(orig, row, strict=False)):
        if r >= 0 and np.isfinite(pot[r, o]):
            walk(j, r, o, 1.0, pot[r, o])
    return acc
