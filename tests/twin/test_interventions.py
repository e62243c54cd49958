"""Interventions: applied and reverted on the clock, exact restore, effects in the expected direction."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

from basics.errors import InputError
from tests.twin.conftest import SMALL, small_scenario
from twin.interventions import retime_windows
from twin.model import Twin

LINK_ARRAYS = ("headway", "free_tt", "storage", "lag", "is_open", "green_start", "green_end")


def _arrays(twin):
    out = {f: getattr(twin.traffic.links, f).copy() for f in LINK_ARRAYS}
    out["cycle"] = twin.traffic.nodes.cycle.copy()
    out["offset"] = twin.traffic.nodes.offset.copy()
    return out


def _twin(small_city, interventions, **over):
    return Twin(small_scenario(interventions=interventions, **over), city=small_city)


def test_every_network_intervention_reverts_exactly(small_city):
    road = str(small_city.network.link_name[np.flatnonzero(small_city.network.link_kind == "arterial")[0]])
    plan = [
        {"kind": "close", "place": "Old Bridge", "at": "07:10", "until": "07:40"},
        {"kind": "capacity", "road": road, "factor": 0.4, "at": "07:05", "until": "07:30"},
        {"kind": "lanes", "road": road, "lanes": 4, "at": "07:15", "until": "07:35"},
        {"kind": "speed", "road": road, "speed_kmh": 20, "factor": 0.9, "at": "07:20", "until": "07:45"},
        {
            "kind": "signal",
            "road": road,
            "cycle": "100s",
            "favour": {"road": road},
            "green_share": 0.7,
            "at": "07:12",
            "until": "07:50",
        },
    ]
    twin = _twin(small_city, plan)
    before = _arrays(twin)
    twin.run_until("07:25")
    during = _arrays(twin)
    assert during["is_open"].min() == 0
    assert not np.array_equal(during["cycle"], before["cycle"])
    assert not np.array_equal(during["free_tt"], before["free_tt"])
    twin.run_until("07:55")
    after = _arrays(twin)
    for key, arr in before.items():
        np.testing.assert_array_equal(after[key], arr, err_msg=key)
    ds = twin.results()
    assert ds.intervention_applied_s.values.tolist() == [600.0, 300.0, 900.0, 1200.0, 720.0]
    assert ds.intervention_reverted_s.values.tolist() == [2400.0, 1800.0, 2100.0, 2700.0, 3000.0]
    assert ds.link_intervened.sum() > 0
    assert twin.kpis()["interventions_applied"] == 5


def _free_flow_paths(net, origins, dests):
    """Links on each trip's free-flow shortest path, as a boolean (trip, link) matrix."""
    g = csr_matrix((net.length_m / net.free_speed_mps + 1e-9, (net.src, net.dst)), shape=(net.n_nodes,) * 2)
    link_of = {(int(a), int(b)): i for i, (a, b) in enumerate(zip(net.src, net.dst, strict=False))}
    uo, inv = np.unique(origins, return_inverse=True)
    _, pred = dijkstra(g, indices=uo, return_predecessors=True)
    used = np.zeros((origins.size, net.n_links), bool)
    for t, (row, d) in enumerate(zip(inv, dests, strict=False)):
        n = int(d)
        while pred[row, n] >= 0:
            used[t, link_of[(int(pred[row, n]), n)]] = True
            n = int(pred[row, n])
    return used


@settings(
    max_examples=int(__import__("os").environ.get("BRIDGE_EXAMPLES", 4)),
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(seed=st.integers(0, 10_000), bridge=st.sampled_from(["Old Bridge", "North Bridge"]))
def test_closing_a_bridge_slows_the_trips_that_crossed_it_and_not_the_far_ones(small_city, seed, bridge):
    light = {"seed": seed, "demand.gravity.total_trips": 1000}
    base = Twin(small_scenario(**light), city=small_city)
    base.run()
    shut = Twin(small_scenario(interventions=[{"kind": "close", "place": bridge}], **light), city=small_city)
    shut.run()
    net = small_city.network
    tb, ts = base.results(), shut.results()
    done = np.isfinite(tb.trip_travel_time_s.values) & np.isfinite(ts.trip_travel_time_s.values)
    o, d = base.trips.origin, base.trips.destination
    used = _free_flow_paths(net, o, d)
    bridge_links = small_city.places[bridge]
    all_bridges = np.flatnonzero(net.link_kind == "bridge")
    crossed = done & used[:, bridge_links].any(axis=1)
    mid = np.array([(net.x[net.src[bridge_links]].mean()), net.y[net.src[bridge_links]].mean()])
    far_end = np.minimum(np.hypot(net.x[o] - mid[0], net.y[o] - mid[1]), np.hypot(net.x[d] - mid[0], net.y[d] - mid[1]))
    far = done & ~used[:, all_bridges].any(axis=1) & (far_end > 700.0)
    assert crossed.sum() >= 5 and far.sum() >= 15
    tt_b, tt_s = tb.trip_travel_time_s.values, ts.trip_travel_time_s.values
    assert np.mean(tt_s[crossed]) > 1.10 * np.mean(tt_b[crossed])
    assert np.median(tt_s[crossed] - tt_b[crossed]) > 0 and np.mean(tt_s[crossed] > tt_b[crossed]) > 0.7
    assert abs(np.mean(tt_s[far]) / np.mean(tt_b[far]) - 1.0) < 0.03


def test_demand_scale_cancels_and_adds_trips_in_its_window(small_city):
    down = _twin(small_city, [{"kind": "demand", "scale": 0.5, "at": "07:20", "until": "07:40"}])
    base = _twin(small_city, [])
    base.run()
    down.run()
    dep = base.trips.depart_s
    window = (dep >= 1200) & (dep < 2400)
    k = down.kpis()
    assert k["trips_cancelled"] == down.results().intervention_trips_cancelled.item()
    assert 0.4 * window.sum() < k["trips_cancelled"] < 0.6 * window.sum()
    cancelled = down.traffic.veh.link[: dep.size] == -5
    assert not cancelled[~window].any()
    up = _twin(small_city, [{"kind": "demand", "scale": 1.5, "at": "07:20", "until": "07:40"}])
    up.run()
    ds = up.results()
    added = int(ds.intervention_trips_added.item())
    assert 0.4 * window.sum() < added < 0.6 * window.sum()
    assert ds.sizes["trip"] == dep.size + added
    extra = ds.trip_depart_s.values[dep.size :]
    assert extra.min() >= 1200 and extra.max() < 2400
    assert (ds.trip_source.values[dep.size :] == 1).all()


def test_cordon_drops_more_crossing_trips_at_a_higher_price(small_city):
    zones = ["Z01-01", "Z01-02"] if "Z01-01" in small_city.zones.name else list(small_city.zones.name[:2])
    dropped = []
    for price in (0.0, 2.0, 8.0, 30.0):
        tw = _twin(small_city, [{"kind": "cordon", "zones": zones, "price": price, "at": "07:00", "until": "08:00"}])
        tw.run_for(60)
        dropped.append(tw.kpis()["trips_dropped_by_policy"])
    assert dropped[0] == 0
    assert dropped == sorted(dropped) and dropped[-1] > dropped[1] > 0


def test_retime_windows_gives_the_favoured_phase_its_share():
    gs = np.array([0.0, 0.0, 33.0, 33.0])
    ge = np.array([30.0, 30.0, 57.0, 57.0])
    fav = np.array([False, False, True, True])
    c, ngs, nge = retime_windows(60.0, gs, ge, fav, new_cycle=90.0, green_share=0.7)
    green = (nge - ngs) % c
    total = 90.0 - 6.0  # intergreens (3 s + 3 s) are kept
    assert c == 90.0
    assert green[2] == pytest.approx(0.7 * total) and green[0] == pytest.approx(0.3 * total)
    assert (ngs[2] - nge[0]) % c == pytest.approx(3.0)
    same = retime_windows(60.0, gs, ge, fav, new_cycle=None, green_share=None)
    np.testing.assert_allclose(same[1], gs)
    np.testing.assert_allclose(same[2], ge)
    with pytest.raises(ValueError, match="no green time"):
        retime_windows(60.0, gs, ge, fav, new_cycle=7.0, green_share=None)


def test_signal_retiming_changes_discharge_on_the_favoured_approach(small_city):
    net = small_city.network
    node = int(np.flatnonzero(net.signal_cycle_s > 0)[0])
    base = _twin(small_city, [])
    inl = np.flatnonzero(net.dst == node)
    ctl = inl[net.green_start_s[inl] != net.green_end_s[inl]]
    fav = int(ctl[0])
    tw = _twin(
        small_city,
        [
            {
                "kind": "signal",
                "nodes": [int(net.node_osmid[node])],
                "favour": {"links": [int(net.link_osmid[fav])]},
                "green_share": 0.85,
            }
        ],
    )
    tw.run_for(10)  # applied at the start of the run
    g0 = (net.green_end_s[fav] - net.green_start_s[fav]) % net.signal_cycle_s[node]
    g1 = (tw.traffic.links.green_end[fav] - tw.traffic.links.green_start[fav]) % tw.traffic.nodes.cycle[node]
    assert g1 > g0
    base.run()
    tw.run()
    assert tw.results().link_outflow.sum("time")[fav] >= base.results().link_outflow.sum("time")[fav]


@pytest.mark.parametrize(
    "entry, message",
    [
        ({"kind": "close", "road": "Old Brige"}, "did you mean 'Old Bridge'"),
        ({"kind": "close", "links": [99999]}, "no link with id 99999"),
        ({"kind": "cordon", "zones": ["Z9"], "price": 2}, "no zone named 'Z9'"),
        ({"kind": "work_from_home", "share": 0.3}, "needs a 'population' section"),
        ({"kind": "close", "road": "Old Bridge", "at": "07:30", "until": "07:10"}, "is not after"),
        ({"kind": "signal", "road": "North Bridge", "cycle": 90}, "has a signal"),
    ],
)
def test_bad_interventions_name_the_entry(small_city, entry, message):
    with pytest.raises(InputError, match=r"interventions\[0\]") as err:
        _twin(small_city, [entry])
    assert message in str(err.value)


def test_an_intervention_scenario_runs_from_the_cli_with_a_marked_map(tmp_path):
    import yaml

    from twin.cli import main

    spec = dict(SMALL, interventions=[{"kind": "close", "place": "Old Bridge", "at": "07:10"}])
    path = tmp_path / "closed.yaml"
    path.write_text(yaml.safe_dump(spec))
    assert main(["run", str(path), "--out", str(tmp_path / "run"), "-q"]) == 0
    import xarray as xr

    with xr.open_dataset(tmp_path / "run" / "results.nc") as ds:
        assert set(np.flatnonzero(ds.link_intervened.values)) == set(
            ds.link.values[np.isin(ds.link_name.values, ["Old Bridge"])]
        )
        assert math.isnan(float(ds.intervention_reverted_s[0]))


def test_station_interventions_reach_the_emergency_services(small_city):
    plan = [
        {"kind": "station_out", "station": "Fire Station 1", "at": "07:05", "until": "07:20"},
        {
            "kind": "station_add",
            "station": "Fire Station 9",
            "station_kind": "fire",
            "node": 5,
            "units": {"engine": 1},
            "at": "07:10",
            "until": "07:30",
        },
    ]
    tw = _twin(small_city, plan, **{"incidents.enabled": True})
    em = tw.components["emergency"]
    tw.run_until("07:15")
    st = {s.name: s for s in em.stations}
    assert st["Fire Station 1"].in_service is False and "Fire Station 9" in st
    tw.run_until("07:35")
    st = {s.name: s for s in em.stations}
    assert st["Fire Station 1"].in_service is True and st["Fire Station 9"].removed
    assert tw.kpis()["interventions_applied"] == 2
