"""Evacuation figures: the share of the ordered population safe over time, the clearance time,
and the loads on the links leaving the ordered zones.

Read from a run's Dataset: ``evacuee_safe_s`` (when each person of the ordered population
reached safety), ``zone_evacuation_order_s`` (when each zone was ordered out), the link
outflows and the nodes' zones.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from basics.clock import format_clock
from viz.data import link_ends
from viz.timeaxis import clock_ticks, mark_events, time_events

__all__ = ["safe_share", "clearance_s", "exit_links", "evacuation_figure", "DEFAULT_CLEARANCE_SHARE"]

#: share of the ordered population whose safety ends the clearance time (the scenario may say otherwise)
DEFAULT_CLEARANCE_SHARE = 0.9
MAX_EXITS = 8


def safe_share(ds: Any) -> tuple[np.ndarray, np.ndarray, int]:
    """``(times, share, n)``: each time a person reached safety, sorted, the share of the ``n``
    ordered persons safe by then (a step curve).
    """
    t = np.asarray(ds["evacuee_safe_s"].values, np.float64)
    n = int(t.size)
    safe = np.sort(t[np.isfinite(t)])
    return safe, np.arange(1, safe.size + 1) / max(n, 1), n


def clearance_s(ds: Any, share: float = DEFAULT_CLEARANCE_SHARE) -> float:
    """Seconds from the first order until ``share`` of the ordered population was safe (NaN: never),
    as the population component's KPI ``pop_evac_clearance_s`` counts it.
    """
    safe, _, n = safe_share(ds)
    need = max(int(math.ceil(share * n - 1e-9)), 1)
    orders = np.asarray(ds["zone_evacuation_order_s"].values, np.float64)
    if n == 0 or safe.size < need or not np.isfinite(orders).any():
        return math.nan
    return float(safe[need - 1] - np.nanmin(orders))


def exit_links(ds: Any) -> np.ndarray:
    """Links from a node in an ordered zone to a node outside every ordered zone."""
    ordered = np.flatnonzero(np.isfinite(np.asarray(ds["zone_evacuation_order_s"].values, np.float64)))
    zone = np.asarray(ds["node_zone"].values, np.int64)
    a, b = link_ends(ds)
    za, zb = zone[a], zone[b]
    return np.flatnonzero(np.isin(za, ordered) & ~np.isin(zb, ordered))


def evacuation_figure(ds: Any, *, start_clock_s: float, share: float = DEFAULT_CLEARANCE_SHARE) -> Figure | None:
    """Safe share over time with the clearance time; vehicles leaving the ordered zones per exit link."""
    if "evacuee_safe_s" not in ds or "zone_evacuation_order_s" not in ds or ds.sizes.get("time", 0) == 0:
        return None
    times = np.asarray(ds["time"].values, np.float64)
    end = float(times[-1])
    safe, frac, n = safe_share(ds)
    first = float(np.nanmin(ds["zone_evacuation_order_s"].values))
    clear = clearance_s(ds, share)
    fig = Figure(figsize=(9, 6.6))
    ax1, ax2 = fig.subplots(2, 1, sharex=True)
    ax1.step(
        np.concatenate([[first], safe, [end]]),
        100 * np.concatenate([[0.0], frac, frac[-1:] if frac.size else [0.0]]),
        where="post",
        color="#1a9850",
        lw=2,
        label=f"ordered population safe (of {n:,})",
    )
    ax1.axhline(100 * share, color="#555555", ls=":", lw=1, label=f"clearance: {100 * share:g} % safe")
    if np.isfinite(clear):
        ax1.axvline(first + clear, color="#1a9850", ls="--", lw=1)
        text = f"clearance time {clear / 60:.0f} min (at {format_clock(start_clock_s + first + clear)})"
    else:
        text = f"clearance not reached: {100 * (frac[-1] if frac.size else 0):.1f} % safe at the end"
    ax1.set_title(text, fontsize=10)
    ax1.set_ylabel("safe (%)")
    ax1.set_ylim(0, 100)
    ax1.legend(fontsize=8, loc="lower right")
    links = exit_links(ds)
    out = np.asarray(ds["link_outflow"].values, np.float64)[:, links] if links.size else np.zeros((times.size, 0))
    order = np.argsort(-out.sum(0), kind="stable")
    names = np.asarray(ds["link_name"].values, dtype=str) if "link_name" in ds else np.full(ds.sizes["link"], "")
    width = np.diff(np.concatenate([[0.0], times]))
    for j in order[:MAX_EXITS]:
        ax2.step(
            times, out[:, j], where="pre", lw=1.4, label=f"link {links[j]} {names[links[j]]}: {out[:, j].sum():,.0f}"
        )
    if links.size > MAX_EXITS:
        rest = out[:, order[MAX_EXITS:]].sum(1)
        ax2.step(
            times,
            rest,
            where="pre",
            lw=1.2,
            color="#999999",
            ls="--",
            label=f"{links.size - MAX_EXITS} other exits: {rest.sum():,.0f}",
        )
    ax2.set_ylabel(f"vehicles leaving per\n{np.median(width) / 60:g} min, by exit link")
    ax2.legend(fontsize=7, ncol=2, loc="upper right")
    events = [e for e in time_events(ds) if e.kind != "incident"]
    for ax in (ax1, ax2):
        ax.grid(True, alpha=0.3)
        mark_events(ax, events, label=ax is ax1, t_max=end)
    clock_ticks(ax2, 0.0, end, start_clock_s=start_clock_s)
    fig.tight_layout()
    return fig
