"""From parsed OSM-style nodes and edges to the :class:`~city_models.network.Network`
record (the conversions listed in :mod:`city_models.osm`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, NamedTuple

import numpy as np

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
from city_models.signals import MIN_GREEN_S, webster_signal_plans
from city_models.validate import MAX_FREE_SPEED_KPH, MAX_LANES, MAX_LINK_M

#: accepted ``jam_density`` (veh/km per lane) and ``wave_speed`` (km/h) edge values
JAM_DENSITY_RANGE = (40.0, 400.0)
WAVE_SPEED_RANGE = (3.0, 80.0)
_INT64 = (-(2**63), 2**63 - 1)


def _utm_epsg(lon: np.ndarray, lat: np.ndarray) -> int:
    bad = (np.abs(lon) > 180.0) | (np.abs(lat) > 90.0)  # inf too; missing (NaN) coordinates are left to nanmean
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise CityError(
            f"{int(bad.sum())} node(s) have coordinates outside lon -180..180 / lat -90..90 "
            f"(the first: lon={lon[i]!r}, lat={lat[i]!r})"
        )
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
    node_attrs: list[dict[str, Any]] | None,
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
            if g is not None and not 0.0 <= g <= c:
                raise CityError(f"{where}: attribute '{attr}' is {g:g} s, outside its node's cycle 0 .. {c:g} s.")
        gs[li], ge[li] = g0, g1
        known[li] = True
    return cycle, offset, gs, ge, known


class _EdgeRow(NamedTuple):
    """One edge's values as :func:`_build_network` stores them."""

    length: float
    lanes: float
    vf: float
    cap: float
    osmid: int
    name: str
    kind: str
    priority: int
    jam_per_lane: float
    wave: float
    greens: tuple[float | None, float | None] | None


def _edge_lanes(d: dict[str, Any], kind: str, two_way: bool, where: str, filled: dict[str, list[str]]) -> float:
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
    return nl


def _edge_speed_kph(d: dict[str, Any], kind: str, where: str, filled: dict[str, list[str]]) -> float | None:
    kph: float | None = None
    attr = "speed_kph"
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
    return default_speed_kph(kind) if kph is None else kph


def _edge_row(d: dict[str, Any], two_way: bool, where_nodes: str, filled: dict[str, list[str]]) -> _EdgeRow:
    """An edge's attributes read, checked and filled (a CityError names the edge)."""
    kind = first_value(d.get("highway"))
    kind = "" if kind is None else str(kind)
    oid = first_value(d.get("osmid"))
    try:
        oid = int(oid)
    except (TypeError, ValueError, OverflowError):
        oid = -1
    where = where_nodes + (f" (way {oid})" if oid >= 0 else "")
    if not _INT64[0] <= oid <= _INT64[1]:
        raise CityError(f"{where}: attribute 'osmid' is outside the 64-bit integer range.")
    nl = _edge_lanes(d, kind, two_way, where, filled)
    kph = _edge_speed_kph(d, kind, where, filled)
    c = _positive(d.get("capacity"))
    if c is None and _given(d.get("capacity")):
        filled["capacity"].append(f"{where} ({d.get('capacity')!r})")
    try:
        le = float(first_value(d.get("length")))
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
    return _EdgeRow(
        length=le,
        lanes=nl,
        vf=np.nan if kph is None else kph / 3.6,
        cap=np.nan if c is None else c,
        osmid=oid,
        name="" if nm is None or (isinstance(nm, float) and math.isnan(nm)) else str(nm),
        kind=kind,
        priority=default_priority(d.get("highway")) if p is None else int(p),
        jam_per_lane=DEFAULT_JAM_DENSITY_PER_LANE if kj is None else kj / 1000.0,
        wave=0.0 if w is None else w / 3.6,
        greens=(g0, g1) if g0 is not None or g1 is not None else None,
    )


def _filled_notes(filled: dict[str, list[str]], notes: list[str]) -> None:
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


def _signal_plans(
    x: np.ndarray,
    y: np.ndarray,
    src_a: np.ndarray,
    dst_a: np.ndarray,
    cap_a: np.ndarray,
    *,
    is_signal: np.ndarray,
    source: tuple[np.ndarray, ...],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Signal plans: the source's where it has them, else Webster's from the approaches."""
    src_cycle, src_offset, src_gs, src_ge, known = source
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
    return cycle, offset, gs, ge


def _build_network(
    *,
    node_osmid: np.ndarray,
    lon: np.ndarray,
    lat: np.ndarray,
    x: np.ndarray | None,
    y: np.ndarray | None,
    is_signal: np.ndarray,
    edges: Iterable[tuple[int, int, dict[str, Any], bool]],
    node_attrs: list[dict[str, Any]] | None = None,
    notes: list[str] | None = None,
) -> Network:
    """Network from node arrays and ``(u_index, v_index, attrs, two_way_road)`` edges.

    Implausible values raise :class:`CityError` naming the edge; values read as
    missing and filled from the road type are counted in ``notes``.
    """
    if x is None or y is None:
        x, y = _project(lon, lat)
    src: list[int] = []
    dst: list[int] = []
    rows: list[_EdgeRow] = []
    greens: dict[int, tuple[float | None, float | None]] = {}
    filled: dict[str, list[str]] = {"speed": [], "lanes": [], "capacity": []}
    for u, v, d, two_way in edges:
        row = _edge_row(d, two_way, f"edge {node_osmid[u]} -> {node_osmid[v]}", filled)
        if row.greens is not None:
            greens[len(src)] = row.greens
        src.append(u)
        dst.append(v)
        rows.append(row)
    if notes is not None:
        _filled_notes(filled, notes)

    def col(name: str, dtype: Any) -> np.ndarray:
        return np.asarray([getattr(r, name) for r in rows], dtype=dtype)

    src_a = np.asarray(src, dtype=np.int64)
    dst_a = np.asarray(dst, dtype=np.int64)
    lanes_a = col("lanes", np.float64)
    vf_a = col("vf", np.float64)
    jam = col("jam_per_lane", np.float64) * lanes_a
    wave_a = col("wave", np.float64)
    cap_a = col("cap", np.float64)
    missing = np.isnan(cap_a)
    cap_a[missing] = default_capacity_vph(lanes_a[missing], vf_a[missing], jam[missing], wave_a[missing])
    source = _source_plans(node_attrs, node_osmid, greens, src_a, dst_a)
    cycle, offset, gs, ge = _signal_plans(x, y, src_a, dst_a, cap_a, is_signal=is_signal, source=source)
    return make_network(
        x=x,
        y=y,
        lon=lon,
        lat=lat,
        node_osmid=node_osmid,
        src=src_a,
        dst=dst_a,
        length_m=col("length", np.float64),
        lanes=lanes_a,
        free_speed_mps=vf_a,
        capacity_vph=cap_a,
        jam_density_vpm=jam,
        wave_speed_mps=wave_a,
        priority=col("priority", np.int64),
        link_osmid=col("osmid", np.int64),
        link_name=[r.name for r in rows],
        link_kind=[r.kind for r in rows],
        signal_cycle_s=cycle,
        signal_offset_s=offset,
        green_start_s=gs,
        green_end_s=ge,
    )
