"""Link changes: composition, exact revert, ring resizing, closures re-route."""

from __future__ import annotations

import numpy as np
import pytest

from tests.twin.conftest import small_scenario
from twin.model import Twin

PARAMS = ("headway", "free_tt", "storage", "lag", "is_open")


def _params(twin):
    return {f: getattr(twin.traffic.links, f).copy() for f in PARAMS}


@pytest.fixture()
def twin(small_city):
    return Twin(small_scenario(), city=small_city)


def test_apply_then_revert_restores_parameters_exactly(twin):
    before = _params(twin)
    twin.run_for(600)
    lc = twin.link_control
    a = lc.apply([0, 1, 2], source="works", lanes=3, speed_mps=5.0)
    b = lc.apply([2, 3], source="crash", capacity_factor=0.5, speed_factor=0.7)
    c = lc.apply([4], source="flood", closed=True)
    mid = _params(twin)
    assert mid["is_open"][4] == 0 and mid["free_tt"][0] > before["free_tt"][0]
    twin.run_for(300)
    for h in (b, a, c):  # any order
        lc.revert(h)
    after = _params(twin)
    for f in PARAMS:
        np.testing.assert_array_equal(after[f], before[f], err_msg=f)
    assert not lc.active


def test_composition_over_the_same_link(twin):
    net = twin.city.network
    lc = twin.link_control
    lc.apply([7], source="a", capacity_factor=0.5)
    lc.apply([7], source="b", capacity_factor=0.5, lanes=net.lanes[7] * 2)
    eff = lc.effective([7])
    assert eff["capacity_vph"][0] == pytest.approx(net.capacity_vph[7] * 2 * 0.25)
    assert eff["jam_density_vpm"][0] == pytest.approx(net.jam_density_vpm[7] * 2)
    assert twin.traffic.links.headway[7] == pytest.approx(3600.0 / eff["capacity_vph"][0])


def test_more_lanes_grow_the_exit_ring_and_keep_recent_exits(twin):
    twin.run_for(1200)
    tm = twin.traffic
    busy = int(np.argmax(tm.state.n_out))
    n_out = int(tm.state.n_out[busy])
    old_len = int(tm.links.ring_len[busy])
    recent = [tm.state.exit_ring[tm.links.ring_off[busy] + e % old_len] for e in range(max(0, n_out - old_len), n_out)]
    twin.link_control.apply([busy], source="widen", lanes=float(twin.city.network.lanes[busy]) * 3)
    new_len = int(tm.links.ring_len[busy])
    assert new_len > old_len
    got = [tm.state.exit_ring[tm.links.ring_off[busy] + e % new_len] for e in range(max(0, n_out - old_len), n_out)]
    assert got == recent
    twin.run_for(1200)  # and the kernel runs on with the larger rings
    c = tm.counts()
    assert c["arrived"] > 0


def test_closing_a_link_reroutes_at_once_and_nobody_enters_it(twin):
    twin.run_for(600)
    tm = twin.traffic
    busy = int(np.argmax(tm.state.n_in))
    entered = int(tm.state.n_in[busy])
    twin.link_control.apply([busy], source="closure", closed=True)
    assert np.isinf(tm.routes.weight[busy])
    twin.run_for(1200)
    assert int(tm.state.n_in[busy]) == entered


def test_bad_changes_name_the_source(twin):
    with pytest.raises(ValueError, match="works: capacity_factor"):
        twin.link_control.apply([0], source="works", capacity_factor=-1)
    with pytest.raises(ValueError, match="works: link index"):
        twin.link_control.apply([10**6], source="works")
