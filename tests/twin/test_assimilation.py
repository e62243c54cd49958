"""Assimilation: the ensemble follows a hidden truth; shadow mode; forks from a live twin."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from scenarios import load_scenario

SMALL = {"time.start": "07:00", "time.duration": "2h", "demand.gravity.total_trips": 8000}


@pytest.fixture(scope="module")
def truth():
    from experiments.truth import TruthConfig, run_truth

    cfg = TruthConfig(demand_scale=1.4, zone_sigma=0.0, hour_sigma=0.0, incidents=(), delay_rate=0.0,
                      duplicate_rate=0.0, malformed_rate=0.0, implausible_rate=0.0)
    return cfg, run_truth(cfg, scenario="default", overrides=SMALL)


def test_ensemble_learns_a_higher_demand_and_cuts_the_held_out_error(truth):
    from experiments.twin_vs_truth import score, _replay
    from scenarios.feeds import FeedsSpec
    from twin.assimilation import AssimilationSettings, Ensemble
    from twin.feeds import FeedHub

    cfg, tr = truth
    nominal = load_scenario("default", overrides=SMALL)
    spec = FeedsSpec(date=cfg.date, sensors=[{k: v for k, v in r.items() if v not in ("", None)} for r in tr.sensor_table])
    sensors = np.array(sorted({int(s["link"]) for s in tr.sensors}))
    busy = tr.dataset.link_outflow.sum("time").values > 0
    held = np.flatnonzero(busy & ~np.isin(np.arange(busy.size), sensors))
    scores = {}
    for label, st in (("open", AssimilationSettings(members=6, estimate_demand=False, correct_links=False)),
                      ("asm", AssimilationSettings(members=6))):
        ens = Ensemble(nominal, st)
        hub = FeedHub.from_spec(spec, ens.city.network, start_s=float(nominal.time.start))
        _replay(ens, tr, hub, step_s=300.0, until_s=7200.0)
        scores[label] = score(ens.dataset(), tr.dataset, held, interval_s=300.0)
        if label == "asm":
            level = ens.demand_scale()[0].mean()
            ds = ens.dataset()
    assert level > 1.15  # moved from 1.0 towards the truth's 1.4
    assert scores["asm"].flow_rmse_hourly < 0.8 * scores["open"].flow_rmse_hourly
    assert scores["asm"].flow_coverage > scores["open"].flow_coverage
    # the reported band is a band: p05 <= mean <= p95 everywhere, and it has width
    assert (ds.est_flow_p05 <= ds.est_flow_p95).all() and float((ds.est_flow_p95 - ds.est_flow_p05).mean()) > 0
    assert (ds.demand_scale_sd.values[-1] > 0).all()


def test_open_loop_ignores_the_feed_and_members_are_deterministic():
    from twin.assimilation import AssimilationSettings, Ensemble

    sc = load_scenario("default", overrides={**SMALL, "time.duration": "30min"})
    a = Ensemble(sc, AssimilationSettings(members=3))
    b = Ensemble(sc, AssimilationSettings(members=3))
    for e in (a, b):
        for t in (600.0, 1200.0, 1800.0):
            e.advance(t, [])
    np.testing.assert_array_equal(a.theta, b.theta)
    np.testing.assert_array_equal(a.dataset().est_flow.values, b.dataset().est_flow.values)


def test_shadow_mode_runs_a_replay_and_forks_from_a_dropped_request(tmp_path):
    from experiments.executor import Executor
    from scenarios import LIBRARY_DIR
    from twin.assimilation import AssimilationSettings
    from twin.feeds import FeedHub
    from twin.live import Shadow

    sc = load_scenario(LIBRARY_DIR / "feeds" / "sample_day.yaml", overrides={"time.duration": "1h"})
    hub = FeedHub.from_scenario(sc, _net(sc), dead_letter=tmp_path / "dead.jsonl")
    with Executor(serial=True) as ex:
        sh = Shadow(sc, hub, AssimilationSettings(members=3), executor=ex)
        sh.run(until=1800.0)
        assert sh.now == 1800.0
        st = sh.status()
        assert st["accepted"] > 0 and st["sim_time_s"] == 1800.0
        (tmp_path / "close.yaml").write_text(
            "name: close\nhorizon: 20min\ninterventions:\n  - {kind: close, place: Old Bridge}\n")
        (tmp_path / "bad.yaml").write_text("interventions:\n  - {kind: nope}\n")
        jobs = sh.poll_fork_folder(tmp_path)
        assert [j.name for j in jobs] == ["close"]
        assert sh.wait_for_forks(120)
        sh.run()  # and the live twin goes on to the end
        assert sh.now == 3600.0
        out = sh.save(tmp_path / "run")
        sh.close()
    res = json.loads((tmp_path / "close.result.json").read_text())
    assert res["state"] == "done" and [v["name"] for v in res["variants"]] == ["no action", "close"]
    assert res["sim_time_s"] == 1800.0 and res["horizon_s"] == 1200.0
    bad = json.loads((tmp_path / "bad.result.json").read_text())
    assert bad["state"] == "failed" and "interventions[0]" in bad["error"]
    import xarray as xr

    with xr.open_dataset(out / "assimilation.nc") as ds:
        assert ds.sizes["time"] == 12 and "feed_messages" in ds
        assert int(ds.feed_messages.sel(feed_outcome="accepted").sum()) > 0


def _net(sc):
    from twin.model import build_city

    return build_city(sc.city).network
