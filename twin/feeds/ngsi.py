"""The message model: FIWARE Smart Data Models entities in NGSI-LD, and the twin's typed records.

Messages are NGSI-LD entities of the Smart Data Models

- ``TrafficFlowObserved`` (dataModel.Transportation): ``intensity`` (vehicles in the
  observation period unless a ``unitCode`` says per hour), ``averageVehicleSpeed``
  (km/h unless ``unitCode`` is ``MTS`` m/s or ``HM`` mph), ``occupancy`` (0-1, ``P1``
  for percent), ``refRoadSegment`` and/or ``location`` (GeoJSON Point or LineString),
  ``dateObserved`` (an instant or an ISO 8601 interval ``FROM/TO``),
  ``dateObservedFrom``/``dateObservedTo``, ``laneId``, ``refDevice``;
- ``Alert`` (dataModel.Alert): ``category``, ``subCategory`` (``trafficJam``,
  ``carAccident``, ``buildingFire``, ``flood``, ...), ``severity``, ``location``,
  ``dateIssued``, ``validFrom``/``validTo``, ``description``; road closures and road
  works are alerts with ``subCategory`` ``roadClosed`` / ``roadWorks`` (optionally with a
  ``refRoadSegment`` list naming the closed segments).

Each comes in the NGSI-LD *normalized* form (every attribute a ``Property``,
``Relationship`` or ``GeoProperty`` object, optionally with ``unitCode`` and
``observedAt``) or the *keyValues* form (plain values). :func:`to_key_values` and
:func:`to_normalized` convert between them; :func:`to_record` turns either into a typed
record (:class:`Observation`, :class:`AlertEvent` or :class:`ClosureEvent`: sim time in
seconds since the scenario start, link indices, SI values; each class names itself in
``record``: ``"observation"``, ``"alert"``, ``"closure"``) and :func:`to_entity` writes a
record back in either form. A bad message raises :class:`MessageError` with a reason code.
The records, the feed's clock and its units are :mod:`twin.feeds.records` (re-exported here).
"""

from __future__ import annotations

import math
from typing import Any, Literal

from twin.feeds.records import (
    _CLOSURES,
    _INTENSITY_UNITS,
    _OCCUPANCY_UNITS,
    _SEVERITIES,
    _SPEED_UNITS,
    _UNIT_NAMES,
    ALERT_KINDS,
    AlertEvent,
    ClosureEvent,
    FeedClock,
    MessageError,
    Observation,
    Record,
    Units,
    _short,
)

__all__ = [
    "ALERT_KINDS",
    "AlertEvent",
    "ClosureEvent",
    "FeedClock",
    "MessageError",
    "Observation",
    "Record",
    "Units",
    "entities_of",
    "is_normalized",
    "to_entity",
    "to_key_values",
    "to_normalized",
    "to_record",
    "decode",
    "ident",
]

_GEO_TYPES = frozenset({"Point", "LineString", "MultiPoint", "MultiLineString", "Polygon", "MultiPolygon"})
_NGSI_TYPES = frozenset({"Property", "Relationship", "GeoProperty", "LanguageProperty"})
_DATE_ATTRS = frozenset(
    {
        "dateObserved",
        "dateObservedFrom",
        "dateObservedTo",
        "dateIssued",
        "validFrom",
        "validTo",
        "dateCreated",
        "dateModified",
    }
)
_TFO_MEASURES = ("intensity", "averageVehicleSpeed", "occupancy")
#: longest identifier (entity id, ``refRoadSegment``, ``refDevice``) a message may carry
MAX_ID_CHARS = 256
#: highest ``laneId`` (roads have far fewer lanes; a larger number is a broken sender)
MAX_LANE_ID = 31
#: most points in a location, most segments in an alert's ``refRoadSegment``
MAX_POINTS = 1000
#: longest free text (``description``, ``category``, ...)
MAX_TEXT_CHARS = 4000
#: farthest an alert's ``validFrom``/``validTo`` may lie from its ``dateIssued`` (seconds)
MAX_ALERT_SPAN_S = 366 * 86400.0
_CONTEXT = ["https://smartdatamodels.org/context.jsonld", "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld"]


# ------------------------------------------------------------------ attribute access


def _plain(v: Any) -> Any:
    """Value of an attribute in either form (unwraps Property/Relationship and @value)."""
    if type(v) is dict:
        t = v.get("type")
        if t == "Property" or t == "GeoProperty" or t == "LanguageProperty":
            v = v.get("value")
        elif t == "Relationship":
            return v.get("object")
        if type(v) is dict and "@value" in v:
            return v["@value"]
    elif type(v) is list and v and type(v[0]) is dict and v[0].get("type") in _NGSI_TYPES:
        return _plain(v[0])  # multi-attribute (datasetId): the first instance
    return v


def _unit_code(v: Any) -> str | None:
    if type(v) is dict:
        return v.get("unitCode")
    if type(v) is list and v and type(v[0]) is dict:
        return v[0].get("unitCode")
    return None


def is_normalized(entity: dict) -> bool:
    """True when any attribute of ``entity`` is an NGSI-LD Property/Relationship/GeoProperty object."""
    for k, v in entity.items():
        if k in ("id", "type", "@context"):
            continue
        if type(v) is dict and v.get("type") in _NGSI_TYPES:
            return True
        if type(v) is list and v and type(v[0]) is dict and v[0].get("type") in _NGSI_TYPES:
            return True
    return False


def _compact_keys(entity: dict) -> dict:
    """Expanded attribute names (``https://.../intensity``) -> short names."""
    if not any(k.startswith(("http://", "https://")) for k in entity):
        return entity
    return {
        (k.rstrip("/").rsplit("/", 1)[-1].rsplit("#", 1)[-1] if k.startswith(("http://", "https://")) else k): v
        for k, v in entity.items()
    }


def to_key_values(entity: dict) -> dict:
    """The keyValues form of an entity (either form in; ``unitCode``/``observedAt`` dropped)."""
    out = {}
    for k, v in _compact_keys(entity).items():
        if k in ("id", "type", "@context"):
            out[k] = v
        else:
            out[k] = _plain(v)
    return out


def to_normalized(entity: dict, *, context: bool = False) -> dict:
    """The NGSI-LD normalized form of an entity (either form in).

    Dates become ``{"@type": "DateTime", "@value": ...}`` properties, ``ref*``
    attributes Relationships, GeoJSON values GeoProperties; a ``TrafficFlowObserved``'s
    measured properties get ``observedAt`` (its ``dateObservedTo``). ``context=True``
    adds the Smart Data Models ``@context``.
    """
    entity = _compact_keys(entity)
    if is_normalized(entity):
        out = dict(entity)
    else:
        out = {}
        observed = None
        if entity.get("type") == "TrafficFlowObserved":
            observed = entity.get("dateObservedTo")
            if observed is None and isinstance(entity.get("dateObserved"), str):
                observed = entity["dateObserved"].rsplit("/", 1)[-1]
        for k, v in entity.items():
            if k in ("id", "type", "@context"):
                out[k] = v
            elif k.startswith("ref") and k[3:4].isupper():
                out[k] = {"type": "Relationship", "object": v}
            elif type(v) is dict and v.get("type") in _GEO_TYPES:
                out[k] = {"type": "GeoProperty", "value": v}
            elif k in _DATE_ATTRS and isinstance(v, str):
                out[k] = {"type": "Property", "value": {"@type": "DateTime", "@value": v}}
            else:
                out[k] = {"type": "Property", "value": v}
                if observed is not None and k in _TFO_MEASURES:
                    out[k]["observedAt"] = _plain(observed)
    if context:
        out.setdefault("@context", list(_CONTEXT))
    elif "@context" in out and "@context" not in entity:
        del out["@context"]
    return out


def entities_of(payload: Any) -> list:
    """The entities in a payload: one entity, a list of them, or an NGSI-LD Notification.

    Raises
    ------
    MessageError
        ``malformed`` when it is none of these.
    """
    if type(payload) is dict:
        if payload.get("type") == "Notification" or ("data" in payload and "id" not in payload):
            data = payload.get("data")
            if type(data) is not list:
                raise MessageError("malformed", f"a Notification needs a 'data' list of entities, got {_short(data)}")
            return data
        return [payload]
    if type(payload) is list:
        return payload
    raise MessageError(
        "malformed",
        f"expected an NGSI-LD entity, a list of entities or a "
        f"Notification (a JSON object or array), got {_short(payload)}",
    )


# -------------------------------------------------------------------- entity -> record


def _time(clock: FeedClock, value: Any, name: str) -> float:
    try:
        return clock.to_sim(value)
    except (ValueError, TypeError, OverflowError):
        raise MessageError("schema", f"{name} is not an ISO 8601 date-time: {_short(value)}") from None


def _number(value: Any, name: str) -> float:
    t = type(value)
    if t is int or t is float:
        x = float(value)
        if x != x or x in (math.inf, -math.inf):
            raise MessageError("schema", f"{name} is not a finite number: {value!r}")
        return x
    raise MessageError("schema", f"{name} must be a number, got {_short(value)}")


def _factor(table: dict, code: Any, default: str, name: str) -> Any:
    if code is None:
        return table[default]
    try:
        return table[code]
    except (KeyError, TypeError):
        raise MessageError("unit", f"{name} has unitCode {_short(code)}; known: {', '.join(table)}") from None


def _text(value: Any, name: str, *, required: bool = False) -> str:
    if value is None:
        if required:
            raise MessageError("schema", f"missing attribute '{name}'")
        return ""
    if type(value) is not str:
        raise MessageError("schema", f"{name} must be text, got {_short(value)}")
    if len(value) > MAX_TEXT_CHARS:
        raise MessageError("schema", f"{name} is longer than {MAX_TEXT_CHARS} characters ({len(value)})")
    return value


def ident(value: Any, name: str) -> str:
    """An identifier as sent, checked: text of printable ASCII, at most :data:`MAX_ID_CHARS`.

    Not normalised into ASCII: a look-alike (a non-ASCII digit, a full-width letter) would
    then name another sensor or link; such ids are refused instead.
    """
    if type(value) is not str:
        raise MessageError("schema", f"{name} must be an id (text), got {_short(value)}")
    if len(value) > MAX_ID_CHARS or not value.isascii() or not value.isprintable() or not value.strip():
        raise MessageError(
            "schema", f"{name} must be printable ASCII text of 1-{MAX_ID_CHARS} characters, got {_short(value)}"
        )
    return value


def _refs(value: Any, name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if type(value) is str:
        return (ident(value, name),)
    if type(value) is list and all(type(v) is str for v in value):
        if len(value) > MAX_POINTS:
            raise MessageError("schema", f"{name} lists {len(value)} segments; at most {MAX_POINTS}")
        return tuple(ident(v, name) for v in value)
    raise MessageError("schema", f"{name} must be an id or a list of ids, got {_short(value)}")


def _geometry(value: Any, name: str = "location") -> dict | None:
    if value is None:
        return None
    if (
        type(value) is not dict
        or value.get("type") not in ("Point", "LineString")
        or type(value.get("coordinates")) is not list
    ):
        raise MessageError("schema", f"{name} must be a GeoJSON Point or LineString, got {_short(value)}")
    if len(value["coordinates"]) > MAX_POINTS:
        raise MessageError("schema", f"{name} has {len(value['coordinates'])} points; at most {MAX_POINTS}")
    return value


#: the units of a feed that names none
_DEFAULT_UNITS = Units()


def to_record(entity: Any, *, clock: FeedClock, mapper, units: Units = _DEFAULT_UNITS, source: str = "") -> Record:
    """Decode one entity (either form) into a typed record.

    Parameters
    ----------
    entity : dict
        A ``TrafficFlowObserved`` or ``Alert`` entity.
    clock : FeedClock
        Timestamps -> sim time.
    mapper : twin.feeds.sensors.LinkMapper
        Sensor ids, segment ids and locations -> links.
    units : Units
        Units of values without ``unitCode``.
    source : str
        Source name stored in the record.

    Raises
    ------
    MessageError
        With code ``malformed``, ``schema``, ``unit`` or ``unmapped``.
    """
    return decode(entity, clock, mapper, units, source)


def decode(entity: Any, clock: FeedClock, mapper, units: Units, source: str) -> Record:
    """:func:`to_record` with positional arguments (the cleanser's hot path)."""
    if type(entity) is not dict:
        raise MessageError("malformed", f"an entity must be a JSON object, got {_short(entity)}")
    ent_id = entity.get("id")
    ent_type = entity.get("type")
    if type(ent_id) is not str or not ent_id:
        raise MessageError("schema", "missing or empty entity 'id'")
    if len(ent_id) > MAX_ID_CHARS or not ent_id.isascii() or not ent_id.isprintable():
        ident(ent_id, "id")
    if ent_type == "TrafficFlowObserved":
        if "intensity" not in entity and "averageVehicleSpeed" not in entity and "occupancy" not in entity:
            entity = _compact_keys(entity)  # expanded attribute names (no @context applied)
        return _observation(entity, ent_id, clock, mapper, units, source)
    if ent_type == "Alert":
        if "category" not in entity:
            entity = _compact_keys(entity)
        return _alert(entity, ent_id, clock, mapper, units, source)
    if ent_type is None:
        raise MessageError("schema", f"entity {ent_id!r} has no 'type'")
    raise MessageError(
        "schema", f"entity type {_short(ent_type)} is not one the twin reads (TrafficFlowObserved, Alert)"
    )


def _observation(e: dict, ent_id: str, clock: FeedClock, mapper, units: Units, source: str) -> Observation:
    # the hot path of cleansing: plain dict lookups first, the general helpers only when needed
    get = e.get
    t_to, interval = _period(get, clock, units)
    flow, speed, occ = _values(get, interval, units)
    lane = _lane(get)
    ref, device = _ids(get)
    location = get("location")
    if location is not None:
        location = _geometry(_plain(location))
    link, dist, key = mapper.locate(ent_id, device=device, ref=ref, location=location)
    return Observation(
        source, ent_id, t_to, link, interval, flow, speed, occ, lane, dist, key, ref or "", location, device or ""
    )


def _dated(get, name: str, clock: FeedClock) -> float | None:
    """The sim time of date attribute ``name`` (``None`` when absent), through the clock's cache."""
    v = get(name)
    if v is None:
        return None
    if type(v) is not str:
        v = _plain(v)
    t = clock._cache.get(v) if type(v) is str else None
    return _time(clock, v, name) if t is None else t


def _period(get, clock: FeedClock, units: Units) -> tuple[float, float]:
    """The observation period's end (sim seconds) and length, from whichever dates the message has."""
    t_to = _dated(get, "dateObservedTo", clock)
    t_from = _dated(get, "dateObservedFrom", clock)
    if t_to is None or t_from is None:
        v = _plain(get("dateObserved"))
        if v is not None:
            if type(v) is str and "/" in v:
                a, _, b = v.partition("/")
                if t_from is None:
                    t_from = _time(clock, a, "dateObserved (interval start)")
                if t_to is None:
                    t_to = _time(clock, b, "dateObserved (interval end)")
            elif t_to is None:
                t_to = _time(clock, v, "dateObserved")
    if t_to is None:
        for name in _TFO_MEASURES:
            a = get(name)
            if type(a) is dict and "observedAt" in a:
                t_to = _time(clock, a["observedAt"], f"{name}.observedAt")
                break
    if t_to is None:
        raise MessageError("schema", "no observation time (dateObservedTo, dateObserved or observedAt)")
    interval = units.default_interval_s if t_from is None else t_to - t_from
    if not interval > 0:
        raise MessageError("schema", f"the observation period ends before it starts ({interval:g} s long)")
    return t_to, interval


def _values(get, interval: float, units: Units) -> tuple[float, float, float]:
    """Flow (veh/h), speed (m/s) and occupancy (fraction); NaN where not measured."""
    flow = speed = occ = math.nan
    a = get("intensity")
    if a is not None:
        ta = type(a)
        if (ta is int or ta is float) and a == a and a - a == 0:
            per_hour = units._per_hour
            x = float(a)
        else:
            x = _number(_plain(a), "intensity")
            per_hour = _factor(_INTENSITY_UNITS, _unit_code(a), units.intensity, "intensity")
        flow = x if per_hour else x * 3600.0 / interval
    a = get("averageVehicleSpeed")
    if a is not None:
        ta = type(a)
        if (ta is int or ta is float) and a == a and a - a == 0:
            speed = a * units._speed_factor
        else:
            speed = _number(_plain(a), "averageVehicleSpeed") * _factor(
                _SPEED_UNITS, _unit_code(a), units.speed, "averageVehicleSpeed"
            )
    a = get("occupancy")
    if a is not None:
        ta = type(a)
        if (ta is int or ta is float) and a == a and a - a == 0:
            occ = a * units._occupancy_factor
        else:
            occ = _number(_plain(a), "occupancy") * _factor(
                _OCCUPANCY_UNITS, _unit_code(a), units.occupancy, "occupancy"
            )
    if flow != flow and speed != speed and occ != occ:
        raise MessageError("schema", "no measured value (intensity, averageVehicleSpeed or occupancy)")
    return flow, speed, occ


def _lane(get) -> int:
    """The ``laneId`` (-1: the whole road)."""
    lane = -1
    a = get("laneId")
    if a is not None:
        x = _plain(a)
        if type(x) is not int or not 0 <= x <= MAX_LANE_ID:
            raise MessageError("schema", f"laneId must be an integer 0-{MAX_LANE_ID}, got {_short(x)}")
        lane = x
    return lane


def _ids(get) -> tuple[str | None, str | None]:
    """``refRoadSegment`` and ``refDevice``, checked identifiers (or ``None``)."""
    ref = get("refRoadSegment")
    if ref is not None and type(ref) is not str:
        ref = _plain(ref)
        if ref is not None and type(ref) is not str:
            raise MessageError("schema", f"refRoadSegment must be an id, got {_short(ref)}")
    if ref is not None and (len(ref) > MAX_ID_CHARS or not ref.isascii() or not ref.isprintable()):
        ident(ref, "refRoadSegment")
    device = get("refDevice")
    if device is not None and type(device) is not str:
        device = _plain(device)
        if device is not None and type(device) is not str:
            raise MessageError("schema", f"refDevice must be an id, got {_short(device)}")
    if device is not None and (len(device) > MAX_ID_CHARS or not device.isascii() or not device.isprintable()):
        ident(device, "refDevice")
    return ref, device


def _alert(e: dict, ent_id: str, clock: FeedClock, mapper, units: Units, source: str) -> AlertEvent | ClosureEvent:
    get = e.get
    category = _text(_plain(get("category")), "category", required=True)
    sub = _text(_plain(get("subCategory")), "subCategory")
    severity = _text(_plain(get("severity")), "severity")
    if severity and severity not in _SEVERITIES:
        raise MessageError("schema", f"severity {severity!r} is not one of {', '.join(sorted(_SEVERITIES))}")
    description = _text(_plain(get("description")), "description")
    v = _plain(get("dateIssued"))
    t_from = _time(clock, _plain(get("validFrom")), "validFrom") if get("validFrom") is not None else math.nan
    if v is not None:
        t = _time(clock, v, "dateIssued")
    elif t_from == t_from:
        t = t_from
    else:
        raise MessageError("schema", "no time (dateIssued or validFrom)")
    t_to = _time(clock, _plain(get("validTo")), "validTo") if get("validTo") is not None else math.nan
    if t_to == t_to and t_from == t_from and t_to < t_from:
        raise MessageError("schema", "validTo is before validFrom")
    for name, x in (("validFrom", t_from), ("validTo", t_to)):
        if x == x and abs(x - t) > MAX_ALERT_SPAN_S:
            raise MessageError(
                "implausible",
                f"{name} is {abs(x - t) / 86400:.0f} days from dateIssued; at most {MAX_ALERT_SPAN_S / 86400:.0f}",
            )
    refs = _refs(_plain(get("refRoadSegment")), "refRoadSegment")
    location = _geometry(_plain(get("location")))
    if sub in _CLOSURES:
        if refs:
            links = tuple(mapper.segment_link(r) for r in refs)
            dist = 0.0
        elif location is not None:
            link, dist, _ = mapper.locate(ent_id, location=location, use_table=False)
            links = (link,)
        else:
            raise MessageError("unmapped", f"a {sub} alert needs refRoadSegment or location")
        closed = sub == "roadClosed"
        return ClosureEvent(
            source,
            ent_id,
            t,
            links,
            t if t_from != t_from else t_from,
            t_to,
            closed,
            0.0 if closed else units.roadworks_capacity_factor,
            dist,
            severity,
            location,
            refs,
            description,
        )
    link, dist = -1, math.nan
    if refs:
        link, dist = mapper.segment_link(refs[0]), 0.0
    elif location is not None:
        link, dist, _ = mapper.locate(ent_id, location=location, use_table=False, required=False)
    return AlertEvent(
        source,
        ent_id,
        t,
        category,
        sub,
        ALERT_KINDS.get(sub, "other"),
        link,
        dist,
        severity,
        t_from,
        t_to,
        location,
        refs,
        description,
    )


# -------------------------------------------------------------------- record -> entity


def _num(x: float) -> int | float:
    """Integral floats as ints (counts read back as written)."""
    return int(x) if x == x and x.is_integer() and abs(x) < 2**53 else x


def to_entity(
    record: Record,
    *,
    clock: FeedClock,
    form: Literal["keyValues", "normalized"] = "keyValues",
    speed_unit: str = "km/h",
    context: bool = False,
) -> dict:
    """Write a record as an NGSI-LD entity.

    Observations carry ``intensity`` as vehicles in the period (the data model's
    default), ``averageVehicleSpeed`` in ``speed_unit`` (the normalized form names it by
    ``unitCode``; keyValues leaves it implicit, so read it back with the same unit),
    ``dateObserved`` as a ``FROM/TO`` interval plus ``dateObservedFrom``/``To``.
    """
    if isinstance(record, Observation):
        kv = _observation_kv(record, clock, speed_unit)
    elif isinstance(record, (AlertEvent, ClosureEvent)):
        kv = _alert_kv(record, clock)
    else:
        raise TypeError(f"not a feed record: {type(record).__name__}")
    if form == "keyValues":
        if context:
            kv["@context"] = list(_CONTEXT)
        return kv
    out = to_normalized(kv, context=context)
    if isinstance(record, Observation) and "averageVehicleSpeed" in out and speed_unit != "km/h":
        out["averageVehicleSpeed"]["unitCode"] = _UNIT_NAMES[speed_unit]
    return out


def _observation_kv(r: Observation, clock: FeedClock, speed_unit: str) -> dict:
    t0, t1 = clock.to_iso(r.t - r.interval_s), clock.to_iso(r.t)
    kv: dict[str, Any] = {
        "id": r.id,
        "type": "TrafficFlowObserved",
        "dateObserved": f"{t0}/{t1}",
        "dateObservedFrom": t0,
        "dateObservedTo": t1,
    }
    if r.flow_vph == r.flow_vph:
        kv["intensity"] = _num(round(r.flow_vph * r.interval_s / 3600.0, 9))
    if r.speed_mps == r.speed_mps:
        kv["averageVehicleSpeed"] = _num(round(r.speed_mps / _SPEED_UNITS[speed_unit], 9))
    if r.occupancy == r.occupancy:
        kv["occupancy"] = _num(round(r.occupancy, 9))
    if r.lane >= 0:
        kv["laneId"] = r.lane
    if r.ref:
        kv["refRoadSegment"] = r.ref
    if r.device:
        kv["refDevice"] = r.device
    if r.location is not None:
        kv["location"] = r.location
    return kv


def _alert_kv(r: AlertEvent | ClosureEvent, clock: FeedClock) -> dict:
    closure = isinstance(r, ClosureEvent)
    kv: dict[str, Any] = {
        "id": r.id,
        "type": "Alert",
        "category": "traffic" if isinstance(r, ClosureEvent) else r.category,  # (narrows r for mypy)
        "subCategory": r.sub_category,
        "dateIssued": clock.to_iso(r.t),
    }
    if r.severity:
        kv["severity"] = r.severity
    if r.valid_from == r.valid_from:
        kv["validFrom"] = clock.to_iso(r.valid_from)
    if r.valid_to == r.valid_to:
        kv["validTo"] = clock.to_iso(r.valid_to)
    if r.ref:
        kv["refRoadSegment"] = list(r.ref) if closure or len(r.ref) > 1 else r.ref[0]
    if r.location is not None:
        kv["location"] = r.location
    if r.description:
        kv["description"] = r.description
    return kv
