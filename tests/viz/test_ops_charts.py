"""Emergency figures in reports of drills (issue 16, part 3): present, not blank, numbers as in the run."""

from __future__ import annotations

import io

import numpy as np
import pytest
import xarray as xr

from viz.ops_charts import clock_ticks, emergency_figures

DRILL = """\
name: ops_report
seed: 3
time: {start: "08:00", duration: 90min, step: 2s}
city: {synthetic: {blocks_x: 4, blocks_y: 4, bridges: 1, zone_blocks: 2, arterial_every: 2}}
demand: {gravity: {total_trips: 300}}
outputs: {interval: 10min}
incidents:
  call_delay: 30s
  turnout: 20s
  rates: {medical: {per_hour: 12}, fire: {per_hour: 4}}
"""


@pytest.fixture(scope="module")
def drill_dir(tmp_path_factory):
    from scenarios import load_scenario
    from twin.model import Twin

    tmp = tmp_path_factory.mktemp("ops")
    (tmp / "s.yaml").write_text(DRILL)
    tw = Twin(load_scenario(str(tmp / "s.yaml")))
    tw.run()
    return tw.save(tmp / "run")


def _not_blank(fig) -> bool:
    from matplotlib.image import imread

    from viz.charts import png_bytes

    img = imread(io.BytesIO(png_bytes(fig)))
    return np.unique(img.reshape(-1, img.shape[-1]), axis=0).shape[0] > 10


def test_each_emergency_figure_exists_and_matches_the_run(drill_dir):
    ds = xr.open_dataset(drill_dir / "results.nc")
    figs = emergency_figures(ds, start_clock_s=float(ds.attrs["start_clock_s"]))
    assert set(figs) == {"response", "units-available", "incident-timeline", "hospitals"}
    for fig, caption in figs.values():
        assert caption and _not_blank(fig)
    # the response histogram counts every incident reached, by type
    resp, types = ds["incident_response_s"].values, ds["incident_type"].values.astype(str)
    fig = figs["response"][0]
    for ax in fig.axes:
        kind, n = ax.get_title().split(": ")
        reached = int((np.isfinite(resp) & (types == kind)).sum())
        assert int(n.split()[0]) == reached
        heights = sum(p.get_height() for p in ax.patches)
        assert heights == reached
    # units available: one line per kind, the run's values
    ax = figs["units-available"][0].axes[0]
    assert len(ax.lines) == ds.sizes["unit_type"]
    assert np.array_equal(ax.lines[0].get_ydata(), ds["units_available"].values[:, 0])
    # the timeline has one row per incident
    ax = figs["incident-timeline"][0].axes[0]
    assert len(ax.get_yticks()) == min(ds.sizes["incident"], 60)


def test_clock_ticks_are_clock_sensible():
    from matplotlib.figure import Figure

    ax = Figure().subplots()
    clock_ticks(ax, 0.0, 5400.0, start_clock_s=8 * 3600 + 7 * 60)
    labels = [ax.xaxis.get_major_formatter()(t, 0) for t in ax.get_xticks()]
    assert labels == ["08:15", "08:30", "08:45", "09:00", "09:15", "09:30"]


def test_run_report_has_the_emergency_sections(drill_dir, tmp_path):
    from viz.report import write_report

    html, pngs = write_report(drill_dir, out=tmp_path / "report.html")
    text = html.read_text()
    for title in ("Emergency response against target", "Units available", "Incident timeline", "Hospital occupancy"):
        assert f"<h2>{title}</h2>" in text
    assert {p.name for p in pngs} >= {"report-response.png", "report-incident-timeline.png"}
