"""The population component: agents on the clock, conservation, policies, outputs."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import xarray as xr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

from basics.errors import InputError
from city_models.plans import P_HOME, P_WORK
from kernels import choice as kc
from scenarios import ScenarioError, load_scenario
from twin.model import Twin, build_city
from twin.population import Household, Person
from twin.population.triplog import TRIP_CANCELLED

BASE = {
    "name": "pop_small",
    "seed": 5,
    "time": {"start": "06:30", "duration": "3h", "step": "2s"},
    "city": {
        "synthetic": {
            "blocks_x": 6,
            "blocks_y": 6,
            "bridges": 2,
            "zone_blocks": 2,
            "arterial_every": 3,
            "residents": 4000,
            "jobs": 2500,
        }
    },
    "outputs": {"interval": "15min"},
    "population": {"enabled": True},
}
CENTRE = 4  # the middle zone of the 3 x 3 zones


def scenario(**overrides):
    return load_scenario(BASE, overrides=overrides or None)


@pytest.fixture(scope="module")
def city():
    return build_city(scenario().city)


@pytest.fixture(scope="module")
def day(city):
    """One run, checked at every recorded time on the way (see test_every_person_in_one_state)."""
    tw = Twin(scenario(), city=city)
    checks = []
    for t in range(900, 3 * 3600 + 1, 900):
        tw.run_until(t)
        checks.append(_check_states(tw))
    return tw, checks


def _log_view(pop):
    lg = pop.log
    arrive = lg["arrive"].copy()
    car = (lg["mode"] == kc.MODE_CAR) & (lg["vid"] >= 0)
    arrive[car] = pop.twin.traffic.veh.arrive[lg["vid"][car]]
    return lg, arrive


def _check_states(tw) -> dict:
    """Independent checks of the persons' states now; returns counts for the caller."""
    pop = tw.components["population"]
    now = tw.traffic.now
    n = pop.people.n_persons
    state, zone = pop.person_states()
    assert state.shape == (n,) and set(np.unique(state)) <= {0, 1, 2}
    # the incremental per-zone counts agree with the per-person states
    nz = pop.zones.n_zones
    z = np.where(zone >= 0, zone, nz)
    rows_before = len(pop.outputs.rec_counts)
    pop.sample(now)
    got = pop.outputs.rec_counts.pop()
    pop.outputs.rec_time.pop()
    assert len(pop.outputs.rec_counts) == rows_before
    np.testing.assert_array_equal(got, np.bincount(z * 3 + state, minlength=(nz + 1) * 3).reshape(-1, 3))
    # travelling persons are exactly those whose trip (in the diary) has departed and not arrived
    lg, arrive = _log_view(pop)
    live = (lg["status"] != TRIP_CANCELLED) & (lg["depart"] <= now) & ~(arrive <= now)
    on_trip = np.zeros(n, np.int64)
    np.add.at(on_trip, lg["person"][live].astype(np.int64), 1)
    assert on_trip.max(initial=0) <= 1  # nobody is on two trips at once
    np.testing.assert_array_equal(state == 2, on_trip == 1)
    # at home means at one's home node (including those who just came home)
    at_home = np.flatnonzero(state == 0)
    node = pop.node.copy()
    just = (lg["status"] != TRIP_CANCELLED) & (arrive <= now) & (lg["status"] == 0)
    node[lg["person"][just]] = lg["dest"][just]
    np.testing.assert_array_equal(node[at_home], pop.people.home_node[at_home])
    # nobody is forgotten: whoever has a next leg and no trip is in the calendar
    waiting = np.flatnonzero(np.isfinite(pop.next_t) & (pop.trip_mode < 0))
    filed = np.concatenate([a for v in pop.calendar.values() for a in v] or [np.zeros(0, np.int64)])
    assert np.all(np.isin(waiting, filed))
    return {"t": now, "travelling": int((state == 2).sum()), "home": int((state == 0).sum())}


# ------------------------------------------------------------------- the day


def test_population_makes_the_demand(day, city):
    tw, _ = day
    pop = tw.components["population"]
    assert tw.trips.n_trips == 0  # gravity demand replaced
    assert pop.people.n_persons == int(city.zones.residents.sum())
    table = tw.trip_table()
    assert table["source"].size > 500
    assert set(np.unique(table["source"])) == {tw.trip_sources.index("population")}
    k = tw.kpis()
    assert k["pop_trips_made"] > 1000 and 0 < k["pop_trips_car"] < k["pop_trips_made"]
    assert k["trips_completed"] > 0.8 * k["pop_trips_car"]
    assert k["pop_mean_gc"] > 0


def test_every_person_in_one_state(day):
    tw, checks = day
    ds = tw.results()
    n = tw.components["population"].people.n_persons
    np.testing.assert_array_equal(ds.pop_state_total.sum("person_state").values, n)
    total = ds.pop_at_home + ds.pop_at_activity + ds.pop_travelling
    np.testing.assert_array_equal(total.sum("zone").values, n)  # every node of this city has a zone
    # the morning: people leave home, some are under way at every check
    assert checks[0]["home"] > checks[-1]["home"]
    assert all(c["travelling"] > 0 for c in checks[2:])
    assert ds.pop_at_activity.isel(time=-1).sum() > ds.pop_at_activity.isel(time=0).sum()


def test_trips_follow_the_plans(day):
    """Each person's trips come one after another, in plan order, each from where the last ended."""
    tw, _ = day
    pop = tw.components["population"]
    lg, arrive = _log_view(pop)
    ok = lg["status"] != TRIP_CANCELLED
    order = np.lexsort((lg["depart"][ok], lg["person"][ok]))
    person = lg["person"][ok][order]
    same = person[1:] == person[:-1]
    dep, arr = lg["depart"][ok][order], arrive[ok][order]
    assert np.all(dep[1:][same] >= arr[:-1][same])
    assert np.all(lg["leg"][ok][order][1:][same] > lg["leg"][ok][order][:-1][same])
    assert np.all(lg["orig"][ok][order][1:][same] == lg["dest"][ok][order][:-1][same])
    # a trip to work goes to the person's workplace; a trip home to the home node
    w = ok & (lg["purpose"] == P_WORK)
    np.testing.assert_array_equal(lg["dest"][w], pop.people.work_node[lg["person"][w]])
    h = ok & (lg["purpose"] == P_HOME)
    np.testing.assert_array_equal(lg["dest"][h], pop.people.home_node[lg["person"][h]])


def test_results_and_file(day, tmp_path):
    tw, _ = day
    ds = tw.results()
    assert ds.pop_at_home.dims == ("time", "zone")
    assert list(ds.purpose.values) == ["home", "work", "school", "other", "evacuation"]
    assert int(ds.pop_trips.sum()) == tw.kpis()["pop_trips_made"]  # every trip departed so far, once
    assert int(ds.pop_trips.sel(purpose="work").sum()) > 0
    np.testing.assert_array_equal(ds.pop_trips.sum("purpose").values, ds.pop_trips_by_mode.sum("mode").values)
    veh = ds.pop_trip_vehicle.values
    car = ds.pop_trip_mode.values == 0
    assert np.all(veh[car] >= 0) and np.all(veh[~car] == -1)
    assert np.all(np.isin(veh[car], ds.trip.values))
    out = tw.save(tmp_path / "run")
    with xr.open_dataset(out / "results.nc") as back:
        np.testing.assert_array_equal(back.pop_travelling.values, ds.pop_travelling.values)
        assert back.pop_at_home.attrs["units"] == "1"


def test_same_seed_same_day_other_seed_other(city, day):
    tw, _ = day
    again = Twin(scenario(), city=city)
    again.run()
    a, b = tw.components["population"], again.components["population"]
    for col in ("person", "depart", "dest", "mode"):
        np.testing.assert_array_equal(a.log[col], b.log[col])
    np.testing.assert_array_equal(tw.traffic.veh.arrive, again.traffic.veh.arrive)
    other = Twin(scenario(seed=6), city=city).components["population"]
    assert not np.array_equal(other.people.hh_node, a.people.hh_node)


def test_snapshot_resumes_bit_for_bit(city, day):
    tw, _ = day
    half = Twin(scenario(), city=city)
    half.run_until(5000.0)
    resumed = pickle.loads(pickle.dumps(half))
    resumed.run()
    a, b = tw.components["population"], resumed.components["population"]
    np.testing.assert_array_equal(a.log["depart"], b.log["depart"])
    np.testing.assert_array_equal(a.node, b.node)
    np.testing.assert_array_equal(tw.results().pop_travelling.values, resumed.results().pop_travelling.values)


def test_agents_are_mesa_views(day):
    tw, _ = day
    pop = tw.components["population"]
    households = tw.agents_by_type[Household]
    assert len(households) == pop.people.n_households == len(pop.agents)
    assert sum(h.size for h in households) == pop.people.n_persons
    big = pop.agents.select(lambda h: h.size >= 4)
    assert 0 < len(big) < len(households)
    h = next(iter(big))
    member = h.members[0]
    assert member.home_node == h.node
    assert member.state in ("at_home", "at_activity", "travelling")
    assert member.plan == [] or member.plan[-1][0] == "home"


def test_person_agents(city):
    tw = Twin(scenario(**{"population.agents": "person", "population.scale": 0.1}), city=city)
    pop = tw.components["population"]
    persons = tw.agents_by_type[Person]
    assert len(persons) == pop.people.n_persons == 400
    p = next(iter(persons))
    assert p.household == pop.people.household[p.index]


# ------------------------------------------------------------------ policies


def _crossing_car_trips(pop, zones) -> int:
    inside = pop.policies.zone_nodes_mask(zones, "test")
    lg = pop.log
    car = (lg["mode"] == kc.MODE_CAR) & (lg["status"] != TRIP_CANCELLED)
    return int(np.count_nonzero(car & (inside[lg["orig"]] != inside[lg["dest"]])))


def _run_with_cordon(city, price: float) -> int:
    tw = Twin(scenario(**{"time.duration": "2h", "population.scale": 0.75}), city=city)
    pop = tw.components["population"]
    pop.set_cordon("centre", [CENTRE], price)
    tw.run()
    return _crossing_car_trips(pop, [CENTRE])


@settings(max_examples=2, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(prices=st.lists(st.floats(0.0, 30.0), min_size=3, max_size=3, unique=True))
def test_cordon_price_lowers_crossing_trips_monotonically(city, prices):
    crossings = [_run_with_cordon(city, p) for p in sorted(prices)]
    assert all(a >= b for a, b in zip(crossings, crossings[1:], strict=False)), (sorted(prices), crossings)


def test_cordon_bites_and_clears(city):
    free, dear = _run_with_cordon(city, 0.0), _run_with_cordon(city, 25.0)
    assert dear < 0.7 * free
    tw = Twin(scenario(**{"time.duration": "2h", "population.scale": 0.75}), city=city)
    pop = tw.components["population"]
    pop.set_cordon("centre", [CENTRE], 25.0)
    pop.set_cordon("centre", np.array(["Z01-01"]), 25.0)  # set again: replaced, by name
    assert pop.cordon.shape[0] == 1
    pop.clear_cordon("centre")
    tw.run()
    assert _crossing_car_trips(pop, [CENTRE]) == free
    assert tw.kpis()["pop_cordon_crossings"] == 0


def test_announced_end_shifts_departures_later(city):
    """With the price known to end soon, more crossing drivers leave after it."""

    def late_crossings(until):
        tw = Twin(scenario(**{"time.duration": "2h", "population.scale": 0.75}), city=city)
        pop = tw.components["population"]
        pop.set_cordon("c", [CENTRE], 15.0, until_s=until)
        tw.run()
        inside = pop.policies.zone_nodes_mask([CENTRE], "t")
        lg = pop.log
        sel = (lg["mode"] == 0) & (inside[lg["orig"]] != inside[lg["dest"]]) & (lg["depart"] >= 3600)
        return int(sel.sum())

    assert late_crossings(3600.0) > late_crossings(None)


def test_work_from_home(city):
    def work_trips(share):
        tw = Twin(scenario(**{"population.scale": 0.75}), city=city)
        pop = tw.components["population"]
        pop.set_work_from_home(share)
        tw.run()
        lg = pop.log
        return int(np.count_nonzero(lg["purpose"] == P_WORK)), pop, tw.kpis()

    base, pop0, k0 = work_trips(0.0)
    half, pop5, k5 = work_trips(0.5)
    none, _, _ = work_trips(1.0)
    assert none == 0
    assert 0.3 * base < half < 0.7 * base
    assert k5["pop_trips_dropped"] > k0["pop_trips_dropped"]
    # the same workers for the same share, nested as it grows; back to 0 sends all to work
    pop0.set_work_from_home(0.3)
    a = pop0.wfh.copy()
    pop0.set_work_from_home(0.6)
    assert np.all(pop0.wfh[a]) and pop0.wfh.sum() > a.sum()
    assert not np.any(pop0.wfh & ~pop0.people.worker)
    pop0.set_work_from_home(0.0)
    assert not pop0.wfh.any() and pop0.work_from_home_share == 0.0


def _evacuate(city, *, zone=CENTRE, exit_factor=None, shelters=None, compliance=1.0, **overrides):
    """Order ``zone`` out at 01:05 (everybody at home) with no delay; run to 03:00."""
    tw = Twin(
        scenario(**{"time.start": "01:00", "time.duration": "2h", "outputs.interval": "5min", **overrides}), city=city
    )
    pop = tw.components["population"]
    mask = pop.policies.zone_nodes_mask([zone], "t")
    if exit_factor is not None:
        net = city.network
        exits = np.flatnonzero(mask[net.src] & ~mask[net.dst])
        tw.link_control.apply(exits, source="test", capacity_factor=exit_factor)
    tw.run_until(302.0)  # just after the 01:05 sample
    ordered = pop.order_evacuation([zone], compliance=compliance, delay_mean_s=0.0, delay_sd_s=0.0, shelters=shelters)
    tw.run()
    return tw, pop, mask, ordered


def test_evacuation_empties_the_zone(city):
    tw, pop, mask, ordered = _evacuate(city)
    assert ordered == int(city.zones.residents[CENTRE])  # at night everybody is at home
    state, _ = pop.person_states()
    resting_inside = (state != 2) & mask[pop.node]
    assert not resting_inside.any()
    evac = pop.policies.evac
    assert evac.target.sum() == ordered and np.all(np.isfinite(evac.safe_t[evac.target]))
    k = tw.kpis()
    assert 0 < k["pop_evac_clearance_s"] < 3600 and k["pop_evac_safe_share"] == 100.0
    # households left together: one vehicle per household with a car
    lg = pop.log
    evac_car = (lg["purpose"] == 4) & (lg["mode"] == kc.MODE_CAR)
    hh = pop.people.household[lg["person"][evac_car]]
    assert np.unique(lg["vid"][evac_car]).size == np.unique(hh).size
    # and the zone's per-zone series shows it
    ds = tw.results()
    resting = ds.pop_at_home + ds.pop_at_activity
    assert int(resting.isel(zone=CENTRE, time=0)) == ordered  # 01:05, just before the order
    assert int(resting.isel(zone=CENTRE, time=-1)) == 0


def test_evacuation_in_the_morning_keeps_the_books(city):
    """Ordered while people come and go: obeyers drop the trips they had decided on, the others keep theirs."""
    tw = Twin(scenario(**{"time.start": "07:00", "time.duration": "1h30min"}), city=city)
    pop = tw.components["population"]
    tw.run_until(1800.0)
    mask = pop.policies.zone_nodes_mask([CENTRE], "t")
    pending = np.flatnonzero(pop.policies.in_place(mask) & (pop.trip_mode >= 0))
    assert pending.size > 0
    n = pop.order_evacuation([CENTRE], compliance=0.6, delay_mean_s=600.0, delay_sd_s=300.0)
    assert n > 0
    obey = pending[pop.policies.evac.status[pending] == 1]
    refuse = pending[pop.policies.evac.status[pending] == 2]
    assert obey.size and refuse.size
    assert np.all(pop.log["status"][pop.trip_row[refuse]] != TRIP_CANCELLED)  # still going
    assert np.all(pop.trip_purpose[obey] == 4)  # now evacuating instead
    for t in (2400.0, 3600.0, 5400.0):
        tw.run_until(t)
        _check_states(tw)
    lg = pop.log
    evac = lg["purpose"] == 4
    assert np.all(lg["depart"][evac] >= 1800.0)
    assert tw.kpis()["trips_cancelled"] > 0  # their cars never left


def test_clearance_grows_as_exit_capacity_falls(city):
    """Every household drives out of a populous corner zone; its exit links lose capacity."""
    times = [
        _evacuate(city, zone=6, exit_factor=f, **{"population.synthesis.car_share": 1.0})[0].kpis()[
            "pop_evac_clearance_s"
        ]
        for f in (None, 0.25, 0.08)
    ]
    assert times[0] < times[1] < times[2], times
    assert times[2] > 2 * times[0]


def test_evacuation_to_shelters_and_partial_compliance(city):
    net = city.network
    far = int(np.argmax(np.hypot(net.x - net.x.mean(), net.y - net.y.mean())))
    tw, pop, mask, ordered = _evacuate(city, shelters=np.array([far]))
    lg = pop.log
    assert np.all(lg["dest"][lg["purpose"] == 4] == far)
    tw, pop, mask, ordered = _evacuate(city, compliance=0.5)
    share = tw.kpis()["pop_evac_safe_share"]
    assert 30 < share < 70
    assert np.isnan(tw.kpis()["pop_evac_clearance_s"])  # 90 % never leave


def test_closed_bridges_reach_agents_through_travel_times(city):
    net = city.network
    bridges = np.flatnonzero(net.link_kind == "bridge")
    keep = np.ones(net.n_links, bool)
    keep[bridges] = False
    g = csr_matrix((np.ones(keep.sum()), (net.src[keep], net.dst[keep])), shape=(net.n_nodes,) * 2)
    _, bank = connected_components(g, directed=False)
    tw = Twin(scenario(), city=city)
    pop = tw.components["population"]
    before = pop.zone_travel_times()
    tw.link_control.apply(bridges, source="flood", closed=True)
    after = pop.zone_travel_times()  # closures re-route at once
    assert np.all(after >= before)
    assert np.isinf(after).any() and not np.isinf(before).any()
    tw.run()
    lg = pop.log
    car = (lg["mode"] == kc.MODE_CAR) & (lg["status"] != TRIP_CANCELLED)
    assert car.sum() > 100
    assert np.all(bank[lg["orig"][car]] == bank[lg["dest"][car]])  # no car trip across the river
    assert (bank[lg["orig"]] != bank[lg["dest"]]).any()  # by other modes people still cross
    assert tw.kpis()["no_route"] == 0


def test_policy_errors_are_clear(day):
    tw, _ = day
    pop = tw.components["population"]
    with pytest.raises(InputError, match="unknown zone.*Z99"):
        pop.set_cordon("x", np.array(["Z99-99"]), 3.0)
    with pytest.raises(InputError, match="zone index 42"):
        pop.set_cordon("x", [42], 3.0)
    with pytest.raises(InputError, match="price"):
        pop.set_cordon("x", [0], -1.0)
    with pytest.raises(InputError, match="no cordon named 'nope'"):
        pop.clear_cordon("nope")
    with pytest.raises(InputError, match=r"share must lie in \[0, 1\]"):
        pop.set_work_from_home(1.5)
    with pytest.raises(InputError, match="compliance"):
        pop.order_evacuation([0], compliance=2.0)


# ------------------------------------------------------------------ scenarios


def test_population_section_schema(tmp_path):
    base = {"city": {"synthetic": {}}}
    assert not load_scenario(base).population.enabled
    s = load_scenario({**base, "population": {"scale": 0.1}})
    assert s.population.enabled and s.population.choice.shifts == [-1800.0, -900.0, 0.0, 900.0, 1800.0]
    assert not load_scenario({**base, "population": {"enabled": False, "scale": 0.1}}).population.enabled
    with pytest.raises(ScenarioError, match="population.choice.shifts"):
        load_scenario({**base, "population": {"choice": {"shifts": ["15min"]}}})
    with pytest.raises(ScenarioError, match="population.zone_size"):
        (tmp_path / "z.csv").write_text("zone,residents,jobs,x,y\n")
        load_scenario({**base, "population": {"zones": str(tmp_path / "z.csv"), "zone_size": 500}})
    with pytest.raises(ScenarioError, match="population.zones"):
        load_scenario({**base, "population": {"zones": str(tmp_path / "missing.geojson")}})
    with pytest.raises(ScenarioError, match="population.synthesis.car_share"):
        load_scenario({**base, "population": {"synthesis": {"car_share": 1.2}}})


def test_zone_grid_option(city):
    tw = Twin(scenario(**{"population.zone_size": 600.0, "population.scale": 0.25}), city=city)
    pop = tw.components["population"]
    assert pop.zones.n_zones > city.zones.n_zones
    assert tw.results().pop_at_home.dims == ("time", "pop_zone")


def test_zone_file_population(city, tmp_path):
    net = city.network
    f = tmp_path / "zones.csv"
    f.write_text(
        f"zone,residents,jobs,x,y\nwest,300,100,{net.x.min()},{net.y.mean()}\n"
        f"east,200,400,{net.x.max()},{net.y.mean()}\n"
    )
    tw = Twin(scenario(**{"population.zones": str(f), "time.duration": "1h"}), city=city)
    pop = tw.components["population"]
    np.testing.assert_array_equal(np.bincount(pop.people.home_zone), [300, 200])
    tw.run()
    ds = tw.results()
    assert list(ds.pop_zone_name.values) == ["west", "east"]
    np.testing.assert_array_equal(
        ds.pop_at_home.sum("pop_zone") + ds.pop_at_activity.sum("pop_zone") + ds.pop_travelling.sum("pop_zone"), 500
    )


@pytest.mark.parametrize("name", ["agent_day", "evacuation"])
def test_library_scenarios_run(name):
    sc = load_scenario(name, overrides={"population.scale": 0.03, "time.duration": "30min"})
    assert sc.population.enabled
    tw = Twin(sc)
    tw.run()
    assert tw.kpis()["pop_persons"] > 0


def test_skim_is_exact_after_each_refresh(city):
    """Rows are copied from the route table, kept when the new weights leave them exact, or
    recomputed: after every refresh the skim equals a fresh search on the skim's weights."""
    from kernels.routing import route_table

    tw = Twin(scenario(**{"population.skim_interval": "10min"}), city=city)
    pop = tw.components["population"]
    g = tw.traffic.graph
    act = pop.centroid >= 0
    refreshes = 0
    for t in range(600, 3 * 3600 + 1, 600):
        w_before = pop.skims.weight
        tw.run_until(t)
        pop.refresh_skim(tw.now)
        refreshes += pop.skims.weight is not w_before
        full = np.full_like(pop.skim, np.inf)
        route_table(
            g,
            np.maximum(pop.centroid, 0),
            pop.skims.weight,
            active=act,
            next_link_out=np.empty((0, g.n_nodes), np.int32),
            dist_out=full,
        )
        np.testing.assert_array_equal(pop.skim[act], full[act])
    assert refreshes > 5
