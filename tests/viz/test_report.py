"""``twin report``: one self-contained HTML file with the run's KPIs, time series, maps, travel times."""

from __future__ import annotations

import base64
import io
import json
import re

import imageio.v2 as imageio
import numpy as np
import pytest
import xarray as xr

from basics.errors import InputError
from tests.viz.conftest import INTERVENED
from twin.cli import main
from viz.data import fmt_value, incidents_at, kpi_label, network_speed_kmh, open_results, sites, time_index
from viz.report import write_report

MAGENTA = np.array([255, 0, 255])


def _img(path):
    return np.asarray(imageio.imread(path))[..., :3].astype(int)


def _near(img, rgb, tol=12):
    return int(np.all(np.abs(img - np.asarray(rgb)) <= tol, axis=-1).sum())


def _assert_picture(img, min_w=400, min_h=250):
    """A real figure: the expected size, many colours, not a blank page."""
    h, w = img.shape[:2]
    assert w >= min_w and h >= min_h
    assert img.std() > 20
    packed = (img[..., 0] << 16) | (img[..., 1] << 8) | img[..., 2]
    assert np.unique(packed).size > 50


def _row(html, label):
    """The cells of the KPI table row whose first cell is ``label``."""
    m = re.search(r"<tr><td>" + re.escape(label) + r"</td>(.*?)</tr>", html)
    assert m, f"no row {label!r}"
    return re.findall(r"<td[^>]*>(.*?)</td>", m.group(1))


@pytest.fixture(scope="module")
def run_report(run_dir, tmp_path_factory):
    """The run's report, made by ``twin report``: (html path, figure paths)."""
    out = tmp_path_factory.mktemp("rep") / "report.html"
    assert main(["report", str(run_dir), "--out", str(out)]) == 0
    return out, sorted(
        out.parent.glob("report-*.png"), key=lambda p: ["timeseries", "map", "travel"].index(p.stem.split("-")[1])
    )


def test_run_report_shows_every_kpi_as_displayed(run_dir, run_report):
    html_path, _ = run_report
    html = html_path.read_text()
    summary = json.loads((run_dir / "summary.json").read_text())
    kpis = summary["kpis"]
    assert len(kpis) >= 10
    for key, value in kpis.items():
        label, unit = kpi_label(key, summary["kpi_labels"])
        cells = _row(html, label)
        assert cells[0] == fmt_value(value), key
        assert cells[1] == unit
    assert f"{kpis['trips_total']:,}" in html
    assert f"{kpis['mean_travel_time_s']:.1f}" in html


def test_run_report_is_self_contained_with_figures_beside_it(run_report):
    html_path, pngs = run_report
    html = html_path.read_text()
    assert not re.search(r"""(src|href)\s*=\s*['"](https?:)?//""", html)
    assert "<script" not in html and "<link" not in html
    embedded = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", html)
    assert len(embedded) == len(pngs) == 3
    assert {p.name for p in pngs} == {"report-timeseries.png", "report-map-speed.png", "report-travel-times.png"}
    for p, b64 in zip(pngs, embedded, strict=False):
        assert p.read_bytes() == base64.b64decode(b64)  # the same image embedded and beside the report
        _assert_picture(_img(p))
    assert not list(html_path.parent.glob(".*.part"))  # no temporary files left behind


def test_run_map_marks_intervened_links_and_incidents(run_extras_dir, run_report, tmp_path):
    _, plain = run_report
    html_path, pngs = write_report(run_extras_dir, out=tmp_path / "x.html")
    html = html_path.read_text()
    assert "Intervened links" in html and html.count("class='tag'>intervened") >= len(INTERVENED)
    marked = _img(next(p for p in pngs if p.name.endswith("map-speed.png")))
    unmarked = _img(next(p for p in plain if p.name.endswith("map-speed.png")))
    assert _near(marked, MAGENTA) > 100 and _near(unmarked, MAGENTA) == 0
    orange = (255, 127, 14)  # incident markers
    assert _near(marked, orange, tol=6) > _near(unmarked, orange, tol=6) + 20


def test_incidents_and_stations_read_as_the_emergency_component_writes_them(run_extras_dir):
    res = open_results(run_extras_dir)
    ds = res.ds
    inc = incidents_at(res, 1200.0)  # 07:20
    assert inc.active.tolist() == [True, True, False, False]
    assert incidents_at(res, 1400.0).active.tolist() == [True, True, True, False]
    assert incidents_at(res, None).active.all()
    # placed at the node the source id names: the upstream end of the link it was taken from
    assert inc.x[1] == ds.link_x0.values[60] and inc.y[1] == ds.link_y0.values[60]
    st = sites(res)
    assert sorted(st.kind[~st.in_service]) == ["fire_station"]
    assert (st.kind == "tow_depot").sum() == 1
    # the city's own fire stations give way to the emergency component's; hospitals stay
    assert (st.kind == "fire_station").sum() == 2
    assert (st.kind == "hospital").sum() == (ds.facility_kind.values == "hospital").sum() > 0


def test_network_speed_matches_the_kpi(run_dir):
    """Per-interval network speed, aggregated back over the day, is the run's mean network speed KPI."""
    res = open_results(run_dir)
    ds = res.ds
    speed = network_speed_kmh(ds, res.times)
    km = (ds["link_outflow"].values * ds["link_length_m"].values).sum(-1) / 1000.0
    ok = km > 0
    day = km[ok].sum() / (km[ok] / speed[ok]).sum()
    assert day == pytest.approx(ds.attrs["kpi_mean_network_speed_kmh"], rel=1e-9)


def test_time_index_reads_clock_and_seconds(run_dir):
    res = open_results(run_dir)  # 07:00-07:30 in 5-minute intervals ending 07:05 ... 07:30
    assert time_index(res, "07:07") == 1
    assert time_index(res, "07:05") == 0
    assert time_index(res, "07:30:00") == 5
    assert time_index(res, "301") == 1
    assert time_index(res, 0) == 0
    nv = res.ds["network_vehicles"].values
    assert time_index(res, None) == int(np.argmax(nv))
    for bad in ("07:45", "noon", "25:00", "-5", "nan"):
        with pytest.raises(InputError, match=re.escape(bad)):
            time_index(res, bad)


def test_comparison_clock_read_off_the_clock_coordinate(comparison_dir):
    res = open_results(comparison_dir)
    assert "start_clock_s" not in res.ds.attrs
    assert res.kind == "comparison" and res.clock_labels()[:2] == ["07:05", "07:10"]
    assert time_index(res, "07:12") == 2


def test_comparison_report_rows_with_interval_and_verdict(comparison_dir, tmp_path):
    summary = json.loads((comparison_dir / "summary.json").read_text())
    html_path, pngs = write_report(comparison_dir, out=tmp_path / "cmp.html")
    html = html_path.read_text()
    for row in summary["kpis"]:
        cells = _row(html, row["label"])
        unit, base, scen, diff, _, ci, verdict = cells
        assert base == fmt_value(row["baseline"]) and scen == fmt_value(row["scenario"])
        assert diff.lstrip("+") == fmt_value(row["difference"])
        assert ci == f"[{fmt_value(row['ci_low'])}, {fmt_value(row['ci_high'])}]"
        contains_zero = row["ci_low"] <= 0 <= row["ci_high"]
        assert verdict == ("not significant" if contains_zero else "significant"), row["key"]
    assert _row(html, "Trips (total)")[-1] == "significant"  # +50% demand, the same in every replication
    assert _row(html, "Trips waiting for a route")[-1] == "not significant"  # zero in both
    names = {p.name for p in pngs}
    assert {
        "cmp-map-speed-change.png",
        "cmp-map-volume-change.png",
        "cmp-kpi-changes.png",
        "cmp-timeseries.png",
        "cmp-travel-times.png",
    } <= names
    speed_map = _img(tmp_path / "cmp-map-speed-change.png")
    _assert_picture(speed_map)
    assert _near(speed_map, MAGENTA) > 100  # intervened links from summary.json
    assert "Intervened links" in html


def test_identical_variants_report_no_significant_change(identical_comparison_dir, tmp_path):
    html_path, _ = write_report(identical_comparison_dir, out=tmp_path / "same.html")
    html = html_path.read_text()
    rows = json.loads((identical_comparison_dir / "summary.json").read_text())["kpis"]
    for row in rows:
        cells = _row(html, row["label"])
        assert cells[3] in ("0", "0.00") and cells[-1] == "not significant"
    assert "class='sig'" not in html
    img = _img(tmp_path / "same-map-speed-change.png")
    _assert_picture(img)


def test_missing_or_broken_inputs_are_clear_errors(run_dir, comparison_dir, tmp_path):
    with pytest.raises(InputError, match="not found"):
        open_results(tmp_path / "nowhere")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no results.nc"):
        open_results(empty)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "results.nc").write_bytes(b"not netcdf at all")
    with pytest.raises(InputError, match=r"results\.nc"):
        open_results(bad)
    thin = tmp_path / "thin"
    thin.mkdir()
    with xr.open_dataset(run_dir / "results.nc", engine="h5netcdf") as ds:
        ds.load().drop_vars("link_speed").to_netcdf(thin / "results.nc", engine="h5netcdf")
    with pytest.raises(InputError, match="link_speed"):
        open_results(thin)
    half = tmp_path / "half"
    half.mkdir()
    (half / "comparison.nc").write_bytes((comparison_dir / "comparison.nc").read_bytes())
    with pytest.raises(InputError, match="summary.json"):
        open_results(half)
    with pytest.raises(InputError, match=r"\.html"):
        write_report(run_dir, out=tmp_path / "report.pdf")


def test_cli_report_errors(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert "nowhere" in err and "Traceback" not in err


def test_png_bytes_decode(run_report):
    _, pngs = run_report
    img = imageio.imread(io.BytesIO(pngs[0].read_bytes()))
    assert img.ndim == 3
