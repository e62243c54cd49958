"""Time axes of every report chart: clock-time ticks and markers for what happened when.

:func:`clock_ticks` puts ticks at whole 5/15/30 minutes or whole hours of the clock (one
implementation for every chart).  :func:`time_events` reads from a run's Dataset what an
emergency team wants to see on a time axis -- interventions applied and lifted, evacuation
orders, roads closed and reopened by incidents or the feed, incidents occurring -- and
:func:`mark_events` draws them as vertical lines with a short label.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib.ticker import FixedLocator, FuncFormatter

from basics.clock import format_clock

__all__ = ["clock_ticks", "TimeEvent", "time_events", "mark_events", "EVENT_COLORS"]

_TICK_STEPS_S = (300, 900, 1800, 3600, 7200, 10800, 21600)
#: marker colour per event kind
EVENT_COLORS = {
    "intervention": "#7b3294",
    "order": "#e66101",
    "closure": "#c51b7d",
    "reopen": "#4d9221",
    "incident": "#555555",
}
#: at most this many labelled markers on one axis (the rest are drawn unlabelled)
MAX_LABELS = 12


def clock_ticks(ax: Any, t0_s: float, t1_s: float, *, start_clock_s: float) -> None:
    """Clock-time ticks on ``ax``'s x axis (seconds since the start), at most ~8, at whole
    5/15/30-minute or 1/2/3/6-hour marks.
    """
    span = max(t1_s - t0_s, 1.0)
    step = next((s for s in _TICK_STEPS_S if span / s <= 8), _TICK_STEPS_S[-1])
    first = np.ceil((start_clock_s + t0_s) / step) * step - start_clock_s
    ticks = np.arange(first, t1_s + 1e-9, step)
    ax.xaxis.set_major_locator(FixedLocator(ticks.tolist()))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: format_clock(start_clock_s + v)))
    ax.set_xlim(t0_s, t1_s)


@dataclass(frozen=True)
class TimeEvent:
    """Something to mark on a time axis: when (s since the start), a short label, its kind."""

    t: float
    label: str
    kind: str


def _str(ds: Any, name: str) -> list[str]:
    return [str(v) for v in np.asarray(ds[name].values)]


def _intervention_roads(ds: Any) -> dict[str, str]:
    """Intervention name -> the name of the first road it changed (from the link-change history)."""
    if "link_change_source" not in ds or "link_name" not in ds:
        return {}
    names = np.asarray(ds["link_name"].values, dtype=str)
    out: dict[str, str] = {}
    for source, text in zip(_str(ds, "link_change_source"), _str(ds, "link_change_links"), strict=True):
        links = text.split()
        if source.startswith("intervention ") and links:
            out.setdefault(source[len("intervention ") :], str(names[int(links[0])]))
    return out


def _intervention_events(ds: Any) -> list[TimeEvent]:
    if "intervention_applied_s" not in ds:
        return []
    out = []
    kinds = _str(ds, "intervention_kind") if "intervention_kind" in ds else [""] * ds.sizes["intervention"]
    names = _str(ds, "intervention_name") if "intervention_name" in ds else kinds
    applied = np.asarray(ds["intervention_applied_s"].values, np.float64)
    reverted = (
        np.asarray(ds["intervention_reverted_s"].values, np.float64)
        if "intervention_reverted_s" in ds
        else np.full(applied.shape, np.nan)
    )
    roads = _intervention_roads(ds)
    for kind, name, a, r in zip(kinds, names, applied, reverted, strict=True):
        what = "order" if kind == "evacuation" else "intervention"
        label = kind if name.startswith(kind) else f"{kind}: {name}"
        if roads.get(name):
            label += f" {roads[name]}"
        if kind == "evacuation" and "zone_evacuation_order_s" in ds and np.isfinite(a):
            order_s = np.asarray(ds["zone_evacuation_order_s"].values, np.float64)
            zones = [str(z) for z, t in zip(ds["zone_name"].values, order_s, strict=True) if abs(t - a) < 1e-6]
            label += f" {', '.join(zones[:3])}{' …' if len(zones) > 3 else ''}"
        if np.isfinite(a):
            out.append(TimeEvent(float(a), label, what))
        if np.isfinite(r):
            out.append(TimeEvent(float(r), f"{name} lifted", "reopen"))
    return out


def _closed_by(ds: Any, t: float, links: list[int]) -> bool:
    """Whether ``links`` were closed at the first recorded interval ending after ``t``."""
    if "link_closed" not in ds or not links or ds.sizes.get("time", 0) == 0:
        return False
    k = int(np.searchsorted(np.asarray(ds["time"].values, np.float64), t + 1e-9))
    return k < ds.sizes["time"] and bool((np.asarray(ds["link_closed"].values[k])[links] == 1).any())


def _link_change_events(ds: Any) -> list[TimeEvent]:
    """Roads closed and reopened by incidents and the feed (interventions are marked on their own;
    lane losses are not marked: the incident's tick shows them).
    """
    if "link_change_time_s" not in ds:
        return []
    out = []
    names = np.asarray(ds["link_name"].values, dtype=str) if "link_name" in ds else None
    closing: dict[str, bool] = {}
    times = np.asarray(ds["link_change_time_s"].values, np.float64)
    rows = zip(
        times,
        _str(ds, "link_change_action"),
        _str(ds, "link_change_source"),
        _str(ds, "link_change_links"),
        strict=True,
    )
    for t, action, source, text in rows:
        if source.startswith("intervention"):
            continue
        links = [int(v) for v in text.split()]
        if source.startswith("emergency:"):
            what = source.split(":", 1)[-1].strip().replace("#", " #")
        elif source.startswith("assimilation "):  # the live twin applying the feed's alerts and closures
            what = "feed " + source.split()[1]
        else:
            what = source
        road = f" {names[links[0]]}" if names is not None and links and names[links[0]] else ""
        if action == "apply":
            closing[source] = _closed_by(ds, float(t), links)
            if closing[source]:
                out.append(TimeEvent(float(t), f"{what}:{road} closed", "closure"))
        elif closing.get(source):
            out.append(TimeEvent(float(t), f"{what}:{road} reopens", "reopen"))
    return out


def _station_events(ds: Any) -> list[TimeEvent]:
    """Stations opened, closed, out of and back in service (from the after-action log)."""
    if "event_kind" not in ds or "event_time_s" not in ds:
        return []
    words = {
        "station_added": "opens",
        "station_removed": "closes",
        "station_out_of_service": "out of service",
        "station_in_service": "back in service",
    }
    kinds = _str(ds, "event_kind")
    details = _str(ds, "event_detail") if "event_detail" in ds else [""] * len(kinds)
    times = np.asarray(ds["event_time_s"].values, np.float64)
    return [
        TimeEvent(float(t), f"{d.split(':', 1)[0]} {words[k]}", "intervention")
        for t, k, d in zip(times, kinds, details, strict=True)
        if k in words
    ]


def _incident_events(ds: Any) -> list[TimeEvent]:
    if "incident_time" not in ds or "stage" not in ds.coords or ds.sizes.get("incident", 0) == 0:
        return []
    stages = _str(ds, "stage")
    if "occurred" not in stages:
        return []
    t0 = np.asarray(ds["incident_time"].values, np.float64)[:, stages.index("occurred")]
    types = _str(ds, "incident_type") if "incident_type" in ds else ["incident"] * t0.size
    ids = np.asarray(ds["incident"].values)
    return [
        TimeEvent(float(t), f"#{i} {k}", "incident") for t, k, i in zip(t0, types, ids, strict=True) if np.isfinite(t)
    ]


def time_events(ds: Any) -> list[TimeEvent]:
    """Interventions, evacuation orders, road closures/reopenings and incidents of a run, by time."""
    events = _intervention_events(ds) + _link_change_events(ds) + _station_events(ds) + _incident_events(ds)
    return sorted(events, key=lambda e: (e.t, e.kind))


def mark_events(ax: Any, events: list[TimeEvent], *, label: bool = True, t_max: float | None = None) -> int:
    """Vertical lines at ``events`` on ``ax`` (x in s since the start), labelled at the top.

    Incidents are short ticks along the bottom (there may be many); interventions, orders and
    road changes are full-height dashed lines, the first :data:`MAX_LABELS` labelled (rotated
    text, so close events stay legible).  Returns the number of markers drawn.
    """
    n = 0
    labelled = 0
    trans = ax.get_xaxis_transform()  # x in data, y in axes fraction; drawn as collections, not lines
    for e in events:
        if t_max is not None and e.t > t_max + 1e-9:
            continue
        color = EVENT_COLORS.get(e.kind, "#555555")
        if e.kind == "incident":
            ax.vlines(e.t, 0.0, 0.06, transform=trans, colors=color, lw=1.0, alpha=0.8)
            n += 1
            continue
        ax.vlines(e.t, 0.0, 1.0, transform=trans, colors=color, lw=1.0, linestyles="--", alpha=0.85, zorder=6)
        n += 1
        if label and labelled < MAX_LABELS:
            ax.text(
                e.t,
                0.98,
                " " + e.label[:34],
                transform=trans,
                rotation=90,
                va="top",
                ha="right",
                fontsize=6.5,
                color=color,
                zorder=7,
                bbox={"facecolor": "white", "alpha": 0.75, "edgecolor": "none", "pad": 0.5},
            )
            labelled += 1
    return n
