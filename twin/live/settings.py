"""The live twin's settings: how the ensemble follows the feed, checked before anything is built.

:class:`AssimilationSettings` holds every knob of the ensemble (:mod:`twin.live.ensemble`),
its demand filter (:mod:`twin.live.filter`) and its issued estimates
(:mod:`twin.live.estimate`); :meth:`AssimilationSettings.check` says what is wrong
with them (naming the field, as ``assimilation.FIELD``) against a scenario, before a
single member is built.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from basics.errors import InputError

__all__ = ["AssimilationSettings", "MAX_MEMBERS"]

#: most ensemble members a live twin runs (each is a whole twin in memory)
MAX_MEMBERS = 200


@dataclass(frozen=True)
class AssimilationSettings:
    """How the ensemble follows the feed (defaults suit 5-minute detector data)."""

    members: int = 12
    #: trips in the pool, as a multiple of the scenario's demand (the largest scale).  Members
    #: draw from one pool, so its own random layout (which node pairs, which minutes) is
    #: common to them all and persists all day: a large pool keeps that shared noise small
    #: (its variance is about ``scale / pool_factor`` of the Poisson variance of a count)
    pool_factor: float = 16.0
    #: prior sd of the log demand level and of each zone's log factor
    level_sd: float = 0.20
    zone_sd: float = 0.25
    #: random-walk sd per update of the level and zone factors
    level_walk_sd: float = 0.03
    zone_walk_sd: float = 0.015
    #: the same for the "kalman" method (per 5-minute update); the level's walk lets an hour's
    #: level keep up with its counts (a smaller one settles too soon, short of a jump)
    kalman_level_walk_sd: float = 0.03
    kalman_zone_walk_sd: float = 0.005
    #: relative noise of the detector counts (added to their Poisson variance)
    count_cv: float = 0.10
    #: additive noise of a detector count (veh per interval; counts are clipped at zero)
    count_sd: float = 1.0
    #: relative noise added to the members' speeds in the reported speed band (0: the band of
    #: the link's own mean speed, which is what a link without a detector is scored against;
    #: the flow band likewise leaves detector noise out)
    speed_cv: float = 0.0
    inflation: float = 1.0
    #: per-update factor of the walk's pull back to the plan (1: a plain random walk; below 1
    #: the factors drift back to the plan without data, which also biases a lasting offset)
    reversion: float = 1.0
    #: relaxation of the posterior spread back towards the prior's (0: none, 1: all the way)
    rtps: float = 0.9
    #: estimate a factor per destination zone too (trips scale by origin and destination)
    destination_factors: bool = True
    #: how the demand factors are estimated: "kalman" (a Kalman filter on the factors with an
    #: observation operator from the pool trips' routes: which sensor links each trip crosses,
    #: when, with what probability) or "enkf" (an ensemble Kalman filter on the members' counts)
    method: str = "kalman"
    #: relative error of the predicted counts (routes, timing, unreported incidents), "kalman".
    #: Measured as the 5-minute sensor counts' error beyond Poisson of a twin given the truth's
    #: own demand factors (the twin-vs-truth oracle, 07:00-09:00, truth seeds 2024, 1, 2, 3):
    #: 0.11-0.21 with the old all-or-nothing route choice (this was 0.15 then), 0.02-0.07 since
    #: the traffic model and the operator share the logit route choice; 0.10 leaves room for
    #: timing and unreported incidents (0.05 scores about the same on average)
    model_cv: float = 0.10
    #: relative error of a link's expected count over an interval beyond the members' spread
    #: (the routes a demand estimate cannot know), in the reported flow band
    band_cv: float = 0.07
    #: "kalman": the predicted counts are the members' ("simulated") or the operator's ("analytic")
    prediction: str = "simulated"
    #: "kalman": members draw their trips from the pool independently (else: one draw for all)
    independent_draws: bool = True
    #: "kalman": the level is the current clock hour's (the scenario's demand profile is
    #: hourly); sd of its change from one hour to the next (the within-hour walk is
    #: ``level_walk_sd``); 0: one level for the whole run
    hour_sd: float = 0.10
    #: share of the last hour's deviation from the day's level that the next hour keeps
    hour_persistence: float = 0.5
    #: what the EnKF sees: counts summed by zone ("zone") or each sensor's ("link")
    observation: str = "zone"
    #: share of each EnKF increment applied (the counts lag the demand that causes them)
    damping: float = 0.3
    #: link correction: act when observed speed < ratio x simulated speed
    slow_ratio: float = 0.7
    correction_gain: float = 0.7
    min_capacity_factor: float = 0.1
    #: demand is released to the traffic model this far ahead, a bucket at a time
    bucket_s: float = 300.0
    #: an interval's estimate is issued this many output intervals after its end, once its
    #: own observations are in (the cleanser holds messages for its reorder window, so they
    #: are assimilated at the next step); 0: issued at its end, before any of them arrive
    report_delay_intervals: int = 1
    #: alerts without an end apply this long; capacity left by an accident alert
    alert_duration_s: float = 2700.0
    alert_capacity_factor: float = 0.4
    #: switch parts off (open loop: both False)
    estimate_demand: bool = True
    correct_links: bool = True

    def check(self, scenario) -> None:
        """Raise :class:`~basics.errors.InputError` naming the first setting that cannot work.

        Parameters
        ----------
        scenario
            The scenario the ensemble follows (its demand must be a gravity demand, and
            ``bucket_s`` a whole number of its time steps).
        """
        if self.members < 1:
            raise InputError(f"assimilation needs at least one member, got {self.members}")
        if self.members > MAX_MEMBERS:
            raise InputError(f"assimilation runs at most {MAX_MEMBERS} members (each a whole twin), got {self.members}")
        if scenario.demand.gravity is None:
            raise InputError(
                "assimilation estimates demand scaling from a gravity demand: the scenario's "
                "demand must be 'gravity' (a trips table cannot be rescaled by zone)"
            )
        if abs(self.bucket_s % scenario.time.step) > 1e-9:
            raise InputError("assimilation.bucket_s must be a whole number of time steps")
        delay = self.report_delay_intervals
        if isinstance(delay, bool) or not isinstance(delay, int) or delay < 0:
            raise InputError(f"assimilation.report_delay_intervals must be a whole number >= 0, got {delay!r}")
        if not (self.pool_factor >= 1.0 and math.isfinite(self.pool_factor)):
            raise InputError(f"assimilation.pool_factor must be a finite number >= 1, got {self.pool_factor!r}")
        if not (self.band_cv >= 0.0 and math.isfinite(self.band_cv)):
            raise InputError(f"assimilation.band_cv must be a finite number >= 0, got {self.band_cv!r}")
        if self.method not in ("kalman", "enkf"):
            raise InputError(f"assimilation.method must be 'kalman' or 'enkf', got {self.method!r}")
