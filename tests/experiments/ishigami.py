"""Test-only analytical models for experiment specs (``function: tests.experiments.ishigami:...``)."""

from __future__ import annotations

import math
import os
import time

import numpy as np

#: analytical Sobol indices of Ishigami with a=7, b=0.1 (S1 and ST of x1, x2, x3)
A, B = 7.0, 0.1
_V = A**2 / 8 + B * math.pi**4 / 5 + B**2 * math.pi**8 / 18 + 0.5
_V1 = 0.5 * (1 + B * math.pi**4 / 5) ** 2
_V2 = A**2 / 8
_V13 = B**2 * math.pi**8 / 18 - B**2 * math.pi**8 / 50
S1 = (_V1 / _V, _V2 / _V, 0.0)
ST = ((_V1 + _V13) / _V, _V2 / _V, _V13 / _V)


def ishigami(values: dict, seed: int) -> dict:
    """The Ishigami function of x1, x2, x3 (the seed is not used: deterministic)."""
    x1, x2, x3 = values["x1"], values["x2"], values["x3"]
    return {"y": math.sin(x1) + A * math.sin(x2) ** 2 + B * x3**4 * math.sin(x1)}


def noisy(values: dict, seed: int) -> dict:
    """x + noise from the seed, after sleeping ``EXPERIMENT_TEST_SLEEP`` seconds; x = 13 fails."""
    time.sleep(float(os.environ.get("EXPERIMENT_TEST_SLEEP", values.get("sleep", 0.0))))
    if values["x"] == 13:
        raise ValueError("thirteen is unlucky")
    rng = np.random.default_rng(seed)
    return {"y": float(values["x"]) + float(rng.normal()), "noise": float(rng.normal())}


def station_distance(values: dict, seed: int) -> dict:
    """Mean distance from 50 random calls near (3, 3) to a station at candidate node ``station``."""
    nodes = {"A": (0.0, 0.0), "B": (3.0, 3.2), "C": (9.0, 1.0), "D": (6.0, 8.0), "E": (1.0, 9.0)}
    rng = np.random.default_rng(seed)
    calls = rng.normal(3.0, 1.0, size=(50, 2))
    sx, sy = nodes[values["station"]]
    return {"distance": float(np.hypot(calls[:, 0] - sx, calls[:, 1] - sy).mean())}
