"""``twin experiment run|analyze|list`` from the command line."""

from __future__ import annotations

import yaml

from twin.cli import main


def test_run_then_analyze_writes_page_pngs_and_datasets(tmp_path, capsys):
    spec = {
        "name": "grid",
        "function": "tests.experiments.ishigami:noisy",
        "factors": [{"name": "x", "levels": [1, 2, 3]}, {"name": "sleep", "levels": [0.0, 0.001]}],
        "replications": 3,
        "seed": 2,
    }
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(spec))
    store = tmp_path / "grid.zarr"
    args = ["experiment", "run", str(path), "--out", str(store), "--workers", "0", "-q"]
    assert main(args) == 2  # the function is code named by a file: refused until trusted
    assert "allow-plugins" in capsys.readouterr().err
    assert main([*args, "--allow-plugins", "tests.experiments.ishigami:noisy"]) == 0
    assert main(["experiment", "analyze", str(store), "--out", str(tmp_path / "a")]) == 0
    names = {p.name for p in (tmp_path / "a").iterdir()}
    assert {"index.html", "points.nc", "main_effects.nc", "main_effects.png", "interaction.png"} <= names
    assert "KPI means" in capsys.readouterr().out


def test_list_and_help(capsys):
    assert main(["experiment", "list"]) == 0
    out = capsys.readouterr().out
    assert "ems_fleet_call_rate" in out and "traffic_sobol" in out and "station_placement" in out
