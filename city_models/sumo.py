"""SUMO networks and demand in: ``city: {sumo: FILE.net.xml}``, ``demand: {sumo: FILE.rou.xml}``.

Reader
------
Both files are read with a streaming XML parser (:func:`defusedxml.ElementTree.iterparse`:
no DTDs, no entity expansion, no external resources), not with ``sumolib``.  sumolib
ships inside the ``eclipse-sumo`` wheel but is not importable from it without putting
``<sumo>/tools`` on ``sys.path`` (it is not a package of its own on that wheel), it
builds a full object graph of every lane and connection (several times slower and
larger than what the twin keeps), and it has no limits on what a file may hold.  The
tests check this reader against sumolib's own reading of the shipped networks.

Network (:func:`read_sumo_net`, :func:`city_from_sumo`)
-------------------------------------------------------
* every edge without a ``function`` (or ``function="normal"``) with at least one lane
  that admits passenger cars is a link; internal edges (``function="internal"``),
  crossings, walking areas and district connectors are not roads, nor are edges only
  for trains, bicycles or pedestrians;
* ``lanes``: the car lanes; ``length_m``: their mean length; ``free_speed_mps``: the
  fastest car lane's speed;
* junctions are the nodes (their ``x``/``y``; longitude/latitude from the file's
  ``location`` projection when it has one); SUMO's string ids become 64-bit source ids
  with :func:`sumo_id` (the number itself for an all-digit id, else a stable hash);
* ``priority``: SUMO's edge priority shifted to start at 1 (``p - min(p) + 1``, capped at
  127), so the yielding rule of the kernel follows SUMO's major roads.  Into junctions
  where SUMO gives every approach the same rank (``right_before_left``,
  ``left_before_right``, ``allway_stop``, ``zipper``) every in-link gets the same rank;
* traffic lights: a ``tlLogic``'s cycle (sum of the phase durations) and ``offset``
  become the junction's ``signal_cycle_s``/``signal_offset_s``; each in-link gets one
  green window per cycle: the longest cyclic run of phases in which any of its
  connections shows green (``G`` or ``g``).  Approximated: yellow (``y``) counts as red,
  a minor green (``g``, yield to the opposing flow) as green, a link with two separate
  greens per cycle keeps its longest, actuated/delay-based programs run their phases'
  nominal ``duration`` (fixed time), and a program that controls several junctions
  (a joined signal) gives each of them the same cycle.  Only the first program of each
  signal is used (SUMO starts with it too).

Demand (:func:`read_sumo_demand`)
---------------------------------
``vehicle`` (with a ``route`` attribute naming a route, or a nested ``route``), ``trip``
(``from``/``to`` edges or ``fromJunction``/``toJunction``) and ``flow`` (any of these,
with ``begin``/``end`` and one of ``period``, ``vehsPerHour``, ``number`` or
``probability``) become trips from the start node of their first edge to the end node of
their last edge (the twin chooses the route; a given route's inner edges are not
followed; a ``routeDistribution`` stands for its first route).  ``person``, ``container``
and ``vType`` elements are skipped, and so are vehicles with neither a route nor ends (a taxi
that only serves stops).  Unlike SUMO, elements need not be sorted by departure.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from typing import Any, overload

import numpy as np

from city_models.demand import MAX_TRIP_ROWS, DemandError, Trips
from city_models.errors import CityError
from city_models.network import Network, lookup_nodes
from city_models.sumo_net import (
    _DAY_S,
    _MAX_ROUTE_EDGES,
    MAX_NET_BYTES,
    MAX_NET_ELEMENTS,
    SUMO_BUILTINS,
    SumoNet,
    _cached_net,
    _float,
    _iterparse,
    city_from_sumo,
    read_sumo_net,
    sumo_file,
    sumo_id,
    sumo_network,
)

__all__ = [
    "SumoNet",
    "sumo_id",
    "read_sumo_net",
    "sumo_network",
    "city_from_sumo",
    "read_sumo_demand",
    "MAX_NET_ELEMENTS",
    "MAX_NET_BYTES",
    "SUMO_BUILTINS",
    "sumo_file",
]

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- demand


@overload
def _time(el: Any, attr: str, path: Path, default: float) -> float: ...


@overload
def _time(el: Any, attr: str, path: Path, default: None = None) -> float | None: ...


def _time(el: Any, attr: str, path: Path, default: float | None = None) -> float | None:
    """A SUMO time (seconds or ``[D:]HH:MM:SS``) or the default; DemandError when unreadable."""
    raw = el.get(attr)
    if raw is None:
        return default
    text = raw.strip()
    try:
        if ":" in text:
            parts = [float(p) for p in text.split(":")]
            if len(parts) > 4:
                raise ValueError
            v = 0.0
            for p, unit in zip(reversed(parts), (1.0, 60.0, 3600.0, 86400.0), strict=False):
                v += p * unit
        else:
            v = float(text)
    except ValueError:
        v = math.nan
    if not (math.isfinite(v) and 0.0 <= v <= 366 * _DAY_S):
        raise DemandError(
            f"SUMO demand '{path}': <{el.tag} id={el.get('id')!r}> has {attr}={raw!r}; "
            "expected seconds (or HH:MM:SS) in 0 .. 366 days."
        )
    return v


def read_sumo_demand(
    path: str | os.PathLike[str],
    network: Network,
    net_path: str | os.PathLike[str],
    *,
    duration_s: float | None = None,
    seed: int = 0,
) -> Trips:
    """Read SUMO vehicles, trips and flows into :class:`~city_models.demand.Trips`.

    Parameters
    ----------
    path : path-like
        A ``.rou.xml`` or ``.trips.xml`` file.
    network : Network
        The network built from ``net_path`` (validated: merged or dropped junctions map
        through its aliases).
    net_path : path-like
        The SUMO network the demand was written for (for its edges' junctions).
    duration_s : float, optional
        Scenario duration: departures at or after it are dropped (logged); a flow
        with no ``end`` runs until then (SUMO's default: 24 h).
    seed : int
        Seed of the draws of ``probability`` flows (one Bernoulli draw per second).

    Raises
    ------
    DemandError
        Naming the file and the element: not XML, an unknown edge, route or junction,
        a flow without a rate, bad times, more than :data:`MAX_TRIP_ROWS` trips.
    """
    path, net_path = Path(path), Path(net_path)
    st = net_path.stat() if net_path.is_file() else None
    if st is None:
        raise DemandError(f"SUMO demand '{path}': its network '{net_path}' does not exist.")
    try:
        snet = _cached_net(str(net_path), st.st_size, st.st_mtime_ns)
    except CityError as exc:
        raise DemandError(f"SUMO demand '{path}': {exc}") from None
    reader = _DemandReader(snet, path, net_path, duration_s=duration_s, seed=seed)
    stack: list[Any] = []
    n_elements = 0
    for event, el in _iterparse(path, "SUMO demand", DemandError):
        if event == "start":
            if not reader.seen_root:
                reader.seen_root = True
                if el.tag not in ("routes", "trips"):
                    raise DemandError(
                        f"{reader.where}: the root element is <{el.tag}>, not <routes>; is this a .rou.xml file?"
                    )
            stack.append(el)
            continue
        stack.pop()
        n_elements += 1
        if n_elements > MAX_NET_ELEMENTS:
            raise DemandError(f"{reader.where}: more than {MAX_NET_ELEMENTS:,} elements.")
        reader.element(el, stack[-1] if stack else None)
    if reader.skipped:
        log.info(
            "%s: skipped %s (not road vehicles with an origin and destination)",
            reader.where,
            ", ".join(f"{n} <{t}>" for t, n in sorted(reader.skipped.items())),
        )
    return _to_trips(reader.depart, reader.od_from, network, reader.where, duration_s)


class _DemandReader:
    """What :func:`read_sumo_demand` collects from a demand file, element by element."""

    def __init__(self, snet: SumoNet, path: Path, net_path: Path, *, duration_s: float | None, seed: int) -> None:
        self.snet, self.path, self.net_path = snet, path, net_path
        self.rng = np.random.default_rng(seed)
        self.routes: dict[str, tuple[str, str]] = {}
        self.depart: list[np.ndarray] = []
        self.od_from: list[tuple[str, str, str, str]] = []  # (from, to, tag, element id) per block
        self.total = 0
        self.skipped: dict[str, int] = {}
        self.where = f"SUMO demand '{path}'"
        self.end_default = _DAY_S if duration_s is None else max(float(duration_s), _DAY_S)
        self.seen_root = False

    def element(self, el: Any, parent_el: Any) -> None:
        """Read one closed element (its parent: ``parent_el``, None at the root)."""
        tag = el.tag
        parent = parent_el.tag if parent_el is not None else ""
        if tag == "route" and parent in ("routes", "trips", "routeDistribution"):
            self._route(el, parent_el, parent)
        elif tag == "routeDistribution":
            el.clear()
        elif tag in ("vehicle", "trip"):
            self._vehicle(el)
            el.clear()
        elif tag == "flow":
            ends = self.ends_of(el)
            if ends is None:
                raise DemandError(f"{self.where}: <flow id={el.get('id')!r}> has no route, from/to edges or junctions.")
            self.add(_flow_times(el, self.path, self.end_default, self.rng), ends, el)
            el.clear()
        elif tag in ("person", "personFlow", "container", "containerFlow"):
            self.skipped[tag] = self.skipped.get(tag, 0) + 1
            el.clear()

    def _route(self, el: Any, parent_el: Any, parent: str) -> None:
        rid = el.get("id")
        if rid is None and parent != "routeDistribution":
            raise DemandError(f"{self.where}: a top-level <route> has no 'id'.")
        ends = self.route_ends(el)
        if rid is not None:
            self.routes[rid] = ends
        if parent == "routeDistribution":  # a distribution stands for its first route
            dist = parent_el.get("id")
            if dist is not None and dist not in self.routes:
                self.routes[dist] = ends

    def _vehicle(self, el: Any) -> None:
        tag = el.tag
        ends = self.ends_of(el)
        if ends is None:
            self.skipped[tag] = self.skipped.get(tag, 0) + 1  # e.g. a taxi that only serves stops
            return
        t = (
            _time(el, "depart", self.path)
            if el.get("depart") not in ("triggered", "containerTriggered", "split", "begin", "now")
            else 0.0
        )
        if t is None:
            raise DemandError(f"{self.where}: <{tag} id={el.get('id')!r}> has no 'depart'.")
        self.add(np.array([t]), ends, el)

    def edge(self, eid: str, el: Any) -> tuple[str, str]:
        """The (from, to) junctions of edge ``eid``, named by element ``el``."""
        hit = self.snet.all_edges.get(eid)
        if hit is None:
            raise DemandError(
                f"{self.where}: <{el.tag} id={el.get('id')!r}> names edge {eid!r}, which is not in the network "
                f"'{self.net_path}'."
            )
        return hit[0], hit[1]

    def route_ends(self, el: Any) -> tuple[str, str]:
        """The first and last junction of a ``route`` (its inner edges checked)."""
        edges = (el.get("edges") or "").split()
        if not edges:
            raise DemandError(f"{self.where}: <route id={el.get('id')!r}> has no edges.")
        if len(edges) > _MAX_ROUTE_EDGES:
            raise DemandError(f"{self.where}: <route id={el.get('id')!r}> has more than {_MAX_ROUTE_EDGES:,} edges.")
        for e in edges[1:-1]:
            self.edge(e, el)
        return self.edge(edges[0], el)[0], self.edge(edges[-1], el)[1]

    def ends_of(self, el: Any) -> tuple[str, str] | None:
        """(from junction, to junction) of a vehicle/trip/flow, None if it has none yet."""
        if el.get("route") is not None:
            r = self.routes.get(el.get("route"))
            if r is None:
                raise DemandError(
                    f"{self.where}: <{el.tag} id={el.get('id')!r}> names route {el.get('route')!r}, "
                    "which is not defined before it."
                )
            return r
        if el.get("from") is not None or el.get("to") is not None:
            if el.get("from") is None or el.get("to") is None:
                raise DemandError(f"{self.where}: <{el.tag} id={el.get('id')!r}> needs both 'from' and 'to'.")
            return self.edge(el.get("from"), el)[0], self.edge(el.get("to"), el)[1]
        if el.get("fromJunction") is not None or el.get("toJunction") is not None:
            a, b = el.get("fromJunction"), el.get("toJunction")
            for j in (a, b):
                if j is None or j not in self.snet.junctions:
                    raise DemandError(
                        f"{self.where}: <{el.tag} id={el.get('id')!r}> names junction {j!r}, "
                        f"which is not in the network '{self.net_path}'."
                    )
            return a, b
        nested = el.find("route")
        if nested is not None:
            return self.route_ends(nested)
        return None

    def add(self, times: np.ndarray, ends: tuple[str, str], el: Any) -> None:
        """One block of departures from ``ends[0]`` to ``ends[1]``."""
        self.total += times.size
        if self.total > MAX_TRIP_ROWS:
            raise DemandError(f"{self.where}: more than {MAX_TRIP_ROWS:,} trips (at <{el.tag} id={el.get('id')!r}>).")
        self.depart.append(times)
        self.od_from.append((ends[0], ends[1], el.tag, el.get("id", "")))


def _flow_times(el: Any, path: Path, end_default: float, rng: np.random.Generator) -> np.ndarray:
    """Departure times of a ``flow`` (SUMO's rules: departures from ``begin`` while before ``end``)."""
    fid = el.get("id")
    begin = _time(el, "begin", path, 0.0)
    end = _time(el, "end", path, None)
    rates = [a for a in ("period", "vehsPerHour", "number", "probability") if el.get(a) is not None]
    if not rates:
        raise DemandError(
            f"SUMO demand '{path}': <flow id={fid!r}> needs one of period, vehsPerHour, number, probability."
        )
    if len(rates) > 1 and rates != ["period", "number"]:
        raise DemandError(f"SUMO demand '{path}': <flow id={fid!r}> gives {' and '.join(rates)}; give one.")
    err = DemandError

    if el.get("number") is not None:
        n = _float(el, "number", path, "SUMO demand", lo=0, hi=MAX_TRIP_ROWS, error=err)
        if n != int(n):
            raise DemandError(
                f"SUMO demand '{path}': <flow id={fid!r}> has number={el.get('number')!r}, expected an integer."
            )
        n = int(n)
        if el.get("period") is not None:
            period = _period(el, path)
        else:
            stop = end if end is not None else begin + 3600.0
            period = (stop - begin) / n if n else 0.0
        return begin + period * np.arange(n, dtype=np.float64)
    end = end_default if end is None else end
    span = max(end - begin, 0.0)
    if el.get("probability") is not None:
        p = _float(el, "probability", path, "SUMO demand", lo=0.0, hi=1.0, error=err)
        steps = int(math.ceil(span))
        if steps > 366 * _DAY_S:
            raise DemandError(f"SUMO demand '{path}': <flow id={fid!r}> spans more than 366 days.")
        return begin + np.flatnonzero(rng.random(steps) < p).astype(np.float64)
    if el.get("vehsPerHour") is not None:
        vph = _float(el, "vehsPerHour", path, "SUMO demand", lo=0.0, hi=1e6, error=err)
        if vph == 0:
            return np.zeros(0)
        period = 3600.0 / vph
    else:
        period = _period(el, path)
    n = int(math.ceil(span / period - 1e-9))
    if n > MAX_TRIP_ROWS:
        raise DemandError(
            f"SUMO demand '{path}': <flow id={fid!r}> would make {n:,} trips, more than {MAX_TRIP_ROWS:,}."
        )
    return begin + period * np.arange(n, dtype=np.float64)


def _period(el: Any, path: Path) -> float:
    raw = (el.get("period") or "").strip()
    if raw.startswith("exp("):  # Poisson arrivals at this rate: SUMO draws them; we use the mean gap
        raw = raw[4:].rstrip(")")
        try:
            rate = float(raw)
        except ValueError:
            rate = math.nan
        if not (math.isfinite(rate) and rate > 0):
            raise DemandError(f"SUMO demand '{path}': <flow id={el.get('id')!r}> has period={el.get('period')!r}.")
        return 1.0 / rate
    v = _float(el, "period", path, "SUMO demand", lo=1e-3, hi=366 * _DAY_S, error=DemandError)
    return v


def _to_trips(
    depart: list[np.ndarray],
    ends: list[tuple[str, str, str, str]],
    network: Network,
    where: str,
    duration_s: float | None,
) -> Trips:
    sizes = np.array([d.size for d in depart], np.int64)
    times = np.concatenate(depart) if depart else np.zeros(0)
    names = sorted({j for e in ends for j in e[:2]})
    node = dict(
        zip(names, lookup_nodes(network, np.array([sumo_id(j) for j in names], np.int64)).tolist(), strict=True)
    )
    for a, b, tag, eid in ends:
        for j in (a, b):
            if node[j] < 0:
                raise DemandError(
                    f"{where}: <{tag} id={eid!r}> starts or ends at junction {j!r}, which is not "
                    "on a road of the imported network (only edges for passenger cars are roads)."
                )
    o = np.repeat(np.array([node[e[0]] for e in ends], np.int64), sizes)
    d = np.repeat(np.array([node[e[1]] for e in ends], np.int64), sizes)
    keep = o != d
    if (~keep).any():
        log.info(
            "%s: %d trips start and end at the same node after network repairs; dropped", where, int((~keep).sum())
        )
    if duration_s is not None:
        late = times >= float(duration_s)
        if late.any():
            log.info(
                "%s: %d trips depart at or after the scenario end (%g s); dropped", where, int(late.sum()), duration_s
            )
        keep &= ~late
    ids = np.arange(times.size, dtype=np.int64)[keep]
    order = np.argsort(times[keep], kind="stable")
    return Trips(
        trip_id=np.ascontiguousarray(ids[order]),
        origin=np.ascontiguousarray(o[keep][order], np.int32),
        destination=np.ascontiguousarray(d[keep][order], np.int32),
        depart_s=np.ascontiguousarray(times[keep][order], np.float64),
    )
