"""What an operations map draws over the roads: closures, lost lanes, evacuation zones, names.

Read only from a run's Dataset (``results.nc``):

- closed links (``link_closed``) in :data:`CLOSURE_COLOR`, dashed, over everything, never
  coloured as free-flowing; links with lanes or capacity lost (``link_capacity_share`` < 1)
  under a wide :data:`LANE_LOSS_COLOR` band;
- evacuation zones (``zone_evacuation_order_s``): the hull of the zone's nodes, hatched, named
  with the order time;
- names: bridges, the longest named roads, stations (new ones -- not among the city's
  facilities -- ringed and marked "new").

:func:`relative_speed` gives the value the speed map colours: speed as a share of free flow.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Polygon

from basics.clock import format_clock

__all__ = [
    "CLOSURE_COLOR",
    "LANE_LOSS_COLOR",
    "ZONE_COLOR",
    "relative_speed",
    "closed_at",
    "added_stations",
    "draw_operations",
    "zone_hull",
]

#: colour of a closed link on every report map (dashed, drawn over everything)
CLOSURE_COLOR = "#111111"
#: band under a link that lost lanes or capacity
LANE_LOSS_COLOR = "#2b8cbe"
#: fill of an evacuation zone
ZONE_COLOR = "#fdae61"
#: named roads labelled on a map (the longest first), besides every bridge
MAX_ROAD_LABELS = 6
#: bridges labelled on a map (the longest first)
MAX_BRIDGE_LABELS = 10


def closed_at(ds: Any, index: int | None) -> np.ndarray:
    """Per link, closed at the end of output interval ``index`` (all False when not recorded)."""
    n = ds.sizes["link"]
    if index is None or "link_closed" not in ds or ds["link_closed"].dims != ("time", "link"):
        return np.zeros(n, bool)
    return np.asarray(ds["link_closed"].values[index]) == 1


def capacity_share_at(ds: Any, index: int | None) -> np.ndarray:
    """Per link, capacity as a share of the network's at the end of interval ``index`` (1: unchanged)."""
    n = ds.sizes["link"]
    if index is None or "link_capacity_share" not in ds or ds["link_capacity_share"].dims != ("time", "link"):
        return np.ones(n)
    share = np.asarray(ds["link_capacity_share"].values[index], np.float64)
    return np.where(np.isfinite(share), share, 1.0)


def relative_speed(ds: Any, index: int) -> np.ndarray:
    """Speed in interval ``index`` as a share of free flow (%), NaN on closed links."""
    speed = np.asarray(ds["link_speed"].isel(time=index).values, np.float64)
    free = (
        np.asarray(ds["link_free_speed"].values, np.float64)
        if "link_free_speed" in ds
        else np.full(speed.shape, np.nan)
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(free > 0, 100.0 * speed / free, np.nan)
    rel[closed_at(ds, index)] = np.nan
    return rel


def _closures(ax: Any, segs: Any, widths: np.ndarray, ds: Any, index: int | None, handles: list) -> None:
    closed = closed_at(ds, index)
    lost = (capacity_share_at(ds, index) < 1.0 - 1e-6) & ~closed
    if lost.any():
        ax.add_collection(
            LineCollection(
                [segs[i] for i in np.flatnonzero(lost)],
                colors=LANE_LOSS_COLOR,
                linewidths=widths[lost] + 4.0,
                zorder=2.5,
            )
        )
        handles.append(Line2D([], [], color=LANE_LOSS_COLOR, lw=4, label=f"lanes/capacity lost ({int(lost.sum())})"))
    if closed.any():
        lc = LineCollection(
            [segs[i] for i in np.flatnonzero(closed)],
            colors=CLOSURE_COLOR,
            linewidths=widths[closed] + 1.2,
            linestyles=(0, (2.0, 1.2)),
            zorder=4.5,
        )
        lc.set_gid("closed-links")
        ax.add_collection(lc)
        handles.append(
            Line2D([], [], color=CLOSURE_COLOR, lw=2.5, ls=(0, (2, 1)), label=f"closed ({int(closed.sum())})")
        )


def zone_hull(ds: Any, zone: int) -> np.ndarray | None:
    """The convex hull (k, 2) of zone ``zone``'s nodes, or None with fewer than 3 nodes."""
    from scipy.spatial import ConvexHull, QhullError

    if "node_zone" not in ds or "node_x" not in ds:
        return None
    sel = np.asarray(ds["node_zone"].values) == zone
    pts = np.column_stack([np.asarray(ds["node_x"].values)[sel], np.asarray(ds["node_y"].values)[sel]])
    if pts.shape[0] < 3:
        return None
    try:
        hull = ConvexHull(pts)
    except QhullError:
        return None
    return pts[hull.vertices]


def _zones(ax: Any, ds: Any, start_clock_s: float, handles: list) -> None:
    if "zone_evacuation_order_s" not in ds:
        return
    order_s = np.asarray(ds["zone_evacuation_order_s"].values, np.float64)
    names = [str(v) for v in ds["zone_name"].values] if "zone_name" in ds else [str(z) for z in range(order_s.size)]
    n = 0
    for z in np.flatnonzero(np.isfinite(order_s)):
        hull = zone_hull(ds, int(z))
        if hull is None:
            continue
        ax.add_patch(
            Polygon(
                hull, closed=True, facecolor=ZONE_COLOR, alpha=0.25, edgecolor="#e66101", hatch="//", lw=1.2, zorder=0.5
            )
        )
        cx, cy = hull.mean(axis=0)
        ax.text(
            cx,
            cy,
            f"{names[z]}\nordered {format_clock(start_clock_s + order_s[z])}",
            fontsize=7,
            ha="center",
            va="center",
            color="#a63603",
            zorder=7,
            weight="bold",
        )
        n += 1
    if n:
        handles.append(
            Patch(facecolor=ZONE_COLOR, alpha=0.5, edgecolor="#e66101", hatch="//", label=f"evacuation zone ({n})")
        )


def _road_labels(ax: Any, ds: Any, segs: Any) -> None:
    if "link_name" not in ds:
        return
    names = np.asarray(ds["link_name"].values, dtype=str)
    kinds = np.asarray(ds["link_kind"].values, dtype=str) if "link_kind" in ds else np.full(names.shape, "")
    length = np.asarray(ds["link_length_m"].values, np.float64)
    mid = np.array([np.asarray(s).mean(axis=0) for s in segs])
    uniq, inv = np.unique(names, return_inverse=True)  # one pass over the links, however many names
    total = np.bincount(inv, weights=length, minlength=uniq.size)
    is_bridge = np.bincount(inv, weights=(kinds == "bridge").astype(float), minlength=uniq.size) > 0
    named = uniq != ""
    by_length = np.argsort(-total, kind="stable")
    bridges = [str(uniq[i]) for i in by_length if named[i] and is_bridge[i]][:MAX_BRIDGE_LABELS]
    roads = [str(uniq[i]) for i in by_length if named[i] and not is_bridge[i]][:MAX_ROAD_LABELS]
    for name in bridges + roads:
        idx = np.flatnonzero(inv == np.searchsorted(uniq, name))
        centre = mid[idx].mean(axis=0)
        at = idx[np.argmin(np.hypot(*(mid[idx] - centre).T))]  # the link nearest the road's middle
        ax.text(
            *mid[at],
            name,
            fontsize=7 if name in bridges else 6.5,
            ha="center",
            va="bottom",
            zorder=8,
            color="#08306b" if name in bridges else "#333333",
            weight="bold" if name in bridges else "normal",
            bbox={"facecolor": "white", "alpha": 0.7, "edgecolor": "none", "pad": 0.6},
        )


def _station_labels(ax: Any, ds: Any, handles: list) -> None:
    if "station_name" not in ds or "station_node" not in ds:
        return
    from viz.data import node_xy

    x, y = node_xy(ds, ds["station_node"].values)
    names = [str(v) for v in ds["station_name"].values]
    aid = (
        np.asarray(ds["station_mutual_aid"].values, bool) if "station_mutual_aid" in ds else np.zeros(len(names), bool)
    )
    added = set(added_stations(ds))
    new = np.array([n in added for n in names], bool) & np.isfinite(x)
    stacked: dict[tuple[int, int], int] = {}  # labels of stations close together go one under another
    for i, name in enumerate(names):
        if np.isfinite(x[i]):
            tag = " (new)" if new[i] else " (mutual aid)" if aid[i] else ""
            key = (int(x[i] // 250), int(y[i] // 250))
            k = stacked[key] = stacked.get(key, -1) + 1
            ax.annotate(
                name + tag,
                (x[i], y[i]),
                xytext=(5, -8 * k),
                textcoords="offset points",
                fontsize=6,
                va="center",
                zorder=8,
                color="#67000d" if new[i] else "#222222",
                bbox={"facecolor": "white", "alpha": 0.6, "edgecolor": "none", "pad": 0.3},
            )
    if new.any():
        ax.scatter(x[new], y[new], s=260, facecolors="none", edgecolors=NEW_STATION_COLOR, linewidths=2.0, zorder=6)
        handles.append(new_station_handle(f"station opened in the run ({int(new.sum())})"))


#: the ring drawn around a station that was not there at the start (maps and coverage panels)
NEW_STATION_COLOR = "#ff7f00"


def new_station_handle(label: str) -> Line2D:
    """The legend entry of the ring around a new station."""
    return Line2D([], [], ls="", marker="o", ms=11, mfc="none", mec=NEW_STATION_COLOR, mew=2, label=label)


def added_stations(ds: Any) -> list[str]:
    """Names of the stations opened during the run (``station_added`` in the after-action log)."""
    if "event_kind" not in ds or "event_detail" not in ds:
        return []
    kinds = np.asarray(ds["event_kind"].values, dtype=str)
    details = np.asarray(ds["event_detail"].values, dtype=str)
    return [d.split(":", 1)[0].strip() for d in details[kinds == "station_added"]]


def draw_operations(
    ax: Any, ds: Any, segs: Any, widths: np.ndarray, handles: list, *, index: int | None, start_clock_s: float
) -> None:
    """Closures and lost lanes at interval ``index``, evacuation zones, road and station names."""
    _closures(ax, segs, widths, ds, index, handles)
    _zones(ax, ds, start_clock_s, handles)
    _road_labels(ax, ds, segs)
    _station_labels(ax, ds, handles)
