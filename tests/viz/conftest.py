"""Run and comparison folders for the viz tests: short runs of the small city.

The comparison folder is assembled here in ``twin compare``'s format (so
these tests do not depend on it): ``summary.json`` with KPI rows and
``comparison.nc`` with a ``variant`` dim.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import xarray as xr
import yaml
from scipy import stats

from scenarios import load_scenario
from tests.twin.conftest import SMALL
from twin.cli import main
from twin.model import Twin
from twin.results import build_dataset

SHORT = dict(SMALL, time={"start": "07:00", "duration": "30min", "step": "2s"})
#: links marked as intervened in the synthetic comparison and the "extras" run
INTERVENED = [3, 40]


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory):
    """A run folder written by ``twin run`` (30 min, 6 output intervals)."""
    base = tmp_path_factory.mktemp("viz-run")
    (base / "s.yaml").write_text(yaml.safe_dump(SHORT))
    out = base / "run"
    assert main(["run", str(base / "s.yaml"), "--out", str(out), "-q"]) == 0
    return out


@pytest.fixture(scope="session")
def run_extras_dir(run_dir, tmp_path_factory):
    """The same run with the variables later components add: incidents and intervened links."""
    out = tmp_path_factory.mktemp("viz-extras") / "run"
    shutil.copytree(run_dir, out)
    with xr.open_dataset(out / "results.nc", engine="h5netcdf") as ds:
        ds = ds.load()
    flag = np.zeros(ds.sizes["link"], dtype=np.int8)
    flag[INTERVENED] = 1
    ds["link_intervened"] = ("link", flag, {"units": "1", "long_name": "an intervention changed the link"})
    # as the emergency component writes them: nodes by source id, stage times, stations
    stages = ["occurred", "reported", "on_scene", "road_cleared", "cleared"]
    times = np.array(
        [
            [0.0, 60.0, 300.0, np.nan, np.nan],  # open all run long
            [100.0, 160.0, 400.0, 5000.0, 1500.0],  # road blocked until after the run
            [1300.0, 1360.0, np.nan, np.nan, np.nan],  # occurs at 07:21:40
            [10.0, 70.0, 200.0, np.nan, 600.0],  # over by 07:10
        ]
    )
    src = ds["link_src"].values
    ds = ds.assign_coords(incident=np.arange(4), stage=stages, station=np.arange(3))
    ds["incident_time"] = (("incident", "stage"), times)
    ds["incident_type"] = ("incident", np.array(["traffic_crash", "fire", "medical", "medical"]))
    ds["incident_node"] = ("incident", src[[10, 60, 120, 150]])
    ds["station_node"] = ("station", src[[0, 100, 200]])
    ds["station_kind"] = ("station", np.array(["fire", "fire", "tow"]))
    ds["station_in_service_end"] = ("station", np.array([1, 0, 1], dtype=np.int8))
    ds.to_netcdf(out / "results.nc", engine="h5netcdf")
    return out


def _run(doc: dict, seed: int) -> xr.Dataset:
    twin = Twin(load_scenario(doc, overrides={"seed": seed}))
    twin.run()
    return build_dataset(twin)


@pytest.fixture(scope="session")
def variant_runs():
    """Two replications (seeds 1, 2) of a baseline and of a scenario with 50% more trips."""
    more = dict(SHORT, demand={"gravity": {"total_trips": 4500}})
    seeds = [1, 2]
    return seeds, [_run(SHORT, s) for s in seeds], [_run(more, s) for s in seeds]


def write_comparison(out, seeds, base: list[xr.Dataset], scen: list[xr.Dataset], *, intervened=()) -> dict:
    """Write a comparison folder in ``twin compare``'s format; returns its summary."""
    out.mkdir(parents=True, exist_ok=True)
    from twin.results import kpi_labels

    labels = kpi_labels()
    rows = []
    for key in ("trips_total", "trips_completed", "mean_travel_time_s", "mean_network_speed_kmh", "no_route"):
        b = np.array([float(d.attrs[f"kpi_{key}"]) for d in base])
        s = np.array([float(d.attrs[f"kpi_{key}"]) for d in scen])
        diff = s - b
        n = diff.size
        half = stats.t.ppf(0.975, n - 1) * diff.std(ddof=1) / np.sqrt(n)
        lo, hi = diff.mean() - half, diff.mean() + half
        label, unit = labels[key]
        rows.append(
            {
                "key": key,
                "label": label,
                "unit": unit,
                "baseline": b.mean(),
                "scenario": s.mean(),
                "difference": diff.mean(),
                "ci_low": lo,
                "ci_high": hi,
                "significant": bool(lo > 0 or hi < 0),
            }
        )
    summary = {
        "kind": "comparison",
        "baseline": "small",
        "scenario": "small-more-trips",
        "replications": len(seeds),
        "seeds": seeds,
        "kpis": rows,
        "intervened_links": list(intervened),
    }
    geometry = [c for c in base[0].coords if "trip" not in base[0].coords[c].dims]

    def stack(name, over_reps):
        per_variant = []
        for group in (base, scen):
            arr = xr.concat([d[name] for d in group], dim="replication")
            per_variant.append(arr.mean("replication") if over_reps else arr)
        return xr.concat(per_variant, dim="variant")

    # trips differ in number between variants (a demand change): pad with NaN (not a trip)
    n_trip = max(d.sizes["trip"] for d in base + scen)
    tt = np.full((2, len(seeds), n_trip), np.nan)
    for v, group in enumerate((base, scen)):
        for r, d in enumerate(group):
            tt[v, r, : d.sizes["trip"]] = d["trip_travel_time_s"].values
    ds = xr.Dataset(
        {
            "link_speed": stack("link_speed", True),
            "link_outflow": stack("link_outflow", True),
            "network_vehicles": stack("network_vehicles", False),
            "trips_arrived": stack("trips_arrived", False),
            "trip_travel_time_s": (("variant", "replication", "trip"), tt),
        },
        coords={c: base[0].coords[c] for c in geometry},
    )
    ds = ds.assign_coords(variant=["baseline", "scenario"], replication=np.arange(len(seeds)))
    ds.attrs.update({"city": base[0].attrs["city"]})  # no start_clock_s: the clock coordinate tells it
    ds.to_netcdf(out / "comparison.nc", engine="h5netcdf")
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


@pytest.fixture(scope="session")
def comparison_dir(variant_runs, tmp_path_factory):
    seeds, base, scen = variant_runs
    out = tmp_path_factory.mktemp("viz-cmp") / "cmp"
    write_comparison(out, seeds, base, scen, intervened=INTERVENED)
    return out


@pytest.fixture(scope="session")
def identical_comparison_dir(variant_runs, tmp_path_factory):
    """Baseline and scenario the same runs: every difference is zero."""
    seeds, base, _ = variant_runs
    out = tmp_path_factory.mktemp("viz-same") / "cmp"
    write_comparison(out, seeds, base, base)
    return out
