"""The report's figure sections, in order, each ``(name, title, PNG bytes, caption)``.

:func:`traffic_sections` gives the KPI changes, convergence, the day's time series and the
maps; :func:`operations_sections` what emergency teams read (coverage, response, units,
incidents, hospitals, evacuation, shadow mode); :func:`travel_section` the travel times.
Each draws only what the folder has data for.
"""

from __future__ import annotations

import logging

import numpy as np

from viz import charts
from viz.data import Results, intervened_mask, open_equilibrium
from viz.timeaxis import time_events

__all__ = ["Section", "traffic_sections", "operations_sections", "travel_section", "stranded_note"]

log = logging.getLogger(__name__)

Section = tuple[str, str, bytes, str]


def _png(fig) -> bytes:
    return charts.png_bytes(fig)


def _overview(res: Results, rows: list[dict]) -> list[Section]:
    out: list[Section] = []
    if res.kind == "comparison":
        f = charts.kpi_change_figure(rows)
        if f is not None:
            out.append(
                (
                    "kpi-changes",
                    "KPI changes",
                    _png(f),
                    "Each KPI's change as a share of its baseline value; the bar is the 95% interval over replications.",
                )
            )
    eq = open_equilibrium(res)
    if eq is not None:
        final = float(eq["relative_gap"].values[-1])
        out.append(
            (
                "convergence",
                "Convergence to equilibrium",
                _png(charts.convergence_figure(eq)),
                f"Day-to-day equilibrium: the results above are of day {eq.sizes['iteration']}, after travellers "
                f"learnt the link travel times by time of day ({eq.attrs.get('method', '')}); relative gap "
                f"{100 * final:.2f} % on the final day (sum over trips of experienced minus best possible travel time, "
                "over the best possible).",
            )
        )
    out.append(
        (
            "timeseries",
            "Through the day",
            _png(charts.timeseries_figure(res, events=_scenario_events(res))),
            "Network speed (vehicle-km over vehicle-hours on the links), vehicles on the network beside the trips "
            "stranded (waiting for a route: they leave the road, so the network may clear while they wait), and "
            "trips completed, per output interval. Dashed lines: interventions, orders, road closures and "
            "reopenings; ticks along the bottom: incidents.",
        )
    )
    return out


def _scenario_events(res: Results) -> list | None:
    """A comparison's time markers: those of its scenario's run folder (``scenario/``), if kept."""
    if res.kind != "comparison" or not (res.path / "scenario" / "results.nc").is_file():
        return None
    try:
        return time_events(res.variant("scenario").ds)
    except Exception as exc:  # noqa: BLE001 -- the markers are optional in a comparison report
        log.info("no time markers: %s", exc)
        return None


def _most_closed(res: Results) -> int | None:
    ds = res.ds
    if "link_closed" not in ds or ds["link_closed"].dims != ("time", "link"):
        return None
    n = (np.asarray(ds["link_closed"].values) == 1).sum(axis=1)
    return int(np.argmax(n)) if n.size and n.max() > 0 else None


def _maps(res: Results, index: int | None) -> list[Section]:
    """The speed-change maps of a comparison; a run's speed map (busiest interval ``index``) and,
    when links were closed at another time, the map of the interval with the most closures.
    """
    mark = intervened_mask(res)
    marked = f" Intervened links ({int(mark.sum())}) are outlined in magenta." if mark.any() else ""
    if res.kind == "comparison":
        out = [
            (
                "map-speed-change",
                "Map: speed change",
                _png(charts.difference_map_figure(res, "speed")),
                "Scenario minus baseline link speed, averaged over the run (red: slower). Each direction of a road "
                "is drawn on its own side." + marked,
            )
        ]
        if "link_outflow" in res.ds:
            out.append(
                (
                    "map-volume-change",
                    "Map: volume change",
                    _png(charts.difference_map_figure(res, "flow")),
                    "Scenario minus baseline vehicles through each link over the run (orange: more)." + marked,
                )
            )
        return out
    assert index is not None  # a run's busiest interval
    ops = (
        " Closed links are dashed black (never coloured as free-flowing), links with lanes or capacity lost have a "
        "blue band; evacuation zones are hatched; stations opened in the run are ringed."
    )
    out = [
        (
            "map-speed",
            "Map: speed against free flow",
            _png(charts.speed_map_figure(res, index)),
            "Link speed as a share of its free-flow speed in the busiest interval (most vehicles on the network), so a "
            "30 km/h street at free flow is green. Each direction of a road is drawn on its own side; width grows "
            "with lanes." + ops + marked,
        )
    ]
    k = _most_closed(res)
    if k is not None and k != index:
        out.append(
            (
                "map-closures",
                "Map: when most roads were closed",
                _png(charts.speed_map_figure(res, k, why="most roads closed")),
                "The same map in the interval with the most closed links." + ops,
            )
        )
    return out


def traffic_sections(res: Results, rows: list[dict], index: int | None) -> list[Section]:
    """KPI changes (comparisons), convergence (equilibrated runs), the day's series, the maps."""
    return _overview(res, rows) + _maps(res, index)


def _coverage(res: Results) -> list[Section]:
    from viz.coverage import COVERAGE_TARGET_S, coverage_figure, quiet_and_busy

    if res.kind == "comparison":
        try:
            runs = [(res.variant(v), v) for v in ("baseline", "scenario")]
        except Exception as exc:  # noqa: BLE001 -- the variants' run folders are optional in a comparison folder
            log.info("no coverage map: %s", exc)
            return []
        panels = [(r.ds, int(np.argmax(r.ds["network_vehicles"].values)), v) for r, v in runs]
        what = "the baseline and the scenario, each in its busiest interval"
    else:
        if "station_kind" not in res.ds or "network_vehicles" not in res.ds or res.ds.sizes.get("time", 0) < 2:
            return []  # runs without the emergency component have no stations to speak of
        quiet, busy = quiet_and_busy(res.ds)
        panels = [(res.ds, quiet, "quietest"), (res.ds, busy, "busiest")]
        what = "the quietest and the busiest interval (fewest and most vehicles on the network)"
    made = coverage_figure(panels, start_clock_s=res.start_clock_s)
    if made is None:
        return []
    targets = ", ".join(f"{k} {v / 60:g} min" for k, v in COVERAGE_TARGET_S.items())
    return [
        (
            "coverage",
            "Coverage: what the stations reach in time",
            _png(made[0]),
            f"Travel time from the nearest in-service station of each kind to every intersection (targets: {targets}), "
            f"by shortest paths over the recorded link travel times of {what}; closed links are left out and "
            "emergency vehicles' speed factor is not applied. Stars: stations.",
        )
    ]


def operations_sections(res: Results) -> list[Section]:
    """Coverage, the emergency figures, evacuation and shadow-mode figures the folder has data for."""
    from viz.evacuation import evacuation_figure
    from viz.live import demand_figure, open_assimilation, sensor_figure
    from viz.ops_charts import emergency_sections

    out = _coverage(res)
    if res.kind != "run":
        return out
    ds, start = res.ds, res.start_clock_s
    out += emergency_sections(ds, start_clock_s=start, targets=_scenario_targets(res))
    fig = evacuation_figure(ds, start_clock_s=start, share=_clearance_share(res))
    if fig is not None:
        out.append(
            (
                "evacuation",
                "Evacuation",
                _png(fig),
                "Top: share of the ordered population safe over time, from the order; the clearance time is until "
                "the scenario's clearance share is safe. Bottom: vehicles leaving the ordered zones on each exit link.",
            )
        )
    asm = open_assimilation(res.path)
    if asm is not None:
        names = np.asarray(ds["link_name"].values, dtype=str) if "link_name" in ds else None
        events = time_events(ds)
        fig = sensor_figure(asm, start_clock_s=start, names=names, events=events)
        if fig is not None:
            out.append(
                (
                    "live-sensors",
                    "Shadow mode: observed against estimated",
                    _png(fig),
                    "The sensors with the most observations: the feed's counts and speeds (dots) against the "
                    "ensemble's estimate (line) and its 90 % band (5th-95th percentile).",
                )
            )
        zones = [str(v) for v in ds["zone_name"].values] if "zone_name" in ds else None
        fig = demand_figure(asm, start_clock_s=start, zone_names=zones, events=events)
        if fig is not None:
            out.append(
                (
                    "live-demand",
                    "Shadow mode: demand factors",
                    _png(fig),
                    "The estimated demand level of each hour (x the scenario's, with its 90 % band) and the origin "
                    "zones' scales (grey: all; coloured: the four furthest from 1, with ± 1 sd over the ensemble).",
                )
            )
    return out


def _scenario_targets(res: Results) -> dict:
    """Response-time targets by incident type (``incidents.types.<type>.target``) of the scenario."""
    types = (res.scenario_doc.get("incidents") or {}).get("types") or {}
    if not isinstance(types, dict):
        return {}
    return {str(k): v["target"] for k, v in types.items() if isinstance(v, dict) and isinstance(v.get("target"), dict)}


def _clearance_share(res: Results) -> float:
    """The scenario's ``population.evacuation.clearance_share`` (from ``scenario.yaml``), else 0.9."""
    from viz.evacuation import DEFAULT_CLEARANCE_SHARE

    try:
        evac = (res.scenario_doc.get("population") or {}).get("evacuation") or {}
        value = float(evac.get("clearance_share", "nan"))
    except (AttributeError, TypeError, ValueError):
        return DEFAULT_CLEARANCE_SHARE
    return value if 0 < value <= 1 else DEFAULT_CLEARANCE_SHARE  # NaN (not given) fails both


def travel_section(res: Results) -> Section:
    """The travel-time distribution of completed trips."""
    return (
        "travel-times",
        "Travel times",
        _png(charts.travel_time_figure(res)),
        "Travel time from scheduled departure to arrival, completed trips only.",
    )


def stranded_note(res: Results, rows: list[dict]) -> str:
    """A sentence on the trips stranded at the end (plain text; empty when none)."""
    by = {r.get("key"): r for r in rows}
    row, total = by.get("trips_stranded"), by.get("trips_total")
    if row is None:
        return ""
    if res.kind == "run":
        n, of = row.get("value"), (total or {}).get("value")
        if not n:
            return ""
        share = f" ({100 * n / of:.1f} % of {of:,.0f} trips)" if of else ""
        return f"{n:,.0f} trips{share} were stranded at the end: waiting for a route, or with none on the network."
    b, s = row.get("baseline"), row.get("scenario")
    if not b and not s:
        return ""
    return f"Trips stranded at the end (waiting for a route, or none): baseline {b:,.0f}, scenario {s:,.0f} (mean over replications)."
