"""Report figures (matplotlib, Agg): time series, link maps, travel times, KPI changes.

Each function takes a :class:`viz.data.Results` and returns a
:class:`matplotlib.figure.Figure` built without pyplot (no global state, no
display); :func:`png_bytes` renders one to PNG.
"""

from __future__ import annotations

import io

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.colors import Normalize, TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, MaxNLocator

from viz.data import (
    Results,
    clock_label,
    incidents_at,
    intervened_mask,
    is_finite_number,
    link_offsets,
    network_speed_kmh,
    sites,
    time_index,
)
from viz.maps import draw_operations, relative_speed
from viz.shapes import link_polylines
from viz.timeaxis import clock_ticks, mark_events, time_events

__all__ = [
    "png_bytes",
    "timeseries_figure",
    "speed_map_figure",
    "difference_map_figure",
    "travel_time_figure",
    "kpi_change_figure",
    "convergence_figure",
    "VARIANT_COLORS",
]

VARIANT_COLORS = {"run": "#1f77b4", "baseline": "#4d4d4d", "scenario": "#d62728"}
_FACILITY_STYLE = {
    "fire_station": ("^", "#d62728"),
    "ems_station": ("P", "#2ca02c"),
    "police_station": ("s", "#1f3fbf"),
    "hospital": ("H", "#e377c2"),
    "tow_depot": ("D", "#8c564b"),
}
_DPI = 110


def png_bytes(fig: Figure) -> bytes:
    """The figure as PNG bytes."""
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI, bbox_inches="tight", facecolor="white")
    return buf.getvalue()


def _variants(res: Results, name: str) -> dict[str, np.ndarray]:
    """Per variant, the variable as (replication, time) or (time,); a run is variant ``run``."""
    da = res.ds[name]
    if res.kind == "run":
        return {"run": np.asarray(da.values, dtype=np.float64)}
    out = {}
    for v in ("baseline", "scenario"):
        sel = da.sel(variant=v)
        if "replication" in sel.dims:
            sel = sel.transpose("replication", ...)
        out[v] = np.asarray(sel.values, dtype=np.float64)
    return out


def _band(ax, x, y: np.ndarray, color: str, label: str) -> None:
    """A line (mean over replications) with the replications' range shaded."""
    if y.ndim == 2:
        lo, hi, mean = np.nanmin(y, 0), np.nanmax(y, 0), np.nanmean(y, 0)
        ax.fill_between(x, lo, hi, color=color, alpha=0.18, linewidth=0)
        ax.plot(x, mean, color=color, lw=1.8, label=f"{label} (mean; band: range over {y.shape[0]} replications)")
    else:
        ax.plot(x, y, color=color, lw=1.8, label=label)


def _stranded_series(ax, res: Results, x: np.ndarray) -> None:
    """Trips stranded (waiting for a route) beside the vehicles on the network, per variant."""
    if "network_stranded" not in res.ds:
        return
    for v, s in _variants(res, "network_stranded").items():
        s = np.where(s < 0, np.nan, s)  # -1: not recorded
        label = "trips stranded (waiting for a route)" + ("" if v == "run" else f", {v}")
        if np.nanmax(np.append(s.ravel(), 0.0)) <= 0:
            label += ": none"
        y = np.nanmean(s, 0) if s.ndim == 2 else s
        ax.plot(x, y, color="#b2182b" if v != "baseline" else "#f4a582", lw=1.8, ls="-.", label=label)


def timeseries_figure(res: Results, *, events: list | None = None) -> Figure:
    """Network speed, vehicles on the network (with trips stranded) and trips completed
    through the day, with interventions, orders and road closures marked.
    """
    fig = Figure(figsize=(9, 7.5))
    axes = fig.subplots(3, 1, sharex=True)
    x = res.times
    ds = res.ds
    speed = network_speed_kmh(ds, res.times)
    if res.kind == "run":
        series = {"run": speed}
    else:
        order = [str(v) for v in ds["variant"].values]
        series = {v: speed[order.index(v)] if speed.ndim > 1 else speed for v in ("baseline", "scenario")}
        series = {v: (s.reshape(-1, s.shape[-1]) if s.ndim > 2 else s) for v, s in series.items()}
    for v, s in series.items():
        _band(axes[0], x, s, VARIANT_COLORS[v], v)
    axes[0].set_ylabel("network speed\n(km/h)")
    axes[0].set_ylim(bottom=0)
    panels = [("network_vehicles", "vehicles"), ("trips_arrived", "trips completed\n(cumulative)")]
    for ax, (name, label) in zip(axes[1:], panels, strict=False):
        if name in ds:
            for v, s in _variants(res, name).items():
                text = {"trips_arrived": "trips completed", "network_vehicles": "vehicles on the network"}[name]
                _band(ax, x, s, VARIANT_COLORS[v], text if v == "run" else f"{text}, {v}")
            if name == "trips_arrived" and res.kind == "run" and "trips_departed" in ds:
                ax.plot(
                    x,
                    ds["trips_departed"].values,
                    color="#999999",
                    lw=1.2,
                    ls="--",
                    label="trips departed (cumulative)",
                )
            if name == "network_vehicles":
                _stranded_series(ax, res, x)
        else:
            ax.text(0.5, 0.5, f"{name} not in the results", transform=ax.transAxes, ha="center", color="#888888")
        ax.set_ylabel(label)
        ax.set_ylim(bottom=0)
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
        ax.legend(loc="upper left", fontsize=8, frameon=False)
    if events is None:
        events = time_events(ds) if res.kind == "run" else []
    for i, ax in enumerate(axes):
        ax.grid(True, alpha=0.3)
        mark_events(ax, events, label=i == 0, t_max=float(x[-1]) if x.size else None)
    if res.kind == "comparison":
        axes[0].legend(loc="lower left", fontsize=8, frameon=False)
    if x.size:
        clock_ticks(axes[-1], 0.0, float(x[-1]), start_clock_s=res.start_clock_s)
    axes[-1].set_xlabel("clock time (end of output interval)")
    fig.suptitle(f"{res.name}: the network through the day", fontsize=12)
    fig.tight_layout()
    return fig


def _draw_sites(ax, res: Results, handles: list) -> None:
    """Stations and hospitals as markers (hollow when out of service), their legend entries added to ``handles``."""
    st = sites(res)
    if st is not None:
        for k in sorted(set(st.kind)):
            marker, color = _FACILITY_STYLE.get(k, ("o", "#7f7f7f"))
            for serv in (True, False):
                sel = (st.kind == k) & (st.in_service == serv)
                if not sel.any():
                    continue
                ax.scatter(
                    st.x[sel],
                    st.y[sel],
                    marker=marker,
                    s=38,
                    c=color if serv else "white",
                    edgecolors="white" if serv else color,
                    linewidths=0.7 if serv else 1.4,
                    zorder=5,
                )
                name = k.replace("_", " ") + ("" if serv else " (out of service at the end)")
                handles.append(
                    Line2D(
                        [],
                        [],
                        ls="",
                        marker=marker,
                        color=color if serv else "white",
                        markeredgecolor=color,
                        label=name,
                    )
                )


def _frame_with_scale_bar(ax, xs: np.ndarray, ys: np.ndarray) -> None:
    """Fit the axes to the points ``xs``, ``ys`` (equal aspect, no ticks or spines) and draw a scale bar."""
    pad = 0.03 * max(np.ptp(xs), np.ptp(ys), 1.0)
    ax.set_xlim(xs.min() - pad, xs.max() + pad)
    ax.set_ylim(ys.min() - pad, ys.max() + pad)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    for s in ax.spines.values():
        s.set_visible(False)
    target = max(np.ptp(xs) / 5, 1.0)
    base = 10 ** np.floor(np.log10(target))
    bar = max((m * base for m in (1, 2, 5) if m * base <= target), default=base)
    bx, by = xs.min(), ys.min() - pad * 0.6
    ax.plot([bx, bx + bar], [by, by], color="black", lw=2, clip_on=False)
    ax.text(
        bx + bar / 2, by, f"{bar / 1000:g} km" if bar >= 1000 else f"{bar:g} m", ha="center", va="bottom", fontsize=8
    )


def _map_base(
    ax,
    res: Results,
    values: np.ndarray,
    *,
    cmap: str,
    norm,
    label: str,
    fig: Figure,
    t: float | None,
    hide_zero: bool = False,
    overlay=None,
) -> None:
    """Draw the links coloured by ``values`` (NaN: grey), sites, incidents active at ``t``, a scale bar;
    ``overlay(ax, segs, widths, handles)`` adds more (closures, zones, names) before the legend.
    """
    ds = res.ds
    L = np.asarray(ds["link_length_m"].values, dtype=np.float64)
    offset = float(np.clip(0.05 * np.median(L) if L.size else 5.0, 2.0, 15.0))
    x0, y0, x1, y1 = link_offsets(ds, offset)
    segs = np.stack([np.stack([x0, y0], -1), np.stack([x1, y1], -1)], 1)
    shaped = link_polylines(ds, x0, y0, x1, y1)  # the roads' shapes where the run has them (issue 13)
    if shaped is not None:
        segs = shaped
    lanes = np.asarray(ds["link_lanes"].values, dtype=np.float64) if "link_lanes" in ds else np.ones(L.shape)
    widths = 0.6 + 0.55 * np.clip(lanes, 1, 5)
    mask = intervened_mask(res)
    handles = []
    if mask.any():
        ax.add_collection(
            LineCollection(segs[mask], colors="#ff00ff", linewidths=widths[mask] + 5.0, zorder=1, alpha=0.85)
        )
        handles.append(Line2D([], [], color="#ff00ff", lw=5, label=f"intervened link ({int(mask.sum())})"))
    # the whole network in grey beneath: links without a value (or, on difference maps, unchanged) stay visible
    # matplotlib's stubs ask for a Sequence of lines; an (n, 2, 2) array is one at run time
    ax.add_collection(LineCollection(segs, colors="#c8c8c8", linewidths=widths, zorder=2))  # type: ignore[arg-type]
    shown = np.isfinite(values)
    if hide_zero:
        shown &= np.abs(np.nan_to_num(values)) > 1e-9
    lc = LineCollection(
        segs[shown],
        cmap=cmap,
        norm=norm,
        linewidths=widths[shown] + (0.8 if hide_zero else 0.0),
        zorder=3,
        capstyle="round",
    )
    lc.set_array(values[shown])
    ax.add_collection(lc)
    cb = fig.colorbar(lc, ax=ax, shrink=0.8, pad=0.02)
    cb.set_label(label)
    _draw_sites(ax, res, handles)
    if overlay is not None:
        overlay(ax, segs, widths, handles)
    inc = incidents_at(res, t)
    if inc is not None and inc.active.any():
        a = inc.active
        ax.scatter(inc.x[a], inc.y[a], marker="X", s=90, c="#ff7f0e", edgecolors="black", linewidths=0.8, zorder=6)
        handles.append(
            Line2D(
                [], [], ls="", marker="X", color="#ff7f0e", markeredgecolor="black", label=f"incident ({int(a.sum())})"
            )
        )
    xs, ys = np.concatenate([x0, x1]), np.concatenate([y0, y1])
    if shaped is not None and len(shaped):
        pts = np.concatenate(list(shaped))
        xs, ys = pts[:, 0], pts[:, 1]
    _frame_with_scale_bar(ax, xs, ys)
    if handles:
        ax.legend(
            handles=handles,
            loc="upper left",
            bbox_to_anchor=(0.0, -0.02),
            ncol=min(len(handles), 4),
            fontsize=8,
            frameon=False,
        )


def speed_map_figure(res: Results, index: int, *, why: str | None = None) -> Figure:
    """Links coloured by speed as a share of free flow in output interval ``index`` of a run,
    closed links in the closure colour, lanes lost, evacuation zones, road and station names.
    """
    ds = res.ds
    rel = relative_speed(ds, index)
    fig = Figure(figsize=(8.5, 8))
    ax = fig.add_subplot()
    t = float(res.times[index])
    labels = res.clock_labels()
    start = labels[index - 1] if index > 0 else clock_label(res.start_clock_s)

    def overlay(ax, segs, widths, handles):
        draw_operations(ax, ds, segs, widths, handles, index=index, start_clock_s=res.start_clock_s)

    _map_base(
        ax,
        res,
        rel,
        cmap="RdYlGn",
        norm=Normalize(0.0, 100.0),
        label="speed as a share of free flow (%)",
        fig=fig,
        t=t,
        overlay=overlay,
    )
    if why is None:
        why = "busiest interval" if index == time_index(res, None) else ""
    ax.set_title(f"{res.name}: speed against free flow, {start}-{labels[index]}" + (f" ({why})" if why else ""))
    return fig


def _symmetric_norm(values: np.ndarray, floor: float) -> TwoSlopeNorm:
    """Limits +-lim around zero: the 98th percentile of the changes, at least ``floor``."""
    finite = np.abs(values[np.isfinite(values)])
    lim = float(np.percentile(finite, 98)) if finite.size else 0.0
    lim = max(lim, float(finite.max()) * 0.05 if finite.size else 0.0, floor)
    return TwoSlopeNorm(vcenter=0.0, vmin=-lim, vmax=lim)


def speed_difference(res: Results) -> np.ndarray:
    """Per link, scenario minus baseline speed (km/h), mean over the output intervals."""
    sp = res.ds["link_speed"]
    extra = [d for d in sp.dims if d not in ("variant", "time", "link")]
    if extra:
        sp = sp.mean(extra)
    diff = (sp.sel(variant="scenario") - sp.sel(variant="baseline")).mean("time")
    return np.asarray(diff.values, dtype=np.float64) * 3.6


def flow_difference(res: Results) -> np.ndarray | None:
    """Per link, scenario minus baseline vehicles over the run (NaN-free), or None without flows."""
    if "link_outflow" not in res.ds:
        return None
    fl = res.ds["link_outflow"]
    extra = [d for d in fl.dims if d not in ("variant", "time", "link")]
    if extra:
        fl = fl.mean(extra)
    diff = (fl.sel(variant="scenario") - fl.sel(variant="baseline")).sum("time")
    return np.asarray(diff.values, dtype=np.float64)


def difference_map_figure(res: Results, what: str = "speed") -> Figure:
    """Links coloured by the scenario's change against the baseline: ``"speed"`` or ``"flow"``."""
    values: np.ndarray | None
    if what == "speed":
        values = speed_difference(res)
        label, cmap = "speed change, scenario − baseline (km/h); grey: unchanged", "RdBu"
        title = f"{res.name}: change in link speed (mean over the run)"
    else:
        values = flow_difference(res)
        if values is None:
            raise ValueError("no link_outflow in the comparison")
        label, cmap = "change in vehicles over the run; grey: unchanged", "PuOr_r"
        title = f"{res.name}: change in link volume (vehicles over the run)"
    fig = Figure(figsize=(8.5, 8))
    ax = fig.add_subplot()
    _map_base(
        ax,
        res,
        values,
        cmap=cmap,
        norm=_symmetric_norm(values, 0.5 if what == "speed" else 1.0),
        label=label,
        fig=fig,
        t=None,
        hide_zero=True,
    )
    if not np.any(np.abs(np.nan_to_num(values)) > 1e-9):
        ax.text(
            0.5,
            0.5,
            "no link changed",
            transform=ax.transAxes,
            ha="center",
            va="center",
            fontsize=14,
            color="#555555",
            bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none"},
        )
    ax.set_title(title)
    return fig


def _travel_times(res: Results) -> dict[str, np.ndarray]:
    out = {}
    for v, arr in _variants(res, "trip_travel_time_s").items():
        a = arr.ravel()
        out[v] = a[np.isfinite(a)] / 60.0
    return out


def travel_time_figure(res: Results) -> Figure:
    """Travel-time histogram and cumulative distribution of completed trips (minutes)."""
    fig = Figure(figsize=(10, 4))
    ax1, ax2 = fig.subplots(1, 2)
    if "trip_travel_time_s" not in res.ds:
        for ax in (ax1, ax2):
            ax.text(0.5, 0.5, "no trip_travel_time_s in the results", transform=ax.transAxes, ha="center")
        return fig
    tts = _travel_times(res)
    allv = np.concatenate([a for a in tts.values() if a.size] or [np.zeros(1)])
    hi = float(np.percentile(allv, 99.5)) if allv.size else 1.0
    bins = np.linspace(0.0, max(hi, 1.0), 50)
    for v, a in tts.items():
        color = VARIANT_COLORS[v]
        n = a.size
        if n == 0:
            continue
        mean = float(a.mean())
        label = (
            f"{v}: {n:,} trips, mean {mean:.1f} min" if v != "run" else f"{n:,} completed trips, mean {mean:.1f} min"
        )
        ax1.hist(
            np.clip(a, 0, bins[-1]),
            bins=bins,
            histtype="step" if res.kind == "comparison" else "stepfilled",
            density=res.kind == "comparison",
            color=color,
            alpha=1.0 if res.kind == "comparison" else 0.75,
            lw=1.6,
            label=label,
        )
        xs = np.sort(a)
        ax2.plot(xs, np.arange(1, n + 1) / n * 100.0, color=color, lw=1.8, label=v)
        ax1.axvline(mean, color=color, ls=":", lw=1.2)
    ax1.set_xlabel("travel time (min)")
    ax1.set_ylabel("share of trips (density)" if res.kind == "comparison" else "trips")
    ax1.legend(fontsize=8, frameon=False, loc="upper right")
    ax1.set_title("distribution (last bin: longer trips)")
    ax2.set_xlabel("travel time (min)")
    ax2.set_ylabel("trips completed within (%)")
    ax2.set_xlim(0, bins[-1])
    ax2.set_ylim(0, 100)
    ax2.set_title("cumulative")
    if res.kind == "comparison":
        ax2.legend(fontsize=8, frameon=False, loc="lower right")
    for ax in (ax1, ax2):
        ax.grid(True, alpha=0.3)
    fig.suptitle(f"{res.name}: travel times of completed trips", fontsize=12)
    fig.tight_layout()
    return fig


def kpi_change_figure(rows: list[dict]) -> Figure | None:
    """Relative change of each KPI (scenario vs baseline, %) with its 95% interval.

    Rows whose baseline is zero or missing are left out; ``None`` when none remain.
    """
    keep = []
    for r in rows:
        b, d, lo, hi = (r.get(k) for k in ("baseline", "difference", "ci_low", "ci_high"))
        if not (is_finite_number(b) and is_finite_number(d)) or b == 0:
            continue
        lo = lo if is_finite_number(lo) else d
        hi = hi if is_finite_number(hi) else d
        keep.append(
            (
                r.get("label") or r.get("key", "?"),
                100 * d / abs(b),
                100 * lo / abs(b),
                100 * hi / abs(b),
                bool(r.get("significant")),
            )
        )
    if not keep:
        return None
    fig = Figure(figsize=(8, 0.42 * len(keep) + 1.4))
    ax = fig.add_subplot()
    ys = np.arange(len(keep))[::-1]
    for y, (_label, d, lo, hi, sig) in zip(ys, keep, strict=False):
        color = "#d62728" if sig else "#9a9a9a"
        ax.plot([lo, hi], [y, y], color=color, lw=2.2)
        ax.plot([d], [y], "o", color=color, ms=6)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(ys)
    ax.set_yticklabels([k[0] for k in keep], fontsize=9)
    ax.set_xlabel("change against the baseline (% of baseline), with 95% interval")
    ax.set_title("KPI changes (grey: not significant, the interval contains zero)", fontsize=10)
    ax.grid(True, axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def convergence_figure(eq) -> Figure:
    """Day-to-day convergence from an ``equilibrium.nc`` Dataset: the relative gap per
    iteration (log scale, with the target) and the mean travel time and vehicle-hours.
    """
    it = np.asarray(eq["iteration"].values)
    gap = 100.0 * np.asarray(eq["relative_gap"].values, dtype=np.float64)
    fig = Figure(figsize=(10, 3.6))
    ax1, ax2 = fig.subplots(1, 2)
    pos = np.where(gap > 0, gap, np.nan)
    ax1.plot(it, pos, "o-", color=VARIANT_COLORS["scenario"], ms=4)
    finite = pos[np.isfinite(pos)]
    if finite.size and finite.max() > 10.0 * finite.min():  # a wide range: log scale, plain labels
        ax1.set_yscale("log")
        ax1.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    target = eq.attrs.get("gap_target")
    if isinstance(target, (int, float, np.floating)) and target > 0:
        ax1.axhline(100.0 * float(target), color="black", lw=0.8, ls="--", label=f"target {100 * float(target):g} %")
        ax1.legend(fontsize=8)
    ax1.set_xlabel("day (iteration)")
    ax1.set_ylabel("relative gap (%)")
    ax1.set_title("Relative gap: experienced vs best possible", fontsize=10)
    ax1.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax1.grid(True, alpha=0.3)
    ax2.plot(it, np.asarray(eq["mean_travel_time_s"].values), "o-", color=VARIANT_COLORS["run"], ms=4)
    ax2.set_xlabel("day (iteration)")
    ax2.set_ylabel("mean travel time (s)", color=VARIANT_COLORS["run"])
    ax2.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax2.grid(True, alpha=0.3)
    ax3 = ax2.twinx()
    ax3.plot(it, np.asarray(eq["vehicle_hours"].values), "s--", color=VARIANT_COLORS["baseline"], ms=3)
    ax3.set_ylabel("vehicle-hours", color=VARIANT_COLORS["baseline"])
    ax2.set_title("Mean travel time and vehicle-hours", fontsize=10)
    method = eq.attrs.get("method", "")
    fig.suptitle(f"Day-to-day equilibrium ({method}): {int(it.size)} days", fontsize=12)
    fig.tight_layout()
    return fig
