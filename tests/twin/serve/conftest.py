"""A tiny drill city for the ``twin serve`` tests, and helpers."""

from __future__ import annotations

import pytest

DRILL = """\
name: serve_drill
seed: 2
time: {start: "08:00", duration: 2h, step: 2s}
city: {synthetic: {blocks_x: 4, blocks_y: 4, bridges: 1, zone_blocks: 2, arterial_every: 2}}
demand: {gravity: {total_trips: 600}}
outputs: {interval: 10min}
incidents:
  call_delay: 30s
  turnout: 20s
  drill:
    - {at: "08:05", type: fire, location: 6, severity: 1, notes: kitchen fire}
"""

OPERATOR = "op-token-0123456789abcdef"
VIEWER = "view-token-0123456789abcdef"


@pytest.fixture()
def scenario_file(tmp_path):
    path = tmp_path / "serve_drill.yaml"
    path.write_text(DRILL)
    return path


@pytest.fixture()
def token_file(tmp_path):
    path = tmp_path / "tokens.txt"
    path.write_text(f"# name role token\nduty-officer operator {OPERATOR}\nwall viewer {VIEWER}\n")
    return path


@pytest.fixture()
def twin(scenario_file):
    from scenarios import load_scenario
    from twin.model import Twin

    tw = Twin(load_scenario(str(scenario_file)))
    tw.run_until(600)
    return tw


@pytest.fixture()
def population_twin():
    """A small city with a population (so it can evacuate), five minutes in."""
    from scenarios import load_scenario
    from twin.model import Twin

    spec = {
        "name": "serve_pop",
        "seed": 5,
        "time": {"start": "06:30", "duration": "2h", "step": "2s"},
        "city": {
            "synthetic": {"blocks_x": 4, "blocks_y": 4, "zone_blocks": 2, "residents": 1500, "jobs": 900},
        },
        "outputs": {"interval": "15min"},
        "population": {"enabled": True},
    }
    tw = Twin(load_scenario(spec))
    tw.run_until(300)
    return tw
