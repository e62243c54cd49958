"""The Twin on its clock: determinism, conservation, stepping, results."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

from kernels import traffic as k
from tests.twin.conftest import small_scenario
from twin.model import Twin


def _run(seed=None, city=None, **kw):
    tw = Twin(small_scenario(), seed=seed, city=city)
    tw.run(**kw)
    return tw


def test_same_seed_bit_identical_results_file(tmp_path, small_city):
    a = _run(city=small_city).save(tmp_path / "a")
    b = _run(city=small_city).save(tmp_path / "b")
    with xr.open_dataset(a / "results.nc") as da, xr.open_dataset(b / "results.nc") as db:
        assert set(da.data_vars) == set(db.data_vars)
        for name in da.data_vars:
            np.testing.assert_array_equal(da[name].values, db[name].values, err_msg=name)
        assert da.attrs["scenario_hash"] == db.attrs["scenario_hash"]


def test_other_seed_other_demand(small_city):
    a = Twin(small_scenario(), city=small_city)
    b = Twin(small_scenario(), seed=4, city=small_city)
    assert not np.array_equal(a.trips.depart_s, b.trips.depart_s)


def test_stepping_equals_one_run(small_city):
    whole = _run(city=small_city)
    parts = Twin(small_scenario(), city=small_city)
    for t in (1.0, 299.0, 300.0, 777.0, 1800.0, "07:45", 3600.0):
        parts.run_until(t)
    np.testing.assert_array_equal(whole.traffic.veh.arrive, parts.traffic.veh.arrive)
    a, b = whole.results(), parts.results()
    np.testing.assert_array_equal(a.time.values, b.time.values)
    np.testing.assert_array_equal(a.link_outflow.values, b.link_outflow.values)
    np.testing.assert_array_equal(a.link_vehicles.values, b.link_vehicles.values)


def test_conservation_every_interval(small_city):
    tw = Twin(small_scenario(), city=small_city)
    n = tw.traffic.n_vehicles
    for t in range(0, 3601, 300):
        tw.run_until(t)
        c = tw.traffic.counts()
        assert sum(c.values()) == n
        ls = tw.traffic.state
        assert int((ls.n_in - ls.n_out).sum()) == c["on_network"]
        # every vehicle on a link is in that link's queue, once
        on = np.flatnonzero(tw.traffic.veh.link >= 0)
        seen = []
        for a in range(tw.city.network.n_links):
            v = ls.head[a]
            while v >= 0:
                assert tw.traffic.veh.link[v] == a
                seen.append(v)
                v = tw.traffic.veh.nxt[v]
        assert sorted(seen) == sorted(on.tolist())
        # each node's load is the vehicles on its in-links plus its origin queue
        net = tw.city.network
        load = np.bincount(net.dst, weights=ls.n_in - ls.n_out, minlength=net.n_nodes)
        waiting = tw.traffic.veh.link == k.VEH_WAITING
        load += np.bincount(tw.traffic.veh.orig[waiting], minlength=net.n_nodes)
        np.testing.assert_array_equal(ls.node_load, load)
    assert tw.traffic.counts()["arrived"] > 0.8 * n


def test_results_dataset_labelled(small_city):
    tw = _run(city=small_city)
    ds = tw.results()
    for dim in ("time", "link", "trip"):
        assert dim in ds.dims
    for name in (
        "link_inflow",
        "link_outflow",
        "link_vehicles",
        "link_speed",
        "trip_origin",
        "trip_destination",
        "trip_depart_s",
        "trip_arrive_s",
        "trip_travel_time_s",
        "trip_length_m",
    ):
        assert name in ds, name
        assert ds[name].attrs["units"] and ds[name].attrs["long_name"], name
    assert ds.attrs["seed"] == 3 and len(ds.attrs["scenario_hash"]) == 16 and ds.attrs["package_version"]
    # the time axis covers the whole hour in output intervals
    np.testing.assert_allclose(ds.time.values, np.arange(300, 3601, 300))
    assert ds.clock.values[0] == "07:05:00" and ds.clock.values[-1] == "08:00:00"  # the scenario starts 07:00
    # inflow and outflow balance with the vehicles left on links
    net_in = ds.link_inflow.sum("time") - ds.link_outflow.sum("time")
    ls = tw.traffic.state
    np.testing.assert_array_equal(net_in.values, ls.n_in - ls.n_out)
    # speeds are positive and never above free speed
    assert float(ds.link_speed.min()) > 0
    assert bool((ds.link_speed <= ds.link_free_speed + 1e-9).all())
    done = np.isfinite(ds.trip_arrive_s.values)
    np.testing.assert_allclose(ds.trip_travel_time_s.values[done], (ds.trip_arrive_s - ds.trip_depart_s).values[done])


def test_kpis_agree_with_trips(small_city):
    tw = _run(city=small_city)
    kp = tw.kpis()
    arr = tw.traffic.veh.arrive
    done = np.isfinite(arr)
    assert kp["trips_total"] == tw.trips.trip_id.size
    assert kp["trips_completed"] == int(done.sum())
    tt = (arr - tw.traffic.veh.depart)[done]
    assert kp["mean_travel_time_s"] == pytest.approx(tt.mean())
    assert kp["p95_travel_time_s"] == pytest.approx(np.percentile(tt, 95))
    assert kp["vehicle_km"] == pytest.approx(tw.traffic.veh.dist.sum() / 1000)
    # delay is never negative: no trip beats free flow
    assert kp["total_delay_h"] >= -1e-9
    assert 5 < kp["mean_network_speed_kmh"] < 100


def test_write_run_is_atomic(tmp_path, small_city, monkeypatch):
    tw = _run(city=small_city)

    def boom(self, path, **kw):
        open(path, "wb").write(b"half")
        raise KeyboardInterrupt

    first = tw.save(tmp_path / "run")
    before = {p.name: p.read_bytes() for p in first.iterdir()}
    monkeypatch.setattr(xr.Dataset, "to_netcdf", boom)
    with pytest.raises(KeyboardInterrupt):
        tw.save(tmp_path / "run")  # an interrupted second write of the same folder
    with pytest.raises(KeyboardInterrupt):
        tw.save(tmp_path / "other")
    # the earlier run folder is untouched, the new one never appears, no temporary is left
    assert {p.name: p.read_bytes() for p in (tmp_path / "run").iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_run_folder_contents(tmp_path, small_city):
    out = _run(city=small_city).save(tmp_path / "run")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["kpis"]["trips_total"] == 3000
    assert (out / "scenario.yaml").read_text().count("synthetic") >= 1
    from scenarios import load_scenario, scenario_hash

    assert scenario_hash(load_scenario(out / "scenario.yaml")) == summary["scenario_hash"]


def test_no_route_trips_are_reported_not_lost():
    from city_models import make_network
    from twin.traffic import VEH_NO_PATH, TrafficModel

    # 0 <-> 1   2 -> 0 : node 2 cannot be reached
    net = make_network(
        x=[0, 100, 50], y=[0, 0, 80], src=[0, 1, 2], dst=[1, 0, 0], length_m=100.0, lanes=1, free_speed_mps=10.0
    )
    m = TrafficModel(net, step_s=1.0)
    m.add_trips([0, 0, 2], [1, 2, 1], [0.0, 0.0, 0.0])
    m.update_routes(60)
    m.advance_to(100)
    # node 2 cannot be reached on the network as given: failed at once and counted, never waited for
    assert m.veh.link.tolist() == [k.VEH_ARRIVED, VEH_NO_PATH, k.VEH_ARRIVED]
    assert m.counts()["no_path"] == 1 and m.counts()["no_route"] == 0
    assert m.no_path_pairs() == [((0, 2), 1)]


def test_trips_without_route_leave_once_a_closed_link_reopens():
    from city_models import make_network
    from twin.traffic import TrafficModel

    # 0 -> 1 is the only way to node 1
    net = make_network(x=[0, 100], y=[0, 0], src=[0, 1], dst=[1, 0], length_m=100.0, lanes=1, free_speed_mps=10.0)
    m = TrafficModel(net, step_s=1.0)
    m.links.is_open[0] = 0
    m.add_trips([0, 0], [1, 1], [5.0, 6.0])
    m.update_routes(60)
    m.advance_to(60)
    assert m.counts()["no_route"] == 2
    m.links.is_open[0] = 1
    m.update_routes(60)
    m.advance_to(120)
    assert m.counts()["arrived"] == 2
    # they left when the link reopened (60 s) and drove 10 s; the wait counts
    np.testing.assert_allclose(m.veh.arrive, [70.0, 70.0 + 1 / (net.capacity_vph[0] / 3600)])
    np.testing.assert_allclose(m.veh.arrive - m.veh.depart, [65.0, 64.0 + 1 / (net.capacity_vph[0] / 3600)])


def test_helsinki_builtin_scenario_runs_offline():
    from scenarios import load_scenario

    sc = load_scenario("helsinki", overrides={"time.duration": "20min", "demand.gravity.total_trips": 1500})
    tw = Twin(sc)
    tw.run()
    kp = tw.kpis()
    assert tw.city.network.n_links > 900
    assert kp["trips_total"] == 1500
    assert kp["trips_completed"] > 0.6 * 1500  # the last departures are still driving at 07:20
    assert kp["no_route"] == 0
    assert 5 < kp["mean_network_speed_kmh"] < 60


def test_last_partial_interval_is_recorded(small_city):
    tw = Twin(small_scenario(**{"time.duration": 3700}), city=small_city)
    tw.run()
    ds = tw.results()
    assert ds.time.values[-1] == 3700.0
    ls = tw.traffic.state
    assert int(ds.link_inflow.sum()) == int(ls.n_in.sum())
    assert int(ds.link_outflow.sum()) == int(ls.n_out.sum())


def test_splitting_a_run_at_an_event_time_changes_nothing(small_city):
    """A closure is lifted between re-routes; stopping exactly at the next re-route and
    output time (600 s) must not change the order of the events there."""

    def make():
        tw = Twin(small_scenario(), city=small_city)
        net = tw.city.network
        d = int(np.bincount(tw.trips.destination).argmax())
        ins = np.flatnonzero(net.dst == d)
        tw.traffic.links.is_open[ins] = 0
        tw.traffic.update_routes(300)
        return tw, ins

    a, ins = make()
    a.run_until(350)
    a.traffic.links.is_open[ins] = 1
    a.run()
    b, ins = make()
    b.run_until(350)
    b.traffic.links.is_open[ins] = 1
    b.run_until(600)
    b.run()
    assert a.traffic.counts()["arrived"] > 0
    da, db = a.results(), b.results()
    for name in da.data_vars:
        np.testing.assert_array_equal(da[name].values, db[name].values, err_msg=name)


def test_run_until_rejects_nan(small_city):
    tw = Twin(small_scenario(), city=small_city)
    with pytest.raises(ValueError, match="finite"):
        tw.run_until(float("nan"))


def test_vehicle_cut_off_by_a_closure_parks_and_does_not_block_others():
    from city_models import make_network
    from twin.traffic import TrafficModel

    # 0 -> 1 -> 2 and 1 -> 3 (and back links so the network is connected both ways)
    net = make_network(
        x=[0, 200, 400, 400],
        y=[0, 0, 100, -100],
        src=[0, 1, 1, 2, 3, 1],
        dst=[1, 2, 3, 1, 1, 0],
        length_m=200.0,
        lanes=1,
        free_speed_mps=10.0,
    )
    m = TrafficModel(net, step_s=1.0)
    m.add_trips([0, 0], [2, 3], [0.0, 1.0])  # A to 2, then B to 3 right behind it
    m.update_routes(60)
    m.advance_to(5)
    m.links.is_open[1] = 0  # close 1 -> 2: A cannot reach its destination any more
    m.update_routes(60)
    m.advance_to(600)
    assert m.veh.link[1] == k.VEH_ARRIVED  # B was not blocked by A
    assert m.veh.link[0] == k.VEH_NO_ROUTE and m.veh.orig[0] == 1  # A waits at node 1, off the road
    assert m.state.n_in[0] - m.state.n_out[0] == 0
    m.links.is_open[1] = 1
    m.update_routes(60)
    m.advance_to(700)
    assert m.veh.link[0] == k.VEH_ARRIVED and m.veh.arrive[0] >= 600 + 20.0
    assert m.veh.dist[0] == 400.0


def test_traffic_model_pickles_and_resumes_bit_identically(small_city):
    import pickle

    whole = Twin(small_scenario(), city=small_city)
    whole.run()
    tw = Twin(small_scenario(), city=small_city)
    tw.run_until(1500)
    clone = pickle.loads(pickle.dumps(tw.traffic))
    assert np.shares_memory(clone.veh.link, clone.veh.ihot)  # views survive the round trip
    # drive the restored traffic model as the twin does from 1500 s on: a re-route of one
    # batch of destinations every 5 min / batches (the one at 1500 s is still due), then
    # traffic up to the next one
    batches, phase = tw.reroute_batches, tw.reroute_phase
    step = 300 // batches
    for t in range(1500, 3600, step):
        clone.update_routes(300, batches=batches, phase=phase)
        phase = (phase + 1) % batches
        clone.advance_to(t + step)
    np.testing.assert_array_equal(clone.veh.arrive, whole.traffic.veh.arrive)
    np.testing.assert_array_equal(clone.veh.dist, whole.traffic.veh.dist)
