"""OSM extracts as users have them (issue 13, part 3): the part of a file inside a bounding
box or a polygon, the road classes asked for, and the named bridges and emergency
facilities (hospitals, fire stations, police) the extract holds.

* ``bbox``: ``[west, south, east, north]`` in degrees; ``polygon``: a GeoJSON (or any
  file pyogrio reads) holding one or more polygons, in any CRS it states.  Roads with
  both ends inside are kept.  An area that holds no road is a :class:`CityError` naming
  the file, the area and the extent the file covers.
* ``network_type``: ``drive`` (roads for cars, no service roads), ``drive_service``
  (with service roads: parking aisles, driveways) or ``all`` (every ``highway`` way,
  footways and cycleways too).  Without one, each reader keeps what it always did
  (PBF: pyrosm's ``driving``; OSM XML: every way for cars, service roads included).
* Facilities: ``amenity=hospital`` (beds from the ``beds`` tag, else
  :data:`DEFAULT_CAPACITY`), ``amenity=fire_station``, ``amenity=police``: points or
  building outlines, each on the node nearest its centre (none further than
  :data:`MAX_FACILITY_M`); unnamed ones get a name from their kind and OSM id.
* Named places: every named way tagged ``bridge`` becomes a place (its links), so
  ``closures: [{link: "Pitkäsilta"}]`` and drill locations can name it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from city_models.city import Facility
from city_models.errors import CityError

__all__ = [
    "NETWORK_TYPES",
    "PYROSM_NETWORK",
    "XML_EXCLUDED",
    "DEFAULT_CAPACITY",
    "read_area",
    "inside_area",
    "empty_area_error",
    "facilities_from_pois",
    "POI_TAGS",
]

NETWORK_TYPES = ("drive", "drive_service", "all")
#: our network type -> pyrosm's
PYROSM_NETWORK = {"drive": "driving", "drive_service": "driving+service", "all": "all"}
#: ``highway`` values dropped per network type from OSM XML (beyond the non-road ones)
_NOT_FOR_CARS = frozenset(
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
XML_EXCLUDED: dict[str, frozenset[str]] = {
    "drive": _NOT_FOR_CARS | {"service"},
    "drive_service": _NOT_FOR_CARS,
    "all": frozenset({"proposed", "construction", "abandoned", "planned", "platform", "bus_stop", "elevator"}),
}
#: the OSM tags read as facilities, and the facility kind of each
POI_TAGS = {"hospital": "hospital", "fire_station": "fire_station", "police": "police_station"}
#: units (stations) or beds (hospitals) when the extract says nothing
DEFAULT_CAPACITY = {"hospital": 200, "fire_station": 3, "police_station": 2}
#: a facility further than this from every node is outside the network (left out)
MAX_FACILITY_M = 1000.0


def read_area(bbox: Any = None, polygon: str | Path | None = None) -> Any:
    """The area to keep as a shapely geometry in lon/lat (``None``: the whole file).

    Raises
    ------
    CityError
        A bbox that is not ``[west, south, east, north]``, or a polygon file that
        cannot be read or holds no polygon (naming the file).
    """
    import shapely

    if bbox is not None and polygon is not None:
        raise CityError("give bbox or polygon, not both.")
    if bbox is not None:
        try:
            w, s, e, n = (float(v) for v in bbox)
        except (TypeError, ValueError):
            raise CityError(f"bbox must be [west, south, east, north] in degrees, got {bbox!r}.") from None
        if not (-180 <= w < e <= 180 and -90 <= s < n <= 90):
            raise CityError(f"bbox must be [west, south, east, north] with west < east and south < north, got {bbox}.")
        return shapely.box(w, s, e, n)
    if polygon is None:
        return None
    import pyogrio

    path = Path(polygon)
    if not path.is_file():
        raise CityError(f"polygon file '{path}' does not exist.")
    try:
        gdf = pyogrio.read_dataframe(path)
    except Exception as exc:  # noqa: BLE001 - any driver failure names the file
        raise CityError(f"polygon file '{path}' could not be read: {exc}") from None
    if gdf.crs is not None and not gdf.crs.equals("EPSG:4326"):
        gdf = gdf.to_crs("EPSG:4326")
    polys = [g for g in gdf.geometry if g is not None and g.geom_type in ("Polygon", "MultiPolygon")]
    if not polys:
        raise CityError(f"polygon file '{path}' holds no Polygon or MultiPolygon.")
    return shapely.union_all(polys)


def inside_area(area: Any, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Whether each point is inside ``area`` (every point when there is no area)."""
    import shapely

    if area is None:
        return np.ones(np.shape(lon), bool)
    return np.asarray(shapely.contains_xy(area, np.asarray(lon, float), np.asarray(lat, float)), bool)


def empty_area_error(path: Path, what: str, area_text: str, lon: np.ndarray, lat: np.ndarray) -> CityError:
    """The error for an area that selects no road: the file, the area and what the file covers."""
    ok = np.isfinite(lon) & np.isfinite(lat)
    covers = (
        f"its roads lie within lon {lon[ok].min():.5f} .. {lon[ok].max():.5f}, lat {lat[ok].min():.5f} .. "
        f"{lat[ok].max():.5f}"
        if ok.any()
        else "it holds no road nodes at all"
    )
    return CityError(f"{what} file '{path}': the {area_text} selects no roads; {covers}.")


def _capacity(kind: str, tags: Any) -> int:
    if kind == "hospital" and isinstance(tags, dict):
        try:
            beds = int(float(str(tags.get("beds", "")).strip()))
        except ValueError:
            beds = 0
        if 0 < beds <= 100_000:
            return beds
    return DEFAULT_CAPACITY[kind]


def _tags_of(row: dict[str, Any]) -> dict[str, Any]:
    tags = row.get("tags")
    if isinstance(tags, str):
        import json

        try:
            tags = json.loads(tags)
        except ValueError:
            tags = None
    out = dict(tags) if isinstance(tags, dict) else {}
    out.update({k: v for k, v in row.items() if isinstance(v, str)})
    return out


def facilities_from_pois(gdf: Any, lon: np.ndarray, lat: np.ndarray, *, area: Any = None) -> tuple[Facility, ...]:
    """Facilities from a GeoDataFrame of OSM features with an ``amenity`` column.

    Parameters
    ----------
    gdf : geopandas.GeoDataFrame or None
        Points or outlines in lon/lat (pyrosm's ``get_pois`` or osmnx's ``features_from_xml``).
    lon, lat : numpy.ndarray
        The network's nodes (dense index order).
    area : shapely geometry, optional
        Only features whose centre is inside.

    Returns
    -------
    tuple of Facility
        One per feature near the network, on its nearest node, sorted by kind and name.
    """
    if gdf is None or len(gdf) == 0 or "amenity" not in gdf or lon.size == 0:
        return ()
    centres = gdf.geometry.representative_point()
    m_lon = 111_320.0 * math.cos(math.radians(float(np.nanmean(lat))))
    out: list[Facility] = []
    seen: set[str] = set()
    for k, row in enumerate(gdf.drop(columns=[gdf.geometry.name]).to_dict("records")):
        kind = POI_TAGS.get(str(row.get("amenity")))
        pt = centres.iloc[k]
        if kind is None or pt is None or pt.is_empty or not inside_area(area, np.array([pt.x]), np.array([pt.y]))[0]:
            continue
        d = np.hypot((lon - pt.x) * m_lon, (lat - pt.y) * 111_320.0)
        node = int(np.nanargmin(d))
        if not d[node] <= MAX_FACILITY_M:
            continue
        tags = _tags_of(row)
        name = str(tags.get("name") or "").strip() or f"{kind.replace('_', ' ')} {row.get('id', k)}"
        while name in seen:  # names are keys of places and stations: keep them unique
            name += " (2)"
        seen.add(name)
        out.append(Facility(kind=kind, name=name, node=node, capacity=_capacity(kind, tags)))
    return tuple(sorted(out, key=lambda f: (f.kind, f.name)))


def bridge_places(links_bridge: list[str]) -> dict[str, np.ndarray]:
    """Named bridges: ``links_bridge[i]`` is the bridge name of link ``i`` ('' when none)."""
    places: dict[str, list[int]] = {}
    for i, name in enumerate(links_bridge):
        if name:
            places.setdefault(name, []).append(i)
    return {name: np.asarray(ids, np.int64) for name, ids in places.items()}


def bridge_name(d: dict[str, Any]) -> str:
    """The way's name when it is a bridge (``bridge`` tag other than ``no``), else ''."""
    b = d.get("bridge")
    if isinstance(b, list):
        b = b[0] if b else None
    if b is None or (isinstance(b, float) and math.isnan(b)) or str(b).strip().lower() in ("", "no", "false", "0"):
        return ""
    name = d.get("name")
    if isinstance(name, list):
        name = name[0] if name else None
    if name is None or (isinstance(name, float) and math.isnan(name)):
        return ""
    return str(name).strip()
