"""Route rows searched only as far as the vehicles need: the same traffic as complete rows."""

from __future__ import annotations

import numpy as np
import pytest

from kernels import traffic as k
from scenarios import load_scenario
from twin.model import Twin
from twin.traffic import TrafficModel

from .conftest import small_scenario


def _veh(tw):
    v = tw.traffic.veh
    return {f: getattr(v, f).copy() for f in ("arrive", "dist", "enter_net", "link", "orig", "fftt")}


def _run(scenario, city, *, close_at=None):
    tw = Twin(scenario, city=city)
    radii = []
    if close_at is None:
        tw.run()
    else:
        tw.run_until(close_at)
        d = int(np.bincount(tw.trips.destination).argmax())
        ins = np.flatnonzero(tw.city.network.dst == d)[:2]
        tw.traffic.links.is_open[ins] = 0
        tw.traffic.update_routes(tw.reroute_s)
        tw.run_until(close_at + 900)
        tw.traffic.links.is_open[ins] = 1
        tw.run()
    radii.append(tw.traffic._row_radius.copy())
    return tw, radii


@pytest.mark.parametrize("close_at", [None, 1200])
def test_rows_by_radius_give_the_traffic_of_complete_rows(small_city, monkeypatch, close_at):
    sc = small_scenario()
    near, radii = _run(sc, small_city, close_at=close_at)
    assert any((r < np.inf).any() for r in radii)  # some rows really were partial
    with monkeypatch.context() as mp:
        orig = TrafficModel._search_rows
        mp.setattr(TrafficModel, "_search_rows",
                   lambda self, rows, ti, tn, r_min, w: orig(self, rows, ti, tn, np.full_like(r_min, np.inf), w))
        full, radii_full = _run(sc, small_city, close_at=close_at)
    assert all((r == np.inf).all() for r in radii_full)
    a, b = _veh(near), _veh(full)
    for f in a:
        np.testing.assert_array_equal(a[f], b[f], err_msg=f)
    da, db = near.results(), full.results()
    for name in da.data_vars:
        np.testing.assert_array_equal(da[name].values, db[name].values, err_msg=name)


def test_population_day_with_rows_by_radius_matches_complete_rows(monkeypatch):
    base = {
        "name": "pop_radius", "seed": 2,
        "time": {"start": "06:30", "duration": "2h", "step": "2s"},
        "city": {"synthetic": {"blocks_x": 6, "blocks_y": 6, "bridges": 2, "zone_blocks": 2, "arterial_every": 3,
                               "residents": 3000, "jobs": 2000}},
        "outputs": {"interval": "15min"},
        "traffic": {"reroute_interval": "10min"},
        "population": {"enabled": True},
    }
    sc = load_scenario(base)
    near = Twin(sc)
    near.run()
    assert (near.traffic._row_radius < np.inf).any()
    orig = TrafficModel._search_rows
    monkeypatch.setattr(TrafficModel, "_search_rows",
                        lambda self, rows, ti, tn, r_min, w: orig(self, rows, ti, tn, np.full_like(r_min, np.inf), w))
    full = Twin(sc)
    full.run()
    a, b = _veh(near), _veh(full)
    for f in a:
        np.testing.assert_array_equal(a[f], b[f], err_msg=f)
    assert near.kpis() == full.kpis()


def test_trip_added_beyond_a_rows_radius_is_routed(small_city):
    net = small_city.network
    m = TrafficModel(net, step_s=2.0)
    g = m.graph
    dest = 0
    # a first trip from a neighbour of the destination: its row only reaches nearby
    last = int(g.in_links[g.in_indptr[dest]])
    near_node = int(g.src[last])
    m.add_trips([near_node], [dest], [0.0])  # a new row is complete ...
    assert m._row_radius[m.dest_row[dest]] == np.inf
    # ... until new weights make it stale: slow its last link down
    m.set_link_params([last], capacity_vph=net.capacity_vph[last], free_speed_mps=net.free_speed_mps[last] / 2,
                      jam_density_vpm=net.jam_density_vpm[last], is_open=1)
    m.update_routes(60)
    r = m.dest_row[dest]
    assert m._row_radius[r] < np.inf
    far = int(np.argmax(np.hypot(net.x - net.x[dest], net.y - net.y[dest])))
    assert not m.routes.pot[r, far] < m._row_radius[r]
    # then a trip from the far side, departing before the next re-route
    m.add_trips([far], [dest], [10.0])
    m.advance_to(3600)
    assert m.veh.link.tolist() == [k.VEH_ARRIVED, k.VEH_ARRIVED]
    # and one departing long after the horizon the rows were searched for
    m.add_trips([far], [dest], [4000.0])
    m.advance_to(9000)
    assert m.counts()["arrived"] == 3


def test_route_targets_and_uncovered_departures():
    from city_models import make_network

    # 0 -> 1 -> 2 -> 3
    net = make_network(x=[0, 100, 200, 300], y=[0, 0, 0, 0], src=[0, 1, 2], dst=[1, 2, 3], length_m=100.0,
                       lanes=1, free_speed_mps=10.0)
    m = TrafficModel(net, step_s=1.0)
    m.add_trips([0, 1, 0, 2], [3, 3, 2, 3], [0.0, 0.0, 50.0, 500.0])
    m.update_routes(60)
    ti, tn = k.route_targets(m.veh, m.state, m.links.dst, 100.0, m.dest_nodes.shape[0])
    rows = {int(d): sorted(tn[ti[m.dest_row[d]]:ti[m.dest_row[d] + 1]].tolist()) for d in (2, 3)}
    assert rows == {3: [0, 1], 2: [0]}  # the trip at 500 s is past the horizon
    m.advance_to(5)  # the first two are on their first links now
    ti, tn = k.route_targets(m.veh, m.state, m.links.dst, 10.0, m.dest_nodes.shape[0])
    r3 = m.dest_row[3]
    assert sorted(tn[ti[r3]:ti[r3 + 1]].tolist()) == [1, 2]  # where they decide next
    assert ti[m.dest_row[2] + 1] == ti[m.dest_row[2]]  # nothing bound for 2 before 10 s
    radius = m._row_radius.copy()
    radius[:] = 0.5  # pretend the rows cover only their destinations
    rws, nodes = k.uncovered_departures(m.veh, m.state, 600.0, m.routes.pot, radius)
    assert sorted(zip(rws.tolist(), nodes.tolist())) == sorted([(int(m.dest_row[2]), 0), (int(r3), 2)])
    radius[:] = np.inf
    rws, _ = k.uncovered_departures(m.veh, m.state, 600.0, m.routes.pot, radius)
    assert rws.size == 0
