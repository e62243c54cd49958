"""``twin serve``'s server alone: state against the twin, deltas, controls, tokens, bad input."""

from __future__ import annotations

import json
import time

import pytest

from tests.twin.serve.conftest import OPERATOR, VIEWER
from twin.serve import Runner, Tokens, build_app
from twin.serve.picture import CLOSED, _num, apply_delta

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx`:DeprecationWarning")
TestClient = pytest.importorskip("starlette.testclient").TestClient


def _client(twin, tokens=None):
    runner = Runner(twin, speed=60.0)
    return runner, TestClient(build_app(runner, tokens))


def _op(token=OPERATOR):
    return {"Authorization": f"Bearer {token}"}


def test_state_matches_the_twins_kpis_and_map(twin):
    runner, c = _client(twin)
    s = c.get("/api/state").json()
    assert s["t"] == twin.now == 600
    assert s["clock"] == "08:10:00"
    assert s["kpis"] == {k: _num(v) for k, v in twin.kpis().items()}
    counts = twin.traffic.counts()
    assert s["traffic"]["on_network"] == counts["on_network"]
    assert len(s["levels"]) == twin.city.network.n_links
    comp = twin.components["emergency"]
    assert set(s["incidents"]) == {str(i.id) for i in comp.incidents if i.open}
    assert len(s["units"]) == sum(1 for u in comp.units if not u.done)
    assert s["you"] == {"name": "local", "role": "operator"}
    m = c.get("/api/map").json()
    assert m["n_links"] == len(m["src"]) == twin.city.network.n_links
    assert "fire" in m["incident_types"]
    page = c.get("/")
    assert page.status_code == 200 and "ops.js" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert c.get("/static/ops.js").status_code == 200


def test_map_carries_the_kpi_labels_of_the_run_folders(twin):
    from twin.live.fork import HORIZON_KPI_LABELS
    from twin.results import kpi_label_table

    runner, c = _client(twin)
    labels = c.get("/api/map").json()["kpi_labels"]
    assert {k: labels[k] for k in twin.kpis()} == kpi_label_table(twin.kpis())  # the page's one table
    assert labels["mean_network_speed_kmh"] == ["Mean network speed", "km/h"]
    assert all(labels[k] == list(v) for k, v in HORIZON_KPI_LABELS.items())


def test_websocket_full_state_then_deltas_and_reconnect(twin):
    runner, c = _client(twin)
    with c.websocket_connect("/ws") as ws:
        full = ws.receive_json()
        assert full["seq"] == runner.state["seq"] and "levels" in full
        twin.run_until(900)
        runner.publish()
        d = ws.receive_json()
        assert d["delta"] is True and d["base"] == full["seq"]
        rebuilt = apply_delta({k: v for k, v in full.items() if k != "you"}, d)
        assert rebuilt == json.loads(json.dumps(runner.state))
    twin.run_until(1200)
    runner.publish()
    with c.websocket_connect("/ws") as ws:  # a browser that reconnects gets the whole state now
        again = ws.receive_json()
        assert again["seq"] == runner.state["seq"] and again["t"] == 1200 and "delta" not in again


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        (b"{not json", 400, "not JSON"),
        (b"[1, 2]", 400, "JSON object"),
        (b'{"action": "explode"}', 422, "unknown action"),
        (b'{"action": "close_road", "link": 99999}', 422, "link must be"),
        (b'{"action": "close_road", "link": "3"}', 422, "whole number"),
        (b'{"action": "speed", "value": 1e300}', 422, "speed"),
        (b'{"action": "pause", "extra": 1}', 422, "unknown field"),
        (b'{"action": "incident", "type": "fire"}', 422, "node, or x and y"),
        (b'{"action": "incident", "type": "volcano", "node": 1}', 409, "not an incident type"),
        (b'{"action": "station", "station": "Nowhere", "in_service": false}', 409, "Nowhere"),
        (b'{"action": "reopen_road", "link": 2}', 409, "no operator closure"),
        (b'{"action": "evacuate", "zones": ["Z00-00"]}', 409, "population"),
        (b'{"action": "fork", "hours": 100}', 422, "hours"),
        (b'{"a": ' * 5000 + b"1" + b"}" * 5000, 413, "at most"),
    ],
)
def test_bad_controls_get_4xx_with_reason_and_the_run_goes_on(twin, body, status, reason):
    runner, c = _client(twin)
    r = c.post("/api/control", content=body, headers={"content-type": "application/json"})
    assert r.status_code == status
    assert reason in r.json()["error"]
    twin.run_until(700)  # the twin is fine
    assert c.post("/api/control", json={"action": "pause"}).json() == {"ok": True, "outcome": "paused"}


def test_cross_site_and_foreign_host_requests_are_refused(twin):
    runner, c = _client(twin)
    r = c.post("/api/control", content=b'{"action": "pause"}', headers={"content-type": "text/plain"})
    assert r.status_code == 415
    assert c.get("/api/state", headers={"host": "evil.example:8050"}).status_code == 403
    assert not runner.paused


def test_tokens_viewer_watches_operator_acts_and_each_action_is_logged(twin, token_file):
    tokens = Tokens.from_file(token_file)
    runner, c = _client(twin, tokens)
    assert c.get("/api/state").status_code == 401
    assert c.get("/api/state", headers=_op("wrong-token-0000000000")).status_code == 401
    assert c.get("/api/state", headers=_op(VIEWER)).json()["you"] == {"name": "wall", "role": "viewer"}
    r = c.post("/api/control", json={"action": "pause"}, headers=_op(VIEWER))
    assert r.status_code == 403 and "viewer" in r.json()["error"]
    assert not runner.paused
    r = c.post("/api/control", json={"action": "incident", "type": "fire", "node": 5, "notes": "drill"}, headers=_op())
    assert r.status_code == 200, r.text
    s = c.get(f"/api/state?token={VIEWER}").json()
    new = max(s["incidents"], key=int)
    assert s["incidents"][new]["type"] == "fire"
    ops = [row for row in s["log"] if row["event"] == "operator"]
    assert ops and ops[-1]["detail"].startswith("duty-officer: incident: incident")
    assert ops[-1]["clock"] == "08:10:00"
    assert [(o["who"], o["outcome"][:7]) for o in s["operator_log"]] == [
        ("wall", "refused"),
        ("duty-officer", "inciden"),
    ]
    with c.websocket_connect(f"/ws?token={VIEWER}") as ws:
        assert ws.receive_json()["you"]["role"] == "viewer"


def test_road_closure_station_and_pace_controls(twin):
    runner, c = _client(twin)
    assert c.post("/api/control", json={"action": "close_road", "link": 7}).status_code == 200
    s = c.get("/api/state").json()
    assert s["levels"][7] == CLOSED and twin.traffic.links.is_open[7] == 0
    assert c.post("/api/control", json={"action": "close_road", "link": 7}).status_code == 409
    assert c.post("/api/control", json={"action": "reopen_road", "link": 7}).status_code == 200
    assert c.get("/api/state").json()["levels"][7] != CLOSED
    name = twin.components["emergency"].stations[0].name
    assert c.post("/api/control", json={"action": "station", "station": name, "in_service": False}).status_code == 200
    assert c.get("/api/state").json()["stations"][name]["in_service"] is False
    assert c.post("/api/control", json={"action": "speed", "value": 120}).json()["outcome"] == "speed 120x"
    assert runner.speed == 120


def test_runner_thread_advances_the_clock_and_takes_controls(twin):
    runner = Runner(twin, speed=600.0, rate_hz=10)
    runner.start()
    try:
        deadline = time.time() + 20
        while runner.state["t"] < 700 and time.time() < deadline:
            time.sleep(0.05)
        assert runner.state["t"] >= 700
        from twin.serve.controls import check_control

        net = twin.city.network
        ctl = check_control({"action": "pause"}, n_links=net.n_links, n_nodes=net.n_nodes)
        assert runner.submit(ctl, "tester").result(timeout=10) == "paused"
        t = runner.state["t"]
        time.sleep(0.3)
        assert runner.state["t"] == t and runner.state["paused"] is True
    finally:
        runner.stop()


def test_fork_runs_no_action_beside_the_what_if(twin):
    runner, c = _client(twin)
    r = c.post("/api/control", json={"action": "fork", "hours": 0.25, "close_links": [3, 4]})
    assert r.status_code == 200, r.text
    deadline = time.time() + 120
    while runner.forks[-1]["status"] == "running" and time.time() < deadline:
        time.sleep(0.2)
    f = runner.forks[-1]
    assert f["status"] == "done", f["status"]
    assert [x["name"] for x in f["results"]] == ["no action", "close 2 link(s)"]
    assert twin.now == 600  # the fork ran on a copy


def test_token_file_errors_name_the_line(tmp_path):
    from basics.errors import InputError

    bad = tmp_path / "t.txt"
    bad.write_text("ok operator 0123456789abcdef0123\nsomeone admin 0123456789abcdef0123\n")
    with pytest.raises(InputError, match="line 2: role must be viewer or operator"):
        Tokens.from_file(bad)
    bad.write_text("short viewer abc\n")
    with pytest.raises(InputError, match="at least 16"):
        Tokens.from_file(bad)


def test_cli_refuses_an_open_host_without_tokens(scenario_file, capsys):
    from twin.cli import main

    assert main(["serve", str(scenario_file), "--host", "0.0.0.0"]) != 0
    out = capsys.readouterr()
    assert "--token-file" in out.err + out.out


def test_evacuation_order_through_the_server(tmp_path, population_twin):
    tw = population_twin
    runner, c = _client(tw)
    assert c.get("/api/map").json()["evacuation"] is True
    zone = tw.city.zones.name[0]
    r = c.post("/api/control", json={"action": "evacuate", "zones": [zone], "compliance": 0.8})
    assert r.status_code == 200, r.text
    assert r.json()["outcome"] == "evacuation ordered for 1 zone(s)"
    bad = c.post("/api/control", json={"action": "evacuate", "zones": ["No Such Zone"]})
    assert bad.status_code in (409, 422) and "No Such Zone" in bad.json()["error"]
    tw.run_until(900)  # the order is applied at the next event and the run goes on
    planned = tw.components["interventions"].planned
    assert [p.spec.kind for p in planned] == ["evacuation"] and planned[0].state == "active"


def test_out_folder_keeps_the_operator_log(twin, tmp_path):
    import csv

    from rich.console import Console

    from twin.cli.serve import _save

    runner, c = _client(twin)
    c.post("/api/control", json={"action": "close_road", "link": 5})
    _save(runner, tmp_path / "run", Console(file=None, quiet=True))
    names = {p.name for p in (tmp_path / "run").iterdir()}
    assert {"results.nc", "after_action.csv", "operator_log.csv"} <= names
    rows = list(csv.DictReader(open(tmp_path / "run" / "operator_log.csv", newline="")))
    assert [(r["who"], r["action"]) for r in rows] == [("local", "close_road")]
    log = (tmp_path / "run" / "after_action.csv").read_text()
    assert "local: close_road: closed link 5" in log


def test_replay_of_recorded_intervals(twin):
    runner, c = _client(twin)
    s = c.get("/api/state").json()
    assert s["recorded"] == len(twin.recorder.time) == 1  # 10 min output interval, run to 08:10
    r = c.get("/api/replay?i=0").json()
    assert r["clock"] == "08:10" and r["n"] == 1 and len(r["levels"]) == twin.city.network.n_links
    assert all(0 <= v <= 10 for v in r["levels"])
    assert c.get("/api/replay?i=5").status_code == 404
    r1 = c.get("/api/replay?i=1")  # one past the last recorded
    assert r1.status_code == 404 and "not recorded" in r1.json()["error"]
    assert c.get("/api/replay?i=-1").status_code == 422
    assert c.get("/api/replay?i=" + "9" * 40).status_code == 422
    for bad in ("x", "1.5", "%C2%B2", "%D9%A1", ""):  # "²" and "١" are str.isdigit digits
        r = c.get("/api/replay?i=" + bad)
        assert r.status_code == 422 and "recorded interval" in r.json()["error"], bad
