"""Link geometry: the shapes of roads as the source draws them (issue 13, part 3).

OSM XML files simplified the osmnx way and osmnx GraphML files keep each edge's
``geometry`` (a line through the way's interior nodes).  The readers collect them as
:class:`LinkShapes`, keyed by the way id and the source ids of the link's end nodes,
in the city (``City.link_shapes``); validation renumbers links and merges nodes,
so :func:`network_shapes` finds each link's shape again through the source ids
(merged node ids lead to the node that replaced them) and pins its ends to the
link's nodes.  Links without a shape get the straight line between their nodes.
The run writes the result as flat arrays (``link_shape_indptr``, ``shape_lon``,
``shape_lat``) that ``twin export`` and maps draw.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from city_models.network import Network, lookup_nodes

__all__ = ["LinkShapes", "ShapeCollector", "network_shapes"]


class LinkShapes(NamedTuple):
    """Shapes of source links: shape ``k`` is ``lon/lat[indptr[k]:indptr[k+1]]``."""

    link_osmid: np.ndarray  # int64 (k,) way id
    src_osmid: np.ndarray  # int64 (k,) source id of the upstream node
    dst_osmid: np.ndarray  # int64 (k,) source id of the downstream node
    indptr: np.ndarray  # int64 (k+1,)
    lon: np.ndarray  # float64
    lat: np.ndarray  # float64


def _coords(geom: Any) -> np.ndarray | None:
    """(n, 2) lon/lat of a LineString (shapely or WKT text); None when there is none."""
    if geom is None:
        return None
    if isinstance(geom, str):
        import shapely

        try:
            geom = shapely.from_wkt(geom)
        except Exception:  # noqa: BLE001 - an unreadable shape is drawn straight
            return None
    if getattr(geom, "geom_type", None) != "LineString":
        return None
    xy = np.asarray(geom.coords, np.float64)[:, :2]
    return xy if xy.shape[0] >= 2 and np.isfinite(xy).all() else None


class ShapeCollector:
    """Collects the shapes of links as a reader makes them."""

    def __init__(self) -> None:
        self.keys: list[tuple[int, int, int]] = []
        self.parts: list[np.ndarray] = []

    def add(self, way: Any, src: int, dst: int, geom: Any, *, reverse: bool = False) -> None:
        """Add the shape of link ``src -> dst`` of ``way`` (nothing when ``geom`` has none)."""
        xy = _coords(geom)
        if xy is None:
            return
        try:
            way_id = int(way)
        except (TypeError, ValueError, OverflowError):
            way_id = -1
        self.keys.append((way_id, int(src), int(dst)))
        self.parts.append(xy[::-1] if reverse else xy)

    def result(self) -> LinkShapes | None:
        """The shapes collected (None when none)."""
        if not self.parts:
            return None
        keys = np.asarray(self.keys, np.int64)
        xy = np.concatenate(self.parts)
        ptr = np.concatenate([[0], np.cumsum([p.shape[0] for p in self.parts])]).astype(np.int64)
        return LinkShapes(keys[:, 0], keys[:, 1], keys[:, 2], ptr, xy[:, 0].copy(), xy[:, 1].copy())


def network_shapes(net: Network, shapes: LinkShapes | None) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Every link's shape as flat arrays ``(indptr, lon, lat)``; None when nothing is known.

    A link whose way id and end nodes match a source shape gets it (its first and last
    point moved onto the link's nodes); any other link the straight line between its
    nodes.  None when no link has a shape or the nodes' lon/lat are unknown.
    """
    if shapes is None or shapes.indptr.size < 2:
        return None
    if not (np.isfinite(net.lon).all() and np.isfinite(net.lat).all()):
        return None
    s = lookup_nodes(net, shapes.src_osmid)
    d = lookup_nodes(net, shapes.dst_osmid)
    index = {(int(w), int(a), int(b)): k for k, (w, a, b) in enumerate(zip(shapes.link_osmid, s, d, strict=True))}
    parts_lon: list[np.ndarray] = []
    parts_lat: list[np.ndarray] = []
    counts = np.empty(net.n_links, np.int64)
    found = 0
    for i, key in enumerate(zip(net.link_osmid.tolist(), net.src.tolist(), net.dst.tolist(), strict=True)):
        k = index.get(key)
        a, b = key[1], key[2]
        if k is None:
            lo = np.array([net.lon[a], net.lon[b]])
            la = np.array([net.lat[a], net.lat[b]])
        else:
            found += 1
            lo = shapes.lon[shapes.indptr[k] : shapes.indptr[k + 1]].copy()
            la = shapes.lat[shapes.indptr[k] : shapes.indptr[k + 1]].copy()
            lo[0], la[0], lo[-1], la[-1] = net.lon[a], net.lat[a], net.lon[b], net.lat[b]
        parts_lon.append(lo)
        parts_lat.append(la)
        counts[i] = lo.size
    if found == 0:
        return None
    ptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return ptr, np.concatenate(parts_lon), np.concatenate(parts_lat)
