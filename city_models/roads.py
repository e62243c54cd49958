"""Road-kind defaults and parsers for OSM-style tag values.

The speed fallbacks follow osmnx's ``add_edge_speeds`` idea (a speed per
``highway`` type when ``maxspeed`` is missing or unparseable); the values are
typical urban European limits.  The synthetic generator's kinds (``local``,
``arterial``, ``ring``, ``bridge``, ``connector``) are in the same table so the
validator can fill missing speeds for any city.
"""

from __future__ import annotations

import ast
import math
import re
from typing import Any

__all__ = [
    "SPEED_KPH_BY_KIND",
    "LANES_BY_KIND",
    "default_speed_kph",
    "default_lanes",
    "PRIORITY_BY_KIND",
    "default_priority",
    "parse_speed_kph",
    "parse_lanes",
    "first_value",
    "tag_values",
]

#: free-flow speed (km/h) by road kind, used when a link has no usable speed
SPEED_KPH_BY_KIND: dict[str, float] = {
    "motorway": 100.0,
    "motorway_link": 60.0,
    "trunk": 80.0,
    "trunk_link": 50.0,
    "primary": 60.0,
    "primary_link": 40.0,
    "secondary": 50.0,
    "secondary_link": 40.0,
    "tertiary": 40.0,
    "tertiary_link": 30.0,
    "unclassified": 40.0,
    "residential": 30.0,
    "living_street": 20.0,
    "service": 20.0,
    "road": 40.0,
    "busway": 40.0,
    # synthetic generator kinds
    "local": 35.0,
    "arterial": 50.0,
    "ring": 75.0,
    "bridge": 50.0,
    "connector": 50.0,
}

#: lanes per direction by road kind, used when a link has no usable ``lanes``
LANES_BY_KIND: dict[str, float] = {
    "motorway": 2.0,
    "trunk": 2.0,
    "primary": 2.0,
    "arterial": 2.0,
    "ring": 2.0,
}

#: road rank by kind, the link attribute ``priority`` when the source gives none
#: (higher = major; 0 = unknown).  At an unsignalised junction the lower ranks
#: yield to the highest (see :mod:`kernels.traffic`).  Slip roads (``*_link``)
#: rank two classes below their road, so an on-ramp yields to its motorway.
PRIORITY_BY_KIND: dict[str, int] = {
    "motorway": 9,
    "trunk": 8,
    "primary": 7,
    "secondary": 6,
    "tertiary": 5,
    "unclassified": 4,
    "residential": 3,
    "road": 3,
    "busway": 3,
    "living_street": 2,
    "service": 1,
    "motorway_link": 7,
    "trunk_link": 6,
    "primary_link": 5,
    "secondary_link": 4,
    "tertiary_link": 3,
    # synthetic generator kinds (bridges take the rank of the road they carry)
    "ring": 8,
    "arterial": 7,
    "connector": 7,
    "local": 3,
}

_MPH = 1.609344
_NUM = re.compile(r"[-+]?\d+(?:[.,]\d+)?")


def first_value(value: Any) -> Any:
    """First element of a list-like tag value (osmnx merges ways into lists)."""
    value = _maybe_list(value)
    if isinstance(value, (list, tuple)):
        return value[0] if value else None
    return value


def _maybe_list(value: Any) -> Any:
    """Turn a list stored as a string (``"['2', '3']"``, GraphML) back into a list."""
    if isinstance(value, str):
        s = value.strip()
        if s.startswith("[") and s.endswith("]"):
            try:
                parsed = ast.literal_eval(s)
            except (ValueError, SyntaxError):
                return value
            if isinstance(parsed, (list, tuple)):
                return list(parsed)
    return value


def tag_values(value: Any) -> list[Any]:
    """All values of a tag: lists (also stored as strings) and ``"a;b"`` are split."""
    value = _maybe_list(value)
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        out: list[Any] = []
        for v in value:
            out.extend(tag_values(v))
        return out
    if isinstance(value, str) and (";" in value or "|" in value):
        return [v for v in re.split(r"[;|]", value) if v.strip()]
    return [value]


def _one_speed(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        v = float(value)
        return v if math.isfinite(v) and v > 0 else None
    if not isinstance(value, str):
        return None
    s = value.strip().lower()
    m = _NUM.search(s)
    if m is None:
        return None
    v = float(m.group(0).replace(",", "."))
    if "mph" in s:
        v *= _MPH
    elif "knot" in s:
        v *= 1.852
    return v if math.isfinite(v) and v > 0 else None


def parse_speed_kph(value: Any) -> float | None:
    """Parse a ``maxspeed``/``speed_kph`` value into km/h, or ``None``.

    Accepts numbers, ``"50"``, ``"50 mph"``, ``"30;50"`` and lists (the mean of
    the parseable values, as osmnx does).  Values such as ``"none"``,
    ``"signals"`` or ``"FI:urban"`` give ``None`` (use the kind's default).
    """
    speeds = [s for s in (_one_speed(v) for v in tag_values(value)) if s is not None]
    if not speeds:
        return None
    return float(sum(speeds) / len(speeds))


def parse_lanes(value: Any) -> float | None:
    """Parse a ``lanes`` value (number, ``"2"``, ``"2;3"``, list): the max, or ``None``."""
    best: float | None = None
    for v in tag_values(value):
        if isinstance(v, bool):
            continue
        if isinstance(v, (int, float)):
            x = float(v)
        elif isinstance(v, str):
            m = _NUM.search(v)
            if m is None:
                continue
            x = float(m.group(0).replace(",", "."))
        else:
            continue
        if math.isfinite(x) and x > 0:
            best = x if best is None else max(best, x)
    return best


def _base_kind(kind: Any) -> str:
    k = first_value(kind)
    return str(k) if k is not None else ""


def default_speed_kph(kind: Any) -> float | None:
    """Default free speed (km/h) for a road kind, or ``None`` when the kind is unknown."""
    return SPEED_KPH_BY_KIND.get(_base_kind(kind))


def default_lanes(kind: Any) -> float:
    """Default lanes per direction for a road kind (1 when unknown)."""
    return LANES_BY_KIND.get(_base_kind(kind), 1.0)


def default_priority(kind: Any) -> int:
    """Road rank of a road kind (:data:`PRIORITY_BY_KIND`), 0 when the kind is unknown.
    Of a list of kinds (osmnx merges ways), the highest.
    """
    ranks = [PRIORITY_BY_KIND.get(str(k).strip(), 0) for k in tag_values(kind)]
    return max(ranks, default=0)
