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

import numpy as np
from numba import njit

__all__ = ["enkf_update"]


@njit(cache=True)
def _enkf(theta, pred, obs, obs_var, eps, inflation):
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


def enkf_update(theta, pred, obs, obs_var, eps, *, inflation: float = 1.0) -> np.ndarray:
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
        raise ValueError(f"pred and eps must be ({n}, m); got {pred.shape} and {eps.shape}")
    m = pred.shape[1]
    if obs.shape != (m,) or obs_var.shape != (m,):
        raise ValueError(f"obs and obs_var must have {m} entries")
    if m and not np.all(obs_var > 0):
        raise ValueError("observation error variances must be positive")
    if not np.all(np.isfinite(pred)) or not np.all(np.isfinite(obs)):
        raise ValueError("predictions and observations must be finite (drop missing ones first)")
    if not inflation >= 1.0:
        raise ValueError(f"inflation must be >= 1, got {inflation}")
    return _enkf(theta, pred, obs, obs_var, eps, float(inflation))
