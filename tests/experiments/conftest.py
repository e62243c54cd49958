"""Tiny scenarios and one shared two-process Dask cluster for the experiments tests."""

from __future__ import annotations

import pytest

from experiments.executor import Executor

#: a 30-minute morning on a small synthetic city: each run takes well under a second
TINY = {
    "name": "tiny",
    "seed": 5,
    "time": {"start": "07:00", "duration": "30min", "step": "2s"},
    "city": {"synthetic": {"blocks_x": 5, "blocks_y": 5, "bridges": 2, "zone_blocks": 2, "arterial_every": 3}},
    "demand": {"gravity": {"total_trips": 1500}},
    "traffic": {"reroute_interval": "5min"},
    "outputs": {"interval": "5min"},
}


def tiny(**changes):
    """TINY with top-level sections replaced."""
    return {**TINY, **changes}


@pytest.fixture(scope="session")
def cluster():
    """A LocalCluster of 2 worker processes, started once (start-up takes seconds)."""
    ex = Executor(workers=2)
    yield ex
    ex.close()
