"""twin compare at equilibrium (each variant equilibrated, common random numbers) and on day 1."""

from __future__ import annotations

import json

import numpy as np
import pytest

from experiments.compare import ComparisonError, compare, run_replication
from scenarios import load_scenario
from tests.experiments.conftest import TINY, tiny
from twin.equilibrium import equilibrate

EQ = {**TINY["traffic"], "equilibrium": {"iterations": 3, "gap_target": 0}}


def test_equilibrium_comparison_keeps_common_random_numbers_and_labels_both_days(tmp_path):
    base = tiny(traffic=EQ)
    same = tiny(name="same", traffic=EQ)
    res = compare(base, same, replications=2, workers=0, response="equilibrium", out=tmp_path / "cmp")
    s = res.summary
    assert s["response"] == "equilibrium" and "equilibrium" in s["response_label"]
    # the same scenario twice, same seeds: every day of every equilibrium is the same
    for row in s["kpis"] + s["day1_kpis"]:
        assert row["difference"] in (0.0, None) or np.isnan(row["difference"]), row
    assert res.kpi("equilibrium_iterations")["baseline"] == 3
    day1 = {r["key"]: r for r in s["day1_kpis"]}
    assert "equilibrium_iterations" not in day1
    # day 1 is the immediate response; after learning the day differs
    assert day1["mean_travel_time_s"]["baseline"] != res.kpi("mean_travel_time_s")["baseline"]
    ds = res.dataset
    assert ds.attrs["response"] == "equilibrium"
    np.testing.assert_array_equal(
        ds["day1_kpi_mean_travel_time_s"].values[0], ds["day1_kpi_mean_travel_time_s"].values[1]
    )
    saved = json.loads((tmp_path / "cmp" / "summary.json").read_text())
    assert saved["response"] == "equilibrium" and saved["day1_kpis"]


def test_an_equilibrated_replication_is_the_equilibrium_of_its_seed():
    sc = load_scenario(tiny(traffic=EQ))
    rep = run_replication(sc.resolved(), 9, variant="baseline", index=0, response="equilibrium")
    eq = equilibrate(sc, seed=9)
    assert rep.kpis["mean_travel_time_s"] == eq.twin.kpis()["mean_travel_time_s"]
    assert rep.day1_kpis["mean_travel_time_s"] == eq.day1_kpis["mean_travel_time_s"]
    assert rep.kpis["equilibrium_relative_gap"] == eq.final_gap


def test_day1_is_the_default_and_labelled():
    res = compare(tiny(), tiny(name="same"), replications=2, workers=0)
    assert res.summary["response"] == "day1" and "day 1" in res.summary["response_label"]
    assert "day1_kpis" not in res.summary


def test_bad_response_is_refused():
    with pytest.raises(ComparisonError, match="response"):
        compare(tiny(), tiny(), replications=2, workers=0, response="week")


def test_cli_compare_equilibrium_prints_both_tables(tmp_path, capsys):
    from twin.cli import main

    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    import yaml

    a.write_text(yaml.safe_dump(tiny(traffic=EQ)))
    b.write_text(yaml.safe_dump(tiny(name="b", traffic=EQ)))
    code = main(
        [
            "compare",
            str(a),
            str(b),
            "-n",
            "2",
            "--workers",
            "0",
            "--equilibrium",
            "--iterations",
            "2",
            "--out",
            str(tmp_path / "out"),
            "-q",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and "at equilibrium" in out and "day 1" in out
    assert main(["compare", str(a), str(b), "-n", "2", "--iterations", "2"]) == 2
    assert "--equilibrium" in capsys.readouterr().err
