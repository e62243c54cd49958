"""SUMO networks in (``city: {sumo: FILE.net.xml}``): the streaming reader and the Network built from it.

See :mod:`city_models.sumo` for what is read and how (the public names are re-exported there).
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from city_models.city import City
from city_models.demand import DemandError
from city_models.errors import CityError
from city_models.network import MAX_PRIORITY, Network, make_network

__all__ = [
    "SumoNet",
    "sumo_id",
    "read_sumo_net",
    "sumo_network",
    "city_from_sumo",
    "MAX_NET_ELEMENTS",
    "MAX_NET_BYTES",
    "SUMO_BUILTINS",
    "sumo_file",
]

log = logging.getLogger(__name__)

#: at most this many elements in a network file (junctions, edges, lanes, connections, phases...)
#: or a demand file
MAX_NET_ELEMENTS = 20_000_000
#: the largest SUMO network file read (bytes)
MAX_NET_BYTES = 4 << 30
#: at most this many lanes on one edge, phases in one program, edges in one route
_MAX_LANES = 64
_MAX_PHASES = 1000
_MAX_ROUTE_EDGES = 100_000
#: junction types whose approaches all have the same rank in SUMO
_EQUAL_RANK = frozenset({"right_before_left", "left_before_right", "allway_stop", "zipper"})
_NOT_ROADS = frozenset({"internal", "crossing", "walkingarea", "connector"})
_SIGNAL_TYPES = frozenset({"traffic_light", "traffic_light_unregulated", "traffic_light_right_on_red"})
_DAY_S = 86400.0
#: networks (and demand) that ship inside the ``eclipse-sumo`` wheel, by name:
#: ``city: {sumo: drt}``, ``demand: {sumo: bs3d}``
_BUILTIN_FILES: dict[str, dict[str, str]] = {
    "bs3d": {"net": "tools/game/bs3d/bs.net.xml", "demand": "tools/game/bs3d/bs3d.rou.xml"},
    "drt": {"net": "tools/game/DRT/osm.net.xml"},
}
SUMO_BUILTINS: tuple[str, ...] = tuple(sorted(_BUILTIN_FILES))


def sumo_file(value: str | os.PathLike[str], kind: str = "net") -> Path:
    """The file a ``sumo:`` value names: a built-in name (:data:`SUMO_BUILTINS`, from the
    ``eclipse-sumo`` wheel) or the path itself.  ``kind`` is ``"net"`` or ``"demand"``.
    """
    text = os.fspath(value)
    key = text.strip().lower()
    if key in _BUILTIN_FILES:
        rel = _BUILTIN_FILES[key].get(kind)
        if rel is None:
            raise (CityError if kind == "net" else DemandError)(
                f"the built-in SUMO scenario {key!r} has no {kind} file; give a file path."
            )
        try:
            import sumo  # the eclipse-sumo wheel
        except ImportError:
            raise (CityError if kind == "net" else DemandError)(
                f"the built-in SUMO scenario {key!r} needs the eclipse-sumo wheel (pip install eclipse-sumo)."
            ) from None
        return Path(os.path.dirname(sumo.__file__)) / rel
    return Path(text)


def sumo_id(text: str) -> int:
    """The 64-bit source id of a SUMO junction or edge id.

    An all-digit id below 2**62 is its own number; any other id (``cluster_1_2``,
    ``-4314834#2``) maps to a stable hash in ``[2**62, 2**63)``, so the two never clash.
    """
    if text.isdigit() and text.isascii() and len(text) < 19 and int(text) < (1 << 62):
        return int(text)
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    return (1 << 62) | (int.from_bytes(digest, "big") & ((1 << 62) - 1))


@dataclass
class SumoNet:
    """What the twin reads from a ``.net.xml`` (road edges only)."""

    path: Path
    #: junction id -> (x, y, type)
    junctions: dict[str, tuple[float, float, str]] = field(default_factory=dict)
    #: per road edge: id, from, to, priority, type, name
    edge_id: list[str] = field(default_factory=list)
    edge_from: list[str] = field(default_factory=list)
    edge_to: list[str] = field(default_factory=list)
    edge_priority: list[int] = field(default_factory=list)
    edge_type: list[str] = field(default_factory=list)
    edge_name: list[str] = field(default_factory=list)
    #: per road edge: its car lanes' (speed, length) and the first car lane's shape
    lane_speed: list[list[float]] = field(default_factory=list)
    lane_length: list[list[float]] = field(default_factory=list)
    edge_shape: list[np.ndarray] = field(default_factory=list)
    #: every non-internal edge in the file (roads or not): id -> (from, to, is_road)
    all_edges: dict[str, tuple[str, str, bool]] = field(default_factory=dict)
    #: tlLogic id -> (offset, [(duration, state), ...]) (first program of each)
    tl_programs: dict[str, tuple[float, list[tuple[float, str]]]] = field(default_factory=dict)
    #: (from edge, tl id, link index) of every signal-controlled connection
    tl_links: list[tuple[str, str, int]] = field(default_factory=list)
    net_offset: tuple[float, float] = (0.0, 0.0)
    proj: str = ""


# --------------------------------------------------------------------------- parsing


def _iterparse(path: Path, what: str, error: type[ValueError]) -> Iterator[tuple[str, Any]]:
    """``(event, element)`` pairs of a file, with no DTD, entities or external resources."""
    import defusedxml.ElementTree as DET
    from defusedxml import DefusedXmlException

    if not path.is_file():
        raise error(f"{what} '{path}' does not exist or is not a file.")
    if path.stat().st_size > MAX_NET_BYTES:
        raise error(f"{what} '{path}' is larger than {MAX_NET_BYTES >> 30} GiB.")
    try:
        yield from DET.iterparse(str(path), events=("start", "end"), forbid_dtd=True)
    except DET.ParseError as exc:
        line, col = getattr(exc, "position", (None, None))
        at = f" at line {line}, column {col}" if line else ""
        raise error(f"{what} '{path}' is not well-formed XML{at}: {exc}") from None
    except DefusedXmlException as exc:
        raise error(
            f"{what} '{path}': refused a DTD or entity declaration ({type(exc).__name__}); SUMO files need neither."
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{what} '{path}' could not be read: {exc}") from None


def _float(
    el: Any,
    attr: str,
    path: Path,
    what: str,
    *,
    default: float | None = None,
    lo: float = -math.inf,
    hi: float = math.inf,
    error: type[ValueError] = CityError,
) -> float:
    raw = el.get(attr)
    if raw is None:
        if default is None:
            raise error(f"{what} '{path}': <{el.tag} id={el.get('id')!r}> has no '{attr}'.")
        return default
    try:
        v = float(raw)
    except ValueError:
        v = math.nan
    if not (math.isfinite(v) and lo <= v <= hi):
        raise error(
            f"{what} '{path}': <{el.tag} id={el.get('id')!r}> has {attr}={raw!r}, "
            f"expected a number in {lo:g} .. {hi:g}."
        )
    return v


def _allows_cars(lane: Any) -> bool:
    allow, disallow = lane.get("allow"), lane.get("disallow")
    if allow is not None:
        classes = allow.split()
        return "passenger" in classes or "all" in classes
    if disallow is not None:
        classes = disallow.split()
        return "passenger" not in classes and "all" not in classes
    return True


def _shape(text: str | None) -> np.ndarray:
    if not text:
        return np.zeros((0, 2))
    try:
        pts = [tuple(float(c) for c in p.split(",")[:2]) for p in text.split()]
        return np.asarray(pts, dtype=np.float64).reshape(-1, 2)
    except ValueError:
        return np.zeros((0, 2))


def read_sumo_net(path: str | os.PathLike[str]) -> SumoNet:
    """Read the road edges, junctions and traffic-light programs of a SUMO network.

    Raises
    ------
    CityError
        Naming the file and the element: not XML, a missing or non-numeric lane
        speed/length, an edge whose junction is not in the file, more than
        :data:`MAX_NET_ELEMENTS` elements, or no road edge at all.
    """
    path = Path(path)
    what = "SUMO network"
    net = SumoNet(path=path)
    count = 0
    tl_current: tuple[str, float, list[tuple[float, str]]] | None = None
    seen_root = False
    for event, el in _iterparse(path, what, CityError):
        tag = el.tag
        if event == "start":
            if not seen_root:
                seen_root = True
                _check_root(tag, path, what)
            if tag == "tlLogic":
                tl_current = (el.get("id", ""), _float(el, "offset", path, what, default=0.0, lo=-1e7, hi=1e7), [])
            continue
        count += 1
        if count > MAX_NET_ELEMENTS:
            raise CityError(f"{what} '{path}' has more than {MAX_NET_ELEMENTS:,} elements.")
        if tag == "location":
            _read_location(net, el, path, what)
        elif tag == "junction":
            _read_junction(net, el, path, what)
            el.clear()
        elif tag == "edge":
            _read_edge(net, el, path, what)
            el.clear()
        elif tag == "phase" and tl_current is not None:
            _read_phase(tl_current, el, path, what)
        elif tag == "tlLogic":
            if tl_current is not None and tl_current[0] not in net.tl_programs:
                net.tl_programs[tl_current[0]] = (tl_current[1], tl_current[2])
            tl_current = None
            el.clear()
        elif tag == "connection":
            _read_connection(net, el, path, what)
            el.clear()
    _check_edges(net, path, what)
    return net


def _check_root(tag: str, path: Path, what: str) -> None:
    if tag != "net":
        raise CityError(f"{what} '{path}': the root element is <{tag}>, not <net>; is this a .net.xml file?")


def _read_phase(tl_current: tuple[str, float, list[tuple[float, str]]], el: Any, path: Path, what: str) -> None:
    if len(tl_current[2]) >= _MAX_PHASES:
        raise CityError(f"{what} '{path}': <tlLogic id={tl_current[0]!r}> has more than {_MAX_PHASES} phases.")
    dur = _float(el, "duration", path, what, lo=0.0, hi=86400.0)
    tl_current[2].append((dur, el.get("state", "")))


def _check_edges(net: SumoNet, path: Path, what: str) -> None:
    """At least one road edge, and every edge's junctions in the file."""
    if not net.edge_id:
        raise CityError(f"{what} '{path}' has no edge that admits passenger cars (no road to drive on).")
    for i, eid in enumerate(net.edge_id):
        for end in (net.edge_from[i], net.edge_to[i]):
            if end not in net.junctions:
                raise CityError(f"{what} '{path}': <edge id={eid!r}> names junction {end!r}, which is not in the file.")


def _read_location(net: SumoNet, el: Any, path: Path, what: str) -> None:
    off = (el.get("netOffset") or "0,0").split(",")
    try:
        net.net_offset = (float(off[0]), float(off[1]))
    except (ValueError, IndexError):
        raise CityError(f"{what} '{path}': <location> has netOffset={el.get('netOffset')!r}, expected 'x,y'.") from None
    net.proj = el.get("projParameter", "") or ""


def _read_junction(net: SumoNet, el: Any, path: Path, what: str) -> None:
    jid = el.get("id")
    if jid is None:
        raise CityError(f"{what} '{path}': a <junction> has no 'id'.")
    jtype = el.get("type", "")
    if jtype != "internal":
        x = _float(el, "x", path, what, lo=-1e9, hi=1e9)
        y = _float(el, "y", path, what, lo=-1e9, hi=1e9)
        net.junctions[jid] = (x, y, jtype)


def _read_connection(net: SumoNet, el: Any, path: Path, what: str) -> None:
    tl = el.get("tl")
    if tl is None or el.get("linkIndex") is None:
        return
    try:
        k = int(el.get("linkIndex"))
    except ValueError:
        raise CityError(
            f"{what} '{path}': <connection from={el.get('from')!r} tl={tl!r}> has "
            f"linkIndex={el.get('linkIndex')!r}, expected an integer."
        ) from None
    if k >= 100_000:
        raise CityError(
            f"{what} '{path}': <connection from={el.get('from')!r} tl={tl!r}> has linkIndex={k}, above 99999."
        )
    if k >= 0:  # -1: a connection through the junction that its signal does not control
        net.tl_links.append((el.get("from", ""), tl, k))


def _read_edge(net: SumoNet, el: Any, path: Path, what: str) -> None:
    eid = el.get("id")
    if eid is None:
        raise CityError(f"{what} '{path}': an <edge> has no 'id'.")
    func = el.get("function", "normal")
    if func in _NOT_ROADS:
        return
    src, dst = el.get("from"), el.get("to")
    if src is None or dst is None:
        raise CityError(f"{what} '{path}': <edge id={eid!r}> has no 'from' or 'to' junction.")
    lanes = el.findall("lane")
    if len(lanes) > _MAX_LANES:
        raise CityError(f"{what} '{path}': <edge id={eid!r}> has {len(lanes)} lanes, more than {_MAX_LANES}.")
    cars = [ln for ln in lanes if _allows_cars(ln)]
    net.all_edges[eid] = (src, dst, bool(cars))
    if not cars:
        return
    speeds, lengths = [], []
    for ln in cars:
        speeds.append(_float(ln, "speed", path, what, lo=0.0, hi=150.0))
        lengths.append(_float(ln, "length", path, what, lo=0.0, hi=1e6))
    try:
        prio = int(el.get("priority", "0"))
    except ValueError:
        raise CityError(
            f"{what} '{path}': <edge id={eid!r}> has priority={el.get('priority')!r}, expected an integer."
        ) from None
    if not -1_000_000 <= prio <= 1_000_000:
        raise CityError(f"{what} '{path}': <edge id={eid!r}> has priority={prio}, outside -1000000 .. 1000000.")
    net.edge_id.append(eid)
    net.edge_from.append(src)
    net.edge_to.append(dst)
    net.edge_priority.append(prio)
    net.edge_type.append(el.get("type", "") or "")
    net.edge_name.append(el.get("name", "") or "")
    net.lane_speed.append(speeds)
    net.lane_length.append(lengths)
    net.edge_shape.append(_shape(el.get("shape") or cars[0].get("shape")))


# --------------------------------------------------------------------------- network


def _green_window(states: list[str], durations: np.ndarray, index: list[int]) -> tuple[float, float] | None:
    """Start and end (s within the cycle) of the longest cyclic run of phases in which
    any of ``index`` shows green; None when it never does.
    """
    green = np.array([any(k < len(s) and s[k] in "Gg" for k in index) for s in states], bool)
    if not green.any():
        return None
    starts = np.concatenate([[0.0], np.cumsum(durations)[:-1]])
    cycle = float(durations.sum())
    if green.all():
        return 0.0, cycle
    n = len(states)
    best = (-1.0, 0.0, 0.0)
    first_red = int(np.flatnonzero(~green)[0])
    i = first_red + 1
    while i < first_red + 1 + n:  # walk the cycle once, starting after a red phase
        if green[i % n]:
            j, length = i, 0.0
            while green[j % n] and j < first_red + 1 + n:
                length += float(durations[j % n])
                j += 1
            if length > best[0]:
                best = (length, float(starts[i % n]), float((starts[i % n] + length) % cycle))
            i = j
        else:
            i += 1
    if best[0] <= 0.0:
        return None
    return best[1], best[2]


def _lonlat(net: SumoNet, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if not net.proj or net.proj.strip() == "!":
        return np.full(x.size, np.nan), np.full(y.size, np.nan)
    try:
        from pyproj import Proj

        proj = Proj(net.proj)
        lon, lat = proj(x - net.net_offset[0], y - net.net_offset[1], inverse=True)
        return np.asarray(lon, np.float64), np.asarray(lat, np.float64)
    except Exception as exc:  # noqa: BLE001 - an unreadable projection only loses lon/lat
        log.warning(
            "SUMO network %s: projection %r not understood (%s); longitude/latitude left unknown",
            net.path,
            net.proj,
            exc,
        )
        return np.full(x.size, np.nan), np.full(y.size, np.nan)


def sumo_network(net: SumoNet) -> tuple[Network, list[str]]:
    """The (unvalidated) :class:`Network` of a read SUMO network and notes on what was approximated."""
    notes: list[str] = []
    used = sorted(set(net.edge_from) | set(net.edge_to))
    index = {j: i for i, j in enumerate(used)}
    x = np.array([net.junctions[j][0] for j in used], np.float64)
    y = np.array([net.junctions[j][1] for j in used], np.float64)
    jtype = [net.junctions[j][2] for j in used]
    src = np.array([index[j] for j in net.edge_from], np.int32)
    dst = np.array([index[j] for j in net.edge_to], np.int32)
    m = src.size
    lanes = np.array([len(s) for s in net.lane_speed], np.float64)
    speed = np.array([max(s) for s in net.lane_speed], np.float64)
    length = np.array([float(np.mean(v)) for v in net.lane_length], np.float64)
    prio_raw = np.array(net.edge_priority, np.int64)
    prio = np.clip(prio_raw - prio_raw.min() + 1, 1, MAX_PRIORITY)
    equal = np.array([jtype[d] in _EQUAL_RANK for d in dst], bool)
    prio[equal] = 1
    # traffic lights
    cycle = np.zeros(x.size)
    offset = np.zeros(x.size)
    gs = np.zeros(m)
    ge = np.zeros(m)
    edge_index = {e: i for i, e in enumerate(net.edge_id)}
    by_edge: dict[int, tuple[str, list[int]]] = {}
    for e, tl, k in net.tl_links:
        li = edge_index.get(e)
        if li is None or tl not in net.tl_programs:
            continue
        entry = by_edge.setdefault(li, (tl, []))
        if entry[0] == tl:
            entry[1].append(k)
    never_green = 0
    for li, (tl, ks) in by_edge.items():
        off, phases = net.tl_programs[tl]
        dur = np.array([p[0] for p in phases], np.float64)
        c = float(dur.sum())
        if c <= 0:
            continue
        node = int(dst[li])
        window = _green_window([p[1] for p in phases], dur, ks)
        if window is None:
            never_green += 1
            continue
        cycle[node] = c
        offset[node] = off % c
        gs[li], ge[li] = window
        if gs[li] == ge[li]:  # green all cycle: not signal controlled
            gs[li] = ge[li] = 0.0
    if never_green:
        notes.append(f"{never_green} signal-controlled edges never get green in their program; they run uncontrolled.")
    n_sig = int((cycle > 0).sum())
    if n_sig:
        notes.append(
            f"{n_sig} junctions run SUMO's fixed-time signal programs as one green window per approach "
            "(yellow as red, the longest green of each approach)."
        )
    lon, lat = _lonlat(net, x, y)
    network = make_network(
        x=x,
        y=y,
        lon=lon,
        lat=lat,
        src=src,
        dst=dst,
        length_m=length,
        lanes=lanes,
        free_speed_mps=speed,
        priority=prio,
        node_osmid=np.array([sumo_id(j) for j in used], np.int64),
        link_osmid=np.array([sumo_id(e) for e in net.edge_id], np.int64),
        link_name=net.edge_name,
        link_kind=net.edge_type,
        signal_cycle_s=cycle,
        signal_offset_s=offset,
        green_start_s=gs,
        green_end_s=ge,
    )
    return network, notes


def city_from_sumo(path: str | os.PathLike[str]) -> City:
    """A city (unvalidated; :func:`city_models.load_city` validates it) from a SUMO ``.net.xml``.

    Zones come from a grid over the network (:func:`city_models.osm.grid_zones`).
    """
    from city_models.osm import grid_zones

    net = read_sumo_net(path)
    network, notes = sumo_network(net)
    name = Path(path).name
    for suffix in (".net.xml", ".xml"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return City(name=name or "sumo", network=network, zones=grid_zones(network.x, network.y), notes=tuple(notes))


@lru_cache(maxsize=4)
def _cached_net(path: str, size: int, mtime_ns: int) -> SumoNet:
    return read_sumo_net(path)
