"""Shadow-mode figures from a ``twin live`` run folder's ``assimilation.nc``.

- observed against estimated flow and speed, with the ensemble's 90 % band (5th-95th
  percentile), for the sensors with the most observations;
- the demand factors: the hourly level and each origin zone's scale, with their spread.

Observations are the feed's own records (``obs_*`` along ``observation``): whole-road ones
where a sensor reports them, else its lanes summed (flow) and averaged (speed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from viz.timeaxis import clock_ticks, mark_events

__all__ = ["open_assimilation", "sensor_observations", "busiest_sensors", "sensor_figure", "demand_figure"]

MAX_SENSORS = 4


def open_assimilation(folder: Path) -> Any | None:
    """The folder's ``assimilation.nc`` (loaded), or None when it has none."""
    import xarray as xr

    path = Path(folder) / "assimilation.nc"
    if not path.is_file():
        return None
    with xr.open_dataset(path, engine="h5netcdf") as ds:
        return ds.load()


def sensor_observations(asm: Any, link: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(time, flow veh/h, speed m/s)`` observed on ``link``, one row per period end, sorted."""
    t = np.asarray(asm["obs_time_s"].values, np.float64)
    sel = np.asarray(asm["obs_link"].values) == link
    lane = np.asarray(asm["obs_lane"].values)[sel]
    t, flow, speed = t[sel], np.asarray(asm["obs_flow"].values)[sel], np.asarray(asm["obs_speed"].values)[sel]
    whole = lane < 0
    if whole.any():
        t, flow, speed = t[whole], flow[whole], speed[whole]
    times = np.unique(t)
    f = np.array([np.nansum(flow[t == x]) if np.isfinite(flow[t == x]).any() else np.nan for x in times])
    s = np.array([np.nanmean(speed[t == x]) if np.isfinite(speed[t == x]).any() else np.nan for x in times])
    return times, f, s


def busiest_sensors(asm: Any, n: int = MAX_SENSORS) -> list[int]:
    """The ``n`` sensor links with the most vehicles observed (flow times period; ties: lower index)."""
    if "obs_link" not in asm or asm.sizes.get("observation", 0) == 0:
        return []
    link = np.asarray(asm["obs_link"].values, np.int64)
    veh = np.nan_to_num(np.asarray(asm["obs_flow"].values) * np.asarray(asm["obs_interval_s"].values) / 3600.0)
    links = np.unique(link)
    total = np.array([veh[link == k].sum() for k in links])
    order = np.lexsort((links, -total))
    return [int(v) for v in links[order][:n]]


def sensor_figure(
    asm: Any, *, start_clock_s: float, names: np.ndarray | None = None, events: list | None = None
) -> Figure | None:
    """Per sensor (rows): flow and speed (columns), estimate with its 90 % band, observations as dots."""
    links = busiest_sensors(asm)
    if not links or asm.sizes.get("time", 0) == 0:
        return None
    t = np.asarray(asm["time"].values, np.float64)
    fig = Figure(figsize=(11, 2.5 * len(links) + 0.8))
    axes = fig.subplots(len(links), 2, squeeze=False, sharex=True)
    for r, link in enumerate(links):
        ot, of, osp = sensor_observations(asm, link)
        for c, (var, obs, scale, unit) in enumerate((("est_flow", of, 1.0, "veh/h"), ("est_speed", osp, 3.6, "km/h"))):
            ax = axes[r, c]
            lo = np.asarray(asm[f"{var}_p05"].values[:, link]) * scale
            hi = np.asarray(asm[f"{var}_p95"].values[:, link]) * scale
            ax.fill_between(t, lo, hi, step="pre", color="#9ecae1", alpha=0.6, lw=0, label="estimate, 90 % band")
            ax.step(
                t,
                np.asarray(asm[var].values[:, link]) * scale,
                where="pre",
                color="#08519c",
                lw=1.2,
                label="estimate (mean)",
            )
            ax.plot(ot, obs * scale, ".", color="#d94801", ms=3.5, label="observed")
            road = f" {names[link]}" if names is not None and names[link] else ""
            ax.set_title(f"link {link}{road}: {'flow' if c == 0 else 'speed'}", fontsize=9)
            ax.set_ylabel(unit)
            ax.set_ylim(bottom=0)
            ax.grid(True, alpha=0.3)
    axes[0, 0].legend(fontsize=7, loc="upper left")
    for r, ax in enumerate(axes.ravel()):
        mark_events(ax, events or [], label=r < 2, t_max=float(t[-1]))
    for ax in axes[-1]:
        clock_ticks(ax, 0.0, float(t[-1]), start_clock_s=start_clock_s)
    fig.tight_layout()
    return fig


def demand_figure(
    asm: Any, *, start_clock_s: float, zone_names: list[str] | None = None, events: list | None = None
) -> Figure | None:
    """The estimated demand level (x the scenario's) and the origin zones' scales, with their spread."""
    if "log_level" not in asm or asm.sizes.get("time", 0) == 0:
        return None
    t = np.asarray(asm["time"].values, np.float64)
    lvl, sd = np.asarray(asm["log_level"].values), np.asarray(asm["log_level_sd"].values)
    fig = Figure(figsize=(10, 6))
    ax1, ax2 = fig.subplots(2, 1, sharex=True)
    ax1.fill_between(
        t, np.exp(lvl - 1.645 * sd), np.exp(lvl + 1.645 * sd), step="pre", color="#c7e9c0", label="90 % band"
    )
    ax1.step(t, np.exp(lvl), where="pre", color="#006d2c", lw=1.5, label="estimated demand level")
    ax1.axhline(1.0, color="#555555", lw=0.8, ls=":")
    ax1.set_ylabel("demand level\n(x the scenario's)")
    ax1.legend(fontsize=8, loc="upper left")
    scale, spread = np.asarray(asm["demand_scale"].values), np.asarray(asm["demand_scale_sd"].values)
    order = np.argsort(-np.abs(scale[-1] - 1.0))[:4]  # the zones furthest from 1 at the end, drawn with their spread
    for z in range(scale.shape[1]):
        ax2.step(t, scale[:, z], where="pre", color="#bbbbbb", lw=0.6)
    for z in order:
        name = zone_names[z] if zone_names else f"zone {z}"
        line = ax2.step(t, scale[:, z], where="pre", lw=1.4, label=f"{name} (± 1 sd)")[0]
        ax2.fill_between(
            t,
            scale[:, z] - spread[:, z],
            scale[:, z] + spread[:, z],
            step="pre",
            color=line.get_color(),
            alpha=0.2,
            lw=0,
        )
    ax2.axhline(1.0, color="#555555", lw=0.8, ls=":")
    ax2.set_ylabel("origin zone scale\n(grey: every zone)")
    ax2.legend(fontsize=7, ncol=2, loc="upper left")
    for ax in (ax1, ax2):
        ax.grid(True, alpha=0.3)
        mark_events(ax, events or [], label=ax is ax1, t_max=float(t[-1]))
    clock_ticks(ax2, 0.0, float(t[-1]), start_clock_s=start_clock_s)
    fig.tight_layout()
    return fig
