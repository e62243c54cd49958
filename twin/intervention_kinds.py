"""The kinds of what-if intervention: a registry of handlers, and the handles that undo them.

:data:`KINDS` maps each kind named in a scenario's ``interventions:`` list to its
handler class.  A handler resolves the entry's targets against the city when the
twin is built (:meth:`KindHandler.resolve`) and applies it on the clock
(:meth:`KindHandler.apply`), returning an :class:`Undo` handle, or ``None`` for a
kind that is not undone (demand changes, evacuation orders).  Every undo goes
through its handle, as :class:`~twin.linkcontrol.LinkControl`'s handles undo link
changes: a handle is a small record, stored with the intervention (and in
snapshots), that knows how to put back what the apply changed.

To add a kind: validate its scenario entry in :mod:`scenarios.interventions`,
write a :class:`KindHandler` subclass (and an :class:`Undo` if it can be
reverted) here, and register it in :data:`KINDS`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast

import numpy as np

from basics.errors import InputError
from scenarios.interventions import (
    Capacity,
    Cordon,
    Demand,
    Evacuation,
    Lanes,
    LinkSelector,
    Signal,
    Speed,
    StationAdd,
    StationOut,
    WorkFromHome,
)
from twin.places import resolve_links, resolve_nodes, resolve_zones

if TYPE_CHECKING:
    from twin.components import TwinView
    from twin.emergency import EmergencyComponent
    from twin.interventions import Interventions, Planned
    from twin.population.component import PopulationComponent

__all__ = ["KINDS", "LINK_KINDS", "KindHandler", "Undo", "handler_for"]

#: kinds that change link parameters through LinkControl
LINK_KINDS = ("close", "capacity", "lanes", "speed")

_Entry = TypeVar("_Entry")


def _entry(p: Planned, cls: type[_Entry]) -> _Entry:
    """The planned intervention's scenario entry, as the validated class its kind has.

    Raises
    ------
    TypeError
        The entry is not a ``cls`` (a handler registered for the wrong kind).
    """
    s = p.spec
    if not isinstance(s, cls):
        raise TypeError(f"interventions[{p.index}] ({p.label}): a {cls.__name__} entry expected, got {s.kind!r}")
    return s


def _population(twin: TwinView) -> PopulationComponent:
    """The twin's population (a ``KeyError`` without one: the handlers check first)."""
    return cast("PopulationComponent", twin.components["population"])


def _population_if_any(twin: TwinView) -> PopulationComponent | None:
    """The twin's population, or ``None`` when the scenario has none."""
    return cast("PopulationComponent | None", twin.components.get("population"))


def _emergency(twin: TwinView) -> EmergencyComponent:
    """The twin's emergency services (a ``KeyError`` without them: the handlers check first)."""
    return cast("EmergencyComponent", twin.components["emergency"])


# ---------------------------------------------------------------------------- undo handles
class Undo:
    """A handle that puts back what one applied intervention changed."""

    def revert(self, twin: TwinView) -> None:
        """Undo the change on ``twin`` (at the clock's current time, traffic synced)."""
        raise NotImplementedError


@dataclass
class LinkUndo(Undo):
    """A link change: revert its :class:`~twin.linkcontrol.LinkControl` handle."""

    handle: int

    def revert(self, twin: TwinView) -> None:
        """Revert the link change (the links' parameters come back bit for bit)."""
        twin.link_control.revert(self.handle)


@dataclass
class SignalUndo(Undo):
    """Retimed signals: the nodes' saved cycles and offsets, and each node's in-link windows."""

    nodes: np.ndarray
    cycle: np.ndarray
    offset: np.ndarray
    links: list[np.ndarray]
    gs: list[np.ndarray]
    ge: list[np.ndarray]

    def revert(self, twin: TwinView) -> None:
        """Put the saved signal plans back."""
        tm = twin.traffic
        tm.set_signal_plan(self.nodes, cycle_s=self.cycle, offset_s=self.offset)
        for inl, gs, ge in zip(self.links, self.gs, self.ge, strict=False):
            tm.set_signal_plan([], cycle_s=[], offset_s=[], links=inl, green_start_s=gs, green_end_s=ge)


@dataclass
class CordonUndo(Undo):
    """A cordon price for the population's agents, lifted by its label."""

    label: str

    def revert(self, twin: TwinView) -> None:
        """Lift the cordon (a no-op without a population)."""
        pop = _population_if_any(twin)
        if pop is not None:
            pop.clear_cordon(self.label)


@dataclass
class WorkFromHomeUndo(Undo):
    """The work-from-home share before the policy."""

    share: float

    def revert(self, twin: TwinView) -> None:
        """Restore the earlier share."""
        _population(twin).set_work_from_home(float(self.share))


@dataclass
class StationOutUndo(Undo):
    """A station taken out of service: put it back."""

    station: str

    def revert(self, twin: TwinView) -> None:
        """Put the station back in service."""
        _emergency(twin).set_station_in_service(self.station, True)


@dataclass
class StationAddUndo(Undo):
    """A station opened by the intervention: remove it."""

    station: str

    def revert(self, twin: TwinView) -> None:
        """Remove the station (its units leave service after their job)."""
        _emergency(twin).remove_station(self.station)


# ---------------------------------------------------------------------------- handlers
class KindHandler:
    """How one kind of intervention finds its targets and applies (see the module docstring).

    Parameters
    ----------
    comp : Interventions
        The interventions component (its twin and random generator).
    """

    def __init__(self, comp: Interventions) -> None:
        self.comp = comp
        self.twin = comp.twin

    def resolve(self, p: Planned, *, where: str) -> None:
        """Fill ``p.links``, ``p.nodes`` or ``p.zones`` from the entry; raise ``InputError`` naming ``where``."""

    def apply(self, p: Planned) -> Undo | None:
        """Apply the intervention now; returns what undoes it (``None``: not undone)."""
        raise NotImplementedError

    def _require_population(self, p: Planned, where: str) -> None:
        if "population" not in self.twin.components:
            raise InputError(
                f"{where}: a {p.spec.kind} policy acts on people: it needs a 'population' section "
                "(for a trips table or gravity demand, use kind: demand with a scale)"
            )

    def _require_emergency(self, p: Planned, where: str) -> None:
        if "emergency" not in self.twin.components:
            raise InputError(
                f"{where}: stations belong to the emergency services: the scenario needs "
                f"an 'incidents' section (e.g. incidents: {{enabled: true}}) for a {p.spec.kind}"
            )

    def _resolve_zones(self, p: Planned, zones: Any, where: str) -> None:
        p.zones = resolve_zones(self.twin.city, zones, where=where + ".zones")

    def _pending_in_window(self, p: Planned) -> np.ndarray:
        """Vehicles not yet departed whose departure falls in the intervention's window."""
        from kernels.traffic import VEH_PENDING

        veh = self.twin.traffic.veh
        now = self.twin.now
        return np.flatnonzero((veh.link == VEH_PENDING) & (veh.depart >= now) & (veh.depart < p.until_s))


class _LinkKind(KindHandler):
    """A change of link parameters through LinkControl."""

    def resolve(self, p: Planned, *, where: str) -> None:
        """The links named by id, road, place or position."""
        s = _entry(p, LinkSelector)
        p.links = resolve_links(self.twin.city, links=s.links, road=s.road, place=s.place, near=s.near, where=where)

    def change(self, p: Planned) -> dict[str, Any]:
        """The change's LinkControl keywords."""
        raise NotImplementedError

    def apply(self, p: Planned) -> Undo | None:
        """Apply the link change; the handle reverts it."""
        return LinkUndo(self.twin.link_control.apply(p.links, source=f"intervention {p.label}", **self.change(p)))


class CloseKind(_LinkKind):
    """``close``: no vehicle may enter the links."""

    def change(self, p: Planned) -> dict[str, Any]:
        """Close the links."""
        return {"closed": True}


class CapacityKind(_LinkKind):
    """``capacity``: capacity times ``factor``."""

    def change(self, p: Planned) -> dict[str, Any]:
        """Scale capacity."""
        return {"capacity_factor": _entry(p, Capacity).factor}


class LanesKind(_LinkKind):
    """``lanes``: a number of lanes."""

    def change(self, p: Planned) -> dict[str, Any]:
        """Set the lanes."""
        return {"lanes": _entry(p, Lanes).lanes}


class SpeedKind(_LinkKind):
    """``speed``: a speed limit and/or a factor on free speed."""

    def change(self, p: Planned) -> dict[str, Any]:
        """Set the speed limit and factor."""
        s = _entry(p, Speed)
        return {
            "speed_mps": None if s.speed_kmh is None else s.speed_kmh / 3.6,
            "speed_factor": 1.0 if s.factor is None else s.factor,
        }


class SignalKind(KindHandler):
    """``signal``: retime signals (cycle, offset, a green share for favoured approaches)."""

    def resolve(self, p: Planned, *, where: str) -> None:
        """The signalised nodes named, and the favoured approaches."""
        s = _entry(p, Signal)
        city = self.twin.city
        nodes = resolve_nodes(city, nodes=s.nodes, road=s.road, near=s.near, where=where)
        signalised = nodes[city.network.signal_cycle_s[nodes] > 0]
        if signalised.size == 0:
            raise InputError(f"{where}: none of the {nodes.size} node(s) named has a signal")
        p.nodes = signalised
        if s.favour is not None:
            f = s.favour
            p.links = resolve_links(
                city, links=f.links, road=f.road, place=f.place, near=f.near, where=where + ".favour"
            )

    def apply(self, p: Planned) -> Undo | None:
        """Retime each node; the handle holds the plans it replaced."""
        from twin.interventions import retime_windows

        tm = self.twin.traffic
        g = tm.graph
        s = _entry(p, Signal)
        undo = SignalUndo(
            nodes=p.nodes,
            cycle=tm.nodes.cycle[p.nodes].copy(),
            offset=tm.nodes.offset[p.nodes].copy(),
            links=[],
            gs=[],
            ge=[],
        )
        for n in p.nodes:
            inl = g.in_links[g.in_indptr[n] : g.in_indptr[n + 1]].astype(np.int64)
            gs, ge = tm.links.green_start[inl].copy(), tm.links.green_end[inl].copy()
            undo.links.append(inl)
            undo.gs.append(gs)
            undo.ge.append(ge)
            favoured = np.isin(inl, p.links)
            try:
                c, ngs, nge = retime_windows(
                    float(tm.nodes.cycle[n]), gs, ge, favoured, new_cycle=s.cycle, green_share=s.green_share
                )
            except ValueError as exc:
                raise InputError(f"interventions[{p.index}] ({p.label}) at node {int(n)}: {exc}") from None
            off = tm.nodes.offset[n] if s.offset is None else s.offset
            tm.set_signal_plan([n], cycle_s=c, offset_s=off, links=inl, green_start_s=ngs, green_end_s=nge)
        return undo


class DemandKind(KindHandler):
    """``demand``: scale the trips not yet departed in the window (from some zones); not undone."""

    def resolve(self, p: Planned, *, where: str) -> None:
        """The origin zones, when named."""
        zones = _entry(p, Demand).zones
        if zones is not None:
            self._resolve_zones(p, zones, where)

    def apply(self, p: Planned) -> Undo | None:
        """Cancel a share of the trips, or copy some (departures jittered by up to 5 min)."""
        tw = self.twin
        rng = self.comp.rng
        s = _entry(p, Demand)
        ids = self._pending_in_window(p)
        table = tw.trip_table()
        if p.zones.size:
            zone_of = tw.city.zones.node_zone
            ids = ids[np.isin(zone_of[table["origin"][ids]], p.zones)]
        if s.scale < 1.0:
            drop = ids[rng.random(ids.size) < 1.0 - s.scale]
            p.effect["cancelled"] = int(tw.traffic.cancel_trips(drop).size)
        elif s.scale > 1.0:
            extra = s.scale - 1.0
            copies = np.floor(extra).astype(np.int64) + (rng.random(ids.size) < extra % 1.0)
            src = np.repeat(ids, copies)
            jitter = rng.uniform(-300.0, 300.0, src.size)
            depart = np.clip(tw.traffic.veh.depart[src] + jitter, tw.now, p.until_s - 1e-6)
            new = tw.add_trips(table["origin"][src], table["destination"][src], depart, source="demand change")
            p.effect["added"] = int(new.size)
        return None


class CordonKind(KindHandler):
    """``cordon``: a price to cross into or out of zones (agents weigh it; other trips drop)."""

    def resolve(self, p: Planned, *, where: str) -> None:
        """The cordoned zones."""
        self._resolve_zones(p, _entry(p, Cordon).zones, where)

    def apply(self, p: Planned) -> Undo | None:
        """Price the cordon for agents and drop a share of the given trips crossing it."""
        tw = self.twin
        s = _entry(p, Cordon)
        pop = _population_if_any(tw)
        if pop is not None:
            pop.set_cordon(p.label, p.zones, float(s.price), until_s=None if math.isinf(p.until_s) else p.until_s)
        ids = self._pending_in_window(p)
        table = tw.trip_table()
        sources = tw.trip_sources
        if "population" in sources:  # agents decide for themselves; the rest are trips that were given
            ids = ids[table["source"][ids] != sources.index("population")]
        zone_of = tw.city.zones.node_zone
        inside_o = np.isin(zone_of[table["origin"][ids]], p.zones)
        inside_d = np.isin(zone_of[table["destination"][ids]], p.zones)
        crossing = ids[inside_o != inside_d]
        drop = crossing[self.comp.rng.random(crossing.size) < 1.0 - math.exp(-s.price_sensitivity * s.price)]
        p.effect["crossing"] = int(crossing.size)
        p.effect["cancelled"] = int(tw.traffic.cancel_trips(drop).size)
        return CordonUndo(p.label)


class WorkFromHomeKind(KindHandler):
    """``work_from_home``: a share of workers stay home."""

    def resolve(self, p: Planned, *, where: str) -> None:
        """Needs the population."""
        self._require_population(p, where)

    def apply(self, p: Planned) -> Undo | None:
        """Set the share; the handle keeps the one before."""
        pop = _population(self.twin)
        undo = WorkFromHomeUndo(pop.work_from_home_share)
        pop.set_work_from_home(float(_entry(p, WorkFromHome).share))
        return undo


class EvacuationKind(KindHandler):
    """``evacuation``: residents of zones leave for shelters; not undone."""

    def resolve(self, p: Planned, *, where: str) -> None:
        """The zones evacuated; needs the population."""
        self._resolve_zones(p, _entry(p, Evacuation).zones, where)
        self._require_population(p, where)

    def apply(self, p: Planned) -> Undo | None:
        """Order the evacuation."""
        s = _entry(p, Evacuation)
        shelters = None
        if s.shelters is not None:
            shelters = resolve_nodes(self.twin.city, nodes=s.shelters, where=f"interventions[{p.index}].shelters")
        _population(self.twin).order_evacuation(
            p.zones,
            compliance=float(s.compliance),
            delay_mean_s=float(s.delay_mean),
            delay_sd_s=float(s.delay_sd),
            shelters=shelters,
        )
        return None


class StationOutKind(KindHandler):
    """``station_out``: a station out of service."""

    def resolve(self, p: Planned, *, where: str) -> None:
        """Needs the emergency services."""
        self._require_emergency(p, where)

    def apply(self, p: Planned) -> Undo | None:
        """Take the station out of service."""
        station = _entry(p, StationOut).station
        _emergency(self.twin).set_station_in_service(station, False)
        return StationOutUndo(station)


class StationAddKind(KindHandler):
    """``station_add``: a new station with units."""

    def resolve(self, p: Planned, *, where: str) -> None:
        """Needs the emergency services; the station's node."""
        self._require_emergency(p, where)
        s = _entry(p, StationAdd)
        if s.node is not None:
            p.nodes = resolve_nodes(self.twin.city, nodes=[s.node], where=where)
        else:
            p.nodes = resolve_nodes(self.twin.city, near=s.near, where=where)

    def apply(self, p: Planned) -> Undo | None:
        """Open the station."""
        s = _entry(p, StationAdd)
        node_id = int(self.twin.city.network.node_osmid[p.nodes[0]])
        _emergency(self.twin).add_station(s.station, s.station_kind, node_id, dict(s.units))
        return StationAddUndo(s.station)


#: intervention kind (as named in a scenario) -> handler class
KINDS: dict[str, type[KindHandler]] = {
    "close": CloseKind,
    "capacity": CapacityKind,
    "lanes": LanesKind,
    "speed": SpeedKind,
    "signal": SignalKind,
    "demand": DemandKind,
    "cordon": CordonKind,
    "work_from_home": WorkFromHomeKind,
    "evacuation": EvacuationKind,
    "station_out": StationOutKind,
    "station_add": StationAddKind,
}


def handler_for(comp: Interventions, kind: str) -> KindHandler:
    """The handler of ``kind`` for ``comp``.

    Raises
    ------
    InputError
        An unknown kind (the scenario schema admits only registered ones).
    """
    try:
        cls = KINDS[kind]
    except KeyError:
        raise InputError(f"unknown intervention kind {kind!r}; known: {', '.join(KINDS)}") from None
    return cls(comp)
