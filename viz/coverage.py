"""Coverage maps: the area each kind of station reaches within its target time at recorded speeds.

Travel times are shortest paths (:func:`scipy.sparse.csgraph.dijkstra`) over the links'
recorded (congested) travel times of one output interval -- length over the interval's
space-mean speed, free speed where the link recorded none -- with the links closed at the
end of that interval left out.  Emergency vehicles' speed factor is not applied: the map
shows what the traffic of that interval allows.  A run is compared at its quietest and
busiest interval (fewest and most vehicles on the network); a comparison folder at each
variant's busiest interval (its ``baseline/`` and ``scenario/`` run folders, which hold the
stations of each).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure

from basics.clock import format_clock
from viz.data import link_ends, node_index
from viz.maps import CLOSURE_COLOR, NEW_STATION_COLOR, new_station_handle

__all__ = [
    "COVERAGE_TARGET_S",
    "link_travel_times",
    "travel_times_from",
    "station_nodes",
    "coverage_figure",
    "quiet_and_busy",
]

#: travel-time target per station kind (s): first engine at a fire in 4 min, ambulance in 8
COVERAGE_TARGET_S = {"fire": 240.0, "ems": 480.0}
_BIN_COLORS = ["#1a9850", "#91cf60", "#fc8d59", "#d73027"]


def link_travel_times(ds: Any, index: int) -> np.ndarray:
    """Each link's travel time (s) in output interval ``index``: length over recorded speed
    (free speed where none was recorded), ``inf`` on links closed at its end.
    """
    length = np.asarray(ds["link_length_m"].values, np.float64)
    speed = np.asarray(ds["link_speed"].isel(time=index).values, np.float64)
    free = np.asarray(ds["link_free_speed"].values, np.float64) if "link_free_speed" in ds else speed
    speed = np.where(np.isfinite(speed) & (speed > 0), speed, free)
    with np.errstate(divide="ignore", invalid="ignore"):
        tt = np.where(speed > 0, length / speed, np.inf)
    if "link_closed" in ds and ds["link_closed"].dims == ("time", "link"):
        tt[np.asarray(ds["link_closed"].values[index]) == 1] = np.inf
    return tt


def travel_times_from(ds: Any, sources: np.ndarray, link_tt: np.ndarray) -> np.ndarray:
    """Shortest travel time (s) from the nearest of ``sources`` (node indices) to every node."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import dijkstra

    n = ds.sizes["node"]
    a, b = link_ends(ds)
    ok = np.isfinite(link_tt)
    a, b, w = a[ok], b[ok], np.maximum(link_tt[ok], 1e-3)  # explicit zeros would not be edges
    order = np.lexsort((w, b, a))  # parallel links: keep the quickest
    a, b, w = a[order], b[order], w[order]
    first = np.ones(a.size, bool)
    first[1:] = (a[1:] != a[:-1]) | (b[1:] != b[:-1])
    graph = csr_matrix((w[first], (a[first], b[first])), shape=(n, n))
    if len(sources) == 0:
        return np.full(n, np.inf)
    dist = dijkstra(graph, directed=True, indices=np.asarray(sources, np.int64), min_only=True)
    return np.asarray(dist, np.float64)


def station_nodes(ds: Any, kind: str) -> np.ndarray:
    """Node indices of the in-service stations of ``kind`` (``fire``, ``ems``): the emergency
    component's stations, else the city's facilities (``fire_station``, ``ems_station``).
    """
    pos = node_index(ds)
    if "station_kind" in ds and "station_node" in ds:
        kinds = np.asarray(ds["station_kind"].values, dtype=str)
        serv = (
            np.asarray(ds["station_in_service_end"].values, bool)
            if "station_in_service_end" in ds
            else np.ones(kinds.size, bool)
        )
        ids = np.asarray(ds["station_node"].values, np.int64)[(kinds == kind) & serv]
        return np.array([pos[int(v)] for v in ids if int(v) in pos], np.int64)
    if "facility_kind" in ds and "facility_x" in ds:
        fk = np.asarray(ds["facility_kind"].values, dtype=str)
        fx, fy = np.asarray(ds["facility_x"].values), np.asarray(ds["facility_y"].values)
        nx, ny = np.asarray(ds["node_x"].values), np.asarray(ds["node_y"].values)
        sel = np.flatnonzero(fk == f"{kind}_station")
        return np.array([int(np.argmin(np.hypot(nx - fx[i], ny - fy[i]))) for i in sel], np.int64)
    return np.zeros(0, np.int64)


def quiet_and_busy(ds: Any) -> tuple[int, int]:
    """Output intervals with the fewest and the most vehicles on the network."""
    nv = np.asarray(ds["network_vehicles"].values, np.float64)
    return int(np.argmin(nv)), int(np.argmax(nv))


def _panel(
    ax: Any, ds: Any, tt: np.ndarray, sources: np.ndarray, target: float, title: str, *, link_tt: np.ndarray, new=None
) -> float:
    """One coverage panel; returns the share of nodes within ``target``."""
    segs = np.stack(
        [
            np.column_stack([ds["link_x0"].values, ds["link_y0"].values]),
            np.column_stack([ds["link_x1"].values, ds["link_y1"].values]),
        ],
        1,
    )
    ax.add_collection(LineCollection(list(segs), colors="#d0d0d0", linewidths=0.8, zorder=1))
    cut = ~np.isfinite(link_tt)
    if cut.any():  # closed links, as on every report map
        ax.add_collection(
            LineCollection(
                list(segs[cut]), colors=CLOSURE_COLOR, linewidths=2.2, linestyles=(0, (2.0, 1.2)), zorder=1.5
            )
        )
    x, y = np.asarray(ds["node_x"].values), np.asarray(ds["node_y"].values)
    bounds = [0.0, 0.5 * target, target, 1.5 * target, 1e12]
    cmap, norm = ListedColormap(_BIN_COLORS), BoundaryNorm(bounds, len(_BIN_COLORS))
    vals = np.where(np.isfinite(tt), tt, 1e11)
    ax.scatter(x, y, c=vals, cmap=cmap, norm=norm, s=16, zorder=2, edgecolors="none")
    ax.scatter(x[sources], y[sources], marker="*", s=170, c="black", edgecolors="white", zorder=3)
    if new is not None and len(new):  # stations the first panel has not: the new ones of a what-if
        ax.scatter(x[new], y[new], s=420, facecolors="none", edgecolors=NEW_STATION_COLOR, linewidths=2.2, zorder=3)
    share = float(np.mean(tt <= target)) if tt.size else float("nan")
    ax.set_title(f"{title}\n{100 * share:.0f} % of intersections within {target / 60:g} min", fontsize=9)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    return share


def coverage_figure(panels: list[tuple[Any, int, str]], *, start_clock_s: float = 0.0) -> tuple[Figure, dict] | None:
    """Coverage per station kind (rows) in each of ``panels`` (columns): ``(Dataset, interval, label)``.

    Returns the figure and ``{(kind, label): share of nodes within target}``, or None when no
    panel has stations of a kind in :data:`COVERAGE_TARGET_S`.
    """
    kinds = [k for k in COVERAGE_TARGET_S if any(station_nodes(ds, k).size for ds, _, _ in panels)]
    if not kinds or not panels:
        return None
    fig = Figure(figsize=(4.6 * len(panels), 4.4 * len(kinds) + 0.6))
    axes = fig.subplots(len(kinds), len(panels), squeeze=False)
    shares = {}
    for r, kind in enumerate(kinds):
        target = COVERAGE_TARGET_S[kind]
        for c, (ds, index, label) in enumerate(panels):
            src = station_nodes(ds, kind)
            ltt = link_travel_times(ds, index)
            tt = travel_times_from(ds, src, ltt)
            times = np.asarray(ds["time"].values, np.float64)
            t0 = times[index - 1] if index > 0 else 0.0
            when = f"{format_clock(start_clock_s + t0)}-{format_clock(start_clock_s + times[index])}"
            title = f"{kind} stations ({src.size}), {label} {when}"
            if c == 0:
                first = set(src.tolist())
            added = np.array([v for v in src.tolist() if v not in first], np.int64)
            shares[(kind, label)] = _panel(axes[r, c], ds, tt, src, target, title, link_tt=ltt, new=added)
    from matplotlib.patches import Patch

    names = ["within half the target", "within the target", "up to 1.5x the target", "beyond, or cut off"]
    from matplotlib.lines import Line2D

    fig.legend(
        handles=[Patch(color=col, label=n) for col, n in zip(_BIN_COLORS, names, strict=True)]
        + [Line2D([], [], color=CLOSURE_COLOR, lw=2, ls=(0, (2, 1)), label="closed")]
        + [new_station_handle("station not in the first panel")],
        loc="lower center",
        ncol=3,
        fontsize=8,
        frameon=False,
    )
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig, shares
