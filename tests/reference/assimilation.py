"""Plain-numpy EnKF update: the textbook formula with an explicit gain matrix."""

from __future__ import annotations

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
