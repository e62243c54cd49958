"""Network validation and repair, and the city spec loader."""

from __future__ import annotations

import numpy as np
import pytest

from city_models import City, CityError, Facility, Zones, load_city, make_network, synthetic_city, validate_network
from city_models.validate import validate_city

from .helpers import n_strong, tiny_network

# a 100 m square 0-1-2-3 with a pass-through node 4 just 4 m from corner 1 on side 0-1
SQUARE = [(0, 0), (100, 0), (100, 100), (0, 100), (96, 0)]
SQUARE_LINKS = [(0, 4), (4, 1), (1, 2), (2, 3), (3, 0)]


def test_clean_network_unchanged():
    net = tiny_network(SQUARE[:4], [(0, 1), (1, 2), (2, 3), (3, 0)])
    out, notes = validate_network(net)
    assert notes == []
    for f in net._fields:
        a, b = getattr(out, f), getattr(net, f)
        assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), f


def test_short_link_through_pass_through_node_is_merged():
    net = tiny_network(SQUARE, SQUARE_LINKS, node_osmid=[100, 101, 102, 103, 104])
    out, notes = validate_network(net)
    assert out.n_nodes == 4 and out.n_links == 8
    assert 104 not in out.node_osmid.tolist()
    assert out.length_m.min() >= 10.0
    # the merged link keeps the full length: 96 + 4 m
    i0, i1 = out.node_index(100), out.node_index(101)
    merged = np.flatnonzero((out.src == i0) & (out.dst == i1))
    assert merged.size == 1 and out.length_m[merged[0]] == pytest.approx(100.0)
    assert any("shorter than 10 m" in n and "pass-through" in n for n in notes)
    # nothing merged when disabled
    same, notes0 = validate_network(net, min_link_m=0)
    assert same.n_nodes == 5 and notes0 == []


def test_short_link_between_intersections_is_contracted():
    # two T-junctions 5 m apart (nodes 0 and 1), each with two long arms
    nodes = [(0, 0), (5, 0), (-100, 0), (0, 100), (105, 0), (5, -100)]
    links = [(0, 1), (0, 2), (0, 3), (1, 4), (1, 5), (2, 3), (4, 5)]
    net = tiny_network(nodes, links)
    out, notes = validate_network(net)
    assert out.n_nodes == 5 and out.n_links == 12  # the 5 m link pair is gone
    assert out.length_m.min() >= 10.0
    assert n_strong(out) == 1
    assert any("Contracted 2 links shorter than 10 m" in n for n in notes)
    # out/in CSR still consistent after renumbering
    for i in range(out.n_nodes):
        assert np.all(out.src[out.out_links[out.out_indptr[i] : out.out_indptr[i + 1]]] == i)
        assert np.all(out.dst[out.in_links[out.in_indptr[i] : out.in_indptr[i + 1]]] == i)


def test_disconnected_island_dropped_with_note():
    nodes = SQUARE[:4] + [(500, 500), (600, 500)]
    net = tiny_network(nodes, [(0, 1), (1, 2), (2, 3), (3, 0), (4, 5)], node_osmid=[10, 11, 12, 13, 14, 15])
    out, notes = validate_network(net)
    assert out.n_nodes == 4 and out.n_links == 8
    assert set(out.node_osmid.tolist()) == {10, 11, 12, 13}
    assert any("Dropped 2 nodes" in n and "strongly connected" in n for n in notes)
    kept, notes2 = validate_network(net, keep_largest_scc=False)
    assert kept.n_nodes == 6 and any("outside the largest" in n for n in notes2)


def test_one_way_dead_end_is_unreachable_and_dropped():
    net = tiny_network(SQUARE[:4], [(0, 1), (1, 2), (2, 3), (3, 0)])
    # add a one-way spur 0 -> 4: node 4 can be reached but cannot get back
    spur = make_network(
        x=np.r_[net.x, 50.0],
        y=np.r_[net.y, -80.0],
        src=np.r_[net.src, 0],
        dst=np.r_[net.dst, 4],
        length_m=np.r_[net.length_m, 94.3],
        lanes=1.0,
        free_speed_mps=10.0,
    )
    out, notes = validate_network(spur)
    assert out.n_nodes == 4 and out.n_links == 8 and n_strong(out) == 1


def test_nan_speed_filled_from_kind_and_other_attribute_repairs():
    net = tiny_network(SQUARE[:4], [(0, 1), (1, 2), (2, 3), (3, 0)])
    vf = net.free_speed_mps.copy()
    vf[0] = np.nan
    vf[1] = 0.0
    kinds = list(net.link_kind)
    kinds[1] = "mystery_road"
    lanes = net.lanes.copy()
    lanes[2] = 0.0
    length = net.length_m.copy()
    length[3] = np.nan
    cap = net.capacity_vph.copy()
    cap[4] = 1e6  # impossible: capacity / free speed above jam density
    src, dst = np.r_[net.src, 2], np.r_[net.dst, 2]  # plus a self loop
    bad = make_network(
        x=net.x,
        y=net.y,
        src=src,
        dst=dst,
        length_m=np.r_[length, 5.0],
        lanes=np.r_[lanes, 1.0],
        free_speed_mps=np.r_[vf, 10.0],
        capacity_vph=np.r_[cap, 1000.0],
        link_kind=kinds + ["residential"],
    )
    out, notes = validate_network(bad)
    text = " ".join(notes)
    assert out.n_links == 8
    assert out.free_speed_mps[0] == pytest.approx(30 / 3.6)  # residential default
    assert out.free_speed_mps[1] == pytest.approx(10.0)  # unknown kind: the network's median
    assert out.lanes[2] == 1.0
    assert out.length_m[3] == pytest.approx(
        np.hypot(bad.x[bad.dst[3]] - bad.x[bad.src[3]], bad.y[bad.dst[3]] - bad.y[bad.src[3]])
    )
    q = out.capacity_vph / 3600.0
    assert np.all(q / out.free_speed_mps < out.jam_density_vpm) and out.capacity_vph[4] < 1e5
    for phrase in (
        "Filled the missing free speed of 1 link from their road kind (residential)",
        "median speed",
        "Set lanes to 1",
        "straight-line distance",
        "Recomputed the capacity",
        "self-loop",
    ):
        assert phrase in text, phrase


def test_unrepairable_problems_all_listed():
    net = tiny_network(SQUARE[:4], [(0, 1), (1, 2), (2, 3), (3, 0)])
    x = net.x.copy()
    x[2] = np.nan
    length = net.length_m.copy()
    length[:] = np.nan
    bad = make_network(
        x=x,
        y=net.y,
        src=net.src,
        dst=net.dst,
        length_m=length,
        lanes=1.0,
        free_speed_mps=np.nan,
        link_kind=["hovercraft_lane"] * net.n_links,
    )
    with pytest.raises(CityError) as err:
        validate_network(bad)
    msg = str(err.value)
    assert "cannot be repaired" in msg
    assert "1 node have non-finite x/y" in msg or "non-finite x/y" in msg
    assert "no node coordinates to measure it from" in msg
    assert "no usable free speed" in msg and "hovercraft_lane" in msg
    empty = make_network(x=[0.0, 1.0], y=[0.0, 0.0], src=[], dst=[], length_m=[], lanes=[], free_speed_mps=[])
    with pytest.raises(CityError, match="no links"):
        validate_network(empty)


def test_validate_city_remaps_zones_facilities_and_places():
    nodes = SQUARE + [(500, 500), (600, 500)]
    links = SQUARE_LINKS + [(5, 6)]
    net = tiny_network(nodes, links)
    zones = Zones(
        name=("A", "B", "C"),
        residents=np.array([10, 20, 30]),
        jobs=np.array([1, 2, 3]),
        x=np.zeros(3),
        y=np.zeros(3),
        node_zone=np.array([0, 0, 1, 1, 0, 2, 2], dtype=np.int32),
    )
    fac = (
        Facility("fire_station", "Island Fire", node=6, capacity=2),
        Facility("hospital", "Corner Hospital", node=2, capacity=100),
    )
    # link ids: 0/1 = 0<->4, 2/3 = 4<->1, ..., 10/11 = 5<->6
    places = {"Island Bridge": np.array([10, 11]), "Side Road": np.array([2, 3]), "Corner": {"nodes": np.array([2])}}
    city = City(name="t", network=net, zones=zones, facilities=fac, places=places)
    out = validate_city(city)
    n = out.network
    assert n.n_nodes == 4
    assert np.array_equal(out.zones.node_zone, np.array([0, 0, 1, 1]))
    assert out.zones.residents.sum() == 60  # totals kept
    island, corner = out.facilities
    assert 0 <= island.node < 4 and corner.node == n.node_index(2)
    assert "Island Bridge" not in out.places
    side = out.places["Side Road"]  # the 4 m links now live on in the merged 0 <-> 1 pair
    assert side.size == 2 and np.allclose(n.length_m[side], 100.0)
    assert {(int(n.src[lk]), int(n.dst[lk])) for lk in side} == {(0, 1), (1, 0)}
    assert out.places["Corner"]["nodes"].tolist() == [n.node_index(2)]
    notes = " ".join(out.notes)
    assert "Dropped place 'Island Bridge'" in notes and "Moved fire_station 'Island Fire'" in notes
    assert "zone" in notes  # zone C has no node left


def test_validate_city_keeps_synthetic_bridges():
    city = synthetic_city(bridges=2)
    out = validate_city(city)
    assert out.notes == () and set(out.places) == set(city.places)
    for name, links in out.places.items():
        assert np.all(out.network.link_kind[links] == "bridge"), name


# ------------------------------------------------------------------- load_city
def test_load_city_synthetic_is_validated_and_seeded():
    a = load_city({"synthetic": {"blocks_x": 6, "blocks_y": 6, "bridges": 2}}, seed=4)
    b = load_city({"synthetic": {"blocks_x": 6, "blocks_y": 6, "bridges": 2}}, seed=4)
    c = load_city({"synthetic": {"blocks_x": 6, "blocks_y": 6, "bridges": 2}}, seed=5)
    assert np.array_equal(a.network.length_m, b.network.length_m)
    assert not np.array_equal(a.network.length_m, c.network.length_m)
    assert isinstance(a.notes, tuple) and n_strong(a.network) == 1
    assert len(a.places) == 2


def test_load_city_min_link_option_passes_through():
    small = load_city({"synthetic": {"blocks_x": 4, "blocks_y": 4, "block_m": 30.0}, "min_link_m": 40.0})
    assert small.network.length_m.min() >= 40.0 and small.notes


@pytest.mark.parametrize(
    "spec,key",
    [
        ({"synthtic": {}}, "synthtic"),
        ({"synthetic": {"blockz": 3}}, "blockz"),
        ({"synthetic": {"seed": 3}}, "seed"),
        ({"synthetic": 12}, "synthetic"),
        ({"osm": 5}, "osm"),
        ({"osm": "atlantis"}, "osm"),
        ({"graphml": ["a", "b"]}, "graphml"),
        ({"synthetic": {}, "osm": "helsinki"}, "exactly one"),
        ({}, "exactly one"),
        ({"synthetic": {}, "min_link_m": -1}, "min_link_m"),
        ({"synthetic": {"bridges": 40}}, "bridges"),
    ],
)
def test_load_city_bad_specs_name_the_key(spec, key):
    with pytest.raises(CityError, match=key):
        load_city(spec)
