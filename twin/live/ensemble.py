"""Keeping the twin close to the observed city: an ensemble of twins, corrected by live data.

What is estimated, and how
--------------------------
- **Demand** (b): each member's trips come from an oversampled pool (the
  scenario's gravity demand times ``pool_factor``, each pool trip with its own
  uniform number ``u``); a pool trip departs when ``u < scale / pool_factor``
  with ``scale = exp(level + zone[origin zone] + dest[destination zone])``.
  Trips are released to the traffic model a bucket at a time, just before they
  depart, so a corrected scale acts on the demand still to come.  The log
  factors ``theta = (zone_1..zone_Z, level, dest_1..dest_Z)`` are estimated
  from the observed link counts in one of two ways:

  - ``method="kalman"`` (default): a Kalman filter on ``theta`` whose
    observation operator is built from the pool itself (:class:`~twin.crossings.Crossings`).
    When a pool trip departs it is routed over the members' current travel
    times with the traffic model's own route choice
    (:func:`kernels.assimilation.sensor_crossings`), which says which sensor
    links it crosses, with what probability, and when.  A sensor's expected
    count in a window is then a sum over the trips crossing it then of their
    release probabilities, so its derivative by the log factors (``H``, the
    count's attribution to origin zones, destination zones and the level) is
    exact, full rank whatever the ensemble size, and aware that a count
    answers to demand released minutes earlier: the prediction is the
    members' simulated count, moved from the factors each trip was released
    with to the current ones.  The level is the current clock hour's (the
    scenario's demand profile is hourly): the state also holds the previous
    hour's level, which the counts of its trips still on the road update,
    and the day's level; a new hour starts from the day's level plus
    ``hour_persistence`` of the last hour's deviation.  Count errors are the
    truth's Poisson noise and the members' (both from the *predicted* count:
    weights from the observed counts favour the low ones and bias the
    estimate down), the detectors' and the model's.  Members are drawn from
    the posterior (fixed standard normal offsets, so each keeps its identity)
    and draw their trips from the pool independently, so their mean is a
    smoother estimate of the expected flows.  The pool is large (16x the demand):
    its own layout (which node pairs, which minutes) is common to every member and
    lasts all day, so a small pool is a persistent error on every link.
  - ``method="enkf"``: an ensemble Kalman filter
    (:func:`kernels.assimilation.enkf_update`) on the members' own counts,
    summed by zone; members share one draw from the pool (common random
    numbers), so their differences say what the factors do to the counts.
    It needs no routing, but its covariance has the ensemble's rank (11 for
    12 members, for 33 factors): it follows the level, not the zone pattern.
- **Link state** (a): where a sensor sees speeds well below what the members
  simulate, something the twin does not know is holding traffic (a crash
  nobody reported, road works): the sensor link's capacity is nudged down in
  every member (through :class:`~twin.linkcontrol.LinkControl`, so it reverts
  exactly) until simulated and observed speeds agree, and relaxed back once
  they do.  Incident alerts and closures from the feed are applied as they
  arrive (a capacity drop or a closure, for their validity or a default time);
  weather and security alerts that name no road segment (a flood "reported
  near" a bridge) are left to the emergency services, not turned into closures.
- **Issued estimates**: an interval's estimate is issued once its own counts
  are in (``report_delay_intervals`` after its end: the cleanser holds messages
  for its reorder window, so they are assimilated at the next step).  The
  members' counts answer to the factors their trips were released with; the
  issued counts are moved to the filter's current ones, trip by trip, over every
  link the trips cross then (:meth:`twin.crossings.Crossings.flow_shift`).  So
  when the counts say an hour's demand jumped, the trips already on the road
  carry the jump at once, instead of only those released after it was seen.
- **Uncertainty**: each issued interval gives the predictive distribution of
  each link's count -- Poisson around an expected count that is uncertain by the
  members' spread, their mean's error and ``band_cv`` (negative binomial) -- and
  speed (the members', optionally with a relative noise ``speed_cv``): a mean and
  a 5-95 % band; the spread of the demand factors is recorded too.

The members are ordinary :class:`~twin.model.Twin` objects with one more
component (:class:`PoolDemand`), so snapshots, forks and results work on them.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import xarray as xr
from scipy.special import ndtr

from kernels.assimilation import enkf_update
from twin.components import Component
from twin.crossings import Crossings, count_band
from twin.errors import InputError
from twin.recorder import at_time
from twin.rng import component_rng

__all__ = ["AssimilationSettings", "PoolDemand", "Ensemble"]

log = logging.getLogger(__name__)


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


class PoolDemand(Component):
    """Releases a member's pool trips bucket by bucket at the current demand scale."""

    name = "pool_demand"
    kpi_labels: ClassVar[dict[str, tuple[str, str]]] = {
        "demand_level": ("Estimated demand level (x scenario)", ""),
    }

    def __init__(
        self, twin, *, origin, destination, depart, u, zone, dest_zone=None, pool_factor: float, bucket_s: float
    ) -> None:
        super().__init__(twin)
        depart = np.asarray(depart, np.float64)
        # pool arrays already in departure order (the ensemble's) are shared, not copied
        order = slice(None) if np.all(depart[1:] >= depart[:-1]) else np.argsort(depart, kind="stable")
        self.origin = np.asarray(origin, np.int32)[order]
        self.destination = np.asarray(destination, np.int32)[order]
        self.depart = depart[order]
        self.u = np.asarray(u, np.float64)[order]
        self.zone = np.asarray(zone, np.int32)[order]
        self.dest_zone = np.asarray(zone if dest_zone is None else dest_zone, np.int32)[order]
        self.pool_factor = float(pool_factor)
        self.bucket_s = float(bucket_s)
        self.n_zones = int(twin.city.zones.n_zones)
        self.log_zone = np.zeros(self.n_zones)  # by origin zone
        self.log_dest = np.zeros(self.n_zones)  # by destination zone
        self.log_level = 0.0
        #: probability each pool trip was released with (NaN: not decided yet)
        self.p_used = np.full(self.depart.size, np.nan)
        self.next_s = 0.0  # next release time (kept for snapshots)
        self.cursor = 0  # pool trips before this one have been decided
        self.released = 0

    def start(self) -> None:
        self.twin.env.process(self._release())

    def __getstate__(self) -> dict:
        # a snapshot keeps only the trips still to be decided: the rest cannot change
        state = self.__dict__.copy()
        for name in ("origin", "destination", "depart", "u", "zone", "dest_zone", "p_used"):
            state[name] = state[name][self.cursor :].copy()
        state["cursor"] = 0
        return state

    def _release(self):
        env = self.twin.env
        while self.cursor < self.depart.size:
            yield at_time(env, self.next_s)
            end = env.now + self.bucket_s
            hi = int(np.searchsorted(self.depart, end, side="left"))
            sl = slice(self.cursor, hi)
            f = np.exp(self.log_level + self.log_zone[self.zone[sl]] + self.log_dest[self.dest_zone[sl]])
            p = np.minimum(f / self.pool_factor, 1.0)
            self.p_used[sl] = p
            take = self.u[sl] < p
            if take.any():
                self.twin.add_trips(
                    self.origin[sl][take],
                    self.destination[sl][take],
                    self.depart[sl][take],
                    source="assimilated demand",
                )
            self.released += int(take.sum())
            self.cursor = hi
            self.next_s = end

    def kpis(self) -> dict[str, float]:
        return {"demand_level": float(math.exp(self.log_level))}


@dataclass
class _Held:
    """A link change the assimilation holds in every member."""

    handles: list[int]
    until_s: float = math.inf


@dataclass
class _Log:
    time: list[float] = field(default_factory=list)
    flow_mean: list[np.ndarray] = field(default_factory=list)
    flow_lo: list[np.ndarray] = field(default_factory=list)
    flow_hi: list[np.ndarray] = field(default_factory=list)
    speed_mean: list[np.ndarray] = field(default_factory=list)
    speed_lo: list[np.ndarray] = field(default_factory=list)
    speed_hi: list[np.ndarray] = field(default_factory=list)
    theta_mean: list[np.ndarray] = field(default_factory=list)
    theta_sd: list[np.ndarray] = field(default_factory=list)
    dest_mean: list[np.ndarray] = field(default_factory=list)
    dest_sd: list[np.ndarray] = field(default_factory=list)
    level: list[float] = field(default_factory=list)
    level_sd: list[float] = field(default_factory=list)
    n_obs: list[int] = field(default_factory=list)
    corrected: list[int] = field(default_factory=list)


class Ensemble:
    """An ensemble of twins that follows the observations (see the module docstring).

    Parameters
    ----------
    scenario
        The scenario (gravity demand: its trips become the members' pools).
    settings
        :class:`AssimilationSettings`.
    seed
        Base seed (default: the scenario's); member ``i`` uses its own stream.
    city
        The built city (optional).
    """

    def __init__(
        self, scenario, settings: AssimilationSettings | None = None, *, seed: int | None = None, city=None
    ) -> None:
        from scenarios import load_scenario
        from twin.model import Twin, build_city, build_demand

        self.settings = s = settings or AssimilationSettings()
        if s.members < 1:
            raise InputError(f"assimilation needs at least one member, got {s.members}")
        if scenario.demand.gravity is None:
            raise InputError(
                "assimilation estimates demand scaling from a gravity demand: the scenario's "
                "demand must be 'gravity' (a trips table cannot be rescaled by zone)"
            )
        self.scenario = scenario
        self.seed = int(scenario.seed if seed is None else seed)
        self.city = city if city is not None else build_city(scenario.city)
        interval = float(scenario.outputs.interval)
        if abs(s.bucket_s % scenario.time.step) > 1e-9:
            raise InputError("assimilation.bucket_s must be a whole number of time steps")
        if (
            isinstance(s.report_delay_intervals, bool)
            or not isinstance(s.report_delay_intervals, int)
            or s.report_delay_intervals < 0
        ):
            raise InputError(
                f"assimilation.report_delay_intervals must be a whole number >= 0, got {s.report_delay_intervals!r}"
            )
        if not (s.pool_factor >= 1.0 and math.isfinite(s.pool_factor)):
            raise InputError(f"assimilation.pool_factor must be a finite number >= 1, got {s.pool_factor!r}")
        if not (s.band_cv >= 0.0 and math.isfinite(s.band_cv)):
            raise InputError(f"assimilation.band_cv must be a finite number >= 0, got {s.band_cv!r}")
        empty = load_scenario(
            scenario.resolved() | {"demand": {"gravity": {**scenario.demand.gravity.model_dump(), "total_trips": 0}}}
        )
        self.rng = component_rng(self.seed, "assimilation")
        z = self.city.zones
        self.members: list[Twin] = []
        pools = []
        # one pool for every member (common random numbers): members differ only in their
        # demand factors, so their differences say what the factors do to the counts
        big = scenario.model_copy(deep=True)
        big.demand.gravity.total_trips = int(round(scenario.demand.gravity.total_trips * s.pool_factor))
        pool_rng = component_rng(self.seed, "assimilation pool")
        trips = build_demand(big, self.city, pool_rng)
        u = pool_rng.random(trips.origin.size)
        order = np.argsort(trips.depart_s, kind="stable")  # one sorted copy, shared by the members
        pool_od = {
            "origin": trips.origin[order].astype(np.int32),
            "destination": trips.destination[order].astype(np.int32),
            "depart": trips.depart_s[order],
        }
        pool_od["zone"] = z.node_zone[pool_od["origin"]].astype(np.int32)
        pool_od["dest_zone"] = z.node_zone[pool_od["destination"]].astype(np.int32)
        for i in range(s.members):
            if i and s.method == "kalman" and s.independent_draws:
                # the Kalman filter's operator needs no common random numbers: members
                # release independent draws from the pool, so their mean is a smoother
                # estimate of the expected flows
                u = pool_rng.random(trips.origin.size)
            tw = Twin(empty, seed=self.seed, city=self.city)
            comp = PoolDemand(tw, **pool_od, u=u[order], pool_factor=s.pool_factor, bucket_s=s.bucket_s)
            tw.components[comp.name] = comp
            comp.start()
            self.members.append(tw)
            pools.append(comp)
        self.pools = pools
        nz = z.n_zones
        self.theta = np.zeros((s.members, nz + 1 + (nz if s.destination_factors else 0)))
        if s.estimate_demand and s.members > 1:
            self.theta[:, :nz] = self.rng.normal(0.0, s.zone_sd, (s.members, nz))
            self.theta[:, nz] = self.rng.normal(0.0, s.level_sd, s.members)
            if s.destination_factors:
                self.theta[:, nz + 1 :] = self.rng.normal(0.0, s.zone_sd, (s.members, nz))
        if s.method not in ("kalman", "enkf"):
            raise InputError(f"assimilation.method must be 'kalman' or 'enkf', got {s.method!r}")
        # the Kalman filter's state: mean and covariance of theta; members are drawn from it
        # with fixed standard normal offsets (centred), so each keeps its identity over time
        p = self.theta.shape[1]
        prior_var = np.concatenate([np.full(nz, s.zone_sd**2), [s.level_sd**2], np.full(p - nz - 1, s.zone_sd**2)])
        self.walk_var = np.concatenate(
            [np.full(nz, s.zone_walk_sd**2), [s.level_walk_sd**2], np.full(p - nz - 1, s.zone_walk_sd**2)]
        )
        if s.method == "kalman":
            self.walk_var = np.concatenate(
                [
                    np.full(nz, s.kalman_zone_walk_sd**2),
                    [s.kalman_level_walk_sd**2],
                    np.full(p - nz - 1, s.kalman_zone_walk_sd**2),
                ]
            )
        # the Kalman state: theta (its level is the current clock hour's), the previous
        # hour's level (its trips are still on the road, and their counts still inform
        # it), and the day's level: each hour's level is the day's plus a deviation
        self.mean = np.zeros(p + 2)
        hv = s.hour_sd**2
        self.cov = np.diag(np.concatenate([prior_var, [s.level_sd**2 + hv, s.level_sd**2]]))
        self.cov[nz, nz] += hv
        self.cov[nz, p] = self.cov[p, nz] = s.level_sd**2 + hv
        self.cov[nz, p + 1] = self.cov[p + 1, nz] = self.cov[p, p + 1] = self.cov[p + 1, p] = s.level_sd**2
        self.start_s = float(scenario.time.start)
        self.hour = math.floor(self.start_s / 3600.0)  # clock hour (since the start's midnight) of the level
        if s.method == "kalman" and s.estimate_demand and s.members > 1:
            zz = self.rng.normal(0.0, 1.0, (s.members, p))  # members draw theta only
            zz -= zz.mean(axis=0)
            self._offsets = zz / zz.std(axis=0)
            self.theta = self._draw_members()
        self._push_theta()
        self._crossings = Crossings(self.pools[0], nz, destination_factors=s.destination_factors)
        self.interval_s = interval
        self.now = 0.0
        self.held: dict[tuple[str, object], _Held] = {}
        self.link_factor = np.ones(self.city.network.n_links)
        self.log = _Log()
        self._next_row = 0  # members' recorder rows before this one have been issued
        self._pending_obs: list = []

    # ------------------------------------------------------------ parameters
    def _draw_members(self) -> np.ndarray:
        p = self.theta.shape[1]
        sd = np.linalg.cholesky(self.cov[:p, :p] + 1e-12 * np.eye(p))
        th = self.mean[:p] + self._offsets @ sd.T
        return np.clip(th, -2.0, math.log(self.settings.pool_factor))

    def _push_theta(self) -> None:
        nz = self.city.zones.n_zones
        for th, pool in zip(self.theta, self.pools):
            pool.log_zone = th[:nz].copy()
            pool.log_level = float(th[nz])
            if th.size > nz + 1:
                pool.log_dest = th[nz + 1 :].copy()

    def demand_scale(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and sd over members of each zone's demand scale ``exp(level + zone)``."""
        nz = self.city.zones.n_zones
        sc = np.exp(self.theta[:, nz : nz + 1] + self.theta[:, :nz])
        return sc.mean(axis=0), sc.std(axis=0)

    # ------------------------------------------------------------ the loop
    def advance(self, t: float, records=()) -> None:
        """Take feed records (already cleansed, time-ordered), run every member to ``t``,
        and assimilate the observations whose interval has been simulated.
        """
        for r in records:
            kind = getattr(r, "record", "")
            if kind == "observation":
                self._pending_obs.append(r)
            elif kind == "alert":
                self._alert(r)
            elif kind == "closure":
                self._closure(r)
        self._expire()
        for m in self.members:
            m.run_until(t)
        self.now = t
        self._assimilate()

    def _apply_everywhere(self, key, links, *, until_s: float, **change) -> None:
        old = self.held.pop(key, None)
        if old is not None:
            for m, h in zip(self.members, old.handles):
                m.link_control.revert(h)
        handles = [
            m.link_control.apply(links, source=f"assimilation {key[0]} {key[1]}", **change) for m in self.members
        ]
        self.held[key] = _Held(handles=handles, until_s=until_s)

    def _release(self, key) -> None:
        old = self.held.pop(key, None)
        if old is not None:
            for m, h in zip(self.members, old.handles):
                m.link_control.revert(h)

    def _expire(self) -> None:
        for key in [k for k, h in self.held.items() if h.until_s <= self.now]:
            self._release(key)

    def _alert(self, r) -> None:
        if r.link < 0 or r.kind not in ("accident", "flood", "fire", "jam", "other", "roadworks"):
            return
        if getattr(r, "category", "traffic") not in ("", "traffic") and not getattr(r, "ref", ()):
            # a weather or security alert placed only by a point near a road (a flood or a
            # building fire "reported near" it) says nothing sure about the road: the
            # emergency services take it; the twin does not close roads on a guess
            return
        until = r.valid_to if math.isfinite(getattr(r, "valid_to", math.nan)) else r.t + self.settings.alert_duration_s
        if r.kind == "flood":
            self._apply_everywhere(("alert", r.id), [r.link], until_s=until, closed=True)
        elif r.kind in ("accident", "fire"):
            self._apply_everywhere(
                ("alert", r.id), [r.link], until_s=until, capacity_factor=self.settings.alert_capacity_factor
            )

    def _closure(self, r) -> None:
        if not r.links:
            return
        until = r.valid_to if math.isfinite(r.valid_to) else math.inf
        if r.closed:
            self._apply_everywhere(("closure", r.id), list(r.links), until_s=until, closed=True)
        else:
            self._apply_everywhere(
                ("closure", r.id), list(r.links), until_s=until, capacity_factor=max(r.capacity_factor, 1e-3)
            )

    def _member_rows(self, t_obs: float) -> list[int] | None:
        rows = []
        for m in self.members:
            times = m.recorder.time
            k = int(np.searchsorted(times, t_obs - 1e-6))
            if k >= len(times) or abs(times[k] - t_obs) > 1e-6:
                return None
            rows.append(k)
        return rows

    def _assimilate(self) -> None:
        s = self.settings
        due = [o for o in self._pending_obs if o.t <= self.now + 1e-9]
        self._pending_obs = [o for o in self._pending_obs if o.t > self.now + 1e-9]
        usable = []
        for o in due:
            rows = self._member_rows(o.t)
            if rows is not None:
                usable.append((o, rows))
        nz = self.city.zones.n_zones
        if s.method == "kalman":
            if s.estimate_demand and len(self.members) > 1:
                self._kalman(usable)
            corrected = self._correct_links(usable) if s.correct_links else 0
            self._record(len(usable), corrected)
            return
        # random walk, then the EnKF update on the counts
        if s.estimate_demand and len(self.members) > 1:
            walk = np.concatenate(
                [np.full(nz, s.zone_walk_sd), [s.level_walk_sd], np.full(self.theta.shape[1] - nz - 1, s.zone_walk_sd)]
            )
            # random walk (mean-reverting towards the plan when reversion < 1)
            self.theta = s.reversion * self.theta + self.rng.normal(0.0, 1.0, self.theta.shape) * walk
        flows = [(o, rows) for o, rows in usable if math.isfinite(o.flow_vph)]
        if s.estimate_demand and len(self.members) > 1 and flows:
            obs, pred, var = self._zone_counts(flows)
            eps = self.rng.normal(0.0, 1.0, pred.shape) * np.sqrt(var)
            prior_sd = self.theta.std(axis=0)
            # the counts answer to demand released a few minutes earlier, so the same
            # shortfall shows again before a correction can act: take part of each
            # increment (a damped update) or the estimate overshoots and oscillates
            post = self.theta + s.damping * (
                enkf_update(self.theta, pred, obs, var, eps, inflation=s.inflation) - self.theta
            )
            # relaxation to prior spread (Whitaker & Hamill 2012): a small ensemble
            # fed many observations would otherwise collapse and stop learning
            mean = post.mean(axis=0)
            post_sd = np.maximum(post.std(axis=0), 1e-12)
            factor = 1.0 + s.rtps * (prior_sd - post_sd) / post_sd
            self.theta = np.clip(mean + (post - mean) * factor, -2.0, math.log(s.pool_factor))
        self._push_theta()
        corrected = self._correct_links(usable) if s.correct_links else 0
        self._record(len(usable), corrected)

    def _kalman(self, usable) -> None:
        """Kalman update of the demand factors from each sensor's count (see :class:`~twin.crossings.Crossings`)."""
        s = self.settings
        nz = self.city.zones.n_zones
        p = self.theta.shape[1]
        self.cov[:p, :p] += np.diag(self.walk_var)  # the factors random-walk between updates
        flows: dict[tuple[int, float], tuple] = {}
        for o, rows in usable:
            if math.isfinite(o.flow_vph) and o.lane < 0:
                flows[(int(o.link), float(o.t))] = (o, rows)  # a repeat replaces the earlier one
        cr = self._crossings
        cr.observe([k[0] for k in flows])
        weight = np.median(np.stack([m.traffic.routes.weight for m in self.members]), axis=0)
        tr = self.members[0].traffic
        # crossings off the sensor links are kept for the intervals still to be issued
        times = self.members[0].recorder.time
        first = times[self._next_row] if self._next_row < len(times) else self.now
        cr.advance(
            self.now,
            weight=np.where(tr.links.is_open != 0, weight, np.inf),
            graph=tr.graph,
            is_open=tr.links.is_open,
            tol=float(tr.routes.tol[0]),
            scale=float(tr.routes.scale[0]),
            keep_other_s=self.now - first + 2.0 * self.interval_s,
        )
        if flows:
            items = list(flows.values())
            obs = np.array([o.flow_vph * o.interval_s / 3600.0 for o, _ in items])
            sim = np.array(
                [
                    [m.recorder.link["outflow"][rows[i]][o.link] for o, rows in items]
                    for i, m in enumerate(self.members)
                ],
                np.float64,
            )
            if s.count_sd > 0:  # a detector's clipped additive noise (see _zone_counts)
                z = sim / s.count_sd
                sim = sim * ndtr(z) + s.count_sd * np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
            pred = sim.mean(axis=0)
            H, shift, expect = cr.operator(
                [(o.link, o.t - o.interval_s, o.t) for o, _ in items],
                self.theta,
                [pool.p_used for pool in self.pools],
                hour=self.hour if s.hour_sd > 0 else None,
                start_s=self.start_s,
                prev_shift=float(self.mean[p] - self.mean[nz]),
            )
            H = np.pad(H, ((0, 0), (0, self.mean.size - H.shape[1])))  # the day's level: no direct effect
            pred = np.maximum(pred + shift, 0.0) if s.prediction == "simulated" else expect
            # detector noise, the truth's Poisson noise, the members' own (one common pool:
            # their mean is one realisation), and the model's error
            # (all from the prediction: weights from the observed counts would favour the
            # low ones and bias the estimate down, by about a count per window)
            lam = np.maximum(expect if s.prediction == "simulated" else pred, 0.5)
            var = 2.0 * lam + ((s.count_cv**2 + s.model_cv**2) * lam**2) + s.count_sd**2
            PHt = self.cov @ H.T
            S = H @ PHt + np.diag(var)
            K = np.linalg.solve(S, PHt.T).T
            self.mean = self.mean + K @ (obs - pred)
            ikh = np.eye(self.mean.size) - K @ H
            self.cov = ikh @ self.cov @ ikh.T + (K * var) @ K.T  # Joseph form: stays symmetric, PSD
            self.cov = 0.5 * (self.cov + self.cov.T)
        hi = math.log(s.pool_factor)
        self.mean = np.clip(self.mean, -2.0, hi)
        hour = math.floor((self.start_s + self.now) / 3600.0 + 1e-9)
        if s.hour_sd > 0 and hour != self.hour:
            # a new clock hour (the trips released from now on belong to it): the last
            # hour's level moves to "previous"; the new one starts from the day's level plus
            # ``hour_persistence`` of the last hour's deviation from it, with more spread
            rho = s.hour_persistence
            F = np.eye(self.mean.size)
            F[p, :] = 0.0
            F[p, nz] = 1.0
            F[nz, :] = 0.0
            F[nz, nz], F[nz, p + 1] = rho, 1.0 - rho
            self.mean = F @ self.mean
            self.cov = F @ self.cov @ F.T
            self.cov[nz, nz] += s.hour_sd**2
            self.hour = hour
        self.theta = self._draw_members()
        self._push_theta()

    def _zone_counts(self, flows):
        """Observed and predicted counts summed over the sensors of each zone (the zone of
        the link's upstream node), with their variance: fewer, steadier observations
        than one per sensor, which a small ensemble can use without collapsing.
        """
        s = self.settings
        zone_of = self.city.zones.node_zone[self.city.network.src]
        nz = self.city.zones.n_zones
        key = np.array([max(int(zone_of[o.link]), -1) for o, _ in flows])
        key = np.where(key < 0, nz, key)
        dt = np.array([o.interval_s for o, _ in flows])
        obs_l = np.array([o.flow_vph for o, _ in flows]) * dt / 3600.0  # vehicles in the interval
        pred_l = np.array(
            [[m.recorder.link["outflow"][rows[i]][o.link] for o, rows in flows] for i, m in enumerate(self.members)],
            np.float64,
        )
        if s.count_sd > 0:
            # what a detector with additive noise reports, clipped at zero: E[max(0, c + e)],
            # e ~ N(0, sd). Near-empty links read high on average (at night, most of them)
            z = pred_l / s.count_sd
            pred_l = pred_l * ndtr(z) + s.count_sd * np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
        var_l = (s.count_cv * obs_l) ** 2 + np.maximum(obs_l, 1.0) + s.count_sd**2
        if s.observation == "link":
            return obs_l, pred_l, var_l
        used = np.unique(key)
        col = np.searchsorted(used, key)
        obs = np.bincount(col, weights=obs_l, minlength=used.size)
        var = np.bincount(col, weights=var_l, minlength=used.size)
        pred = np.stack([np.bincount(col, weights=p, minlength=used.size) for p in pred_l])
        return obs, pred, var

    def _correct_links(self, usable) -> int:
        s = self.settings
        net = self.city.network
        latest: dict[int, tuple] = {}
        for o, rows in usable:
            if math.isfinite(o.speed_mps) and o.lane < 0:
                latest[o.link] = (o, rows)
        n = 0
        for link, (o, rows) in latest.items():
            sim = float(np.median([m.recorder.link["speed"][rows[i]][link] for i, m in enumerate(self.members)]))
            vf = float(net.free_speed_mps[link])
            f = self.link_factor[link]
            if o.speed_mps < s.slow_ratio * sim and o.speed_mps < s.slow_ratio * vf:
                f = max(s.min_capacity_factor, f * (o.speed_mps / max(sim, 1e-3)) ** s.correction_gain)
            elif f < 1.0 and o.speed_mps > 0.9 * sim:
                f = min(1.0, f * 1.5)
            else:
                continue
            if abs(f - self.link_factor[link]) < 1e-3:
                continue
            self.link_factor[link] = f
            key = ("correction", int(link))
            if f >= 0.999:
                self.link_factor[link] = 1.0
                self._release(key)
            else:
                self._apply_everywhere(key, [link], until_s=math.inf, capacity_factor=f)
            n += 1
        return n

    def _record(self, n_obs: int, corrected: int, *, flush: bool = False) -> None:
        """Issue the estimate of every recorded interval that ended ``report_delay_intervals``
        before now (every one with ``flush``).
        """
        times = self.members[0].recorder.time
        limit = math.inf if flush else self.now - self.settings.report_delay_intervals * self.interval_s + 1e-6
        while self._next_row < len(times) and times[self._next_row] <= limit:
            self._issue(float(times[self._next_row]), n_obs, corrected)
            self._next_row += 1

    def _issue(self, t: float, n_obs: int, corrected: int) -> None:
        """Predictive mean and 5-95 % band of every link's count and speed over the interval
        ending at ``t``: the members' counts moved to the current demand factors
        (:meth:`twin.crossings.Crossings.flow_shift`), the count band
        (:func:`twin.crossings.count_band`), and the members' speeds.
        """
        s = self.settings
        rows = self._member_rows(t)
        if rows is None:
            return
        counts = np.stack([m.recorder.link["outflow"][k] for m, k in zip(self.members, rows)]).astype(np.float64)
        speeds = np.stack([m.recorder.link["speed"][k] for m, k in zip(self.members, rows)])
        if s.method == "kalman" and s.estimate_demand and len(self.members) > 1:
            nz, p = self.city.zones.n_zones, self.theta.shape[1]
            counts += self._crossings.flow_shift(
                t - self.interval_s,
                t,
                self.theta,
                [pool.p_used for pool in self.pools],
                n_links=counts.shape[1],
                hour=self.hour if s.hour_sd > 0 else None,
                start_s=self.start_s,
                prev_shift=float(self.mean[p] - self.mean[nz]),
            )
            np.maximum(counts, 0.0, out=counts)
        k = 16
        sp = np.repeat(speeds, k, axis=0) * np.exp(
            s.speed_cv * self.rng.normal(size=(counts.shape[0] * k, counts.shape[1]))
        )
        to_vph = 3600.0 / self.interval_s
        self.log.time.append(t)
        self.log.flow_mean.append(counts.mean(axis=0) * to_vph)
        lo, hi = count_band(counts, model_cv=s.band_cv)
        self.log.flow_lo.append(lo * to_vph)
        self.log.flow_hi.append(hi * to_vph)
        self.log.speed_mean.append(speeds.mean(axis=0))
        lo, hi = np.percentile(sp, [5, 95], axis=0)
        self.log.speed_lo.append(lo)
        self.log.speed_hi.append(hi)
        mean, sd = self.demand_scale()
        self.log.theta_mean.append(mean)
        self.log.theta_sd.append(sd)
        nz = self.city.zones.n_zones
        dest = np.exp(self.theta[:, nz + 1 :]) if self.theta.shape[1] > nz + 1 else np.ones((len(self.members), nz))
        self.log.dest_mean.append(dest.mean(axis=0))
        self.log.dest_sd.append(dest.std(axis=0))
        if self.settings.method == "kalman":
            # the level of the interval's own clock hour: the previous hour's once a new one began
            i = nz
            if math.floor((self.start_s + t) / 3600.0 - 1e-9) == self.hour - 1 and s.hour_sd > 0:
                i = self.theta.shape[1]
            self.log.level.append(float(self.mean[i]))
            self.log.level_sd.append(float(math.sqrt(max(self.cov[i, i], 0.0))))
        else:
            self.log.level.append(float(self.theta[:, nz].mean()))
            self.log.level_sd.append(float(self.theta[:, nz].std()))
        self.log.n_obs.append(n_obs)
        self.log.corrected.append(corrected)

    # ------------------------------------------------------------ results
    def dataset(self) -> xr.Dataset:
        """The ensemble's estimate: link flow and speed mean with 5-95 % bands, demand factors.

        Intervals not issued yet (their observations are still to come) are issued now, with
        what has been assimilated so far.
        """
        self._record(0, 0, flush=True)
        L = self.log
        net = self.city.network

        def v(dims, data, units, name):
            return xr.Variable(dims, np.asarray(data), attrs={"units": units, "long_name": name})

        nl, nz = net.n_links, self.city.zones.n_zones
        stack = lambda rows, n: np.stack(rows) if rows else np.zeros((0, n))
        return xr.Dataset(
            {
                "est_flow": v(("time", "link"), stack(L.flow_mean, nl), "veh h-1", "ensemble mean link outflow"),
                "est_flow_p05": v(
                    ("time", "link"), stack(L.flow_lo, nl), "veh h-1", "5th percentile of the predicted outflow"
                ),
                "est_flow_p95": v(
                    ("time", "link"), stack(L.flow_hi, nl), "veh h-1", "95th percentile of the predicted outflow"
                ),
                "est_speed": v(("time", "link"), stack(L.speed_mean, nl), "m s-1", "ensemble mean link speed"),
                "est_speed_p05": v(
                    ("time", "link"), stack(L.speed_lo, nl), "m s-1", "5th percentile of the predicted speed"
                ),
                "est_speed_p95": v(
                    ("time", "link"), stack(L.speed_hi, nl), "m s-1", "95th percentile of the predicted speed"
                ),
                "demand_scale": v(
                    ("time", "zone"),
                    stack(L.theta_mean, nz),
                    "1",
                    "estimated demand scale by origin zone (ensemble mean)",
                ),
                "demand_scale_sd": v(
                    ("time", "zone"), stack(L.theta_sd, nz), "1", "ensemble spread of the demand scale"
                ),
                "dest_scale": v(
                    ("time", "zone"),
                    stack(L.dest_mean, nz),
                    "1",
                    "estimated demand factor by destination zone (ensemble mean)",
                ),
                "dest_scale_sd": v(
                    ("time", "zone"), stack(L.dest_sd, nz), "1", "ensemble spread of the destination factor"
                ),
                "log_level": v(("time",), np.asarray(L.level), "1", "estimated log demand level of the current hour"),
                "log_level_sd": v(
                    ("time",), np.asarray(L.level_sd), "1", "its posterior (kalman) or ensemble (enkf) sd"
                ),
                "observations_used": v(
                    ("time",), np.asarray(L.n_obs, np.int64), "1", "observations assimilated at this update"
                ),
                "links_corrected": v(
                    ("time",), np.asarray(L.corrected, np.int64), "1", "link capacity corrections changed"
                ),
            },
            coords={
                "time": v(("time",), np.asarray(L.time), "s", "end of the output interval"),
                "link": v(("link",), np.arange(nl), "1", "link index"),
                "zone": v(("zone",), np.arange(nz), "1", "zone index"),
            },
            attrs={"members": len(self.members), "seed": self.seed, "scenario_name": self.scenario.name},
        )
