"""Optimisation designs: Optuna finds a clearly best candidate, trials over common random numbers."""

from __future__ import annotations

import numpy as np

from experiments.analyze import analyze
from experiments.runner import run_experiment
from experiments.store import open_results

PLACEMENT = {
    "name": "placement",
    "function": "tests.experiments.ishigami:station_distance",
    "factors": [{"name": "station", "choices": ["A", "B", "C", "D", "E"]}],
    "design": {"kind": "optimize", "kpi": "distance", "direction": "minimize", "trials": 14, "batch": 2},
    "replications": 3,
    "seed": 1,
}


def test_optimisation_finds_the_closest_station(tmp_path):
    run = run_experiment(PLACEMENT, tmp_path / "o.zarr", workers=0)
    assert run.done == 14 * 3 and run.failed == 0
    hist = analyze(tmp_path / "o.zarr")["history"]
    best = hist.attrs["best_point"]
    assert str(hist["station"].values[best]) == "B"
    assert hist["ci_low"].values[best] <= hist["value"].values[best] <= hist["ci_high"].values[best]
    assert np.all(np.diff(hist["best_so_far"].values[np.isfinite(hist["best_so_far"].values)]) <= 0)
    # common random numbers: every trial's replication r saw the same calls
    ds = open_results(tmp_path / "o.zarr")
    same = ds["station"].values == ds["station"].values[best]
    assert np.allclose(ds["distance"].values[same], ds["distance"].values[best])


def test_optimisation_resumes_where_it_stopped(tmp_path):
    short = {**PLACEMENT, "design": {**PLACEMENT["design"], "trials": 14}}
    first = run_experiment(short, tmp_path / "o.zarr", workers=0)
    again = run_experiment(short, tmp_path / "o.zarr", workers=0)
    assert again.skipped == first.runs and again.done == first.done
