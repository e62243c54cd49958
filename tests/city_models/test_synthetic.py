"""The synthetic city generator."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from city_models import CityError, Network, synthetic_city

from .helpers import distance, n_strong


def test_default_city_size_and_connectivity():
    city = synthetic_city()
    net = city.network
    assert 170 <= net.n_nodes <= 400
    assert n_strong(net) == 1
    assert city.zones.n_zones == 16
    assert set(city.places) == {"Old Bridge", "North Bridge", "Ring Bridge"}
    # every link is two-way: the reverse pair exists
    pairs = set(zip(net.src.tolist(), net.dst.tolist(), strict=False))
    assert all((b, a) in pairs for a, b in pairs)
    assert np.all(net.length_m > 0) and np.all(np.isfinite(net.free_speed_mps))
    # lon/lat near the reference point, consistent with x/y (1 km east ~ 0.018 deg at 60 N)
    assert abs(np.nanmean(net.lat) - 60.17) < 0.02 and abs(np.nanmean(net.lon) - 24.94) < 0.04
    i, j = np.argmin(net.x), np.argmax(net.x)
    dx = (net.lon[j] - net.lon[i]) * 111_320 * math.cos(math.radians(60.17))
    assert dx == pytest.approx(net.x[j] - net.x[i], rel=1e-6)


def test_same_seed_identical_different_seed_differs():
    a, b, c = synthetic_city(seed=7), synthetic_city(seed=7), synthetic_city(seed=8)
    for f in Network._fields:
        assert np.array_equal(getattr(a.network, f), getattr(b.network, f)), f
    assert np.array_equal(a.zones.residents, b.zones.residents)
    assert a.facilities == b.facilities
    differs = [
        f
        for f in Network._fields
        if getattr(a.network, f).shape != getattr(c.network, f).shape
        or not np.array_equal(getattr(a.network, f), getattr(c.network, f))
    ]
    assert {"length_m", "x"} <= set(differs)
    assert not np.array_equal(a.zones.residents, c.zones.residents)


def test_link_kinds_lanes_and_speeds():
    net = synthetic_city().network
    kind = net.link_kind
    kph = net.free_speed_mps * 3.6
    loc = kind == "local"
    assert np.all(net.lanes[loc] == 1) and np.all((kph[loc] >= 30 - 1e-9) & (kph[loc] <= 40 + 1e-9))
    art = kind == "arterial"
    assert np.all(net.lanes[art] == 2) and np.allclose(kph[art], 50)
    ring = kind == "ring"
    assert ring.any() and np.all(np.isin(net.lanes[ring], [2, 3])) and np.all((kph[ring] >= 70) & (kph[ring] <= 80))


def _banks(net, bridge_links):
    keep = np.ones(net.n_links, dtype=bool)
    keep[bridge_links] = False
    adj = sp.csr_matrix((np.ones(keep.sum()), (net.src[keep], net.dst[keep])), shape=(net.n_nodes,) * 2)
    return connected_components(adj, directed=True, connection="strong")


@pytest.mark.parametrize("bridges,ring", [(1, True), (3, True), (2, False), (5, True)])
def test_only_bridges_cross_the_river(bridges, ring):
    city = synthetic_city(bridges=bridges, ring_road=ring, seed=3)
    net = city.network
    bridge_links = np.flatnonzero(net.link_kind == "bridge")
    assert bridge_links.size == 2 * bridges
    assert sorted(np.concatenate(list(city.places.values())).tolist()) == bridge_links.tolist()
    n_comp, labels = _banks(net, bridge_links)
    assert n_comp == 2  # without the bridges: exactly two banks
    # every bridge joins the two banks, and no other link does
    assert np.all(labels[net.src[bridge_links]] != labels[net.dst[bridge_links]])
    others = np.setdiff1d(np.arange(net.n_links), bridge_links)
    assert np.all(labels[net.src[others]] == labels[net.dst[others]])


def test_single_bridge_closed_disconnects_banks():
    city = synthetic_city(bridges=1)
    net = city.network
    ((name, links),) = city.places.items()
    assert name == "Old Bridge"
    a, b = int(net.src[links[0]]), int(net.dst[links[0]])
    assert math.isfinite(distance(net, a, b))
    assert math.isinf(distance(net, a, b, drop=links))
    assert math.isinf(distance(net, b, a, drop=links))


def test_closing_one_of_three_bridges_forces_a_detour():
    city = synthetic_city(bridges=3)
    net = city.network
    for name, links in city.places.items():
        a, b = int(net.src[links[0]]), int(net.dst[links[0]])
        direct = distance(net, a, b)
        detour = distance(net, a, b, drop=links)
        assert math.isfinite(detour), name
        assert detour > direct + 500.0, name


def test_zone_totals_exact_and_jobs_central():
    city = synthetic_city(residents=123_457, jobs=65_431, zone_blocks=4, seed=2)
    z = city.zones
    assert z.residents.dtype.kind == "i" and z.jobs.dtype.kind == "i"
    assert int(z.residents.sum()) == 123_457 and int(z.jobs.sum()) == 65_431
    assert z.n_zones == 9 and z.node_zone.shape == (city.network.n_nodes,)
    assert set(np.unique(z.node_zone)) == set(range(9))
    centre = 4  # the middle zone of the 3 x 3 grid
    assert z.jobs[centre] == z.jobs.max()
    assert z.jobs[centre] / z.residents[centre] > z.jobs.sum() / z.residents.sum()


def test_csr_consistency():
    net = synthetic_city(seed=5).network
    assert sorted(net.out_links.tolist()) == list(range(net.n_links))
    assert sorted(net.in_links.tolist()) == list(range(net.n_links))
    for i in range(net.n_nodes):
        out = net.out_links[net.out_indptr[i] : net.out_indptr[i + 1]]
        inn = net.in_links[net.in_indptr[i] : net.in_indptr[i + 1]]
        assert np.all(net.src[out] == i)
        assert np.all(net.dst[inn] == i)
    assert np.array_equal(net.indices, net.dst[net.out_links])


def test_signals_two_phases_at_arterial_crossings():
    net = synthetic_city().network
    sig = np.flatnonzero(net.signal_cycle_s > 0)
    assert sig.size == 16  # 4 x 4 arterial crossings
    assert np.all((net.signal_cycle_s[sig] >= 60) & (net.signal_cycle_s[sig] <= 90))
    for node in sig:
        c = net.signal_cycle_s[node]
        inn = net.in_links[net.in_indptr[node] : net.in_indptr[node + 1]]
        gs, ge = net.green_start_s[inn], net.green_end_s[inn]
        assert np.all((0 <= gs) & (gs < ge) & (ge <= c))
        assert len(set(gs.tolist())) == 2  # two phases
        horiz = np.abs(net.x[node] - net.x[net.src[inn]]) >= np.abs(net.y[node] - net.y[net.src[inn]])
        assert np.all(gs[horiz] == 0) and np.all(gs[~horiz] > 0)
    unsig = net.signal_cycle_s[net.dst] == 0
    assert np.all(net.green_start_s[unsig] == 0) and np.all(net.green_end_s[unsig] == 0)
    assert np.all(synthetic_city(signals=False).network.signal_cycle_s == 0)


def test_facilities_on_both_banks():
    city = synthetic_city()
    net = city.network
    kinds = {f.kind for f in city.facilities}
    assert {"fire_station", "ems_station", "police_station", "hospital"} <= kinds
    hospitals = [f for f in city.facilities if f.kind == "hospital"]
    assert 2 <= len(hospitals) <= 3 and all(f.capacity > 0 for f in hospitals)
    bridge = np.concatenate(list(city.places.values()))
    _, labels = _banks(net, bridge)
    for kind in ("fire_station", "ems_station", "hospital"):
        banks = {labels[f.node] for f in city.facilities if f.kind == kind}
        assert len(banks) == 2, kind


def test_bad_arguments_raise_city_error():
    with pytest.raises(CityError, match="blocks_x"):
        synthetic_city(blocks_x=0)
    with pytest.raises(CityError, match="bridges=99"):
        synthetic_city(bridges=99)
