"""Smoke test of the SUMO benchmark (benchmarks/sumo.py): the shipped trips file is what
the twin imports, and every engine reports the same measures on a slice of it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sumo")

from benchmarks.peers import run_ours  # noqa: E402
from benchmarks.sumo import TRIPS_FILE, imported_case, run_sumo_files  # noqa: E402


def test_shipped_trips_file_imports_whole():
    case = imported_case(TRIPS_FILE, duration_s=3 * 3600.0)
    n_file = TRIPS_FILE.read_text().count("<trip ")
    assert n_file == 3000
    # only trips whose two ends merged into one node in validation are dropped
    assert n_file - 30 <= case.n_trips <= n_file
    assert np.all(case.trips.origin != case.trips.destination)


def test_engines_on_a_slice(tmp_path: Path):
    lines = TRIPS_FILE.read_text().splitlines()
    head = [ln for ln in lines if not ln.strip().startswith("<trip ")]
    trips = [ln for ln in lines if ln.strip().startswith("<trip ")][:60]
    small = tmp_path / "small.trips.xml"
    small.write_text("\n".join(head[:-1] + trips + head[-1:]) + "\n")
    case = imported_case(small, duration_s=3600.0)
    ours = run_ours(case, repeat=1)
    sumo = run_sumo_files(case, small, meso=True, repeat=1)
    for r in (ours, sumo):
        assert r.status == "ok", r.note
        assert r.completed >= 0.9 * case.n_trips
        assert 10.0 < r.mean_tt_s < 1000.0
        assert r.vehicle_hours > 0 and r.wall_s > 0
