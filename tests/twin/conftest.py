"""Small scenarios shared by the twin tests."""

from __future__ import annotations

import pytest

from scenarios import load_scenario
from twin.model import build_city

SMALL = {
    "name": "small",
    "seed": 3,
    "time": {"start": "07:00", "duration": "1h", "step": "2s"},
    "city": {"synthetic": {"blocks_x": 6, "blocks_y": 6, "bridges": 2, "zone_blocks": 2, "arterial_every": 3}},
    "demand": {"gravity": {"total_trips": 3000}},
    "traffic": {"reroute_interval": "5min"},
    "outputs": {"interval": "5min"},
}


def small_scenario(**overrides):
    return load_scenario(SMALL, overrides=overrides or None)


@pytest.fixture(scope="session")
def small_city():
    return build_city(small_scenario().city)
