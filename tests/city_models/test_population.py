"""Population synthesis, zone files and day plans."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from city_models import load_city
from city_models.plans import MAX_LEGS, P_HOME, P_OTHER, P_SCHOOL, P_WORK, PlanParams, make_plans
from city_models.population import (
    AGE_ADULT,
    AGE_PRESCHOOL,
    AGE_SCHOOL,
    AGE_SENIOR,
    PopulationError,
    SynthesisParams,
    doubly_constrained_integer,
    read_zone_file,
    synthesize_population,
)
from city_models.synthetic import allocate_integer


@pytest.fixture(scope="module")
def city():
    return load_city(
        {"synthetic": {"blocks_x": 9, "blocks_y": 9, "zone_blocks": 3, "residents": 30000, "jobs": 20000}}, seed=2
    )


@pytest.fixture(scope="module")
def pop(city):
    return synthesize_population(city.zones, rng=np.random.default_rng(7))


def test_zone_totals_exactly(city, pop):
    np.testing.assert_array_equal(np.bincount(pop.home_zone, minlength=city.zones.n_zones), city.zones.residents)
    np.testing.assert_array_equal(pop.zone_persons, city.zones.residents)
    # homes lie in their zone, and a household shares one home
    assert np.all(city.zones.node_zone[pop.home_node] == pop.home_zone)
    assert np.all(pop.home_node == np.repeat(pop.hh_node, pop.hh_size))


def test_scaled_and_fixed_totals_exact(city):
    half = synthesize_population(city.zones, rng=np.random.default_rng(1), scale=0.5)
    assert half.n_persons == 15000
    np.testing.assert_array_equal(half.zone_persons, allocate_integer(15000, city.zones.residents.astype(float)))
    np.testing.assert_array_equal(np.bincount(half.home_zone, minlength=city.zones.n_zones), half.zone_persons)
    some = synthesize_population(city.zones, rng=np.random.default_rng(1), persons=1234)
    assert some.n_persons == 1234


def test_household_sizes_within_tolerance(pop):
    target = np.array(SynthesisParams().household_sizes)
    target = target / target.sum()
    got = np.bincount(pop.hh_size, minlength=target.size + 1)[1 : target.size + 1] / pop.n_households
    # multinomial noise plus one cut household per zone
    np.testing.assert_allclose(got, target, atol=0.015)
    assert pop.hh_size.min() >= 1 and pop.hh_size.max() <= target.size
    mean_target = float(np.dot(np.arange(1, target.size + 1), target))
    assert abs(pop.hh_size.mean() - mean_target) < 0.05


def test_age_groups_and_roles(pop):
    shares = np.bincount(pop.age_group, minlength=4) / pop.n_persons
    np.testing.assert_allclose(shares, SynthesisParams().age_shares, atol=1.0 / pop.n_persons)
    heads = pop.hh_first[:-1]
    assert np.all(pop.age_group[heads] >= AGE_ADULT)  # children never head a household
    assert not np.any(pop.worker & (pop.age_group < AGE_ADULT))
    np.testing.assert_array_equal(pop.student, pop.age_group == AGE_SCHOOL)
    assert not np.any(pop.car & (pop.age_group < AGE_ADULT))  # children do not drive
    adults = pop.age_group == AGE_ADULT
    assert abs(pop.worker[adults].mean() - 0.72) < 0.02
    assert abs(pop.hh_car.mean() - 0.65) < 0.03
    assert np.all(pop.vot > 0)
    assert np.median(pop.vot[pop.worker]) > np.median(pop.vot[~pop.worker])
    # seniors mostly in small households
    size = np.repeat(pop.hh_size, pop.hh_size)
    assert np.mean(size[pop.age_group == AGE_SENIOR] <= 2) > np.mean(size[adults] <= 2)


def test_workplaces_fill_jobs_exactly(city, pop):
    w = pop.worker
    assert np.all(pop.work_zone[w] >= 0) and np.all(pop.work_zone[~w] == -1)
    expect = allocate_integer(int(w.sum()), city.zones.jobs.astype(float))
    np.testing.assert_array_equal(np.bincount(pop.work_zone[w], minlength=city.zones.n_zones), expect)
    assert np.all(city.zones.node_zone[pop.work_node[w]] == pop.work_zone[w])
    s = pop.student
    assert np.all(city.zones.node_zone[pop.school_node[s]] == pop.school_zone[s])
    # distance decay: most commutes are shorter than a random job's distance
    d = np.hypot(
        city.zones.x[pop.home_zone[w]] - city.zones.x[pop.work_zone[w]],
        city.zones.y[pop.home_zone[w]] - city.zones.y[pop.work_zone[w]],
    )
    shuffled = np.random.default_rng(0).permutation(pop.work_zone[w])
    d0 = np.hypot(
        city.zones.x[pop.home_zone[w]] - city.zones.x[shuffled], city.zones.y[pop.home_zone[w]] - city.zones.y[shuffled]
    )
    assert d.mean() < d0.mean()


def test_deterministic_given_seed(city):
    a = synthesize_population(city.zones, rng=np.random.default_rng(3))
    b = synthesize_population(city.zones, rng=np.random.default_rng(3))
    c = synthesize_population(city.zones, rng=np.random.default_rng(4))
    for f in a._fields:
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f)
    assert not np.array_equal(a.hh_node, c.hh_node)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 6), st.integers(1, 6), st.integers(0, 10_000))
def test_doubly_constrained_margins_exact(nr, nc, seed):
    rng = np.random.default_rng(seed)
    total = int(rng.integers(0, 500))
    rows = allocate_integer(total, rng.random(nr) * (rng.random(nr) > 0.2))
    cols = allocate_integer(total, rng.random(nc) * (rng.random(nc) > 0.2))
    m = doubly_constrained_integer(rows, cols, np.exp(-rng.random((nr, nc)) * 3))
    assert m.min() >= 0
    np.testing.assert_array_equal(m.sum(1), rows)
    np.testing.assert_array_equal(m.sum(0), cols)


def test_bad_parameters_named():
    with pytest.raises(PopulationError, match="employment_rate"):
        SynthesisParams(employment_rate=1.5).check()
    with pytest.raises(PopulationError, match="18 or over"):
        SynthesisParams(age_shares=(0.5, 0.5, 0.0, 0.0)).check()


# ------------------------------------------------------------------------ zone files


def test_csv_zone_file(tmp_path, city):
    net = city.network
    f = tmp_path / "zones.csv"
    mid = float(np.median(net.x))
    f.write_text(
        f"zone,residents,jobs,schools,x,y\nwest,1000,300,50,{net.x.min()},{net.y.mean()}\n"
        f"east,500,900,,{net.x.max()},{net.y.mean()}\n"
    )
    table = read_zone_file(f, net)
    z = table.zones
    assert z.name == ("west", "east")
    np.testing.assert_array_equal(z.residents, [1000, 500])
    np.testing.assert_array_equal(table.schools, [50, 0])
    assert np.all(z.node_zone[net.x < mid - 300] == 0) and np.all(z.node_zone[net.x > mid + 300] == 1)
    pop = synthesize_population(table, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(np.bincount(pop.home_zone), [1000, 500])


def test_geojson_polygons(tmp_path, city):
    net = city.network
    lon0, lon1 = float(net.lon.min()), float(net.lon.max())
    lat0, lat1 = float(net.lat.min()), float(net.lat.max())
    mid = (lon0 + lon1) / 2
    pad = 1e-3

    def box(a, b):
        return {
            "type": "Polygon",
            "coordinates": [[[a, lat0 - pad], [b, lat0 - pad], [b, lat1 + pad], [a, lat1 + pad], [a, lat0 - pad]]],
        }

    doc = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"name": "W", "residents": 700, "jobs": 100},
                "geometry": box(lon0 - pad, mid),
            },
            {
                "type": "Feature",
                "properties": {"name": "E", "residents": 300, "jobs": 500},
                "geometry": box(mid, lon1 + pad),
            },
        ],
    }
    f = tmp_path / "z.geojson"
    f.write_text(json.dumps(doc))
    z = read_zone_file(f, net).zones
    assert np.all(z.node_zone[net.lon < mid] == 0) and np.all(z.node_zone[net.lon > mid] == 1)
    pop = synthesize_population(z, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(np.bincount(pop.home_zone), [700, 300])
    # a polygon away from the network: its residents have nowhere to live
    doc["features"][1]["geometry"] = box(lon1 + 1.0, lon1 + 2.0)
    f.write_text(json.dumps(doc))
    with pytest.raises(PopulationError, match="no network node: 'E' \\(300 persons\\)"):
        synthesize_population(read_zone_file(f, net).zones, rng=np.random.default_rng(0))


@pytest.mark.parametrize(
    "text, match",
    [
        ("zone,residents,x,y\na,1,0,0\n", "lacks column.*jobs"),
        ("zone,residents,jobs\na,1,2\n", r"x, y \(or lon, lat\)"),
        ("zone,residents,jobs,x,y\na,many,2,0,0\n", r"row 1 \(line 2\).*'residents' is not a number"),
        ("zone,residents,jobs,x,y\na,1.5,2,0,0\n", "whole number"),
        ("zone,residents,jobs,x,y\na,1,2,0,0\na,1,2,5,5\n", "names repeat: a"),
    ],
)
def test_csv_errors_name_the_problem(tmp_path, city, text, match):
    f = tmp_path / "bad.csv"
    f.write_text(text)
    with pytest.raises(PopulationError, match=match):
        read_zone_file(f, city.network)


def test_geojson_errors(tmp_path, city):
    f = tmp_path / "bad.geojson"
    f.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "properties": {"name": "A", "jobs": 1},
                        "geometry": {"type": "Point", "coordinates": [24.9, 60.1]},
                    }
                ],
            }
        )
    )
    with pytest.raises(PopulationError, match="feature 0 \\('A'\\): property 'residents' is missing"):
        read_zone_file(f, city.network)
    f.write_text("{not json")
    with pytest.raises(PopulationError, match="could not be read as JSON"):
        read_zone_file(f, city.network)
    with pytest.raises(PopulationError, match="does not exist"):
        read_zone_file(tmp_path / "none.csv", city.network)


# ------------------------------------------------------------------------------ plans


def test_plans_follow_the_templates(pop):
    plans = make_plans(pop, rng=np.random.default_rng(5))
    n = plans.n_legs.astype(np.int64)
    has = n > 0
    assert np.all(n <= MAX_LEGS)
    last = plans.purpose[np.flatnonzero(has), n[has] - 1]
    assert np.all(last == P_HOME)  # every day ends at home
    assert np.all(np.isinf(plans.duration[np.flatnonzero(has), n[has] - 1]))
    assert np.all(plans.purpose[pop.worker, 0] == P_WORK)
    pupils = pop.student & ~pop.worker
    assert np.all(plans.purpose[pupils, 0] == P_SCHOOL)
    assert np.all(n[pop.age_group == AGE_PRESCHOOL] == 0)
    rest = (pop.age_group >= AGE_ADULT) & ~pop.worker
    assert abs(has[rest].mean() - PlanParams().out_share) < 0.03
    assert np.all(plans.purpose[rest & has, 0] == P_OTHER)
    # no two homes in a row, every tour leaves home
    for k in range(MAX_LEGS - 1):
        both = (plans.purpose[:, k] == P_HOME) & (plans.purpose[:, k + 1] == P_HOME)
        assert not both.any()
    t = plans.first_depart[pop.worker]
    assert abs(np.mean(t) - 7.75 * 3600) < 300 and np.all((t >= 0) & (t < 86400))
    # about three trips a person, as in travel surveys
    assert 2.4 < plans.n_trips / pop.n_persons < 3.4
    # durations are at least their minimum
    assert np.all(plans.duration[pop.worker, 0] >= 3600)


def test_plans_deterministic(pop):
    a = make_plans(pop, rng=np.random.default_rng(5))
    b = make_plans(pop, rng=np.random.default_rng(5))
    for f in a._fields:
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
