"""The operations picture as plain JSON: the map once, then the state and its changes.

:func:`map_payload` is the static part (nodes, links, stations, hospitals, zones),
sent once per page.  :func:`state_payload` is the twin now: clock, KPIs, one speed
level per link, units, open incidents, stations, the latest log rows.
:func:`state_delta` is what changed between two states, so a browser that has the
older one can rebuild the newer one; a browser that connects (or reconnects) gets
the full state first.

Link levels: ``round(10 * free-flow time / current travel time)`` (0 standing
still .. 10 free flow), ``-1`` for a closed link.  ``restricted`` lists the links
with an active change that does not close them (a lane lost, a speed limit).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from basics.clock import format_clock
from basics.numeric import EPS
from twin.serve.geometry import road_labels, zone_hulls

__all__ = [
    "IncrementalKpis",
    "map_payload",
    "state_payload",
    "replay_payload",
    "state_delta",
    "apply_delta",
    "unit_positions",
    "CLOSED",
]

#: link level of a closed link
CLOSED = -1
#: log rows kept in the full state
LOG_ROWS = 200


def _num(v: Any) -> Any:
    """A JSON-safe number (NaN and inf become None; floats rounded to 3 decimals)."""
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        f = float(v)
        return round(f, 3) if math.isfinite(f) else None
    return v


class IncrementalKpis:
    """``twin.kpis()`` at every update without re-summing the recorded history.

    The network speed sums every recorded interval's link flows; this keeps that sum
    and adds only the intervals recorded since the last call
    (:func:`twin.results.link_sums`), so the values equal ``twin.kpis()`` exactly.
    A different recorder (the shadow's representative member changed) or a shorter
    one starts the sum again.
    """

    def __init__(self) -> None:
        self.rec: Any = None
        self.rows = 0
        self.sums = (0.0, 0.0)

    def __call__(self, twin: Any) -> dict[str, Any]:
        """The twin's KPIs now (as :meth:`twin.model.Twin.kpis`)."""
        from twin.results import compute_kpis, link_sums

        rec = twin.recorder
        if rec is not self.rec or len(rec.time) < self.rows:
            self.rec, self.rows, self.sums = rec, 0, (0.0, 0.0)
        self.sums = link_sums(rec, twin.traffic.links.length, start=self.rows, sums=self.sums)
        self.rows = len(rec.time)
        return compute_kpis(twin, sums=self.sums)


def map_payload(twin: Any) -> dict[str, Any]:
    """The static map: nodes, links and their names, stations, hospitals, zones, KPI labels.

    Parameters
    ----------
    twin
        A :class:`~twin.model.Twin`.

    Returns
    -------
    dict
        JSON-ready; coordinates are the network's projected metres; ``kpi_labels`` maps
        every KPI key to ``[label, unit]`` (:func:`twin.results.kpi_label_table`, and the
        forks' :data:`twin.live.fork.HORIZON_KPI_LABELS`).
    """
    from twin.live.fork import HORIZON_KPI_LABELS
    from twin.results import kpi_label_table, kpi_labels

    net = twin.city.network
    zones = twin.city.zones
    out: dict[str, Any] = {
        "city": twin.city.name,
        "scenario": twin.scenario.name,
        "n_nodes": int(net.n_nodes),
        "n_links": int(net.n_links),
        "x": np.round(net.x, 1).tolist(),
        "y": np.round(net.y, 1).tolist(),
        "src": net.src.tolist(),
        "dst": net.dst.tolist(),
        "link_name": [str(s) for s in net.link_name],
        "bounds": [float(net.x.min()), float(net.y.min()), float(net.x.max()), float(net.y.max())],
        "zones": [
            {"name": str(n), "x": round(float(x), 1), "y": round(float(y), 1)}
            for n, x, y in zip(zones.name, zones.x, zones.y, strict=True)
        ],
        "hospitals": [],
        "incident_types": [],
        "evacuation": "population" in twin.components,
        "zone_hulls": zone_hulls(net, zones),
        "bridges": np.flatnonzero(np.asarray([str(k) == "bridge" for k in net.link_kind], bool)).tolist(),
        "labels": road_labels(net),
        # KPI key -> [label, unit]: the run folders' table and the forks' horizon KPIs
        "kpi_labels": kpi_label_table(kpi_labels()) | {k: list(v) for k, v in HORIZON_KPI_LABELS.items()},
    }
    comp = twin.components.get("emergency")
    if comp is not None:
        out["hospitals"] = [
            {"name": h.name, "x": round(float(net.x[h.node]), 1), "y": round(float(net.y[h.node]), 1), "beds": h.beds}
            for h in comp.hospitals
        ]
        out["incident_types"] = sorted(comp.types)
    return out


def unit_positions(twin: Any, comp: Any) -> dict[str, list[Any]]:
    """Each unit's ``[x, y, kind, state, incident]`` now, interpolated along the link it is
    driving (``incident``: the id of the incident it serves, or ``None``).
    """
    from twin.emergency.resources import UNIT_STATES

    net = twin.city.network
    now = twin.now
    out: dict[str, list[Any]] = {}
    for u in comp.units:
        if u.done:
            continue
        x, y = (float(net.x[u.node]), float(net.y[u.node])) if u.node >= 0 else (math.nan, math.nan)
        n = u.path.shape[0]
        if n and now > u.t_depart:
            k = u.links_done(now)
            if k >= n:
                x, y = float(net.x[u.dest]), float(net.y[u.dest])
            else:
                a = int(u.path[k])
                t0 = u.t_depart if k == 0 else float(u.path_t[k - 1])
                t1 = float(u.path_t[k])
                f = 0.0 if t1 <= t0 else min(max((now - t0) / (t1 - t0), 0.0), 1.0)
                s, d = int(net.src[a]), int(net.dst[a])
                x = float(net.x[s] + f * (net.x[d] - net.x[s]))
                y = float(net.y[s] + f * (net.y[d] - net.y[s]))
        inc = int(u.incident) if u.incident >= 0 else None
        out[comp.unit_name(u.id)] = [round(x, 1), round(y, 1), u.kind, UNIT_STATES[u.state], inc]
    return out


def link_levels(twin: Any) -> tuple[list[int], list[int]]:
    """Speed level per link (see the module docstring) and the restricted, open links."""
    tm = twin.traffic
    tt = tm.measured_travel_times()
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(np.isfinite(tt) & (tt > 0), tm.links.free_tt / tt, 0.0)
    level = np.rint(np.clip(rel, 0.0, 1.0) * 10).astype(np.int64)
    closed = tm.links.is_open == 0
    level[closed] = CLOSED
    changed = np.asarray(sorted(twin.link_control.by_link), np.int64)
    restricted = changed[~closed[changed]] if changed.size else changed
    return level.tolist(), restricted.tolist()


def replay_payload(twin: Any, index: int) -> dict[str, Any]:
    """Recorded output interval ``index``: its clock time, link levels from the recorded
    speeds (relative to free flow) and vehicles on the network (the time slider).

    Raises
    ------
    IndexError
        No such interval recorded (yet).
    """
    rec = twin.recorder
    n = len(rec.time)
    if not 0 <= index < n:
        raise IndexError(f"interval {index} not recorded: 0-{n - 1}" if n else "no interval recorded yet")
    tm = twin.traffic
    free = tm.links.length / tm.links.free_tt
    rel = np.asarray(rec.link["speed"][index], np.float64) / free
    level = np.rint(np.clip(np.nan_to_num(rel, nan=1.0), 0.0, 1.0) * 10).astype(np.int64)
    return {
        "index": index,
        "n": n,
        "t": float(rec.time[index]),
        "clock": format_clock(twin.clock_s(float(rec.time[index])), with_seconds=False),
        "levels": level.tolist(),
        "on_network": int(rec.network["on_network"][index]),
    }


def _clock(twin: Any, t: float) -> str | None:
    return format_clock(twin.clock_s(t), with_seconds=False) if math.isfinite(t) else None


def _emergency_state(
    twin: Any, comp: Any, base_stations: frozenset[str] | None = None, kp: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Units, open incidents, stations, hospitals and the emergency KPIs panel.

    Stations: ``added`` when not in ``base_stations`` (those at the server's start);
    removed ones stay listed with ``removed`` (drawn struck out).
    """
    from twin.emergency.incidents import STAGES
    from twin.emergency.resources import DISPATCHABLE

    net = twin.city.network
    now = twin.now
    incidents = {
        str(i.id): {
            "type": i.type,
            "severity": i.severity,
            "stage": STAGES[i.stage],
            "x": round(float(net.x[i.node]), 1),
            "y": round(float(net.y[i.node]), 1),
            "units": len(i.assigned),
            "since": format_clock(twin.clock_s(i.t_occur), with_seconds=False),
            "reported": _clock(twin, i.t_reported),
            "dispatched": _clock(twin, i.t_dispatched),
            "on_scene": _clock(twin, i.t_on_scene),
            "notes": i.notes[:120],
        }
        for i in comp.incidents
        if i.open
    }
    stations = {}
    for s in comp.stations:
        if s.removed and s.name in stations:
            continue  # a station of that name is open again
        stations[s.name] = {
            "kind": s.kind,
            "x": round(float(net.x[s.node]), 1),
            "y": round(float(net.y[s.node]), 1),
            "in_service": bool(s.in_service),
            "added": base_stations is not None and s.name not in base_stations,
            "removed": bool(s.removed),
        }
    available: dict[str, list[int]] = {}
    for u in comp.units:
        if u.done:
            continue
        free = u.state in DISPATCHABLE and comp.stations[u.station].in_service
        a = available.setdefault(u.kind, [0, 0])
        a[0] += int(free)
        a[1] += 1
    response = {}
    kp = comp.kpis() if kp is None else kp  # the twin's KPIs hold the component's
    for t in sorted({i.type for i in comp.incidents}):
        target = comp.types[t].target
        response[t] = {
            "p50": _num(kp.get(f"response_p50_s_{t}")),
            "p90": _num(kp.get(f"response_p90_s_{t}")),
            "target": None if target is None else float(target.seconds),
            "n": sum(1 for i in comp.incidents if i.type == t),
        }
    hospitals = {h.name: [h.occupied(now), h.beds] for h in comp.hospitals}
    return {
        "units": unit_positions(twin, comp),
        "incidents": incidents,
        "stations": stations,
        "available": available,
        "response": response,
        "hospitals": hospitals,
    }


def log_rows(twin: Any, start: int, stop: int | None = None) -> list[dict[str, Any]]:
    """After-action log rows ``start:stop`` (clock, event, incident, unit, detail)."""
    comp = twin.components.get("emergency")
    if comp is None:
        return []
    from twin.emergency.log import after_action_rows

    rows = after_action_rows(comp, comp.log.rows[start:stop])
    keep = ("clock", "event", "incident", "incident_type", "unit", "detail", "x", "y")
    return [{k: r[k] for k in keep} for r in rows]


def evacuation_state(twin: Any) -> dict[str, Any] | None:
    """Ordered zones and their state, the shelters, and the share of the ordered safe.

    A zone is ``ordered`` until the first evacuee is safe, ``clearing`` while some who
    comply are still in it, ``clear`` when none is (those who refuse stay); with the
    number still to leave.  ``None`` before any order.
    """
    pop = twin.components.get("population")
    if pop is None:
        return None
    ev = pop.policies.evac  # the orders and who they reach (Evacuation)
    orders = ev.orders
    if not orders:
        return None
    target = np.asarray(ev.target)
    safe = ~np.isnan(np.asarray(ev.safe_t))
    complies = np.asarray(ev.status) == 1
    node_zone = np.asarray(pop.node_zone)
    nz = pop.zones.n_zones
    ordered = np.bincount(node_zone[np.asarray(ev.order_of_node) >= 0], minlength=nz) > 0
    left = target & ~safe & complies  # those who refuse stay: the zone is clear without them
    zone_now = node_zone[np.asarray(pop.node)]
    remaining = np.bincount(zone_now[left], minlength=nz)
    n_safe = int(np.count_nonzero(target & safe))
    net = twin.city.network
    shelters = sorted({int(n) for o in orders if o.get("shelters") is not None for n in o["shelters"]})
    zones = {}
    for z in np.flatnonzero(ordered):
        state = "clear" if remaining[z] == 0 else ("clearing" if n_safe else "ordered")
        zones[str(pop.zones.name[z])] = [state, int(remaining[z])]
    n_target = int(np.count_nonzero(target))
    return {
        "zones": zones,
        "shelters": [[round(float(net.x[n]), 1), round(float(net.y[n]), 1)] for n in shelters],
        "ordered": n_target,
        "safe": n_safe,
    }


def state_payload(
    twin: Any,
    *,
    seq: int,
    paused: bool,
    speed: float,
    extra: dict | None = None,
    base_stations: frozenset[str] | None = None,
    kpis: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The twin's state now, as the dashboard shows it (see the module docstring).

    Parameters
    ----------
    twin
        The running twin (read only; call from the thread that runs it).
    seq
        The state's number; deltas go from one number to the next.
    paused, speed
        The runner's pace, shown in the header.
    extra
        More top-level entries (forks, operator notes).
    base_stations
        The stations at the server's start (the others are marked ``added``).
    kpis
        ``twin.kpis()`` when the caller has them (:class:`IncrementalKpis`).

    Returns
    -------
    dict
        JSON-ready.
    """
    counts = twin.traffic.counts()
    raw = twin.kpis() if kpis is None else kpis
    kpis = {k: _num(v) for k, v in raw.items()}
    levels, restricted = link_levels(twin)
    comp = twin.components.get("emergency")
    n_log = len(comp.log) if comp is not None else 0
    state: dict[str, Any] = {
        "seq": seq,
        "t": round(twin.now, 3),
        "clock": format_clock(twin.clock_s(), with_seconds=True),
        "end": twin.duration_s,
        "finished": twin.now >= twin.duration_s - EPS,
        "paused": bool(paused),
        "speed": float(speed),
        "kpis": kpis,
        "traffic": {
            "on_network": counts["on_network"],
            "waiting": counts["waiting"],
            "stranded": counts["no_route"] + counts["no_path"],
            "arrived": counts["arrived"],
        },
        "levels": levels,
        "restricted": restricted,
        "recorded": len(twin.recorder.time),
        "log_total": n_log,
        "log": log_rows(twin, max(0, n_log - LOG_ROWS)),
    }
    if comp is not None:
        state.update(_emergency_state(twin, comp, base_stations, raw))
    evac = evacuation_state(twin)
    if evac is not None:
        state["evacuation"] = evac
    state.update(extra or {})
    return state


_KEYED = ("units", "incidents", "stations", "kpis", "available", "response", "hospitals", "traffic")


def state_delta(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """What changed from ``old`` to ``new``: :func:`apply_delta` (old, delta) == new.

    Keyed sections send changed entries in ``set`` and gone keys in ``drop``; link
    levels send the changed indices and values; the log sends rows after ``old``'s.
    """
    d: dict[str, Any] = {"delta": True, "base": old["seq"]}
    for k, v in new.items():
        if k in _KEYED:
            a, b = old.get(k, {}), v
            changed = {kk: vv for kk, vv in b.items() if a.get(kk) != vv}
            gone = [kk for kk in a if kk not in b]
            if changed or gone:
                d[k] = {"set": changed, "drop": gone}
        elif k == "levels":
            a_arr, b_arr = np.asarray(old["levels"]), np.asarray(v)
            idx = np.flatnonzero(a_arr != b_arr) if a_arr.shape == b_arr.shape else np.arange(b_arr.size)
            if idx.size:
                d["levels"] = {"idx": idx.tolist(), "val": b_arr[idx].tolist(), "n": int(b_arr.size)}
        elif k == "log":
            n_new = new["log_total"] - old["log_total"]
            if n_new > 0:
                d["log"] = v[-min(n_new, len(v)) :]
        elif old.get(k) != v:
            d[k] = v
    return d


def apply_delta(state: dict[str, Any], delta: dict[str, Any]) -> dict[str, Any]:
    """``state`` with ``delta`` applied (the browser does the same in JavaScript).

    Raises
    ------
    ValueError
        The delta was made from another state than ``state``.
    """
    if delta.get("base") != state.get("seq"):
        raise ValueError(f"delta from state {delta.get('base')} applied to state {state.get('seq')}")
    out = dict(state)
    for k, v in delta.items():
        if k in ("delta", "base"):
            continue
        if k in _KEYED:
            sec = {kk: vv for kk, vv in out.get(k, {}).items() if kk not in v["drop"]}
            sec.update(v["set"])
            out[k] = sec
        elif k == "levels":
            lv = list(out["levels"]) if len(out["levels"]) == v["n"] else [0] * v["n"]
            for i, x in zip(v["idx"], v["val"], strict=True):
                lv[i] = x
            out["levels"] = lv
        elif k == "log":
            out["log"] = (list(out["log"]) + v)[-LOG_ROWS:]
        else:
            out[k] = v
    return out
