"""Cleansing: each bad message is dead-lettered with its reason; duplicates, late and out-of-order
messages are handled as documented; counters add up; nothing a message holds stops the hub."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.twin.feeds.conftest import dead_letters, iso, tfo
from twin.feeds import AlertEvent, Observation, to_normalized


def _replace(e, **change):
    e = dict(e)
    for k, v in change.items():
        if v is None:
            e.pop(k, None)
        else:
            e[k] = v
    return e


BAD = [  # (payload, code, words in the reason)
    (b'{"id": "urn:ngsi-ld:TrafficFl', "malformed", "not JSON"),
    (b"\xff\xfe garbage", "malformed", "not JSON"),
    ("42", "malformed", "expected an NGSI-LD entity"),
    ("[]", "malformed", "no entities"),
    ({"type": "Notification", "data": "nope"}, "malformed", "'data' list"),
    ([17], "malformed", "must be a JSON object"),
    (_replace(tfo(), id=None), "schema", "missing or empty entity 'id'"),
    (_replace(tfo(), type="ParkingSpot"), "schema", "'ParkingSpot' is not one the twin reads"),
    (_replace(tfo(), dateObservedTo=None, dateObservedFrom=None), "schema", "no observation time"),
    (_replace(tfo(), dateObservedTo="14/05/2024 07:05"), "schema", "dateObservedTo is not an ISO 8601"),
    (_replace(tfo(), intensity="n/a"), "schema", "intensity must be a number"),
    (tfo(notes="no values"), "schema", "no measured value"),
    (
        {**to_normalized(tfo()), "occupancy": {"type": "Property", "value": 5, "unitCode": "XYZ"}},
        "unit",
        "occupancy has unitCode 'XYZ'",
    ),
    (tfo(intensity=-3), "implausible", "negative intensity"),
    (tfo(averageVehicleSpeed=-1.0), "implausible", "negative averageVehicleSpeed"),
    (tfo(averageVehicleSpeed=412.0), "implausible", "412 km/h is above max_speed_kmh=200"),
    (tfo(occupancy=1.7), "implausible", "occupancy 1.7 is above 1"),
    (tfo(intensity=100_000), "implausible", "above max_flow_vph_per_lane=3000"),
    (tfo("ghost", link=None), "unmapped", "not in the sensor table"),
    (
        tfo("far", link=None) | {"location": {"type": "Point", "coordinates": [25.5, 60.5]}},
        "unmapped",
        "no link within snap_max_m",
    ),
    (
        {"id": "a", "type": "Alert", "subCategory": "flood", "dateIssued": iso(0)},
        "schema",
        "missing attribute 'category'",
    ),
]


@pytest.mark.parametrize("payload,code,words", BAD, ids=[f"{i}-{b[1]}" for i, b in enumerate(BAD)])
def test_each_bad_message_is_dead_lettered_with_its_reason(payload, code, words, make_hub, tmp_path):
    hub = make_hub()
    raw = json.dumps(payload) if isinstance(payload, (dict, list)) else payload
    (outcome,) = hub.push(raw, source="mqtt")
    assert (outcome.status, outcome.code) == ("rejected", code) and words in outcome.reason
    (entry,) = dead_letters(tmp_path / "dead.jsonl")
    assert (entry["source"], entry["status"], entry["code"]) == ("mqtt", "rejected", code)
    assert words in entry["reason"]
    assert entry["message"] is not None  # the message itself is kept for a person to look at
    assert hub.counters() == {"mqtt": {"accepted": 0, "rejected": 1, "late": 0, "duplicate": 0}}
    assert hub.reasons() == {"mqtt": {code: 1}}
    # the hub goes on: the next good message is taken
    assert hub.push(json.dumps(tfo("fine", 600.0)), source="mqtt")[0].status == "accepted"


def test_duplicates_are_counted_and_conflicts_rejected(make_hub, tmp_path):
    hub = make_hub()
    msg = tfo("d1", 300.0)
    assert [o.status for o in hub.push(msg, source="a")] == ["accepted"]
    assert [o.status for o in hub.push(json.dumps(msg), source="a")] == ["duplicate"]
    assert hub.push(to_normalized(msg), source="b")[0].status == "duplicate"  # same data, other form
    changed = dict(msg, intensity=msg["intensity"] + 1)
    (o,) = hub.push(changed, source="a")
    assert (o.status, o.code) == ("rejected", "conflict") and "other values" in o.reason
    lane = dict(msg, laneId=1)  # another lane of the same sensor is another observation
    assert hub.push(lane, source="a")[0].status == "accepted"
    assert hub.counters() == {
        "a": {"accepted": 2, "rejected": 1, "late": 0, "duplicate": 1},
        "b": {"accepted": 0, "rejected": 0, "late": 0, "duplicate": 1},
    }
    assert [e["code"] for e in dead_letters(tmp_path / "dead.jsonl")] == ["conflict"]  # duplicates are not
    assert len(hub.drain(10_000)) == 2


def test_reorder_window_and_late_observations(make_hub, tmp_path):
    hub = make_hub(reorder_window=60)
    for t in (600.0, 300.0, 900.0):  # arrival order is not time order
        hub.push(tfo("r", t), source="s")
    assert [r.t for r in hub.drain(700.0)] == [300.0, 600.0]  # released: t <= 700 - 60
    assert hub.watermark == 640.0
    (o,) = hub.push(tfo("r", 620.0, interval=20.0), source="s")  # behind the watermark: late
    assert (o.status, o.code) == ("late", "late")
    assert hub.push(tfo("r", 650.0, interval=30.0), source="s")[0].status == "accepted"  # within: reordered
    assert [r.t for r in hub.drain(1000.0)] == [650.0, 900.0]
    (entry,) = dead_letters(tmp_path / "dead.jsonl")
    assert entry["status"] == "late" and "already released" in entry["reason"]
    assert hub.counters()["s"] == {"accepted": 4, "rejected": 0, "late": 1, "duplicate": 0}
    hub.push(tfo("r", 1200.0), source="s")
    assert hub.drain(1200.0) == [] and [r.t for r in hub.drain(1200.0, flush=True)] == [1200.0]


def test_late_alerts_are_still_delivered_flagged(make_hub):
    hub = make_hub()
    hub.drain(3600.0)
    alert = {
        "id": "urn:ngsi-ld:Alert:1",
        "type": "Alert",
        "category": "traffic",
        "subCategory": "carAccident",
        "dateIssued": iso(1800.0),
        "validTo": iso(2400.0),
        "refRoadSegment": "urn:ngsi-ld:RoadSegment:3",
    }
    assert hub.push(alert, source="s")[0].status == "accepted"
    (rec,) = hub.drain(3700.0)
    assert isinstance(rec, AlertEvent) and rec.late and rec.link == 3 and rec.kind == "accident"
    assert hub.push(alert, source="s")[0].status == "duplicate"


def test_stuck_sensor_is_rejected_until_the_reading_changes(make_hub):
    hub = make_hub(stuck_repeats=3)
    statuses = [hub.push(tfo("s1", 300.0 * k), source="x")[0] for k in range(1, 6)]
    assert [o.status for o in statuses] == ["accepted", "accepted", "rejected", "rejected", "rejected"]
    assert statuses[2].code == "stuck" and "3th time in a row" in statuses[2].reason
    assert hub.push(tfo("s1", 1800.0, intensity=21), source="x")[0].status == "accepted"
    # zero readings (an empty road at night) are never "stuck"
    zeros = [hub.push(tfo("s2", 300.0 * k, intensity=0, occupancy=0), source="x")[0].status for k in range(1, 6)]
    assert zeros == ["accepted"] * 5


def test_dead_letter_lines_are_flushed_one_by_one(make_hub, tmp_path):
    hub = make_hub()
    for n in range(1, 4):
        hub.push(b"not json", source="s")
        assert len(dead_letters(tmp_path / "dead.jsonl")) == n  # readable before the file is closed
    with open(tmp_path / "dead.jsonl", encoding="utf-8") as f:
        assert all(json.loads(line)["code"] == "malformed" for line in f)


def test_an_unexpected_error_is_dead_lettered_not_raised(make_hub, tmp_path, monkeypatch):
    import twin.feeds.cleanse as cleanse

    hub = make_hub()

    def boom(*a, **k):
        raise ZeroDivisionError("surprise")

    monkeypatch.setattr(cleanse, "decode", boom)
    (o,) = hub.push(tfo(), source="s")
    assert (o.status, o.code) == ("rejected", "internal") and "ZeroDivisionError: surprise" in o.reason
    monkeypatch.setattr(cleanse, "entities_of", boom)
    assert hub.push(tfo(), source="s")[0].code == "internal"
    assert [e["code"] for e in dead_letters(tmp_path / "dead.jsonl")] == ["internal", "internal"]


def test_notification_with_mixed_entities_and_counter_variables(make_hub):
    hub = make_hub()
    note = {"type": "Notification", "data": [tfo("a", 300.0), tfo("b", 300.0, intensity=-1), tfo("a", 300.0)]}
    assert [o.status for o in hub.push(json.dumps(note), source="http")] == ["accepted", "rejected", "duplicate"]
    hub.push("oops", source="mqtt")
    v = hub.data_vars()
    assert list(v["coord:feed_source"].values) == ["http", "mqtt"]
    assert list(v["coord:feed_outcome"].values) == ["accepted", "rejected", "late", "duplicate"]
    np.testing.assert_array_equal(v["feed_messages"].values, [[1, 1, 0, 1], [0, 1, 0, 0]])
    assert list(v["coord:feed_reason"].values) == ["implausible", "malformed"]
    np.testing.assert_array_equal(v["feed_rejections"].values, [[1, 0], [0, 1]])
    assert hub.totals() == {"accepted": 1, "rejected": 2, "late": 0, "duplicate": 1}


def test_released_records_are_typed_and_ordered(make_hub):
    hub = make_hub()
    hub.push(
        [tfo("x", 900.0), tfo("y", 300.0, link=None) | {"id": "urn:ngsi-ld:TrafficFlowObserved:cam-1"}], source="s"
    )
    hub.push(
        {
            "id": "urn:ngsi-ld:Alert:w",
            "type": "Alert",
            "category": "traffic",
            "subCategory": "roadWorks",
            "dateIssued": iso(600.0),
            "refRoadSegment": ["urn:ngsi-ld:RoadSegment:2"],
        },
        source="s",
    )
    out = hub.drain(2000.0)
    assert [(r.record, r.t) for r in out] == [("observation", 300.0), ("closure", 600.0), ("observation", 900.0)]
    assert isinstance(out[0], Observation) and out[0].link == 7 and out[1].links == (2,)
    # the live clock is where two senders agree (x at 900, cam-1 at 300); the latest record is x's
    assert hub.pending == 0 and hub.feed_time == 300.0 and hub.cleanser.latest_time == 900.0


def test_dedup_memory_is_bounded_by_the_horizon(make_hub):
    hub = make_hub(dedup_horizon=600)
    for k in range(1, 40):
        hub.push(tfo("m", 300.0 * k), source="s")
        hub.drain(300.0 * k + 60)
    assert len(hub.cleanser._seen) <= 6
    # a repeat older than the horizon is no longer known as a duplicate: it is late
    assert hub.push(tfo("m", 300.0), source="s")[0].status == "late"
