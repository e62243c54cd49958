"""Time and identifiers you can trust in the feed (issue 15, part 1): a message dated ahead cannot
move the live clock or make real messages late; periods, lanes, ids and alert spans are checked;
the dead-letter file stays bounded."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import math
from pathlib import Path

import pytest

from scenarios import load_scenario
from tests.twin.feeds.conftest import DAY, dead_letters, iso, tfo
from twin.feeds import Cleanser, DeadLetter, FeedClock, FeedHub
from twin.feeds.replay import read_messages

SAMPLE = Path(__file__).resolve().parents[3] / "scenarios" / "library" / "feeds" / "sample_day.yaml"


# --------------------------------------------------------------------- the sample day


def _hostile_lines() -> list[tuple[str, str]]:
    """(line, reason code) of well-formed but untrustworthy messages, on sample-day dates."""

    def ent(name: str, **kv) -> dict:
        e = {
            "id": f"urn:ngsi-ld:TrafficFlowObserved:{name}",
            "type": "TrafficFlowObserved",
            "dateObservedFrom": "2024-05-14T09:55:00Z",
            "dateObservedTo": "2024-05-14T10:00:00Z",
            "intensity": 5,
            "refRoadSegment": "urn:ngsi-ld:RoadSegment:5",
        }
        e.update(kv)
        return e

    out = [
        (json.dumps(ent("plus2h")), "future"),  # a bare line: its own time is +2 h (arrives at 08:00)
        (
            json.dumps(
                {
                    "receivedAt": "2024-05-14T08:00:02Z",
                    "payload": ent(
                        "plus1d", dateObservedFrom="2024-05-15T07:55:00Z", dateObservedTo="2024-05-15T08:00:00Z"
                    ),
                }
            ),
            "future",
        ),
        (
            json.dumps(
                {
                    "receivedAt": "2024-05-14T08:00:03Z",
                    "payload": ent(
                        "y9999", dateObservedFrom="9999-12-31T23:55:00Z", dateObservedTo="9999-12-31T23:59:59Z"
                    ),
                }
            ),
            "future",
        ),
        (
            json.dumps(
                {
                    "receivedAt": "2024-05-14T08:00:04Z",
                    "payload": ent(
                        "year", dateObservedFrom="2023-05-14T08:00:00Z", dateObservedTo="2024-05-14T08:00:00Z"
                    ),
                }
            ),
            "implausible",
        ),
        (
            json.dumps(
                {
                    "receivedAt": "2024-05-14T08:00:05Z",
                    "payload": ent(
                        "lane",
                        laneId=10**20,
                        dateObservedFrom="2024-05-14T07:55:00Z",
                        dateObservedTo="2024-05-14T08:00:00Z",
                    ),
                }
            ),
            "schema",
        ),
        (
            json.dumps(
                {
                    "receivedAt": "2024-05-14T08:00:06Z",
                    "payload": ent(
                        "arabic3",
                        refRoadSegment="urn:ngsi-ld:RoadSegment:\u0663",
                        dateObservedFrom="2024-05-14T07:55:00Z",
                        dateObservedTo="2024-05-14T08:00:00Z",
                    ),
                }
            ),
            "schema",
        ),
        (
            json.dumps(
                {
                    "receivedAt": "2024-05-14T08:00:07Z",
                    "payload": {
                        "id": "urn:ngsi-ld:Alert:fake-closure",
                        "type": "Alert",
                        "category": "traffic",
                        "subCategory": "roadClosed",
                        "dateIssued": "2024-05-14T10:00:00Z",
                        "refRoadSegment": ["urn:ngsi-ld:RoadSegment:5"],
                    },
                }
            ),
            "future",
        ),
    ]
    return out


def _replay(scn, network, lines: list[str], tmp: Path) -> tuple[list, FeedHub]:
    path = tmp / "feed.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    s = load_scenario(scn.resolved(), overrides={"feeds.sources": [{"kind": "replay", "path": str(path)}]})
    hub = FeedHub.from_scenario(s, network, dead_letter=tmp / "dead.jsonl")
    released, t = [], 0.0
    while not hub.exhausted or hub.pending:
        t += 300.0
        released += hub.drain(t if not hub.exhausted else math.inf, flush=hub.exhausted)
    hub.stop()
    return released, hub


def test_sample_day_with_hostile_messages_mixed_in_loses_no_valid_message(tmp_path):
    """One message dated +2 h used to drop thousands of valid ones as late."""
    from twin.model import build_city

    scn = load_scenario(SAMPLE)
    network = build_city(scn.city).network
    with gzip.open(scn.feeds.sources[0].path, "rt", encoding="utf-8") as f:
        lines = f.read().splitlines()
    (tmp_path / "clean").mkdir()
    (tmp_path / "hostile").mkdir()
    clean, clean_hub = _replay(scn, network, lines, tmp_path / "clean")
    # mixed in at 08:00 of the sample day, where the feed is busy
    at = next(i for i, line in enumerate(lines) if '"receivedAt":"2024-05-14T08:00' in line)
    hostile = _hostile_lines()
    mixed, hub = _replay(scn, network, lines[:at] + [line for line, _ in hostile] + lines[at:], tmp_path / "hostile")

    def key(r):
        return (r.record, r.id, r.t, getattr(r, "link", None), getattr(r, "flow_vph", None))

    assert [key(r) for r in mixed] == [key(r) for r in clean]  # the same records, in the same order
    c0, c1 = clean_hub.totals(), hub.totals()
    assert (c1["accepted"], c1["late"], c1["duplicate"]) == (c0["accepted"], c0["late"], c0["duplicate"])
    assert c1["rejected"] == c0["rejected"] + len(hostile)
    expected = {json.loads(line).get("payload", json.loads(line))["id"]: code for line, code in hostile}
    new = [e for e in dead_letters(tmp_path / "hostile" / "dead.jsonl") if e["id"] in expected]
    got = {e["id"]: e["code"] for e in new}
    assert got == expected and len(new) == len(hostile)
    reasons = {e["id"].rsplit(":", 1)[1]: e["reason"] for e in new}
    assert "ahead of the live clock" in reasons["plus2h"] and "max_future=300" in reasons["plus2h"]
    assert "max_period" in reasons["year"] and "laneId" in reasons["lane"]
    assert "ASCII" in reasons["arabic3"]


# --------------------------------------------------------------------- the live clock


def test_one_sender_cannot_move_the_live_clock(make_hub):
    hub = make_hub()
    for s in ("a", "b", "c"):
        assert hub.push(tfo(s, 600.0, intensity=7), source="s", at=605.0)[0].status == "accepted"
    assert hub.feed_time == 600.0
    # a replay (it knows when each message arrived) dead-letters what is dated ahead at once
    (out,) = hub.push(tfo("x", 600.0 + 7200.0), source="s", at=610.0)
    assert (out.status, out.code) == ("rejected", "future") and "7190 s ahead" in out.reason
    assert hub.feed_time == 600.0 and hub.cleanser.latest_time == 600.0
    # within max_future of the clock: taken, but the clock waits for a second sender
    assert hub.push(tfo("a", 900.0, intensity=8), source="s", at=905.0)[0].status == "accepted"
    assert hub.feed_time == 600.0
    assert hub.push(tfo("b", 900.0, intensity=8), source="s", at=906.0)[0].status == "accepted"
    assert hub.feed_time == 900.0
    # a sender's alert dated ahead is no better
    (out,) = hub.push(
        {
            "id": "urn:ngsi-ld:Alert:j",
            "type": "Alert",
            "category": "traffic",
            "subCategory": "roadClosed",
            "dateIssued": iso(9000.0),
            "refRoadSegment": "urn:ngsi-ld:RoadSegment:3",
        },
        source="s",
        at=907.0,
    )
    assert out.code == "future"
    assert [r.t for r in hub.drain(1200.0)] == [600.0] * 3 + [900.0] * 2


def test_a_pushed_sender_far_ahead_is_held_then_dead_lettered(make_hub, tmp_path):
    """Pushed (MQTT, HTTP) on another day than today: no wall clock to judge by, so the record is held
    out of the queue and out of the clock, and dead-lettered once the feed moves on without it."""
    hub = make_hub()
    for s in ("a", "b"):
        hub.push(tfo(s, 600.0, intensity=1), source="mqtt")
    (out,) = hub.push(tfo("x", 600.0 + 7200.0), source="mqtt")
    assert out.status == "accepted"  # held
    assert hub.feed_time == 600.0 and hub.cleanser.latest_time == 600.0 and hub.pending == 2
    for k, t in enumerate((900.0, 1200.0), start=2):
        for s in ("a", "b"):
            hub.push(tfo(s, t, intensity=k), source="mqtt")
    assert hub.feed_time == 1200.0
    assert hub.totals() == {"accepted": 6, "rejected": 1, "late": 0, "duplicate": 0}
    (entry,) = dead_letters(tmp_path / "dead.jsonl")
    assert entry["code"] == "future" and entry["id"].endswith(":x") and "held while" in entry["reason"]
    assert all(r.id[-1] != "x" for r in hub.drain(1e6, flush=True))


def test_max_future_and_quorum_are_settings(make_hub):
    hub = make_hub(max_future="3h", clock_quorum=1)
    hub.drain(600.0)
    assert hub.push(tfo("x", 600.0 + 7200.0), source="s")[0].status == "accepted"
    assert hub.feed_time == 7800.0  # one sender is enough with clock_quorum 1


def test_a_live_feed_of_today_is_judged_by_the_wall_clock(mapper):
    from scenarios.feeds import CleansingSpec

    now = dt.datetime.now(dt.UTC)
    clock = FeedClock.for_day(now.date())
    hub = FeedHub(Cleanser(clock=clock, mapper=mapper, settings=CleansingSpec()))
    t_now = clock.now()

    def ending(t_end: float) -> dict:
        e = tfo("w", 0.0)
        e["dateObservedFrom"], e["dateObservedTo"] = clock.to_iso(t_end - 300.0), clock.to_iso(t_end)
        return e

    (out,) = hub.push(ending(t_now + 3600.0), source="s")  # the very first message, an hour ahead
    assert out.code == "future"
    assert hub.push(ending(t_now - 60.0), source="s")[0].status == "accepted"
    hub.stop()


def test_a_pushed_feed_that_resumes_after_an_outage_loses_nothing(make_hub):
    """Another day than today, nothing but the senders to tell the time: records far ahead are held
    until two senders agree, then queued; a lone one is dead-lettered once the feed moves on."""
    hub = make_hub(reorder_window=0)
    for s in ("a", "b"):
        hub.push(tfo(s, 300.0, intensity=1), source="mqtt")
    assert hub.feed_time == 300.0
    # an hour of silence, then the feed resumes; one sender also sends a reading 3 h ahead
    assert hub.push(tfo("x", 300.0 + 3 * 3600.0), source="mqtt")[0].status == "accepted"
    assert hub.push(tfo("a", 3900.0, intensity=2), source="mqtt")[0].status == "accepted"
    assert hub.feed_time == 300.0  # held: one sender alone
    assert hub.push(tfo("b", 3900.0, intensity=2), source="mqtt")[0].status == "accepted"
    assert hub.feed_time == 3900.0  # two agree: the clock moves on
    for k, t in enumerate((4200.0, 4500.0), start=3):
        for s in ("a", "b"):
            hub.push(tfo(s, t, intensity=k), source="mqtt")
    assert hub.feed_time == 4500.0
    recs = hub.drain(4500.0)
    assert sorted((r.id[-1], r.t) for r in recs) == sorted(
        (s, t) for s in "ab" for t in (300.0, 3900.0, 4200.0, 4500.0)
    )
    assert hub.totals() == {"accepted": 8, "rejected": 1, "late": 0, "duplicate": 0}
    assert hub.reasons() == {"mqtt": {"future": 1}}


def test_replay_arrival_times_ignore_one_line_far_ahead(clock, tmp_path):
    lines = [json.dumps({"receivedAt": iso(t), "payload": tfo("a", t)}) for t in (300.0, 310.0, 320.0)]
    lines.insert(1, json.dumps(tfo("evil", 7200.0)))  # bare: its own time, 2 h ahead
    lines.insert(2, json.dumps({"receivedAt": iso(86400.0), "payload": tfo("evil2", 300.0)}))
    lines += [json.dumps({"receivedAt": iso(t), "payload": tfo("a", t)}) for t in (3600.0, 3610.0, 3620.0)]
    path = tmp_path / "feed.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    arrivals = [t for t, _ in read_messages(path, clock=clock)]
    # the two lines ahead arrive with their neighbours; the real gap to 3600 s is kept
    assert arrivals == [300.0, 320.0, 320.0, 320.0, 320.0, 3600.0, 3610.0, 3620.0]


# --------------------------------------------------------------------- fields


@pytest.mark.parametrize(
    "values,code,words",
    [
        ({"laneId": 10**20}, "schema", "laneId must be an integer 0-31"),
        ({"laneId": 32}, "schema", "laneId"),
        ({"refRoadSegment": "urn:ngsi-ld:RoadSegment:\u0663"}, "schema", "ASCII"),  # Arabic-Indic 3
        ({"refRoadSegment": "urn:ngsi-ld:RoadSegment:\uff13"}, "schema", "ASCII"),  # full-width 3
        ({"refRoadSegment": "urn:ngsi-ld:RoadSegment:" + "9" * 5000}, "schema", "ASCII text of 1-256"),
        ({"id": "urn:ngsi-ld:TrafficFlowObserved:caf\u00e9"}, "schema", "id must be printable ASCII"),
        ({"refDevice": "dev\x00ice"}, "schema", "refDevice"),
        ({"dateObservedFrom": iso(300.0 - 365 * 86400.0)}, "implausible", "max_period"),
        ({"dateObservedFrom": iso(299.5)}, "implausible", "outside 1 s"),
        ({"location": {"type": "LineString", "coordinates": [[24.9, 60.1]] * 5000}}, "schema", "at most 1000"),
    ],
)
def test_every_field_is_range_checked(values, code, words, make_hub):
    hub = make_hub()
    e = tfo("r", 300.0, intensity=3)
    if "location" in values:
        del e["refRoadSegment"]
    e.update(values)
    (out,) = hub.push(e, source="s")
    assert (out.status, out.code) == ("rejected", code) and words in out.reason, out


def test_a_non_ascii_digit_names_no_link(mapper):
    from twin.feeds import MessageError

    assert mapper.segment_link("urn:ngsi-ld:RoadSegment:3") == 3
    for ref in ("urn:ngsi-ld:RoadSegment:\u0663", "urn:ngsi-ld:RoadSegment:\u00b3", "urn:ngsi-ld:RoadSegment:\uff13"):
        with pytest.raises(MessageError) as err:
            mapper.segment_link(ref)
        assert err.value.code == "unmapped"


def test_alert_spans_and_lists_are_bounded(make_hub):
    hub = make_hub()
    base = {
        "id": "urn:ngsi-ld:Alert:w",
        "type": "Alert",
        "category": "traffic",
        "subCategory": "roadWorks",
        "dateIssued": iso(300.0),
        "refRoadSegment": ["urn:ngsi-ld:RoadSegment:2"],
    }
    (out,) = hub.push(base | {"validTo": iso(300.0 + 400 * 86400.0)}, source="s")
    assert out.code == "implausible" and "validTo" in out.reason
    (out,) = hub.push(base | {"refRoadSegment": ["urn:ngsi-ld:RoadSegment:2"] * 1001}, source="s")
    assert out.code == "schema" and "at most 1000" in out.reason
    (out,) = hub.push(base | {"description": "x" * 5000}, source="s")
    assert out.code == "schema" and "description" in out.reason
    assert hub.push(base | {"validTo": iso(300.0 + 30 * 86400.0)}, source="s")[0].status == "accepted"


# --------------------------------------------------------------------- dead letters


def test_dead_letter_file_is_capped_and_rotated(tmp_path):
    path = tmp_path / "dead.jsonl"
    dl = DeadLetter(path, max_bytes=200_000, rotate_keep=2)
    junk = "j" * 100_000  # 555 MB of junk used to make a 444 MB file
    for i in range(60):
        dl.write({"code": "malformed", "reason": "not JSON", "message": junk * 2, "n": i})
    dl.close()
    files = dl.files()
    assert [p.name for p in files] == ["dead.jsonl", "dead.jsonl.1", "dead.jsonl.2"]
    assert sum(p.stat().st_size for p in files) <= 3 * 200_000
    assert dl.count == 60 and dl.rotations > 10
    last = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()][-1]
    assert last["n"] == 59 and len(last["message"]) == 65_536 and "cut" in last["note"]


def test_dead_letter_settings_reach_the_hub(small_city, tmp_path):
    from scenarios.feeds import FeedsSpec

    spec = FeedsSpec.model_validate({"date": DAY.isoformat(), "dead_letter_max_mb": 0.5, "dead_letter_keep": 1})
    hub = FeedHub.from_spec(spec, small_city.network, dead_letter=tmp_path / "d.jsonl")
    assert hub.cleanser.dead_letter.max_bytes == 500_000 and hub.cleanser.dead_letter.rotate_keep == 1
    assert not (tmp_path / "d.jsonl").exists()  # opened at the first dead letter
    hub.push("junk", source="s")
    hub.stop()
    assert len(dead_letters(tmp_path / "d.jsonl")) == 1


def test_dead_letters_are_never_appended_to_another_file(tmp_path):
    from basics.errors import InputError

    other = tmp_path / "notes.txt"
    other.write_text("my own notes\n", encoding="utf-8")
    with pytest.raises(InputError, match="not a dead-letter file"):
        DeadLetter(other)
    with pytest.raises(InputError, match="not a file"):
        DeadLetter(tmp_path)
    assert other.read_text(encoding="utf-8") == "my own notes\n"
    ours = tmp_path / "dead.jsonl"
    dl = DeadLetter(ours)
    dl.write({"code": "malformed", "reason": "x", "message": "y"})
    dl.close()
    again = DeadLetter(ours)  # a dead-letter file of ours: appended to
    again.write({"code": "malformed", "reason": "z", "message": "w"})
    again.close()
    assert len(dead_letters(ours)) == 2


def test_json_nested_too_deep_is_malformed_not_internal(make_hub, tmp_path):
    """Reported by the fuzzing suite: RecursionError was dead-lettered as 'internal' with a traceback."""
    hub = make_hub()
    deep: list = []
    for _ in range(100_000):
        deep = [deep]
    for payload in ("[" * 100_000, b"[" * 50_000 + b"]" * 50_000, deep):
        (out,) = hub.push(payload, source="s")
        assert (out.status, out.code) == ("rejected", "malformed"), out
    assert len(dead_letters(tmp_path / "dead.jsonl")) == 3
