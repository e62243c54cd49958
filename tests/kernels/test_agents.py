"""kernels.agents against its reference, on random and edge cases."""

from __future__ import annotations

import numpy as np
import pytest

from kernels.agents import PersonTrips, Positions, VehicleView, trip_positions
from tests.reference.agents import ref_trip_positions


def _case(rng, n_persons=200, n_veh=150, n_links=40, n_nodes=25):
    mode = rng.integers(0, 2, n_persons).astype(np.int8)
    vid = np.where(mode == 0, rng.integers(0, n_veh, n_persons), -1).astype(np.int64)
    dep = rng.uniform(0, 1000, n_persons)
    arr_known = np.where(mode == 1, dep + rng.uniform(0, 500, n_persons), np.nan)
    veh_arrive = np.where(rng.random(n_veh) < 0.5, rng.uniform(0, 1500, n_veh), np.nan)
    veh_link = rng.integers(-4, n_links, n_veh).astype(np.int32)
    return dict(
        mode=mode,
        vid=vid,
        dep=dep,
        arr_known=arr_known,
        dest=rng.integers(0, n_nodes, n_persons).astype(np.int32),
        purpose=rng.integers(0, 5, n_persons).astype(np.int8),
        place=rng.integers(0, 2, n_persons).astype(np.int8),
        node=rng.integers(0, n_nodes, n_persons).astype(np.int32),
        veh_arrive=veh_arrive,
        veh_link=veh_link,
        link_dst=rng.integers(0, n_nodes, n_links).astype(np.int32),
    )


def _both(persons, c, now):
    m = persons.size
    out = (np.empty(m), np.empty(m, np.int8), np.empty(m, np.int32))
    trips = PersonTrips(*(c[f] for f in ("mode", "vid", "dep", "arr_known", "dest", "purpose", "place", "node")))
    trip_positions(persons, trips, VehicleView(c["veh_arrive"], c["veh_link"], c["link_dst"]), now, Positions(*out))
    ref = ref_trip_positions(
        persons,
        c["mode"],
        c["vid"],
        c["dep"],
        c["arr_known"],
        c["dest"],
        c["purpose"],
        c["place"],
        c["node"],
        c["veh_arrive"],
        c["veh_link"],
        c["link_dst"],
        now,
    )
    np.testing.assert_array_equal(out[0], ref[0])
    np.testing.assert_array_equal(out[1], ref[1])
    np.testing.assert_array_equal(out[2], ref[2])
    return out


@pytest.mark.parametrize("seed", range(5))
def test_random_matches_reference(seed):
    rng = np.random.default_rng(seed)
    c = _case(rng)
    persons = rng.choice(200, 120, replace=False).astype(np.int64)
    for now in (0.0, 400.0, 999.0, 2000.0):
        arrive, state, node = _both(persons, c, now)
        assert set(np.unique(state)) <= {0, 1, 2}


def test_edge_cases():
    rng = np.random.default_rng(9)
    c = _case(rng)
    _both(np.zeros(0, np.int64), c, 10.0)  # nobody
    p = np.arange(200, dtype=np.int64)
    # before anyone leaves: everybody where they rest
    arrive, state, node = _both(p, c, -1.0)
    np.testing.assert_array_equal(state, c["place"])
    # a departure exactly now counts as under way; an arrival exactly now as arrived
    c["dep"][:] = 50.0
    c["arr_known"][:] = np.where(c["mode"] == 1, 50.0, np.nan)
    arrive, state, node = _both(p, c, 50.0)
    assert np.all(state[c["mode"] == 1] != 2)
