"""Where a message is: sensor ids, road-segment ids and locations mapped to network links.

The mapping is explicit. A message's link is found, in this order, by

1. the **sensor table** (scenario ``feeds.sensors`` / ``feeds.sensor_file``): its entity
   id, its ``refDevice`` or its ``refRoadSegment`` is a row's ``id``; the row names a
   ``link``, a ``segment`` or a ``lon``/``lat`` (+ ``heading_deg``) snapped once;
2. a ``refRoadSegment`` of the form ``PREFIX<link index>`` or ``PREFIX<src>-<dst>``
   (source node ids; PREFIX is ``urn:ngsi-ld:RoadSegment:`` by default);
3. the **nearest link** to its GeoJSON ``location``, with the distance reported in the
   record. A LineString's direction (first to last point) picks the direction of a
   two-way street (links within 60 degrees of it); a bare Point on a two-way street is
   ambiguous and takes the lower link index, so give such sensors a ``heading_deg`` in
   the table. Farther than ``snap_max_m`` from every link: unmapped (rejected).

Locations are lon/lat (GeoJSON); they are projected onto the network's x/y metres by an
affine map fitted to the nodes' lon/lat, exact for the synthetic city and within
centimetres over a city for UTM-projected OSM networks.
"""

from __future__ import annotations

import csv
import gzip
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from basics.errors import InputError
from twin.feeds.ngsi import MessageError, _short

__all__ = ["LinkMapper", "read_sensor_table"]

#: a LineString's direction accepts links within this angle
_MAX_TURN_DEG = 60.0
_SENSOR_COLUMNS = ("id", "link", "segment", "lon", "lat", "heading_deg")


class LinkMapper:
    """Maps sensor ids, ``refRoadSegment`` ids and GeoJSON locations to link indices.

    Parameters
    ----------
    network : city_models.Network
        The road network.
    sensors : sequence of SensorSpec or dict
        The sensor table rows.
    segment_prefix : str
        Prefix of segment ids that name links directly.
    snap_max_m : float
        Farthest a location may be from its link.

    Raises
    ------
    InputError
        A sensor row names an unknown link or segment, or a location off the network.
    """

    def __init__(
        self,
        network,
        *,
        sensors: Sequence = (),
        segment_prefix: str = "urn:ngsi-ld:RoadSegment:",
        snap_max_m: float = 50.0,
    ) -> None:
        self.network = network
        self.prefix = segment_prefix
        self.snap_max_m = float(snap_max_m)
        self.n_links = int(network.n_links)
        self.lanes = np.asarray(network.lanes, dtype=np.float64)
        src, dst = np.asarray(network.src), np.asarray(network.dst)
        self._x0, self._y0 = network.x[src], network.y[src]
        self._x1, self._y1 = network.x[dst], network.y[dst]
        self._dx, self._dy = self._x1 - self._x0, self._y1 - self._y0
        self._len2 = np.maximum(self._dx * self._dx + self._dy * self._dy, 1e-12)
        self._node_of = {
            int(a): int(t) for a, t in zip(network.alias_osmid, network.alias_node, strict=False)
        }  # merged ids
        self._node_of.update({int(o): i for i, o in enumerate(np.asarray(network.node_osmid))})
        self._pair: dict[tuple[int, int], int] = {}
        for k in range(self.n_links - 1, -1, -1):  # lowest index wins for parallel links
            self._pair[(int(src[k]), int(dst[k]))] = k
        self._a: np.ndarray | None = None  # the lon/lat -> x/y fit and its inverse (None: no lon/lat)
        self._ainv: np.ndarray | None = None
        self._fit_projection(network)
        self._table: dict[str, tuple[int, float]] = {}
        self._geo_cache: dict[tuple, tuple[int, float]] = {}
        self._seg_cache: dict[str, int] = {}
        for i, row in enumerate(sensors):
            row = row if isinstance(row, dict) else row.model_dump()
            self._add_sensor(row, where=f"sensor {i} ({row.get('id')!r})")

    # ------------------------------------------------------------------ geometry
    def _fit_projection(self, network) -> None:
        lon, lat = np.asarray(network.lon, float), np.asarray(network.lat, float)
        ok = np.isfinite(lon) & np.isfinite(lat)
        self.has_lonlat = bool(ok.sum() >= 3)
        if not self.has_lonlat:
            self._a = self._ainv = None
            return
        design = np.column_stack([lon[ok], lat[ok], np.ones(ok.sum())])
        target = np.column_stack([network.x[ok], network.y[ok]])
        a, *_ = np.linalg.lstsq(design, target, rcond=None)
        self._a = a  # [lon, lat, 1] @ a = [x, y]
        lin = a[:2]
        if abs(np.linalg.det(lin)) < 1e-12:
            self.has_lonlat = False
            self._a = self._ainv = None
            return
        self._ainv = np.linalg.inv(lin)
        self.projection_error_m = float(np.max(np.hypot(*(design @ a - target).T)))

    def to_xy(self, lon: float, lat: float) -> tuple[float, float]:
        """Network x/y metres of a lon/lat."""
        a = self._a
        if a is None:
            raise MessageError("unmapped", "the network has no lon/lat, so locations cannot be mapped")
        return (lon * a[0, 0] + lat * a[1, 0] + a[2, 0], lon * a[0, 1] + lat * a[1, 1] + a[2, 1])

    def to_lonlat(self, x: float, y: float) -> tuple[float, float]:
        """lon/lat of network x/y metres."""
        if self._a is None or self._ainv is None:
            raise MessageError("unmapped", "the network has no lon/lat, so locations cannot be placed")
        v = (np.array([x, y]) - self._a[2]) @ self._ainv
        return float(v[0]), float(v[1])

    def segment_id(self, link: int) -> str:
        """The ``refRoadSegment`` id naming ``link``."""
        return f"{self.prefix}{int(link)}"

    def link_point(self, link: int, *, frac: float = 0.5, digits: int = 7) -> dict:
        """GeoJSON Point ``frac`` of the way along ``link``."""
        x = self._x0[link] + frac * self._dx[link]
        y = self._y0[link] + frac * self._dy[link]
        lon, lat = self.to_lonlat(x, y)
        return {"type": "Point", "coordinates": [round(lon, digits), round(lat, digits)]}

    def link_line(self, link: int, *, start: float = 0.3, end: float = 0.7, digits: int = 7) -> dict:
        """GeoJSON LineString along ``link`` (from ``start`` to ``end`` of its length)."""
        coords = []
        for f in (start, end):
            lon, lat = self.to_lonlat(self._x0[link] + f * self._dx[link], self._y0[link] + f * self._dy[link])
            coords.append([round(lon, digits), round(lat, digits)])
        return {"type": "LineString", "coordinates": coords}

    # ------------------------------------------------------------------ table
    def _add_sensor(self, row: dict, *, where: str) -> None:
        sid = str(row.get("id") or "").strip()
        if not sid:
            raise InputError(f"{where}: a sensor needs an id")
        if sid in self._table:
            raise InputError(f"{where}: sensor id {sid!r} appears twice in the sensor table")
        link, seg, lon, lat = row.get("link"), row.get("segment"), row.get("lon"), row.get("lat")
        if link is not None:
            link = int(link)
            if not 0 <= link < self.n_links:
                raise InputError(
                    f"{where}: link {link} does not exist (the network has {self.n_links} links, 0-{self.n_links - 1})"
                )
            self._table[sid] = (link, 0.0)
        elif seg:
            try:
                self._table[sid] = (self._prefix_link(str(seg)), 0.0)
            except MessageError as exc:
                raise InputError(f"{where}: {exc.detail}") from None
        elif lon is not None and lat is not None:
            heading = row.get("heading_deg")
            try:
                self._table[sid] = self.nearest(
                    float(lon), float(lat), heading_deg=None if heading is None else float(heading)
                )
            except MessageError as exc:
                raise InputError(f"{where}: {exc.detail}") from None
        else:
            raise InputError(f"{where}: give one of link, segment or lon+lat")

    @property
    def sensor_ids(self) -> list[str]:
        """Ids in the sensor table."""
        return list(self._table)

    # ------------------------------------------------------------------ lookups
    def _prefix_link(self, ref: str) -> int:
        if ref.startswith(self.prefix) and ref.isascii() and len(ref) - len(self.prefix) <= 41:
            # ASCII digits only: str.isdigit() also takes '٣' or '³', which int() reads as 3
            rest = ref[len(self.prefix) :]
            if rest.isdigit():
                k = int(rest)
                if k < self.n_links:
                    return k
                raise MessageError(
                    "unmapped", f"segment {ref!r}: link {k} does not exist (the network has {self.n_links} links)"
                )
            a, sep, b = rest.partition("-")
            if sep and a.lstrip("-").isdigit() and b.lstrip("-").isdigit() and a.count("-") <= 1 and b.count("-") <= 1:
                i, j = self._node_of.get(int(a)), self._node_of.get(int(b))
                link = self._pair.get((i, j)) if i is not None and j is not None else None
                if link is not None:
                    return link
                raise MessageError("unmapped", f"segment {ref!r}: no link from node {a} to node {b}")
        raise MessageError(
            "unmapped",
            f"segment {_short(ref)} is not in the sensor table and does not name a link ({self.prefix}<link index>)",
        )

    def segment_link(self, ref: str) -> int:
        """Link of a ``refRoadSegment`` id (sensor table first, then the prefix rule)."""
        hit = self._table.get(ref)
        if hit is not None:
            return hit[0]
        return self._prefix_link(ref)

    def locate(
        self,
        entity_id: str,
        *,
        device: str | None = None,
        ref: str | None = None,
        location: dict | None = None,
        use_table: bool = True,
        required: bool = True,
    ) -> tuple[int, float, str]:
        """Link of a message: ``(link, distance_m, key it was found by)``.

        Raises
        ------
        MessageError
            ``unmapped`` when nothing maps it (unless ``required=False``: ``(-1, nan, "")``).
        """
        table = self._table
        if use_table:
            hit = table.get(entity_id)
            if hit is not None:
                return hit[0], hit[1], entity_id
            if device:
                hit = table.get(device)
                if hit is not None:
                    return hit[0], hit[1], device
        if ref:
            hit = table.get(ref)
            if hit is not None:
                return hit[0], hit[1], ref
            link = self._seg_cache.get(ref)
            if link is None:
                link = self._prefix_link(ref)
                if len(self._seg_cache) > 100_000:
                    self._seg_cache.clear()
                self._seg_cache[ref] = link
            return link, 0.0, ref
        if location is not None:
            try:
                link, dist = self.locate_geometry(location)
                return link, dist, "location"
            except MessageError:
                if required:
                    raise
                return -1, math.nan, ""
        if not required:
            return -1, math.nan, ""
        raise MessageError(
            "unmapped", f"{entity_id!r} is not in the sensor table and has no refRoadSegment or location"
        )

    def locate_geometry(self, geometry: dict) -> tuple[int, float]:
        """Nearest link to a GeoJSON Point or LineString (see the module docstring)."""
        coords: Any = geometry.get("coordinates")  # checked below: a bad shape is a schema error
        point = geometry.get("type") == "Point"
        key: tuple[Any, ...] | None
        try:  # the raw numbers are the cache key: a sensor sends the same location every time
            if point:
                key = (coords[0], coords[1])
            elif len(coords) == 2:
                key = (coords[0][0], coords[0][1], coords[1][0], coords[1][1])
            else:
                key = tuple(x for c in coords for x in (c[0], c[1]))
            hit = self._geo_cache.get(key)
        except (TypeError, IndexError, KeyError):
            hit = None
            key = None
        if hit is not None:
            return hit
        try:
            if point:
                lon, lat = float(coords[0]), float(coords[1])
            else:
                pts = [(float(c[0]), float(c[1])) for c in coords]
                if len(pts) < 2:
                    raise ValueError("a LineString needs two points")
        except (TypeError, ValueError, IndexError, KeyError):
            raise MessageError("schema", f"location has bad coordinates: {_short(coords)}") from None
        if not all(map(math.isfinite, (lon, lat) if point else (x for p in pts for x in p))):
            raise MessageError("schema", f"location has non-finite coordinates: {_short(coords)}")
        hit = self.nearest(lon, lat) if point else self._nearest_line(pts)
        if key is None:
            return hit
        if len(self._geo_cache) > 100_000:
            self._geo_cache.clear()
        self._geo_cache[key] = hit
        return hit

    def _nearest_line(self, pts: Sequence[tuple[float, float]]) -> tuple[int, float]:
        if not self.has_lonlat:
            raise MessageError("unmapped", "the network has no lon/lat, so locations cannot be mapped")
        xy = np.array([self.to_xy(lon, lat) for lon, lat in pts])
        seg = np.hypot(*np.diff(xy, axis=0).T)
        total = float(seg.sum())
        if total <= 0:
            return self._nearest_xy(float(xy[0, 0]), float(xy[0, 1]), None)
        half, run = total / 2.0, 0.0
        mid = xy[0]
        for i, s in enumerate(seg):  # the point halfway along the line
            if run + s >= half:
                f = (half - run) / s if s > 0 else 0.0
                mid = xy[i] + f * (xy[i + 1] - xy[i])
                break
            run += s
        d = xy[-1] - xy[0]
        heading = math.degrees(math.atan2(d[0], d[1])) % 360.0 if np.hypot(*d) > 0 else None
        return self._nearest_xy(float(mid[0]), float(mid[1]), heading)

    def nearest(self, lon: float, lat: float, *, heading_deg: float | None = None) -> tuple[int, float]:
        """Nearest link to a lon/lat: ``(link, distance_m)``; ``heading_deg`` restricts direction."""
        if not self.has_lonlat:
            raise MessageError("unmapped", "the network has no lon/lat, so locations cannot be mapped")
        if not (-180 <= lon <= 180 and -90 <= lat <= 90):
            raise MessageError("schema", f"location ({lon}, {lat}) is not a lon/lat")
        x, y = self.to_xy(lon, lat)
        return self._nearest_xy(x, y, heading_deg)

    def _nearest_xy(self, x: float, y: float, heading_deg: float | None) -> tuple[int, float]:
        f = np.clip(((x - self._x0) * self._dx + (y - self._y0) * self._dy) / self._len2, 0.0, 1.0)
        d = np.hypot(x - (self._x0 + f * self._dx), y - (self._y0 + f * self._dy))
        if heading_deg is not None:
            h = math.radians(heading_deg)
            cos = (self._dx * math.sin(h) + self._dy * math.cos(h)) / np.sqrt(self._len2)
            d = np.where(cos >= math.cos(math.radians(_MAX_TURN_DEG)), d, np.inf)
        k = int(np.argmin(d))
        dist = float(d[k])
        if not dist <= self.snap_max_m:
            where = "in that direction " if heading_deg is not None else ""
            near = f"{dist:.0f} m" if math.isfinite(dist) else "none"
            raise MessageError(
                "unmapped", f"no link {where}within snap_max_m={self.snap_max_m:g} m of the location (nearest: {near})"
            )
        return k, dist


def read_sensor_table(path: str | Path) -> list[dict]:
    """Rows of a sensor-table CSV (columns ``id`` and one of ``link``, ``segment``, ``lon``+``lat``).

    Raises
    ------
    InputError
        Missing file or column, or a value that is not a number, naming the file, line
        and column.
    """
    from scenarios.feeds import SensorSpec

    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as exc:
        raise InputError(f"sensor table {str(path)!r} could not be read: {exc}") from None
    out = []
    for n, row in enumerate(rows, start=2):
        if None in row:
            raise InputError(f"sensor table {str(path)!r}, line {n}: more values than columns")
        unknown = set(row) - set(_SENSOR_COLUMNS)
        if unknown:
            raise InputError(
                f"sensor table {str(path)!r}: unknown column(s) {', '.join(sorted(unknown))}; "
                f"known: {', '.join(_SENSOR_COLUMNS)}"
            )
        clean = {k: v.strip() for k, v in row.items() if v is not None and v.strip() != ""}
        try:
            out.append(SensorSpec.model_validate(clean).model_dump())
        except Exception as exc:  # pydantic ValidationError: name the line
            first = exc.errors()[0] if hasattr(exc, "errors") else {"loc": (), "msg": str(exc)}
            col = ".".join(str(p) for p in first.get("loc", ())) or "row"
            raise InputError(f"sensor table {str(path)!r}, line {n}, {col}: {first.get('msg')}") from None
    return out
