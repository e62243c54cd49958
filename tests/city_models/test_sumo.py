"""SUMO in (issue 13, part 2): the networks and demand that ship in the eclipse-sumo wheel,
checked against sumolib's own reading and SUMO's own flow expansion."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

sumo = pytest.importorskip("sumo")

from city_models import CityError, load_city  # noqa: E402
from city_models.demand import DemandError  # noqa: E402
from city_models.sumo import city_from_sumo, read_sumo_demand, sumo_file, sumo_id  # noqa: E402

SUMO_HOME = Path(sumo.__file__).parent
DRT_NET = SUMO_HOME / "tools/game/DRT/osm.net.xml"
BS_NET = SUMO_HOME / "tools/game/bs3d/bs.net.xml"
BS_ROU = SUMO_HOME / "tools/game/bs3d/bs3d.rou.xml"
SUMO_BIN = SUMO_HOME / "bin" / "sumo"

pytestmark = pytest.mark.skipif(not DRT_NET.is_file() or not BS_NET.is_file(), reason="wheel without the game networks")


@pytest.fixture(scope="module")
def sumolib():
    sys.path.insert(0, str(SUMO_HOME / "tools"))
    try:
        import sumolib as lib
    finally:
        sys.path.remove(str(SUMO_HOME / "tools"))
    return lib


@pytest.fixture(scope="module")
def drt_city():
    return city_from_sumo(DRT_NET)


@pytest.fixture(scope="module")
def bs_city():
    return city_from_sumo(BS_NET)


# --------------------------------------------------------------------------- network


@pytest.mark.parametrize("which", ["drt", "bs"])
def test_edges_lanes_speeds_lengths_round_trip_against_sumolib(which, sumolib, drt_city, bs_city):
    path, city = (DRT_NET, drt_city) if which == "drt" else (BS_NET, bs_city)
    ref = sumolib.net.readNet(str(path), withPrograms=True)
    roads = [e for e in ref.getEdges(withInternal=False) if e.getFunction() in ("", "normal") and e.allows("passenger")]
    net = city.network
    assert net.n_links == len(roads) > 50
    by_id = {int(k): i for i, k in enumerate(net.link_osmid)}
    node_of = {int(k): i for i, k in enumerate(net.node_osmid)}
    assert len(by_id) == net.n_links  # edge ids stay distinct as 64-bit source ids
    for e in roads:
        li = by_id[sumo_id(e.getID())]
        cars = [ln for ln in e.getLanes() if ln.allows("passenger")]
        assert net.lanes[li] == len(cars)
        assert net.free_speed_mps[li] == pytest.approx(max(ln.getSpeed() for ln in cars))
        assert net.length_m[li] == pytest.approx(np.mean([ln.getLength() for ln in cars]))
        assert net.src[li] == node_of[sumo_id(e.getFromNode().getID())]
        assert net.dst[li] == node_of[sumo_id(e.getToNode().getID())]
        x, y = e.getToNode().getCoord()
        assert (net.x[net.dst[li]], net.y[net.dst[li]]) == pytest.approx((x, y))
    # priorities keep SUMO's order (shifted to start at 1) except into equal-rank junctions
    prios = {e.getPriority() for e in roads}
    for e in roads:
        li = by_id[sumo_id(e.getID())]
        if e.getToNode().getType() in ("right_before_left", "left_before_right", "allway_stop", "zipper"):
            assert net.priority[li] == 1
        else:
            assert net.priority[li] == e.getPriority() - min(prios) + 1
    # longitude/latitude from the file's projection
    lon, lat = ref.convertXY2LonLat(*ref.getNode(roads[0].getFromNode().getID()).getCoord())
    i = node_of[sumo_id(roads[0].getFromNode().getID())]
    assert (net.lon[i], net.lat[i]) == pytest.approx((lon, lat), abs=1e-6)


@pytest.mark.parametrize("which", ["drt", "bs"])
def test_signal_programs_round_trip_against_sumolib(which, sumolib, drt_city, bs_city):
    path, city = (DRT_NET, drt_city) if which == "drt" else (BS_NET, bs_city)
    ref = sumolib.net.readNet(str(path), withPrograms=True)
    net = city.network
    by_id = {int(k): i for i, k in enumerate(net.link_osmid)}
    checked = 0
    for tls in ref.getTrafficLights():
        if not tls.getPrograms():
            continue  # connections name a signal with no program in the file: not imported either
        prog = next(iter(tls.getPrograms().values()))
        phases = prog.getPhases()
        dur = np.array([p.duration for p in phases], float)
        cycle = dur.sum()
        starts = np.concatenate([[0.0], np.cumsum(dur)[:-1]])
        links: dict[int, set[int]] = {}
        for in_lane, _out, k in tls.getConnections():
            e = in_lane.getEdge()
            if sumo_id(e.getID()) in by_id:
                links.setdefault(by_id[sumo_id(e.getID())], set()).add(k)
        for li, ks in links.items():
            node = net.dst[li]
            assert net.signal_cycle_s[node] == pytest.approx(cycle)
            assert net.signal_offset_s[node] == pytest.approx(float(prog.getOffset() or 0) % cycle)
            gs, ge = net.green_start_s[li], net.green_end_s[li]
            green = [any(p.state[k] in "Gg" for k in ks) for p in phases]
            if all(green) or not any(green):
                assert gs == ge  # always green, or never green in the program: not held
                continue
            assert gs != ge
            # every phase inside the window shows green for the edge, and the window is bounded by red
            length = (ge - gs) % cycle
            inside = [((s - gs) % cycle) < length - 1e-9 for s in starts]
            assert any(inside)
            assert all(g for g, i in zip(green, inside, strict=False) if i)
            assert length == pytest.approx(sum(d for d, i in zip(dur, inside, strict=False) if i))
            checked += 1
    assert checked >= (2 if which == "bs" else 20)


def test_internal_edges_and_non_roads_are_not_links(drt_city):
    text = DRT_NET.read_text()
    assert 'function="internal"' in text
    ids = {int(k) for k in drt_city.network.link_osmid}
    for el in ET.fromstring(text.encode()).iter("edge"):
        if el.get("function") == "internal":
            assert sumo_id(el.get("id")) not in ids


def test_load_city_validates_and_builtin_names(tmp_path):
    city = load_city({"sumo": "drt", "repair": {"keep": "largest_weak"}})
    assert city.network.n_links > 500
    assert any("signal programs" in n for n in city.notes)
    assert sumo_file("bs3d", "demand") == BS_ROU


# --------------------------------------------------------------------------- demand


def _write(tmp_path: Path, name: str, body: str) -> Path:
    p = tmp_path / name
    p.write_text(body)
    return p


def _sumo_loaded(net: Path, rou: Path, end: float, tmp_path: Path) -> int:
    """Vehicles SUMO itself loads from ``rou`` up to ``end``."""
    stats = tmp_path / "stats.xml"
    subprocess.run(
        [
            str(SUMO_BIN),
            "-n",
            str(net),
            "-r",
            str(rou),
            "--end",
            f"{end:g}",
            "--no-step-log",
            "--no-warnings",
            "--statistic-output",
            str(stats),
            "--ignore-route-errors",
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return int(ET.parse(stats).getroot().find("vehicles").get("loaded"))


@pytest.mark.skipif(not SUMO_BIN.is_file(), reason="no sumo binary in the wheel")
def test_flows_make_as_many_trips_as_sumo_in_their_window(tmp_path, bs_city):
    rou = _write(
        tmp_path,
        "f.rou.xml",
        """<routes>
  <route id="r" edges="166445412 23207363#0"/>
  <flow id="n" from="4314834#2" to="29136063#0" begin="0" end="1200" number="17"/>
  <trip id="t" from="61734682#3" to="30425847#0" depart="5"/>
  <vehicle id="v1" depart="7"><route edges="166445412 29136063#0"/></vehicle>
  <flow id="p" route="r" begin="20" end="1000" period="30"/>
  <flow id="v" from="166445406" to="23204862" begin="100" end="1900" vehsPerHour="400"/>
</routes>""",
    )  # sorted by departure: SUMO ignores elements out of order
    trips = read_sumo_demand(rou, bs_city.network, BS_NET, duration_s=3600.0)
    per = {"p": 33, "v": 200, "n": 17}  # ceil(980/30), 1800 s at 400/h, number
    assert trips.trip_id.size == sum(per.values()) + 2
    assert trips.trip_id.size == _sumo_loaded(BS_NET, rou, 3600.0, tmp_path)
    assert np.all(np.diff(trips.depart_s) >= 0)
    # the period flow's departures: 20, 50, ... 980 (ids in file order: n, t, v1, then p)
    p = np.sort(trips.depart_s[(trips.trip_id >= 19) & (trips.trip_id < 19 + 33)])
    assert np.array_equal(p, 20.0 + 30.0 * np.arange(33))
    # a window cut by the scenario's end keeps only the departures before it
    short = read_sumo_demand(rou, bs_city.network, BS_NET, duration_s=500.0)
    assert short.trip_id.size == int(np.sum(trips.depart_s < 500.0))


def test_probability_flow_is_seeded(tmp_path, bs_city):
    rou = _write(
        tmp_path,
        "p.rou.xml",
        """<routes>
  <flow id="q" from="166445406" to="23204862" begin="0" end="3600" probability="0.1"/>
</routes>""",
    )
    a = read_sumo_demand(rou, bs_city.network, BS_NET, seed=3)
    b = read_sumo_demand(rou, bs_city.network, BS_NET, seed=3)
    c = read_sumo_demand(rou, bs_city.network, BS_NET, seed=4)
    assert np.array_equal(a.depart_s, b.depart_s) and not np.array_equal(a.depart_s, c.depart_s)
    assert 300 < a.trip_id.size < 420  # Binomial(3600, 0.1)


def test_shipped_bs3d_demand(bs_city):
    trips = read_sumo_demand(BS_ROU, bs_city.network, BS_NET, duration_s=3600.0)
    root = ET.parse(BS_ROU).getroot()
    expect = 0
    for f in root.iter("flow"):
        b, e, p = float(f.get("begin")), float(f.get("end")), float(f.get("period"))
        expect += int(np.ceil((min(e, 3600.0) - b) / p))
    assert trips.trip_id.size == expect
    assert np.all(trips.origin != trips.destination)


# --------------------------------------------------------------------------- bad input


def test_corrupt_network_names_file_and_line(tmp_path):
    text = BS_NET.read_text().splitlines()
    bad = _write(tmp_path, "cut.net.xml", "\n".join(text[: len(text) // 2]) + '\n<edge id="x" from=')
    with pytest.raises(CityError, match=r"cut\.net\.xml.*line \d+"):
        city_from_sumo(bad)
    lanes = _write(
        tmp_path,
        "lane.net.xml",
        """<net><junction id="a" type="priority" x="0" y="0"/>
<junction id="b" type="priority" x="100" y="0"/>
<edge id="e1" from="a" to="b" priority="1"><lane id="e1_0" index="0" speed="fast" length="100"/></edge></net>""",
    )
    with pytest.raises(CityError, match=r"lane\.net\.xml.*e1_0.*speed='fast'"):
        city_from_sumo(lanes)
    with pytest.raises(CityError, match=r"root element is <routes>"):
        city_from_sumo(BS_ROU)


def test_entities_are_refused(tmp_path):
    bomb = _write(
        tmp_path,
        "bomb.net.xml",
        """<?xml version="1.0"?>
<!DOCTYPE net [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>
<net><junction id="&b;" type="priority" x="0" y="0"/></net>""",
    )
    with pytest.raises(CityError, match="DTD or entity"):
        city_from_sumo(bomb)


def test_unknown_edge_or_route_is_named(tmp_path, bs_city):
    rou = _write(
        tmp_path,
        "bad.rou.xml",
        """<routes>
  <trip id="ok" from="166445412" to="23207363#0" depart="0"/>
  <route id="r9" edges="166445412 no_such_edge 23207363#0"/>
</routes>""",
    )
    with pytest.raises(DemandError, match=r"bad\.rou\.xml.*<route id='r9'>.*'no_such_edge'"):
        read_sumo_demand(rou, bs_city.network, BS_NET)
    rou2 = _write(tmp_path, "bad2.rou.xml", '<routes><vehicle id="v7" route="nope" depart="1"/></routes>')
    with pytest.raises(DemandError, match=r"bad2\.rou\.xml.*<vehicle id='v7'>.*route 'nope'"):
        read_sumo_demand(rou2, bs_city.network, BS_NET)
    rou3 = _write(tmp_path, "bad3.rou.xml", '<routes><flow id="f" from="166445412" to="23207363#0"/></routes>')
    with pytest.raises(DemandError, match=r"<flow id='f'> needs one of period"):
        read_sumo_demand(rou3, bs_city.network, BS_NET)


# --------------------------------------------------------------------------- in the twin


def test_scenario_runs_in_the_twin_and_most_trips_complete(tmp_path):
    from scenarios import load_scenario
    from twin.model import Twin

    yaml = _write(
        tmp_path,
        "s.yaml",
        f"""name: sumo_bs3d
city: {{sumo: {BS_NET}}}
demand: {{sumo: {BS_ROU}}}
time: {{duration: 40min}}
""",
    )
    sc = load_scenario(yaml)
    assert sc.city.kind == "sumo" and sc.demand.kind == "sumo"
    twin = Twin(sc)
    n = twin.traffic.n_vehicles
    assert n > 1000
    twin.run()
    arrive = twin.traffic.veh.arrive[:n]
    depart = twin.traffic.veh.depart[:n] if hasattr(twin.traffic.veh, "depart") else None
    early = np.ones(n, bool) if depart is None else depart < 20 * 60
    assert np.isfinite(arrive[early]).mean() > 0.9
    with pytest.raises(Exception, match="city: {sumo"):
        load_scenario({"city": {"synthetic": {}}, "demand": {"sumo": str(BS_ROU)}})


# --------------------------------------------------------------------------- scenario schema


def test_scenario_keys_resolve_and_hash_the_files(tmp_path):
    import shutil

    from scenarios import ScenarioError, load_scenario, scenario_hash

    shutil.copy(BS_ROU, tmp_path / "d.rou.xml")
    (tmp_path / "s.yaml").write_text(f"city: {{sumo: {BS_NET}}}\ndemand: {{sumo: d.rou.xml}}\n")
    sc = load_scenario(tmp_path / "s.yaml")
    assert sc.demand.sumo == str(tmp_path / "d.rou.xml") and sc.demand.gravity is None
    h1 = scenario_hash(sc)
    (tmp_path / "d.rou.xml").write_text(BS_ROU.read_text().replace('period="30"', 'period="31"', 1))
    assert scenario_hash(load_scenario(tmp_path / "s.yaml")) != h1  # the demand file's content is hashed
    with pytest.raises(ScenarioError, match="exactly one kind of city"):
        load_scenario({"city": {"sumo": "drt", "osm": "helsinki"}})
    with pytest.raises(ScenarioError, match="not both"):
        load_scenario({"city": {"sumo": "drt"}, "demand": {"sumo": str(BS_ROU), "gravity": {}}})
    with pytest.raises(ScenarioError, match="SUMO network .*does not exist"):
        load_scenario({"city": {"sumo": str(tmp_path / "missing.net.xml")}})
    assert load_scenario("sumo_drt").city.sumo == "drt"


def test_route_distribution_and_nested_routes(tmp_path, bs_city):
    rou = _write(
        tmp_path,
        "d.rou.xml",
        """<routes>
  <routeDistribution id="rd">
    <route id="a" edges="166445412 23207363#0" probability="0.7"/>
    <route id="b" edges="166445412 29136063#0" probability="0.3"/>
  </routeDistribution>
  <vehicle id="x" route="rd" depart="1"/>
  <vehicle id="y" route="b" depart="2"/>
  <flow id="f" begin="0" end="100" period="50"><route edges="166445406 23204862"/></flow>
  <person id="p" depart="0"><walk edges="166445412"/></person>
</routes>""",
    )
    trips = read_sumo_demand(rou, bs_city.network, BS_NET)
    net = bs_city.network
    node = {int(k): i for i, k in enumerate(net.node_osmid)}
    link = {int(k): i for i, k in enumerate(net.link_osmid)}
    assert trips.trip_id.size == 4  # x, y and two from the flow; the person is skipped
    x = trips.trip_id == 0
    assert trips.origin[x][0] == net.src[link[sumo_id("166445412")]]
    assert trips.destination[x][0] == net.dst[link[sumo_id("23207363#0")]]
    y = trips.trip_id == 1
    assert trips.destination[y][0] == net.dst[link[sumo_id("29136063#0")]]
    assert node  # ids resolve
