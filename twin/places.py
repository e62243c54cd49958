"""Finding links, nodes and zones from what people write: ids, road names, named places, lon/lat.

Every function raises :class:`~basics.errors.InputError` naming the entry
(``where``) and, for an unknown name, the closest known names.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Sequence

import numpy as np

from basics.errors import InputError
from city_models import City, lookup_nodes

__all__ = ["resolve_links", "resolve_nodes", "resolve_zones", "nearest_node", "nearest_link", "close_matches"]


def close_matches(name: str, known, n: int = 5) -> str:
    """``"; did you mean 'A', 'B'?"`` (or a sample of the known names)."""
    known = sorted({str(k) for k in known})
    near = difflib.get_close_matches(name, known, n=n, cutoff=0.5)
    if not near:
        near = [k for k in known if name.lower() in k.lower()][:n]
    if near:
        return "; did you mean " + ", ".join(repr(k) for k in near) + "?"
    sample = ", ".join(repr(k) for k in known[:8])
    return f"; known names include {sample}" + (" …" if len(known) > 8 else "") if known else ""


def _xy(city: City, lonlat: Sequence[float], where: str) -> tuple[float, float]:
    """A lon/lat pair in the network's metric frame."""
    net = city.network
    if len(lonlat) != 2 or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in lonlat):
        raise InputError(f"{where}: a location is [lon, lat], got {list(lonlat)!r}")
    if net.lon is None or not np.isfinite(net.lon).any():
        raise InputError(f"{where}: this city has no geographic coordinates; use node or link ids")
    lon, lat = float(lonlat[0]), float(lonlat[1])
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise InputError(f"{where}: [{lon}, {lat}] is not a [lon, lat] pair")
    # local fit of x/y against lon/lat (the network's own projection, whatever it is)
    i = int(np.argmin((net.lon - lon) ** 2 + (net.lat - lat) ** 2))
    m_lat = 111_320.0
    m_lon = 111_320.0 * math.cos(math.radians(lat))
    return float(net.x[i] + (lon - net.lon[i]) * m_lon), float(net.y[i] + (lat - net.lat[i]) * m_lat)


def nearest_node(city: City, lonlat: Sequence[float], *, where: str, max_m: float = 500.0) -> tuple[int, float]:
    """The node nearest a [lon, lat] point and its distance in metres."""
    x, y = _xy(city, lonlat, where)
    net = city.network
    d = np.hypot(net.x - x, net.y - y)
    i = int(np.argmin(d))
    if d[i] > max_m:
        raise InputError(
            f"{where}: [{lonlat[0]}, {lonlat[1]}] is {d[i]:.0f} m from the nearest node "
            f"(more than {max_m:.0f} m): is it in this city?"
        )
    return i, float(d[i])


def nearest_link(city: City, lonlat: Sequence[float], *, where: str, max_m: float = 500.0) -> tuple[np.ndarray, float]:
    """The link nearest a point (with its opposite direction, if any) and the distance."""
    x, y = _xy(city, lonlat, where)
    net = city.network
    x0, y0, x1, y1 = net.x[net.src], net.y[net.src], net.x[net.dst], net.y[net.dst]
    dx, dy = x1 - x0, y1 - y0
    ll = np.maximum(dx * dx + dy * dy, 1e-12)
    t = np.clip(((x - x0) * dx + (y - y0) * dy) / ll, 0.0, 1.0)
    d = np.hypot(x0 + t * dx - x, y0 + t * dy - y)
    i = int(np.argmin(d))
    if d[i] > max_m:
        raise InputError(
            f"{where}: [{lonlat[0]}, {lonlat[1]}] is {d[i]:.0f} m from the nearest road "
            f"(more than {max_m:.0f} m): is it in this city?"
        )
    both = np.flatnonzero((net.src == net.dst[i]) & (net.dst == net.src[i]))
    return np.unique(np.concatenate([[i], both])).astype(np.int64), float(d[i])


def resolve_links(city: City, *, links=None, road=None, place=None, near=None, where: str) -> np.ndarray:
    """Link indices from link ids (source ids), a road name, a named place or a [lon, lat] point.

    Several selectors add up.  Raises if none is given or a name is unknown.
    """
    net = city.network
    out: list[np.ndarray] = []
    if links is not None:
        ids = np.atleast_1d(np.asarray(links, np.int64))
        for lid in ids:
            hit = np.flatnonzero(net.link_osmid == lid)
            if hit.size == 0:
                raise InputError(
                    f"{where}: no link with id {int(lid)} in {city.name} "
                    f"(ids are the network's link ids, e.g. the 'link' coordinate of results.nc)"
                )
            out.append(hit)
    for name in [road] if isinstance(road, str) else list(road or []):
        if name in city.places and np.asarray(city.places[name]).size:
            out.append(np.asarray(city.places[name], np.int64))
            continue
        hit = np.flatnonzero(net.link_name == name)
        if hit.size == 0:
            raise InputError(
                f"{where}: no road named {name!r} in {city.name}"
                + close_matches(name, list(np.unique(net.link_name)) + list(city.places))
            )
        out.append(hit)
    for name in [place] if isinstance(place, str) else list(place or []):
        if name not in city.places:
            raise InputError(f"{where}: no place named {name!r} in {city.name}" + close_matches(name, city.places))
        out.append(np.asarray(city.places[name], np.int64))
    if near is not None:
        out.append(nearest_link(city, near, where=where)[0])
    if not out:
        raise InputError(f"{where}: say which links: give 'links' (ids), 'road' (a name), 'place' or 'near' [lon, lat]")
    return np.unique(np.concatenate(out)).astype(np.int64)


def resolve_nodes(city: City, *, nodes=None, near=None, road=None, where: str) -> np.ndarray:
    """Node indices from node ids (source ids), a [lon, lat] point, or the nodes along a road."""
    net = city.network
    out: list[np.ndarray] = []
    if nodes is not None:
        for nid in np.atleast_1d(np.asarray(nodes, np.int64)):
            hit = lookup_nodes(net, [nid])  # also ids validation merged into another node
            hit = hit[hit >= 0]
            if hit.size == 0:
                raise InputError(f"{where}: no node with id {int(nid)} in {city.name}")
            out.append(hit)
    if near is not None:
        out.append(np.array([nearest_node(city, near, where=where)[0]]))
    if road is not None:
        idx = resolve_links(city, road=road, where=where)
        out.append(np.unique(np.concatenate([net.src[idx], net.dst[idx]])))
    if not out:
        raise InputError(f"{where}: say which nodes: give 'nodes' (ids), 'near' [lon, lat] or 'road'")
    return np.unique(np.concatenate(out)).astype(np.int64)


def resolve_zones(city: City, zones, *, where: str) -> np.ndarray:
    """Zone indices from zone names or indices."""
    z = city.zones
    out = []
    for item in [zones] if isinstance(zones, (str, int)) else list(zones or []):
        if isinstance(item, str):
            if item not in z.name:
                raise InputError(f"{where}: no zone named {item!r}" + close_matches(item, z.name))
            out.append(z.name.index(item))
        else:
            if not 0 <= int(item) < z.n_zones:
                raise InputError(f"{where}: zone index {item} is not in 0..{z.n_zones - 1}")
            out.append(int(item))
    if not out:
        raise InputError(f"{where}: give at least one zone (names or indices)")
    return np.unique(np.asarray(out, np.int64))
