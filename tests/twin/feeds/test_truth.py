"""The truth run behind the recorded sample: deterministic by seed, incidents applied, readings
that follow the truth, and the shipped sample regenerable byte for byte."""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import numpy as np
import pytest

from experiments.truth import SAMPLE_DIR, TruthConfig, TruthIncident, feed_bytes, run_truth, write_sample
from tests.twin.conftest import SMALL
from twin.feeds import FeedClock, LinkMapper, to_record

INCIDENTS = (
    TruthIncident("crash", "arterial", "07:10", "07:40", 0.2, alert="carAccident", report_delay_s=300.0),
    TruthIncident("closure", "local", "07:20", "07:50", 0.0, closed=True, alert="roadClosed", report_delay_s=60.0),
    TruthIncident("too late for the window", "local", "07:30", "09:00", 0.5, alert=None),
)


@pytest.fixture(scope="module")
def small_truth():
    return run_truth(TruthConfig(seed=5, incidents=INCIDENTS, sensor_share=0.3), scenario=SMALL)


def test_same_seed_same_bytes_other_seed_other_feed(small_truth):
    again = run_truth(TruthConfig(seed=5, incidents=INCIDENTS, sensor_share=0.3), scenario=SMALL)
    assert feed_bytes(again.messages) == feed_bytes(small_truth.messages)
    other = run_truth(TruthConfig(seed=6, incidents=INCIDENTS, sensor_share=0.3), scenario=SMALL)
    assert feed_bytes(other.messages) != feed_bytes(small_truth.messages)
    assert other.demand["zone_jobs_factor"] != small_truth.demand["zone_jobs_factor"]


def test_incidents_change_the_truth(small_truth):
    run, ds = small_truth, small_truth.dataset
    assert [i["name"] for i in run.incidents] == ["crash", "closure"]  # the third ends after the window
    closure = run.incidents[1]
    assert len(closure["links"]) == 2  # both directions of the street
    t = ds.time.values
    during = (t > closure["start_s"] + 300) & (t <= closure["end_s"])
    assert ds.link_inflow.values[during][:, closure["links"]].sum() == 0  # nobody entered the closed street
    assert run.scenario.seed == 5 and run.demand["total_trips"] == round(3000 * 1.15)


def test_readings_follow_the_truth_with_noise(small_truth, small_city):
    run, ds = small_truth, small_truth.dataset
    net = small_city.network
    clock = FeedClock.for_day(dt.date.fromisoformat(run.config.date), start_s=7 * 3600)
    mapper = LinkMapper(net, sensors=run.sensor_table)
    obs, alerts = {}, []
    for _, env in run.messages:
        if "payload" not in env:
            continue
        try:
            rec = to_record(env["payload"], clock=clock, mapper=mapper)
        except Exception:
            continue  # the injected faults
        if rec.record == "observation":
            obs[(rec.id, rec.t)] = rec
        else:
            alerts.append(rec)
    by_id = {s["id"]: s["link"] for s in run.sensors}
    assert {r.link for r in obs.values()} <= set(by_id.values())
    assert all(r.link == by_id[r.id] for r in obs.values())  # every sensor kind maps to its own link
    assert {s["kind"] for s in run.sensors} == {"det", "loop", "cam"}
    observed = sum(r.flow_vph * r.interval_s / 3600 for r in obs.values())
    k = {float(v): i for i, v in enumerate(ds.time.values)}
    truth = sum(float(ds.link_outflow.values[k[r.t], r.link]) for r in obs.values())
    assert truth > 100 and observed == pytest.approx(truth, rel=0.1)
    speeds = [
        (r.speed_mps, float(ds.link_speed.values[k[r.t], r.link])) for r in obs.values() if r.speed_mps == r.speed_mps
    ]
    ratio = np.array([a / b for a, b in speeds])
    assert 0.9 < np.median(ratio) < 1.1 and ratio.std() < 0.2
    kinds = sorted({(a.record, getattr(a, "kind", "closure")) for a in alerts})
    assert ("alert", "accident") in kinds and ("closure", "closure") in kinds


def test_written_sample_files(small_truth, tmp_path):
    paths = write_sample(small_truth, tmp_path, name="small_day")
    meta = json.loads(paths["meta"].read_text())
    assert meta["feed_sha256"] == hashlib.sha256(paths["feed"].read_bytes()).hexdigest()
    assert meta["messages"] == len(small_truth.messages)
    assert paths["sensors"].read_text().splitlines()[0] == "id,link,segment,lon,lat,heading_deg"


def test_shipped_sample_matches_its_metadata():
    meta = json.loads((SAMPLE_DIR / "sample_day.meta.json").read_text())
    feed = (SAMPLE_DIR / "sample_day.jsonl.gz").read_bytes()
    assert hashlib.sha256(feed).hexdigest() == meta["feed_sha256"]
    assert len(feed) < 2_000_000


@pytest.mark.slow
def test_shipped_sample_regenerates_byte_for_byte():
    meta = json.loads((SAMPLE_DIR / "sample_day.meta.json").read_text())
    run = run_truth(TruthConfig(seed=meta["config"]["seed"]), scenario="light_day")
    assert hashlib.sha256(feed_bytes(run.messages)).hexdigest() == meta["feed_sha256"]
