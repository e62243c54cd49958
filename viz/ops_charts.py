"""Emergency and operations figures for reports of drills, evacuations and live runs (issue 16).

Read only from a run's Dataset (``results.nc``): response times against target per
incident type, units available by kind over time, the incident timeline (occurred ->
reported -> dispatched -> on scene -> cleared) and hospital occupancy.  Time axes
are clock times with ticks at whole quarter hours, half hours or hours.

:func:`emergency_figures` gives every figure the Dataset has data for, each as a
matplotlib :class:`~matplotlib.figure.Figure` with its caption.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure

from viz.timeaxis import clock_ticks, mark_events, time_events

__all__ = [
    "emergency_figures",
    "emergency_sections",
    "response_figure",
    "units_available_figure",
    "incident_timeline_figure",
    "hospital_figure",
    "clock_ticks",
]

#: segments of the timeline: (from stage, to stage, colour, label)
_SEGMENTS = (
    ("occurred", "reported", "#bdbdbd", "occurred → reported"),
    ("reported", "dispatched", "#fdae61", "waiting for a unit"),
    ("dispatched", "on_scene", "#4575b4", "dispatched → on scene"),
    ("on_scene", "cleared", "#d73027", "on scene → cleared"),
)
MAX_TIMELINE_ROWS = 60


def _str(values: Any) -> list[str]:
    return [str(v) for v in np.asarray(values)]


def response_figure(ds: Any, *, targets: dict | None = None) -> Figure | None:
    """Histogram of response times (reported -> first unit on scene) per incident type,
    split into within target and not; the count in each panel's title is the number of
    incidents reached.  ``targets`` (type -> ``{"seconds", "measure", "unit"}``, as the
    resolved scenario gives them) draws each response-time target as a line and names a
    travel-time target (first engine's travel) in the title.
    """
    from matplotlib.ticker import MaxNLocator

    if "incident_response_s" not in ds or ds.sizes.get("incident", 0) == 0:
        return None
    resp = ds["incident_response_s"].values.astype(float)
    types = np.asarray(_str(ds["incident_type"].values))
    met = ds["incident_target_met"].values.astype(float) if "incident_target_met" in ds else np.full(resp.shape, np.nan)
    kinds = sorted(set(types[np.isfinite(resp)]))
    if not kinds:
        return None
    fig = Figure(figsize=(4.2 * len(kinds), 3.2))
    axes = fig.subplots(1, len(kinds), squeeze=False)[0]
    for ax, k in zip(axes, kinds, strict=True):
        sel = (types == k) & np.isfinite(resp)
        minutes = resp[sel] / 60.0
        bins = np.linspace(0, max(1.0, float(minutes.max())) * 1.05, 16)
        ok, late = minutes[met[sel] == 1], minutes[met[sel] != 1]
        tgt = (targets or {}).get(k) or {}
        limit = tgt.get("seconds")
        if isinstance(limit, (int, float)) and tgt.get("measure") == "response":
            bins = np.linspace(0, max(1.0, float(minutes.max()), 1.1 * limit / 60.0) * 1.05, 16)
        ax.hist([ok, late], bins=bins, stacked=True, color=["#1a9850", "#d73027"], label=["within target", "not"])
        title = f"{k}: {int(sel.sum())} reached"
        if isinstance(limit, (int, float)) and tgt.get("measure") == "response":
            ax.axvline(limit / 60.0, color="black", ls="--", lw=1.2, label=f"target {limit / 60:g} min")
        elif isinstance(limit, (int, float)):
            title += f"\n(target: {tgt.get('measure', '')} of the first {tgt.get('unit') or 'unit'} {limit / 60:g} min)"
        ax.set_title(title, fontsize=10)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("response time (min)")
        ax.set_ylabel("incidents")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def units_available_figure(ds: Any, *, start_clock_s: float) -> Figure | None:
    """Units free to dispatch by kind over time."""
    if "units_available" not in ds or ds.sizes.get("time", 0) == 0:
        return None
    t = ds["time"].values.astype(float)
    fig = Figure(figsize=(8, 3.2))
    ax = fig.subplots()
    for j, kind in enumerate(_str(ds["unit_type"].values)):
        ax.step(t, ds["units_available"].values[:, j], where="post", label=kind)
    ax.set_ylabel("units available")
    ax.set_ylim(bottom=0)
    clock_ticks(ax, 0.0, float(t[-1]), start_clock_s=start_clock_s)
    mark_events(ax, time_events(ds), t_max=float(t[-1]))
    ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    return fig


def incident_timeline_figure(ds: Any, *, start_clock_s: float) -> Figure | None:
    """A Gantt chart of the incidents' life cycles (the first :data:`MAX_TIMELINE_ROWS`)."""
    if "incident_time" not in ds or ds.sizes.get("incident", 0) == 0 or "stage" not in ds.coords:
        return None
    stages = _str(ds["stage"].values)
    segments = [seg for seg in _SEGMENTS if seg[0] in stages and seg[1] in stages]
    if not segments:
        return None
    times = ds["incident_time"].values.astype(float)[:MAX_TIMELINE_ROWS]
    types = _str(ds["incident_type"].values)[:MAX_TIMELINE_ROWS]
    end = float(ds.attrs.get("sim_time_s", np.nanmax(times) if np.isfinite(times).any() else 1.0))
    n = times.shape[0]
    fig = Figure(figsize=(9, 0.9 + 0.22 * n))
    ax = fig.subplots()
    for a, b, colour, label in segments:
        t0, t1 = times[:, stages.index(a)], times[:, stages.index(b)]
        t1 = np.where(np.isnan(t1) & np.isfinite(t0), end, t1)  # still open at the end
        ok = np.isfinite(t0) & np.isfinite(t1)
        ax.barh(np.flatnonzero(ok), (t1 - t0)[ok], left=t0[ok], color=colour, height=0.7, label=label)
    ax.set_yticks(range(n), [f"#{i} {t}" for i, t in enumerate(types)], fontsize=7)
    ax.invert_yaxis()
    clock_ticks(ax, 0.0, end, start_clock_s=start_clock_s)
    mark_events(ax, [e for e in time_events(ds) if e.kind != "incident"], t_max=end)
    ax.legend(fontsize=7, ncol=4, loc="lower center", bbox_to_anchor=(0.5, 1.0))
    fig.tight_layout()
    return fig


def hospital_figure(ds: Any, *, start_clock_s: float) -> Figure | None:
    """Beds occupied over time, per hospital, as a share of its beds (the axis up to 10 % at least,
    100 % at most), each hospital's peak in patients in the legend.
    """
    if "hospital_occupied" not in ds or ds.sizes.get("hospital", 0) == 0 or ds.sizes.get("time", 0) == 0:
        return None
    t = ds["time"].values.astype(float)
    beds = np.maximum(ds["hospital_beds"].values.astype(float), 1.0)
    fig = Figure(figsize=(8, 3.0))
    ax = fig.subplots()
    occupied = ds["hospital_occupied"].values.astype(float)
    peak = 0.0
    for j, name in enumerate(_str(ds["hospital_name"].values)):
        share = 100 * occupied[:, j] / beds[j]
        peak = max(peak, float(share.max()))
        label = f"{name}: peak {occupied[:, j].max():,.0f} of {beds[j]:,.0f} beds"
        ax.step(t, share, where="post", label=label)
    ax.set_ylabel("beds occupied (%)")
    ax.set_ylim(0, min(100.0, max(10.0, 1.25 * peak)))  # a few patients stay readable
    clock_ticks(ax, 0.0, float(t[-1]), start_clock_s=start_clock_s)
    mark_events(ax, time_events(ds), t_max=float(t[-1]))
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def emergency_figures(ds: Any, *, start_clock_s: float, targets: dict | None = None) -> dict[str, tuple[Figure, str]]:
    """Every emergency figure the Dataset has data for: name -> (figure, caption).

    Parameters
    ----------
    ds
        A run's results (``results.nc``).
    start_clock_s
        Clock seconds of day at t = 0.
    targets
        Response-time targets by incident type (see :func:`response_figure`).
    """
    out: dict[str, tuple[Figure, str]] = {}
    made = [
        (
            "response",
            response_figure(ds, targets=targets),
            "Response time (reported to first unit on scene) per incident type; green within the type's "
            "target, red not. Each panel's count is the incidents reached.",
        ),
        (
            "units-available",
            units_available_figure(ds, start_clock_s=start_clock_s),
            "Units free to dispatch (at the station or returning, station in service), by kind.",
        ),
        (
            "incident-timeline",
            incident_timeline_figure(ds, start_clock_s=start_clock_s),
            "Each incident's life cycle: grey until reported, orange waiting for a unit, blue driving, "
            f"red on scene until cleared (bars to the end: still open; first {MAX_TIMELINE_ROWS} incidents).",
        ),
        (
            "hospitals",
            hospital_figure(ds, start_clock_s=start_clock_s),
            "Hospital beds occupied, as a share of each hospital's beds.",
        ),
    ]
    for name, fig, caption in made:
        if fig is not None:
            out[name] = (fig, caption)
    return out


_TITLES = {
    "response": "Emergency response against target",
    "units-available": "Units available",
    "incident-timeline": "Incident timeline",
    "hospitals": "Hospital occupancy",
}


def emergency_sections(
    ds: Any, *, start_clock_s: float, targets: dict | None = None
) -> list[tuple[str, str, bytes, str]]:
    """The report's emergency sections: ``(name, title, PNG bytes, caption)`` each."""
    from viz.charts import png_bytes

    return [
        (name, _TITLES[name], png_bytes(fig), caption)
        for name, (fig, caption) in emergency_figures(ds, start_clock_s=start_clock_s, targets=targets).items()
    ]
