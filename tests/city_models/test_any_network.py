"""Any network, as given (issue 13 part 1; network attributes of issue 15 part 4).

Networks that are not strongly connected run as they are; trips with no route
are counted, never a reason to refuse the run; source ids of merged or dropped
nodes keep working; GraphML from networkx and from osmnx read alike; implausible
attributes are a clear error or a note.
"""

from __future__ import annotations

import numpy as np
import pytest

from city_models import CityError, load_city, lookup_nodes, make_network, validate_network
from city_models.network import reachable
from city_models.validate import resolve_keep
from tests.city_models.helpers import n_strong


# --------------------------------------------------------------------------- helpers
def _write_nx_graphml(path, nodes, edges, *, graph=None, directed=True):
    """A GraphML file written by plain networkx: nodes {id: attrs}, edges [(u, v, attrs)]."""
    import networkx as nx

    G = nx.MultiDiGraph(**(graph or {})) if directed else nx.Graph(**(graph or {}))
    for nd, attrs in nodes.items():
        G.add_node(nd, **attrs)
    for u, v, attrs in edges:
        G.add_edge(u, v, **attrs)
    nx.write_graphml(G, path)
    return path


def _corridor_nodes(n=4, spacing_deg=0.004):
    # a straight east-west road in Helsinki (lon/lat): ~222 m per 0.004 degrees of longitude at 60 N
    return {10 + i: {"x": 24.90 + spacing_deg * i, "y": 60.17} for i in range(n)}


def _trips_csv(path, rows):
    path.write_text(
        "trip_id,origin,destination,depart_s\n" + "".join(f"{i},{o},{d},{t}\n" for i, (o, d, t) in enumerate(rows))
    )
    return path


def _run(tmp_path, city_spec, trips, duration="20min"):
    from scenarios import load_scenario
    from twin.model import Twin

    sc = load_scenario(
        {
            "city": city_spec,
            "demand": {"trips": str(_trips_csv(tmp_path / "trips.csv", trips))},
            "time": {"start": "07:00", "duration": duration, "step": "1s"},
        },
        base_dir=tmp_path,
    )
    tw = Twin(sc)
    tw.run()
    return tw, tw.kpis()


# --------------------------------------------------------------------------- keep modes
def test_keep_modes_and_the_old_flag():
    assert resolve_keep() == "largest_strong"
    assert resolve_keep(keep_largest_scc=True) == "largest_strong"
    assert resolve_keep(keep_largest_scc=False) == "all"
    assert resolve_keep("largest_weak") == "largest_weak"
    with pytest.raises(CityError, match="keep"):
        resolve_keep("biggest")
    with pytest.raises(CityError, match="contradicts"):
        resolve_keep("largest_strong", keep_largest_scc=False)
    with pytest.raises(CityError, match="repair"):
        load_city({"synthetic": {}, "repair": {"keep": "everything"}})
    with pytest.raises(CityError, match="unknown key 'kept'"):
        load_city({"synthetic": {}, "repair": {"kept": "all"}})


def test_corridor_refused_only_when_asked_for_strong_connectivity():
    net = make_network(
        x=[0, 300, 700, 1200],
        y=[0, 0, 0, 0],
        src=[0, 1, 2],
        dst=[1, 2, 3],
        length_m=[300.0, 400.0, 500.0],
        lanes=1,
        free_speed_mps=10.0,
        link_kind=["primary"] * 3,
    )
    with pytest.raises(CityError, match="keep: all or largest_weak"):
        validate_network(net, keep="largest_strong")
    for keep in ("all", "largest_weak"):
        out, notes = validate_network(net, keep=keep)
        assert out.n_nodes == 4 and out.n_links == 3
        assert any("not strongly connected" in n and "trips_no_route" in n for n in notes)


def test_largest_weak_drops_islands_all_keeps_them():
    # a one-way pair 0 -> 1 -> 2 and an island 3 <-> 4 no road joins
    net = make_network(
        x=[0, 100, 200, 900, 1000],
        y=[0, 0, 0, 900, 900],
        src=[0, 1, 3, 4],
        dst=[1, 2, 4, 3],
        length_m=100.0,
        lanes=1,
        free_speed_mps=10.0,
        node_osmid=[50, 51, 52, 53, 54],
    )
    weak, notes = validate_network(net, keep="largest_weak")
    assert weak.node_osmid.tolist() == [50, 51, 52] and any("not joined by any road" in n for n in notes)
    assert lookup_nodes(weak, [53, 54]).min() >= 0  # dropped ids map to the nearest kept node
    every, _ = validate_network(net, keep="all")
    assert every.n_nodes == 5 and every.alias_osmid.size == 0


def test_reachable_matches_shortest_paths():
    import scipy.sparse as sp
    from scipy.sparse.csgraph import dijkstra

    rng = np.random.default_rng(3)
    n = 40
    src = rng.integers(0, n, 70)
    dst = rng.integers(0, n, 70)
    keep = src != dst
    net = make_network(
        x=rng.random(n), y=rng.random(n), src=src[keep], dst=dst[keep], length_m=1.0, lanes=1, free_speed_mps=1.0
    )
    o, d = rng.integers(0, n, 500), rng.integers(0, n, 500)
    dist = dijkstra(sp.csr_matrix((np.ones(net.n_links), (net.src, net.dst)), shape=(n, n)), directed=True)
    np.testing.assert_array_equal(reachable(net, o, d), np.isfinite(dist[o, d]))
    assert n_strong(net) > 1  # the case is not trivially strongly connected


# --------------------------------------------------------------------------- networks that run
def test_one_way_corridor_runs_with_exact_free_flow_times(tmp_path):
    nodes = _corridor_nodes()
    edges = [
        (10 + i, 11 + i, {"length": L, "speed": 10.0, "highway": "primary"})
        for i, L in enumerate((300.0, 400.0, 500.0))
    ]
    _write_nx_graphml(tmp_path / "corridor.graphml", nodes, edges, graph={"speed_unit": "m/s"})
    trips = [(10, 13, 0.0), (13, 10, 5.0), (12, 11, 10.0), (11, 13, 60.0), (12, 13, 300.0)]  # by departure
    tw, kp = _run(tmp_path, {"graphml": "corridor.graphml"}, trips)
    net = tw.city.network
    assert net.n_nodes == 4 and net.n_links == 3  # kept as given
    assert kp["trips_total"] == 5 and kp["trips_completed"] == 3
    assert kp["trips_no_route"] == 2 and kp["no_route"] == 0 and kp["trips_unfinished"] == 0
    veh = tw.traffic.veh
    # free-flow time is exact: lengths / 10 m/s, each trip alone on its links
    np.testing.assert_allclose((veh.arrive - veh.depart)[[0, 3, 4]], [120.0, 90.0, 50.0], atol=1e-9)
    assert np.isnan(veh.arrive[[1, 2]]).all()
    assert tw.traffic.no_path_pairs() == [((12, 11), 1), ((13, 10), 1)]
    from twin.results import build_dataset

    ds = build_dataset(tw)
    assert ds.attrs["kpi_trips_no_route"] == 2 and ds.attrs["trips_no_route_pairs"] == "12 -> 11: 1; 13 -> 10: 1"


def test_motorway_with_on_ramp_runs(tmp_path):
    # A -> B -> C motorway, R -> B on-ramp; nothing leads back
    nodes = {
        1: {"x": 24.90, "y": 60.20},
        2: {"x": 24.92, "y": 60.20},
        3: {"x": 24.94, "y": 60.20},
        4: {"x": 24.91, "y": 60.195},
    }
    edges = [
        (1, 2, {"highway": "motorway", "lanes": 2, "oneway": True}),
        (2, 3, {"highway": "motorway", "lanes": 2, "oneway": True}),
        (4, 2, {"highway": "motorway_link", "oneway": True}),
    ]
    _write_nx_graphml(tmp_path / "motorway.graphml", nodes, edges)
    trips = [(1, 3, 0.0), (4, 3, 0.0), (1, 3, 10.0), (4, 3, 12.0), (3, 1, 0.0)]
    tw, kp = _run(tmp_path, {"graphml": "motorway.graphml"}, trips)
    net = tw.city.network
    assert net.n_links == 3 and net.priority[2] < net.priority[0]  # the ramp yields
    assert kp["trips_completed"] == 4 and kp["trips_no_route"] == 1
    # lengths were measured from the coordinates, speeds filled from the road types
    assert np.all(net.length_m > 500) and net.free_speed_mps[0] == pytest.approx(100 / 3.6)
    veh = tw.traffic.veh
    ff = net.length_m[0] / net.free_speed_mps[0] + net.length_m[1] / net.free_speed_mps[1]
    assert veh.arrive[0] - veh.depart[0] == pytest.approx(ff, abs=1.0)  # within the 1 s step


def test_unreachable_node_counts_trips_others_complete(tmp_path):
    # a two-way square 0..3, plus node 4 that only leaves (4 -> 0) and node 5 that is only entered (2 -> 5)
    nodes = {i: {"x": 24.90 + 0.002 * (i in (1, 2)), "y": 60.17 + 0.001 * (i in (2, 3))} for i in range(4)}
    nodes[4] = {"x": 24.897, "y": 60.169}
    nodes[5] = {"x": 24.905, "y": 60.172}
    ring = [(0, 1), (1, 2), (2, 3), (3, 0)]
    edges = [(a, b, {"highway": "residential"}) for a, b in ring] + [
        (b, a, {"highway": "residential"}) for a, b in ring
    ]
    edges += [(4, 0, {"highway": "residential", "oneway": True}), (2, 5, {"highway": "residential", "oneway": True})]
    _write_nx_graphml(tmp_path / "spur.graphml", nodes, edges)
    trips = [(4, 2, 0.0), (0, 5, 0.0), (4, 5, 5.0), (5, 0, 0.0), (2, 4, 0.0), (1, 3, 20.0)]
    tw, kp = _run(tmp_path, {"graphml": "spur.graphml", "repair": {"min_link_m": 0}}, trips)
    assert tw.city.network.n_nodes == 6
    assert kp["trips_completed"] == 4 and kp["trips_no_route"] == 2 and kp["trips_unfinished"] == 0
    assert np.isfinite(kp["vehicle_hours"]) and kp["completion_rate"] == pytest.approx(100 * 4 / 6)
    # with only the strongly connected part kept, the spur nodes map onto their nearest kept node
    tw2, kp2 = _run(
        tmp_path,
        {"graphml": "spur.graphml", "repair": {"keep": "largest_strong", "min_link_m": 0}},
        trips[:2] + trips[5:],
    )
    assert tw2.city.network.n_nodes == 4 and kp2["trips_no_route"] == 0 and kp2["trips_completed"] == 3
    assert sorted(tw2.city.network.alias_osmid.tolist()) == [4, 5]


# --------------------------------------------------------------------------- remapped node ids
def test_merged_short_links_keep_their_source_ids(tmp_path):
    # 0 -- 1 - 2 -- 3 with a 4 m link 1-2 (contracted) and pass-through node 5 on a 3 m stub 3-5-6
    x = [0.0, 200.0, 204.0, 400.0, 403.0, 600.0]
    ids = [100, 101, 102, 103, 105, 106]
    pairs = [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)]
    src = [a for a, b in pairs] + [b for a, b in pairs]
    dst = [b for a, b in pairs] + [a for a, b in pairs]
    net = make_network(
        x=x,
        y=[0.0] * 6,
        src=src,
        dst=dst,
        length_m=np.abs(np.diff(x))[[p[0] for p in pairs] * 2],
        lanes=1,
        free_speed_mps=10.0,
        node_osmid=ids,
        link_kind=["residential"] * 10,
    )
    out, notes = validate_network(net, min_link_m=10.0, keep="all")
    assert out.n_nodes < 6
    assert set(out.alias_osmid.tolist()) == set(ids) - set(out.node_osmid.tolist())
    found = lookup_nodes(out, ids)
    assert np.all(found >= 0)
    # each id lands within 10 m of where it was
    np.testing.assert_allclose(out.x[found], x, atol=10.0)
    assert any("Remapped" in n and "source node id" in n for n in notes)
    # a trips table on the source ids reads (one row per original node pair)
    from city_models.demand import read_trips_csv

    rows = [(ids[0], i, 0.0) for i in ids[1:]]
    trips = read_trips_csv(_trips_csv(tmp_path / "t.csv", rows), out)
    np.testing.assert_array_equal(trips.destination, found[1:])


def test_helsinki_trips_on_raw_osm_ids_run_with_remapping_reported(tmp_path):
    from city_models.osm import builtin_city

    raw = builtin_city("helsinki").network
    city = load_city({"osm": "helsinki", "repair": {"keep": "largest_weak"}})
    net = city.network
    gone = np.setdiff1d(raw.node_osmid, net.node_osmid)
    assert gone.size > 500 and net.alias_osmid.size == gone.size
    assert any("Remapped" in n for n in city.notes)
    rng = np.random.default_rng(0)
    o = rng.choice(gone, 300)
    d = rng.choice(raw.node_osmid, 300)
    keep = lookup_nodes(net, o) != lookup_nodes(net, d)
    trips = [
        (int(a), int(b), float(t)) for a, b, t in zip(o[keep], d[keep], rng.uniform(0, 300, keep.sum()), strict=False)
    ]
    tw, kp = _run(tmp_path, {"osm": "helsinki"}, trips, duration="30min")
    assert kp["trips_total"] == len(trips)
    assert kp["trips_completed"] > 0.8 * len(trips)
    assert kp["trips_completed"] + kp["trips_no_route"] + kp["trips_unfinished"] == len(trips)


def test_city_info_reports_remapped_ids(tmp_path, capsys):
    from twin.cli import main

    nodes = _corridor_nodes(4, 0.00003)  # ~1.7 m apart: every link is merged away but one
    nodes[20] = {"x": 24.91, "y": 60.17}
    edges = [(10, 11, {}), (11, 12, {}), (12, 13, {}), (13, 20, {})]
    edges = [(u, v, {"highway": "residential"}) for u, v, _ in edges] + [
        (v, u, {"highway": "residential"}) for u, v, _ in edges
    ]
    _write_nx_graphml(tmp_path / "short.graphml", nodes, edges)
    assert main(["city", "info", str(tmp_path / "short.graphml")]) == 0
    out = capsys.readouterr().out
    assert "source node ids remapped" in out and "Remapped 3 source node ids" in out.replace("\n", " ")


# --------------------------------------------------------------------------- GraphML flavours
def _osmnx_and_networkx_files(tmp_path):
    import networkx as nx
    import osmnx as ox

    pts = {1: (24.900, 60.170), 2: (24.903, 60.170), 3: (24.903, 60.172), 4: (24.900, 60.172)}
    roads = [
        (1, 2, "primary", "2", "50", 11),
        (2, 3, "residential", None, None, 12),
        (3, 4, "secondary", "3", "40", 13),
        (4, 1, "residential", "1", "30", 14),
    ]
    G = nx.MultiDiGraph(crs="EPSG:4326")
    for nd, (lon, lat) in pts.items():
        G.add_node(nd, x=lon, y=lat, street_count=2)
    H = nx.MultiDiGraph(crs="EPSG:4326", speed_unit="m/s")
    for nd, (lon, lat) in pts.items():
        H.add_node(nd, x=lon, y=lat)
    for u, v, hw, lanes, maxspeed, way in roads:
        for a, b in ((u, v), (v, u)):
            length = float(ox.distance.great_circle(pts[a][1], pts[a][0], pts[b][1], pts[b][0]))
            attrs = {"osmid": way, "highway": hw, "length": length, "oneway": False, "reversed": a != u}
            if lanes:
                attrs["lanes"] = lanes
            if maxspeed:
                attrs["maxspeed"] = maxspeed
            G.add_edge(a, b, **attrs)
            plain = {"highway": hw, "length": length}
            if lanes:
                plain["lanes"] = int(lanes)
            if maxspeed:
                plain["speed"] = float(maxspeed) / 3.6
            H.add_edge(a, b, **plain)
    ox.save_graphml(G, tmp_path / "osmnx.graphml")
    nx.write_graphml(H, tmp_path / "plain.graphml")
    return tmp_path / "osmnx.graphml", tmp_path / "plain.graphml"


def test_graphml_from_networkx_and_osmnx_give_the_same_network(tmp_path):
    a_path, b_path = _osmnx_and_networkx_files(tmp_path)
    a = load_city({"graphml": str(a_path)}).network
    b = load_city({"graphml": str(b_path)}).network
    assert a.n_links == b.n_links == 8
    for f in ("src", "dst", "node_osmid", "lanes", "priority", "link_kind", "green_start_s", "signal_cycle_s"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f)
    for f in ("length_m", "free_speed_mps", "capacity_vph", "jam_density_vpm", "x", "y", "lon", "lat"):
        np.testing.assert_allclose(getattr(a, f), getattr(b, f), rtol=1e-9, err_msg=f)
    assert a.link_osmid.tolist() == [11, 11, 12, 12, 13, 13, 14, 14] or set(a.link_osmid.tolist()) == {11, 12, 13, 14}
    assert np.all(b.link_osmid == -1)  # plain networkx files carry no osmid


def test_undirected_networkx_graph_is_two_way(tmp_path):
    nodes = _corridor_nodes(3)
    edges = [(10, 11, {"highway": "residential"}), (11, 12, {"highway": "residential"})]
    _write_nx_graphml(tmp_path / "und.graphml", nodes, edges, directed=False)
    net = load_city({"graphml": str(tmp_path / "und.graphml")}).network
    assert net.n_links == 4 and n_strong(net) == 1


# --------------------------------------------------------------------------- bad attributes
def _one_edge(tmp_path, edge=None, node=None, graph=None, name="bad.graphml", node_id=2):
    nodes = {1: {"x": 24.90, "y": 60.17}, node_id: {"x": 24.91, "y": 60.17, **(node or {})}}
    e = {"highway": "primary", **(edge or {})}
    edges = [(1, node_id, e), (node_id, 1, e)]
    return _write_nx_graphml(tmp_path / name, nodes, edges, graph=graph)


@pytest.mark.parametrize(
    "edge, graph, match",
    [
        ({"maxspeed": "1e9"}, None, r"attribute 'maxspeed' is '1e9'.*above 200 km/h"),
        ({"maxspeed": 1e9}, None, r"attribute 'maxspeed' is 1000000000.0.*above 200 km/h"),
        ({"speed_kph": "250"}, None, r"attribute 'speed_kph' is '250'.*above 200 km/h"),
        ({"length": 1e12}, None, r"attribute 'length' is 1e\+12 m, above"),
        ({"lanes": 1e9}, None, r"attribute 'lanes'.*more than 20 lanes"),
        ({"speed": 13.9}, None, r"attribute 'speed' is 13.9 with no unit"),
        ({"speed": 100.0}, {"speed_unit": "m/s"}, r"above 200 km/h"),
    ],
)
def test_implausible_edge_attributes_refused_naming_file_and_edge(tmp_path, edge, graph, match):
    path = _one_edge(tmp_path, edge, graph=graph)
    with pytest.raises(CityError, match=match) as err:
        load_city({"graphml": str(path)})
    assert "bad.graphml" in str(err.value) and "edge 1 -> 2" in str(err.value)


def test_huge_node_id_and_crs_mismatch_refused(tmp_path):
    with pytest.raises(CityError, match=r"bad.graphml.*speed_unit' is 'furlongs'"):
        load_city({"graphml": str(_one_edge(tmp_path, {"speed": 13.9}, graph={"speed_unit": "furlongs"}))})
    path = _one_edge(tmp_path, node_id=2**70)
    with pytest.raises(CityError, match=r"bad.graphml.*outside the 64-bit"):
        load_city({"graphml": str(path)})
    osm = tmp_path / "big.osm"
    osm.write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n<osm version="0.6">\n'
        f' <node id="{2**70}" lat="60.17" lon="24.90"/>\n <node id="2" lat="60.17" lon="24.91"/>\n'
        f' <way id="7"><nd ref="{2**70}"/><nd ref="2"/><tag k="highway" v="primary"/></way>\n</osm>\n'
    )
    with pytest.raises(CityError, match=r"big.osm.*outside the 64-bit"):
        load_city({"osm": str(osm)})
    nodes = {1: {"x": 385000.0, "y": 6672000.0}, 2: {"x": 385500.0, "y": 6672000.0}}
    edges = [(1, 2, {"highway": "primary"}), (2, 1, {"highway": "primary"})]
    path = _write_nx_graphml(tmp_path / "utm.graphml", nodes, edges)  # UTM metres, no crs stated
    with pytest.raises(CityError, match=r"utm.graphml.*do not fit no graph attribute 'crs'.*node '1'"):
        load_city({"graphml": str(path)})
    path = _write_nx_graphml(tmp_path / "wrong.graphml", nodes, edges, graph={"crs": "EPSG:3035"})  # not Europe LAEA
    with pytest.raises(CityError, match=r"wrong.graphml.*EPSG:3035"):
        load_city({"graphml": str(path)})
    path = _write_nx_graphml(tmp_path / "right.graphml", nodes, edges, graph={"crs": "EPSG:32635"})
    net = load_city({"graphml": str(path)}).network
    assert 60.1 < np.nanmean(net.lat) < 60.3 and net.n_links == 2


@pytest.mark.parametrize(
    "edge, phrase",
    [
        ({"maxspeed": "0"}, "Replaced the free speed"),
        ({"maxspeed": "-30"}, "Replaced the free speed"),
        ({"lanes": "0"}, "Replaced the lanes"),
        ({"lanes": "many"}, "Replaced the lanes"),
        ({"capacity": -5.0}, "Replaced the capacity"),
    ],
)
def test_replaced_attributes_get_a_note(tmp_path, edge, phrase):
    city = load_city({"graphml": str(_one_edge(tmp_path, edge))})
    assert any(phrase in n and "edge 1 -> 2" in n for n in city.notes), city.notes
    net = city.network
    assert np.all(net.free_speed_mps == pytest.approx(60 / 3.6)) or "speed" not in phrase


def test_validator_refuses_implausible_python_networks_before_allocating():
    base = dict(x=[0.0, 100.0], y=[0.0, 0.0], src=[0, 1], dst=[1, 0], length_m=100.0, lanes=1.0, free_speed_mps=10.0)
    for change, match in (
        ({"lanes": 1e9}, "more than 20 lanes"),
        ({"length_m": 1e12}, "a length above"),
        ({"free_speed_mps": 1e9}, "free speed above"),
        ({"jam_density_vpm": 1e6}, "jam density"),
    ):
        with pytest.raises(CityError, match=match):
            validate_network(make_network(**{**base, **change}))
    out, notes = validate_network(
        make_network(**{**base, "free_speed_mps": [0.0, -3.0], "link_kind": ["residential"] * 2})
    )
    assert np.all(out.free_speed_mps == pytest.approx(30 / 3.6))
    assert any("zero or negative free speed" in n for n in notes)


def test_scenario_repair_section_defaults_round_trip_and_errors(tmp_path):
    from scenarios import ScenarioError, dump_resolved, load_scenario

    s = load_scenario({"city": {"osm": "helsinki"}})
    assert s.city.repair.keep == "largest_weak" and s.city.merge_below_m == 10.0
    s = load_scenario({"city": {"osm": "helsinki", "repair": {"keep": "all", "min_link_m": 5}}})
    again = load_scenario(dump_resolved(s, tmp_path / "resolved.yaml"))
    assert again.city.repair.keep == "all" and again.city.merge_below_m == 5.0 == again.city.min_link_m
    with pytest.raises(ScenarioError, match=r"city\.repair\.keep"):
        load_scenario({"city": {"osm": "helsinki", "repair": {"keep": "most"}}})
    with pytest.raises(ScenarioError, match="given twice"):
        load_scenario({"city": {"osm": "helsinki", "min_link_m": 3, "repair": {"min_link_m": 5}}})
    assert load_scenario("helsinki").city.repair.keep == "largest_strong"
