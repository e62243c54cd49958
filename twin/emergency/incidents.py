"""Incidents: the record, random durations, where incidents happen and when calls come in.

An :class:`Incident` is a plain record; its life cycle is driven by
:class:`~twin.emergency.component.EmergencyComponent`:

occurs -> reported (call delay) -> dispatched (first unit assigned) -> en route (first
unit rolling) -> on scene (first unit arrives) -> scene closed (on-scene work done and
every essential unit has been there) -> [patient transported, handed over at a
hospital] -> [road cleared: cleared-by unit on scene + clearance time] -> cleared.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from basics.errors import InputError
from city_models import City, lookup_nodes
from scenarios.emergency import DistSpec, RateSpec

__all__ = [
    "Incident",
    "IncidentBook",
    "STAGES",
    "draw",
    "Location",
    "locate",
    "closure_links",
    "ArrivalSampler",
]

#: incident stages, in order
OCCURRED, REPORTED, WORKING, SCENE_CLOSED, CLEARED = 0, 1, 2, 3, 4
STAGES = ("occurred", "reported", "working", "scene_closed", "cleared")


@dataclass(slots=True)
class Incident:
    """One incident: what, where, and the time of each stage (NaN until reached).

    ``need`` holds the units still to be assigned by kind; ``assigned`` the units
    working on it now (en route, on scene, transporting).  ``t_next`` is the time of
    the incident's own next event (report, end of the on-scene work, end of the
    clearance), ``inf`` when it waits for units.
    """

    id: int
    type: str
    severity: int
    priority: int
    node: int
    links: tuple[int, ...]
    source: str  # "drill" | "random" | "inject"
    notes: str
    t_occur: float
    call_delay_s: float
    work_s: float
    clear_s: float
    transport: bool
    stage: int = OCCURRED
    t_next: float = math.inf
    t_reported: float = math.nan
    t_dispatched: float = math.nan
    t_enroute: float = math.nan
    t_on_scene: float = math.nan
    t_work_end: float = math.nan  # when the on-scene work is due to end
    t_clear_start: float = math.nan  # cleared-by unit on scene
    t_clear_end: float = math.nan
    t_scene_closed: float = math.nan
    t_transport: float = math.nan
    t_hospital: float = math.nan
    t_cleared: float = math.nan
    need: dict[str, int] = field(default_factory=dict)
    assigned: list[int] = field(default_factory=list)
    arrived_kinds: dict[str, int] = field(default_factory=dict)
    units_sent: int = 0
    waited: bool = False  # a required unit could not be assigned at once
    first_unit: int = -1  # first unit on scene
    first_travel_s: float = math.nan  # its driving time
    target_t: float = math.nan  # the time its target measure was met (see KPIs)
    target_travel_s: float = math.nan
    link_handle: int = -1  # active link change (crash, flood)
    clear_done: bool = True  # no clearance pending
    transport_done: bool = True
    hospital: int = -1

    @property
    def open(self) -> bool:
        """Whether the incident is not cleared yet."""
        return self.stage != CLEARED

    @property
    def response_s(self) -> float:
        """First unit on scene minus the time the call was reported."""
        return self.t_on_scene - self.t_reported


class IncidentBook:
    """Every incident's record, the dispatch queue, and the counts the results need.

    Indexing and iterating give the :class:`Incident` records by id.  The queue
    holds the ids of the incidents that still need units, in the order they were
    queued; :meth:`waiting` gives them in the order the dispatch centre serves them.
    """

    def __init__(self) -> None:
        #: the records, by id
        self.records: list[Incident] = []
        #: ids of the incidents that still need units
        self.queue: list[int] = []
        #: incidents not cleared yet
        self.n_open = 0
        #: the longest the queue has been at the end of a dispatch round
        self.max_waiting = 0

    def __getitem__(self, i: int) -> Incident:
        return self.records[i]

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[Incident]:
        return iter(self.records)

    def add(self, inc: Incident) -> None:
        """Book a new (open) incident; its id must be the next one."""
        if inc.id != len(self.records):
            raise RuntimeError(f"internal error: incident {inc.id} booked as number {len(self.records)}")
        self.records.append(inc)
        self.n_open += 1

    def cleared(self, inc: Incident) -> None:
        """Count an incident as closed for good."""
        self.n_open -= 1

    def enqueue(self, i: int) -> None:
        """Queue incident ``i`` for units (a no-op if it waits already)."""
        if i not in self.queue:
            self.queue.append(i)

    def dequeue(self, i: int) -> None:
        """Take incident ``i`` off the queue (a no-op if it is not on it)."""
        if i in self.queue:
            self.queue.remove(i)

    def queued(self, i: int) -> bool:
        """Whether incident ``i`` waits for units."""
        return i in self.queue

    def waiting(self) -> list[int]:
        """The queued incidents in the order they are served: priority, then time reported, then id."""
        recs = self.records
        return sorted(self.queue, key=lambda i: (-recs[i].priority, recs[i].t_reported, i))

    def note_waiting(self) -> None:
        """Keep the longest queue seen (call after each dispatch round)."""
        self.max_waiting = max(self.max_waiting, len(self.queue))


# ------------------------------------------------------------------------------ durations


def _given(value: float | None) -> float:
    """A field the distribution needs (:class:`~scenarios.emergency.DistSpec` checks each is given)."""
    assert value is not None
    return value


def draw(spec: DistSpec, rng: np.random.Generator) -> float:
    """One random duration (seconds, >= 0) from a :class:`~scenarios.emergency.DistSpec`."""
    d = spec.dist
    if d == "fixed":
        return float(_given(spec.value))
    if d in ("exponential", "lognormal", "gamma"):
        mean = _given(spec.mean)
        if d == "exponential":
            return float(rng.exponential(mean)) if mean > 0 else 0.0
        sd = _given(spec.sd)
        if sd == 0:
            return float(mean)
        if d == "lognormal":
            s2 = math.log1p((sd / mean) ** 2)
            return float(rng.lognormal(math.log(mean) - 0.5 * s2, math.sqrt(s2)))
        k = (mean / sd) ** 2
        return float(rng.gamma(k, mean / k))
    low, high = _given(spec.low), _given(spec.high)
    if d == "uniform":
        return float(rng.uniform(low, high))
    if low == high:
        return float(low)
    return float(rng.triangular(low, _given(spec.mode), high))


# ------------------------------------------------------------------------------ locations


@dataclass(frozen=True)
class Location:
    """A resolved location: the node units drive to, and the links it names (if any)."""

    node: int
    links: tuple[int, ...] = ()
    kind: str = "node"  # "node" | "place" | "point"


def _facility_node(city: City, name: str) -> int | None:
    for f in city.facilities:
        if f.name == name:
            return int(f.node)
    return None


def locate(city: City, value, *, where: str) -> Location:
    """Resolve a scenario location: node id, ``[lon, lat]``, a named place or facility.

    Raises
    ------
    InputError
        Naming ``where`` and what is wrong (unknown id or name, with the closest names).
    """
    from twin.places import close_matches, nearest_link, nearest_node

    net = city.network
    if isinstance(value, (bool, np.bool_)):
        raise InputError(f"{where}: expected a node id, [lon, lat] or a place name, got {value!r}")
    if isinstance(value, (int, np.integer)):
        hit = lookup_nodes(net, [int(value)])  # also ids validation merged into another node
        hit = hit[hit >= 0]
        if hit.size == 0:
            raise InputError(
                f"{where}: {int(value)} is not a node id of {city.name} "
                f"(node ids are the network's own ids, e.g. the 'node' coordinate of results.nc)"
            )
        return Location(int(hit[0]), (), "node")
    if isinstance(value, (list, tuple)):
        node, _ = nearest_node(city, value, where=where)
        links, _ = nearest_link(city, value, where=where)
        return Location(int(node), tuple(int(a) for a in links), "point")
    if isinstance(value, str):
        name = value.strip()
        if name in city.places:
            place = city.places[name]
            if isinstance(place, dict):
                links = np.asarray(place.get("links", []), np.int64)
                nodes = np.asarray(place.get("nodes", []), np.int64)
            else:
                links, nodes = np.asarray(place, np.int64), np.zeros(0, np.int64)
            if links.size:
                return Location(int(net.src[links[0]]), tuple(int(a) for a in links), "place")
            if nodes.size:
                return Location(int(nodes[0]), (), "place")
        facility = _facility_node(city, name)
        if facility is not None:
            return Location(facility, (), "place")
        known = list(city.places) + [f.name for f in city.facilities]
        raise InputError(
            f"{where}: '{name}' is not a named place or facility of {city.name}"
            + (close_matches(name, known) if known else " (the city has no named places)")
        )
    raise InputError(f"{where}: expected a node id, [lon, lat] or a place name, got {value!r}")


def closure_links(city: City, loc: Location, radius_m: float) -> np.ndarray:
    """Links a closing incident (a flood) shuts: the place's links, or those near the node."""
    if loc.links:
        return np.asarray(loc.links, np.int64)
    net = city.network
    n = loc.node
    touch = (net.src == n) | (net.dst == n)
    if radius_m > 0:
        d = np.hypot(net.x - net.x[n], net.y - net.y[n])
        near = d <= radius_m
        touch |= near[net.src] & near[net.dst]
    return np.flatnonzero(touch).astype(np.int64)


# ------------------------------------------------------------------------- random arrivals


class ArrivalSampler:
    """Poisson calls of one incident type: rate by clock hour, location by zone or node list.

    Parameters
    ----------
    city
        The city (zones, nodes).
    spec
        The type's :class:`~scenarios.emergency.RateSpec`.
    start_s
        Clock seconds of day at the scenario start (for the hourly profile).
    where
        The field path, for error messages.
    """

    def __init__(self, city: City, spec: RateSpec, *, start_s: float, where: str) -> None:
        self.rate_s = float(spec.per_hour) / 3600.0
        self.hourly = np.asarray(spec.hourly if spec.hourly is not None else [1.0] * 24, np.float64)
        self._any_rate = bool(self.rate_s > 0 and self.hourly.any())
        self.start_s = float(start_s)
        net, z = city.network, city.zones
        if spec.nodes is not None:
            nodes = [locate(city, v, where=f"{where}.nodes[{i}]").node for i, v in enumerate(spec.nodes)]
            self.nodes = np.asarray(nodes, np.int64)
            self.node_p = None
            return
        nz = z.node_zone
        if spec.zones == "uniform":
            self.nodes = np.arange(net.n_nodes, dtype=np.int64)
            self.node_p = None
            return
        if isinstance(spec.zones, str):  # "residents" or "jobs" ("uniform" is taken above)
            zw = np.asarray(z.residents if spec.zones == "residents" else z.jobs, np.float64)
        else:
            zw = np.zeros(z.n_zones)
            for name, w in spec.zones.items():
                if name not in z.name:
                    from twin.places import close_matches

                    raise InputError(
                        f"{where}.zones: no zone named '{name}' in {city.name}" + close_matches(name, z.name)
                    )
                zw[z.name.index(name)] = w
        in_zone = nz >= 0
        count = np.bincount(nz[in_zone], minlength=z.n_zones).astype(np.float64)
        node_w = np.zeros(net.n_nodes)
        node_w[in_zone] = zw[nz[in_zone]] / np.maximum(count[nz[in_zone]], 1.0)
        if not node_w.sum() > 0:
            raise InputError(f"{where}.zones: the weighted zones hold no network node, so no call could happen")
        self.nodes = np.flatnonzero(node_w > 0).astype(np.int64)
        cdf = np.cumsum(node_w[self.nodes])
        self.node_p = cdf / cdf[-1]  # cumulative

    def next_time(self, t: float, rng: np.random.Generator) -> float:
        """The first arrival after ``t`` (seconds since the start); ``inf`` if the rate is 0."""
        if not self._any_rate:
            return math.inf
        need = float(rng.exponential(1.0))
        while True:
            clock = self.start_s + t
            hour = int(clock // 3600.0) % 24
            seg_end = (math.floor(clock / 3600.0) + 1.0) * 3600.0 - self.start_s
            lam = self.rate_s * float(self.hourly[hour])
            if lam > 0:
                span = seg_end - t
                if lam * span >= need:
                    return t + need / lam
                need -= lam * span
            t = seg_end

    def node(self, rng: np.random.Generator) -> int:
        """A random location for the next call."""
        if self.node_p is None:
            return int(self.nodes[rng.integers(self.nodes.size)])
        k = int(np.searchsorted(self.node_p, rng.random(), side="right"))
        return int(self.nodes[min(k, self.nodes.size - 1)])
