"""Day plans: each person's chain of activities (home -> work/school/other -> home).

A plan is a short list of *legs*.  Leg ``k`` takes the person to an activity
of purpose ``purpose[k]`` (``home``, ``work``, ``school`` or ``other``), where
they stay ``duration[k]`` seconds before the next leg.  Only the first leg has
a clock time (``first_depart``, the preferred departure); later legs leave
when the activity before them ends, so a late arrival pushes the rest of the
day back as it would for a real person.  The last leg of a plan goes home and
has an infinite duration.

Templates (probabilities from :class:`PlanParams`):

* workers: home -> work [-> other] -> home [-> other -> home in the evening];
* pupils: home -> school -> home [-> other -> home];
* other adults and seniors: with ``out_share``: home -> other [-> other] ->
  home [-> other -> home], otherwise they stay home;
* children under 6 travel with an adult and have no plan of their own.

Destinations of ``home``, ``work`` and ``school`` legs are the person's own
nodes; ``other`` destinations are chosen when the person sets off.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from city_models.population import AGE_ADULT, Population

__all__ = [
    "PURPOSES",
    "P_HOME",
    "P_WORK",
    "P_SCHOOL",
    "P_OTHER",
    "MAX_LEGS",
    "ActivityTimes",
    "PlanParams",
    "Plans",
    "make_plans",
]

PURPOSES: tuple[str, ...] = ("home", "work", "school", "other")
P_HOME, P_WORK, P_SCHOOL, P_OTHER = 0, 1, 2, 3
MAX_LEGS = 6


@dataclass(frozen=True)
class ActivityTimes:
    """When an activity starts (clock, s after midnight) and how long it lasts (s); normal draws.

    ``depart_mean_s`` is the preferred departure *to* the activity when it
    starts a day; durations are cut below at ``min_duration_s``.
    """

    depart_mean_s: float
    depart_sd_s: float
    duration_mean_s: float
    duration_sd_s: float
    min_duration_s: float = 600.0


@dataclass(frozen=True)
class PlanParams:
    """Distributions of the day plans (see the module docstring)."""

    work: ActivityTimes = field(default_factory=lambda: ActivityTimes(7.75 * 3600, 3600.0, 8.5 * 3600, 3600.0, 3600.0))
    school: ActivityTimes = field(default_factory=lambda: ActivityTimes(7.6 * 3600, 900.0, 6.5 * 3600, 1800.0, 3600.0))
    other: ActivityTimes = field(default_factory=lambda: ActivityTimes(11.0 * 3600, 3.0 * 3600, 5400.0, 3600.0, 600.0))
    #: time at home between two tours (its departure time is not used)
    home: ActivityTimes = field(default_factory=lambda: ActivityTimes(0.0, 0.0, 2.0 * 3600, 3600.0, 1200.0))
    stop_after_work: float = 0.3
    worker_evening: float = 0.45
    student_other: float = 0.35
    out_share: float = 0.9
    chain_other: float = 0.25
    second_tour: float = 0.4

    def check(self) -> None:
        """Raise ValueError for a share outside [0, 1] or an impossible duration."""
        for name in ("stop_after_work", "worker_evening", "student_other", "out_share", "chain_other", "second_tour"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"plans: {name} must lie in [0, 1], got {v}")
        for name in ("work", "school", "other", "home"):
            a = getattr(self, name)
            if a.depart_sd_s < 0 or a.duration_sd_s < 0 or a.duration_mean_s <= 0 or a.min_duration_s < 0:
                raise ValueError(f"plans: {name} needs a positive duration and non-negative spreads")


class Plans(NamedTuple):
    """Every person's plan (``L = MAX_LEGS`` columns; unused legs have purpose -1)."""

    n_legs: np.ndarray  # int8 [P]
    purpose: np.ndarray  # int8 [P, L]
    duration: np.ndarray  # float32 [P, L] s at the leg's destination (inf: rest of the day)
    first_depart: np.ndarray  # float64 [P] clock s of the first leg (NaN: no plan)

    @property
    def n_trips(self) -> int:
        """The number of trips (legs) over all persons."""
        return int(self.n_legs.astype(np.int64).sum())


def _durations(a: ActivityTimes, n: int, rng: np.random.Generator) -> np.ndarray:
    return np.maximum(a.duration_mean_s + a.duration_sd_s * rng.standard_normal(n), a.min_duration_s)


def _departures(a: ActivityTimes, n: int, rng: np.random.Generator) -> np.ndarray:
    t = a.depart_mean_s + a.depart_sd_s * np.clip(rng.standard_normal(n), -3.0, 3.0)
    return np.clip(t, 0.0, 86399.0)


def make_plans(pop: Population, *, rng: np.random.Generator, params: PlanParams = PlanParams()) -> Plans:
    """Draw a day plan for every person (deterministic given ``rng``)."""
    params.check()
    n = pop.n_persons
    purpose = np.full((n, MAX_LEGS), -1, np.int8)
    duration = np.zeros((n, MAX_LEGS), np.float32)
    n_legs = np.zeros(n, np.int64)
    first = np.full(n, np.nan)
    u = rng.random((n, 4))
    dur = {name: _durations(getattr(params, name), n, rng) for name in ("work", "school", "home")}
    dur_other = _durations(params.other, 3 * n, rng).reshape(n, 3)

    def add(mask: np.ndarray, purp: int, d: np.ndarray) -> None:
        rows = np.flatnonzero(mask)
        k = n_legs[rows]
        purpose[rows, k] = purp
        duration[rows, k] = d[rows]
        n_legs[rows] += 1

    worker = pop.worker
    pupil = pop.student & ~worker
    rest = (pop.age_group >= AGE_ADULT) & ~worker
    out = rest & (u[:, 0] < params.out_share)
    # first tour
    add(worker, P_WORK, dur["work"])
    add(worker & (u[:, 1] < params.stop_after_work), P_OTHER, dur_other[:, 0])
    add(pupil, P_SCHOOL, dur["school"])
    add(out, P_OTHER, dur_other[:, 0])
    add(out & (u[:, 1] < params.chain_other), P_OTHER, dur_other[:, 1])
    evening = (
        (worker & (u[:, 2] < params.worker_evening))
        | (pupil & (u[:, 2] < params.student_other))
        | (out & (u[:, 2] < params.second_tour))
    )
    add(worker | pupil | out, P_HOME, np.where(evening, dur["home"], np.inf))
    # second tour
    add(evening, P_OTHER, dur_other[:, 2])
    add(evening, P_HOME, np.full(n, np.inf))
    first[worker] = _departures(params.work, n, rng)[worker]
    first[pupil] = _departures(params.school, n, rng)[pupil]
    first[out] = _departures(params.other, n, rng)[out]
    return Plans(n_legs=n_legs.astype(np.int8), purpose=purpose, duration=duration, first_depart=first)
