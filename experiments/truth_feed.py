"""What the city platform sends from the truth run: sensor messages, alerts, and the faults of a live feed.

Used by :mod:`experiments.truth`; see its docstring for the sensor kinds. Every random
draw comes from the generator passed in, in a fixed order, so the same truth and seed
give the same messages byte for byte.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from collections.abc import Callable
from typing import Literal

import numpy as np

from twin.feeds.ngsi import AlertEvent, ClosureEvent, FeedClock, Observation, to_entity, to_normalized
from twin.feeds.sensors import LinkMapper

__all__ = ["record_feed", "EFFECTIVE_VEHICLE_LENGTH_M"]

#: occupancy = vehicles per metre of lane x this (vehicle length plus detector zone)
EFFECTIVE_VEHICLE_LENGTH_M = 6.5

_TFO = "urn:ngsi-ld:TrafficFlowObserved:"
_ALERT = "urn:ngsi-ld:Alert:"


def _heading(net, link: int) -> float:
    dx = float(net.x[net.dst[link]] - net.x[net.src[link]])
    dy = float(net.y[net.dst[link]] - net.y[net.src[link]])
    return round(math.degrees(math.atan2(dx, dy)) % 360.0, 3)


def _sensors(net, mapper: LinkMapper, cfg, rng: np.random.Generator) -> tuple[list[dict], list[dict]]:
    n = max(1, int(round(cfg.sensor_share * net.n_links)))
    links = np.sort(rng.choice(net.n_links, size=min(n, net.n_links), replace=False))
    kinds = rng.random(links.size)
    sensors, table = [], []
    for i, (link, u) in enumerate(zip(links, kinds, strict=False)):
        link = int(link)
        kind = "det" if u < 0.6 else "loop" if u < 0.85 else "cam"
        sid = f"{_TFO}{kind}-{i:03d}"
        sensors.append({"id": sid, "link": link, "kind": kind})
        if kind == "cam":
            if i % 2:
                table.append({"id": sid, "link": link})
            else:
                lon, lat = mapper.link_point(link)["coordinates"]
                table.append({"id": sid, "lon": lon, "lat": lat, "heading_deg": _heading(net, link)})
    return sensors, table


def _entity(sensor: dict, rec: Observation, clock: FeedClock, mapper: LinkMapper) -> dict:
    kind, link = sensor["kind"], sensor["link"]
    if kind == "det":
        r = Observation(
            rec.source,
            rec.id,
            rec.t,
            link,
            rec.interval_s,
            rec.flow_vph,
            rec.speed_mps,
            rec.occupancy,
            ref=mapper.segment_id(link),
        )
        return to_entity(r, clock=clock)
    if kind == "loop":
        r = Observation(
            rec.source,
            rec.id,
            rec.t,
            link,
            rec.interval_s,
            rec.flow_vph,
            round(rec.speed_mps, 2),
            rec.occupancy,
            location=mapper.link_line(link),
        )
        return to_entity(r, clock=clock, form="normalized", speed_unit="m/s")
    return to_entity(rec, clock=clock)


def _garble(entity: dict, kind: int, rng: np.random.Generator) -> tuple[str, object]:
    """A broken version of a message: ("raw", text) or ("payload", entity)."""
    if kind == 0:  # cut off in transit
        text = json.dumps(entity, separators=(",", ":"))
        return "raw", text[: int(rng.integers(10, max(11, len(text) - 5)))]
    e = dict(entity)
    if kind == 1:  # a value of the wrong type
        e["intensity"] = (
            "n/a"
            if "intensity" not in e or not isinstance(e["intensity"], dict)
            else {**e["intensity"], "value": "n/a"}
        )
    elif kind == 2:  # no time
        for k in ("dateObserved", "dateObservedFrom", "dateObservedTo"):
            e.pop(k, None)
        for k in ("intensity", "averageVehicleSpeed", "occupancy"):
            if isinstance(e.get(k), dict):
                e[k] = {kk: vv for kk, vv in e[k].items() if kk != "observedAt"}
    else:  # an entity type the twin does not read
        e["type"] = "TrafficFlowForecast"
    return "payload", e


def _closure_alerts(
    send: Callable[..., None], inc: dict, mapper: LinkMapper, *, aid: str, issued: float, line, closed: bool
) -> None:
    """A closure (or road works) as the platform announces it; a closure's reopening when it happens."""
    t0, t1 = inc["start_s"], inc["end_s"]
    refs = tuple(mapper.segment_id(k) for k in inc["links"])
    rec = ClosureEvent(
        "",
        aid,
        issued,
        tuple(inc["links"]),
        t0,
        t1 if not closed else math.nan,
        closed,
        0.0 if closed else inc["capacity_factor"],
        0.0,
        "medium",
        line,
        refs,
        inc["name"],
    )
    send(issued, rec)
    if closed:  # the reopening is announced when it happens
        send(
            t1 + 60.0,
            ClosureEvent(
                "",
                aid,
                t1 + 60.0,
                tuple(inc["links"]),
                t0,
                t1,
                True,
                0.0,
                0.0,
                "medium",
                line,
                refs,
                inc["name"] + " (reopened)",
            ),
        )


def _incident_alerts(send: Callable[..., None], inc: dict, *, i: int, aid: str, sub: str, issued: float, line) -> None:
    """An incident's alert, the queue behind it eight minutes later, and its clearing."""
    link = inc["links"][0]
    t0, t1 = inc["start_s"], inc["end_s"]
    rec = AlertEvent("", aid, issued, "traffic", sub, "", link, 0.0, "high", t0, math.nan, line, (), inc["name"])
    send(issued, rec, form="normalized")
    jam = AlertEvent(
        "",
        f"{_ALERT}truth-{i}-jam",
        issued + 480.0,
        "traffic",
        "trafficJam",
        "",
        link,
        0.0,
        "medium",
        issued + 480.0,
        t1 + 900.0,
        line,
        (),
        "queue behind the incident",
    )
    send(issued + 480.0, jam)
    send(
        t1 + 300.0,
        AlertEvent(
            "",
            aid,
            t1 + 300.0,
            "traffic",
            sub,
            "",
            link,
            0.0,
            "high",
            t0,
            t1,
            line,
            (),
            inc["name"] + " (cleared)",
        ),
        form="normalized",
    )


def _alerts(
    incidents: list[dict], net, mapper: LinkMapper, clock: FeedClock, duration: float, rng: np.random.Generator
) -> list[tuple[float, dict]]:
    """Alerts the platform sends about the incidents it knows of, plus two that do not touch roads."""
    out: list[tuple[float, dict]] = []

    def send(t_issue: float, rec, form: Literal["keyValues", "normalized"] = "keyValues") -> None:
        if 0 <= t_issue < duration:
            out.append((t_issue + float(rng.uniform(1.0, 10.0)), to_entity(rec, clock=clock, form=form)))

    for i, inc in enumerate(incidents):
        sub = inc["alert"]
        if sub is None:
            continue
        link = inc["links"][0]
        issued = inc["start_s"] + inc["report_delay_s"]
        line = mapper.link_line(link)
        aid = f"{_ALERT}truth-{i}"
        if sub in ("roadClosed", "roadWorks"):
            _closure_alerts(send, inc, mapper, aid=aid, issued=issued, line=line, closed=sub == "roadClosed")
        else:
            _incident_alerts(send, inc, i=i, aid=aid, sub=sub, issued=issued, line=line)
    kinds = np.asarray(net.link_kind).astype(str)
    for sub, category, clock_h, hours in (("buildingFire", "security", 15.5, 1.0), ("flood", "weather", 19.0, 2.0)):
        t = (clock_h * 3600.0 - clock.epoch.hour * 3600.0 - clock.epoch.minute * 60.0) % 86400.0
        pool = np.flatnonzero(kinds == ("bridge" if sub == "flood" else "local"))
        link = int(pool[int(rng.integers(pool.size))]) if pool.size else int(rng.integers(net.n_links))
        point = mapper.link_point(link, frac=0.25)
        send(
            t,
            AlertEvent(
                "",
                f"{_ALERT}{sub}-1",
                t,
                category,
                sub,
                "",
                link,
                0.0,
                "high",
                t,
                t + hours * 3600.0,
                point,
                (),
                f"{sub} reported near {net.link_name[link] or 'a street'}",
            ),
        )
    return out


def record_feed(
    ds, net, cfg, incidents: list[dict], rng: np.random.Generator, *, start_s: float
) -> tuple[list[dict], list[dict], list[tuple[float, dict]]]:
    """The truth run's feed.

    Returns
    -------
    sensors : list of dict
        ``{"id", "link", "kind"}`` per sensor.
    table : list of dict
        Sensor-table rows for the ``cam`` sensors.
    messages : list of (float, dict)
        ``(arrival sim s, envelope)`` in arrival order; an envelope is
        ``{"receivedAt": ISO, "payload": entity}`` or ``{"receivedAt": ISO, "raw": text}``.
    """
    mapper = LinkMapper(net)
    clock = FeedClock.for_day(_dt.date.fromisoformat(cfg.date), start_s=start_s)
    sensors, table = _sensors(net, mapper, cfg, rng)
    times = np.asarray(ds["time"].values, dtype=np.float64)
    bounds = np.concatenate([[0.0], times])
    links = np.array([s["link"] for s in sensors], dtype=np.int64)
    outflow = np.asarray(ds["link_outflow"].values, dtype=np.float64)[:, links]
    speed = np.asarray(ds["link_speed"].values, dtype=np.float64)[:, links]
    veh = np.asarray(ds["link_vehicles"].values, dtype=np.float64)[:, links]
    lane_m = (net.length_m * net.lanes)[links]
    duration = float(times[-1]) if times.size else 0.0
    pending: list[tuple[float, int, dict]] = []
    seq = 0

    def put(arrival: float, envelope_kind: str, body) -> None:
        nonlocal seq
        seq += 1
        t = round(arrival, 3)
        pending.append((t, seq, {"receivedAt": clock.to_iso(t), envelope_kind: body}))

    det = [i for i, s in enumerate(sensors) if s["kind"] == "det"]
    stuck = max(det, key=lambda i: (outflow[:, i].sum(), -i)) if det else -1  # the busiest: visibly stuck
    stuck_from = (14 * 3600.0 - start_s) % 86400.0
    stuck_reading = None
    for k, t_end in enumerate(times):
        interval = float(t_end - bounds[k])
        n = links.size
        z = rng.normal(size=(4, n))
        counts = np.maximum(0.0, np.rint(outflow[k] * np.exp(cfg.count_cv * z[0]) + cfg.count_sd * z[1]))
        spd = speed[k] * np.exp(cfg.speed_cv * z[2])
        occ = np.minimum(1.0, veh[k] / lane_m * EFFECTIVE_VEHICLE_LENGTH_M * np.exp(cfg.occupancy_cv * z[3]))
        u = rng.random((n, 6))
        for i, s in enumerate(sensors):
            has_speed = outflow[k, i] > 0 and math.isfinite(spd[i])
            reading = (
                counts[i] * 3600.0 / interval,
                round(float(spd[i]) * 3.6, 1) / 3.6 if has_speed else math.nan,
                round(float(occ[i]), 3),
            )
            if i == stuck and stuck_from <= t_end < stuck_from + 7200.0:
                stuck_reading = stuck_reading or reading
                reading = stuck_reading
            rec = Observation("", s["id"], float(t_end), s["link"], interval, *reading)
            entity = _entity(s, rec, clock, mapper)
            arrival = float(t_end) + 1.0 + 19.0 * u[i, 0]
            if u[i, 1] < cfg.delay_rate:
                arrival += 60.0 + 840.0 * u[i, 2]
            if u[i, 3] < cfg.malformed_rate:
                put(arrival, *_garble(entity, int(u[i, 4] * 4), rng))
                continue
            if u[i, 3] > 1.0 - cfg.implausible_rate:
                entity = _implausible(entity, loop=s["kind"] == "loop", u_which=u[i, 4], u_value=u[i, 5])
            put(arrival, "payload", entity)
            if u[i, 2] < cfg.duplicate_rate:
                put(arrival + 2.0 + 88.0 * u[i, 5], "payload", entity)
        for rec in _strays(float(t_end), interval, start_s=start_s, sensors=sensors, mapper=mapper):
            put(float(t_end) + 5.0, "payload", to_entity(rec, clock=clock))
    for arrival, entity in _alerts(incidents, net, mapper, clock, duration, rng):
        put(arrival, "payload", entity)
    pending.sort(key=lambda m: (m[0], m[1]))
    return sensors, table, [(t, env) for t, _, env in pending]


def _implausible(entity: dict, *, loop: bool, u_which: float, u_value: float) -> dict:
    """A copy of a sensor entity made implausible: a speed of 300-400 km/h or a negative count.

    ``loop``: a loop detector's entity (normalized NGSI-LD, properties with units).
    """
    entity = to_normalized(entity) if loop else dict(entity)
    if u_which < 0.5:
        entity["averageVehicleSpeed"] = (
            {"type": "Property", "value": 300.0 + 100.0 * u_value} if loop else 300.0 + 100.0 * u_value
        )
        if loop:
            entity["averageVehicleSpeed"]["unitCode"] = "KMH"
    else:
        entity["intensity"] = {"type": "Property", "value": -1 - int(9 * u_value)} if loop else -1 - int(9 * u_value)
    return entity


def _strays(t_end: float, interval: float, *, start_s: float, sensors: list[dict], mapper) -> list[Observation]:
    """The observations at ``t_end`` from sensors the twin cannot place: every clock hour a
    sensor nobody registered, every three hours (at half past) a location 3 km off the map.
    """
    out = []
    clock_s = (start_s + t_end) % 86400.0
    if clock_s % 3600.0 == 0.0:  # a sensor nobody registered
        out.append(Observation("", f"{_TFO}det-unknown", t_end, -1, interval, 120.0))
    if clock_s % 10800.0 == 1800.0 and sensors:  # a location 3 km off the map
        line = mapper.link_line(sensors[0]["link"])
        off = {"type": "Point", "coordinates": [line["coordinates"][0][0] + 0.05, line["coordinates"][0][1]]}
        out.append(Observation("", f"{_TFO}loop-offmap", t_end, -1, interval, 60.0, location=off))
    return out
