"""Operations reports (issue 16, part 3): closures on maps, coverage, evacuation, shadow mode,
time markers and stranded trips -- each figure present, not blank, its numbers the run's.
"""

from __future__ import annotations

import io
import re
import shutil

import numpy as np
import pytest
import xarray as xr
from matplotlib.collections import LineCollection
from matplotlib.colors import to_rgba

from twin.cli import main
from viz.charts import png_bytes, speed_map_figure, timeseries_figure
from viz.coverage import coverage_figure, link_travel_times, travel_times_from
from viz.data import open_results
from viz.evacuation import clearance_s, evacuation_figure, exit_links, safe_share
from viz.live import busiest_sensors, demand_figure, open_assimilation, sensor_figure, sensor_observations
from viz.maps import CLOSURE_COLOR
from viz.report import write_report
from viz.timeaxis import time_events


def _not_blank(fig) -> bool:
    from matplotlib.image import imread

    img = imread(io.BytesIO(png_bytes(fig)))
    return img.std() > 0.05 and np.unique(img.reshape(-1, img.shape[-1]), axis=0).shape[0] > 30


def _closed_collection(fig):
    found = [c for ax in fig.axes for c in ax.collections if c.get_gid() == "closed-links"]
    return found[0] if found else None


# -- closures on the map (a copy of the short run with links marked closed) ------------------


def test_a_closed_link_is_drawn_in_the_closure_colour_not_as_free_flow(run_dir, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    with xr.open_dataset(run / "results.nc", engine="h5netcdf") as ds:
        ds = ds.load()
    closed = np.zeros((ds.sizes["time"], ds.sizes["link"]), np.int8)
    closed[:, [5, 77]] = 1
    share = np.ones(closed.shape, np.float32)
    share[:, 9] = 0.5
    ds["link_closed"] = (("time", "link"), closed)
    ds["link_capacity_share"] = (("time", "link"), share)
    ds.to_netcdf(run / "results.nc", engine="h5netcdf")
    res = open_results(run)
    fig = speed_map_figure(res, 2)
    lc = _closed_collection(fig)
    assert lc is not None and len(lc.get_segments()) == 2
    assert all(tuple(c) == to_rgba(CLOSURE_COLOR) for c in lc.get_colors())
    # the coloured layer leaves the closed links out (they would show as free-flowing)
    coloured = [c for c in fig.axes[0].collections if isinstance(c, LineCollection) and c.get_array() is not None]
    assert len(coloured[0].get_array()) == ds.sizes["link"] - 2
    assert _not_blank(fig)


# -- coverage on a hand-made network ------------------------------------------------------


def _line_network(speeds, closed=()):
    """Nodes 0-1-2-3 in a line (1 km links, both ways) and a spur 1-4; source ids 100+i."""
    pairs = [(0, 1), (1, 0), (1, 2), (2, 1), (2, 3), (3, 2), (1, 4), (4, 1), (0, 1)]  # last: a slow parallel 0->1
    n_links = len(pairs)
    speed = np.asarray(speeds, np.float64).reshape(1, n_links)
    cl = np.zeros((1, n_links), np.int8)
    cl[0, list(closed)] = 1
    xs = np.array([0.0, 1000.0, 2000.0, 3000.0, 1000.0])
    ys = np.array([0.0, 0.0, 0.0, 0.0, 1000.0])
    a = np.array([p[0] for p in pairs])
    b = np.array([p[1] for p in pairs])
    return xr.Dataset(
        {
            "link_speed": (("time", "link"), speed),
            "link_closed": (("time", "link"), cl),
            "network_vehicles": (("time",), np.array([10])),
        },
        coords={
            "time": [300.0],
            "node_osmid": ("node", 100 + np.arange(5)),
            "node_x": ("node", xs),
            "node_y": ("node", ys),
            "link_src": ("link", 100 + a),
            "link_dst": ("link", 100 + b),
            "link_length_m": ("link", np.full(n_links, 1000.0)),
            "link_free_speed": ("link", np.full(n_links, 10.0)),
            "link_x0": ("link", xs[a]),
            "link_y0": ("link", ys[a]),
            "link_x1": ("link", xs[b]),
            "link_y1": ("link", ys[b]),
            "station_kind": ("station", np.array(["fire"])),
            "station_node": ("station", np.array([100])),
            "station_in_service_end": ("station", np.array([1], np.int8)),
        },
    )


def test_coverage_reaches_what_shortest_paths_on_recorded_times_reach():
    # 10 m/s everywhere (100 s a link), the parallel 0->1 link crawls at 1 m/s
    ds = _line_network([10.0] * 8 + [1.0])
    tt = travel_times_from(ds, np.array([0]), link_travel_times(ds, 0))
    assert tt.tolist() == [0.0, 100.0, 200.0, 300.0, 200.0]  # the quick parallel link wins
    # congestion on 1->2 (2 m/s: 500 s) pushes nodes 2 and 3 beyond a 240 s target
    slow = _line_network([10.0, 10.0, 2.0] + [10.0] * 6)
    tt = travel_times_from(slow, np.array([0]), link_travel_times(slow, 0))
    assert (tt <= 240.0).tolist() == [True, True, False, False, True]
    # closing the spur cuts node 4 off; an unrecorded speed (NaN) counts at free speed
    cut = _line_network([10.0, np.nan] + [10.0] * 7, closed=[6])
    tt = travel_times_from(cut, np.array([0]), link_travel_times(cut, 0))
    assert np.isinf(tt[4]) and tt[3] == 300.0
    made = coverage_figure([(ds, 0, "a"), (slow, 0, "b")])
    assert made is not None
    fig, shares = made
    assert shares[("fire", "a")] == 0.8 and shares[("fire", "b")] == 0.6  # 4 and 3 of 5 within 240 s
    assert _not_blank(fig)


# -- a flood drill: stranded trips, closures and markers --------------------------------------


@pytest.fixture(scope="module")
def flood(tmp_path_factory):
    """``twin drill drill_flood`` (the whole drill) with its printed tables, then ``twin report``."""
    import contextlib

    out = tmp_path_factory.mktemp("flood") / "run"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["drill", "drill_flood", "--out", str(out), "-q"]) == 0
    html, pngs = write_report(out)
    return out, buf.getvalue(), html, pngs


def test_drill_flood_counts_stranded_trips_everywhere(flood):
    out, printed, html, _ = flood
    res = open_results(out)
    ds = res.ds
    stranded = int(ds["network_stranded"].values[-1])
    assert stranded == ds.attrs["kpi_trips_stranded"] == ds.attrs["kpi_no_route"] + ds.attrs["kpi_trips_no_route"]
    assert stranded > 0.25 * ds.attrs["kpi_trips_total"]  # a third of the city cannot cross the river
    # the printed drill table and the report say so
    assert re.search(r"Trips stranded.*?" + f"{stranded:,}", printed.replace("\n", " "))
    text = html.read_text()
    assert f"{stranded:,} trips" in text and "stranded" in text
    # the chart shows them beside the vehicles on the network, with the run's numbers
    fig = timeseries_figure(res)
    lines = [ln for ax in fig.axes for ln in ax.lines if ln.get_label().startswith("trips stranded")]
    assert len(lines) == 1 and np.array_equal(lines[0].get_ydata(), ds["network_stranded"].values)


def test_drill_flood_marks_the_bridge_closures_and_draws_them_closed(flood):
    out, _, _, pngs = flood
    ds = open_results(out).ds
    events = time_events(ds)
    closures = {e.label: e.t for e in events if e.kind == "closure"}
    for bridge, at in (("Old Bridge", 900.0), ("North Bridge", 1500.0), ("Ring Bridge", 2100.0)):
        assert any(bridge in label and t == at for label, t in closures.items()), (bridge, closures)
    assert sum(e.kind == "incident" for e in events) == ds.sizes["incident"]
    names = {p.name.split("-", 1)[1] for p in pngs}
    assert {"timeseries.png", "map-speed.png", "map-closures.png", "coverage.png", "response.png"} <= names
    # the closures map draws exactly the links closed in its interval, in the closure colour
    closed = (ds["link_closed"].values == 1).sum(axis=1)
    k = int(np.argmax(closed))
    fig = speed_map_figure(open_results(out), k, why="most roads closed")
    lc = _closed_collection(fig)
    assert len(lc.get_segments()) == closed[k] >= 6
    bridges = set(np.asarray(ds["link_name"].values)[ds["link_closed"].values[k] == 1])
    assert {"Old Bridge", "North Bridge", "Ring Bridge"} <= bridges


# -- an evacuation --------------------------------------------------------------------------

EVAC = {
    "name": "evac_small",
    "seed": 5,
    "time": {"start": "06:30", "duration": "2h", "step": "2s"},
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
    "outputs": {"interval": "5min"},
    "population": {"enabled": True, "evacuation": {"clearance_share": 0.8}},
    "interventions": [
        {
            "kind": "evacuation",
            "zones": ["Z01-01"],
            "at": "07:00",
            "compliance": 1.0,
            "delay_mean": "5min",
            "delay_sd": "2min",
        }
    ],
}


@pytest.fixture(scope="module")
def evac_dir(tmp_path_factory):
    import yaml

    tmp = tmp_path_factory.mktemp("evac")
    (tmp / "s.yaml").write_text(yaml.safe_dump(EVAC))
    assert main(["run", str(tmp / "s.yaml"), "--out", str(tmp / "run"), "-q"]) == 0
    return tmp / "run"


def test_evacuation_figure_shows_the_runs_safe_share_clearance_and_exit_loads(evac_dir):
    ds = open_results(evac_dir).ds
    t, share, n = safe_share(ds)
    assert n == ds.sizes["evacuee"] > 0
    assert 100 * share[-1] == pytest.approx(ds.attrs["kpi_pop_evac_safe_share"])
    assert clearance_s(ds, 0.8) == pytest.approx(ds.attrs["kpi_pop_evac_clearance_s"])
    assert np.nanmin(ds["zone_evacuation_order_s"].values) == 1800.0  # 07:00
    links = exit_links(ds)
    assert links.size > 0
    fig = evacuation_figure(ds, start_clock_s=float(ds.attrs["start_clock_s"]), share=0.8)
    assert _not_blank(fig)
    assert f"clearance time {ds.attrs['kpi_pop_evac_clearance_s'] / 60:.0f} min" in fig.axes[0].get_title()
    curve = fig.axes[0].lines[0]
    assert curve.get_ydata()[-1] == pytest.approx(100 * share[-1])
    loads = {int(ln.get_label().split()[1]): ln for ln in fig.axes[1].lines if ln.get_label().startswith("link ")}
    out = ds["link_outflow"].values
    for link, ln in loads.items():
        assert link in links and np.array_equal(ln.get_ydata(), out[:, link])
    html, pngs = write_report(evac_dir)
    assert any(p.name.endswith("-evacuation.png") for p in pngs) and "Evacuation" in html.read_text()


# -- shadow mode ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def live_dir(tmp_path_factory):
    import contextlib

    out = tmp_path_factory.mktemp("live") / "run"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["live", "--until", "02:00", "--members", "2", "--out", str(out)]) == 0
    (out.parent / "printed.txt").write_text(buf.getvalue())
    return out


def test_run_and_live_tables_print_stranded_trips(run_dir, live_dir, tmp_path, capsys):
    import yaml

    from tests.viz.conftest import SHORT

    (tmp_path / "s.yaml").write_text(yaml.safe_dump(SHORT))
    assert main(["run", str(tmp_path / "s.yaml"), "--out", str(tmp_path / "run"), "-q"]) == 0
    assert "Trips stranded" in capsys.readouterr().out
    printed = (live_dir.parent / "printed.txt").read_text()
    assert re.search(r"trips stranded \(waiting for a route\).*?\d+ of [\d,]+", printed.replace("\n", " "))


def test_live_report_draws_observed_against_estimated(live_dir):
    asm = open_assimilation(live_dir)
    assert asm is not None and asm.sizes["observation"] > 0
    start = open_results(live_dir).start_clock_s
    fig = sensor_figure(asm, start_clock_s=start)
    assert _not_blank(fig)
    links = busiest_sensors(asm)
    assert 0 < len(links) <= 4
    for row, link in enumerate(links):
        ot, of, osp = sensor_observations(asm, link)
        flow_ax, speed_ax = fig.axes[2 * row], fig.axes[2 * row + 1]
        dots = [ln for ln in flow_ax.lines if ln.get_label() == "observed"][0]
        assert np.array_equal(dots.get_xdata(), ot) and np.allclose(dots.get_ydata(), of, equal_nan=True)
        mean = [ln for ln in flow_ax.lines if ln.get_label() == "estimate (mean)"][0]
        assert np.allclose(mean.get_ydata(), asm["est_flow"].values[:, link])
        assert f"link {link}" in speed_ax.get_title()
    assert _not_blank(demand_figure(asm, start_clock_s=start))
    html, pngs = write_report(live_dir)
    names = {p.name.split("-", 1)[1] for p in pngs}
    assert {"live-sensors.png", "live-demand.png"} <= names


def test_comparison_coverage_sets_baseline_beside_scenario_and_rings_the_new_station(tmp_path):
    from viz.data import Results
    from viz.sections import _coverage

    base = _line_network([10.0] * 9)
    scen = _line_network([10.0] * 9).drop_dims("station")
    scen = scen.assign_coords(
        station_kind=("station", np.array(["fire", "fire"])),
        station_node=("station", np.array([100, 103])),  # a new station at node 3
        station_in_service_end=("station", np.array([1, 1], np.int8)),
    )
    for name, ds in (("baseline", base), ("scenario", scen)):
        (tmp_path / name).mkdir()
        ds.to_netcdf(tmp_path / name / "results.nc", engine="h5netcdf")
    res = Results("comparison", tmp_path, base, {"kind": "comparison"})
    [(name, _, png, caption)] = _coverage(res)
    assert name == "coverage" and "baseline" in caption and png[:4] == b"\x89PNG"
    made = coverage_figure([(base, 0, "baseline"), (scen, 0, "scenario")])
    fig, shares = made
    assert shares[("fire", "baseline")] == 0.8 and shares[("fire", "scenario")] == 1.0
    rings = [
        c
        for c in fig.axes[1].collections
        if not isinstance(c, LineCollection) and c.get_facecolors().size == 0 and len(c.get_offsets()) == 1
    ]
    assert len(rings) == 1 and tuple(rings[0].get_offsets()[0]) == (3000.0, 0.0)


def test_response_panels_draw_the_scenarios_targets(flood):
    from viz.ops_charts import response_figure
    from viz.sections import _scenario_targets

    res = open_results(flood[0])
    targets = _scenario_targets(res)
    assert targets["medical"] == {"seconds": 480.0, "measure": "response", "unit": None}
    fig = response_figure(res.ds, targets=targets)
    panels = {ax.get_title().split(":")[0]: ax for ax in fig.axes}
    line = [ln for ln in panels["medical"].lines if ln.get_label() == "target 8 min"]
    assert len(line) == 1 and list(line[0].get_xdata()) == [8.0, 8.0]
    assert "travel of the first engine 4 min" in panels["fire"].get_title()  # a travel target, named
