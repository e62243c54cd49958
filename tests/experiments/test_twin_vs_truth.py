"""The twin-vs-truth experiment: its oracle (the truth's demand in the ensemble's own terms), its CLI."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from scenarios import load_scenario


@pytest.mark.parametrize("start, duration", [("00:00", "24h"), ("07:30", "3h")])
def test_true_factors_reproduce_the_truths_demand(start, duration):
    from city_models.demand import gravity_shares
    from experiments.twin_vs_truth import true_factors
    from twin.model import build_city

    sc = load_scenario("default", overrides={"time.start": start, "time.duration": duration})
    city = build_city(sc.city)
    z, g = city.zones, sc.demand.gravity
    rng = np.random.default_rng(4)
    demand = {
        "demand_scale": 1.15,
        "zone_residents_factor": np.exp(rng.normal(0, 0.3, z.n_zones)).tolist(),
        "zone_jobs_factor": np.exp(rng.normal(0, 0.3, z.n_zones)).tolist(),
        "hour_factor": np.exp(rng.normal(0, 0.2, 24)).tolist(),
    }
    a, b, level = true_factors(SimpleNamespace(demand=demand), city, sc)
    kw = {"node_zone": z.node_zone, "zone_x": z.x, "zone_y": z.y, "beta_per_km": g.beta_per_km}
    base = gravity_shares(residents=z.residents, jobs=z.jobs, **kw)
    pert = gravity_shares(
        residents=np.rint(z.residents * np.asarray(demand["zone_residents_factor"])).astype(int),
        jobs=np.rint(z.jobs * np.asarray(demand["zone_jobs_factor"])).astype(int),
        **kw,
    )
    # zone pairs: the truth's share is the plan's times exp(a_i + b_j), exactly
    np.testing.assert_allclose(base * np.exp(a[:, None] + b[None, :]), pert, rtol=1e-8, atol=1e-15)
    # hours: the plan's trips of each hour in the window, times exp(level), add up to the
    # truth's (demand_scale x the plan's) and follow its hour factors
    prof = np.asarray(g.profile)
    t0 = sc.time.start / 3600.0
    hours = np.arange(24)
    overlap = np.clip(np.minimum(hours + 1, t0 + sc.time.duration / 3600.0) - np.maximum(hours, t0), 0, None)
    w = prof * overlap / (prof * overlap).sum()
    assert np.sum(w * np.exp(level)) == pytest.approx(1.15)
    inside = overlap > 0
    f = np.asarray(demand["hour_factor"])
    np.testing.assert_allclose(np.exp(level[inside]) / f[inside], (np.exp(level[inside]) / f[inside])[0])
    assert np.all(level[~inside] == 0.0)


def test_set_values_are_typed_as_the_settings_and_bad_ones_are_named():
    from experiments.twin_vs_truth import _setting

    assert _setting("report_delay_intervals", "2") == 2 and isinstance(_setting("report_delay_intervals", "2"), int)
    assert _setting("band_cv", "0.1") == 0.1 and _setting("method", "enkf") == "enkf"
    assert _setting("estimate_demand", "False") is False
    with pytest.raises(SystemExit, match="no such assimilation setting"):
        _setting("pool_size", "8")
    with pytest.raises(SystemExit, match="members=x: not a int"):
        _setting("members", "x")
    with pytest.raises(SystemExit, match="correct_links=maybe"):
        _setting("correct_links", "maybe")
