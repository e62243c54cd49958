"""The emergency-response component: incidents, units and dispatch on the twin's clock.

Everything is a SimPy process on ``twin.env`` driving plain records:

- one *agenda* process runs every unit's and open incident's next step at the record's
  ``t_next`` (see :mod:`twin.emergency.incidents` and :mod:`twin.emergency.resources`):
  :meth:`EmergencyComponent.set_next` puts ``(t_next, seq, key)`` on a heap (the heap
  and its counter are records, so a snapshot keeps the order of simultaneous steps),
  and wakes the agenda when the new time comes before the one it sleeps until.  One
  process for all, rather than one per record, spares a SimPy process, an idle event
  and an interrupt per step;
- one arrival process per stochastic incident type (next call time in
  :attr:`EmergencyComponent.next_arrival`), one for the scripted drill timeline
  (:attr:`EmergencyComponent.script`, position :attr:`EmergencyComponent.script_pos`);
- the dispatch centre: a process woken whenever a call is reported or a unit becomes
  free, serving the queue of incidents that still need units by priority, then by
  the time reported;
- a watcher that notices link changes made by others (road works, closed bridges)
  and re-routes units whose remaining route crosses a closed link.

:meth:`EmergencyComponent.start` builds all processes from the records, so a twin
restored from a snapshot resumes by calling it again.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import simpy

from basics.numeric import EPS as _EPS
from scenarios import parse_time_point
from scenarios.emergency import level_value
from twin.clock import PRIORITY, schedule_at
from twin.components import Component, TwinView
from twin.emergency import report
from twin.emergency.agenda import Agenda, Key
from twin.emergency.centre import DispatchCentre
from twin.emergency.checks import check_invariants
from twin.emergency.control import ControlDesk
from twin.emergency.dispatch import Candidates, Router, load_policy
from twin.emergency.fleet import Fleet
from twin.emergency.incidents import (
    CLEARED,
    OCCURRED,
    REPORTED,
    SCENE_CLOSED,
    WORKING,
    ArrivalSampler,
    Incident,
    IncidentBook,
    Location,
    closure_links,
    draw,
    locate,
)
from twin.emergency.log import EventLog
from twin.emergency.resources import (
    AVAILABLE,
    DISPATCHED,
    ENROUTE,
    HOSPITAL,
    ONSCENE,
    OUT_OF_SERVICE,
    REMOVED,
    RETURNING,
    TRANSPORT,
    Station,
    Unit,
    build_resources,
)
from twin.emergency.routes import UnitRoutes
from twin.rng import component_rng

__all__ = ["EmergencyComponent"]

log = logging.getLogger(__name__)


#: SimPy priority of the component's own events (see :data:`twin.clock.PRIORITY`)
_PRIO = PRIORITY["normal"]


class EmergencyComponent(Component):
    """Incidents, stations, units, hospitals and the dispatch centre (``twin.components["emergency"]``).

    Interventions and live injects act through :meth:`inject`,
    :meth:`set_station_in_service`, :meth:`add_station`, :meth:`remove_station` and
    :meth:`move_units`.  :attr:`policy` is the dispatch policy (see
    :mod:`twin.emergency.dispatch`).
    """

    name = "emergency"
    kpi_labels = report.KPI_LABELS

    def __init__(self, twin: TwinView) -> None:
        super().__init__(twin)
        self._env = twin.env
        inc_spec = twin.scenario.incidents
        self.spec = inc_spec
        self.types = inc_spec.types
        self._severity_cdf = {
            name: (sorted(t.severity), np.cumsum([t.severity[k] for k in sorted(t.severity)]))
            for name, t in self.types.items()
        }
        city = twin.city
        seed = twin.seed
        self.rng = component_rng(seed, "emergency")  # incident attributes
        self.rng_units = component_rng(seed, "emergency/units")  # turnout, handover, stay
        self.samplers = {
            name: ArrivalSampler(city, r, start_s=twin.start_s, where=f"incidents.rates.{name}")
            for name, r in inc_spec.rates.items()
        }
        self.rng_arrivals = {name: component_rng(seed, f"emergency/arrivals/{name}") for name in self.samplers}
        #: next random call of each type (s since the start; inf: none)
        self.next_arrival = {name: s.next_time(0.0, self.rng_arrivals[name]) for name, s in self.samplers.items()}
        #: the drill timeline (and future injects), sorted by time; entries before script_pos are done
        self.script: list[dict] = []
        for i, d in enumerate(inc_spec.drill):
            where = f"incidents.drill[{i}] ({d.type} at {d.at})"
            t = parse_time_point(d.at, start_s=twin.start_s)
            self.script.append(
                {
                    "t": t,
                    "type": d.type,
                    "loc": locate(city, d.location, where=f"{where}.location"),
                    "severity": d.severity,
                    "notes": d.notes,
                    "source": "drill",
                }
            )
        self.script.sort(key=lambda e: e["t"])
        self.script_pos = 0
        used = set(inc_spec.rates) | {d.type for d in inc_spec.drill}
        stations, units, self.hospitals = build_resources(city, twin.scenario.resources, inc_spec, types_used=used)
        #: the stations and their units (states, homes, who is free)
        self.fleet = Fleet(stations, units, sorted(inc_spec.unit_kinds_needed))
        #: the incidents, the dispatch queue and their counts
        self.book = IncidentBook()
        self.log = EventLog()
        self.policy = load_policy(inc_spec.policy)
        self.policy_name = inc_spec.policy
        self.router = Router(twin, speed_factor=inc_spec.emergency_speed_factor)
        #: seconds between checks for link changes made by others
        self.link_watch_s = 15.0
        self._lc_seen = len(twin.link_control.history)
        self._closed_seen = self.router.closed_mask()
        self._script_gen = 0
        self.series: dict[str, list] = {"time": [], "available": [], "waiting": [], "active": [], "hospital": []}
        #: the units' and incidents' next steps, run by one process
        self.agenda = Agenda(self, priority=_PRIO)
        #: called after each step the agenda runs (tests check the invariants there: several
        #: steps due at one time run in one SimPy event)
        self.step_hook = None
        self._wake: simpy.Event | None = None
        self._watch_wake: simpy.Event | None = None
        #: station changes, unit moves and injects
        self.control = ControlDesk(self)
        #: unit trips on the roads
        self.routes = UnitRoutes(self)
        #: the dispatch centre's rounds
        self.centre = DispatchCentre(self)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.update(_wake=None, _watch_wake=None, _env=None)
        return state

    # ================================================================ processes
    def start(self) -> None:
        """Register the processes (dispatcher, arrivals, drill script, agenda, link watch) from the records."""
        env = self._env = self.twin.env
        self.fleet.rebuild_index()
        self._wake = env.event()
        env.process(self._dispatcher())
        for name in self.samplers:
            env.process(self._arrivals(name))
        self._script_gen += 1
        env.process(self._script_proc(self._script_gen))
        self.agenda.start(env)
        env.process(self._link_watch())
        if self.book.queue:
            self.kick()

    @property
    def now(self) -> float:
        """The clock's time, s."""
        return self._env.now

    @property
    def incidents(self) -> list[Incident]:
        """The incident records, by id (:attr:`IncidentBook.records`)."""
        return self.book.records

    @property
    def units(self) -> list[Unit]:
        """The unit records, by id (:attr:`Fleet.units`; change them through :attr:`fleet`)."""
        return self.fleet.units

    @property
    def stations(self) -> list[Station]:
        """The station records, by id (:attr:`Fleet.stations`; change them through :attr:`fleet`)."""
        return self.fleet.stations

    # ------------------------------------------------------------ the agenda's owner
    def agenda_record(self, key: Key) -> Unit | Incident:
        """The unit (``("u", id)``) or incident (``("i", id)``) a key names."""
        return self.fleet.units[key[1]] if key[0] == "u" else self.book[key[1]]

    def agenda_finished(self, key: Key, rec: Unit | Incident) -> bool:
        """Whether the record is done for good (a retired unit, a cleared incident)."""
        return rec.done if isinstance(rec, Unit) else rec.stage == CLEARED

    def agenda_due(self, key: Key, rec: Unit | Incident) -> None:
        """Run a unit's or incident's step that fell due now, then react to link changes."""
        if isinstance(rec, Unit):
            self._unit_due(rec)
        else:
            self._incident_due(rec)
        self._links_changed()
        if self.step_hook is not None:
            self.step_hook()

    def set_next(self, key: Key, t: float) -> None:
        """Set a record's next step time (``inf``: none); see :meth:`Agenda.set_next`."""
        self.agenda.set_next(key, t)

    def kick(self) -> None:
        """Wake the dispatch centre (a no-op while no incident waits for units)."""
        if self.book.queue and self._wake is not None and not self._wake.triggered:
            self._wake.succeed()

    def _dispatcher(self):
        while True:
            yield self._wake
            self._wake = self.twin.env.event()
            self._links_changed()
            self.centre.dispatch_round()

    def _arrivals(self, name: str):
        env = self.twin.env
        sampler, rng = self.samplers[name], self.rng_arrivals[name]
        while math.isfinite(self.next_arrival[name]):
            t = self.next_arrival[name]
            if t > env.now + _EPS:
                yield schedule_at(env, t, _PRIO)
                continue
            node = sampler.node(rng)
            self.next_arrival[name] = sampler.next_time(t, rng)
            self.new_incident(name, Location(node), severity=None, source="random", notes="")

    def _script_proc(self, gen: int):
        env = self.twin.env
        while gen == self._script_gen and self.script_pos < len(self.script):
            e = self.script[self.script_pos]
            if e["t"] > env.now + _EPS:
                yield schedule_at(env, e["t"], _PRIO)
                continue
            self.script_pos += 1
            self.new_incident(e["type"], e["loc"], severity=e["severity"], source=e["source"], notes=e["notes"])

    def add_to_script(self, entry: dict) -> None:
        """Put a later incident on the timeline (after those due at the same time or before).

        Parameters
        ----------
        entry : dict
            ``{"t", "type", "loc", "severity", "notes", "source"}`` as the drill
            timeline's entries; ``t`` after the clock's time.
        """
        t = entry["t"]
        pos = self.script_pos + sum(1 for e in self.script[self.script_pos :] if e["t"] <= t)
        self.script.insert(pos, entry)
        self._script_gen += 1
        self.twin.env.process(self._script_proc(self._script_gen))

    def _link_watch(self):
        """Check for link changes by others every ``link_watch_s`` while it matters.

        It matters while a unit drives a route (it may have to turn) or an incident
        waits for a unit that is free but cannot reach it (a reopened road may bring
        it within reach); otherwise the watch
        sleeps until a trip starts or a call is queued, so an idle service adds no
        events to the clock.
        """
        env = self.twin.env
        while True:
            if not (self.centre.blocked or self.fleet.any_moving()):
                self._watch_wake = env.event()
                yield self._watch_wake
                continue
            yield schedule_at(env, env.now + self.link_watch_s, _PRIO)
            if self._links_changed():
                self.kick()

    def watch_roads(self) -> None:
        """Wake the link watch (a trip started, or a queued call waits for a unit that cannot reach it)."""
        if self._watch_wake is not None and not self._watch_wake.triggered:
            self._watch_wake.succeed()

    # ================================================================ incidents
    def new_incident(self, type_: str, loc: Location, *, severity: int | None, source: str, notes: str) -> Incident:
        """An incident of ``type_`` occurs now at ``loc`` (severity drawn when ``None``); returns its record."""
        spec = self.types[type_]
        rng = self.rng
        levels, cum = self._severity_cdf[type_]
        drawn = levels[min(int(cum.searchsorted(rng.random() * cum[-1], "right")), len(levels) - 1)]
        sev = int(severity) if severity is not None else int(drawn)
        call = draw(self.spec.call_delay, rng)
        work = draw(spec.on_scene, rng)
        clear = draw(spec.clearance, rng)
        u = float(rng.random())
        now = self.now
        inc = Incident(
            id=len(self.book),
            type=type_,
            severity=sev,
            priority=int(level_value(spec.priority, sev, sev)) if spec.priority else sev,
            node=int(loc.node),
            links=(),
            source=source,
            notes=notes,
            t_occur=now,
            call_delay_s=call,
            work_s=work,
            clear_s=clear if spec.cleared_by else 0.0,
            transport=u < level_value(spec.transport, sev, 0.0),
            clear_done=spec.cleared_by is None,
        )
        self.book.add(inc)
        self.log.add(
            now, "occurred", inc.id, node=inc.node, detail=f"{source}; severity {sev}" + (f"; {notes}" if notes else "")
        )
        if spec.affects_links:
            self._apply_links(inc, loc)
        self.set_next(("i", inc.id), now + call)
        return inc

    def _apply_links(self, inc: Incident, loc: Location) -> None:
        spec = self.types[inc.type]
        city = self.twin.city
        if spec.closes_links:
            links = closure_links(city, loc, spec.closure_radius_m)
            factor = 1.0
        else:
            factor = float(level_value(spec.capacity_factor, inc.severity, 1.0))
            if factor >= 1.0:
                return
            links = np.asarray(loc.links, np.int64)
            if links.size == 0:  # a node: the busiest road into it
                net = city.network
                into = net.in_links[net.in_indptr[inc.node] : net.in_indptr[inc.node + 1]]
                if into.size == 0:
                    return
                self.twin.sync()
                st = self.twin.traffic.state
                load = (st.n_in - st.n_out)[into]
                links = np.asarray([into[int(np.argmax(load))]], np.int64)
        if links.size == 0:
            return
        inc.links = tuple(int(a) for a in links)
        inc.link_handle = self.twin.link_control.apply(
            links, source=f"emergency:{inc.type}#{inc.id}", closed=bool(spec.closes_links), capacity_factor=factor
        )
        what = "closed" if spec.closes_links else f"capacity x{factor:g}"
        self.log.add(self.now, "link_change", inc.id, node=inc.node, detail=f"{what} on links {list(inc.links)}")
        self._links_changed()

    def _revert_links(self, inc: Incident) -> None:
        if inc.link_handle >= 0:
            self.twin.link_control.revert(inc.link_handle)
            inc.link_handle = -1
            self.log.add(self.now, "link_change", inc.id, node=inc.node, detail=f"restored links {list(inc.links)}")
            self._links_changed()

    def _incident_due(self, inc: Incident) -> None:
        now = self.now
        if inc.stage == OCCURRED:
            inc.stage = REPORTED
            inc.t_reported = now
            mix = level_value(self.types[inc.type].units, inc.severity)
            inc.need = {k: int(n) for k, n in sorted(mix.items()) if n > 0}
            self.book.enqueue(inc.id)
            self.log.add(
                now,
                "reported",
                inc.id,
                node=inc.node,
                detail="needs " + ", ".join(f"{n} {k}" for k, n in inc.need.items()),
            )
            self.kick()
            return
        if inc.stage == WORKING and now >= inc.t_work_end - _EPS:
            inc.t_work_end = -math.inf  # elapsed
            self.log.add(now, "work_done", inc.id, node=inc.node)
            self._try_close_scene(inc)
        if not inc.clear_done and now >= inc.t_clear_end - _EPS:
            self._finish_clearance(inc)
        self._incident_timer(inc)

    def _incident_timer(self, inc: Incident) -> None:
        t = math.inf
        if inc.stage == WORKING and inc.t_work_end > -math.inf:
            t = inc.t_work_end
        if not inc.clear_done and math.isfinite(inc.t_clear_end):
            t = min(t, inc.t_clear_end)
        if inc.stage != CLEARED:
            self.set_next(("i", inc.id), t)

    def _essentials_missing(self, inc: Incident) -> list[str]:
        spec = self.types[inc.type]
        need = []
        if spec.cleared_by:
            need.append(spec.cleared_by)
        if inc.transport:
            need.append(spec.transport_unit)
        return [k for k in need if inc.arrived_kinds.get(k, 0) < 1]

    def _on_arrival(self, unit: Unit, inc: Incident, travel: float) -> None:
        now = self.now
        spec = self.types[inc.type]
        inc.arrived_kinds[unit.kind] = inc.arrived_kinds.get(unit.kind, 0) + 1
        self.log.add(now, "on_scene", inc.id, unit.id, inc.node, detail=f"travel {travel:.0f} s")
        if math.isnan(inc.t_on_scene):
            inc.t_on_scene = now
            inc.first_unit = unit.id
            inc.first_travel_s = travel
            inc.t_work_end = now + inc.work_s
            inc.stage = WORKING
        tgt = spec.target
        if tgt is not None and math.isnan(inc.target_t) and (tgt.unit is None or tgt.unit == unit.kind):
            inc.target_t = now
            inc.target_travel_s = travel
        if spec.cleared_by == unit.kind and math.isnan(inc.t_clear_start):
            inc.t_clear_start = now
            inc.t_clear_end = now + inc.clear_s
        if inc.stage == SCENE_CLOSED:  # only essential units still come
            self._after_scene(inc, unit)
        self._try_close_scene(inc)
        if not inc.clear_done and now >= inc.t_clear_end - _EPS:
            self._finish_clearance(inc)
        self._incident_timer(inc)

    def _try_close_scene(self, inc: Incident) -> None:
        """End the on-scene phase once the work time is over and every essential unit came."""
        if inc.stage != WORKING or inc.t_work_end > -math.inf or self._essentials_missing(inc):
            return
        now = self.now
        inc.stage = SCENE_CLOSED
        inc.t_scene_closed = now
        inc.need.clear()
        self.book.dequeue(inc.id)
        self.log.add(now, "scene_closed", inc.id, node=inc.node)
        spec = self.types[inc.type]
        if not spec.cleared_by:
            self._revert_links(inc)
        carrier = -1
        if inc.transport:
            for u in inc.assigned:
                if self.fleet.units[u].state == ONSCENE and self.fleet.units[u].kind == spec.transport_unit:
                    carrier = u
                    break
        for u in list(inc.assigned):
            unit = self.fleet.units[u]
            if unit.state in (DISPATCHED, ENROUTE):
                self.log.add(now, "stood_down", inc.id, u)
                self._release(unit)
            elif unit.state == ONSCENE:
                if u == carrier:
                    self._start_transport(unit, inc)
                elif not (unit.kind == spec.cleared_by and not inc.clear_done):
                    self._release(unit)
        self._try_clear(inc)

    def _after_scene(self, inc: Incident, unit: Unit) -> None:
        """A unit reached a closed scene (cannot normally happen: en-route units are stood down)."""
        self._release(unit)
        self._try_clear(inc)

    def _finish_clearance(self, inc: Incident) -> None:
        inc.clear_done = True
        self.log.add(self.now, "road_cleared", inc.id, node=inc.node)
        self._revert_links(inc)
        kind = self.types[inc.type].cleared_by
        for u in list(inc.assigned):
            unit = self.fleet.units[u]
            if unit.state == ONSCENE and unit.kind == kind:
                self._release(unit)
        self._try_clear(inc)

    def _try_clear(self, inc: Incident) -> None:
        if inc.stage != SCENE_CLOSED or not inc.clear_done or not inc.transport_done or inc.assigned:
            return
        inc.stage = CLEARED
        inc.t_cleared = self.now
        inc.t_next = math.inf
        self.book.cleared(inc)
        self._revert_links(inc)
        self.log.add(self.now, "cleared", inc.id, node=inc.node)

    # ================================================================ units
    def _unit_due(self, unit: Unit) -> None:
        now = self.now
        if unit.state == DISPATCHED:
            self.fleet.set_state(unit, ENROUTE)
            inc = self.book[unit.incident]
            if math.isnan(inc.t_enroute):
                inc.t_enroute = now
            self.log.add(now, "en_route", inc.id, unit.id, unit.node)
            self.set_next(("u", unit.id), self.routes.arrival_time(unit))
        elif unit.state == ENROUTE:
            inc = self.book[unit.incident]
            travel = now - unit.t_depart
            self.fleet.set_state(unit, ONSCENE)
            unit.clear_trip(inc.node)
            self._on_arrival(unit, inc, travel)
        elif unit.state == TRANSPORT:
            inc = self.book[unit.incident]
            h = self.hospitals[inc.hospital]
            h.incoming -= 1
            self.fleet.set_state(unit, HOSPITAL)
            unit.clear_trip(h.node)
            inc.t_hospital = now
            h.admit(now, now + draw(self.types[inc.type].hospital_stay, self.rng_units))
            self.log.add(now, "at_hospital", inc.id, unit.id, h.node, detail=h.name)
            self.set_next(("u", unit.id), now + draw(self.types[inc.type].handover, self.rng_units))
        elif unit.state == HOSPITAL:
            inc = self.book[unit.incident]
            inc.transport_done = True
            self.log.add(now, "handover_done", inc.id, unit.id, unit.node)
            self._release(unit)
            self._try_clear(inc)
        elif unit.state == RETURNING:
            self._at_station(unit)

    def _release(self, unit: Unit) -> None:
        """Free a unit from its incident and send it home."""
        inc = self.book[unit.incident]
        inc.assigned.remove(unit.id)
        unit.incident = -1
        unit.busy_s += self.now - unit.busy_since
        unit.busy_since = math.nan
        self.send_home(unit)
        self.kick()

    def send_home(self, unit: Unit) -> None:
        """Send a unit (free of any incident) to its home station, or mark it there."""
        home = self.fleet.stations[unit.station].node
        node, lead, _ = self.routes.where(unit)
        if node == home and lead < 0:
            unit.clear_trip(home)
            self._at_station(unit)
            return
        self.fleet.set_state(unit, RETURNING)
        if not self.routes.route(unit, home, t0=self.now, leaving=True):
            unit.clear_trip(node)
            self.log.add(self.now, "stranded", -1, unit.id, node, detail="no open route home")
            self.set_next(("u", unit.id), math.inf)
            return
        self.log.add(
            self.now, "returning", -1, unit.id, unit.node, detail=f"to {self.fleet.stations[unit.station].name}"
        )
        self.set_next(("u", unit.id), self.routes.arrival_time(unit))

    def _at_station(self, unit: Unit) -> None:
        st = self.fleet.stations[unit.station]
        unit.clear_trip(st.node)
        if st.removed:
            self.fleet.set_state(unit, REMOVED)
            unit.done = True
        else:
            self.fleet.set_state(unit, AVAILABLE if st.in_service else OUT_OF_SERVICE)
        self.log.add(self.now, "at_station", -1, unit.id, st.node, detail=st.name)
        self.set_next(("u", unit.id), math.inf)
        self.kick()

    def _start_transport(self, unit: Unit, inc: Incident) -> None:
        now = self.now
        dist, pred = self.router.tree_from(inc.node)
        best, best_free = -1, -1
        for h, hosp in enumerate(self.hospitals):
            d = dist[hosp.node]
            if not np.isfinite(d):
                continue
            if best < 0 or d < dist[self.hospitals[best].node]:
                best = h
            if hosp.occupied(now) + hosp.incoming < hosp.beds and (
                best_free < 0 or d < dist[self.hospitals[best_free].node]
            ):
                best_free = h
        h = best_free if best_free >= 0 else best
        if h < 0:
            self.log.add(now, "stranded", inc.id, unit.id, inc.node, detail="no hospital reachable")
            self._release(unit)
            return
        hosp = self.hospitals[h]
        hosp.incoming += 1
        inc.hospital = h
        inc.t_transport = now
        inc.transport_done = False
        links, tts = self.router.path_from_tree(pred, inc.node, hosp.node)
        self.fleet.set_state(unit, TRANSPORT)
        unit.node, unit.dest, unit.t_depart = inc.node, hosp.node, now
        unit.path, unit.path_t = links, np.add.accumulate(tts) + now
        if links.shape[0]:
            self.watch_roads()
        self.log.add(
            now,
            "transport",
            inc.id,
            unit.id,
            inc.node,
            detail=hosp.name + ("" if best_free >= 0 else " (no free bed: nearest)"),
        )
        self.set_next(("u", unit.id), self.routes.arrival_time(unit))

    # ================================================================ dispatch
    # ================================================================ link changes
    def _links_changed(self) -> bool:
        """React to link changes (own or others'): re-route units whose remaining route crosses a
        newly closed link; when links reopen, retry units left without a route.  Returns whether
        anything changed since the last call.
        """
        v = self.router.link_version()
        if v == self._lc_seen:
            return False
        self._lc_seen = v
        closed = self.router.closed_mask()
        newly = closed & ~self._closed_seen
        opened = self._closed_seen & ~closed
        self._closed_seen = closed
        if not (newly.any() or opened.any()):
            return True
        now = self.twin.env.now
        moving = self.fleet.moving()
        for u in moving:
            unit = self.fleet.units[int(u)]
            if unit.path.shape[0] == 0:  # stranded: try again
                if not opened.any():
                    continue
                if unit.state == RETURNING and unit.node != self.fleet.stations[unit.station].node:
                    self.send_home(unit)
                elif unit.state == TRANSPORT and self.routes.route(unit, unit.dest, t0=now):
                    self.log.add(now, "rerouted", unit.incident, unit.id, unit.node, detail="a route opened")
                    self.set_next(("u", unit.id), self.routes.arrival_time(unit))
                continue
            if newly.any() and newly[self.routes.rest(unit)].any():
                self._reroute(unit)
        return True

    def _reroute(self, unit: Unit) -> None:
        now = self.now
        key = ("u", unit.id)
        if unit.state == RETURNING:
            self.send_home(unit)
            return
        if unit.state == TRANSPORT:
            inc = self.book[unit.incident]
            dest = self.hospitals[inc.hospital].node
        else:
            inc = self.book[unit.incident]
            dest = inc.node
        leaving = unit.state == DISPATCHED
        ok = self.routes.route(unit, dest, t0=unit.t_depart if leaving else now, from_here=not leaving)
        if ok:
            self.log.add(now, "rerouted", inc.id, unit.id, unit.node, detail="a link on its route closed")
            self.set_next(key, unit.t_depart if leaving else self.routes.arrival_time(unit))
            return
        self.log.add(now, "stranded", inc.id, unit.id, unit.node, detail="no open route to its destination")
        if unit.state in (DISPATCHED, ENROUTE):  # give the job back to dispatch
            inc.need[unit.kind] = inc.need.get(unit.kind, 0) + 1
            self.book.enqueue(inc.id)
            self._release(unit)
        else:  # transport: wait where it is for a route
            node, lead, _ = self.routes.where(unit)
            unit.clear_trip(node)
            unit.dest = dest
            self.set_next(key, math.inf)

    def candidates(self, kind: str, dist: np.ndarray, inc: Incident, *, free: np.ndarray | None = None) -> Candidates:
        """Units of ``kind`` that may be sent now (:meth:`DispatchCentre.candidates`)."""
        return self.centre.candidates(kind, dist, inc, free=free)

    # ================================================================ control (see ControlDesk)
    def set_station_in_service(self, name: str, in_service: bool) -> None:
        """Take a station out of service, or put it back (:meth:`ControlDesk.set_station_in_service`)."""
        self.control.set_station_in_service(name, in_service)

    def add_station(self, name: str, kind: str, node, units: dict[str, int], *, mutual_aid: bool = False) -> list[int]:
        """Open a new station with units; returns their ids (:meth:`ControlDesk.add_station`)."""
        return self.control.add_station(name, kind, node, units, mutual_aid=mutual_aid)

    def remove_station(self, name: str) -> None:
        """Close a station for good (:meth:`ControlDesk.remove_station`)."""
        self.control.remove_station(name)

    def move_units(self, from_station: str, to_station: str, kind: str, n: int) -> list[int]:
        """Move units between stations; returns their ids (:meth:`ControlDesk.move_units`)."""
        return self.control.move_units(from_station, to_station, kind, n)

    def inject(self, type: str, location, *, severity: int | None = None, notes: str = "", at=None) -> int | None:
        """Report an incident now or later; returns its id (:meth:`ControlDesk.inject`)."""
        return self.control.inject(type, location, severity=severity, notes=notes, at=at)

    # ================================================================ checks and results
    def unit_name(self, u: int) -> str:
        """A unit's display name, e.g. ``ambulance 2 (Central)``."""
        return self.fleet.name(u)

    def check_invariants(self) -> None:
        """Raise ``RuntimeError`` if the records disagree (see :func:`twin.emergency.checks.check_invariants`)."""
        check_invariants(self)

    def sample(self, t: float) -> None:
        """Record one row of the service's time series (see :func:`twin.emergency.report.sample`)."""
        report.sample(self, t)

    def data_vars(self):
        """The service's variables for the run's Dataset."""
        return report.data_vars(self)

    def kpis(self) -> dict[str, float]:
        """The service's KPIs (see :mod:`twin.emergency.report`)."""
        return report.kpis(self)
