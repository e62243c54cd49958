"""The message model: every kind round-trips normalized <-> keyValues <-> typed record."""

from __future__ import annotations

import dataclasses
import math

import pytest

from tests.twin.feeds.conftest import iso, tfo
from twin.feeds import (
    AlertEvent,
    ClosureEvent,
    MessageError,
    Observation,
    Units,
    entities_of,
    to_entity,
    to_key_values,
    to_normalized,
    to_record,
)
from twin.feeds.ngsi import is_normalized


def same(a, b) -> None:
    """Records equal, floats to 1e-12 (unit conversions may move the last bit)."""
    assert type(a) is type(b)
    for f in dataclasses.fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, float) and not math.isnan(x):
            assert y == pytest.approx(x, rel=1e-12, abs=1e-12), f.name
        elif isinstance(x, float):
            assert math.isnan(y), f.name
        else:
            assert x == y, f.name


def round_trip(entity, clock, mapper, *, speed_unit="km/h"):
    """entity -> record -> each form -> record, and normalized <-> keyValues."""
    units = Units(speed=speed_unit)
    rec = to_record(entity, clock=clock, mapper=mapper, source="test", units=units)
    for form in ("keyValues", "normalized"):
        out = to_entity(rec, clock=clock, form=form, speed_unit=speed_unit)
        assert is_normalized(out) == (form == "normalized")
        same(rec, to_record(out, clock=clock, mapper=mapper, source="test", units=units))
        # the generic converters agree with the emitter and invert each other
        if form == "normalized":
            kv = to_key_values(out)
            assert kv == to_entity(rec, clock=clock, form="keyValues", speed_unit=speed_unit)
            if speed_unit == "km/h":  # keyValues carry no unitCode: only default units come back the same
                assert to_normalized(kv) == out
            same(rec, to_record(kv, clock=clock, mapper=mapper, source="test", units=units))
        else:
            assert to_key_values(to_normalized(out)) == out
    return rec


# ---------------------------------------------------------------------- observations


def test_observation_by_segment_round_trips(clock, mapper):
    rec = round_trip(tfo("det-1", 600.0, link=5, intensity=40, averageVehicleSpeed=36.0, occupancy=0.12), clock, mapper)
    assert isinstance(rec, Observation)
    assert (rec.link, rec.t, rec.interval_s, rec.t_start) == (5, 600.0, 300.0, 300.0)
    assert rec.flow_vph == pytest.approx(480.0)  # 40 vehicles in 5 min
    assert rec.speed_mps == pytest.approx(10.0)  # 36 km/h
    assert rec.occupancy == 0.12 and rec.distance_m == 0.0


def test_observation_by_line_location_round_trips_both_directions(clock, mapper, small_city):
    net = small_city.network
    link = 12
    rev = next(k for k in range(net.n_links) if net.src[k] == net.dst[link] and net.dst[k] == net.src[link])
    for k in (link, rev):  # the same street both ways: the line's direction decides
        e = tfo("loop-1", 900.0, link=None, intensity=10, averageVehicleSpeed=10.0)
        e["location"] = mapper.link_line(k)
        rec = round_trip(e, clock, mapper, speed_unit="m/s")
        assert rec.link == k and rec.distance_m < 0.5 and rec.sensor == "location"
        assert rec.speed_mps == 10.0


def test_observation_by_sensor_table_lane_and_device_round_trips(clock, mapper):
    e = tfo("cam-1", 300.0, link=None, averageVehicleSpeed=50.4)
    e["laneId"] = 2
    rec = round_trip(e, clock, mapper)
    assert (rec.link, rec.lane, rec.sensor) == (7, 2, "urn:ngsi-ld:TrafficFlowObserved:cam-1")
    assert math.isnan(rec.flow_vph) and math.isnan(rec.occupancy)
    e = tfo("any-id-77", 300.0, link=None, occupancy=0.3)
    e["refDevice"] = "urn:ngsi-ld:TrafficFlowObserved:cam-1"  # the table also knows devices
    rec = round_trip(e, clock, mapper)
    assert rec.link == 7 and rec.device == "urn:ngsi-ld:TrafficFlowObserved:cam-1"


def test_units_from_unit_codes_and_source_defaults(clock, mapper):
    base = to_normalized(tfo(t=600.0, interval=600.0, intensity=100, averageVehicleSpeed=20.0, occupancy=15))
    base["averageVehicleSpeed"]["unitCode"] = "MTS"
    base["occupancy"]["unitCode"] = "P1"
    rec = to_record(base, clock=clock, mapper=mapper)
    assert (rec.flow_vph, rec.speed_mps, rec.occupancy) == (pytest.approx(600.0), 20.0, pytest.approx(0.15))
    base["intensity"]["unitCode"] = "VPH"
    base["averageVehicleSpeed"]["unitCode"] = "HM"
    rec = to_record(base, clock=clock, mapper=mapper)
    assert rec.flow_vph == 100.0 and rec.speed_mps == pytest.approx(20 * 0.44704)
    kv = tfo(intensity=900, averageVehicleSpeed=12.5)  # keyValues: units come from the source
    rec = to_record(kv, clock=clock, mapper=mapper, units=Units(speed="m/s", intensity="per_hour"))
    assert (rec.flow_vph, rec.speed_mps) == (900.0, 12.5)
    rec = to_record(kv, clock=clock, mapper=mapper)  # data-model defaults: per period, km/h
    assert (rec.flow_vph, rec.speed_mps) == (pytest.approx(10800.0), pytest.approx(12.5 / 3.6))


def test_smart_data_model_example_shapes(clock, mapper):
    """DateTime @value objects, an interval in dateObserved, local time, expanded names, notifications."""
    e = {
        "id": "urn:ngsi-ld:TrafficFlowObserved:TrafficFlowObserved-Valladolid-osm-60821110",
        "type": "TrafficFlowObserved",
        "dateObserved": {
            "type": "Property",
            "value": {"@type": "DateTime", "@value": "2024-05-14T07:10:00/2024-05-14T07:15:00"},
        },
        "intensity": {"type": "Property", "value": 197},
        "occupancy": {"type": "Property", "value": 0.76},
        "refRoadSegment": {"type": "Relationship", "object": "urn:ngsi-ld:RoadSegment:3"},
        "@context": ["https://smartdatamodels.org/context.jsonld"],
    }
    rec = to_record(e, clock=clock, mapper=mapper)
    assert (rec.t, rec.interval_s, rec.link) == (900.0, 300.0, 3)  # naive times read in the feed's zone (UTC)
    expanded = {
        "id": "x",
        "type": "TrafficFlowObserved",
        "https://smartdatamodels.org/dataModel.Transportation/intensity": 5,
        "https://smartdatamodels.org/dateObserved": iso(300.0),
        "https://smartdatamodels.org/dataModel.Transportation/refRoadSegment": "urn:ngsi-ld:RoadSegment:4",
    }
    rec = to_record(expanded, clock=clock, mapper=mapper)
    assert (rec.t, rec.interval_s, rec.link, rec.flow_vph) == (300.0, 300.0, 4, pytest.approx(60.0))
    note = {
        "id": "urn:ngsi-ld:Notification:1",
        "type": "Notification",
        "subscriptionId": "urn:s:1",
        "notifiedAt": iso(301.0),
        "data": [tfo("a"), tfo("b")],
    }
    assert [x["id"][-1] for x in entities_of(note)] == ["a", "b"]
    assert entities_of([tfo("a")])[0]["id"].endswith("a") and len(entities_of(tfo("a"))) == 1


def test_clock_offsets_and_zones(clock):
    from twin.feeds import FeedClock

    assert clock.to_sim("2024-05-14T07:05:00Z") == 300.0
    assert clock.to_sim("2024-05-14T10:05:00+03:00") == 300.0
    assert clock.to_sim(clock.to_iso(123.25)) == 123.25
    helsinki = FeedClock.for_day(clock.epoch.date(), start_s=7 * 3600, timezone="Europe/Helsinki")
    assert helsinki.to_sim("2024-05-14T07:05:00") == 300.0  # naive: local time
    assert helsinki.to_sim("2024-05-14T04:05:00Z") == 300.0  # summer time: UTC+3


# --------------------------------------------------------------------------- alerts


@pytest.mark.parametrize(
    "category,sub,kind",
    [
        ("traffic", "trafficJam", "traffic_jam"),
        ("traffic", "carAccident", "accident"),
        ("security", "buildingFire", "fire"),
        ("weather", "flood", "flood"),
        ("traffic", "pothole", "hazard"),
        ("health", "heartAttack", "other"),
    ],
)
def test_alert_kinds_round_trip(category, sub, kind, clock, mapper):
    e = {
        "id": f"urn:ngsi-ld:Alert:{sub}",
        "type": "Alert",
        "category": category,
        "subCategory": sub,
        "severity": "high",
        "dateIssued": iso(1200.0),
        "validFrom": iso(1100.0),
        "validTo": iso(4800.0),
        "location": mapper.link_line(9),
        "description": "seen by a patrol",
    }
    rec = round_trip(e, clock, mapper)
    assert isinstance(rec, AlertEvent)
    assert (rec.kind, rec.sub_category, rec.category, rec.link) == (kind, sub, category, 9)
    assert (rec.t, rec.valid_from, rec.valid_to, rec.severity) == (1200.0, 1100.0, 4800.0, "high")


def test_alert_off_the_network_keeps_no_link(clock, mapper):
    lon, lat = mapper.link_point(0)["coordinates"]
    e = {
        "id": "urn:ngsi-ld:Alert:far",
        "type": "Alert",
        "category": "weather",
        "subCategory": "flood",
        "dateIssued": iso(60.0),
        "location": {"type": "Point", "coordinates": [lon + 0.2, lat]},
    }
    rec = round_trip(e, clock, mapper)
    assert rec.link == -1 and math.isnan(rec.valid_to) and math.isnan(rec.valid_from)


def test_closures_round_trip(clock, mapper):
    closed = {
        "id": "urn:ngsi-ld:Alert:c1",
        "type": "Alert",
        "category": "traffic",
        "subCategory": "roadClosed",
        "dateIssued": iso(600.0),
        "validFrom": iso(900.0),
        "validTo": iso(2700.0),
        "refRoadSegment": ["urn:ngsi-ld:RoadSegment:4", "urn:ngsi-ld:RoadSegment:5"],
    }
    rec = round_trip(closed, clock, mapper)
    assert isinstance(rec, ClosureEvent)
    assert (rec.links, rec.closed, rec.capacity_factor) == ((4, 5), True, 0.0)
    assert (rec.t, rec.valid_from, rec.valid_to) == (600.0, 900.0, 2700.0)
    works = {
        "id": "urn:ngsi-ld:Alert:w1",
        "type": "Alert",
        "category": "traffic",
        "subCategory": "roadWorks",
        "dateIssued": iso(0.0),
        "location": mapper.link_line(11),
    }
    rec = round_trip(works, clock, mapper)
    assert (rec.links, rec.closed, rec.valid_from) == ((11,), False, 0.0)
    assert rec.capacity_factor == Units().roadworks_capacity_factor
    rec = to_record(works, clock=clock, mapper=mapper, units=Units(roadworks_capacity_factor=0.25))
    assert rec.capacity_factor == 0.25


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "change,code,words",
    [
        ({"id": None}, "schema", "'id'"),
        ({"type": "TrafficFlowForecast"}, "schema", "TrafficFlowForecast"),
        ({"dateObservedTo": "yesterday"}, "schema", "dateObservedTo"),
        ({"dateObservedFrom": iso(900.0)}, "schema", "ends before it starts"),
        ({"intensity": "lots"}, "schema", "intensity must be a number"),
        ({"intensity": float("nan")}, "schema", "finite"),
        ({"laneId": -1}, "schema", "laneId"),
        ({"refRoadSegment": 5}, "schema", "refRoadSegment"),
        ({"refRoadSegment": "urn:ngsi-ld:RoadSegment:99999"}, "unmapped", "does not exist"),
        ({"refRoadSegment": "urn:x:elsewhere"}, "unmapped", "not in the sensor table"),
        ({"refRoadSegment": None}, "unmapped", "no refRoadSegment or location"),
        ({"location": {"type": "Polygon", "coordinates": []}, "refRoadSegment": None}, "schema", "location"),
    ],
)
def test_bad_observations_raise_with_the_attribute(change, code, words, clock, mapper):
    e = tfo("det-9", 600.0, link=5)
    for k, v in change.items():
        if v is None:
            e.pop(k, None)
        else:
            e[k] = v
    with pytest.raises(MessageError) as err:
        to_record(e, clock=clock, mapper=mapper)
    assert err.value.code == code and words in str(err.value)


def test_bad_units_and_missing_values(clock, mapper):
    e = to_normalized(tfo())
    e["averageVehicleSpeed"]["unitCode"] = "KNT"
    with pytest.raises(MessageError, match="unit: averageVehicleSpeed has unitCode 'KNT'"):
        to_record(e, clock=clock, mapper=mapper)
    with pytest.raises(MessageError, match="no measured value"):
        to_record(tfo(notes="quiet"), clock=clock, mapper=mapper)
    e = tfo()
    for k in ("dateObservedFrom", "dateObservedTo"):
        del e[k]
    with pytest.raises(MessageError, match="no observation time"):
        to_record(e, clock=clock, mapper=mapper)
    with pytest.raises(MessageError, match="category"):
        to_record({"id": "a", "type": "Alert", "dateIssued": iso(0)}, clock=clock, mapper=mapper)
    with pytest.raises(MessageError, match="severity"):
        to_record(
            {"id": "a", "type": "Alert", "category": "traffic", "severity": "apocalyptic", "dateIssued": iso(0)},
            clock=clock,
            mapper=mapper,
        )
    with pytest.raises(MessageError, match="roadClosed alert needs refRoadSegment or location"):
        to_record(
            {"id": "a", "type": "Alert", "category": "traffic", "subCategory": "roadClosed", "dateIssued": iso(0)},
            clock=clock,
            mapper=mapper,
        )
    for payload in (3, "text", None):
        with pytest.raises(MessageError, match="malformed"):
            entities_of(payload)
    with pytest.raises(MessageError, match="'data' list"):
        entities_of({"type": "Notification", "data": {"id": "x"}})
