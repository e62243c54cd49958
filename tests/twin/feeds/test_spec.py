"""The scenario's ``feeds`` section: defaults, sources, sensors, errors naming the field."""

from __future__ import annotations

import pytest

from scenarios import ScenarioError, load_scenario
from scenarios.feeds import FeedsSpec

CITY = {"synthetic": {}}


def test_default_section_has_no_sources():
    spec = FeedsSpec()
    assert spec.sources == [] and spec.sensors == [] and spec.date is None and spec.timezone == "UTC"
    assert spec.cleansing.reorder_window == 60.0 and spec.cleansing.max_speed_kmh == 200.0
    assert load_scenario({"city": CITY}).feeds == spec


def test_sources_sensors_and_round_trip(tmp_path):
    (tmp_path / "day.jsonl").write_text("")
    (tmp_path / "s.csv").write_text("id,link\na,1\n")
    scn_file = tmp_path / "scn.yaml"
    scn_file.write_text(
        "city: {synthetic: {}}\n"
        "feeds:\n"
        "  date: '2024-05-14'\n"
        "  timezone: Europe/Helsinki\n"
        "  sources:\n"
        "    - {path: day.jsonl, speedup: 60}\n"
        "    - {kind: mqtt, topic: 'city/#', client_id: twin-1, protocol: '5', session_expiry: 2h}\n"
        "    - {kind: http, port: 0, name: orion}\n"
        "  sensors:\n"
        "    - {id: cam-1, link: 4}\n"
        "    - {id: cam-2, lon: 24.9, lat: 60.2, heading_deg: 90}\n"
        "  sensor_file: s.csv\n"
        "  cleansing: {reorder_window: 2min, stuck_repeats: 0, speed_unit: m/s}\n"
        "  dead_letter: out/dead.jsonl\n"
    )
    scn = load_scenario(scn_file)
    f = scn.feeds
    assert [s.kind for s in f.sources] == ["replay", "mqtt", "http"]
    assert [s.name for s in f.sources] == ["replay", "mqtt", "orion"]
    assert f.sources[0].path == str(tmp_path / "day.jsonl") and f.sources[0].speedup == 60
    assert f.sources[1].session_expiry == 7200.0 and f.sources[1].qos == 1
    assert f.sensor_file == str(tmp_path / "s.csv") and f.dead_letter == str(tmp_path / "out" / "dead.jsonl")
    assert f.cleansing.reorder_window == 120.0
    again = load_scenario(scn.resolved())  # the resolved scenario loads back equal
    assert again.feeds == f


@pytest.mark.parametrize(
    "feeds,field,words",
    [
        ({"sources": [{"path": "missing.jsonl"}]}, "feeds.sources", "does not exist"),
        ({"sources": [{"kind": "mqtt"}, {"kind": "mqtt"}]}, "feeds.sources.1.name", "also the name"),
        ({"sources": [{"kind": "mqtt", "qos": 3}]}, "feeds.sources", "qos"),
        ({"sources": [{"kind": "http", "path": "notify"}]}, "feeds.sources", "starts with '/'"),
        ({"sensors": [{"id": "a", "link": 1, "lon": 24.0, "lat": 60.0}]}, "feeds.sensors", "exactly one"),
        ({"sensors": [{"id": "a", "lon": 24.0}]}, "feeds.sensors", "both lon and lat"),
        ({"sensors": [{"id": "a", "link": 1}, {"id": "a", "link": 2}]}, "feeds.sensors.1.id", "also the id"),
        ({"timezone": "Mars/Olympus"}, "feeds.timezone", "unknown time zone"),
        ({"cleansing": {"stuck_repeats": 1}}, "feeds.cleansing.stuck_repeats", "0 (off) or 2"),
        ({"cleansing": {"reorder_window": "soon"}}, "feeds.cleansing.reorder_window", ""),
        ({"date": "14.5.2024"}, "feeds.date", ""),
        ({"cleansing": {"clock_quorum": 0}}, "feeds.cleansing.clock_quorum", ""),
        ({"cleansing": {"max_future": "-5min"}}, "feeds.cleansing.max_future", ""),
        ({"cleansing": {"max_period": "1year"}}, "feeds.cleansing.max_period", ""),
        ({"dead_letter_max_mb": 0}, "feeds.dead_letter_max_mb", ""),
        ({"sources": [{"kind": "http", "max_connections": 0}]}, "feeds.sources", "max_connections"),
        ({"sources": [{"kind": "http", "timeout": "2h"}]}, "feeds.sources", "timeout"),
    ],
)
def test_errors_name_the_field(feeds, field, words, tmp_path):
    with pytest.raises(ScenarioError) as err:
        load_scenario({"city": CITY, "feeds": feeds})
    text = str(err.value)
    assert field in text and words in text
