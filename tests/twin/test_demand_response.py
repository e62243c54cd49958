"""Demand that responds to congestion (``demand.elasticity``): who stays home, and why."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from kernels.traffic import VEH_PENDING
from scenarios import ScenarioError
from tests.twin.conftest import small_scenario
from twin.model import Twin
from twin.traffic import VEH_CANCELLED

CLOSE_BOTH = [{"kind": "close", "place": p, "at": "07:05", "until": "07:45"} for p in ("Old Bridge", "North Bridge")]
CLOSE_OLD = CLOSE_BOTH[:1]


def _busy(**kw):
    return small_scenario(**{"demand.gravity.total_trips": 9000, **kw})


def _pending(tw: Twin) -> np.ndarray:
    n = tw.trips.trip_id.shape[0]
    return np.flatnonzero(tw.traffic.veh.link[:n] == VEH_PENDING)


@pytest.mark.parametrize("elasticity", [-0.5, -1.0])
def test_trips_stay_home_with_the_probability_the_elasticity_gives(small_city, elasticity):
    tw = Twin(_busy(**{"demand.elasticity": elasticity}), city=small_city)
    tm = tw.traffic
    ids = _pending(tw)
    free = tw.trip_free_flow_s
    assert np.all(np.isfinite(free[ids])) and np.all(free[ids] > 0)
    # make the routing expect each trip to take twice its free-flow time (a third of them: as free)
    veh = tm.veh
    rows, origs = veh.dest_idx[ids], veh.orig[ids]
    slow = ids % 3 != 0
    pot = tm.routes.pot
    pot[rows[slow], origs[slow]] = 2.0 * free[ids[slow]]
    pot[rows[~slow], origs[~slow]] = free[ids[~slow]]
    # several trips share an (origin, destination) cell: keep only those whose cell says what we set
    told = np.where(slow, 2.0, 1.0) * free[ids]
    clean = np.isclose(pot[rows, origs], told)
    dropped = tw._deter_trips(0.0, 4000.0)
    status = tm.veh.link[ids]
    gone = status == VEH_CANCELLED
    assert dropped == int(gone.sum())
    assert not gone[~slow & clean].any()  # no delay expected: every trip is made
    share = gone[slow & clean].mean()
    expect = 1.0 - 2.0**elasticity
    n = int((slow & clean).sum())
    assert n > 1000
    assert abs(share - expect) < 4 * np.sqrt(expect * (1 - expect) / n)


def test_no_elasticity_no_process_and_every_trip_made(small_city):
    tw = Twin(_busy(interventions=CLOSE_BOTH), city=small_city)
    assert tw.elasticity == 0.0 and tw.trip_free_flow_s.size == 0
    tw.run()
    assert tw.kpis()["trips_deterred"] == 0 and tw.kpis()["trips_cancelled"] == 0


def test_closing_the_bridges_keeps_more_trips_home_than_the_baseline(small_city):
    base = Twin(_busy(**{"demand.elasticity": -0.5}), city=small_city)
    base.run()
    shut = Twin(_busy(**{"demand.elasticity": -0.5}, interventions=CLOSE_OLD), city=small_city)
    shut.run()
    kb, ks = base.kpis(), shut.kpis()
    assert ks["trips_deterred"] > kb["trips_deterred"] + 100
    assert ks["trips_deterred"] == ks["trips_cancelled"]
    # the trips that stayed home are the ones the closure hit: they cross the river (closing
    # both bridges would leave them no route at all: those wait for one instead)
    net = small_city.network
    tm = shut.traffic
    n = shut.trips.trip_id.shape[0]
    gone = np.flatnonzero(tm.veh.link[:n] == VEH_CANCELLED)
    y = net.y
    bridge = small_city.places["Old Bridge"]
    river = 0.5 * (y[net.src[bridge[0]]] + y[net.dst[bridge[0]]])
    o, d = shut.trips.origin, shut.trips.destination
    crosses = (y[o] > river) != (y[d] > river)
    assert crosses[gone].mean() > crosses.mean() + 0.25
    # inelastic, the same closure leaves far more delay
    fixed = Twin(_busy(interventions=CLOSE_OLD), city=small_city)
    fixed.run()
    assert fixed.kpis()["total_delay_h"] > ks["total_delay_h"]


def test_same_seed_same_trips_stay_home_other_seed_others(small_city):
    def gone(seed):
        tw = Twin(_busy(**{"demand.elasticity": -0.5}, interventions=CLOSE_BOTH), city=small_city, seed=seed)
        tw.run()
        n = tw.trips.trip_id.shape[0]
        return np.flatnonzero(tw.traffic.veh.link[:n] == VEH_CANCELLED)

    a, b = gone(5), gone(5)
    np.testing.assert_array_equal(a, b)
    assert a.size > 0
    assert not np.array_equal(a, gone(6))


def test_restore_then_run_equals_the_uninterrupted_run(small_city, tmp_path):
    sc = _busy(**{"demand.elasticity": -0.5}, interventions=CLOSE_BOTH)
    whole = Twin(sc, city=small_city)
    whole.run()
    part = Twin(sc, city=small_city)
    part.run_until("07:21:13")
    path = part.snapshot(tmp_path / "now.snap")
    back = Twin.restore(path)
    back.run()
    a, b = whole.results(), back.results()
    assert whole.kpis()["trips_deterred"] > 0
    assert set(a.data_vars) == set(b.data_vars)
    for name in a.data_vars:
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)
    assert isinstance(a, xr.Dataset)


@pytest.mark.parametrize("bad", [0.5, -4, "much"])
def test_bad_elasticity_names_the_field(bad):
    with pytest.raises(ScenarioError, match="demand.elasticity"):
        small_scenario(**{"demand.elasticity": bad})
