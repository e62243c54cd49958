"""Snapshot and restore: restore-then-run equals the uninterrupted run, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from tests.twin.conftest import small_scenario
from twin.errors import InputError
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
    a.run(); b.run()
    assert a.kpis()["mean_travel_time_s"] != b.kpis()["mean_travel_time_s"]


def test_bad_snapshot_files_are_named(tmp_path):
    junk = tmp_path / "junk.snap"
    junk.write_bytes(b"hello\n")
    with pytest.raises(InputError, match="not a city-twin snapshot"):
        Twin.restore(junk)
    with pytest.raises(InputError, match="does not exist"):
        Twin.restore(tmp_path / "missing.snap")


def test_snapshot_write_is_atomic(small_city, tmp_path, monkeypatch):
    import pickle

    tw = Twin(small_scenario(), city=small_city)
    tw.run_until("07:10")
    path = tw.snapshot(tmp_path / "now.snap")
    before = path.read_bytes()

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(pickle, "dumps", boom)
    with pytest.raises(KeyboardInterrupt):
        tw.snapshot(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["now.snap"]
