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


def test_twin_station_placement_finds_the_node_of_the_calls(tmp_path):
    from tests.experiments.conftest import TINY

    drill = [{"at": f"07:0{i}", "type": "medical", "location": 12, "severity": 1} for i in range(1, 6)]
    stations = [
        {"name": "EMS", "kind": "ems", "node": 0, "units": {"ambulance": 5}},
        {"name": "Fire", "kind": "fire", "node": 20, "units": {"engine": 2, "ladder": 1}},
        {"name": "Police", "kind": "police", "node": 20, "units": {"police": 2}},
    ]
    base = {
        **TINY,
        "incidents": {"call_delay": "30s", "turnout": "30s", "rates": {}, "drill": drill},
        "resources": {
            "stations": stations,
            "hospitals": [{"name": "H", "node": 12, "beds": 10}],
            "include_city_facilities": False,
        },
    }
    spec = {
        "name": "placement_twin",
        "base": base,
        "factors": [{"name": "node", "path": "resources.stations[EMS].node", "choices": [0, 12, 24, 4]}],
        "design": {"kind": "optimize", "kpi": "response_p50_s_medical", "trials": 6, "batch": 2},
        "replications": 2,
        "seed": 1,
    }
    run = run_experiment(spec, tmp_path / "p.zarr", workers=0)
    assert run.failed == 0
    hist = analyze(tmp_path / "p.zarr")["history"]
    assert int(hist["node"].values[hist.attrs["best_point"]]) == 12  # every call is at node 12
    assert hist["node"].dtype.kind == "i"  # whole-number choices stay numbers in the store
