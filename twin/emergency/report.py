"""Results of the emergency component: time series, the incident/unit tables, KPIs.

Variables (see :func:`data_vars`): an ``incident`` dim (type, severity, place, the
time of each stage, units sent, response time = first unit on scene - reported), a
``unit`` dim (kind, station, busy fraction), ``units_available`` by ``unit_type`` over
``time``, incidents waiting and active, hospital occupancy, and the after-action log
as an ``event`` dim.
"""

from __future__ import annotations

import math

import numpy as np
import xarray as xr

from scenarios.emergency import DEFAULT_INCIDENT_TYPES
from twin.emergency.incidents import STAGES
from twin.emergency.resources import BUSY, UNIT_STATES

__all__ = ["sample", "data_vars", "kpis", "KPI_LABELS", "target_value"]

_UNIT_KINDS = ("engine", "ladder", "ambulance", "police", "tow")

#: stage name -> Incident attribute with its time ("" : the road cleared, crashes)
_STAGE_ATTRS = {
    "occurred": "t_occur",
    "reported": "t_reported",
    "dispatched": "t_dispatched",
    "en_route": "t_enroute",
    "on_scene": "t_on_scene",
    "scene_closed": "t_scene_closed",
    "transport": "t_transport",
    "at_hospital": "t_hospital",
    "road_cleared": "",
    "cleared": "t_cleared",
}


def _labels() -> dict[str, tuple[str, str]]:
    out = {
        "incidents_total": ("Incidents", ""),
        "incidents_cleared": ("Incidents cleared", ""),
        "incidents_open": ("Incidents still open at the end", ""),
        "incidents_waited": ("Incidents that waited for a unit", ""),
        "incidents_waiting_max": ("Most incidents waiting at once", ""),
        "incidents_waiting_end": ("Incidents waiting at the end", ""),
        "unit_utilization_pct": ("Unit utilization (mean busy time)", "%"),
        "mutual_aid_dispatches": ("Mutual-aid dispatches", ""),
        "hospital_occupancy_peak_pct": ("Hospital occupancy, peak (fullest hospital)", "%"),
        "patients_admitted": ("Patients taken to hospital", ""),
    }
    for t in DEFAULT_INCIDENT_TYPES:
        words = t.replace("_", " ")
        out[f"response_p50_s_{t}"] = (f"Response time p50, {words}", "s")
        out[f"response_p90_s_{t}"] = (f"Response time p90, {words}", "s")
        out[f"within_target_pct_{t}"] = (f"Within target, {words}", "%")
    for k in _UNIT_KINDS:
        out[f"utilization_pct_{k}"] = (f"Utilization, {k}", "%")
    return out


#: KPI key -> (label, unit)
KPI_LABELS: dict[str, tuple[str, str]] = _labels()


def sample(comp, t: float) -> None:
    """One row of the time series at output time ``t``."""
    s = comp.series
    s["time"].append(float(t))
    free = comp.fleet.count_by_kind(comp.fleet.free_mask())
    s["available"].append(free.tolist())
    s["waiting"].append(len(comp.book.queue))
    s["active"].append(comp.book.n_open)
    s["hospital"].append([h.occupied(t) for h in comp.hospitals])


def target_value(comp, inc) -> float:
    """The incident's value of its type's target measure (NaN: no target or not reached)."""
    tgt = comp.types[inc.type].target
    if tgt is None or math.isnan(inc.target_t):
        return math.nan
    return inc.target_travel_s if tgt.measure == "travel" else inc.target_t - inc.t_reported


def _busy(comp, u, now: float) -> float:
    extra = now - u.busy_since if u.state in BUSY and math.isfinite(u.busy_since) else 0.0
    return u.busy_s + extra


def _var(dims, data, units: str, long_name: str) -> xr.Variable:
    return xr.Variable(dims, data, attrs={"units": units, "long_name": long_name})


def _str(values) -> np.ndarray:
    return np.asarray(list(values), dtype=str) if len(values) else np.zeros(0, dtype="<U1")


def data_vars(comp) -> dict[str, xr.Variable]:
    """The component's variables and coordinates for the run's Dataset."""
    net = comp.twin.city.network
    now = comp.twin.now
    out = _incident_vars(comp, net, now)
    out.update(_unit_vars(comp, now))
    out.update(_station_vars(comp, net))
    out.update(_series_vars(comp))
    out.update(_event_vars(comp, net))
    return out


def _incident_vars(comp, net, now: float) -> dict[str, xr.Variable]:
    """One row per incident: its stages' times, type, place, response and outcome."""
    incs = comp.incidents
    f = lambda attr: np.asarray([getattr(i, attr) for i in incs], np.float64)  # noqa: E731
    node = np.asarray([i.node for i in incs], np.int64)
    status = ["cleared" if not i.open else f"open ({STAGES[i.stage]})" for i in incs]
    wait = f("t_dispatched") - f("t_reported")
    target_s = np.asarray([target_value(comp, i) for i in incs], np.float64)
    met = np.full(len(incs), np.nan)
    for k, i in enumerate(incs):
        tgt = comp.types[i.type].target
        if tgt is not None and np.isfinite(target_s[k]):
            met[k] = float(target_s[k] <= tgt.seconds)
    d = ("incident",)
    road = np.where(np.isfinite(f("t_clear_end")) & (f("t_clear_end") <= now), f("t_clear_end"), np.nan)
    times = (
        np.stack([f(a) if a else road for a in _STAGE_ATTRS.values()], axis=-1)
        if incs
        else np.zeros((0, len(_STAGE_ATTRS)))
    )
    return {
        "coord:incident": _var(d, np.arange(len(incs), dtype=np.int64), "1", "incident id"),
        "coord:stage": _var(("stage",), _str(list(_STAGE_ATTRS)), "1", "incident life-cycle stage"),
        "incident_time": _var(
            ("incident", "stage"), times, "s", "time each stage was reached, since the start (NaN: not reached)"
        ),
        "incident_type": _var(d, _str([i.type for i in incs]), "1", "incident type"),
        "incident_severity": _var(
            d, np.asarray([i.severity for i in incs], np.int64), "1", "severity level (1 minor - 5 major)"
        ),
        "incident_priority": _var(
            d, np.asarray([i.priority for i in incs], np.int64), "1", "dispatch priority (higher first)"
        ),
        "incident_source": _var(d, _str([i.source for i in incs]), "1", "drill, random or inject"),
        "incident_node": _var(
            d,
            net.node_osmid[node] if len(incs) else np.zeros(0, np.int64),
            "1",
            "node units drive to (source id; see node_x, node_y)",
        ),
        "incident_links": _var(
            d,
            _str([" ".join(map(str, net.link_osmid[list(i.links)])) for i in incs]),
            "1",
            "links it reduced or closed (source ids, space-separated)",
        ),
        "incident_notes": _var(d, _str([i.notes for i in incs]), "1", "notes from the drill timeline or inject"),
        "incident_status": _var(d, _str(status), "1", "cleared, or open with the stage reached at the end"),
        "incident_units_sent": _var(
            d, np.asarray([i.units_sent for i in incs], np.int64), "1", "units dispatched to it"
        ),
        "incident_response_s": _var(d, f("t_on_scene") - f("t_reported"), "s", "first unit on scene minus reported"),
        "incident_wait_s": _var(d, wait, "s", "reported to first unit assigned (queueing for a free unit)"),
        "incident_first_travel_s": _var(d, f("first_travel_s"), "s", "driving time of the first unit on scene"),
        "incident_target_s": _var(d, target_s, "s", "value of the type's response-time target measure"),
        "incident_target_met": _var(d, met, "1", "1 when within the type's target, 0 when not, NaN: no value"),
        "incident_hospital": _var(
            d,
            _str([comp.hospitals[i.hospital].name if i.hospital >= 0 else "" for i in incs]),
            "1",
            "hospital the patient was taken to",
        ),
    }


def _unit_vars(comp, now: float) -> dict[str, xr.Variable]:
    """One row per unit: name, kind, station, time busy, dispatches, end state."""
    units = comp.units
    du = ("unit",)
    span = max(now, 1e-9)
    busy = np.asarray([_busy(comp, u, now) for u in units], np.float64)
    return {
        "coord:unit": _var(du, np.arange(len(units), dtype=np.int64), "1", "unit id"),
        "unit_name": _var(du, _str(comp.fleet.names[: len(units)]), "1", "unit name"),
        "unit_kind": _var(du, _str([u.kind for u in units]), "1", "unit kind"),
        "unit_station": _var(du, _str([comp.stations[u.station].name for u in units]), "1", "home station at the end"),
        "unit_busy_s": _var(du, busy, "s", "time committed to incidents (dispatch to release)"),
        "unit_busy_fraction": _var(du, busy / span, "1", "share of the run the unit was committed to incidents"),
        "unit_dispatches": _var(du, np.asarray([u.dispatches for u in units], np.int64), "1", "times dispatched"),
        "unit_state_end": _var(du, _str([UNIT_STATES[u.state] for u in units]), "1", "state at the end"),
    }


def _station_vars(comp, net) -> dict[str, xr.Variable]:
    """One row per station."""
    st = comp.stations
    ds_ = ("station",)
    return {
        "coord:station": _var(ds_, np.arange(len(st), dtype=np.int64), "1", "station index"),
        "station_name": _var(ds_, _str([s.name for s in st]), "1", "station name"),
        "station_kind": _var(ds_, _str([s.kind for s in st]), "1", "fire, ems, police or tow"),
        "station_node": _var(ds_, np.asarray([net.node_osmid[s.node] for s in st], np.int64), "1", "node (source id)"),
        "station_mutual_aid": _var(ds_, np.asarray([s.mutual_aid for s in st], np.int8), "1", "1: mutual-aid station"),
        "station_in_service_end": _var(
            ds_, np.asarray([s.in_service and not s.removed for s in st], np.int8), "1", "1: in service at the end"
        ),
    }


def _series_vars(comp) -> dict[str, xr.Variable]:
    """Time series (units available, incidents waiting and active) and hospitals."""
    s = comp.series
    nt = len(s["time"])
    hs = comp.hospitals
    return {
        "coord:unit_type": _var(("unit_type",), _str(comp.fleet.kinds), "1", "unit kind"),
        "units_available": _var(
            ("time", "unit_type"),
            np.asarray(s["available"], np.int64).reshape(nt, len(comp.fleet.kinds)),
            "1",
            "units free to dispatch (at station or returning, station in service)",
        ),
        "incidents_waiting": _var(("time",), np.asarray(s["waiting"], np.int64), "1", "incidents waiting for a unit"),
        "incidents_active": _var(
            ("time",), np.asarray(s["active"], np.int64), "1", "incidents occurred and not cleared"
        ),
        "coord:hospital": _var(("hospital",), np.arange(len(hs), dtype=np.int64), "1", "hospital index"),
        "hospital_name": _var(("hospital",), _str([h.name for h in hs]), "1", "hospital name"),
        "hospital_beds": _var(("hospital",), np.asarray([h.beds for h in hs], np.int64), "1", "beds"),
        "hospital_admitted": _var(
            ("hospital",), np.asarray([h.admitted for h in hs], np.int64), "1", "patients brought in"
        ),
        "hospital_occupied": _var(
            ("time", "hospital"), np.asarray(s["hospital"], np.int64).reshape(nt, len(hs)), "1", "beds occupied"
        ),
    }


def _event_vars(comp, net) -> dict[str, xr.Variable]:
    """The after-action log, one row per event."""
    rows = comp.log.rows
    de = ("event",)
    enode = np.asarray([r[4] for r in rows], np.int64)
    return {
        "coord:event": _var(de, np.arange(len(rows), dtype=np.int64), "1", "event number (after-action log)"),
        "event_time_s": _var(de, np.asarray([r[0] for r in rows], np.float64), "s", "time since the start"),
        "event_kind": _var(de, _str([r[1] for r in rows]), "1", "what happened"),
        "event_incident": _var(de, np.asarray([r[2] for r in rows], np.int64), "1", "incident id (-1: none)"),
        "event_unit": _var(de, np.asarray([r[3] for r in rows], np.int64), "1", "unit id (-1: none)"),
        "event_node": _var(
            de,
            np.where(enode >= 0, net.node_osmid[np.maximum(enode, 0)], -1) if rows else enode,
            "1",
            "node (source id, -1: none)",
        ),
        "event_detail": _var(de, _str([r[5] for r in rows]), "1", "details"),
    }


def _pct(x) -> float:
    return float(100.0 * np.mean(x)) if len(x) else math.nan


def kpis(comp) -> dict[str, float]:
    """Response times by type, share within target, utilization, waiting, hospitals."""
    now = comp.twin.now
    incs = comp.incidents
    out: dict[str, float] = {
        "incidents_total": len(incs),
        "incidents_cleared": sum(1 for i in incs if not i.open),
        "incidents_open": sum(1 for i in incs if i.open),
    }
    shown = sorted(set(comp.spec.rates) | {d.type for d in comp.spec.drill} | {i.type for i in incs})
    for t in shown:
        r = np.asarray([i.t_on_scene - i.t_reported for i in incs if i.type == t and np.isfinite(i.t_on_scene)])
        out[f"response_p50_s_{t}"] = float(np.percentile(r, 50)) if r.size else math.nan
        out[f"response_p90_s_{t}"] = float(np.percentile(r, 90)) if r.size else math.nan
        tgt = comp.types[t].target
        vals = np.asarray([target_value(comp, i) for i in incs if i.type == t])
        vals = vals[np.isfinite(vals)]
        out[f"within_target_pct_{t}"] = _pct(vals <= tgt.seconds) if tgt is not None else math.nan
    frac = np.asarray([_busy(comp, u, now) / max(now, 1e-9) for u in comp.units])
    out["unit_utilization_pct"] = _pct(frac)
    for k in comp.fleet.kinds:
        out[f"utilization_pct_{k}"] = _pct([fr for fr, u in zip(frac, comp.units, strict=False) if u.kind == k])
    out["incidents_waited"] = sum(1 for i in incs if i.waited)
    out["incidents_waiting_max"] = comp.book.max_waiting
    out["incidents_waiting_end"] = len(comp.book.queue)
    out["mutual_aid_dispatches"] = comp.centre.mutual_aid_dispatches
    hs = comp.hospitals
    out["hospital_occupancy_peak_pct"] = max((100.0 * max(h.peak, h.occupied0) / h.beds for h in hs), default=math.nan)
    out["patients_admitted"] = sum(h.admitted for h in hs)
    return out
