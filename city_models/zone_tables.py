"""Zones for population synthesis: a grid over the network, or a zone file.

A zone file (:func:`read_zone_file`) is GeoJSON polygons or points, or a CSV of
centroids, with residents and jobs (and optionally school places) per zone;
GeoPackage layers are read by :mod:`city_models.zonefiles`.  Every problem is a
:class:`PopulationError` naming the file, the feature or row and the field.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from basics.errors import TwinError
from city_models.city import Zones
from city_models.network import Network

__all__ = ["MAX_ZONE_COUNT", "PopulationError", "ZoneTable", "grid_zones_over", "read_zone_file", "zones_from_features"]


class PopulationError(TwinError):
    """Bad population input (zone file, totals, parameters): the message names what is wrong."""


class ZoneTable(NamedTuple):
    """Zones with optional school places (``None``: in proportion to residents)."""

    zones: Zones
    schools: np.ndarray | None = None
    source: str = "city"


def grid_zones_over(network: Network, zone_size_m: float, *, residents: int, jobs: int) -> Zones:
    """Square-cell zones over the network's nodes, with the given city totals
    split in proportion to node counts (see :func:`city_models.osm.grid_zones`).
    """
    from city_models.osm import grid_zones

    if not zone_size_m > 0:
        raise PopulationError(f"zone size must be positive, got {zone_size_m}")
    return grid_zones(network.x, network.y, zone_size_m=float(zone_size_m), residents=int(residents), jobs=int(jobs))


def _number(value: Any, where: str, field: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError, OverflowError):
        raise PopulationError(f"{where}: field {field!r} is not a number (or too large): {str(value)[:40]!r}") from None
    if not np.isfinite(v):
        raise PopulationError(f"{where}: field {field!r} is not finite: {str(value)[:40]!r}")
    return v


#: Most residents, jobs or school places one zone may have (a zone file's counts are
#: multiplied into persons, so they are bounded before anything is synthesised).
MAX_ZONE_COUNT = 100_000_000


def _count(value: Any, where: str, field: str) -> int:
    v = _number(value, where, field)
    if v < 0 or v != int(v):
        raise PopulationError(f"{where}: field {field!r} must be a whole number >= 0, got {str(value)[:40]!r}")
    if v > MAX_ZONE_COUNT:
        raise PopulationError(f"{where}: field {field!r} is {v:.3g}; a zone may have at most {MAX_ZONE_COUNT:,}")
    return int(v)


def _name_of(props: dict[str, Any], i: int) -> str:
    for key in ("name", "zone", "id"):
        if props.get(key) not in (None, ""):
            return str(props[key])
    return f"zone {i}"


def _ring_contains(ring: np.ndarray, px: np.ndarray, py: np.ndarray) -> np.ndarray:
    """Even-odd rule: which points lie inside a closed ring ``[(x, y), ...]``."""
    inside = np.zeros(px.shape[0], bool)
    x0, y0 = ring[:-1, 0], ring[:-1, 1]
    x1, y1 = ring[1:, 0], ring[1:, 1]
    for a, b, c, d in zip(x0, y0, x1, y1, strict=True):
        crosses = (b > py) != (d > py)
        with np.errstate(divide="ignore", invalid="ignore"):
            xi = a + (py - b) * (c - a) / (d - b)
        inside ^= crosses & (px < xi)
    return inside


def _polygons(geom: dict[str, Any], where: str) -> list[list[np.ndarray]]:
    kind = geom.get("type")
    coords: Any = geom.get("coordinates")
    try:
        if kind == "Polygon":
            return [[np.asarray(r, np.float64)[:, :2] for r in coords]]
        if kind == "MultiPolygon":
            return [[np.asarray(r, np.float64)[:, :2] for r in poly] for poly in coords]
    except (TypeError, ValueError, IndexError):
        raise PopulationError(f"{where}: malformed {kind} coordinates") from None
    raise PopulationError(f"{where}: geometry type {kind!r} is not supported (Polygon, MultiPolygon or Point)")


def read_zone_file(path: str | Path, network: Network) -> ZoneTable:
    """Zones from a GeoJSON, GeoPackage or CSV file, with the nodes of ``network`` assigned to them.

    GeoJSON: a FeatureCollection; each feature's ``properties`` give
    ``name`` (or ``zone``/``id``), ``residents``, ``jobs`` and optionally
    ``schools``; its geometry is a Polygon/MultiPolygon in lon/lat (nodes
    inside belong to the zone; nodes in no polygon to none) or a Point
    (centroid: nodes go to the nearest one).  CSV: columns ``zone`` (or
    ``name``), ``residents``, ``jobs``, optional ``schools``, and the centroid
    as ``x``, ``y`` (the network's metric frame) or ``lon``, ``lat``; nodes go
    to the nearest centroid.  GeoPackage: a layer of polygons or points in any
    CRS (reprojected to lon/lat) with the columns of the GeoJSON properties
    (see :func:`city_models.zonefiles.read_geopackage`).

    Raises
    ------
    PopulationError
        Naming the file, the feature or row, and the field.
    """
    path = Path(path)
    if not path.is_file():
        raise PopulationError(f"zone file '{path}' does not exist")
    low = path.name.lower()
    if low.endswith((".geojson", ".json")):
        return _read_geojson(path, network)
    if low.endswith(".csv"):
        return _read_csv(path, network)
    if low.endswith(".gpkg"):
        from city_models.zonefiles import read_geopackage

        return read_geopackage(path, network)
    raise PopulationError(f"zone file '{path}': expected a .geojson/.json, .gpkg or .csv file")


def _lonlat_known(network: Network, path: Path) -> tuple[np.ndarray, np.ndarray]:
    if not (np.all(np.isfinite(network.lon)) and np.all(np.isfinite(network.lat))):
        raise PopulationError(f"zone file '{path}' is in lon/lat but the network's nodes have no lon/lat")
    return network.lon, network.lat


def _nearest(px: np.ndarray, py: np.ndarray, cx: np.ndarray, cy: np.ndarray) -> np.ndarray:
    out = np.empty(px.shape[0], np.int32)
    for s in range(0, px.shape[0], 4096):
        d = (px[s : s + 4096, None] - cx[None, :]) ** 2 + (py[s : s + 4096, None] - cy[None, :]) ** 2
        out[s : s + 4096] = np.argmin(d, axis=1)
    return out


def _finish(
    names: list[str],
    res: list[int],
    jobs: list[int],
    schools: list[int | None],
    node_zone: np.ndarray,
    network: Network,
    source: str,
) -> ZoneTable:
    nz = len(names)
    counts = np.bincount(node_zone[node_zone >= 0], minlength=nz)
    with np.errstate(invalid="ignore", divide="ignore"):
        zx = np.bincount(node_zone[node_zone >= 0], weights=network.x[node_zone >= 0], minlength=nz) / counts
        zy = np.bincount(node_zone[node_zone >= 0], weights=network.y[node_zone >= 0], minlength=nz) / counts
    zones = Zones(
        name=tuple(names),
        residents=np.asarray(res, np.int64),
        jobs=np.asarray(jobs, np.int64),
        x=zx,
        y=zy,
        node_zone=node_zone.astype(np.int32),
    )
    sch = None if all(s is None for s in schools) else np.asarray([0 if s is None else s for s in schools], np.int64)
    return ZoneTable(zones, sch, source)


def _read_geojson(path: Path, network: Network) -> ZoneTable:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PopulationError(f"zone file '{path}' could not be read as JSON: {exc}") from None
    except (RecursionError, ValueError) as exc:  # nested thousands deep; digits beyond the limit
        raise PopulationError(f"zone file '{path}' could not be read as JSON: {type(exc).__name__}") from None
    feats = doc.get("features") if isinstance(doc, dict) else None
    if not isinstance(feats, list) or not feats:
        raise PopulationError(f"zone file '{path}': expected a GeoJSON FeatureCollection with features")
    return zones_from_features(feats, path, network)


def zones_from_features(feats: list[Any], path: Path, network: Network, *, item: str = "feature") -> ZoneTable:
    """Zones from GeoJSON-like features in lon/lat (a GeoJSON file's, or a GeoPackage
    layer's read by :mod:`city_models.zonefiles`); errors name ``path`` and the ``item``.
    """
    lon, lat = _lonlat_known(network, path)
    names: list[str] = []
    res: list[int] = []
    jobs: list[int] = []
    schools: list[int | None] = []
    shapes: list[tuple[int, list[list[np.ndarray]]]] = []
    points: list[tuple[int, float, float]] = []
    for i, f in enumerate(feats):
        where = f"zone file '{path}', {item} {i}"
        if not isinstance(f, dict):
            raise PopulationError(f"{where}: expected a GeoJSON Feature (a mapping), got {type(f).__name__}")
        props = f.get("properties") or {}
        geom = f.get("geometry") or {}
        if not isinstance(props, dict) or not isinstance(geom, dict):
            raise PopulationError(f"{where}: 'properties' and 'geometry' must be mappings")
        names.append(_name_of(props, i))
        where += f" ({names[-1]!r})"
        for field, out in (("residents", res), ("jobs", jobs)):
            if field not in props:
                raise PopulationError(f"{where}: property {field!r} is missing")
            out.append(_count(props[field], where, field))
        schools.append(_count(props["schools"], where, "schools") if props.get("schools") is not None else None)
        if geom.get("type") == "Point":
            try:
                points.append((i, float(geom["coordinates"][0]), float(geom["coordinates"][1])))
            except (KeyError, TypeError, ValueError, IndexError):
                raise PopulationError(f"{where}: malformed Point coordinates") from None
        else:
            shapes.append((i, _polygons(geom, where)))
    if points and shapes:
        raise PopulationError(f"zone file '{path}': mixes Point and Polygon features; use one kind")
    if points:
        idx = np.array([p[0] for p in points])
        node_zone = idx[_nearest(lon, lat, np.array([p[1] for p in points]), np.array([p[2] for p in points]))]
    else:
        node_zone = np.full(network.n_nodes, -1, np.int64)
        for i, polys in shapes:
            inside = np.zeros(network.n_nodes, bool)
            for rings in polys:
                r = _ring_contains(rings[0], lon, lat)
                for hole in rings[1:]:
                    r &= ~_ring_contains(hole, lon, lat)
                inside |= r
            node_zone[inside & (node_zone < 0)] = i
    return _finish(names, res, jobs, schools, node_zone, network, str(path))


def _read_csv(path: Path, network: Network) -> ZoneTable:
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise PopulationError(f"zone file '{path}' could not be read: {exc}") from None
    if not rows:
        raise PopulationError(f"zone file '{path}' has no rows")
    cols = {c.strip() for c in rows[0].keys() if c is not None}
    name_col = "zone" if "zone" in cols else ("name" if "name" in cols else None)
    missing = [c for c in ("residents", "jobs") if c not in cols]
    if name_col is None:
        missing.insert(0, "zone")
    if {"x", "y"} <= cols:
        xy = ("x", "y")
    elif {"lon", "lat"} <= cols:
        xy = ("lon", "lat")
    else:
        missing.append("x, y (or lon, lat)")
    if missing:
        raise PopulationError(
            f"zone file '{path}' lacks column(s) {', '.join(missing)}; found {', '.join(sorted(cols))}"
        )
    names, res, jobs, schools, cx, cy = [], [], [], [], [], []
    for r, row in enumerate(rows):
        where = f"zone file '{path}', row {r + 1} (line {r + 2})"
        row = {(k or "").strip(): v for k, v in row.items()}
        names.append(str(row[name_col]).strip() or f"zone {r}")
        res.append(_count(row["residents"], where, "residents"))
        jobs.append(_count(row["jobs"], where, "jobs"))
        schools.append(
            _count(row["schools"], where, "schools")
            if "schools" in cols and row.get("schools") not in (None, "")
            else None
        )
        cx.append(_number(row[xy[0]], where, xy[0]))
        cy.append(_number(row[xy[1]], where, xy[1]))
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise PopulationError(f"zone file '{path}': zone names repeat: {', '.join(dup[:5])}")
    if xy == ("lon", "lat"):
        px, py = _lonlat_known(network, path)
    else:
        px, py = network.x, network.y
    node_zone = _nearest(px, py, np.asarray(cx), np.asarray(cy))
    return _finish(names, res, jobs, schools, node_zone.astype(np.int64), network, str(path))
