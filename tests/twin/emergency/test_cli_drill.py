"""``twin drill``: run folder with the after-action log, injects from a file, pacing, bad input."""

from __future__ import annotations

import csv
import json
import threading
import time

import pytest
import xarray as xr

from basics.errors import InputError
from twin.cli import main
from twin.cli.drill import InjectSource, parse_inject

DRILL = """\
name: tiny_drill
seed: 2
time: {start: "08:00", duration: 40min, step: 2s}
city: {synthetic: {blocks_x: 4, blocks_y: 4, bridges: 1, zone_blocks: 2, arterial_every: 2}}
demand: {gravity: {total_trips: 400}}
outputs: {interval: 10min}
incidents:
  call_delay: 30s
  turnout: 20s
  drill:
    - {at: "08:05", type: fire, location: 6, severity: 1, notes: kitchen fire}
    - {at: "08:10", type: traffic_crash, location: "Old Bridge", severity: 1}
"""


@pytest.fixture()
def drill_file(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(DRILL)
    return path


def _rows(folder, name="after_action.csv"):
    with open(folder / name, newline="") as fh:
        return list(csv.DictReader(fh))


def test_drill_writes_run_folder_and_after_action_log(tmp_path, drill_file, capsys):
    injects = tmp_path / "injects.txt"
    injects.write_text(
        '{type: medical, location: 12, at: "08:15", severity: 2, notes: "fall"}\n'
        "# a comment\n"
        "{type: volcano, location: 1}\n"
    )
    out = tmp_path / "run"
    assert main(["drill", str(drill_file), "--out", str(out), "--inject", str(injects), "-q"]) == 0
    text = capsys.readouterr().out
    assert "inject rejected" in text and "volcano" in text
    assert {p.name for p in out.iterdir()} == {
        "results.nc",
        "summary.json",
        "scenario.yaml",
        "after_action.csv",
        ".city-twin.json",
    }  # the twin's folder marker (issue 15)
    rows = _rows(out)
    assert rows[0]["event"] == "inject_rejected" and rows[0]["clock"] == "08:00:00"
    first = rows[1]
    assert first["event"] == "occurred" and first["clock"] == "08:05:00" and first["incident_type"] == "fire"
    assert first["detail"].endswith("kitchen fire") and first["node"] == "6" and first["lon"]
    kinds = {r["event"] for r in rows}
    assert {"dispatched", "on_scene", "cleared", "inject_rejected", "road_cleared"} <= kinds
    med = [r for r in rows if r["incident_type"] == "medical"]
    assert med and med[0]["clock"] == "08:15:00" and med[0]["detail"].startswith("inject")
    with xr.open_dataset(out / "results.nc") as ds:
        assert ds.sizes["incident"] == 3 and ds.sizes["event"] == len(rows)
        assert set(ds.incident_type.values) == {"fire", "traffic_crash", "medical"}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["kpis"]["incidents_total"] == 3
    assert "response_p50_s_fire" in summary["kpis"]


def test_paced_drill_picks_up_lines_appended_to_the_watched_file(tmp_path, drill_file):
    injects = tmp_path / "live.txt"
    injects.write_text("")
    out = tmp_path / "paced"

    def feed():
        time.sleep(0.5)
        with open(injects, "a") as fh:
            fh.write('{type: medical, location: 3, notes: "live call"}\n')
            fh.write('{station: "Fire Station 1", in_service: false}\n')

    th = threading.Thread(target=feed)
    th.start()
    # 40 simulated minutes at 1200x real time: about 2 s of wall clock
    assert (
        main(
            [
                "drill",
                str(drill_file),
                "--out",
                str(out),
                "--inject",
                str(injects),
                "--speed",
                "1200",
                "--log-format",
                "jsonl",
            ]
        )
        == 0
    )
    th.join()
    rows = [json.loads(line) for line in (out / "after_action.jsonl").read_text().splitlines()]
    live = [r for r in rows if r["event"] == "occurred" and "live call" in r["detail"]]
    assert len(live) == 1
    t = live[0]["time_s"]
    assert 0 < t < 2400  # picked up while it ran, at the clock of that moment
    assert any(r["event"] == "station_out_of_service" and r["detail"] == "Fire Station 1" for r in rows)


def test_parse_inject_lines():
    assert parse_inject("  ") is None and parse_inject("# note") is None
    assert parse_inject('{"type": "fire", "location": 3}') == {"type": "fire", "location": 3}
    assert parse_inject("{type: fire, location: Old Bridge, at: 17:40}")["at"] == "17:40"  # stays a clock time
    with pytest.raises(InputError, match="unknown key"):
        parse_inject("{type: fire, location: 3, colour: red}")
    with pytest.raises(InputError, match="expected a mapping"):
        parse_inject("fire at the bridge")
    with pytest.raises(InputError, match="station, in_service"):
        parse_inject("{station: S1}")


def test_inject_source_waits_for_whole_lines(tmp_path):
    path = tmp_path / "f.txt"
    path.write_text("")
    src = InjectSource(str(path))
    with open(path, "a") as fh:
        fh.write("{type: fire, loc")
    assert src.poll() == []
    with open(path, "a") as fh:
        fh.write("ation: 3}\n{type: medical")
    assert src.poll() == ["{type: fire, location: 3}"]
    with pytest.raises(InputError, match="no such file"):
        InjectSource(str(tmp_path / "missing.txt"))


def test_drill_bad_input_exits_2(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(DRILL.replace('location: "Old Bridge"', 'location: "Lost Bridge"'))
    assert main(["drill", str(bad), "--out", str(tmp_path / "x"), "-q"]) == 2
    err = capsys.readouterr().err
    assert "incidents.drill[1]" in err and "Lost Bridge" in err
    assert not (tmp_path / "x").exists()
    assert main(["drill", str(bad), "--speed", "-3"]) == 2
