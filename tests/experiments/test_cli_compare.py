"""``twin compare`` on the command line: output, the baseline a scenario names, clear errors."""

from __future__ import annotations

import json

import yaml

from tests.experiments.conftest import TINY, tiny
from twin.cli import main


def _write(path, doc):
    path.write_text(yaml.safe_dump(doc))
    return path


def test_scenario_naming_its_baseline(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "160")  # the table's rows on one line each
    (tmp_path / "base").mkdir()
    _write(tmp_path / "base" / "tiny.yaml", TINY)
    scen = _write(
        tmp_path / "busy.yaml", tiny(name="busy", baseline="base/tiny.yaml", demand={"gravity": {"total_trips": 4000}})
    )
    out = tmp_path / "cmp"
    assert main(["compare", str(scen), "-n", "2", "--workers", "0", "--out", str(out), "-q", "--seed", "11"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["baseline"], summary["scenario"], summary["seeds"]) == ("tiny", "busy", [11, 12])
    text = " ".join(capsys.readouterr().out.split())
    row = next(r for r in summary["kpis"] if r["key"] == "trips_total")
    assert "Trips (total)" in text and "+2,500" in text and row["difference"] == 2500
    assert "significant" in text and "4 runs" in text and str(out) in text


def _error_of(capsys, argv):
    assert main(argv) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "Traceback" not in err
    return err


def test_errors_are_one_clear_paragraph(tmp_path, capsys):
    base = _write(tmp_path / "tiny.yaml", TINY)
    err = _error_of(capsys, ["compare", str(base), str(tmp_path / "missing.yaml"), "--workers", "0"])
    assert "missing.yaml" in err and "not found" in err
    err = _error_of(capsys, ["compare", str(base), "--workers", "0"])
    assert "names no baseline" in err and "baseline: FILE.yaml" in err
    err = _error_of(capsys, ["compare", str(base), str(base), "-n", "1", "--workers", "0"])
    assert "at least 2" in err
    err = _error_of(capsys, ["compare", str(base), str(base), "--out", str(base), "--workers", "0"])
    assert "is a file" in err
    bad = _write(tmp_path / "bad.yaml", tiny(baseline="nowhere.yaml"))
    err = _error_of(capsys, ["compare", str(bad), "--workers", "0"])
    assert "baseline" in err and "nowhere.yaml" in err
