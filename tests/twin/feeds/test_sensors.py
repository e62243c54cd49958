"""Sensor ids, segment ids and locations map to links explicitly, with distances."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from basics.errors import InputError
from twin.feeds import LinkMapper, MessageError, read_sensor_table


def _heading(net, k):
    dx, dy = net.x[net.dst[k]] - net.x[net.src[k]], net.y[net.dst[k]] - net.y[net.src[k]]
    return math.degrees(math.atan2(dx, dy)) % 360.0


def _reverse(net, k):
    return next(j for j in range(net.n_links) if net.src[j] == net.dst[k] and net.dst[j] == net.src[k])


def test_projection_is_consistent(mapper, small_city):
    net = small_city.network
    assert mapper.projection_error_m < 0.01
    for i in (0, 17, net.n_nodes - 1):
        x, y = mapper.to_xy(net.lon[i], net.lat[i])
        assert (x, y) == (pytest.approx(net.x[i], abs=0.01), pytest.approx(net.y[i], abs=0.01))
        lon, lat = mapper.to_lonlat(net.x[i], net.y[i])
        assert (lon, lat) == (pytest.approx(net.lon[i], abs=1e-7), pytest.approx(net.lat[i], abs=1e-7))


def test_segment_ids_by_index_and_by_node_pair(mapper, small_city):
    net = small_city.network
    k = 20
    assert mapper.segment_link(mapper.segment_id(k)) == k
    ref = f"urn:ngsi-ld:RoadSegment:{net.node_osmid[net.src[k]]}-{net.node_osmid[net.dst[k]]}"
    assert mapper.segment_link(ref) == k
    with pytest.raises(MessageError, match="no link from node"):
        mapper.segment_link(f"urn:ngsi-ld:RoadSegment:{net.node_osmid[net.src[k]]}-{net.node_osmid[net.src[k]]}")


def test_nearest_link_reports_its_distance(mapper, small_city):
    net = small_city.network
    k = 30
    h = math.radians(_heading(net, k))
    # 12 m to the right of the middle of link k (right-hand traffic side)
    x = (net.x[net.src[k]] + net.x[net.dst[k]]) / 2 + 12 * math.cos(h)
    y = (net.y[net.src[k]] + net.y[net.dst[k]]) / 2 - 12 * math.sin(h)
    lon, lat = mapper.to_lonlat(x, y)
    link, dist = mapper.nearest(lon, lat, heading_deg=_heading(net, k))
    assert link == k and dist == pytest.approx(12.0, abs=0.01)
    link, dist = mapper.nearest(lon, lat, heading_deg=(_heading(net, k) + 180) % 360)
    assert link == _reverse(net, k) and dist == pytest.approx(12.0, abs=0.01)
    link, _ = mapper.nearest(lon, lat)  # no heading: the lower index of the two directions
    assert link == min(k, _reverse(net, k))
    with pytest.raises(MessageError, match="snap_max_m=50"):
        mapper.nearest(*mapper.to_lonlat(net.x.max() + 500, net.y.max() + 500))
    with pytest.raises(MessageError, match="not a lon/lat"):
        mapper.nearest(500.0, 60.0)


def test_line_location_uses_its_direction_and_middle(mapper, small_city):
    net = small_city.network
    k = 40
    line = mapper.link_line(k, start=0.1, end=0.9)
    assert mapper.locate_geometry(line)[0] == k
    back = {"type": "LineString", "coordinates": line["coordinates"][::-1]}
    assert mapper.locate_geometry(back)[0] == _reverse(net, k)
    # a three-point line along the link: its middle is on the link
    mid = mapper.link_point(k)["coordinates"]
    three = {"type": "LineString", "coordinates": [line["coordinates"][0], mid, line["coordinates"][1]]}
    link, dist = mapper.locate_geometry(three)
    assert link == k and dist < 0.5
    with pytest.raises(MessageError, match="bad coordinates"):
        mapper.locate_geometry({"type": "LineString", "coordinates": [[1, 2]]})
    with pytest.raises(MessageError, match="bad coordinates"):
        mapper.locate_geometry({"type": "Point", "coordinates": ["east", "north"]})


def test_sensor_table_rows_by_link_segment_and_location(small_city):
    net = small_city.network
    lon, lat = LinkMapper(net).link_point(50)["coordinates"]
    m = LinkMapper(
        net,
        sensors=[
            {"id": "a", "link": 3},
            {"id": "b", "segment": "urn:ngsi-ld:RoadSegment:4"},
            {"id": "c", "lon": lon, "lat": lat, "heading_deg": _heading(net, 50)},
            {"id": "d", "lon": lon, "lat": lat, "heading_deg": (_heading(net, 50) + 180) % 360},
        ],
    )
    assert [m.locate(s)[0] for s in "abcd"] == [3, 4, 50, _reverse(net, 50)]
    assert m.locate("zz", ref="a")[0] == 3  # a table id also maps a refRoadSegment
    assert sorted(m.sensor_ids) == list("abcd")


@pytest.mark.parametrize(
    "row,words",
    [
        ({"id": "s", "link": 10**6}, "link 1000000 does not exist"),
        ({"id": "s", "segment": "urn:x:1"}, "not in the sensor table"),
        ({"id": "s", "lon": 0.0, "lat": 0.0}, "no link"),
        ({"id": "s"}, "give one of link, segment or lon+lat"),
        ({"id": ""}, "needs an id"),
    ],
)
def test_bad_sensor_rows_name_the_sensor(row, words, small_city):
    with pytest.raises(InputError, match=re.escape(words)) as err:
        LinkMapper(small_city.network, sensors=[{"id": "ok", "link": 1}, row])
    assert "sensor 1" in str(err.value)


def test_sensor_table_csv(tmp_path, small_city):
    path = tmp_path / "sensors.csv"
    path.write_text("id,link,segment,lon,lat,heading_deg\ncam-1,5,,,,\ncam-2,,urn:ngsi-ld:RoadSegment:6,,,\n")
    rows = read_sensor_table(path)
    m = LinkMapper(small_city.network, sensors=rows)
    assert (m.locate("cam-1")[0], m.locate("cam-2")[0]) == (5, 6)
    path.write_text("id,link\ncam-1,5\ncam-2,five\n")
    with pytest.raises(InputError, match=r"line 3, link"):
        read_sensor_table(path)
    path.write_text("id,lnk\ncam-1,5\n")
    with pytest.raises(InputError, match="unknown column.*lnk"):
        read_sensor_table(path)
    with pytest.raises(InputError, match="could not be read"):
        read_sensor_table(tmp_path / "missing.csv")


def test_network_without_lonlat_maps_ids_only(small_city):
    net = small_city.network._replace(
        lon=np.full(small_city.network.n_nodes, np.nan), lat=np.full(small_city.network.n_nodes, np.nan)
    )
    m = LinkMapper(net)
    assert m.locate("x", ref="urn:ngsi-ld:RoadSegment:2")[0] == 2
    with pytest.raises(MessageError, match="no lon/lat"):
        m.locate("x", location={"type": "Point", "coordinates": [24.9, 60.1]})
