"""Zone files for real cities (issue 13, part 4): GeoPackage layers, city zones from a file."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
from shapely.geometry import Point, box

from city_models import load_city
from city_models.demand import gravity_trips
from city_models.population import PopulationError, read_zone_file, synthesize_population
from city_models.zonefiles import city_with_zones


@pytest.fixture(scope="module")
def city():
    return load_city({"synthetic": {"blocks_x": 9, "blocks_y": 9, "zone_blocks": 3}}, seed=2)


def _halves(city, crs="EPSG:3067", **cols):
    """Two polygons (west and east of the middle longitude) as a GeoDataFrame in ``crs``."""
    net = city.network
    lon0, lon1, lat0, lat1 = net.lon.min(), net.lon.max(), net.lat.min(), net.lat.max()
    mid = float(np.median(net.lon)) + 1e-7
    pad = 0.01
    gdf = gpd.GeoDataFrame(
        {"Name": ["West", "East"], **cols},
        geometry=[box(lon0 - pad, lat0 - pad, mid, lat1 + pad), box(mid, lat0 - pad, lon1 + pad, lat1 + pad)],
        crs="EPSG:4326",
    )
    return gdf.to_crs(crs), mid


def test_geopackage_polygons_in_a_metric_crs(city, tmp_path):
    gdf, mid = _halves(city, Population=[700, 300], Employment=[100, 900])
    f = tmp_path / "zones.gpkg"
    gdf.to_file(f, layer="zones", driver="GPKG")
    z = read_zone_file(f, city.network).zones
    net = city.network
    assert z.name == ("West", "East")
    np.testing.assert_array_equal(z.residents, [700, 300])
    np.testing.assert_array_equal(z.jobs, [100, 900])
    assert np.all(z.node_zone[net.lon < mid - 1e-6] == 0) and np.all(z.node_zone[net.lon > mid + 1e-6] == 1)
    pop = synthesize_population(z, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(np.bincount(pop.home_zone), [700, 300])


def test_geopackage_points(city, tmp_path):
    net = city.network
    pts = gpd.GeoDataFrame(
        {"zone": ["a", "b"], "residents": [5, 6], "jobs": [7, 8]},
        geometry=[Point(net.lon.min(), net.lat.min()), Point(net.lon.max(), net.lat.max())],
        crs="EPSG:4326",
    )
    f = tmp_path / "pts.gpkg"
    pts.to_file(f, driver="GPKG")
    z = read_zone_file(f, net).zones
    assert z.name == ("a", "b") and (z.node_zone >= 0).all()


def test_no_population_column_names_file_and_column(city, tmp_path):
    gdf, _ = _halves(city, people=[1, 2], jobs=[3, 4])
    f = tmp_path / "nopop.gpkg"
    gdf.to_file(f, driver="GPKG")
    with pytest.raises(PopulationError, match=r"nopop\.gpkg.*no residents column.*'population'.*people"):
        read_zone_file(f, city.network)
    gdf, _ = _halves(city, residents=[1, None], jobs=[3, 4])
    gdf.to_file(f, driver="GPKG")
    with pytest.raises(PopulationError, match=r"nopop\.gpkg', layer '\w+', row 1 \('East'\).*residents"):
        read_zone_file(f, city.network)
    (tmp_path / "junk.gpkg").write_text("not a geopackage")
    with pytest.raises(PopulationError, match="junk.gpkg' could not be read"):
        read_zone_file(tmp_path / "junk.gpkg", city.network)


def test_city_zones_from_a_file_drive_the_gravity_model(city, tmp_path):
    gdf, _ = _halves(city, residents=[4000, 0], jobs=[0, 4000])
    f = tmp_path / "z.gpkg"
    gdf.to_file(f, driver="GPKG")
    zoned = city_with_zones(city, f)
    assert zoned.zones.n_zones == 2 and "Zones from" in zoned.notes[-1]
    z = zoned.zones
    net = city.network
    trips = gravity_trips(
        node_zone=z.node_zone,
        residents=z.residents,
        jobs=z.jobs,
        zone_x=z.x,
        zone_y=z.y,
        node_x=net.x,
        node_y=net.y,
        rng=np.random.default_rng(1),
        total_trips=500,
        duration_s=3600.0,
    )
    assert len(trips.origin) == 500
    assert (z.node_zone[trips.origin] == 0).all() and (z.node_zone[trips.destination] == 1).all()
    via_spec = load_city({"synthetic": {"blocks_x": 9, "blocks_y": 9, "zone_blocks": 3}, "zones": str(f)}, seed=2)
    np.testing.assert_array_equal(via_spec.zones.residents, [4000, 0])


def test_scenario_city_zones(city, tmp_path):
    from scenarios import ScenarioError, load_scenario
    from twin.model import build_city

    gdf, _ = _halves(city, residents=[10, 20], jobs=[30, 40])
    gdf.to_file(tmp_path / "z.gpkg", driver="GPKG")
    synth = {"blocks_x": 9, "blocks_y": 9, "zone_blocks": 3, "seed": 2}
    sc = load_scenario({"city": {"synthetic": synth, "zones": "z.gpkg"}}, base_dir=tmp_path)
    assert build_city(sc.city).zones.name == ("West", "East")
    with pytest.raises(ScenarioError, match="only for OSM files"):
        load_scenario({"city": {"synthetic": synth, "bbox": [24.9, 60.1, 25.0, 60.2]}})
    with pytest.raises(ScenarioError, match="zone file"):
        load_scenario({"city": {"synthetic": synth, "zones": "missing.gpkg"}}, base_dir=tmp_path)


def test_city_info_lists_zones_places_and_facilities(city, tmp_path, capsys):
    import yaml

    from twin.cli import main

    gdf, _ = _halves(city, residents=[10, 20], jobs=[30, 40])
    gdf.to_file(tmp_path / "z.gpkg", driver="GPKG")
    synth = {"blocks_x": 9, "blocks_y": 9, "zone_blocks": 3, "seed": 2}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({"city": {"synthetic": synth, "zones": "z.gpkg"}}))
    assert main(["city", "info", str(tmp_path / "s.yaml"), "--all"]) == 0
    out = capsys.readouterr().out
    assert "zones (2)" in out and "West" in out and "East" in out
    assert "facilities (" in out and "named places (" in out
    assert "Zones from" in out
