"""What the operations map shows: zone areas and their evacuation state, shelters, bridges and
road labels, stations added or removed, hover details of links, units and incidents."""

from __future__ import annotations

import numpy as np
import pytest

from twin.serve import Runner, build_app
from twin.serve.geometry import convex_hull

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx`:DeprecationWarning")
TestClient = pytest.importorskip("starlette.testclient").TestClient


def _client(twin):
    runner = Runner(twin, speed=60.0)
    return runner, TestClient(build_app(runner))


def _inside(hull, x, y) -> bool:
    """Point in (or on) a counter-clockwise convex polygon."""
    n = len(hull)
    for j in range(n):
        (ax, ay), (bx, by) = hull[j], hull[(j + 1) % n]
        if (bx - ax) * (y - ay) - (by - ay) * (x - ax) < -1e-6:
            return False
    return True


def test_convex_hull():
    x = np.array([0.0, 2.0, 2.0, 0.0, 1.0, 1.0])
    y = np.array([0.0, 0.0, 2.0, 2.0, 1.0, 0.0])
    assert convex_hull(x, y) == [[0.0, 0.0], [2.0, 0.0], [2.0, 2.0], [0.0, 2.0]]
    assert convex_hull(np.array([1.0]), np.array([1.0])) == [[1.0, 1.0]]


def test_map_has_zone_areas_bridges_and_road_labels(twin):
    runner, c = _client(twin)
    m = c.get("/api/map").json()
    net, zones = twin.city.network, twin.city.zones
    assert len(m["zone_hulls"]) == len(zones.name)
    for z, hull in enumerate(m["zone_hulls"]):
        nodes = np.flatnonzero(np.asarray(zones.node_zone) == z)
        assert len(hull) >= 3 and all(_inside(hull, round(net.x[n], 1), round(net.y[n], 1)) for n in nodes)
    assert m["bridges"] == [i for i in range(net.n_links) if str(net.link_kind[i]) == "bridge"]
    assert m["bridges"]
    ranks = {name: rank for name, rank, _ in m["labels"]}
    for i in m["bridges"]:
        assert ranks[str(net.link_name[i])] == 0  # each bridge is labelled first
    for name, _rank, links in m["labels"]:
        assert links and all(str(net.link_name[i]) == name for i in links)


def test_link_details_on_hover(twin):
    runner, c = _client(twin)
    d = c.get("/api/link?i=5").json()
    net, lk = twin.city.network, twin.traffic.links
    assert d["link"] == 5 and d["name"] == str(net.link_name[5] or "") and d["closed"] is False
    assert d["free_kmh"] == round(float(lk.length[5] / lk.free_tt[5] * 3.6), 1)
    assert 0 <= d["speed_kmh"] <= d["free_kmh"]
    vc = float(twin.recorder.link["inflow"][-1][5]) * 6 / float(net.capacity_vph[5])  # 10 min interval
    assert d["vc"] == round(vc, 2)
    assert c.post("/api/control", json={"action": "close_road", "link": 5}).status_code == 200
    d = c.get("/api/link?i=5").json()
    assert d["closed"] is True and d["changes"][0]["closed"] is True
    assert d["changes"][0]["source"] == "operator local: close"
    assert c.get("/api/link?i=99999").status_code == 422
    n = twin.city.network.n_links
    assert c.get(f"/api/link?i={n - 1}").json()["link"] == n - 1  # the last link; one past it is refused
    assert c.get(f"/api/link?i={n}").status_code == 422
    assert c.get("/api/link?i=x").status_code == 422
    for bad in ("-1", "1.5", "%C2%B2", "%D9%A1", "9" * 40, ""):  # "²" and "١" are str.isdigit digits
        r = c.get("/api/link?i=" + bad)
        assert r.status_code == 422 and "link index" in r.json()["error"], bad


def test_units_incidents_and_stations_carry_their_details(twin):
    runner, c = _client(twin)
    comp = twin.components["emergency"]
    comp.add_station("Harbour Fire", "fire", int(twin.city.network.node_osmid[3]), {"engine": 1})
    old = comp.stations[0].name
    comp.remove_station(old)
    runner.publish()
    s = c.get("/api/state").json()
    assert s["stations"]["Harbour Fire"]["added"] is True and s["stations"]["Harbour Fire"]["removed"] is False
    assert s["stations"][old]["removed"] is True and s["stations"][old]["added"] is False
    units = {comp.unit_name(u.id): u for u in comp.units if not u.done}
    for name, row in s["units"].items():
        u = units[name]
        assert row[2] == u.kind and row[4] == (u.incident if u.incident >= 0 else None)
    from basics.clock import format_clock

    def clock(t):
        return None if np.isnan(t) else format_clock(twin.clock_s(t), with_seconds=False)

    assert s["incidents"]
    for key, inc in s["incidents"].items():
        i = comp.incidents[int(key)]
        assert inc["since"] == clock(i.t_occur) and inc["reported"] == clock(i.t_reported)
        assert inc["dispatched"] == clock(i.t_dispatched) and inc["on_scene"] == clock(i.t_on_scene)


def test_evacuation_zones_and_their_state(population_twin):
    tw = population_twin
    runner, c = _client(tw)
    assert "evacuation" not in c.get("/api/state").json()  # no order yet
    zone = tw.city.zones.name[0]
    assert c.post("/api/control", json={"action": "evacuate", "zones": [zone]}).status_code == 200
    states = []
    for t in (600, 1800, 7200):
        tw.run_until(t)
        runner.publish()
        ev = c.get("/api/state").json()["evacuation"]
        assert list(ev["zones"]) == [zone]
        states.append(ev["zones"][zone][0])
        kp = tw.kpis()
        assert ev["ordered"] > 0 and ev["safe"] / ev["ordered"] * 100 == pytest.approx(
            kp["pop_evac_safe_share"], abs=1e-3
        )
    assert states[-1] == "clear" and ev["zones"][zone][1] == 0 and set(states) <= {"ordered", "clearing", "clear"}
