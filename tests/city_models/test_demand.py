"""city_models.demand: CSV trips and the gravity model."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from city_models.demand import (
    DEFAULT_HOURLY_PROFILE,
    DemandError,
    Trips,
    gravity_trips,
    read_trips_csv,
    write_trips_csv,
)
from city_models.network import make_network


def _grid_network(nx: int = 4, ny: int = 3):
    idx = np.arange(nx * ny).reshape(ny, nx)
    a, b = idx[:, :-1].ravel(), idx[:, 1:].ravel()
    src = np.concatenate([a, b])
    dst = np.concatenate([b, a])
    xs, ys = np.meshgrid(np.arange(nx) * 100.0, np.arange(ny) * 100.0)
    return make_network(
        x=xs.ravel(),
        y=ys.ravel(),
        src=src,
        dst=dst,
        length_m=np.full(src.size, 100.0),
        lanes=1.0,
        free_speed_mps=10.0,
        node_osmid=1000 + 7 * np.arange(nx * ny),
    )


NET = _grid_network()
OSM = NET.node_osmid


def _write(tmp_path: Path, text: str, name: str = "trips.csv") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


# ----------------------------------------------------------------------- CSV


def test_read_maps_source_ids_and_sorts(tmp_path):
    p = _write(
        tmp_path,
        f"trip_id,origin,destination,depart_s,extra\n"
        f"10,{OSM[0]},{OSM[5]},30.5,x\n"
        f"11,{OSM[3]},{OSM[1]},10,y\n"
        f"12,{OSM[2]},{OSM[4]},30.5,z\n",
    )
    t = read_trips_csv(p, NET)
    assert isinstance(t, Trips) and t.n_trips == 3
    assert t.trip_id.tolist() == [11, 10, 12]  # stable sort by depart_s
    assert t.origin.tolist() == [3, 0, 2] and t.destination.tolist() == [1, 5, 4]
    assert t.depart_s.tolist() == [10.0, 30.5, 30.5]
    assert (t.trip_id.dtype, t.origin.dtype, t.destination.dtype, t.depart_s.dtype) == (
        np.int64,
        np.int32,
        np.int32,
        np.float64,
    )


def test_round_trip(tmp_path):
    rng = np.random.default_rng(5)
    n = 200
    o = rng.integers(0, NET.n_nodes, n)
    d = (o + rng.integers(1, NET.n_nodes, n)) % NET.n_nodes
    dep = np.sort(rng.uniform(0, 3600, n))
    trips = Trips(np.arange(n, dtype=np.int64) * 3 + 2**40, o.astype(np.int32), d.astype(np.int32), dep)
    p = tmp_path / "sub" / "t.csv"
    write_trips_csv(trips, NET, p)
    back = read_trips_csv(p, NET)
    for f in Trips._fields:
        np.testing.assert_array_equal(getattr(back, f), getattr(trips, f))
    assert list(p.parent.iterdir()) == [p]  # no temporary file left behind


def test_empty_table_and_duration(tmp_path):
    t = read_trips_csv(_write(tmp_path, "trip_id,origin,destination,depart_s\n"), NET)
    assert t.n_trips == 0 and t.origin.dtype == np.int32 and t.depart_s.dtype == np.float64
    p = _write(tmp_path, f"trip_id,origin,destination,depart_s\n1,{OSM[0]},{OSM[1]},5\n2,{OSM[0]},{OSM[1]},500\n\n")
    assert read_trips_csv(p, NET, duration_s=100).trip_id.tolist() == [1]
    assert read_trips_csv(p, NET).n_trips == 2


def _err(tmp_path, text) -> str:
    p = _write(tmp_path, text)
    with pytest.raises(DemandError) as info:
        read_trips_csv(p, NET)
    msg = str(info.value)
    assert str(p) in msg and "\n" not in msg
    assert isinstance(info.value, ValueError)
    return msg


H = "trip_id,origin,destination,depart_s\n"


def test_missing_file(tmp_path):
    with pytest.raises(DemandError, match=re.escape(str(tmp_path / "nope.csv")) + ".*does not exist"):
        read_trips_csv(tmp_path / "nope.csv", NET)


def test_empty_file(tmp_path):
    assert "is empty" in _err(tmp_path, "")


def test_missing_columns(tmp_path):
    msg = _err(tmp_path, "trip_id,from,destination\n1,2,3\n")
    assert "lacks the column(s) origin, depart_s" in msg and "from" in msg


@pytest.mark.parametrize(
    "row, field, needle",
    [
        ("1,abc,{d},5", "origin", "not a number"),
        ("x1,{o},{d},5", "trip_id", "not a number"),
        ("1,{o},{d},soon", "depart_s", "not a number"),
        ("1,{o},,5", "destination", "missing value"),
        ("1,{o},{d},", "depart_s", "missing value"),
        ("1.5,{o},{d},5", "trip_id", "not a whole number"),
        ("1,{o},{d},-3", "depart_s", "negative"),
        ("1,{o},{d},inf", "depart_s", "negative or infinite"),
        ("1,{o},{o},5", "destination", "origin node as destination"),
        ("1,999999,{d},5", "origin", "not in the network"),
        ("1,{o},42,5", "destination", "not in the network"),
    ],
)
def test_bad_values_name_row_line_and_field(tmp_path, row, field, needle):
    good = f"7,{OSM[1]},{OSM[2]},1\n"
    msg = _err(tmp_path, H + good + row.format(o=OSM[0], d=OSM[3]) + "\n")
    assert needle in msg
    assert f"field {field!r}" in msg
    assert "row 2 (line 3)" in msg


def test_unknown_nodes_listed_with_count(tmp_path):
    rows = "".join(f"{i},{5 + i},{OSM[1]},{i}\n" for i in range(9))
    msg = _err(tmp_path, H + rows)
    assert "9 rows" in msg and "and 4 more" in msg
    assert "row 1 (line 2) origin=5" in msg and "row 5 (line 6) origin=9" in msg
    assert "node_osmid" in msg


def test_duplicate_trip_id(tmp_path):
    msg = _err(tmp_path, H + f"4,{OSM[0]},{OSM[1]},1\n5,{OSM[0]},{OSM[1]},1\n4,{OSM[2]},{OSM[1]},2\n")
    assert "duplicate trip id" in msg and "field 'trip_id'" in msg
    assert "row 3 (line 4)" in msg and "first used at row 1 (line 2)" in msg


def test_blank_line_inside_table(tmp_path):
    msg = _err(tmp_path, H + f"1,{OSM[0]},{OSM[1]},1\n\n2,{OSM[0]},{OSM[1]},1\n")
    assert "blank line" in msg and "row 2 (line 3)" in msg


# ------------------------------------------------------------------- gravity


def _city(seed: int = 0, z: int = 25, per_zone: int = 8):
    """z zones on a 5 km grid, ``per_zone`` nodes around each centroid."""
    rng = np.random.default_rng(seed)
    side = int(np.sqrt(z))
    zx, zy = (a.ravel() * 2000.0 for a in np.meshgrid(np.arange(side), np.arange(side)))
    node_zone = np.repeat(np.arange(z, dtype=np.int32), per_zone)
    node_x = zx[node_zone] + rng.uniform(-500, 500, node_zone.size)
    node_y = zy[node_zone] + rng.uniform(-500, 500, node_zone.size)
    residents = rng.integers(100, 5000, z)
    jobs = rng.integers(100, 5000, z)
    return dict(node_zone=node_zone, residents=residents, jobs=jobs, zone_x=zx, zone_y=zy, node_x=node_x, node_y=node_y)


def test_gravity_deterministic_and_exact_count():
    city = _city()
    a = gravity_trips(**city, rng=np.random.default_rng(1), total_trips=5001, duration_s=7200.0)
    b = gravity_trips(**city, rng=np.random.default_rng(1), total_trips=5001, duration_s=7200.0)
    c = gravity_trips(**city, rng=np.random.default_rng(2), total_trips=5001, duration_s=7200.0)
    for f in Trips._fields:
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
    assert not np.array_equal(a.origin, c.origin) and not np.array_equal(a.depart_s, c.depart_s)
    assert a.n_trips == 5001
    assert a.trip_id.tolist() == list(range(5001))
    assert np.all(np.diff(a.depart_s) >= 0)
    assert a.depart_s.min() >= 0 and a.depart_s.max() < 7200.0
    assert np.all(a.origin != a.destination)
    assert (a.trip_id.dtype, a.origin.dtype, a.destination.dtype, a.depart_s.dtype) == (
        np.int64,
        np.int32,
        np.int32,
        np.float64,
    )


def test_gravity_productions_and_attractions_follow_zones():
    city = _city(3)
    n = 400_000
    t = gravity_trips(**city, rng=np.random.default_rng(0), total_trips=n, duration_s=86400.0)
    nz = city["node_zone"]
    prod = np.bincount(nz[t.origin], minlength=25) / n
    attr = np.bincount(nz[t.destination], minlength=25) / n
    np.testing.assert_allclose(prod, city["residents"] / city["residents"].sum(), atol=0.003)
    np.testing.assert_allclose(attr, city["jobs"] / city["jobs"].sum(), atol=0.003)


def test_gravity_trips_decay_with_distance():
    city = _city(4)
    kw = dict(**city, total_trips=100_000, duration_s=3600.0)
    x, y = city["node_x"], city["node_y"]

    def mean_km(t):
        return np.hypot(x[t.origin] - x[t.destination], y[t.origin] - y[t.destination]).mean() / 1000

    strong = mean_km(gravity_trips(**kw, rng=np.random.default_rng(0), beta_per_km=1.0))
    default = mean_km(gravity_trips(**kw, rng=np.random.default_rng(0)))
    flat = mean_km(gravity_trips(**kw, rng=np.random.default_rng(0), beta_per_km=0.0))
    rng = np.random.default_rng(0)
    o = rng.integers(0, x.size, 100_000)
    d = rng.integers(0, x.size, 100_000)
    uniform = np.hypot(x[o] - x[d], y[o] - y[d]).mean() / 1000
    assert strong < default < flat
    assert default < 0.95 * uniform
    assert strong < 0.6 * uniform


def test_gravity_departures_follow_profile():
    city = _city()
    t = gravity_trips(**city, rng=np.random.default_rng(7), total_trips=200_000, duration_s=86400.0)
    hours = np.bincount((t.depart_s // 3600).astype(int), minlength=24)
    prof = np.asarray(DEFAULT_HOURLY_PROFILE)
    np.testing.assert_allclose(hours / hours.sum(), prof / prof.sum(), atol=0.004)
    assert hours[17] > 3 * hours[3] and hours[8] > 10 * hours[2]

    # a window from 06:30 to 09:30 clock time: 08:00-09:00 is the busiest
    t = gravity_trips(
        **city, rng=np.random.default_rng(7), total_trips=60_000, duration_s=3 * 3600.0, start_s=6.5 * 3600.0
    )
    clock_h = ((t.depart_s + 6.5 * 3600.0) // 3600).astype(int)
    counts = np.bincount(clock_h, minlength=10)[6:10]
    expected = np.array([0.5 * prof[6], prof[7], prof[8], 0.5 * prof[9]])  # half hours at both ends
    np.testing.assert_allclose(counts / counts.sum(), expected / expected.sum(), atol=0.01)
    assert counts.argmax() == 2  # 08:00-09:00 is the busiest
    assert t.depart_s.max() < 3 * 3600.0

    # a custom profile, wrapping past midnight: only 23:00-24:00 carries trips
    prof = np.zeros(24)
    prof[23] = 1.0
    t = gravity_trips(
        **city, rng=np.random.default_rng(7), total_trips=1000, duration_s=7200.0, start_s=22.5 * 3600.0, profile=prof
    )
    assert t.depart_s.min() >= 1800.0 and t.depart_s.max() < 5400.0


def test_gravity_zones_without_nodes_and_single_node_zones():
    city = _city(1, z=4, per_zone=1)  # one node per zone: no intra-zone trips possible
    nz = city["node_zone"].copy()
    nz[3] = -1  # zone 3 has no node at all
    city["node_zone"] = nz
    t = gravity_trips(**city, rng=np.random.default_rng(0), total_trips=3000, duration_s=600.0)
    assert t.n_trips == 3000
    assert np.all(t.origin != t.destination)
    assert not np.isin(3, t.origin) and not np.isin(3, t.destination)
    assert np.all(nz[t.origin] != nz[t.destination])


def test_gravity_zero_trips_and_errors():
    city = _city()
    t = gravity_trips(**city, rng=np.random.default_rng(0), total_trips=0, duration_s=60.0)
    assert t.n_trips == 0 and t.origin.dtype == np.int32
    bad = [
        (dict(total_trips=-1), "'total_trips'"),
        (dict(total_trips=2.5), "'total_trips'"),
        (dict(duration_s=0.0), "'duration_s'"),
        (dict(beta_per_km=-1.0), "'beta_per_km'"),
        (dict(profile=np.array([1.0, -1.0])), "'profile'"),
        (dict(profile=np.zeros(24)), "'profile'"),
        (dict(rng=np.random.RandomState(0)), "'rng'"),
        (dict(jobs=np.ones(3, dtype=np.int64)), "'jobs' must have 25 entries"),
        (dict(residents=np.full(25, -1)), "'residents' must be >= 0"),
        (dict(node_zone=np.full(200, 30, dtype=np.int32)), "'node_zone' must hold zone indices"),
        (dict(residents=np.zeros(25, dtype=np.int64)), "no zone with nodes has residents"),
    ]
    for override, needle in bad:
        kw = dict(**city, rng=np.random.default_rng(0), total_trips=10, duration_s=60.0)
        kw.update(override)
        with pytest.raises(DemandError, match=re.escape(needle)):
            gravity_trips(**kw)
