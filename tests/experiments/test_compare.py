"""Baseline vs scenario: paired t-intervals, common random numbers, the comparison folder."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr
from scipy import stats

from experiments.compare import (
    Comparison,
    ComparisonError,
    compare,
    paired_difference,
    run_replication,
    write_comparison,
)
from experiments.replication import _intervened_links
from scenarios import ScenarioError, load_scenario
from tests.experiments.conftest import TINY, tiny

ROW_KEYS = {"key", "label", "unit", "baseline", "scenario", "difference", "ci_low", "ci_high", "significant"}


# ---------------------------------------------------------------- statistics


def test_interval_matches_scipy_t_on_known_numbers():
    b = np.array([10.0, 12.5, 9.0, 11.0, 13.5, 10.5])
    s = np.array([11.2, 13.0, 10.1, 11.4, 15.0, 10.9])
    d = s - b
    lo, hi = stats.t.interval(0.95, d.size - 1, loc=d.mean(), scale=stats.sem(d))
    r = paired_difference(b, s)
    assert r.n == 6 and r.difference == pytest.approx(d.mean(), rel=1e-12)
    assert (r.ci_low, r.ci_high) == (pytest.approx(lo, rel=1e-12), pytest.approx(hi, rel=1e-12))
    assert r.baseline == pytest.approx(b.mean()) and r.scenario == pytest.approx(s.mean())
    assert r.significant and lo > 0
    # 90 % is narrower; the hand formula with a tabulated t value (t_0.975,5 = 2.5706)
    r90 = paired_difference(b, s, confidence=0.90)
    assert r.ci_low < r90.ci_low < r90.ci_high < r.ci_high
    assert r.ci_high - r.difference == pytest.approx(2.5706 * d.std(ddof=1) / np.sqrt(6), rel=1e-4)


def test_interval_containing_zero_is_not_significant():
    r = paired_difference(np.array([1.0, 2.0, 3.0]), np.array([1.5, 1.0, 3.4]))
    assert r.ci_low < 0 < r.ci_high and not r.significant


def test_identical_pairs_and_constant_shift():
    x = np.array([3.0, 7.0, 5.0])
    same = paired_difference(x, x.copy())
    assert (same.difference, same.ci_low, same.ci_high, same.significant) == (0.0, 0.0, 0.0, False)
    shift = paired_difference(x, x - 2.0)
    assert (shift.difference, shift.ci_low, shift.ci_high, shift.significant) == (-2.0, -2.0, -2.0, True)


def test_nan_pairs_left_out_and_too_few_pairs():
    r = paired_difference(np.array([1.0, np.nan, 3.0, 2.0]), np.array([2.0, 5.0, np.nan, 2.5]))
    assert r.n == 2 and r.difference == pytest.approx(0.75)
    one = paired_difference(np.array([1.0, np.nan]), np.array([2.0, 1.0]))
    assert one.n == 1 and np.isnan(one.ci_low) and not one.significant
    with pytest.raises(ValueError, match="equal length"):
        paired_difference(np.zeros(3), np.zeros(4))


# ---------------------------------------------------------------- comparisons


@pytest.fixture(scope="module")
def identical(tmp_path_factory):
    out = tmp_path_factory.mktemp("cmp") / "same"
    return compare(TINY, TINY, replications=3, workers=0, out=out)


def test_identical_scenarios_every_difference_zero_not_significant(identical):
    s = identical.summary
    assert s["kind"] == "comparison" and s["replications"] == 3 and s["seeds"] == [5, 6, 7]
    assert len(s["kpis"]) >= 10
    for row in s["kpis"]:
        assert set(row) == ROW_KEYS
        assert row["difference"] == 0.0 and row["ci_low"] == 0.0 and row["ci_high"] == 0.0, row["key"]
        assert row["significant"] is False
        assert row["baseline"] == row["scenario"]
    ds = identical.dataset
    for name in ("link_speed", "link_outflow", "network_vehicles", "trips_arrived", "trip_travel_time_s"):
        a, b = ds[name].sel(variant="baseline").values, ds[name].sel(variant="scenario").values
        np.testing.assert_array_equal(a, b, err_msg=name)
    assert s["intervened_links"] == []
    # replications differ from one another (the seeds do something)
    tt = ds.kpi_mean_travel_time_s.sel(variant="baseline").values
    assert np.unique(tt).size == 3


def test_comparison_folder_format(identical):
    out = identical.out
    assert sorted(p.name for p in out.iterdir()) == [
        ".city-twin.json",  # the twin's folder marker (issue 15)
        "baseline",
        "comparison.nc",
        "scenario",
        "summary.json",
    ]
    summary = json.loads((out / "summary.json").read_text())
    assert {
        "kind",
        "baseline",
        "scenario",
        "replications",
        "seeds",
        "kpis",
        "intervened_links",
        "wall_s",
        "workers",
    } <= set(summary)
    assert summary["baseline"] == summary["scenario"] == "tiny" and summary["workers"] == 1
    for variant in ("baseline", "scenario"):
        assert {p.name for p in (out / variant).iterdir()} == {
            "results.nc",
            "scenario.yaml",
            "summary.json",
            ".city-twin.json",
        }
    run0 = json.loads((out / "baseline" / "summary.json").read_text())
    assert run0["seed"] == 5
    with (
        xr.open_dataset(out / "comparison.nc", engine="h5netcdf") as ds,
        xr.open_dataset(out / "baseline" / "results.nc", engine="h5netcdf") as r0,
    ):
        assert list(ds.variant.values) == ["baseline", "scenario"]
        assert ds.sizes["replication"] == 3 and list(ds.seed.values) == [5, 6, 7]
        assert ds.link_speed.dims == ("variant", "time", "link")
        assert ds.link_outflow.dims == ("variant", "time", "link")
        assert ds.network_vehicles.dims == ("variant", "replication", "time")
        assert ds.trips_arrived.dims == ("variant", "replication", "time")
        assert ds.trip_travel_time_s.dims == ("variant", "replication", "trip")
        assert ds.kpi_vehicle_hours.dims == ("variant", "replication")
        for name, var in {**ds.data_vars, **ds.coords}.items():
            assert var.attrs.get("units") is not None and var.attrs.get("long_name"), name
        for attr in ("baseline_scenario_hash", "scenario_scenario_hash", "seeds", "package_version"):
            assert attr in ds.attrs
        assert ds.attrs["baseline_scenario_hash"] == r0.attrs["scenario_hash"]
        # geometry is the run's, coordinate for coordinate
        for name in ("link_x0", "link_y1", "link_name", "node_x", "zone_x", "facility_kind", "link_length_m"):
            np.testing.assert_array_equal(ds[name].values, r0[name].values, err_msg=name)
        # replication 0 of the comparison is the run folder's run
        assert ds.kpi_vehicle_hours.sel(variant="baseline", replication=0) == pytest.approx(
            run0["kpis"]["vehicle_hours"]
        )
        np.testing.assert_array_equal(ds.network_vehicles.sel(variant="baseline", replication=0), r0.network_vehicles)
        # link means are means over replications
        assert ds.link_speed.shape[1:] == r0.link_speed.shape


def test_more_demand_is_significant_with_the_right_sign_on_the_cluster(cluster, identical):
    # (six times the demand: route choice spreads four times the demand over the tiny
    # city's streets with mean travel times only 2-6 s longer, too little for 3 replications)
    more = tiny(name="busy", demand={"gravity": {"total_trips": 9000}})
    c = compare(TINY, more, replications=3, executor=cluster)
    assert c.summary["workers"] == 2 and c.summary["scenario"] == "busy"
    for key in ("trips_total", "vehicle_km", "vehicle_hours", "total_delay_h", "mean_travel_time_s"):
        row = c.kpi(key)
        assert row["significant"] and row["ci_low"] > 0 and row["difference"] > 0, row
    assert c.kpi("trips_total")["difference"] == 7500
    assert c.kpi("mean_network_speed_kmh")["difference"] < 0
    # the baseline replications are the same runs as in the serial comparison (same seeds)
    np.testing.assert_array_equal(
        c.dataset.kpi_vehicle_hours.sel(variant="baseline").values,
        identical.dataset.kpi_vehicle_hours.sel(variant="baseline").values,
    )
    # trip tables differ in size: per-variant rows padded with NaN
    tt = c.dataset.trip_travel_time_s
    assert tt.sizes["trip"] == 9000 and c.dataset.attrs["same_trips"] == 0
    assert np.isnan(tt.sel(variant="baseline").values[:, 1500:]).all()


def test_cluster_and_serial_give_identical_results(cluster, identical):
    c = compare(TINY, TINY, replications=3, executor=cluster)
    for name in identical.dataset.data_vars:
        np.testing.assert_array_equal(c.dataset[name].values, identical.dataset[name].values, err_msg=name)
    assert [r["baseline"] for r in c.summary["kpis"]] == [r["baseline"] for r in identical.summary["kpis"]]


# ---------------------------------------------------------------- writing


def test_folder_replaced_atomically(identical, tmp_path, monkeypatch):
    out = tmp_path / "cmp"
    out.mkdir()
    (out / "stale.txt").write_text("from an older comparison")
    # a folder the twin wrote (only those are replaced: issue 15)
    (out / ".city-twin.json").write_text(json.dumps({"format": "city-twin folder", "kind": "comparison"}))
    write_comparison(identical, out)
    assert not (out / "stale.txt").exists() and (out / "summary.json").exists()
    before = (out / "summary.json").read_text()

    broken = Comparison(
        summary=dict(identical.summary, wall_s=-1.0), dataset=identical.dataset, run_files=identical.run_files
    )

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(xr.Dataset, "to_netcdf", fail)
    with pytest.raises(OSError, match="disk full"):
        write_comparison(broken, out)
    assert (out / "summary.json").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cmp"]  # no temporary folder left
    monkeypatch.undo()
    with pytest.raises(NotADirectoryError, match="not a folder"):
        write_comparison(identical, out / "summary.json")


# ---------------------------------------------------------------- bad input


def test_fewer_than_two_replications():
    with pytest.raises(ComparisonError, match="at least 2"):
        compare(TINY, TINY, replications=1, workers=0)


def test_missing_scenario_file(tmp_path):
    with pytest.raises(ScenarioError, match="nowhere.yaml"):
        compare(TINY, tmp_path / "nowhere.yaml", replications=2, workers=0)


def test_other_network_or_time_axis_refused():
    other_city = tiny(city={"synthetic": {"blocks_x": 6, "blocks_y": 5}})
    with pytest.raises(ComparisonError, match="road networks differ"):
        compare(TINY, other_city, replications=2, workers=0)
    longer = tiny(time={"start": "07:00", "duration": "1h", "step": "2s"})
    with pytest.raises(ComparisonError, match="time sections differ"):
        compare(TINY, longer, replications=2, workers=0)


def test_worker_seeing_other_files_is_refused():
    with pytest.raises(ComparisonError, match="differs on the worker"):
        run_replication(load_scenario(TINY).resolved(), 1, variant="scenario", index=1, expect_hash="0" * 16)


def test_intervened_links_read_from_results():
    ds = xr.Dataset({"link_intervened": (("time", "link"), np.array([[0, 0, 1, 0], [1, 0, 0, 0]]))})
    assert _intervened_links(ds) == [0, 2]
    assert _intervened_links(xr.Dataset({"link_intervened": ("link", [False, True, True])})) == [1, 2]
    assert _intervened_links(xr.Dataset()) == []
