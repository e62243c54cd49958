"""``twin serve --live``: shadow mode behind the page, fed by the recorded sample day (offline)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from twin.serve import Runner, build_app
from twin.serve.live import LiveDriver

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx`:DeprecationWarning")
TestClient = pytest.importorskip("starlette.testclient").TestClient
ROOT = Path(__file__).resolve().parents[3]
COUNTERS = ("accepted", "rejected", "late", "duplicate")


@pytest.fixture()
def shadow():
    from scenarios import LIBRARY_DIR, load_scenario
    from twin.feeds import FeedHub
    from twin.live import AssimilationSettings, Shadow
    from twin.model import build_city

    sc = load_scenario(LIBRARY_DIR / "feeds" / "sample_day.yaml", overrides={"time.duration": "1h"})
    city = build_city(sc.city)
    hub = FeedHub.from_scenario(sc, city.network)
    sh = Shadow(sc, hub, AssimilationSettings(members=2), city=city)
    yield sh
    sh.close()


def _same_counters(live: dict, sh) -> None:
    st = sh.status()
    for key in COUNTERS:
        assert live["feed"][key] == st[key], key
    assert live["feed"]["received"] == sh.hub.received
    assert live["feed"]["applied"] == st["accepted"] - sh.hub.pending
    lag = sh.lag_s()
    assert live["lag_sim_s"] == (round(lag) if np.isfinite(lag) else None)


def test_state_carries_the_feed_counters_and_they_equal_the_shadows(shadow):
    runner = Runner(None, live=LiveDriver(shadow))
    c = TestClient(build_app(runner))
    first = c.get("/api/state").json()["live"]
    _same_counters(first, shadow)
    seen = [first["feed"]["received"]]
    for _ in range(3):
        assert runner.live.step()
        runner.publish()
        s = c.get("/api/state").json()
        assert s["t"] == shadow.now
        _same_counters(s["live"], shadow)
        seen.append(s["live"]["feed"]["received"])
    assert seen[0] == 0 and seen[3] > seen[2] > 0  # they grow
    live = s["live"]
    assert live["lag_wall_s"] is not None and live["lag_wall_s"] >= 0
    assert live["feed_clock"] is not None and live["members"] == 2
    # the demand factors with their spread, as the ensemble has them
    mean, sd = shadow.ensemble.demand_scale()
    assert len(live["demand"]["zones"]) == shadow.ensemble.city.zones.n_zones
    np.testing.assert_allclose([z[0] for z in live["demand"]["zones"]], mean, atol=5e-4)
    np.testing.assert_allclose([z[1] for z in live["demand"]["zones"]], sd, atol=5e-4)
    # a few sensors: observed against the estimate with its 90 % band
    log = shadow.ensemble.log
    observed = {lk for _t, lk, *_ in log.observed}
    assert set(live["sensor_links"]) == observed
    assert 0 < len(live["sensors"]) <= 4
    for key, ch in live["sensors"].items():
        link = int(key)
        assert link in observed and ch["t"] == [round(t, 1) for t in log.time]
        assert ch["flow"][-1] == round(float(log.flow_mean[-1][link]), 1)
        assert all(lo <= m <= hi for lo, m, hi in zip(ch["flow_lo"], ch["flow"], ch["flow_hi"], strict=True))
        n_obs = sum(1 for t, lk, *_ in log.observed if lk == link and t >= ch["t"][0] - shadow.step_s)
        assert len(ch["obs"]) == n_obs > 0
    # the map shows the member nearest the ensemble mean
    assert runner.twin is shadow.representative()
    assert c.get("/api/map").json()["n_links"] == shadow.ensemble.city.network.n_links


def test_runner_thread_follows_the_feed_and_refuses_twin_controls(shadow):
    runner = Runner(None, speed=3600.0, live=LiveDriver(shadow))
    shadow.speed = None  # as fast as it can
    c = TestClient(build_app(runner))
    runner.start()
    try:
        deadline = time.monotonic() + 60
        while shadow.now < 900 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert shadow.now >= 900
        r = c.post("/api/control", json={"action": "pause"})
        assert r.status_code == 200
        time.sleep(0.3)  # the runner publishes after the control
        s = c.get("/api/state").json()
        assert s["paused"] and s["t"] == shadow.now
        _same_counters(s["live"], shadow)
        assert s["live"]["feed"]["accepted"] > 0
        r = c.post("/api/control", json={"action": "close_road", "link": 3})
        assert r.status_code == 409 and "shadow mode" in r.json()["error"]
        assert runner.twin.link_control.by_link == {}
    finally:
        runner.stop()


def test_a_feed_that_cannot_connect_fails_within_seconds_naming_it(tmp_path):
    from tests.twin.feeds.conftest import free_port

    port = free_port()  # nothing listens here
    cli = [sys.executable, "-c", "import sys; from twin.cli import main; sys.exit(main())", "serve"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    t0 = time.monotonic()
    res = subprocess.run(
        [*cli, "--live", f"mqtt://127.0.0.1:{port}/city/#", "--members", "2", "--port", str(free_port())],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert time.monotonic() - t0 < 30
    assert res.returncode == 2, res.stdout + res.stderr
    assert f"cannot connect to the MQTT broker at 127.0.0.1:{port}" in " ".join(res.stderr.split())


def test_out_folder_of_a_shadow_run(shadow, tmp_path):
    import csv

    from rich.console import Console

    from twin.cli.serve import _save

    runner = Runner(None, live=LiveDriver(shadow))
    c = TestClient(build_app(runner))
    for _ in range(2):
        runner.live.step()
    assert c.post("/api/control", json={"action": "close_road", "link": 3}).status_code == 409
    _save(runner, tmp_path / "run", Console(file=None, quiet=True))
    names = {p.name for p in (tmp_path / "run").iterdir()}
    assert {"results.nc", "assimilation.nc", "operator_log.csv"} <= names
    rows = list(csv.DictReader(open(tmp_path / "run" / "operator_log.csv", newline="")))
    assert [(r["who"], r["action"], r["outcome"][:8]) for r in rows] == [("local", "close_road", "refused:")]


@pytest.mark.parametrize("members", ["0", "201", "99999999999999999999", "-3"])
def test_serve_members_out_of_range_is_refused_before_anything_is_built(members, capsys):
    from twin.cli import main

    assert main(["serve", "--live", "replay:no-such-file.jsonl", "--members", members]) == 2
    assert "--members must be 1-200" in " ".join(capsys.readouterr().err.split())


def test_serve_members_not_a_number_is_a_usage_error(capsys):
    from twin.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["serve", "--live", "replay:no-such-file.jsonl", "--members", "lots"])
    assert exc.value.code == 2 and "--members" in capsys.readouterr().err
