"""File replay (JSONL/CSV, in step with the twin or paced on the wall clock), hubs from scenarios,
and the shipped sample day."""

from __future__ import annotations

import gzip
import json
import time
from pathlib import Path

import pytest

from basics.errors import InputError
from scenarios import load_scenario
from tests.twin.feeds.conftest import iso, tfo
from twin.feeds import FeedHub, parse_feed_url
from twin.feeds.replay import ReplaySource, read_messages

SAMPLE = Path(__file__).resolve().parents[3] / "scenarios" / "library" / "feeds"


def _write_feed(path: Path) -> None:
    lines = [
        json.dumps({"receivedAt": iso(305.0), "payload": tfo("a", 300.0)}),
        json.dumps(tfo("b", 300.0)),  # bare: arrives at its own time (300)
        "this line is not JSON",  # arrives with the line before it
        json.dumps({"receivedAt": iso(320.0), "raw": '{"id": "urn:ngsi-ld:Traff'}),
        json.dumps({"receivedAt": iso(610.0), "payload": [tfo("a", 600.0), tfo("b", 600.0)]}),
        "",
        json.dumps({"receivedAt": iso(700.0), "payload": tfo("a", 300.0)}),  # late (and a duplicate)
        json.dumps({"receivedAt": iso(930.0), "payload": tfo("c", 600.0)}),  # late
    ]
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


@pytest.mark.parametrize("name", ["feed.jsonl", "feed.jsonl.gz"])
def test_pull_replay_is_in_step_with_the_clock_and_deterministic(name, make_hub, clock, tmp_path):
    path = tmp_path / name
    _write_feed(path)
    runs = []
    for _ in range(2):
        hub = make_hub()
        src = hub.add_source(ReplaySource(path, clock=clock, name="file"))
        assert src.pull and src.next_arrival == 305.0
        got = []
        for t in (299.0, 400.0, 660.0, 1000.0):
            got.append([(r.id[-1], r.t) for r in hub.drain(t)])
            if t == 299.0:
                assert src.sent == 0  # nothing had arrived by then
        runs.append((got, hub.counters()))
        assert src.exhausted and hub.exhausted
    assert runs[0] == runs[1]
    got, counters = runs[0]
    assert got == [[], [("a", 300.0), ("b", 300.0)], [("a", 600.0), ("b", 600.0)], []]
    assert counters == {"file": {"accepted": 4, "rejected": 2, "late": 1, "duplicate": 1}}


def test_read_messages_arrival_times(clock, tmp_path):
    path = tmp_path / "feed.jsonl"
    _write_feed(path)
    arrivals = [t for t, _ in read_messages(path, clock=clock)]
    assert arrivals == [305.0, 305.0, 305.0, 320.0, 610.0, 700.0, 930.0]  # never backwards
    with pytest.raises(InputError, match="does not exist"):
        list(read_messages(tmp_path / "nope.jsonl", clock=clock))


def test_csv_replay(make_hub, clock, tmp_path):
    path = tmp_path / "counts.csv"
    path.write_text(
        "id,dateObserved,intensity,averageVehicleSpeed,refRoadSegment,lon,lat,receivedAt\n"
        f"urn:ngsi-ld:TrafficFlowObserved:k1,{iso(300.0)},12,40.5,urn:ngsi-ld:RoadSegment:8,,,\n"
        f"urn:ngsi-ld:TrafficFlowObserved:k2,{iso(300.0)},many,40.5,urn:ngsi-ld:RoadSegment:8,,,{iso(330.0)}\n"
    )
    hub = make_hub()
    hub.add_source(ReplaySource(path, clock=clock, name="csv"))
    (rec,) = hub.drain(1000.0)
    assert (rec.link, rec.t, rec.interval_s) == (8, 300.0, 300.0)
    assert rec.flow_vph == pytest.approx(144.0) and rec.speed_mps == pytest.approx(40.5 / 3.6)
    assert hub.reasons() == {"csv": {"schema": 1}}


def test_paced_replay_pushes_on_the_wall_clock(make_hub, clock, tmp_path):
    path = tmp_path / "feed.jsonl"
    _write_feed(path)
    hub = make_hub()
    src = hub.add_source(ReplaySource(path, clock=clock, name="paced", speedup=2000.0))
    assert not src.pull
    t0 = time.monotonic()
    with hub:
        assert hub.wait(lambda h: h.exhausted, timeout=10.0)
    took = time.monotonic() - t0
    assert 0.25 <= took < 5.0  # 625 sim seconds at 2000x: about 0.3 s
    assert hub.counters()["paced"]["accepted"] == 5
    with pytest.raises(InputError, match="speedup must be > 0"):
        ReplaySource(path, clock=clock, speedup=0)


def test_hub_from_scenario(tmp_path, small_city):
    feed = tmp_path / "day.jsonl"
    _write_feed(feed)
    (tmp_path / "sensors.csv").write_text("id,link\nurn:ngsi-ld:TrafficFlowObserved:c,9\n")
    scn = load_scenario(
        {
            "city": {"synthetic": {"blocks_x": 6, "blocks_y": 6, "bridges": 2, "zone_blocks": 2, "arterial_every": 3}},
            "time": {"start": "07:00", "duration": "1h"},
            "feeds": {
                "date": "2024-05-14",
                "sources": [{"path": str(feed)}, {"kind": "http", "port": 0}],
                "sensor_file": str(tmp_path / "sensors.csv"),
                "dead_letter": str(tmp_path / "dl.jsonl"),
                "cleansing": {"reorder_window": "2min"},
            },
        }
    )
    hub = FeedHub.from_scenario(scn, small_city.network)
    assert [s.name for s in hub.sources] == ["replay", "http"]
    with hub:
        out = hub.drain(3600.0)
    assert [r.id[-1] for r in out] == ["a", "b", "a", "b", "c"]  # c: mapped by the sensor table
    assert out[-1].link == 9
    assert hub.cleanser.window == 120.0
    assert (tmp_path / "dl.jsonl").read_text().count("\n") == 2


def test_parse_feed_url():
    assert parse_feed_url("replay:day.jsonl.gz", speedup=60) == {
        "kind": "replay",
        "path": "day.jsonl.gz",
        "speedup": 60,
    }
    assert parse_feed_url("day.jsonl") == {"kind": "replay", "path": "day.jsonl"}
    assert parse_feed_url("mqtt://broker.local:1884/city/+/traffic/#") == {
        "kind": "mqtt",
        "host": "broker.local",
        "port": 1884,
        "topic": "city/+/traffic/#",
    }
    assert parse_feed_url("mqtt://10.0.0.2") == {"kind": "mqtt", "host": "10.0.0.2", "port": 1883, "topic": "ngsi-ld/#"}
    assert parse_feed_url("http://127.0.0.1:9000/notify", name="orion") == {
        "kind": "http",
        "host": "127.0.0.1",
        "port": 9000,
        "path": "/notify",
        "name": "orion",
    }
    for bad in ("ftp://x", "mqtts://x/t", ""):
        with pytest.raises(InputError):
            parse_feed_url(bad)


def test_shipped_sample_day_replays_through_cleansing(tmp_path):
    """The recorded sample: most messages accepted, each injected fault caught, events mapped."""
    from twin.model import build_city

    meta = json.loads((SAMPLE / "sample_day.meta.json").read_text())
    scn = load_scenario(SAMPLE / "sample_day.yaml")
    hub = FeedHub.from_scenario(scn, build_city(scn.city).network, dead_letter=tmp_path / "dl.jsonl")
    kinds: dict[str, int] = {}
    closures = []
    for t in [*range(300, 86400 + 601, 300), float("inf")]:  # the last delayed messages arrive after midnight
        for r in hub.drain(float(t)):
            kinds[r.record] = kinds.get(r.record, 0) + 1
            if r.record == "closure":
                closures.append(r)
    c = hub.counters()["replay"]
    assert sum(c.values()) == meta["messages"]
    assert c["accepted"] > 0.95 * meta["messages"]
    assert c["duplicate"] > 0 and c["late"] > 0
    assert set(hub.reasons()["replay"]) >= {"malformed", "schema", "implausible", "unmapped", "stuck", "late"}
    assert kinds["closure"] == 3 and kinds["alert"] >= 4
    hidden = {tuple(sorted(i["links"])) for i in meta["incidents"] if i["alert"] in ("roadWorks", "roadClosed")}
    assert {tuple(sorted(r.links)) for r in closures} == hidden
    sensors = {s["id"]: s["link"] for s in meta["sensors"]}
    assert kinds["observation"] > 0.9 * len(sensors) * 288


def test_replay_of_messages_in_memory(make_hub, clock):
    msgs = [
        (305.0, {"receivedAt": iso(305.0), "payload": tfo("a", 300.0)}),
        (306.0, {"receivedAt": iso(306.0), "raw": '{"cut'}),
        (610.0, tfo("b", 600.0)),
    ]
    hub = make_hub()
    src = hub.add_source(ReplaySource.from_messages(msgs, clock=clock, name="mem"))
    assert [r.id[-1] for r in hub.drain(400.0)] == ["a"] and src.sent == 2
    assert [r.id[-1] for r in hub.drain(700.0)] == ["b"] and hub.exhausted
    assert hub.counters()["mem"] == {"accepted": 2, "rejected": 1, "late": 0, "duplicate": 0}
