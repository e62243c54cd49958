"""The :class:`Twin`: a Mesa model on one SimPy clock.

The SimPy :class:`~simpy.Environment` is the master clock, in seconds since the
scenario start.  The traffic model advances in fixed ticks; every other actor
(recorder, re-routing, and later incidents, agents, interventions and feeds)
is a SimPy process.  Before any process reads or changes the traffic state it
calls :meth:`Twin.sync`, which brings the traffic model up to the clock's
current tick; the traffic process itself only keeps the model moving between
other events, in as few kernel calls as possible.  The traffic state is never
ahead of the clock.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from pathlib import Path

import mesa
import numpy as np
import simpy

from basics.errors import InputError
from basics.numeric import EPS
from city_models import City, load_city
from city_models.demand import Trips, gravity_trips, read_trips_csv
from scenarios import CitySpec, Scenario, scenario_hash
from twin.clock import PRIORITY, schedule_at
from twin.recorder import Recorder
from twin.rng import component_rng, component_seed
from twin.traffic import TrafficModel

__all__ = ["Twin", "build_city", "build_demand"]

log = logging.getLogger(__name__)

#: the traffic process never advances more than this in one kernel call
_MAX_CHUNK_S = 3600.0


def build_city(spec: CitySpec) -> City:
    """Load and validate the city a scenario's ``city`` section describes."""
    seed = 0
    if spec.kind == "synthetic":
        assert spec.synthetic is not None  # kind names the one source given
        value = spec.synthetic.model_dump()
        seed = int(value.pop("seed", 0))
    else:
        value = getattr(spec, spec.kind)
    extra = {k: getattr(spec, k) for k in ("zones", "bbox", "polygon", "network_type") if getattr(spec, k, None)}
    return load_city(
        {spec.kind: value, "repair": {"keep": spec.repair.keep, "min_link_m": spec.merge_below_m}, **extra}, seed=seed
    )


def build_demand(scenario: Scenario, city: City, rng: np.random.Generator) -> Trips:
    """The scenario's trips: a CSV table, SUMO demand, or the gravity model on the city's zones."""
    d = scenario.demand
    if d.sumo is not None:
        from city_models.sumo import read_sumo_demand, sumo_file

        assert scenario.city.sumo is not None  # the schema refuses SUMO demand on another city
        return read_sumo_demand(
            sumo_file(d.sumo, "demand"),
            city.network,
            sumo_file(scenario.city.sumo),
            duration_s=scenario.time.duration,
            seed=scenario.seed,
        )
    if d.trips is not None:
        return read_trips_csv(d.trips, city.network, duration_s=scenario.time.duration)
    if scenario.population.enabled:  # the population's agents replace the gravity model
        empty = np.zeros(0)
        return Trips(empty.astype(np.int64), empty.astype(np.int32), empty.astype(np.int32), empty)
    g = d.gravity
    assert g is not None  # the schema's default without a trips table or SUMO demand
    z, net = city.zones, city.network
    return gravity_trips(
        node_zone=z.node_zone,
        residents=z.residents,
        jobs=z.jobs,
        zone_x=z.x,
        zone_y=z.y,
        node_x=net.x,
        node_y=net.y,
        rng=rng,
        total_trips=g.total_trips,
        duration_s=scenario.time.duration,
        start_s=scenario.time.start,
        beta_per_km=g.beta_per_km,
        profile=np.asarray(g.profile, dtype=np.float64) if g.profile is not None else None,
    )


def _free_flow_times(tm: TrafficModel, origin: np.ndarray, destination: np.ndarray) -> np.ndarray:
    """Each trip's shortest free-flow travel time on the whole network (inf: no path)."""
    from kernels.routing import route_table

    out = np.full(origin.shape[0], np.inf)
    if origin.size == 0:
        return out
    dests, row = np.unique(np.asarray(destination, np.int32), return_inverse=True)
    g = tm.graph
    chunk = max(1, int(2e7 // max(tm.network.n_nodes, 1)))  # at most ~160 MB of distances at once
    no_next = np.empty((0, tm.network.n_nodes), np.int32)
    for lo in range(0, dests.size, chunk):
        part = dests[lo : lo + chunk].astype(np.int32)
        dist = np.full((part.size, tm.network.n_nodes), np.inf)
        route_table(
            g, part, tm.links.free_tt, active=np.ones(part.size, np.bool_), next_link_out=no_next, dist_out=dist
        )
        sel = (row >= lo) & (row < lo + part.size)
        out[sel] = dist[row[sel] - lo, np.asarray(origin)[sel]]
    return out


class Twin(mesa.Model):
    """The city twin for one scenario.

    Parameters
    ----------
    scenario
        A validated :class:`scenarios.Scenario`.
    seed
        Overrides the scenario's seed.
    city
        An already built city (skips loading; must be the scenario's).
    route_knowledge
        What travellers remember of the link travel times by time of day (a
        :class:`twin.equilibrium.RouteKnowledge`, from a day-to-day equilibrium):
        routes follow it instead of the day's own travel times.
    trips, trip_free_flow_s
        The scenario's trips and their free-flow times, already built by a twin of
        the same scenario, seed and city (a day-to-day equilibrium builds them once
        for all its days); they must be what this scenario and seed give.

    Examples
    --------
    >>> twin = Twin(load_scenario("default"))          # doctest: +SKIP
    >>> twin.run_for(3600); twin.run_until("08:30")    # doctest: +SKIP
    >>> ds = twin.results()                             # doctest: +SKIP
    """

    def __init__(
        self,
        scenario: Scenario,
        *,
        seed: int | None = None,
        city: City | None = None,
        route_knowledge=None,
        trips: Trips | None = None,
        trip_free_flow_s: np.ndarray | None = None,
    ) -> None:
        seed = int(scenario.seed if seed is None else seed)
        super().__init__(seed=seed)
        self.scenario = scenario
        self.seed = seed
        self.scenario_hash = scenario_hash(scenario)
        self.start_s = float(scenario.time.start)
        self.duration_s = float(scenario.time.duration)
        self.env = simpy.Environment()
        self.city = city if city is not None else build_city(scenario.city)
        tr = scenario.traffic
        self.traffic = TrafficModel(
            self.city.network,
            step_s=float(scenario.time.step),
            route_tolerance=float(tr.route_tolerance),
            route_dispersion_s=float(tr.route_dispersion),
            travel_time_smoothing=float(tr.travel_time_smoothing),
            route_seed=int(component_seed(seed, "routing").generate_state(1, np.uint64)[0]),
            stuck_time_s=math.inf if tr.stuck_time is None else float(tr.stuck_time),
        )
        short = self.traffic.links.free_tt < self.traffic.dt
        if short.any():
            log.warning(
                "%d of %d links take less than one time step (%.3g s) to drive at free speed (shortest %.2f s); "
                "a vehicle crosses at most one link per step, so trips over them run slow by up to a step per "
                "link: a smaller time.step (or a larger city.min_link_m) avoids it",
                int(short.sum()),
                short.size,
                self.traffic.dt,
                float(self.traffic.links.free_tt.min()),
            )
        self.trips = build_demand(scenario, self.city, component_rng(seed, "demand")) if trips is None else trips
        self.trip_ids = self.trips.trip_id
        #: where each block of vehicles came from: (first vehicle id, count, source code)
        n_scn = self.trips.trip_id.shape[0]
        self.trip_blocks: list[tuple[int, int, int]] = [(0, n_scn, 0)] if n_scn else []
        self.trip_sources: list[str] = ["scenario"]
        self._extra_od: list[tuple[np.ndarray, np.ndarray]] = []  # trips added after the scenario's
        self.traffic.add_trips(self.trips.origin, self.trips.destination, self.trips.depart_s)
        self.reroute_s = float(scenario.traffic.reroute_interval)
        self.dynamic_routing = scenario.traffic.routing == "dynamic"
        self.recorder = Recorder(self, interval_s=float(scenario.outputs.interval))
        self.route_knowledge = route_knowledge
        if route_knowledge is None:
            self.traffic.update_routes(self.reroute_s if self.dynamic_routing else math.inf)
        else:
            route_knowledge.update(self)
        self.reroute_batches = int(scenario.traffic.reroute_batches)
        self.reroute_phase = 0  # the batch of destinations the next refresh brings up to date
        self.next_reroute_s = self.reroute_s / self.reroute_batches
        # demand response (scenario.demand.elasticity): the scenario's trips' free-flow times,
        # the next decision and how many trips it has kept off the road
        self.elasticity = float(scenario.demand.elasticity)
        self.response_s = self.reroute_s / self.reroute_batches if self.dynamic_routing else self.reroute_s
        self.next_response_s = 0.0
        self.trips_deterred = 0
        self._response_key = np.uint64(component_seed(seed, "demand response").generate_state(1, np.uint64)[0])
        if self.elasticity >= 0:
            self.trip_free_flow_s = np.zeros(0)
        elif trip_free_flow_s is not None and trip_free_flow_s.shape == self.trips.origin.shape:
            self.trip_free_flow_s = trip_free_flow_s
        else:
            self.trip_free_flow_s = _free_flow_times(self.traffic, self.trips.origin, self.trips.destination)
        from twin.components import build_components
        from twin.linkcontrol import LinkControl

        self.link_control = LinkControl(self)
        self.components = build_components(self)
        self._start_processes()

    def _start_processes(self) -> None:
        """Register every SimPy process from the records (at build and after a restore)."""
        self.env.process(self._traffic_process())
        if getattr(self, "route_knowledge", None) is not None:
            self.env.process(self.route_knowledge.process(self))
        elif self.dynamic_routing:
            self.env.process(self._reroute_process())
        if self.elasticity < 0:
            self.env.process(self._demand_response_process())
        self.env.process(self.recorder.process())
        for comp in self.components.values():
            comp.start()

    # --------------------------------------------------------------- demand
    def add_trips(self, origin, destination, depart_s, *, source: str) -> np.ndarray:
        """Put trips on the road (dense node indices, departure times in s since the start).

        Every component adds its trips here, so the run's results cover them
        all, labelled by ``source`` (e.g. ``"scenario"``, ``"population"``,
        ``"demand change"``).  Returns the new vehicle ids.
        """
        ids = self.traffic.add_trips(origin, destination, depart_s)
        if source not in self.trip_sources:
            self.trip_sources.append(source)
        code = self.trip_sources.index(source)
        if ids.size:
            last = self.trip_blocks[-1] if self.trip_blocks else None
            if last is not None and last[2] == code and last[0] + last[1] == ids[0]:
                self.trip_blocks[-1] = (last[0], last[1] + ids.size, code)
            else:
                self.trip_blocks.append((int(ids[0]), int(ids.size), code))
            self._extra_od.append((np.asarray(origin, np.int32).copy(), np.asarray(destination, np.int32).copy()))
        return ids

    def trip_table(self) -> dict[str, np.ndarray]:
        """Every trip put on the road so far: id, origin, destination (node indices), source code."""
        n_scn = self.trips.trip_id.shape[0]
        n = self.traffic.n_vehicles
        first_extra = int(self.trips.trip_id.max()) + 1 if n_scn else 0
        ids = np.concatenate([self.trips.trip_id.astype(np.int64), first_extra + np.arange(n - n_scn, dtype=np.int64)])
        o = np.concatenate([self.trips.origin.astype(np.int32)] + [a for a, _ in self._extra_od])
        d = np.concatenate([self.trips.destination.astype(np.int32)] + [b for _, b in self._extra_od])
        src = np.zeros(n, np.int8)
        for first, count, code in self.trip_blocks:
            src[first : first + count] = code
        return {"trip_id": ids, "origin": o, "destination": d, "source": src}

    # ---------------------------------------------------------------- clock
    @property
    def now(self) -> float:
        """Seconds since the scenario start."""
        return float(self.env.now)

    def clock_s(self, t: float | None = None) -> float:
        """Clock time of day in seconds (may exceed 86,400 past midnight)."""
        return self.start_s + (self.now if t is None else t)

    def sync(self) -> None:
        """Bring the traffic model up to the clock's current tick.

        The traffic model moves in whole ticks, so an event at ``t`` acts from
        the start of the tick that contains ``t`` (the last tick boundary at or
        before it).
        """
        tm = self.traffic
        tm.advance_ticks(math.floor(self.env.now / tm.dt + 1e-9) - int(tm.state.cursor[1]))

    def _traffic_process(self):
        # Every reader syncs first, so traffic needs no wake-up of its own at each event
        # (under a busy event stream that meant one kernel call per tick); it only moves
        # the kernel along through quiet stretches, a chunk at a time.  Splitting the
        # ticks over more or fewer kernel calls gives the same state (the kernel loops
        # over ticks), so this changes timing only.
        dt = self.traffic.dt
        while True:
            target = max(math.floor((self.env.now + _MAX_CHUNK_S) / dt + 1e-9) * dt, (self.traffic.tick + 1) * dt)
            yield schedule_at(self.env, target, PRIORITY["traffic"])
            self.sync()

    def _reroute_process(self):
        while True:
            yield schedule_at(self.env, self.next_reroute_s, PRIORITY["reroute"])
            self.next_reroute_s = self.env.now + self.reroute_s / self.reroute_batches
            self.sync()
            self.traffic.update_routes(self.reroute_s, batches=self.reroute_batches, phase=self.reroute_phase)
            self.reroute_phase = (self.reroute_phase + 1) % self.reroute_batches

    def _demand_response_process(self):
        # After each route refresh, the scenario's trips leaving before the next one decide
        # whether to go, on the travel time the routing now expects (scenario.demand.elasticity).
        while True:
            yield schedule_at(self.env, self.next_response_s, PRIORITY["demand"])
            now = self.env.now
            self.next_response_s = now + self.response_s
            self.sync()
            self.trips_deterred += self._deter_trips(now, self.next_response_s)

    def _deter_trips(self, t0: float, t1: float) -> int:
        """Cancel the scenario's trips departing in ``[t0, t1)`` that congestion keeps at home."""
        from kernels.choice import decision_keys, hash_uniforms
        from kernels.traffic import VEH_PENDING

        tm = self.traffic
        veh = tm.veh
        if getattr(self, "_by_departure", None) is None:  # the scenario's trips by departure, once
            n = self.trips.trip_id.shape[0]
            order = np.argsort(veh.depart[:n], kind="stable")
            self._by_departure = (order, veh.depart[:n][order])
        order, dep = self._by_departure
        ids = order[np.searchsorted(dep, t0, "left") : np.searchsorted(dep, t1, "left")]
        ids = np.sort(ids[veh.link[ids] == VEH_PENDING])
        if ids.size == 0:
            return 0
        expect = tm.routes.pot[veh.dest_idx[ids], veh.orig[ids]]
        free = self.trip_free_flow_s[ids]
        ok = np.isfinite(expect) & (free > 0) & (expect > free)  # no route: the trip waits for one instead
        ids, ratio = ids[ok], expect[ok] / free[ok]
        keep = ratio**self.elasticity
        keys = decision_keys(
            self._response_key,
            self.trips.trip_id[ids].astype(np.int64),
            np.zeros(ids.size, np.int64),
            np.empty(ids.size, np.uint64),
        )
        u = hash_uniforms(keys, 0, np.empty(ids.size))
        stay = ids[u >= keep]
        return int(tm.cancel_trips(stay).size) if stay.size else 0

    # ------------------------------------------------------------ snapshots
    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_env_now"] = float(self.env.now)
        del state["env"]  # processes are rebuilt from the records on restore
        state.pop("_by_departure", None)  # a cache, rebuilt when needed
        return state

    def __setstate__(self, state: dict) -> None:
        now = state.pop("_env_now")
        for key, value in (("elasticity", 0.0), ("trips_deterred", 0)):  # snapshots from before demand response
            state.setdefault(key, value)
        self.__dict__.update(state)
        self.env = simpy.Environment(initial_time=now)
        self._start_processes()

    def snapshot(self, path: str | Path) -> Path:
        """Write the whole state to ``path`` (atomically); :meth:`restore` resumes it."""
        from twin.snapshot import write_snapshot

        return write_snapshot(self, path)

    @classmethod
    def restore(cls, path: str | Path) -> Twin:
        """A twin resumed from a snapshot: running it on equals the run that was saved."""
        from twin.snapshot import read_snapshot

        twin = read_snapshot(path)
        if not isinstance(twin, cls):
            raise InputError(f"snapshot {str(path)!r} does not hold a twin")
        return twin

    # ------------------------------------------------------------------ run
    def step(self) -> None:
        """One Mesa step = one traffic tick on the clock."""
        self.run_for(self.traffic.dt)

    def run_until(self, t: float | str, *, progress: Callable[[float], None] | None = None) -> None:
        """Run until ``t`` seconds since the start, or a clock time ``"HH:MM[:SS]"``.

        A clock time earlier than the start means the next day.  Events at
        exactly ``t`` other than the recorder's run in the next call, as they
        would in one uninterrupted run, so splitting a run changes nothing.
        Past the scenario's duration the run goes on and each call records
        the interval it closes.
        """
        if isinstance(t, str):
            from scenarios import parse_clock

            t = parse_clock(t) - self.start_s
            if t < 0:
                t += 86400.0
        t = float(t)
        if not math.isfinite(t):
            raise InputError(f"run_until needs a finite time, got {t!r}")
        if t < self.now:
            raise InputError(f"cannot run back in time: clock is at {self.now:.0f} s, asked for {t:.0f} s")
        if progress is None:
            if t > self.now:
                self.env.run(until=t)
        else:
            chunk = max(self.recorder.interval_s, self.traffic.dt)
            while self.now < t:
                self.env.run(until=min(self.now + chunk, t))
                progress(self.now)
        self.sync()
        if self.now >= self.duration_s - EPS:
            self.recorder.sample()  # the last, possibly shorter, output interval
        elif self.recorder.next_s <= self.now + EPS:
            # a sample due exactly now whose event SimPy left for the next call (it was
            # scheduled after this call's stop event): take it now, with the same state
            self.recorder.sample()

    def run_for(self, seconds: float, **kw) -> None:
        """Run for ``seconds`` more."""
        self.run_until(self.now + float(seconds), **kw)

    def run(self, **kw) -> None:
        """Run to the end of the scenario's duration."""
        self.run_until(self.duration_s, **kw)

    # -------------------------------------------------------------- results
    def results(self):
        """The run's results as a labelled :class:`xarray.Dataset`."""
        from twin.results import build_dataset

        return build_dataset(self)

    def kpis(self) -> dict:
        """The run's KPIs: traffic and every component's (see :func:`twin.results.compute_kpis`)."""
        from twin.results import compute_kpis

        return compute_kpis(self)

    def save(self, out_dir: str | Path) -> Path:
        """Write the run folder (results.nc, scenario.yaml, summary.json) atomically."""
        from twin.results import write_run

        return write_run(self, Path(out_dir))
