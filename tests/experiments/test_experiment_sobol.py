"""Sensitivity designs through SALib: Ishigami's Sobol indices, Morris, Latin hypercube."""

from __future__ import annotations

import math

import numpy as np

from experiments.analyze import analyze
from experiments.runner import run_experiment
from tests.experiments.ishigami import S1, ST


def _ishigami(design):
    return {
        "name": "ishigami",
        "function": "tests.experiments.ishigami:ishigami",
        "factors": [{"name": n, "range": [-math.pi, math.pi]} for n in ("x1", "x2", "x3")],
        "design": design,
        "seed": 3,
    }


def test_ishigami_sobol_indices_within_salibs_intervals(tmp_path):
    run = run_experiment(_ishigami({"kind": "sobol", "base_samples": 1024}), tmp_path / "s.zarr", workers=0)
    assert run.done == 1024 * 5
    ind = analyze(tmp_path / "s.zarr")["sobol"].sel(kpi="y")
    for name, exact in (("S1", S1), ("ST", ST)):
        est, conf = ind[name].values, ind[f"{name}_conf"].values
        assert (np.abs(est - np.asarray(exact)) <= conf).all(), (name, est, exact, conf)


def test_morris_ranks_ishigami_factors(tmp_path):
    run_experiment(_ishigami({"kind": "morris", "trajectories": 40, "levels": 4}), tmp_path / "m.zarr", workers=0)
    ind = analyze(tmp_path / "m.zarr")["morris"].sel(kpi="y")
    mu_star = ind["mu_star"].values
    assert mu_star.shape == (3,) and np.isfinite(ind["mu_star_conf"].values).all()
    assert mu_star[1] > mu_star[2]  # x2 (a * sin^2) moves y more than x3 on its own


def test_latin_hypercube_covers_each_range(tmp_path):
    run_experiment(_ishigami({"kind": "lhs", "points": 20}), tmp_path / "l.zarr", workers=0)
    pts = analyze(tmp_path / "l.zarr")["points"]
    x1 = np.sort(pts["x1"].values)
    strata = np.floor((x1 + math.pi) / (2 * math.pi) * 20).astype(int)
    assert list(strata) == list(range(20))  # one point per stratum
