"""The population component: persons with day plans make the twin's demand.

Records (all numpy arrays, one row per person; see DESIGN.md "thin drivers
over data records"):

* the synthetic population (:attr:`people`) and plans (:attr:`plans`);
* where each person is (``node``, ``place``: home or an activity), the next
  leg of the plan (``leg``) and its preferred departure (``next_t``, s since
  the start; inf when the day is done);
* the trip in progress, if any (``trip_mode`` >= 0: car with vehicle
  ``trip_vid``, or the non-car mode arriving at ``trip_arr``);
* a calendar of decision buckets (bucket index -> person ids);
* policy state (cordons, work from home, evacuation orders).

One SimPy process drives them, event-driven on buckets of ``bucket``
seconds: it wakes at a bucket boundary only when a decision falls due there
or trips are under way.  At a wake it (1) finds the persons whose trips have
arrived -- ``traffic.veh.arrive[ids]`` for drivers, the known arrival time for
the others -- and schedules their next leg at arrival plus activity duration;
(2) refreshes the persons' travel-time skim (car travel times from every node
to each zone's centroid) when the traffic model has re-routed -- at most every
``skim_interval``, at once when links closed or opened; (3)
hands every person whose decision falls in this bucket to
:func:`kernels.choice.choose` at once, and puts the chosen car trips on the
road with one ``twin.add_trips`` call.

Persons decide ``-min(shifts)`` seconds before their preferred departure, so
an earlier departure is still possible; a leg from home may be skipped
(the whole tour is then dropped and the person stays home until the next
tour), a return leg home may not.

Learnt departure times (a day-to-day equilibrium, :mod:`twin.equilibrium`):
when the twin routes on a :class:`~twin.equilibrium.RouteKnowledge` that
carries ``departure_shift_s`` (persons x legs, seconds), each leg's preferred
departure is the plan's time plus the leg's remembered shift (the choice
kernel's own shifts and schedule cost then count from there); the plan's time
of every decided leg is kept in :attr:`desired_t` so the next day's learning
can price the shift.  The shifts are part of the component's state, so a
snapshot or fork keeps them.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import ClassVar

import numpy as np
import simpy
import xarray as xr

from basics.errors import InputError
from city_models.plans import MAX_LEGS, P_HOME, P_SCHOOL, P_WORK, make_plans
from city_models.population import (
    PopulationError,
    ZoneTable,
    grid_zones_over,
    read_zone_file,
    synthesize_population,
    zone_node_index,
)
from kernels import choice as kc
from kernels.agents import PersonTrips, Positions, VehicleView, trip_positions
from twin.clock import PRIORITY, schedule_at
from twin.components import Component, TwinView
from twin.population.outputs import PopulationOutputs
from twin.population.policies import Policies
from twin.population.settings import choice_params, plan_params, synthesis_params
from twin.population.skim import CarSkim
from twin.population.triplog import TRIP_ACTIVE, TRIP_DONE, TripLog
from twin.rng import component_seed

__all__ = ["PopulationComponent", "build", "PLACE_HOME", "PLACE_ACTIVITY", "P_EVACUATION", "PURPOSE_NAMES"]

log = logging.getLogger(__name__)

PLACE_HOME, PLACE_ACTIVITY = 0, 1
#: purpose code of evacuation trips (after the plan purposes)
P_EVACUATION = 4
PURPOSE_NAMES: tuple[str, ...] = ("home", "work", "school", "other", "evacuation")
NO_TRIP = -1

# counter-based random stream (slot) of the legs before the start, beside the choice kernel's
# slots and the policies' (twin.population.policies)
SALT_INIT = 1 << 42
_DRIVE_ESTIMATE_MPS = 30 / 3.6  # legs before the start are assumed driven at 30 km/h


class PopulationComponent(Component):
    """Residents as Mesa agents whose plans and choices make the demand (component ``"population"``).

    Policies (called by the interventions, or directly): :meth:`set_cordon`,
    :meth:`clear_cordon`, :meth:`set_work_from_home`, :meth:`order_evacuation`;
    closed links reach the persons through the travel-time skim.
    """

    #: remembered departure shift of each (person, leg), s (``None``: the plans' times)
    learnt_shift: np.ndarray | None = None
    #: the plan's preferred departure of each decided (person, leg), s since the start (NaN: not decided)
    desired_t: np.ndarray | None = None

    name = "population"
    kpi_labels: ClassVar[dict[str, tuple[str, str]]] = {
        "pop_persons": ("Persons (agents)", ""),
        "pop_trips_made": ("Agent trips made", ""),
        "pop_trips_car": ("Agent trips by car", ""),
        "pop_trips_cancelled": ("Agent trips cancelled (chose to stay)", ""),
        "pop_trips_dropped": ("Agent trips dropped by a policy", ""),
        "pop_mean_gc": ("Mean generalized cost per trip", "currency"),
        "pop_cordon_crossings": ("Car trips paying a cordon", ""),
        "pop_evac_clearance_s": ("Evacuation clearance time", "s"),
        "pop_evac_safe_share": ("Ordered population safe", "%"),
    }

    def __init__(self, twin: TwinView, spec) -> None:
        super().__init__(twin)
        self.spec = spec
        net = twin.city.network
        self.n_nodes = net.n_nodes
        ss = component_seed(twin.seed, "population")
        synth_ss, plan_ss, key_ss = ss.spawn(3)
        self.base_key = np.uint64(key_ss.generate_state(1, np.uint64)[0])
        self.table = self._zone_table(spec)
        self.zones = self.table.zones
        pl = spec.plans
        sparams = synthesis_params(spec.synthesis)
        pparams = plan_params(pl)
        try:
            self.people = synthesize_population(
                self.table,
                rng=np.random.default_rng(synth_ss),
                params=sparams,
                scale=float(spec.scale),
                persons=spec.persons,
            )
            self.plans = make_plans(self.people, rng=np.random.default_rng(plan_ss), params=pparams)
        except (PopulationError, ValueError) as exc:
            raise InputError(f"population: {exc}") from exc
        self.value_by_purpose = np.array([0.0, pl.work.value, pl.school.value, pl.other.value, 0.0])
        ch = spec.choice
        self.params = choice_params(ch)
        self.lead_s = max(0.0, -float(min(ch.shifts)))
        self.bucket_s = float(spec.bucket)
        self._build_geometry(net, ch.other_attraction_jobs)
        # --- policy state
        self.cordon_names: list[str] = []
        self.cordon = np.zeros((0, self.n_nodes), np.uint8)
        self.price = np.zeros(0)
        self.price_until = np.zeros(0)
        self.node_open = np.ones(self.n_nodes, np.uint8)
        self.work_from_home_share = 0.0
        self.wfh = np.zeros(self.people.n_persons, bool)
        #: cordons, work from home, evacuation orders
        self.policies = Policies(self)
        self.policies.init_evacuation()
        # --- person state
        n = self.people.n_persons
        self.place = np.full(n, PLACE_HOME, np.int8)
        self.node = self.people.home_node.copy()
        self.leg = np.zeros(n, np.int8)
        self.next_t = np.full(n, np.inf)
        self.trip_mode = np.full(n, NO_TRIP, np.int8)
        self.trip_vid = np.full(n, -1, np.int64)
        self.trip_dep = np.full(n, np.nan)
        self.trip_arr = np.full(n, np.nan)
        self.trip_dest = np.full(n, -1, np.int32)
        self.trip_purpose = np.full(n, -1, np.int8)
        self.trip_row = np.full(n, -1, np.int64)
        self.desired_t = np.full((n, MAX_LEGS), np.nan)
        self.learnt_shift = self._learnt_shift(getattr(twin, "route_knowledge", None), n)
        self.log = TripLog()
        self.travelling = np.zeros(0, np.int64)
        self.calendar: dict[int, list[np.ndarray]] = {}
        self.last_bucket = -1
        self.n_cancelled = 0
        self.n_dropped = 0
        #: the persons' car travel times to every zone, and which nodes the open roads connect
        self.skims = CarSkim(self.centroid, self.n_nodes, interval_s=float(spec.skim_interval))
        self._place_at_start()
        #: what the population records (counts by zone and state, trips, KPIs)
        self.outputs = PopulationOutputs(self)
        self._reserve_destinations()
        self.refresh_skim(0.0, force=True)
        self._schedule(np.flatnonzero(np.isfinite(self.next_t)))
        self._proc: simpy.Process | None = None
        self._make_agents()

    # ------------------------------------------------------------------ set-up
    @staticmethod
    def _learnt_shift(knowledge, n: int) -> np.ndarray | None:
        """The remembered departure shifts the twin's route knowledge carries, checked."""
        shift = getattr(knowledge, "departure_shift_s", None)
        if shift is None:
            return None
        if shift.shape != (n, MAX_LEGS):
            raise InputError(
                f"the remembered departure shifts cover {shift.shape[0]} persons x {shift.shape[1]} legs, "
                f"the population has {n} x {MAX_LEGS}: they were learnt on another population"
            )
        return shift

    def preferred_departure(self, persons: np.ndarray) -> np.ndarray:
        """When ``persons`` mean to leave on their next leg, s since the start: the plan's time
        plus the leg's remembered shift (inf once the day is done).
        """
        t = self.next_t[persons]
        shift = self.learnt_shift
        if shift is None:
            return t
        leg = np.minimum(self.leg[persons].astype(np.int64), MAX_LEGS - 1)
        return t + shift[persons, leg]

    def _zone_table(self, spec) -> ZoneTable:
        city = self.twin.city
        try:
            if spec.zones is not None:
                return read_zone_file(Path(spec.zones), city.network)
            if spec.zone_size is not None:
                z = grid_zones_over(
                    city.network,
                    spec.zone_size,
                    residents=int(city.zones.residents.sum()),
                    jobs=int(city.zones.jobs.sum()),
                )
                return ZoneTable(z, None, f"grid of {spec.zone_size:g} m")
        except PopulationError as exc:
            raise InputError(f"population.zones: {exc}") from exc
        return ZoneTable(city.zones, None, "city")

    def _build_geometry(self, net, jobs_weight: float) -> None:
        z = self.zones
        nz = z.n_zones
        self.node_x = np.ascontiguousarray(net.x, np.float64)
        self.node_y = np.ascontiguousarray(net.y, np.float64)
        self.node_zone = np.ascontiguousarray(z.node_zone, np.int32)
        self.zone_indptr, self.zone_nodes = zone_node_index(self.node_zone, nz)
        # the access node of each zone nearest its centroid: persons judge car travel times to a
        # zone by the route potentials towards it
        self.centroid = np.full(nz, -1, np.int32)
        ptr, acc = self.people.access_indptr, self.people.access_nodes
        for i in np.flatnonzero(np.diff(ptr) > 0):
            nodes = acc[ptr[i] : ptr[i + 1]]
            d = (self.node_x[nodes] - z.x[i]) ** 2 + (self.node_y[nodes] - z.y[i]) ** 2
            self.centroid[i] = nodes[int(np.argmin(d))]
        has = np.diff(self.zone_indptr) > 0
        jobs = np.asarray(z.jobs, np.float64) * has
        res = self.people.zone_persons.astype(np.float64) * has
        a = jobs_weight * jobs / max(jobs.sum(), 1e-12) + (1.0 - jobs_weight) * res / max(res.sum(), 1e-12)
        if a.sum() <= 0:
            a = has.astype(np.float64)
        share = a / a.sum()
        self.attract_cdf = np.cumsum(share)
        self.attract_cdf[-1] = 1.0
        with np.errstate(divide="ignore"):
            self.log_attract = np.log(share)

    def _make_agents(self) -> None:
        import mesa

        from twin.population.agents import Household, Person

        model = self.twin
        if self.spec.agents == "person":
            agents = [Person(model, self, i) for i in range(self.people.n_persons)]
        else:
            agents = [Household(model, self, h) for h in range(self.people.n_households)]
        self.agents = mesa.agent.AgentSet(agents, random=model.random)

    def _reserve_destinations(self) -> None:
        """Give the traffic model route rows for every node the persons may drive to, at once.

        Rows are otherwise added as destinations first appear, each time
        reallocating the whole route table.  A population at least as large as
        the network reaches nearly every zone node anyway; a smaller one
        reserves its homes, workplaces and schools.
        """
        ensure = self.twin.traffic.reserve_destinations
        p = self.people
        if p.n_persons >= p.access_nodes.size:
            nodes = p.access_nodes
        else:
            nodes = np.concatenate(
                [
                    p.hh_node,
                    p.work_node[p.work_node >= 0],
                    p.school_node[p.school_node >= 0],
                    self.centroid[self.centroid >= 0],
                ]
            )
        ensure(np.unique(nodes.astype(np.int64)))

    def _fixed_dest(self, persons: np.ndarray, purpose: np.ndarray) -> np.ndarray:
        p = self.people
        return np.select(
            [purpose == P_HOME, purpose == P_WORK, purpose == P_SCHOOL],
            [p.home_node[persons], p.work_node[persons], p.school_node[persons]],
            -1,
        ).astype(np.int32)

    def _place_at_start(self) -> None:
        """Persons whose first legs fall before the scenario start are where those legs took them."""
        pl = self.plans
        start = self.twin.start_s
        t = pl.first_depart.copy()  # clock seconds
        has = np.isfinite(t) & (pl.n_legs > 0)
        for _ in range(MAX_LEGS):
            early = np.flatnonzero(has & (t < start) & (self.leg < pl.n_legs))
            if early.size == 0:
                break
            g = self.leg[early].astype(np.int64)
            purpose = pl.purpose[early, g]
            dest = self._fixed_dest(early, purpose)
            flex = np.flatnonzero(dest < 0)
            if flex.size:
                keys = np.empty(flex.size, np.uint64)
                kc.decision_keys(self.base_key, early[flex].astype(np.int64), g[flex], keys)
                uz = kc.hash_uniforms(keys, SALT_INIT, np.empty(flex.size))
                un = kc.hash_uniforms(keys, SALT_INIT + 1, np.empty(flex.size))
                zone = np.searchsorted(self.attract_cdf, uz)
                zone = np.minimum(zone, self.zones.n_zones - 1)
                ptr = self.people.access_indptr
                cnt = ptr[zone + 1] - ptr[zone]
                j = np.minimum((un * cnt).astype(np.int64), np.maximum(cnt - 1, 0))
                dest[flex] = self.people.access_nodes[ptr[zone] + j]
            o = self.node[early]
            km = np.hypot(self.node_x[dest] - self.node_x[o], self.node_y[dest] - self.node_y[o]) * self.params.detour
            self.node[early] = dest
            self.place[early] = np.where(purpose == P_HOME, PLACE_HOME, PLACE_ACTIVITY)
            t[early] = t[early] + km / _DRIVE_ESTIMATE_MPS + pl.duration[early, g]
            self.leg[early] += 1
        self.next_t = np.where(has & (self.leg < pl.n_legs), t - start, np.inf)

    # ----------------------------------------------------------------- results (see PopulationOutputs)
    def person_states(self, persons: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Each person's state now and zone (:meth:`PopulationOutputs.person_states`)."""
        return self.outputs.person_states(persons)

    def evacuation_clearance_s(self, share: float | None = None) -> float:
        """Seconds until ``share`` of the ordered reached safety (:meth:`PopulationOutputs.evacuation_clearance_s`)."""
        return self.outputs.evacuation_clearance_s(share)

    def sample(self, t: float) -> None:
        """Record the persons by zone and state at output time ``t``."""
        self.outputs.sample(t)

    def data_vars(self) -> dict[str, xr.Variable]:
        """The population's variables for the run's Dataset."""
        return self.outputs.data_vars()

    def kpis(self) -> dict[str, float]:
        """The population's KPIs."""
        return self.outputs.kpis()

    # ----------------------------------------------------------------- policies (see Policies)
    def set_cordon(self, name: str, zones, price: float, *, until_s: float | None = None) -> None:
        """Price car trips crossing the zones' boundary (:meth:`Policies.set_cordon`)."""
        self.policies.set_cordon(name, zones, price, until_s=until_s)

    def clear_cordon(self, name: str) -> None:
        """Take a cordon off (:meth:`Policies.clear_cordon`)."""
        self.policies.clear_cordon(name)

    def set_work_from_home(self, share: float) -> None:
        """Set the share of workers who stay home (:meth:`Policies.set_work_from_home`)."""
        self.policies.set_work_from_home(share)

    def order_evacuation(
        self,
        zones,
        *,
        compliance: float = 1.0,
        delay_mean_s: float = 0.0,
        delay_sd_s: float = 0.0,
        shelters: np.ndarray | None = None,
    ) -> int:
        """Order the persons in ``zones`` to leave; returns how many (:meth:`Policies.order_evacuation`)."""
        return self.policies.order_evacuation(
            zones, compliance=compliance, delay_mean_s=delay_mean_s, delay_sd_s=delay_sd_s, shelters=shelters
        )

    # ----------------------------------------------------------------- the clock
    def start(self) -> None:
        """Register the population's process (it resumes from the calendar after a restore)."""
        self._proc = self.twin.env.process(self._run())

    def _next_wake(self) -> float:
        k = self.last_bucket + 1
        cand = [k] if self.travelling.size else []
        if self.calendar:
            cand.append(max(min(self.calendar), k))
        return min(cand) * self.bucket_s if cand else math.inf

    def _run(self):
        env = self.twin.env
        while True:
            t = self._next_wake()
            try:
                if math.isinf(t):
                    yield env.event()  # idle until a policy pokes
                else:
                    yield schedule_at(env, max(t, env.now), PRIORITY["normal"])
            except simpy.Interrupt:
                continue
            self._step(int(round(env.now / self.bucket_s)))

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_proc"] = None  # the process is rebuilt from the records (start)
        state["_pos_cache"] = None
        return state

    def poke(self) -> None:
        """Wake the process so it re-plans its next wake (after a policy changed the records)."""
        proc = self._proc
        if proc is not None and proc.is_alive and self.twin.env.active_process is not proc:
            proc.interrupt("policy")

    def _step(self, k: int) -> None:
        tw = self.twin
        tw.sync()
        now = tw.now
        self.settle_arrivals(now)
        self.refresh_skim(now)
        due = self._due(k)
        if due.size:
            self._decide(due, now)
        self.last_bucket = max(self.last_bucket, k)

    # --------------------------------------------------------------- calendar
    def _schedule(self, persons: np.ndarray) -> None:
        """File ``persons`` under the bucket of their next decision."""
        persons = persons[np.isfinite(self.next_t[persons])]
        if persons.size == 0:
            return
        k = np.floor((self.preferred_departure(persons) - self.lead_s) / self.bucket_s).astype(np.int64)
        k = np.maximum(k, self.last_bucket + 1)
        order = np.argsort(k, kind="stable")
        ks, persons = k[order], persons[order]
        cuts = np.flatnonzero(np.diff(ks)) + 1
        for key, grp in zip(ks[np.concatenate([[0], cuts])], np.split(persons, cuts), strict=False):
            self.calendar.setdefault(int(key), []).append(grp.astype(np.int64))

    def _due(self, k: int) -> np.ndarray:
        keys = [key for key in self.calendar if key <= k]
        if not keys:
            return np.zeros(0, np.int64)
        cand = np.unique(np.concatenate([a for key in keys for a in self.calendar.pop(key)]))
        t = self.preferred_departure(cand)
        ok = np.isfinite(t) & (self.trip_mode[cand] == NO_TRIP)
        ok &= np.floor((np.where(ok, t, 0.0) - self.lead_s) / self.bucket_s) <= k
        return cand[ok]

    # ------------------------------------------------------------------- skim
    def refresh_skim(self, now: float, *, force: bool = False) -> None:
        """Bring the travel-time skim up to the traffic model's weights when due (:meth:`CarSkim.refresh`)."""
        self.skims.refresh(self.twin.traffic, now, force=force)

    @property
    def skim(self) -> np.ndarray:
        """``[zone, node]`` car travel times to each zone's centroid, s (:attr:`CarSkim.table`)."""
        return self.skims.table

    @property
    def skim_row(self) -> np.ndarray:
        """Each zone's row in :attr:`skim` (``-1``: none)."""
        return self.skims.row

    @property
    def node_comp(self) -> np.ndarray | None:
        """Strongly connected component of each node over the open links (:attr:`CarSkim.node_comp`)."""
        return self.skims.node_comp

    def zone_travel_times(self) -> np.ndarray:
        """The persons' current car travel times from every node to each zone's centroid, s
        ([n_zones, n_nodes]; inf: unreachable).
        """
        self.refresh_skim(self.twin.now)
        return self.skim.copy()

    def world(self) -> kc.ChoiceWorld:
        """What the persons know now (the choice kernel's view of the city)."""
        node_comp = self.skims.node_comp
        assert node_comp is not None  # refresh_skim ran when the component was built
        return kc.ChoiceWorld(
            skim=self.skim,
            skim_row=self.skim_row,
            node_x=self.node_x,
            node_y=self.node_y,
            node_zone=self.node_zone,
            zone_indptr=self.people.access_indptr,
            zone_nodes=self.people.access_nodes,
            attract_cdf=self.attract_cdf,
            log_attract=self.log_attract,
            node_open=self.node_open,
            node_comp=node_comp,
            cordon=self.cordon,
            price=self.price,
            price_until=self.price_until,
        )

    # --------------------------------------------------------------- arrivals
    def positions(self, persons: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For persons with a trip (default: all of them), now: arrival time (NaN while under way),
        state (0 home, 1 activity, 2 travelling) and the node they count at (:func:`kernels.agents.trip_positions`).

        The result for the whole set is kept until the clock or the set changes (the
        recorder's sample and the step at the same time share it).
        """
        now = self.twin.traffic.now
        whole = persons is None
        p = self.travelling if persons is None else persons
        cache = getattr(self, "_pos_cache", None)
        if whole and cache is not None and cache[0] == now and cache[1] is p:
            return cache[2]
        m = p.shape[0]
        out = (np.empty(m), np.empty(m, np.int8), np.empty(m, np.int32))
        veh = self.twin.traffic.veh
        trips = PersonTrips(
            self.trip_mode,
            self.trip_vid,
            self.trip_dep,
            self.trip_arr,
            self.trip_dest,
            self.trip_purpose,
            self.place,
            self.node,
        )
        trip_positions(p, trips, VehicleView(veh.arrive, veh.link, self.twin.traffic.links.dst), now, Positions(*out))
        if whole:
            self._pos_cache = (now, p, out)
        return out

    def settle_arrivals(self, now: float) -> None:
        """Persons whose trip ended by ``now`` are where they went (records, plans, evacuees)."""
        p = self.travelling
        if p.size == 0:
            return
        arr = self.positions()[0]
        done = arr <= now
        if done.any():
            self.travelling = p[~done]
            self._arrive(p[done], arr[done])

    def _arrive(self, persons: np.ndarray, t: np.ndarray) -> None:
        pl = self.plans
        purpose = self.trip_purpose[persons]
        dest = self.trip_dest[persons]
        self.outputs.uncount(persons)
        self.node[persons] = dest
        self.place[persons] = np.where(purpose == P_HOME, PLACE_HOME, PLACE_ACTIVITY)
        self.outputs.count(persons)
        rows = self.trip_row[persons]
        self.log["arrive"][rows] = t
        self.log["status"][rows] = TRIP_DONE
        self.trip_mode[persons] = NO_TRIP
        self.trip_vid[persons] = -1
        evac = purpose == P_EVACUATION
        if evac.any():
            self.policies.evacuee_safe(persons[evac], t[evac])
        normal = persons[~evac]
        if normal.size:
            g = self.leg[normal].astype(np.int64)
            nxt = g + 1
            self.leg[normal] = nxt
            dur = pl.duration[normal, g].astype(np.float64)
            self.next_t[normal] = np.where(nxt < pl.n_legs[normal], t[~evac] + dur, np.inf)
            self._schedule(normal)
            self.policies.arrived_in_evacuated(normal, t[~evac])

    # -------------------------------------------------------------- decisions
    def _decide(self, persons: np.ndarray, now: float) -> None:
        pl = self.plans
        g = self.leg[persons].astype(np.int64)
        purpose = pl.purpose[persons, g]
        at_home = self.place[persons] == PLACE_HOME
        wfh = self.wfh[persons] & (purpose == P_WORK) & at_home
        if wfh.any():
            self._skip_tour(persons[wfh], policy=True)
            keep = ~wfh
            persons, g, purpose, at_home = persons[keep], g[keep], purpose[keep], at_home[keep]
            if persons.size == 0:
                return
        dest = self._fixed_dest(persons, purpose)
        keys = np.empty(persons.size, np.uint64)
        kc.decision_keys(self.base_key, persons.astype(np.int64), g, keys)
        if self.desired_t is not None:
            self.desired_t[persons, g] = self.next_t[persons]
        people = self.people
        inp = kc.ChoiceInputs(
            key=keys,
            orig=self.node[persons].astype(np.int32),
            dest_node=dest,
            t_pref=self.preferred_departure(persons),
            t_min=np.full(persons.size, now),
            value=self.value_by_purpose[purpose],
            vot=people.vot[persons].astype(np.float64),
            car=people.car[persons].astype(np.uint8),
            can_stay=(at_home & (purpose != P_HOME)).astype(np.uint8),
        )
        out = kc.choose(self.params, inp, self.world(), kc.empty_outputs(persons.size))
        stay = out.mode == kc.STAY
        if stay.any():
            closed = (dest >= 0) & (self.node_open[np.maximum(dest, 0)] == 0)
            flex_none = (dest < 0) & (inp.can_stay == 0)
            policy = stay & (closed | flex_none)
            home = stay & at_home
            self._skip_tour(persons[home & ~policy], policy=False)
            self._skip_tour(persons[home & policy], policy=True)
            away = stay & ~at_home
            self._skip_leg(persons[away], now, stuck=purpose[away] == P_HOME)
        go = ~stay
        if go.any():
            self.start_trips(
                persons[go],
                g[go],
                purpose[go],
                out.dest[go],
                out.mode[go],
                out.depart[go],
                out.tt[go],
                out.gc[go],
                out.paid[go],
            )

    def _skip_tour(self, persons: np.ndarray, *, policy: bool) -> None:
        """Drop the legs up to and including the next return home; the person stays home meanwhile."""
        if persons.size == 0:
            return
        pl = self.plans
        g = self.leg[persons].astype(np.int64)
        idx = np.arange(MAX_LEGS)
        pur = pl.purpose[persons]
        is_home = (idx[None, :] >= g[:, None]) & (pur == P_HOME)
        has = is_home.any(1)
        h = np.where(has, np.argmax(is_home, axis=1), pl.n_legs[persons] - 1)
        span = (idx[None, :] >= g[:, None]) & (idx[None, :] <= h[:, None])
        dur = np.where(span, pl.duration[persons].astype(np.float64), 0.0).sum(1)
        nxt = h + 1
        self.leg[persons] = nxt
        self.next_t[persons] = np.where(nxt < pl.n_legs[persons], self.next_t[persons] + dur, np.inf)
        dropped = int((h - g + 1).sum())
        if policy:
            self.n_dropped += dropped
        else:
            self.n_cancelled += dropped
        self._schedule(persons)

    def _skip_leg(self, persons: np.ndarray, now: float, *, stuck: np.ndarray) -> None:
        """A leg that cannot be made away from home: skip a stop; a closed home keeps the person where they are."""
        if persons.size == 0:
            return
        pl = self.plans
        stuck_p = persons[stuck]
        self.n_dropped += int((pl.n_legs[stuck_p] - self.leg[stuck_p]).sum())
        self.leg[stuck_p] = pl.n_legs[stuck_p]
        self.next_t[stuck_p] = np.inf
        skip = persons[~stuck]
        self.n_dropped += int(skip.size)
        nxt = self.leg[skip].astype(np.int64) + 1
        self.leg[skip] = nxt
        self.next_t[skip] = np.where(nxt < pl.n_legs[skip], now + self.lead_s, np.inf)
        self._schedule(skip)

    def start_trips(self, persons, leg, purpose, dest, mode, depart, tt, gc, paid, *, vid=None) -> np.ndarray:
        """Put the chosen trips under way (car trips on the road); returns their log rows."""
        orig = self.node[persons].astype(np.int32)
        mode = mode.astype(np.int8).copy()
        tt = tt.copy()
        same = dest == orig
        mode[same] = kc.MODE_OTHER  # across the street: no vehicle
        tt[same] = 0.0
        car = mode == kc.MODE_CAR
        vids = np.full(persons.size, -1, np.int64)
        if vid is not None:
            vids[car] = vid[car]
        elif car.any():
            vids[car] = self.twin.add_trips(orig[car], dest[car], depart[car], source="population")
        arr = np.where(car, np.nan, depart + tt)
        rows = self.log.append(
            person=persons,
            leg=leg,
            purpose=purpose,
            mode=mode,
            orig=orig,
            dest=dest,
            depart=depart,
            arrive=arr,
            gc=gc,
            paid=paid,
            vid=vids,  # known at once without a car; drivers' when they arrive
            status=np.full(persons.size, TRIP_ACTIVE, np.int8),
        )
        self.trip_mode[persons] = mode
        self.trip_vid[persons] = vids
        self.trip_dep[persons] = depart
        self.trip_arr[persons] = arr
        self.trip_dest[persons] = dest
        self.trip_purpose[persons] = purpose
        self.trip_row[persons] = rows
        self.travelling = np.concatenate([self.travelling, persons.astype(np.int64)])
        return rows


def build(twin):
    """The population component, or ``None`` when the scenario has no ``population``."""
    spec = getattr(twin.scenario, "population", None)
    if spec is None or not getattr(spec, "enabled", False):
        return None
    return PopulationComponent(twin, spec)
