"""Map geometry for the operations picture: zone areas, road labels, a link's details.

:func:`zone_hulls` gives each zone's area as the convex hull of its nodes (the city
has no zone polygons); :func:`road_labels` picks where named roads and bridges are
labelled (the page draws those that fit at the current zoom without overlapping);
:func:`link_details` is what the page shows when a link is hovered or clicked.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["convex_hull", "zone_hulls", "road_labels", "link_details", "MAX_LABELS"]

#: named roads labelled at most (the longest first)
MAX_LABELS = 400
#: candidate places per name (its longest links)
LABEL_PLACES = 3
_KIND_RANK = {"bridge": 0, "motorway": 1, "ring": 1, "trunk": 1, "primary": 2, "arterial": 2}


def convex_hull(x: np.ndarray, y: np.ndarray) -> list[list[float]]:
    """The convex hull of points (Andrew's monotone chain), counter-clockwise, rounded to 0.1 m."""
    pts = sorted(set(zip(np.round(x, 1).tolist(), np.round(y, 1).tolist(), strict=True)))
    if len(pts) <= 2:
        return [list(p) for p in pts]

    def cross(o: tuple, a: tuple, b: tuple) -> float:
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower: list[tuple] = []
    for p in pts:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    upper: list[tuple] = []
    for p in reversed(pts):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    return [list(p) for p in lower[:-1] + upper[:-1]]


def zone_hulls(net: Any, zones: Any) -> list[list[list[float]]]:
    """Each zone's area: the convex hull of its nodes (empty for a zone without nodes)."""
    nz = len(zones.name)
    node_zone = np.asarray(zones.node_zone, np.int64)
    order = np.argsort(node_zone, kind="stable")
    bounds = np.searchsorted(node_zone[order], np.arange(nz + 1))
    return [convex_hull(net.x[order[a:b]], net.y[order[a:b]]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def road_labels(net: Any) -> list[list[Any]]:
    """Named roads and bridges to label: ``[name, rank, [links]]``, most important first.

    ``rank`` 0 is a bridge, 1 a ring road or motorway, 2 an arterial, 3 any other;
    ``links`` are its longest links (the places a label may go).
    """
    names = np.asarray([str(s) for s in net.link_name], dtype=object)
    kinds = [str(k) for k in net.link_kind]
    length = np.asarray(net.length_m, np.float64)
    groups: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        if name and name != "None" and "Junction" not in name:
            groups.setdefault(name, []).append(i)
    out = []
    for name, links in groups.items():
        rank = min(_KIND_RANK.get(kinds[i], 3) for i in links)
        total = float(length[links].sum())
        best = sorted(links, key=lambda i: -length[i])[:LABEL_PLACES]
        out.append((rank, -total, name, best))
    out.sort()
    return [[name, rank, best] for rank, _, name, best in out[:MAX_LABELS]]


def _f(v: float, digits: int = 1) -> float | None:
    v = float(v)
    return round(v, digits) if math.isfinite(v) else None


def link_details(twin: Any, link: int) -> dict[str, Any]:
    """What the page shows for a link: name, kind, speed against free flow, v/c, changes.

    ``vc`` is the last recorded output interval's inflow over the link's capacity
    (``None`` before one is recorded).
    """
    net = twin.city.network
    tm = twin.traffic
    lk = tm.links
    tt = float(tm.measured_travel_times()[link])
    free_kmh = float(lk.length[link] / lk.free_tt[link] * 3.6)
    speed_kmh = float(lk.length[link] / tt * 3.6) if math.isfinite(tt) and tt > 0 else math.nan
    rec = twin.recorder
    vc = math.nan
    if len(rec.time) and float(net.capacity_vph[link]) > 0:
        interval = float(twin.scenario.outputs.interval)
        vc = float(rec.link["inflow"][-1][link]) * 3600.0 / interval / float(net.capacity_vph[link])
    ctl = twin.link_control
    changes = [ctl.active[h] for h in ctl.by_link.get(link, []) if h in ctl.active]
    return {
        "link": int(link),
        "name": str(net.link_name[link] or ""),
        "kind": str(net.link_kind[link]),
        "lanes": _f(net.lanes[link], 1),
        "length_m": _f(net.length_m[link], 0),
        "free_kmh": _f(free_kmh),
        "speed_kmh": _f(min(speed_kmh, free_kmh)),
        "vehicles": int(tm.state.n_in[link] - tm.state.n_out[link]),
        "vc": _f(vc, 2),
        "closed": bool(lk.is_open[link] == 0),
        "changes": [
            {
                "source": c.source[:200],
                "closed": bool(c.closed),
                "capacity_factor": _f(c.capacity_factor, 2),
                "speed_factor": _f(c.speed_factor, 2),
            }
            for c in changes
        ],
    }
