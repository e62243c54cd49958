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
    observation operator is built from the pool itself (:class:`~twin.live.observation.Crossings`).
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
  link the trips cross then (:meth:`twin.live.observation.Crossings.flow_shift`).  So
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
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import xarray as xr

from twin.clock import schedule_at
from twin.components import Component
from twin.live.estimate import EstimateLog
from twin.live.filter import DemandFilter, detector_mean
from twin.live.observation import Crossings
from twin.live.settings import AssimilationSettings
from twin.rng import component_rng

__all__ = ["PoolDemand", "Ensemble"]

log = logging.getLogger(__name__)


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
        """Start releasing the pool (a process on the member's clock)."""
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
            yield schedule_at(env, self.next_s)
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
        """The estimated demand level (x the scenario's) this member releases at."""
        return {"demand_level": float(math.exp(self.log_level))}


@dataclass
class _Held:
    """A link change the assimilation holds in every member."""

    handles: list[int]
    until_s: float = math.inf


class Ensemble:
    """An ensemble of twins that follows the observations (see the module docstring).

    Composed of its members (ordinary twins, each with a :class:`PoolDemand`), the
    demand filter (:class:`~twin.live.filter.DemandFilter`: the factors and the Kalman
    state), the observation operator (:class:`~twin.live.observation.Crossings`) and the
    issued estimates (:class:`~twin.live.estimate.EstimateLog`); the link changes it
    holds in every member (alerts, closures, capacity corrections) are its own.

    Parameters
    ----------
    scenario
        The scenario (gravity demand: its trips become the members' pools).
    settings
        :class:`~twin.live.settings.AssimilationSettings` (checked before anything is built).
    seed
        Base seed (default: the scenario's); member ``i`` uses its own stream.
    city
        The built city (optional).
    """

    def __init__(
        self, scenario, settings: AssimilationSettings | None = None, *, seed: int | None = None, city=None
    ) -> None:
        from twin.model import build_city

        self.settings = s = settings or AssimilationSettings()
        s.check(scenario)
        self.scenario = scenario
        self.seed = int(scenario.seed if seed is None else seed)
        self.city = city if city is not None else build_city(scenario.city)
        self.rng = component_rng(self.seed, "assimilation")
        self.members, self.pools = self._build_members()
        nz = self.city.zones.n_zones
        self.filter = DemandFilter(s, n_zones=nz, n_members=s.members, rng=self.rng, start_s=float(scenario.time.start))
        self._push_theta()
        self._crossings = Crossings(self.pools[0], nz, destination_factors=s.destination_factors)
        self.interval_s = float(scenario.outputs.interval)
        self.now = 0.0
        self.held: dict[tuple[str, object], _Held] = {}
        self.link_factor = np.ones(self.city.network.n_links)
        self.log = EstimateLog()
        self._next_row = 0  # members' recorder rows before this one have been issued
        self._pending_obs: list = []

    def _build_members(self) -> tuple[list, list[PoolDemand]]:
        """The members: twins of the scenario without its own demand, each releasing the pool."""
        from scenarios import load_scenario
        from twin.model import Twin, build_demand

        s, scenario = self.settings, self.scenario
        empty = load_scenario(
            scenario.resolved() | {"demand": {"gravity": {**scenario.demand.gravity.model_dump(), "total_trips": 0}}}
        )
        z = self.city.zones
        members: list[Twin] = []
        pools: list[PoolDemand] = []
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
            members.append(tw)
            pools.append(comp)
        return members, pools

    # ------------------------------------------------------------ the filter's state
    @property
    def theta(self) -> np.ndarray:
        """Each member's log demand factors ``(members, zones + 1 [+ zones])``."""
        return self.filter.theta

    @theta.setter
    def theta(self, value: np.ndarray) -> None:
        self.filter.theta = value

    @property
    def mean(self) -> np.ndarray:
        """The Kalman state's mean (the factors, the previous hour's level, the day's level)."""
        return self.filter.mean

    @property
    def cov(self) -> np.ndarray:
        """The Kalman state's covariance."""
        return self.filter.cov

    @property
    def hour(self) -> int:
        """The clock hour of the current level."""
        return self.filter.hour

    @property
    def start_s(self) -> float:
        """The scenario's start, clock seconds."""
        return self.filter.start_s

    def _draw_members(self) -> np.ndarray:
        return self.filter.draw()

    def _push_theta(self) -> None:
        nz = self.city.zones.n_zones
        for th, pool in zip(self.theta, self.pools, strict=False):
            pool.log_zone = th[:nz].copy()
            pool.log_level = float(th[nz])
            if th.size > nz + 1:
                pool.log_dest = th[nz + 1 :].copy()

    def demand_scale(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and sd over members of each zone's demand scale ``exp(level + zone)``.

        Returns
        -------
        tuple of numpy.ndarray
            Mean and sd, one per zone.
        """
        return self.filter.demand_scale()

    # ------------------------------------------------------------ the loop
    def advance(self, t: float, records=()) -> None:
        """Run every member to ``t`` and assimilate the observations whose interval has been simulated.

        Parameters
        ----------
        t
            Simulated seconds to run to.
        records
            Feed records (already cleansed, time-ordered): observations, alerts, closures.
        """
        for r in records:
            kind = getattr(r, "record", "")
            if kind == "observation":
                self._pending_obs.append(r)
                self.log.add_observation(r)  # kept for the results (observed against estimated)
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
            for m, h in zip(self.members, old.handles, strict=False):
                m.link_control.revert(h)
        handles = [
            m.link_control.apply(links, source=f"assimilation {key[0]} {key[1]}", **change) for m in self.members
        ]
        self.held[key] = _Held(handles=handles, until_s=until_s)

    def _release(self, key) -> None:
        old = self.held.pop(key, None)
        if old is not None:
            for m, h in zip(self.members, old.handles, strict=False):
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
        learn = s.estimate_demand and len(self.members) > 1
        if s.method == "kalman":
            if learn:
                self._kalman(usable)
        else:
            if learn:
                self.filter.enkf_walk()
            flows = [(o, rows) for o, rows in usable if math.isfinite(o.flow_vph)]
            if learn and flows:
                self.filter.enkf_update(*self._zone_counts(flows))
            self._push_theta()
        corrected = self._correct_links(usable) if s.correct_links else 0
        self._record(len(usable), corrected)

    def _kalman(self, usable) -> None:
        """Kalman update of the demand factors from each sensor's count (see :class:`~twin.live.observation.Crossings`)."""
        f = self.filter
        f.walk()
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
            H, shift, expect = cr.operator(
                [(o.link, o.t - o.interval_s, o.t) for o, _ in items],
                self.theta,
                [pool.p_used for pool in self.pools],
                hour=f.level_hour(),
                start_s=f.start_s,
                prev_shift=f.prev_shift(),
            )
            f.kalman_update(obs, sim, H=H, shift=shift, expect=expect)
        f.end_update(self.now)
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
        if s.count_sd > 0:  # what a detector with additive noise reports, clipped at zero
            pred_l = detector_mean(pred_l, s.count_sd)
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

    # ------------------------------------------------------------ issued estimates
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
        (:meth:`twin.live.observation.Crossings.flow_shift`), the count band
        (:func:`twin.live.observation.count_band`), and the members' speeds.
        """
        s, f = self.settings, self.filter
        rows = self._member_rows(t)
        if rows is None:
            return
        counts = np.stack([m.recorder.link["outflow"][k] for m, k in zip(self.members, rows, strict=False)]).astype(
            np.float64
        )
        speeds = np.stack([m.recorder.link["speed"][k] for m, k in zip(self.members, rows, strict=False)])
        if s.method == "kalman" and s.estimate_demand and len(self.members) > 1:
            counts += self._crossings.flow_shift(
                t - self.interval_s,
                t,
                self.theta,
                [pool.p_used for pool in self.pools],
                n_links=counts.shape[1],
                hour=f.level_hour(),
                start_s=f.start_s,
                prev_shift=f.prev_shift(),
            )
            np.maximum(counts, 0.0, out=counts)
        self.log.add_links(
            t, counts, speeds, interval_s=self.interval_s, band_cv=s.band_cv, speed_cv=s.speed_cv, rng=self.rng
        )
        nz = self.city.zones.n_zones
        dest = np.exp(self.theta[:, nz + 1 :]) if self.theta.shape[1] > nz + 1 else np.ones((len(self.members), nz))
        self.log.add_demand(self.demand_scale(), dest, f.level_of(t), n_obs=n_obs, corrected=corrected)

    # ------------------------------------------------------------ results
    def dataset(self) -> xr.Dataset:
        """The ensemble's estimate: link flow and speed mean with 5-95 % bands, demand factors.

        Intervals not issued yet (their observations are still to come) are issued now, with
        what has been assimilated so far.

        Returns
        -------
        xarray.Dataset
            See :meth:`twin.live.estimate.EstimateLog.dataset`.
        """
        self._record(0, 0, flush=True)
        return self.log.dataset(
            n_links=self.city.network.n_links,
            n_zones=self.city.zones.n_zones,
            attrs={"members": len(self.members), "seed": self.seed, "scenario_name": self.scenario.name},
        )
