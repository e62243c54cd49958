"""``twin live`` at its edges (issue 14): a feed that cannot connect fails within seconds naming the
address and why; without ``--out`` it says where the results go and writes them there; the run
folder keeps its dead-letter file (issue 15)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from tests.twin.feeds.conftest import free_port

CLI = [sys.executable, "-c", "import sys; from twin.cli import main; sys.exit(main())", "live"]
ROOT = Path(__file__).resolve().parents[3]


def _live(args: list[str], cwd: Path, timeout: float = 120.0) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    return subprocess.run(CLI + args, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


def test_an_mqtt_feed_without_a_broker_fails_within_seconds(tmp_path):
    """It used to wait on the start-up spinner forever."""
    port = free_port()  # nothing listens here
    t0 = time.monotonic()
    res = _live(["--feed", f"mqtt://127.0.0.1:{port}/city/#", "--members", "2"], tmp_path, timeout=60)
    assert time.monotonic() - t0 < 30
    assert res.returncode == 2, res.stdout + res.stderr
    err = " ".join(res.stderr.split())
    assert f"cannot connect to the MQTT broker at 127.0.0.1:{port}" in err and "refused" in err
    assert not list(tmp_path.rglob("*.jsonl")) and not list(tmp_path.rglob("*.nc"))  # nothing left behind


def test_without_out_it_says_where_results_go_and_writes_them(tmp_path):
    """It used to run the whole day and write nothing, without saying so."""
    res = _live(["--until", "00:15", "--members", "2"], tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    out = " ".join(res.stdout.split())
    (folder,) = (tmp_path / "runs").iterdir()
    assert folder.name.startswith("sample_day-live-")
    assert f"results will be written to runs/{folder.name} at the end (--out DIR to choose)" in out
    assert f"results in runs/{folder.name}" in out
    assert {"results.nc", "assimilation.nc", "summary.json", "dead_letter.jsonl"} <= {p.name for p in folder.iterdir()}
    assert [p.name for p in (tmp_path / "runs").iterdir()] == [folder.name]  # no dead-letter file left beside it


def test_the_run_folder_keeps_its_dead_letters(tmp_path):
    """``twin live --out`` used to delete its own dead-letter file when it saved."""
    res = _live(["--until", "00:15", "--members", "2", "--out", "live-out"], tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    lines = (tmp_path / "live-out" / "dead_letter.jsonl").read_text(encoding="utf-8").splitlines()
    entries = [json.loads(line) for line in lines]
    assert entries and all(e["source"] == "replay" and e["reason"] for e in entries)
    rejected = json.loads((tmp_path / "live-out" / "summary.json").read_text())
    assert rejected["scenario"] == "sample_day"


def test_bad_settings_fail_before_the_feed_is_connected(tmp_path):
    """The live twin's settings are checked before the city is built or the feed connected (issue 14):
    with no broker listening, the error is about the settings, not the feed."""
    port = free_port()  # nothing listens here
    res = _live(["--feed", f"mqtt://127.0.0.1:{port}/city/#", "--members", "0"], tmp_path, timeout=60)
    assert res.returncode == 2, res.stdout + res.stderr
    err = " ".join(res.stderr.split())
    assert "at least one member" in err and "cannot connect" not in err
    assert not list(tmp_path.rglob("*.jsonl"))


def test_a_scenario_cannot_name_a_dead_letter_file_outside_the_run_root(tmp_path):
    """A scenario file is data: ``feeds.dead_letter`` pointing outside the run root is refused before
    anything runs, and the file it names is left as it was (issue 15, part 3)."""
    victim = tmp_path / "victim.jsonl"
    victim.write_text("precious\n", encoding="utf-8")
    import shutil

    import yaml

    shutil.copytree(ROOT / "scenarios" / "library" / "feeds", tmp_path / "feeds")
    doc = yaml.safe_load((tmp_path / "feeds" / "sample_day.yaml").read_text(encoding="utf-8"))
    doc["feeds"]["dead_letter"] = str(victim)
    (tmp_path / "feeds" / "s.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")
    res = _live(["feeds/s.yaml", "--until", "00:15", "--members", "2"], tmp_path, timeout=60)
    assert res.returncode == 2, res.stdout + res.stderr
    err = " ".join(res.stderr.split())
    assert "feeds.dead_letter" in err and "outside the run root" in err
    assert victim.read_text(encoding="utf-8") == "precious\n"
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_a_missing_feed_file_is_named_without_a_traceback(tmp_path):
    """``--feed`` naming a file that is not there used to end in pydantic's raw traceback."""
    res = _live(["--feed", "replay:gone.jsonl"], tmp_path, timeout=60)
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    out = res.stdout + res.stderr
    assert "feeds.sources[0].replay.path" in out and str(tmp_path / "gone.jsonl") in " ".join(out.split())


def test_a_relative_feed_file_resolves_against_the_working_directory(tmp_path, monkeypatch):
    """As on any command line: ``--feed replay:day.jsonl.gz`` is the file here, not beside the scenario."""
    import shutil
    from argparse import Namespace

    from twin.cli.live import _live_scenario

    shutil.copy(ROOT / "scenarios" / "library" / "feeds" / "sample_day.jsonl.gz", tmp_path / "day.jsonl.gz")
    monkeypatch.chdir(tmp_path)
    scenario, _ = _live_scenario(Namespace(scenario=None, feed="replay:day.jsonl.gz", members=4, open_loop=False))
    assert [s.path for s in scenario.feeds.sources] == [str(tmp_path / "day.jsonl.gz")]


def test_a_huge_ensemble_is_refused_before_anything_is_built(tmp_path):
    """``--members`` is bounded (each member is a whole twin); it used to try to build them all."""
    res = _live(["--members", str(10**7)], tmp_path, timeout=60)
    assert res.returncode == 2
    assert "at most 200 members" in " ".join((res.stdout + res.stderr).split())
