"""Snapshot and restore: restore-then-run equals the uninterrupted run, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from basics.errors import InputError
from tests.twin.conftest import small_scenario
from twin.model import Twin

PLAN = [
    {"kind": "close", "place": "Old Bridge", "at": "07:20", "until": "07:40"},
    {"kind": "demand", "scale": 1.3, "at": "07:25", "until": "07:50"},
    {"kind": "signal", "road": "Old Bridge", "cycle": 100, "at": "07:10", "until": "07:45"},
]


def _identical(a: xr.Dataset, b: xr.Dataset) -> None:
    assert set(a.data_vars) == set(b.data_vars)
    for name in a.data_vars:
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)
    assert {k: v for k, v in a.attrs.items()} == {k: v for k, v in b.attrs.items()}


@pytest.mark.parametrize("split", ["07:15", "07:20", "07:31:07"])
def test_restore_then_run_equals_the_uninterrupted_run(small_city, tmp_path, split):
    whole = Twin(small_scenario(interventions=PLAN), city=small_city)
    whole.run()
    part = Twin(small_scenario(interventions=PLAN), city=small_city)
    part.run_until(split)
    path = part.snapshot(tmp_path / "now.snap")
    part.run()  # the original goes on: the snapshot did not disturb it
    _identical(whole.results(), part.results())
    back = Twin.restore(path)
    assert back.now == part.now or back.now < part.now
    back.run()
    _identical(whole.results(), back.results())


def test_a_restored_twin_can_take_other_interventions_as_a_fork(small_city, tmp_path):
    tw = Twin(small_scenario(), city=small_city)
    tw.run_until("07:20")
    path = tw.snapshot(tmp_path / "now.snap")
    a, b = Twin.restore(path), Twin.restore(path)
    b.link_control.apply(small_city.places["Old Bridge"], source="fork: close", closed=True)
    a.run()
    b.run()
    assert a.kpis()["mean_travel_time_s"] != b.kpis()["mean_travel_time_s"]


def test_bad_snapshot_files_are_named(tmp_path):
    junk = tmp_path / "junk.snap"
    junk.write_bytes(b"hello\n")
    with pytest.raises(InputError, match="not a city-twin snapshot"):
        Twin.restore(junk)
    with pytest.raises(InputError, match="does not exist"):
        Twin.restore(tmp_path / "missing.snap")


def test_snapshot_write_is_atomic(small_city, tmp_path, monkeypatch):
    import os

    tw = Twin(small_scenario(), city=small_city)
    tw.run_until("07:10")
    path = tw.snapshot(tmp_path / "now.snap")
    before = path.read_bytes()

    def boom(*a, **k):
        raise KeyboardInterrupt

    # interrupted after the new state is written to a temporary file, before it replaces the old
    # (snapshots are no longer pickles, so interrupting pickle.dumps no longer reaches them)
    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(KeyboardInterrupt):
        tw.snapshot(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["now.snap"]


def test_fork_runs_variants_against_no_action_from_the_snapshot(small_city, tmp_path):
    from experiments.executor import Executor
    from twin.live.fork import fork, load_variant

    tw = Twin(small_scenario(), city=small_city)
    tw.run_until("07:20")
    snap = tw.snapshot(tmp_path / "now.snap")
    (tmp_path / "close.yaml").write_text(
        "name: close\ninterventions:\n  - {kind: close, place: Old Bridge, at: 0, until: 30min}\n"
    )
    (tmp_path / "same.yaml").write_text("name: nothing either\ninterventions: []\n")
    variants = [load_variant(tmp_path / "close.yaml"), load_variant(tmp_path / "same.yaml")]
    with Executor(serial=True) as ex:
        res = fork(snap, variants, horizon_s=1800.0, executor=ex)
    assert [r.name for r in res] == ["no action", "close", "nothing either"]
    assert all(r.sim_from_s == 1200.0 and r.sim_to_s == 3000.0 for r in res)
    assert res[2].kpis == res[0].kpis  # an empty what-if is "no action", exactly
    assert res[1].kpis["h_mean_travel_time_s"] > res[0].kpis["h_mean_travel_time_s"]
    # the fork's closure starts at the snapshot time and ends 30 min later
    from pydantic import TypeAdapter

    from scenarios.interventions import InterventionSpec
    from twin.interventions import ensure

    twin_close = Twin.restore(snap)
    spec = TypeAdapter(InterventionSpec).validate_python({"kind": "close", "place": "Old Bridge", "until": "30min"})
    ensure(twin_close).add([spec])
    twin_close.run_until(3001)
    p = twin_close.components["interventions"].planned[0]
    assert (p.applied_s, p.reverted_s) == (1200.0, 3000.0)


def test_bad_variant_files_are_named(tmp_path):
    from twin.live.fork import load_variant

    (tmp_path / "bad.yaml").write_text("interventions:\n  - {kind: close}\n")
    with pytest.raises(InputError, match=r"bad.yaml: interventions\[0\]"):
        load_variant(tmp_path / "bad.yaml")
    with pytest.raises(InputError, match="does not exist"):
        load_variant(tmp_path / "missing.yaml")


def test_restore_is_bit_identical_with_incidents_and_units_on_the_road(small_city, tmp_path):
    incidents = {
        "rates": {"medical": {"per_hour": 12}, "traffic_crash": {"per_hour": 4}},
        "drill": [
            {"at": "07:14", "type": "fire", "location": "Old Bridge", "severity": 2},
            {"at": "07:16", "type": "traffic_crash", "location": "North Bridge", "severity": 2},
        ],
    }
    over = {"incidents": incidents, "interventions": PLAN}
    whole = Twin(small_scenario(**over), city=small_city)
    whole.run()
    part = Twin(small_scenario(**over), city=small_city)
    part.run_until("07:17:30")
    em = part.components["emergency"]
    assert any(not i.t_cleared <= part.now for i in em.incidents)  # some still open (NaN: not cleared)
    path = part.snapshot(tmp_path / "now.snap")
    back = Twin.restore(path)
    back.run()
    a, b = whole.results(), back.results()
    assert "incident" in a.dims and a.sizes["incident"] > 2
    _identical(a, b)
