"""A queueing check: one station with c units, Poisson calls at the station (no travel), exponential
on-scene times, no traffic -- an M/M/c queue. The simulated probability of waiting and mean wait
must match Erlang C within the confidence interval of independent replications."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from tests.twin.emergency.helpers import line_city, scenario
from twin.model import Twin

LAM_H, MEAN_S, C = 4.0, 1800.0, 3  # calls per hour, mean service, units: offered load a = 2, rho = 2/3
HOURS, WARMUP_H, REPS = 100, 5, 20


def erlang_c(c: int, a: float) -> float:
    """Probability an arriving call waits in an M/M/c queue with offered load ``a`` (Erlang C)."""
    top = a**c / math.factorial(c) * c / (c - a)
    return top / (sum(a**k / math.factorial(k) for k in range(c)) + top)


def _replication(seed: int, city) -> tuple[float, float]:
    sc = scenario(
        {
            "call_delay": 0,
            "turnout": 0,
            "types": {
                "medical": {
                    "units": {"ambulance": 1},
                    "severity": {1: 1.0},
                    "transport": 0.0,
                    "on_scene": {"dist": "exponential", "mean": MEAN_S},
                }
            },
            "rates": {"medical": {"per_hour": LAM_H, "nodes": [0]}},
        },
        {
            "stations": [{"name": "S", "kind": "ems", "node": 0, "units": {"ambulance": C}}],
            "hospitals": [{"name": "H", "node": 1, "beds": 1}],
        },
        duration=f"{HOURS}h",
        interval="10h",
        step="10s",
        seed=seed,
        traffic={"routing": "static"},
    )
    tw = Twin(sc, city=city)
    tw.run()
    em = tw.components["emergency"]
    incs = [i for i in em.incidents if i.t_reported >= WARMUP_H * 3600 and math.isfinite(i.t_dispatched)]
    wait = np.asarray([i.t_dispatched - i.t_reported for i in incs])
    # no travel: every dispatched unit is on scene at once
    assert all(i.t_on_scene == i.t_dispatched for i in incs)
    return float(np.mean(wait > 1e-9)), float(wait.mean())


def test_mmc_matches_erlang_c():
    city = line_city(2)
    res = np.asarray([_replication(seed, city) for seed in range(REPS)])
    a = LAM_H * MEAN_S / 3600.0
    pw = erlang_c(C, a)
    wq = pw / (C / MEAN_S - LAM_H / 3600.0)  # seconds
    t = stats.t.ppf(0.975, REPS - 1)
    for k, (name, truth) in enumerate((("P(wait)", pw), ("mean wait s", wq))):
        m, half = res[:, k].mean(), t * res[:, k].std(ddof=1) / math.sqrt(REPS)
        assert abs(m - truth) <= half, f"{name}: {m:.4g} ± {half:.3g} (95 % CI) vs Erlang C {truth:.4g}"
        # and the interval is tight enough to mean something
        assert half < 0.25 * truth, f"{name}: interval ±{half:.3g} too wide"
