"""Webster signal plans, source plans, and the priority / jam density / wave speed
link attributes of the GraphML and OSM XML builders."""

from __future__ import annotations

import networkx as nx
import numpy as np
import osmnx as ox
import pytest

from city_models import CityError, make_network
from city_models.osm import city_from_graphml, city_from_osm_xml, retime_signals, webster_cycle, webster_signal_plans
from city_models.synthetic import synthetic_city
from city_models.validate import validate_network
from twin.traffic import TrafficModel

LAT0, LON0 = 60.17, 24.94
D = 0.001


def _cross(edge_extra=None):
    """A signalised cross: W-C-E primary (1800 veh/h a direction), N-C-S residential (1200)."""
    G = nx.MultiDiGraph(crs="epsg:4326")
    G.add_node(0, x=LON0, y=LAT0, street_count=4, highway="traffic_signals")
    for nd, (dx, dy) in {1: (-2, 0), 2: (2, 0), 3: (0, 1), 4: (0, -1)}.items():
        G.add_node(nd, x=LON0 + dx * D, y=LAT0 + dy * D, street_count=1)
    for nd, kind, cap in (
        (1, "primary", 1800.0),
        (2, "primary", 1800.0),
        (3, "residential", 1200.0),
        (4, "residential", 1200.0),
    ):
        for u, v in ((nd, 0), (0, nd)):
            G.add_edge(u, v, osmid=100 + nd, highway=kind, oneway=False, capacity=cap, length=111.0, lanes="2")
            G.edges[u, v, 0].update((edge_extra or {}).get((u, v), {}))
    return G


def _load(G, tmp_path, name="x.graphml"):
    ox.save_graphml(G, tmp_path / name)
    return city_from_graphml(tmp_path / name).network


def _into(net, node):
    return net.in_links[net.in_indptr[node] : net.in_indptr[node + 1]]


# ------------------------------------------------------------------- Webster


def test_webster_cycle_formula_and_bounds():
    c, g = webster_cycle([0.45, 0.30])
    L = 6.0  # two 3 s all-red intergreens
    assert c == pytest.approx((1.5 * L + 5.0) / (1.0 - 0.75))  # 56 s
    assert g == pytest.approx([(c - L) * 0.45 / 0.75, (c - L) * 0.30 / 0.75])
    assert webster_cycle([0.1, 0.1])[0] == 40.0  # short cycles kept at 40 s
    assert webster_cycle([0.6, 0.4])[0] == 120.0  # Y >= 0.95: the longest cycle
    c, g = webster_cycle([0.5, 0.0])  # a phase with no approaches gets no green
    assert g[1] == 0.0 and g[0] == pytest.approx(c - L)
    c, g = webster_cycle([0.8, 0.001])  # a near-empty phase still gets its minimum green
    assert g[1] == 5.0 and c - L == pytest.approx(g.sum())
    with pytest.raises(ValueError, match="flow ratios"):
        webster_cycle([-0.1, 0.2])


def test_webster_plan_on_a_constructed_intersection(tmp_path):
    net = _load(_cross(), tmp_path)
    c0 = net.node_index(0)
    cyc = net.signal_cycle_s[c0]
    # no flows known: design flow 0.4 of capacity on every approach -> y = 0.4 per phase
    assert cyc == pytest.approx((1.5 * 6 + 5) / (1 - 0.8))  # 70 s
    inn = _into(net, c0)
    kinds = {str(net.link_kind[a]) for a in inn if net.green_start_s[a] == 0.0}
    assert len(kinds) == 1  # one road per phase
    g = net.green_end_s[inn] - net.green_start_s[inn]
    assert g == pytest.approx(np.full(4, (70.0 - 6.0) / 2))
    assert sorted(set(np.round(net.green_start_s[inn], 9))) == [0.0, 35.0]  # 32 s green + 3 s all-red
    # the day's flows: phase ratios 0.45 (E-W: 810 / 1800) and 0.3 (N-S: 360 / 1200)
    flow = np.where(net.link_kind == "primary", 810.0, 360.0)
    flow[net.link_kind == "primary"] = [810.0, 500.0, 810.0, 700.0][: int((net.link_kind == "primary").sum())]
    re = retime_signals(net, design_flow_vph=flow)
    c = (1.5 * 6 + 5) / (1 - 0.75)
    assert re.signal_cycle_s[c0] == pytest.approx(c)
    major = inn[net.link_kind[inn] == "primary"]
    minor = inn[net.link_kind[inn] == "residential"]
    assert re.green_end_s[major] - re.green_start_s[major] == pytest.approx(np.full(2, (c - 6) * 0.6))
    assert re.green_end_s[minor] - re.green_start_s[minor] == pytest.approx(np.full(2, (c - 6) * 0.4))
    assert re.signal_cycle_s[net.node_index(1)] == 0.0  # unsignalised nodes untouched
    # the function itself, without the builder
    cyc2, _, gs, ge = webster_signal_plans(
        net.x, net.y, net.src, net.dst, net.signal_cycle_s > 0, net.capacity_vph, design_flow_vph=flow
    )
    np.testing.assert_allclose(gs, re.green_start_s)
    np.testing.assert_allclose(cyc2, re.signal_cycle_s)


def test_plans_from_the_source_are_kept(tmp_path):
    G = _cross(
        {
            (1, 0): {"green_start_s": "0", "green_end_s": "40"},
            (2, 0): {"green_start_s": 0, "green_end_s": 40},
            (3, 0): {"green_start_s": "44", "green_end_s": "72"},
            (4, 0): {"green_start_s": 44, "green_end_s": 72},
        }
    )
    G.nodes[0]["signal_cycle_s"] = 75
    G.nodes[0]["signal_offset_s"] = "10"
    net = _load(G, tmp_path)
    c0 = net.node_index(0)
    assert net.signal_cycle_s[c0] == 75 and net.signal_offset_s[c0] == 10
    inn = _into(net, c0)
    assert sorted(net.green_end_s[inn]) == [40, 40, 72, 72]
    # only a cycle given: Webster's splits of that cycle
    G2 = _cross()
    G2.nodes[0]["signal_cycle_s"] = 100.0
    net2 = _load(G2, tmp_path, "y.graphml")
    inn2 = _into(net2, net2.node_index(0))
    assert net2.signal_cycle_s[net2.node_index(0)] == 100
    assert net2.green_end_s[inn2] - net2.green_start_s[inn2] == pytest.approx(np.full(4, 47.0))
    G3 = _cross({(1, 0): {"green_start_s": "0", "green_end_s": "140"}})
    G3.nodes[0]["signal_cycle_s"] = 75
    with pytest.raises(CityError, match="'green_end_s' is 140"):
        _load(G3, tmp_path, "z.graphml")


# ---------------------------------------------------------------- attributes


def test_graphml_link_attributes_read_and_defaulted(tmp_path):
    G = _cross({(1, 0): {"jam_density": "150", "wave_speed": "20", "priority": "5"}})
    net = _load(G, tmp_path)
    a = int(np.flatnonzero((net.src == net.node_index(1)) & (net.dst == net.node_index(0)))[0])
    assert net.lanes[a] == 1 and net.jam_density_vpm[a] == pytest.approx(0.150)  # veh/km per lane -> veh/m
    assert net.wave_speed_mps[a] == pytest.approx(20 / 3.6)
    assert net.priority[a] == 5
    others = np.arange(net.n_links) != a
    assert np.allclose(net.jam_density_vpm[others], 0.2 * net.lanes[others])
    assert np.all(net.wave_speed_mps[others] == 0)  # not given: the triangular diagram's
    assert set(net.priority[others & (net.link_kind == "primary")]) == {7}
    assert set(net.priority[net.link_kind == "residential"]) == {3}
    # the traffic model uses the given wave speed and jam density
    m = TrafficModel(validate_network(net, min_link_m=0)[0])
    vnet = m.network
    a2 = int(np.flatnonzero(vnet.priority == 5)[0])
    assert m.links.lag[a2] == pytest.approx(vnet.length_m[a2] / (20 / 3.6))
    assert m.links.storage[a2] == pytest.approx(0.15 * vnet.length_m[a2])
    assert vnet.backward_wave_speed_mps[a2] == pytest.approx(20 / 3.6)


@pytest.mark.parametrize(
    ("attr", "value", "match"),
    [
        ("jam_density", "lots", "'jam_density' must be a number"),
        ("jam_density", "-5", "'jam_density' is -5 veh/km per lane, outside"),
        ("jam_density", "0", "'jam_density' is 0 veh/km per lane, outside"),
        ("jam_density", "5000", "'jam_density' is 5000 veh/km per lane, outside"),
        ("wave_speed", "0", "'wave_speed' is 0 km/h, outside"),
        ("wave_speed", "fast", "'wave_speed' must be a number"),
        ("priority", "high", "'priority' must be a number"),
        ("priority", "-1", "'priority' must be an integer 0 .. 127"),
        ("priority", "2.5", "'priority' must be an integer 0 .. 127"),
        ("priority", "300", "'priority' must be an integer 0 .. 127"),
    ],
)
def test_bad_link_attribute_is_a_clear_error(tmp_path, attr, value, match):
    G = _cross({(3, 0): {attr: value}})
    with pytest.raises(CityError, match=match) as err:
        _load(G, tmp_path)
    assert "edge 3 -> 0 (way 103)" in str(err.value)


def test_make_network_rejects_bad_priority():
    kw = dict(x=[0, 1], y=[0, 0], src=[0, 1], dst=[1, 0], length_m=100.0, lanes=1, free_speed_mps=10.0)
    assert make_network(**kw).priority.dtype == np.int8
    for bad in ([1, -1], [1, 200], [1.5, 1], ["a", 1]):
        with pytest.raises(ValueError, match="network field 'priority'"):
            make_network(**kw, priority=bad)
    with pytest.raises(ValueError, match="'priority' has 3 entries"):
        make_network(**kw, priority=[1, 2, 3])


def test_validation_notes_bad_wave_speed_and_infeasible_capacity():
    kw = dict(
        x=[0, 100, 200],
        y=[0, 0, 0],
        src=[0, 1, 1, 2],
        dst=[1, 0, 2, 1],
        length_m=100.0,
        lanes=1,
        free_speed_mps=10.0,
        capacity_vph=1800.0,
    )
    net, notes = validate_network(make_network(**kw, wave_speed_mps=[-3.0, 0.0, 1.0, 0.0]), min_link_m=0)
    assert any("wave speed (wave_speed) of 1 link" in n for n in notes)
    assert net.wave_speed_mps[0] == 0.0
    # w = 1 m/s: the triangle peaks at 10 * 1 * 0.2 / 11 veh/s = 655 veh/h < 1800: recomputed
    assert net.capacity_vph[2] == pytest.approx(10 * 1 * 0.2 / 11 * 3600)
    assert any("Recomputed the capacity of 1 link" in n for n in notes)


def test_osm_xml_tags_read(tmp_path):
    xml = """<?xml version="1.0" encoding="UTF-8"?>
<osm version="0.6">
  <node id="1" lat="60.1700" lon="24.9400"/>
  <node id="2" lat="60.1710" lon="24.9400"/>
  <node id="3" lat="60.1720" lon="24.9400"/>
  <way id="100"><nd ref="1"/><nd ref="2"/><nd ref="3"/><tag k="highway" v="secondary"/>
    <tag k="jam_density" v="120"/><tag k="wave_speed" v="15"/><tag k="priority" v="9"/></way>
</osm>
"""
    (tmp_path / "t.osm").write_text(xml)
    net = city_from_osm_xml(tmp_path / "t.osm").network
    assert np.all(net.priority == 9)
    assert np.allclose(net.jam_density_vpm / net.lanes, 0.12)
    assert np.allclose(net.wave_speed_mps, 15 / 3.6)
    import osmnx

    assert "jam_density" not in osmnx.settings.useful_tags_way  # osmnx's settings put back


def test_synthetic_city_ranks_roads():
    assert np.all(synthetic_city(blocks_x=4, blocks_y=4, seed=1).network.priority == 0)  # off by default
    net = synthetic_city(blocks_x=4, blocks_y=4, seed=1, priorities=True).network
    for kind, rank in (("local", 3), ("arterial", 7), ("ring", 8), ("connector", 7)):
        assert set(net.priority[net.link_kind == kind]) == {rank}
    assert set(net.priority[net.link_kind == "bridge"]) <= {3, 7, 8}
