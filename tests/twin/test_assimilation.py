"""Assimilation: the ensemble follows a hidden truth; shadow mode; forks from a live twin."""

from __future__ import annotations

import json

import numpy as np
import pytest

from scenarios import load_scenario

SMALL = {"time.start": "07:00", "time.duration": "2h", "demand.gravity.total_trips": 8000}


@pytest.fixture(scope="module")
def truth():
    from experiments.truth import TruthConfig, run_truth

    cfg = TruthConfig(
        demand_scale=1.4,
        zone_sigma=0.0,
        hour_sigma=0.0,
        incidents=(),
        delay_rate=0.0,
        duplicate_rate=0.0,
        malformed_rate=0.0,
        implausible_rate=0.0,
    )
    return cfg, run_truth(cfg, scenario="default", overrides=SMALL)


def test_ensemble_learns_a_higher_demand_and_cuts_the_held_out_error(truth):
    from experiments.twin_vs_truth import _replay, score
    from scenarios.feeds import FeedsSpec
    from twin.feeds import FeedHub
    from twin.live import AssimilationSettings, Ensemble

    cfg, tr = truth
    nominal = load_scenario("default", overrides=SMALL)
    spec = FeedsSpec(
        date=cfg.date, sensors=[{k: v for k, v in r.items() if v not in ("", None)} for r in tr.sensor_table]
    )
    sensors = np.array(sorted({int(s["link"]) for s in tr.sensors}))
    busy = tr.dataset.link_outflow.sum("time").values > 0
    held = np.flatnonzero(busy & ~np.isin(np.arange(busy.size), sensors))
    scores = {}
    for label, st in (
        ("open", AssimilationSettings(members=6, estimate_demand=False, correct_links=False)),
        ("asm", AssimilationSettings(members=6)),
    ):
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
    assert (ds.demand_scale_sd.values[-1] > 0).all() and (ds.dest_scale_sd.values[-1] > 0).all()
    assert (ds.log_level_sd.values > 0).all()


@pytest.mark.parametrize("method", ["kalman", "enkf"])
def test_open_loop_ignores_the_feed_and_members_are_deterministic(method):
    from twin.live import AssimilationSettings, Ensemble

    sc = load_scenario("default", overrides={**SMALL, "time.duration": "30min"})
    a = Ensemble(sc, AssimilationSettings(members=3, method=method))
    b = Ensemble(sc, AssimilationSettings(members=3, method=method))
    for e in (a, b):
        for t in (600.0, 1200.0, 1800.0):
            e.advance(t, [])
    np.testing.assert_array_equal(a.theta, b.theta)
    np.testing.assert_array_equal(a.dataset().est_flow.values, b.dataset().est_flow.values)


def test_shadow_mode_runs_a_replay_and_forks_from_a_dropped_request(tmp_path):
    from experiments.executor import Executor
    from scenarios import LIBRARY_DIR
    from twin.feeds import FeedHub
    from twin.live import AssimilationSettings, Shadow

    sc = load_scenario(LIBRARY_DIR / "feeds" / "sample_day.yaml", overrides={"time.duration": "1h"})
    hub = FeedHub.from_scenario(sc, _net(sc), dead_letter=tmp_path / "dead.jsonl")
    with Executor(serial=True) as ex:
        sh = Shadow(sc, hub, AssimilationSettings(members=3), executor=ex)
        sh.run(until=1800.0)
        assert sh.now == 1800.0
        st = sh.status()
        assert st["accepted"] > 0 and st["sim_time_s"] == 1800.0
        (tmp_path / "close.yaml").write_text(
            "name: close\nhorizon: 20min\ninterventions:\n  - {kind: close, place: Old Bridge}\n"
        )
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


def _records(links, t, counts):
    from types import SimpleNamespace

    return [
        SimpleNamespace(
            record="observation",
            t=t,
            link=int(k),
            flow_vph=float(counts[k]) * 12.0,
            interval_s=300.0,
            lane=-1,
            speed_mps=float("nan"),
        )
        for k in links
    ]


def test_kalman_filter_recovers_known_demand_factors_from_a_twin_of_the_same_model():
    """An identical-twin case: the 'truth' is a member run with known zone factors and a
    known level; the filter, fed its counts on a fifth of the links, finds them."""
    from twin.live import AssimilationSettings, Ensemble

    sc = load_scenario("default", overrides={**SMALL, "time.duration": "2h"})
    truth = Ensemble(sc, AssimilationSettings(members=1, estimate_demand=False, correct_links=False), seed=99)
    nz = truth.city.zones.n_zones
    rng = np.random.default_rng(3)
    a, b = rng.normal(0.0, 0.35, nz), rng.normal(0.0, 0.35, nz)
    truth.theta[:] = np.concatenate([a, [0.25], b])
    truth._push_theta()
    links = np.sort(rng.choice(truth.city.network.n_links, 140, replace=False))
    est = Ensemble(sc, AssimilationSettings(members=6, correct_links=False, hour_sd=0.0))
    t = 0.0
    while t < 7200.0:
        t += 300.0
        truth.advance(t, [])
        est.advance(t, _records(links, t, truth.members[0].recorder.link["outflow"][-1]))
    # the demand each releases over the last hour: the truth's, within a few per cent
    last = (est.pools[0].depart >= 3600.0) & (est.pools[0].depart < 7200.0)
    got = np.mean([p.p_used[last].sum() for p in est.pools])
    want = truth.pools[0].p_used[(truth.pools[0].depart >= 3600.0) & (truth.pools[0].depart < 7200.0)].sum()
    assert abs(got / want - 1.0) < 0.05  # (measured: 1 %)
    # the zone pattern: much closer to the truth than the plan (all zeros) is
    ea, eb = est.mean[:nz], est.mean[nz + 1 : 2 * nz + 1]
    err = np.sqrt(np.mean((ea - ea.mean() - a + a.mean()) ** 2 + (eb - eb.mean() - b + b.mean()) ** 2))
    plan = np.sqrt(np.mean((a - a.mean()) ** 2 + (b - b.mean()) ** 2))
    assert err < 0.85 * plan  # (measured: 0.80; a two-hour case cannot pin all 33 factors down)
    assert np.corrcoef(ea, a)[0, 1] > 0.45 and np.corrcoef(eb, b)[0, 1] > 0.6  # (0.61, 0.79)
    # the posterior is tighter than the prior, and the members carry it
    assert (np.sqrt(np.diag(est.cov))[:nz] < 0.25).all()
    assert (est.theta.std(axis=0) > 0).all()
    # and the operator's expected counts agree with what the members simulated
    exp = est._crossings.operator([(int(k), 6900.0, 7200.0) for k in links], est.theta, [p.p_used for p in est.pools])[
        2
    ]
    sim = np.mean([m.recorder.link["outflow"][-1][links] for m in est.members], axis=0)
    assert np.corrcoef(exp, sim)[0, 1] > 0.9


def test_hourly_level_hands_over_at_the_clock_hour():
    from twin.live import AssimilationSettings, Ensemble

    sc = load_scenario("default", overrides={**SMALL, "time.start": "07:50", "time.duration": "20min"})
    ens = Ensemble(sc, AssimilationSettings(members=3))
    nz, p = ens.city.zones.n_zones, ens.theta.shape[1]
    assert ens.hour == 7
    ens.advance(300.0, [])
    ens.mean[nz], ens.mean[p + 1] = 0.2, 0.1  # as if the counts had said so: 07:00 above the day
    cov = ens.cov.copy()
    ens.advance(600.0, [])  # 08:00: 07:00's level becomes "previous"; 08:00 starts between it and the day's
    assert ens.hour == 8 and ens.mean[p] == pytest.approx(0.2) and ens.mean[p + 1] == pytest.approx(0.1)
    assert ens.mean[nz] == pytest.approx(0.15)  # hour_persistence 0.5
    walk = ens.settings.kalman_level_walk_sd**2  # (the within-hour walk comes first)
    assert ens.cov[p, p] == pytest.approx(cov[nz, nz] + walk)
    lvl = 0.25 * (cov[nz, nz] + walk + cov[p + 1, p + 1] + 2 * cov[nz, p + 1])
    assert ens.cov[nz, nz] == pytest.approx(lvl + 0.1**2)
    ens.advance(900.0, [])
    assert ens.hour == 8 and ens.mean[p] == pytest.approx(0.2)  # no new hour, no hand-over


def test_alerts_close_roads_only_when_they_are_about_roads():
    from types import SimpleNamespace

    from twin.live import AssimilationSettings, Ensemble

    sc = load_scenario("default", overrides={**SMALL, "time.duration": "10min"})
    ens = Ensemble(sc, AssimilationSettings(members=2))
    alert = dict(record="alert", t=0.0, link=5, valid_to=600.0, distance_m=20.0)
    ens.advance(300.0, [SimpleNamespace(**alert, id="w", kind="flood", category="weather", ref=())])
    assert not ens.held  # a flood reported near a road: not a closure on a guess
    ens.advance(
        600.0,
        [
            SimpleNamespace(**alert, id="r", kind="flood", category="weather", ref=("seg-5",)),
            SimpleNamespace(**alert, id="c", kind="accident", category="traffic", ref=()),
        ],
    )
    assert set(ens.held) == {("alert", "r"), ("alert", "c")}


def test_twin_vs_truth_fast_benchmark_with_zone_and_hour_factors_and_incidents():
    """A fast version of the benchmark: the default truth (demand 1.15x with zone and hour
    factors, its incidents and feed faults) over a morning; the held-out error falls.

    (The truth is run here, not read from the shipped sample. Since the logit route choice
    the oracle follows the truth more closely -- its sensor counts' error beyond Poisson fell
    from about 15 % to about 5 % -- and the filter's ``model_cv`` was retuned to match: at the
    old 0.15 this seed scored 1.65x the oracle, now 1.55x; truth seeds 1-7 score 1.18-1.42x.)"""
    from experiments.twin_vs_truth import run_experiment

    res = run_experiment(
        overrides={"time.start": "07:00", "time.duration": "2h", "demand.gravity.total_trips": 12000},
        members=6,
        oracle=True,
    )
    ol, asm, orc = res["open_loop"], res["assimilated"], res["oracle"]
    assert asm["flow_rmse_hourly"] < 0.65 * ol["flow_rmse_hourly"]  # (measured: 0.54)
    # the oracle (the truth's own demand factors) bounds what a demand estimate can do
    assert orc["flow_rmse_hourly"] < 0.5 * ol["flow_rmse_hourly"]  # (0.35)
    assert asm["flow_rmse_hourly"] < 1.6 * orc["flow_rmse_hourly"]  # (1.55: 15.5 against 10.0)
    assert 0.5 < res["achieved"]["flow_rmse_hourly"] <= 1.0  # (0.71)
    assert asm["flow_rmse_5min"] < ol["flow_rmse_5min"]
    assert 0.8 < asm["flow_coverage"] < 0.98
    assert asm["floor_hourly"] < asm["flow_rmse_hourly"]  # the scoring reports a floor below the error
    assert asm["final_level"] > 1.05  # the truth's demand is 1.15x the plan


def _flat_prior(**kw):
    """Settings whose members all start at the plan's factors and stay there without data."""
    from twin.live import AssimilationSettings

    return AssimilationSettings(
        correct_links=False,
        hour_sd=0.0,
        level_sd=1e-6,
        zone_sd=1e-6,
        kalman_level_walk_sd=0.0,
        kalman_zone_walk_sd=0.0,
        **kw,
    )


def test_issued_counts_follow_the_current_demand_factors():
    """The members released their trips at the plan's demand; once the filter says 1.3x,
    the estimate it issues for an interval carries 1.3x the count of the trips crossing
    then (the shift is computed from the pool trips' routes, not from the members' counts)."""
    from twin.live import Ensemble

    sc = load_scenario("default", overrides={**SMALL, "time.duration": "30min"})
    ens = Ensemble(sc, _flat_prior(members=4))
    for t in np.arange(300.0, 1801.0, 300.0):
        ens.advance(float(t), [])
    assert ens.log.time[-1] == 1500.0  # the 30th minute's interval waits for its observations
    nz = ens.city.zones.n_zones
    ens.mean[nz] = np.log(1.3)
    ens.theta = ens._draw_members()
    ds = ens.dataset()  # issues the last interval now, at the new factors
    assert float(ds.time[-1]) == 1800.0
    sim = np.mean([m.recorder.link["outflow"][-1] for m in ens.members], axis=0) * 12.0
    est = ds.est_flow.values[-1]
    assert (est >= sim - 1e-9).all()
    assert 1.2 < est.sum() / sim.sum() < 1.4  # (measured: 1.29)
    # the intervals issued before the change were left as the members counted them
    np.testing.assert_allclose(
        ds.est_flow.values[-2], np.mean([m.recorder.link["outflow"][-2] for m in ens.members], axis=0) * 12.0
    )


def test_a_long_step_issues_every_interval_it_covers_at_the_current_factors():
    """Advanced 15 minutes at a time, the ensemble issues three 5-minute intervals per step,
    each with the crossings of its own trips (kept until it is issued)."""
    from twin.live import Ensemble

    sc = load_scenario("default", overrides={**SMALL, "time.duration": "30min"})
    ens = Ensemble(sc, _flat_prior(members=4))
    ens.advance(900.0, [])
    assert ens.log.time == [300.0, 600.0]
    ens.mean[ens.city.zones.n_zones] = np.log(1.3)  # the next update keeps it (no walk, no data)
    ens.advance(1800.0, [])
    assert ens.log.time == [300.0, 600.0, 900.0, 1200.0, 1500.0]
    for k in (2, 3, 4):
        sim = np.mean([m.recorder.link["outflow"][k] for m in ens.members], axis=0) * 12.0
        assert 1.2 < ens.log.flow_mean[k].sum() / sim.sum() < 1.4, k


def test_an_interval_issued_with_its_own_observations_is_closer_to_the_truth():
    """Identical twins: the truth's demand is 1.4x the plan.  Counts arrive one step after
    their interval, as from the cleanser.  Issued once they are in, each interval's estimate
    of the traffic on the links without a sensor is closer to the truth's than when issued
    at the interval's end, before any of its own counts."""
    from twin.live import AssimilationSettings, Ensemble

    sc = load_scenario("default", overrides={**SMALL, "time.duration": "1h"})
    truth = Ensemble(sc, AssimilationSettings(members=1, estimate_demand=False, correct_links=False), seed=99)
    nz = truth.city.zones.n_zones
    truth.theta[:, nz] = np.log(1.4)
    truth._push_theta()
    rng = np.random.default_rng(5)
    links = np.sort(rng.choice(truth.city.network.n_links, 140, replace=False))
    est = {
        d: Ensemble(sc, AssimilationSettings(members=6, correct_links=False, report_delay_intervals=d)) for d in (0, 1)
    }
    feed = []
    for t in np.arange(300.0, 3601.0, 300.0):
        for e in est.values():
            e.advance(float(t), feed)
        truth.advance(float(t), [])
        feed = _records(links, float(t), truth.members[0].recorder.link["outflow"][-1])
    other = np.setdiff1d(np.arange(truth.city.network.n_links), links)
    want = np.asarray(truth.members[0].recorder.link["outflow"])[:, other].sum(axis=1) * 12.0
    err = {d: np.abs(e.dataset().est_flow.values[:, other].sum(axis=1) - want).mean() for d, e in est.items()}
    assert err[1] < 0.75 * err[0], err  # (measured: 0.51x)


def test_count_band_is_the_gamma_poisson_predictive():
    """The flow band's percentiles are those of a Poisson count whose mean is gamma with
    the members' spread, their mean's error and the model's (checked by sampling)."""
    from twin.live.observation import count_band

    rng = np.random.default_rng(1)
    counts = rng.poisson(rng.gamma(4.0, [0.5, 2.0, 8.0, 30.0], size=(12, 4))).astype(float)
    counts = np.column_stack([counts, np.zeros(12), np.full(12, 7.0)])
    lo, hi = count_band(counts, model_cv=0.1)
    mu, v = counts.mean(axis=0), counts.var(axis=0, ddof=1)
    var_mean = np.maximum(v - mu, 0.0) + v / 12 + (0.1 * mu) ** 2
    for k in range(counts.shape[1]):
        if mu[k] == 0:
            assert lo[k] == hi[k] == 0.0  # nobody simulated a vehicle: none is expected
            continue
        lam = rng.gamma(mu[k] ** 2 / var_mean[k], var_mean[k] / mu[k], 400_000)
        q = np.quantile(rng.poisson(lam), [0.05, 0.95])
        assert abs(lo[k] - q[0]) <= 1 and abs(hi[k] - q[1]) <= 1, (k, lo[k], hi[k], q)
    # no spread and no model error: plain Poisson percentiles
    lo, hi = count_band(np.full((5, 1), 9.0), model_cv=0.0)
    assert (lo[0], hi[0]) == (4.0, 14.0)


def test_a_member_snapshot_keeps_only_the_undecided_pool_and_resumes_identically(tmp_path):
    from twin.live import AssimilationSettings, Ensemble
    from twin.model import Twin

    sc = load_scenario("default", overrides={**SMALL, "time.duration": "40min"})
    ens = Ensemble(sc, AssimilationSettings(members=2, correct_links=False))
    for t in (600.0, 1200.0):
        ens.advance(t, [])
    member = ens.members[1]
    pool = member.components["pool_demand"]
    left = pool.depart.size - pool.cursor
    assert 0 < left < pool.depart.size
    back = Twin.restore(member.snapshot(tmp_path / "m.snap"))
    assert back.components["pool_demand"].depart.size == left
    member.run_until(2400.0)
    back.run_until(2400.0)
    for key in ("outflow", "speed"):
        np.testing.assert_array_equal(np.asarray(member.recorder.link[key]), np.asarray(back.recorder.link[key]))
    assert back.components["pool_demand"].released == pool.released


@pytest.mark.parametrize(
    "field, value",
    [("report_delay_intervals", -1), ("report_delay_intervals", 1.5), ("pool_factor", 0.5), ("band_cv", float("nan"))],
)
def test_bad_assimilation_settings_name_the_field(field, value):
    from basics.errors import InputError
    from twin.live import AssimilationSettings, Ensemble

    sc = load_scenario("default", overrides={**SMALL, "time.duration": "10min"})
    with pytest.raises(InputError, match=f"assimilation.{field}"):
        Ensemble(sc, AssimilationSettings(members=2, **{field: value}))
