"""The ``twin`` command line: runs, city info, and clear errors for bad input."""

from __future__ import annotations

import json

import pytest
import yaml

from basics.atomic import MARKER
from tests.twin.conftest import SMALL
from twin.cli import main


def _write(tmp_path, doc, name="s.yaml"):
    p = tmp_path / name
    p.write_text(yaml.safe_dump(doc))
    return p


def test_run_writes_run_folder(tmp_path, capsys):
    doc = dict(SMALL, time={"start": "07:00", "duration": "20min", "step": "2s"})
    out = tmp_path / "out"
    assert main(["run", str(_write(tmp_path, doc)), "--out", str(out), "--seed", "9", "-q"]) == 0
    # the run files, and the marker that says the twin wrote this folder (issue 15)
    assert {p.name for p in out.iterdir()} == {"results.nc", "summary.json", "scenario.yaml", MARKER}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["seed"] == 9
    text = capsys.readouterr().out
    assert "Mean travel time" in text and f"{summary['kpis']['trips_total']:,}" in text


def test_city_info_prints_size_and_notes(capsys):
    assert main(["city", "info", "default"]) == 0
    text = capsys.readouterr().out
    assert "nodes" in text and "links" in text
    assert "Bridge" in text  # the synthetic city's named bridges are listed as places


def _error_of(capsys, argv):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return " ".join(err.split())


def test_wrong_field_names_the_path(tmp_path, capsys):
    doc = dict(SMALL, time={"duraton": "1h"})
    err = _error_of(capsys, ["run", str(_write(tmp_path, doc))])
    assert "time.duraton" in err and "duration" in err


def test_missing_trips_file(tmp_path, capsys):
    doc = dict(SMALL, demand={"trips": "nowhere.csv"})
    err = _error_of(capsys, ["run", str(_write(tmp_path, doc))])
    assert "nowhere.csv" in err


def test_trips_with_unknown_node_names_the_row(tmp_path, capsys):
    (tmp_path / "trips.csv").write_text("trip_id,origin,destination,depart_s\n1,0,5,10\n2,0,999999,20\n")
    doc = dict(SMALL, demand={"trips": "trips.csv"})
    err = _error_of(capsys, ["run", str(_write(tmp_path, doc)), "--out", str(tmp_path / "o")])
    assert "trips.csv" in err and "999999" in err and "row 2" in err
    assert not (tmp_path / "o").exists()


def test_corrupt_osm_file_names_the_file(tmp_path, capsys):
    (tmp_path / "bad.osm").write_text("<osm><node id='1' lat='60.1' lon='24.9'></osm")
    doc = dict(SMALL, city={"osm": "bad.osm"})
    err = _error_of(capsys, ["run", str(_write(tmp_path, doc))])
    assert "bad.osm" in err


def test_missing_scenario_file(tmp_path, capsys):
    err = _error_of(capsys, ["run", str(tmp_path / "nope.yaml")])
    assert "nope.yaml" in err


def test_bad_argument_exits_with_usage():
    with pytest.raises(SystemExit) as exc:
        main(["run", "--seed", "many"])
    assert exc.value.code == 2


def test_out_path_that_is_a_file_is_refused_before_running(tmp_path, capsys):
    (tmp_path / "afile").write_text("keep me")
    doc = dict(SMALL, time={"start": "07:00", "duration": "10min", "step": "2s"})
    err = _error_of(capsys, ["run", str(_write(tmp_path, doc)), "--out", str(tmp_path / "afile"), "-q"])
    assert "afile" in err and "file" in err
    assert (tmp_path / "afile").read_text() == "keep me"


def test_city_info_missing_file(tmp_path, capsys):
    err = _error_of(capsys, ["city", "info", str(tmp_path / "nowhere.graphml")])
    assert "nowhere.graphml" in err and "not found" in err


def test_run_warns_when_many_trips_are_left_on_the_road(tmp_path, capsys):
    # a heavy demand crammed into 10 minutes cannot all arrive in the run
    doc = dict(
        SMALL, time={"start": "07:00", "duration": "10min", "step": "2s"}, demand={"gravity": {"total_trips": 4000}}
    )
    assert main(["run", str(_write(tmp_path, doc)), "--out", str(tmp_path / "o"), "-q"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "had not arrived" in out
