"""The twin's typed feed records, the feed's clock and the units a feed may use.

:class:`Observation`, :class:`AlertEvent` and :class:`ClosureEvent` (together
:data:`Record`) are what a message becomes (:func:`twin.feeds.ngsi.to_record`): sim time in
seconds since the scenario start, link indices, SI values; each class names itself in
``record``.  Records are plain slotted dataclasses (fast to make); treat them as read-only.
:class:`FeedClock` turns the feed's ISO 8601 times into sim seconds and back; :class:`Units`
says which units a feed uses when a message names none.  :class:`MessageError` is a message
the twin cannot use, with a reason code.
"""

from __future__ import annotations

import datetime as _dt
import math
import zoneinfo
from dataclasses import dataclass, field
from typing import Any, ClassVar

from basics.errors import InputError

__all__ = [
    "ALERT_KINDS",
    "AlertEvent",
    "ClosureEvent",
    "FeedClock",
    "MessageError",
    "Observation",
    "Record",
    "Units",
]

#: ``subCategory`` -> the kind of event the twin acts on (anything else: ``"other"``)
ALERT_KINDS: dict[str, str] = {
    "trafficJam": "traffic_jam",
    "carAccident": "accident",
    "carStopped": "vehicle_stopped",
    "carWrongDirection": "wrong_way",
    "hazardOnRoad": "hazard",
    "pothole": "hazard",
    "injuredBiker": "accident",
    "buildingFire": "fire",
    "forestFire": "fire",
    "fire": "fire",
    "fireRisk": "fire_risk",
    "flood": "flood",
    "floodRisk": "flood_risk",
    "roadClosed": "road_closed",
    "roadWorks": "road_works",
}
_CLOSURES = frozenset({"roadClosed", "roadWorks"})
_SEVERITIES = frozenset({"informational", "low", "medium", "high", "critical"})

#: speed unit codes (UN/CEFACT and spelled out) -> factor to m/s
_SPEED_UNITS = {"KMH": 1 / 3.6, "km/h": 1 / 3.6, "MTS": 1.0, "m/s": 1.0, "HM": 0.44704, "mph": 0.44704}
#: intensity unit codes -> True when per hour, False when per observation period
_INTENSITY_UNITS = {
    "C62": False,
    "veh": False,
    "vehicles": False,
    "per_interval": False,
    "VPH": True,
    "veh/h": True,
    "vehicles/h": True,
    "per_hour": True,
}
#: occupancy unit codes -> factor to a fraction
_OCCUPANCY_UNITS = {"C62": 1.0, "fraction": 1.0, "P1": 0.01, "percent": 0.01, "%": 0.01}
_UNIT_NAMES = {"km/h": "KMH", "m/s": "MTS", "mph": "HM"}


def _short(value: Any, n: int = 60) -> str:
    try:
        text = repr(value)
    except RecursionError:
        return f"<{type(value).__name__} nested too deep to show>"
    return text if len(text) <= n else text[: n - 3] + "..."


class MessageError(InputError):
    """A message the twin cannot use.

    Parameters
    ----------
    code : str
        Short reason class: ``malformed`` (not JSON / not an entity), ``schema`` (missing
        or ill-typed attribute), ``unit`` (unknown ``unitCode``), ``unmapped`` (no link),
        ``implausible``, ``future`` (dated ahead of the live clock), ``stuck``,
        ``conflict`` (same id and time, other values), ``late``, ``internal``.
    detail : str
        What is wrong, naming the attribute.
    """

    def __init__(self, code: str, detail: str) -> None:
        self.code = code
        self.detail = detail
        super().__init__(f"{code}: {detail}")


# ------------------------------------------------------------------------------ clock


@dataclass(frozen=True)
class FeedClock:
    """Converts message timestamps to sim time (seconds since the scenario start) and back.

    Parameters
    ----------
    epoch : datetime.datetime
        The wall-clock instant of sim time 0 (timezone-aware).
    tz : zoneinfo.ZoneInfo
        Zone for timestamps without an offset.
    """

    epoch: _dt.datetime
    tz: _dt.tzinfo = _dt.UTC
    _cache: dict = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def for_day(cls, date: _dt.date | None, *, start_s: float = 0.0, timezone: str = "UTC") -> FeedClock:
        """The clock of a scenario starting ``start_s`` seconds after midnight of ``date``.

        ``date=None`` takes today's date in ``timezone``.
        """
        tz = _dt.UTC if timezone == "UTC" else zoneinfo.ZoneInfo(timezone)
        if date is None:
            date = _dt.datetime.now(tz).date()
        midnight = _dt.datetime(date.year, date.month, date.day, tzinfo=tz)
        return cls(epoch=midnight + _dt.timedelta(seconds=float(start_s)), tz=tz)

    def to_sim(self, text: str) -> float:
        """Sim seconds of an ISO 8601 timestamp; ``ValueError`` when it is not one."""
        t = self._cache.get(text)
        if t is None:
            if type(text) is not str:
                raise ValueError(f"expected an ISO 8601 date-time text, got {_short(text)}")
            d = _dt.datetime.fromisoformat(text)
            if d.tzinfo is None:
                d = d.replace(tzinfo=self.tz)
            t = (d - self.epoch).total_seconds()
            if len(self._cache) > 50_000:
                self._cache.clear()
            self._cache[text] = t
        return t

    def to_iso(self, t: float) -> str:
        """ISO 8601 UTC text (``...Z``) of sim time ``t``."""
        d = (self.epoch + _dt.timedelta(seconds=float(t))).astimezone(_dt.UTC)
        text = d.strftime("%Y-%m-%dT%H:%M:%S")
        if d.microsecond:
            text += f".{d.microsecond:06d}".rstrip("0")
        return text + "Z"

    def now(self) -> float:
        """Sim time of the wall clock now."""
        return (_dt.datetime.now(_dt.UTC) - self.epoch).total_seconds()


@dataclass(frozen=True)
class Units:
    """Units of values that carry no ``unitCode`` (keyValues messages never do)."""

    speed: str = "km/h"
    intensity: str = "per_interval"
    occupancy: str = "fraction"
    default_interval_s: float = 300.0
    roadworks_capacity_factor: float = 0.5
    _speed_factor: float = field(init=False, repr=False, compare=False, default=1.0)
    _per_hour: bool = field(init=False, repr=False, compare=False, default=False)
    _occupancy_factor: float = field(init=False, repr=False, compare=False, default=1.0)

    def __post_init__(self) -> None:
        for name, table in (("speed", _SPEED_UNITS), ("intensity", _INTENSITY_UNITS), ("occupancy", _OCCUPANCY_UNITS)):
            if getattr(self, name) not in table:
                raise InputError(f"unknown {name} unit {getattr(self, name)!r}; known: {', '.join(table)}")
        object.__setattr__(self, "_speed_factor", _SPEED_UNITS[self.speed])
        object.__setattr__(self, "_per_hour", _INTENSITY_UNITS[self.intensity])
        object.__setattr__(self, "_occupancy_factor", _OCCUPANCY_UNITS[self.occupancy])


# ---------------------------------------------------------------------------- records


@dataclass(slots=True)
class Observation:
    """A cleansed traffic observation of one link (or one lane of it) over a period.

    Attributes
    ----------
    source : str
        Feed source name.
    id : str
        Entity id of the message.
    t : float
        Sim seconds at the *end* of the observation period.
    link : int
        Dense link index.
    interval_s : float
        Length of the observation period, seconds.
    flow_vph : float
        Vehicles per hour over the period (NaN when not reported).
    speed_mps : float
        Average vehicle speed, m/s (NaN when not reported).
    occupancy : float
        Share of time the detector was occupied, 0-1 (NaN when not reported).
    lane : int
        ``laneId``, or -1 for the whole road.
    distance_m : float
        Distance from the reported location to the link (0 when mapped by id).
    sensor : str
        Key the link was found by (sensor table id, segment id or "location").
    ref : str
        The ``refRoadSegment`` as sent ("" when none).
    location : dict or None
        The GeoJSON geometry as sent.
    device : str
        ``refDevice`` as sent ("" when none).
    late : bool
        Arrived after records of its time had been released.
    """

    record: ClassVar[str] = "observation"
    source: str
    id: str
    t: float
    link: int
    interval_s: float
    flow_vph: float = math.nan
    speed_mps: float = math.nan
    occupancy: float = math.nan
    lane: int = -1
    distance_m: float = 0.0
    sensor: str = ""
    ref: str = ""
    location: dict | None = None
    device: str = ""
    late: bool = False

    @property
    def t_start(self) -> float:
        """Sim seconds at the start of the observation period."""
        return self.t - self.interval_s


@dataclass(slots=True)
class AlertEvent:
    """An incident report (accident, jam, fire, flood, ...).

    Attributes
    ----------
    t : float
        Sim seconds it was issued (``dateIssued``).
    kind : str
        What the twin makes of ``sub_category`` (see :data:`ALERT_KINDS`; else ``"other"``).
    link : int
        Nearest link (-1 when the alert has no location on the network).
    valid_from, valid_to : float
        Sim seconds; ``valid_to`` is NaN while open-ended.
    """

    record: ClassVar[str] = "alert"
    source: str
    id: str
    t: float
    category: str
    sub_category: str
    kind: str
    link: int = -1
    distance_m: float = math.nan
    severity: str = ""
    valid_from: float = math.nan
    valid_to: float = math.nan
    location: dict | None = None
    ref: tuple[str, ...] = ()
    description: str = ""
    late: bool = False


@dataclass(slots=True)
class ClosureEvent:
    """A road closure (``roadClosed``) or road works (``roadWorks``) on some links.

    Attributes
    ----------
    t : float
        Sim seconds it was issued.
    links : tuple of int
        Affected links.
    valid_from, valid_to : float
        When it applies (sim seconds; ``valid_to`` NaN while open-ended).
    closed : bool
        Closed to traffic (``roadClosed``); otherwise capacity is reduced.
    capacity_factor : float
        Share of capacity left (0 when closed).
    """

    record: ClassVar[str] = "closure"
    source: str
    id: str
    t: float
    links: tuple[int, ...]
    valid_from: float
    valid_to: float = math.nan
    closed: bool = True
    capacity_factor: float = 0.0
    distance_m: float = 0.0
    severity: str = ""
    location: dict | None = None
    ref: tuple[str, ...] = ()
    description: str = ""
    late: bool = False

    @property
    def sub_category(self) -> str:
        """The ``subCategory`` a message of this closure carries (``roadClosed`` or ``roadWorks``)."""
        return "roadClosed" if self.closed else "roadWorks"


#: a feed record: what a message becomes
Record = Observation | AlertEvent | ClosureEvent
