"""Smoke tests for the benchmark harness: cases are deterministic and the peers
report the same measures on a tiny grid (the benchmark itself is not a test)."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest

from benchmarks.cases import grid_case, grid_network, metro_case
from benchmarks.peers import CHECK_S, EngineResult, platoons, run_ours, run_sumo, run_uxsim, summarise


def _tiny():
    return grid_case(3, 200.0, 1.0, 50.0, n_trips=40, horizon_s=300.0, seed=3, name="tiny")


def test_grid_network_shape_and_capacity():
    net = grid_network(10)
    assert net.n_nodes == 100 and net.n_links == 360
    # UXsim's FD: vf=13.89, w=5, kj=0.2 -> 0.7353 veh/s per lane
    assert np.allclose(net.capacity_vph, 13.8889 * 5 * 0.2 / (13.8889 + 5) * 3600, rtol=1e-3)
    assert np.allclose(net.jam_density_vpm, 0.2)


def test_cases_are_deterministic_and_valid():
    a, b = grid_case(), grid_case()
    for f in a.trips._fields:
        assert np.array_equal(getattr(a.trips, f), getattr(b.trips, f))
    t = a.trips
    assert t.trip_id.shape[0] == 6000
    assert np.all(t.origin != t.destination)
    assert np.all(np.diff(t.depart_s) >= 0) and t.depart_s.max() < 3000.0
    assert t.origin.dtype == np.int32 and t.depart_s.dtype == np.float64


def test_metro_case_size():
    c = metro_case(n_trips=20000)
    assert c.network.n_links >= 20000
    assert np.all(c.trips.origin != c.trips.destination)
    assert c.trips.depart_s.max() < 86400.0


@pytest.mark.parametrize("mode", ["consecutive", "od"])
def test_platoons_cover_every_trip_once(mode):
    c = grid_case()
    o, d, t, tp = platoons(c, 5, mode)
    sizes = np.bincount(tp, minlength=o.shape[0])
    assert sizes.sum() == c.n_trips and sizes.min() >= 1 and sizes.max() <= 5
    if mode == "consecutive":
        assert o.shape[0] == 1200
    else:  # same OD within each platoon
        assert np.all(c.trips.origin == o[tp]) and np.all(c.trips.destination == d[tp])


def test_summarise_counts_unfinished_until_end():
    r = summarise(EngineResult(engine="x", case="y"), np.array([0.0, 100.0]), np.array([60.0, np.nan]), end_s=400.0)
    assert r.completed == 1 and r.mean_tt_s == 60.0
    assert r.vehicle_hours == pytest.approx((60.0 + 300.0) / 3600.0)


@pytest.mark.parametrize("cpp", [False, True])
def test_uxsim_engines_complete_tiny_grid(cpp):
    pytest.importorskip("uxsim")
    c = _tiny()
    r = run_uxsim(c, deltan=1, cpp=cpp)
    assert r.status == "ok" and r.vehicles == 40 and r.completed == 40
    # free flow: at least one 200 m link at 50 km/h
    assert 14.0 <= r.mean_tt_s < 200.0


@pytest.mark.skipif(shutil.which("sumo") is None, reason="sumo not installed")
def test_sumo_completes_tiny_grid():
    r = run_sumo(_tiny(), timeout_s=60)
    assert r.status == "ok", r.note
    assert r.completed == 40 and r.mean_tt_s >= 14.0


def _assert_stopped_early(r, case, last_arrival_s, slack_s=0.0):
    """The engine stopped at the first 300 s check after its last arrival, well
    before the case's horizon (issue 12: engines are timed as users run them)."""
    assert r.sim_end_s is not None
    assert r.sim_end_s < case.duration_s
    assert last_arrival_s <= r.sim_end_s + 1e-9
    assert r.sim_end_s <= CHECK_S * math.ceil((last_arrival_s + slack_s) / CHECK_S - 1e-9) + 1e-9


def test_ours_stops_once_every_trip_has_arrived(monkeypatch):
    from benchmarks import peers

    c = _tiny()
    seen = {}
    real = peers.ours_until_arrived

    def spy(case, **kw):
        out = real(case, **kw)
        seen.update(out)
        return out

    monkeypatch.setattr(peers, "ours_until_arrived", spy)
    r = run_ours(c, repeat=1)
    assert r.status == "ok" and r.completed == 40
    last = float(np.nanmax(seen["arrive_s"]))
    _assert_stopped_early(r, c, last)
    assert r.sim_end_s == pytest.approx(600.0)  # tiny: every trip is in by 600 s
    full = run_ours(c, repeat=1, early_stop=False)
    assert full.sim_end_s == pytest.approx(c.duration_s)
    assert full.completed == r.completed and full.mean_tt_s == pytest.approx(r.mean_tt_s)


@pytest.mark.parametrize("cpp", [False, True])
def test_uxsim_stops_once_every_trip_has_arrived(cpp):
    pytest.importorskip("uxsim")
    from benchmarks.peers import _uxsim_world, uxsim_until_arrived

    c = _tiny()
    W, vehs, _ = _uxsim_world(
        c, deltan=1, cpp=cpp, seed=0, duo_update_time=300.0, platoon="consecutive", vehicle_logging=False
    )
    uxsim_until_arrived(W)
    last = max(v.arrival_time for v in vehs) * float(W.DELTAT)
    # a vehicle that ends in step T is stamped T*DELTAT; the chunk ending at 300 k s runs steps < 300 k
    end = float(W.T * W.DELTAT)
    assert end < c.duration_s and last < end <= CHECK_S * math.ceil((last + float(W.DELTAT)) / CHECK_S)
    assert W.analyzer.trip_completed == 40  # the held-back end-of-run analysis ran
    r = run_uxsim(c, deltan=1, cpp=cpp, repeat=2)
    assert r.sim_end_s == end and len(r.extra["wall_runs_s"]) == 2
    assert r.wall_s == min(r.extra["wall_runs_s"])
    full = run_uxsim(c, deltan=1, cpp=cpp, repeat=1, early_stop=False)
    assert full.sim_end_s == pytest.approx(c.duration_s)
    assert full.completed == r.completed == 40 and full.mean_tt_s == pytest.approx(r.mean_tt_s)


@pytest.mark.skipif(shutil.which("sumo") is None, reason="sumo not installed")
def test_sumo_stops_once_every_trip_has_arrived():
    c = _tiny()
    r = run_sumo(c, timeout_s=60, repeat=1)
    assert r.status == "ok" and r.completed == 40
    # no --end: SUMO stops in the step after its last arrival, long before the horizon
    assert r.sim_end_s is not None and r.sim_end_s < 900.0 < c.duration_s
    full = run_sumo(c, timeout_s=60, repeat=1, early_stop=False)
    assert full.sim_end_s == pytest.approx(c.duration_s)


def test_cli_passes_early_stop_and_repeat_to_engines():
    pytest.importorskip("uxsim")
    from benchmarks import run

    args = run.parse_args(["--peers", "uxsim-cpp", "--deltan", "1", "--repeat", "2", "--no-isolate"])
    results = run.run_case(_tiny(), args)
    assert [r.engine for r in results] == ["ours", "uxsim-cpp"]
    for r in results:
        assert r.status == "ok" and r.completed == 40
        assert len(r.extra["wall_runs_s"]) == 2
        assert r.sim_end_s is not None and r.sim_end_s <= 600.0
    args = run.parse_args(["--peers", "uxsim-cpp", "--deltan", "1", "--repeat", "1", "--no-isolate", "--full-horizon"])
    assert all(r.sim_end_s == pytest.approx(_tiny().duration_s) for r in run.run_case(_tiny(), args))


def test_cli_writes_results_json(tmp_path):
    from benchmarks import run

    assert run.main(["--cases", "small", "--peers", "none", "--no-ours", "--out", str(tmp_path)]) == 0
    doc = json.loads((tmp_path / "results.json").read_text())
    assert doc["cases"]["small"]["n_trips"] == 6000
    assert doc["cases"]["small"]["free_flow_mean_tt_s"] == pytest.approx(95.9, abs=0.5)


def test_equilibrium_benchmark_runs_days_and_writes_results(tmp_path, capsys):
    from benchmarks.equilibrium import main

    assert main(["--iterations", "2", "--trips", "3000", "--hours", "7", "--no-warm-up", "--out", str(tmp_path)]) == 0
    res = json.loads((tmp_path / "results.json").read_text())["result"]
    assert res["iterations"] == 2 and len(res["days"]) == 2 and res["links"] == 20448
    assert [d["iteration"] for d in res["days"]] == [1, 2]
    assert all(math.isfinite(d["relative_gap"]) and d["cpu_s"] >= 0 for d in res["days"])
    out = capsys.readouterr().out
    assert "day   2:" in out and "2 days of 3,000 trips on 20,448 links" in out
