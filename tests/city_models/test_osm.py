"""Builders from OSM data: GraphML, OSM XML, PBF and the built-in Helsinki extract."""

from __future__ import annotations

import time

import networkx as nx
import numpy as np
import osmnx as ox
import pytest

from city_models import CityError, load_city
from city_models.osm import builtin_city, city_from_graphml, city_from_osm_xml, city_from_pbf

from .helpers import n_strong

LAT0, LON0 = 60.17, 24.94
DLAT = 0.001  # ~111 m


def _graph():
    G = nx.MultiDiGraph(crs="epsg:4326")
    G.add_node(1, x=LON0, y=LAT0, street_count=3)
    G.add_node(2, x=LON0, y=LAT0 + DLAT, street_count=2, highway="traffic_signals")
    G.add_node(3, x=LON0 + 2 * DLAT, y=LAT0 + DLAT, street_count=2)
    # one-way primary, speed in mph, lanes as a list, osmid as a list
    G.add_edge(
        1,
        2,
        osmid=[10, 11],
        highway="primary",
        name="Main Street",
        oneway=True,
        lanes=["2", "3"],
        maxspeed="50 mph",
        length=111.3,
        reversed=False,
    )
    # one-way residential without any speed or lanes: the kind's defaults
    G.add_edge(2, 3, osmid=12, highway="residential", oneway=True, length=111.7, reversed=False)
    # a two-way secondary road: 4 lanes in OSM = 2 per direction; given capacity
    for u, v, rev in ((3, 1, False), (1, 3, True)):
        G.add_edge(
            u,
            v,
            osmid=13,
            highway="secondary",
            oneway=False,
            lanes="4",
            maxspeed="40",
            capacity=1234.0,
            length=157.0,
            reversed=rev,
        )
    return G


def _link(net, a, b):
    i, j = net.node_index(a), net.node_index(b)
    hits = np.flatnonzero((net.src == i) & (net.dst == j))
    assert hits.size == 1
    return int(hits[0])


def test_graphml_round_trip_converts_attributes(tmp_path):
    path = tmp_path / "town.graphml"
    ox.save_graphml(_graph(), path)
    city = city_from_graphml(path)
    net = city.network
    assert city.name == "town" and net.n_nodes == 3 and net.n_links == 4
    main = _link(net, 1, 2)
    assert net.free_speed_mps[main] * 3.6 == pytest.approx(50 * 1.609344)
    assert net.lanes[main] == 3  # max of the list, one-way: all lanes this direction
    assert net.link_osmid[main] == 10 and net.link_name[main] == "Main Street" and net.link_kind[main] == "primary"
    assert net.length_m[main] == pytest.approx(111.3)
    res = _link(net, 2, 3)
    assert net.free_speed_mps[res] * 3.6 == pytest.approx(30.0)  # residential default
    assert net.lanes[res] == 1
    sec = [_link(net, 3, 1), _link(net, 1, 3)]
    assert np.all(net.lanes[sec] == 2)  # 4 lanes on a two-way road
    assert np.allclose(net.free_speed_mps[sec] * 3.6, 40.0)
    assert np.allclose(net.capacity_vph[sec], 1234.0)
    # capacities without a given value come from the triangular diagram and are feasible
    q = net.capacity_vph / 3600.0
    assert np.all(q / net.free_speed_mps < net.jam_density_vpm)
    assert net.capacity_vph[main] > net.capacity_vph[res]  # 3 fast lanes beat 1 slow lane
    # projected to metres, lon/lat kept
    assert np.hypot(
        *(
            np.array(
                [
                    net.x[net.node_index(2)] - net.x[net.node_index(1)],
                    net.y[net.node_index(2)] - net.y[net.node_index(1)],
                ]
            )
        )
    ) == pytest.approx(111.3, rel=0.01)
    assert net.lat[net.node_index(2)] == pytest.approx(LAT0 + DLAT)
    # the signal: a cycle at node 2, its in-link green within the cycle
    n2 = net.node_index(2)
    c2 = net.signal_cycle_s[n2]
    assert 40 <= c2 <= 120 and net.signal_cycle_s[net.node_index(1)] == 0  # a Webster cycle
    assert 0 <= net.green_start_s[main] < net.green_end_s[main] <= c2


def test_graphml_through_load_city_resolves_relative_path(tmp_path):
    (tmp_path / "maps").mkdir()
    ox.save_graphml(_graph(), tmp_path / "maps" / "town.graphml")
    city = load_city({"graphml": "maps/town.graphml"}, base_dir=tmp_path)
    assert city.network.n_links == 4 and n_strong(city.network) == 1
    assert int(city.zones.residents.sum()) == 50 * 3


OSM_XML = """<?xml version="1.0" encoding="UTF-8"?>
<osm version="0.6" generator="test">
  <node id="1" lat="60.1700" lon="24.9400"/>
  <node id="2" lat="60.1710" lon="24.9400"><tag k="highway" v="traffic_signals"/></node>
  <node id="3" lat="60.1720" lon="24.9400"/>
  <node id="4" lat="60.1710" lon="24.9420"/>
  <node id="5" lat="60.1710" lon="24.9380"/>
  <node id="6" lat="60.1730" lon="24.9450"/>
  <way id="100"><nd ref="1"/><nd ref="2"/><nd ref="3"/>
    <tag k="highway" v="secondary"/><tag k="name" v="Long Street"/><tag k="maxspeed" v="40"/></way>
  <way id="101"><nd ref="5"/><nd ref="2"/><nd ref="4"/>
    <tag k="highway" v="residential"/><tag k="name" v="Cross Street"/></way>
  <way id="102"><nd ref="3"/><nd ref="6"/><tag k="highway" v="footway"/></way>
</osm>
"""


def test_osm_xml_builds_drivable_network_with_signal(tmp_path):
    path = tmp_path / "mini.osm"
    path.write_text(OSM_XML)
    city = city_from_osm_xml(path)
    net = city.network
    assert 6 not in set(net.node_osmid.tolist())  # only on the footway
    assert set(net.link_kind.tolist()) == {"secondary", "residential"}
    assert net.n_links == 8  # 4 two-way segments around the signal
    sig = net.node_index(2)
    assert 40 <= net.signal_cycle_s[sig] <= 120  # a Webster cycle
    inn = net.in_links[net.in_indptr[sig] : net.in_indptr[sig + 1]]
    phase = {str(net.link_kind[k]): net.green_start_s[k] for k in inn}
    assert phase["secondary"] != phase["residential"]  # crossing roads get different phases
    kph = dict(zip(net.link_kind.tolist(), (net.free_speed_mps * 3.6).tolist(), strict=False))
    assert kph["secondary"] == pytest.approx(40) and kph["residential"] == pytest.approx(30)
    validated = load_city({"osm": "mini.osm"}, base_dir=tmp_path)
    assert validated.network.n_links == 8 and n_strong(validated.network) == 1


def test_corrupt_osm_xml_raises_city_error_naming_file(tmp_path):
    path = tmp_path / "broken.osm"
    path.write_text('<?xml version="1.0"?>\n<osm version="0.6">\n<node id="1" lat="60.1" lon="24.9"\n<way id="5">\n')
    with pytest.raises(CityError, match=r"could not parse OSM XML file '.*broken\.osm'.*line 4"):
        city_from_osm_xml(path)
    with pytest.raises(CityError, match="broken.osm"):
        load_city({"osm": str(path)})


def test_osm_xml_without_roads_raises(tmp_path):
    path = tmp_path / "empty.osm"
    path.write_text('<?xml version="1.0"?><osm version="0.6"><node id="1" lat="60.1" lon="24.9"/></osm>')
    with pytest.raises(CityError, match="empty.osm"):
        city_from_osm_xml(path)


@pytest.mark.parametrize(
    "spec",
    [{"osm": "nowhere.osm"}, {"osm": "nowhere.osm.pbf"}, {"graphml": "nowhere.graphml"}],
)
def test_missing_file_raises_city_error_naming_file(tmp_path, spec):
    with pytest.raises(CityError, match=r"nowhere\.(osm|osm\.pbf|graphml)' does not exist"):
        load_city(spec, base_dir=tmp_path)


def test_corrupt_pbf_and_graphml_raise_city_error(tmp_path):
    bad = tmp_path / "bad.osm.pbf"
    bad.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(CityError, match="bad.osm.pbf"):
        city_from_pbf(bad)
    g = tmp_path / "bad.graphml"
    g.write_text("<graphml><graph>")
    with pytest.raises(CityError, match="could not read GraphML file '.*bad.graphml'"):
        city_from_graphml(g)


def test_helsinki_builtin_offline_and_strongly_connected():
    t0 = time.perf_counter()
    raw = builtin_city("helsinki")
    assert raw.network.n_links > 2000  # segment-level, both directions of two-way ways
    assert (raw.network.signal_cycle_s > 0).sum() > 50
    city = load_city({"osm": "helsinki"})
    elapsed = time.perf_counter() - t0
    net = city.network
    assert net.n_links > 900 and net.n_nodes > 500
    assert n_strong(net) == 1  # every node reaches every other
    assert net.length_m.min() >= 10.0
    assert np.all(np.isfinite(net.free_speed_mps)) and np.all(net.free_speed_mps > 0)
    assert np.nanmin(net.lat) > 60.1 and np.nanmax(net.lat) < 60.2
    assert any("strongly connected" in n for n in city.notes)
    assert any("shorter than 10 m" in n for n in city.notes)
    assert city.zones.node_zone.shape == (net.n_nodes,) and np.all(city.zones.node_zone >= 0)
    assert elapsed < 20.0
