"""``twin export`` (issue 13, part 5): links, trips, incidents and units out to GIS files."""

from __future__ import annotations

import shutil

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import xarray as xr

from basics.errors import InputError
from twin.cli import main
from viz.export import export_run


def _nc(folder):
    with xr.open_dataset(folder / "results.nc", engine="h5netcdf") as ds:
        return ds.load()


def test_geopackage_has_one_feature_per_link_with_crs_attributes_and_totals(run_dir, tmp_path):
    out = tmp_path / "run.gpkg"
    summary = export_run(run_dir, out)
    ds = _nc(run_dir)
    layers = [name for name, _ in pyogrio.list_layers(out)]
    assert layers[:2] == ["links", "trips"]
    links = gpd.read_file(out, layer="links")
    assert len(links) == ds.sizes["link"] == summary.rows["links"]
    assert links.crs.to_epsg() == 4326
    assert links.geom_type.eq("LineString").all()
    for col in ("link_id", "from_node", "to_node", "name", "road_class", "flow_veh", "flow_vph", "speed_kmh"):
        assert col in links
    for col in ("speed_ratio", "vc_ratio", "delay_veh_h", "vehicle_hours", "capacity_vph", "free_speed_kmh"):
        assert col in links
    assert links["flow_veh"].sum() == int(ds["link_inflow"].sum())
    np.testing.assert_array_equal(links["link_id"], ds["link_osmid"].values)
    dt = np.diff(np.concatenate([[0.0], ds["time"].values]))
    veh_h = float((ds["link_vehicles"].values * dt[:, None]).sum() / 3600.0)
    assert links["vehicle_hours"].sum() == pytest.approx(veh_h, rel=1e-9)
    assert (links["delay_veh_h"] >= 0).all() and (links["delay_veh_h"] <= links["vehicle_hours"] + 1e-9).all()
    # geometry from the nodes' longitude/latitude: the first link starts at its upstream node
    node = int(np.flatnonzero(ds["node_osmid"].values == ds["link_src"].values[0])[0])
    x0, y0 = links.geometry.iloc[0].coords[0]
    assert (x0, y0) == pytest.approx((float(ds["node_lon"].values[node]), float(ds["node_lat"].values[node])))
    trips = gpd.read_file(out, layer="trips")
    assert len(trips) == ds.sizes["trip"]
    assert trips["travel_time_s"].sum() == pytest.approx(float(np.nansum(ds["trip_travel_time_s"].values)))


def test_time_window_aggregates_only_its_intervals(run_dir, tmp_path):
    out = tmp_path / "w.gpkg"
    summary = export_run(run_dir, out, window="07:10-07:20")
    assert summary.window == ("07:10", "07:20")
    ds = _nc(run_dir)
    t = ds["time"].values
    inside = (t > 600) & (t <= 1200)
    links = gpd.read_file(out, layer="links")
    assert links["flow_veh"].sum() == int(ds["link_inflow"].values[inside].sum())
    np.testing.assert_allclose(links["flow_vph"], ds["link_inflow"].values[inside].sum(axis=0) * 6.0)
    dep = ds["trip_depart_s"].values
    assert len(gpd.read_file(out, layer="trips")) == int(((dep >= 600) & (dep < 1200)).sum())


@pytest.mark.parametrize("fmt", ["geojson", "parquet"])
def test_one_file_per_table(run_dir, tmp_path, fmt):
    out = tmp_path / f"links.{fmt}"
    summary = export_run(run_dir, out)
    assert summary.files["trips"] == tmp_path / f"links-trips.{fmt}"
    links = gpd.read_parquet(out) if fmt == "parquet" else gpd.read_file(out)
    assert len(links) == summary.rows["links"] and links.crs.to_epsg() == 4326
    assert links["flow_veh"].sum() == int(_nc(run_dir)["link_inflow"].sum())
    assert not list(tmp_path.glob(".*.part"))


def test_incidents_and_stations_as_points(run_extras_dir, tmp_path):
    out = tmp_path / "x.gpkg"
    export_run(run_extras_dir, out)
    inc = gpd.read_file(out, layer="incidents")
    assert len(inc) == 4 and inc.geom_type.eq("Point").all()
    assert list(inc["type"]) == ["traffic_crash", "fire", "medical", "medical"]
    assert inc["t_reported_s"].tolist() == [60.0, 160.0, 1360.0, 70.0]


def test_recorded_link_shapes_are_drawn(run_dir, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    ds = _nc(run)
    n = ds.sizes["link"]
    src = {int(v): i for i, v in enumerate(ds["node_osmid"].values)}
    a = np.array([src[int(v)] for v in ds["link_src"].values])
    b = np.array([src[int(v)] for v in ds["link_dst"].values])
    lon, lat = ds["node_lon"].values, ds["node_lat"].values
    mid_lon, mid_lat = (lon[a] + lon[b]) / 2 + 1e-4, (lat[a] + lat[b]) / 2
    shape_lon = np.column_stack([lon[a], mid_lon, lon[b]]).ravel()
    shape_lat = np.column_stack([lat[a], mid_lat, lat[b]]).ravel()
    ds = ds.assign_coords(
        link_shape_indptr=("link_shape_ptr", np.arange(n + 1) * 3),
        shape_lon=("shape", shape_lon),
        shape_lat=("shape", shape_lat),
    )
    ds.to_netcdf(run / "results.nc", engine="h5netcdf")
    export_run(run, tmp_path / "s.gpkg")
    links = gpd.read_file(tmp_path / "s.gpkg", layer="links")
    assert [len(g.coords) for g in links.geometry] == [3] * n
    assert links.geometry.iloc[5].coords[1] == pytest.approx((mid_lon[5], mid_lat[5]))


def test_bad_inputs_name_the_file_and_what_is_wrong(run_dir, tmp_path):
    with pytest.raises(InputError, match=r"\.shp.*gpkg, geojson, parquet"):
        export_run(run_dir, tmp_path / "x.shp")
    with pytest.raises(InputError, match=r"results\.nc.*09:00-10:00|09:00-10:00.*results\.nc"):
        export_run(run_dir, tmp_path / "x.gpkg", window="09:00-10:00")
    with pytest.raises(InputError, match="HH:MM-HH:MM"):
        export_run(run_dir, tmp_path / "x.gpkg", window="7-8")
    broken = tmp_path / "broken"
    shutil.copytree(run_dir, broken)
    ds = _nc(broken).drop_vars("link_capacity")
    ds.to_netcdf(broken / "results.nc", engine="h5netcdf")
    with pytest.raises(InputError, match=r"broken/results\.nc.*'link_capacity'"):
        export_run(broken, tmp_path / "x.gpkg")
    assert not (tmp_path / "x.gpkg").exists()


def test_a_failed_write_leaves_the_old_file(run_dir, tmp_path, monkeypatch):
    out = tmp_path / "keep.gpkg"
    out.write_bytes(b"old")

    def boom(frame, path, **kw):
        path.write_bytes(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(pyogrio, "write_dataframe", boom)
    with pytest.raises(OSError, match="disk full"):
        export_run(run_dir, out)
    assert out.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.gpkg"]


def test_cli_export(run_dir, tmp_path, capsys):
    out = tmp_path / "cli.gpkg"
    assert main(["export", str(run_dir), "--format", "gpkg", "--out", str(out), "--time", "07:00-07:30"]) == 0
    assert "links" in capsys.readouterr().out
    assert len(gpd.read_file(out, layer="links")) == _nc(run_dir).sizes["link"]
    assert main(["export", str(tmp_path / "missing"), "--out", str(out)]) == 2


def test_report_maps_draw_recorded_shapes(run_dir, tmp_path):
    from matplotlib.collections import LineCollection

    from viz.charts import speed_map_figure
    from viz.data import open_results

    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    ds = _nc(run)
    n = ds.sizes["link"]
    idx = {int(v): i for i, v in enumerate(ds["node_osmid"].values)}
    a = np.array([idx[int(v)] for v in ds["link_src"].values])
    b = np.array([idx[int(v)] for v in ds["link_dst"].values])
    lon, lat = ds["node_lon"].values, ds["node_lat"].values
    shape_lon = np.column_stack([lon[a], (lon[a] + lon[b]) / 2 + 1e-4, lon[b]]).ravel()
    shape_lat = np.column_stack([lat[a], (lat[a] + lat[b]) / 2, lat[b]]).ravel()
    ds = ds.assign_coords(
        link_shape_indptr=("link_shape_ptr", np.arange(n + 1) * 3),
        shape_lon=("shape", shape_lon),
        shape_lat=("shape", shape_lat),
    )
    ds.to_netcdf(run / "results.nc", engine="h5netcdf")
    fig = speed_map_figure(open_results(run), 2)
    lines = [c for c in fig.axes[0].collections if isinstance(c, LineCollection)]
    assert lines and all(len(p.vertices) == 3 for p in lines[0].get_paths())
