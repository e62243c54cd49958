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
    np.testing.assert_allclose(enkf_update(theta, pred, obs, var, eps, inflation=infl),
                               ref_update(theta, pred, obs, var, eps, inflation=infl), rtol=1e-9, atol=1e-10)


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
