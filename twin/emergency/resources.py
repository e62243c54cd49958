"""Resources: stations with units, hospitals with beds, as plain records.

Units are records (id, kind, home station, state, position, current trip) that the
component's SimPy processes drive.  A unit's trip is the list of links it drives
and the clock time at the end of each, so its position at any moment follows from
the record alone.
"""

from __future__ import annotations

import heapq
import logging
import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from basics.errors import InputError
from city_models import City
from scenarios.emergency import HospitalSpec, IncidentsSpec, ResourcesSpec, StationSpec
from twin.emergency.incidents import locate

__all__ = [
    "Unit",
    "Station",
    "Hospital",
    "UNIT_STATES",
    "AVAILABLE",
    "RETURNING",
    "DISPATCHED",
    "ENROUTE",
    "ONSCENE",
    "TRANSPORT",
    "HOSPITAL",
    "OUT_OF_SERVICE",
    "REMOVED",
    "DISPATCHABLE",
    "BUSY",
    "build_resources",
    "default_stations",
    "default_hospitals",
]

log = logging.getLogger(__name__)

#: unit states
AVAILABLE, RETURNING, DISPATCHED, ENROUTE, ONSCENE, TRANSPORT, HOSPITAL, OUT_OF_SERVICE, REMOVED = range(9)
UNIT_STATES = (
    "available",
    "returning",
    "dispatched",
    "en_route",
    "on_scene",
    "transport",
    "at_hospital",
    "out_of_service",
    "removed",
)
#: states in which a unit may be sent to an incident (at its station, or driving home)
DISPATCHABLE = (AVAILABLE, RETURNING)
#: states in which a unit is committed to an incident
BUSY = (DISPATCHED, ENROUTE, ONSCENE, TRANSPORT, HOSPITAL)

_EMPTY_LINKS = np.zeros(0, np.int32)
_EMPTY_T = np.zeros(0, np.float64)


@dataclass(slots=True)
class Unit:
    """One unit (engine, ambulance, patrol car, tow truck...).

    ``node`` is where its current trip started (or where it stands); ``path`` and
    ``path_t`` are the links of the trip and the clock time at the end of each;
    ``t_next`` is its next own event (end of turnout, arrival, end of handover).
    """

    id: int
    kind: str
    station: int
    state: int = AVAILABLE
    incident: int = -1
    node: int = -1
    dest: int = -1
    path: np.ndarray = field(default_factory=lambda: _EMPTY_LINKS)
    path_t: np.ndarray = field(default_factory=lambda: _EMPTY_T)
    t_depart: float = math.nan
    t_next: float = math.inf
    busy_s: float = 0.0
    busy_since: float = math.nan
    dispatches: int = 0
    done: bool = False  # removed for good (no process)

    def links_done(self, t: float) -> int:
        """How many links of the current trip the unit has finished by ``t``."""
        if self.path.shape[0] == 0 or not t >= self.t_depart:
            return 0
        return int(self.path_t.searchsorted(t, "right"))

    def clear_trip(self, node: int) -> None:
        """End the unit's trip: it stands at ``node`` with no route."""
        self.node = node
        self.dest = -1
        self.path = _EMPTY_LINKS
        self.path_t = _EMPTY_T
        self.t_depart = math.nan


@dataclass(slots=True)
class Station:
    """A station: where units are based."""

    name: str
    kind: str
    node: int
    mutual_aid: bool = False
    in_service: bool = True
    removed: bool = False


@dataclass(slots=True)
class Hospital:
    """A hospital: beds, and the discharge times of the patients in them (a heap)."""

    name: str
    node: int
    beds: int
    occupied0: int = 0
    discharges: list = field(default_factory=list)
    admitted: int = 0
    peak: int = 0
    incoming: int = 0  # patients on their way

    def occupied(self, t: float) -> int:
        """Beds taken at ``t`` (drops discharged patients)."""
        while self.discharges and self.discharges[0] <= t:
            heapq.heappop(self.discharges)
        return self.occupied0 + len(self.discharges)

    def admit(self, t: float, until: float) -> None:
        """Admit a patient at ``t`` who occupies a bed until ``until``."""
        heapq.heappush(self.discharges, until)
        self.admitted += 1
        self.peak = max(self.peak, self.occupied(t))


# ------------------------------------------------------------------------------- defaults

#: the city facility kinds that become stations, and their station kind
_FACILITY_STATIONS: dict[str, Literal["fire", "ems", "police", "tow"]] = {
    "fire_station": "fire",
    "ems_station": "ems",
    "police_station": "police",
}


def _units_for(kind: str, capacity: int) -> dict[str, int]:
    c = max(int(capacity), 1)
    if kind == "fire":
        return {"engine": max(1, c - 1), "ladder": 1 if c >= 3 else 0}
    if kind == "ems":
        return {"ambulance": c}
    if kind == "police":
        return {"police": c}
    return {"tow": c}


def default_stations(city: City) -> list[StationSpec]:
    """Stations from the city's facilities, plus a tow depot at the node nearest the centre.

    A fire station with ``c`` units gets ``c - 1`` engines and a ladder (``c >= 3``);
    EMS stations ambulances, police stations patrol cars; the depot 3 tow trucks.
    """
    net = city.network
    out = []
    for f in city.facilities:
        kind = _FACILITY_STATIONS.get(f.kind)
        if kind is not None:
            out.append(
                StationSpec(
                    name=f.name, kind=kind, node=int(net.node_osmid[f.node]), units=_units_for(kind, f.capacity)
                )
            )
    if net.n_nodes:
        centre = int(np.argmin(np.hypot(net.x - net.x.mean(), net.y - net.y.mean())))
        out.append(StationSpec(name="Tow Depot", kind="tow", node=int(net.node_osmid[centre]), units={"tow": 3}))
    return out


def default_hospitals(city: City) -> list[HospitalSpec]:
    """Hospitals from the city's facilities (beds = the facility's capacity)."""
    net = city.network
    return [
        HospitalSpec(name=f.name, node=int(net.node_osmid[f.node]), beds=max(int(f.capacity), 1))
        for f in city.facilities
        if f.kind == "hospital"
    ]


# --------------------------------------------------------------------------------- build


def build_resources(  # noqa: C901 (one branch per kind of resource entry; complexity 16)
    city: City,
    spec: ResourcesSpec,
    incidents: IncidentsSpec,
    *,
    types_used: set[str],
) -> tuple[list[Station], list[Unit], list[Hospital]]:
    """Resolve and check the ``resources`` section against the city and the incident types.

    Raises
    ------
    InputError
        A station or hospital on no node of the city; a unit kind no incident type
        needs; an incident type that can occur but needs a unit kind no station has;
        patients to transport but no hospital.
    """
    needed = incidents.unit_kinds_needed
    use_city = spec.include_city_facilities
    entries: list[tuple[str, StationSpec, bool]] = [
        (f"resources.stations[{i}] ('{s.name}')", s, False) for i, s in enumerate(spec.stations)
    ]
    if use_city or (use_city is None and not spec.stations):
        taken = {s.name for s in spec.stations}
        entries += [(f"city facility '{s.name}'", s, True) for s in default_stations(city) if s.name not in taken]
    stations: list[Station] = []
    units: list[Unit] = []
    for where, s, from_city in entries:
        node = locate(city, s.node, where=f"{where}.node").node
        for kind, n in s.units.items():
            if n > 0 and kind not in needed:
                if from_city:
                    log.info("%s: no incident type needs '%s' units; left out", where, kind)
                    continue
                raise InputError(
                    f"{where}: unit kind '{kind}' is not needed by any incident type "
                    f"(kinds needed: {', '.join(sorted(needed))}); remove it or add an incident "
                    f"type under incidents.types that uses it"
                )
        k = len(stations)
        stations.append(Station(name=s.name, kind=s.kind, node=node, mutual_aid=s.mutual_aid, in_service=s.in_service))
        for kind, n in s.units.items():
            if kind not in needed:
                continue
            for _ in range(n):
                units.append(
                    Unit(
                        id=len(units),
                        kind=kind,
                        station=k,
                        node=node,
                        state=AVAILABLE if s.in_service else OUT_OF_SERVICE,
                    )
                )
    have = {u.kind for u in units}
    for name in sorted(types_used):
        t = incidents.types[name]
        for lvl, mix in sorted(t.units.items()):
            missing = sorted(k for k, n in mix.items() if n > 0 and k not in have)
            if missing:
                raise InputError(
                    f"incidents.types.{name}.units: severity {lvl} needs {', '.join(repr(m) for m in missing)} "
                    f"units but no station has one; add them under resources.stations"
                )
    h_entries: list[tuple[str, HospitalSpec]] = [
        (f"resources.hospitals[{i}] ('{h.name}')", h) for i, h in enumerate(spec.hospitals)
    ]
    if use_city or (use_city is None and not spec.hospitals):
        taken = {h.name for h in spec.hospitals}
        h_entries += [(f"city facility '{h.name}'", h) for h in default_hospitals(city) if h.name not in taken]
    hospitals = [
        Hospital(name=h.name, node=locate(city, h.node, where=f"{where}.node").node, beds=h.beds, occupied0=h.occupied)
        for where, h in h_entries
    ]
    if not hospitals:
        for name in sorted(types_used):
            t = incidents.types[name]
            if any(p > 0 for p in t.transport.values()):
                raise InputError(
                    f"incidents.types.{name}.transport: patients may need a hospital but the "
                    f"scenario has none; add one under resources.hospitals"
                )
    return stations, units, hospitals
