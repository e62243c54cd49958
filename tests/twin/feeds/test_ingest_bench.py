"""Smoke test of the ingest benchmark (the figure itself comes from ``python -m benchmarks.ingest``)."""

from __future__ import annotations

import json

from benchmarks.ingest import main, run_ingest


def test_ingest_benchmark_runs_on_a_slice(tmp_path, capsys):
    res = run_ingest(repeat=1, limit=1500)
    run = res["runs"][0]
    assert res["messages"] == 1500 and run["messages"] == 1500
    assert sum(run["counters"].values()) == 1500 and run["released"] == run["counters"]["accepted"]
    assert res["msg_per_s"] > 0 and res["msg_per_s_cpu"] >= res["msg_per_s"] * 0.5
    assert main(["--limit", "300", "--repeat", "1", "--json", str(tmp_path / "r.json")]) == 0
    assert "msg/s" in capsys.readouterr().out
    assert json.loads((tmp_path / "r.json").read_text())["messages"] == 300
