"""The state's cost at size: KPIs kept incrementally equal the full computation exactly."""

from __future__ import annotations

import math

from twin.serve import Runner
from twin.serve.picture import IncrementalKpis, _num


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        (isinstance(x, float) and math.isnan(x) and isinstance(y, float) and math.isnan(y)) or x == y
        for x, y in ((a[k], b[k]) for k in a)
    )


def test_incremental_kpis_equal_the_full_ones_exactly(twin):
    inc = IncrementalKpis()
    for t in (900, 1500, 2400, 3000, 4200):
        twin.run_until(t)
        got = inc(twin)
        assert inc.rows == len(twin.recorder.time)  # only the new intervals were added
        assert _same(got, twin.kpis())  # bit for bit, not approximately
        assert math.isfinite(got["mean_network_speed_kmh"])


def test_a_new_recorder_starts_the_sum_again(twin, scenario_file):
    from scenarios import load_scenario
    from twin.model import Twin

    inc = IncrementalKpis()
    twin.run_until(1800)
    inc(twin)
    other = Twin(load_scenario(str(scenario_file)))  # as the shadow's representative member changing
    other.run_until(1200)
    assert _same(inc(other), other.kpis()) and inc.rows == len(other.recorder.time)


def test_published_states_carry_the_twins_kpis(twin):
    runner = Runner(twin)
    for t in (900, 1800, 3000):
        twin.run_until(t)
        runner.publish()
        assert runner.state["kpis"] == {k: _num(v) for k, v in twin.kpis().items()}
