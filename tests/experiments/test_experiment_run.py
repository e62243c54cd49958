"""Running experiments: identical stores, failures recorded, resuming (also after SIGKILL)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from experiments.analyze import analyze
from experiments.runner import run_experiment
from experiments.store import DONE, FAILED, open_results
from tests.experiments.conftest import TINY

ROOT = Path(__file__).resolve().parents[2]

TWIN_SPEC = {
    "name": "tiny_factorial",
    "base": TINY,
    "factors": [
        {"name": "trips", "path": "demand.gravity.total_trips", "levels": [800, 1600]},
        {"name": "reroute", "path": "traffic.reroute_interval", "choices": ["5min", "10min"]},
    ],
    "replications": 2,
    "seed": 11,
    "outputs": {"series": ["network_vehicles"]},
}

NOISY = {
    "name": "noisy",
    "function": "tests.experiments.ishigami:noisy",
    "factors": [{"name": "x", "levels": [1, 2, 13, 4]}],
    "replications": 3,
    "seed": 5,
}


def _same(a: Path, b: Path) -> None:
    da, db = open_results(a), open_results(b)
    xr.testing.assert_identical(da, db)


def test_same_experiment_twice_gives_identical_stores(tmp_path):
    a = run_experiment(TWIN_SPEC, tmp_path / "a.zarr", workers=0)
    b = run_experiment(TWIN_SPEC, tmp_path / "b.zarr", workers=0)
    assert a.done == b.done == 8 and a.failed == 0
    _same(tmp_path / "a.zarr", tmp_path / "b.zarr")
    ds = open_results(tmp_path / "a.zarr")
    assert ds["network_vehicles"].dims == ("point", "replication", "time")
    assert list(ds["trips"].values) == [800, 800, 1600, 1600]
    assert ds["mean_delay_s"].attrs["units"] == "s"
    # common random numbers: replication r has the same seed at every point
    assert ds["seed"].dims == ("replication",)
    # analysis: intervals per point and main effects
    res = analyze(tmp_path / "a.zarr")
    pts = res["points"]
    assert (pts["n"].sel(kpi="trips_total") == 2).all()
    assert float(pts["mean"].sel(kpi="trips_total", point=2)) == 1600
    assert "effect_trips" in res["main_effects"]


def test_a_failing_run_is_recorded_and_the_others_go_on(tmp_path):
    res = run_experiment(NOISY, tmp_path / "s.zarr", workers=0)
    ds = open_results(tmp_path / "s.zarr")
    status = ds["status"].values
    assert res.failed == 3 and res.done == 9
    assert (status[2] == FAILED).all() and (status[[0, 1, 3]] == DONE).all()
    assert "thirteen is unlucky" in str(ds["error"].values[2, 0])
    assert np.isnan(ds["y"].values[2]).all()
    again = run_experiment(NOISY, tmp_path / "s.zarr", workers=0)  # finished runs skipped
    assert again.skipped == 12
    _store_refused = tmp_path / "s.zarr"
    with pytest.raises(Exception, match="another experiment"):
        run_experiment({**NOISY, "seed": 6}, _store_refused, workers=0)


def _cli(spec: Path, out: Path, env: dict) -> subprocess.Popen:
    code = (
        "import sys; from twin.cli import main; sys.exit(main(['experiment', 'run', sys.argv[1], '--out', sys.argv[2], "
        "'--workers', '0', '-q', '--allow-plugins', 'tests.experiments.ishigami:noisy']))"
    )
    return subprocess.Popen([sys.executable, "-c", code, str(spec), str(out)], cwd=ROOT, env=env)


def test_sigkill_then_resume_equals_uninterrupted(tmp_path):
    import yaml

    spec = {**NOISY, "factors": [{"name": "x", "levels": list(range(1, 9))}], "replications": 2}
    path = tmp_path / "noisy.yaml"
    path.write_text(yaml.safe_dump(spec))
    env = {**os.environ, "EXPERIMENT_TEST_SLEEP": "0.3", "PYTHONPATH": str(ROOT)}
    killed = tmp_path / "killed.zarr"
    proc = _cli(path, killed, env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # wait until some runs are in the store, then kill
        try:
            done = int((open_results(killed)["status"].values == DONE).sum())
        except Exception:
            done = 0
        if done >= 3:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = open_results(killed)["status"].values
    assert 3 <= int((partial == DONE).sum()) < partial.size  # killed mid-way
    env["EXPERIMENT_TEST_SLEEP"] = "0"
    assert _cli(path, killed, env).wait() == 0
    whole = tmp_path / "whole.zarr"
    assert _cli(path, whole, env).wait() == 0
    _same(killed, whole)
