"""Scenario sections ``incidents`` and ``resources`` (emergency response).

``incidents`` says what can happen and how the emergency services answer it::

    incidents:
      call_delay: {dist: lognormal, mean: 60s, sd: 30s}   # occurs -> reported
      turnout: 60s                                         # dispatched -> rolling
      emergency_speed_factor: 1.25    # units drive current link times / 1.25
      policy: closest                 # or closest_free_flow, or "package.module:function"
      types:                          # merged over the built-in table (fire, medical,
        fire:                         # traffic_crash, flood): give only what changes
          target: {seconds: 240, measure: travel, unit: engine}
      rates:                          # stochastic calls: Poisson, by clock hour and zone
        medical: {per_hour: 4, zones: residents}
      drill:                          # the scripted timeline
        - {at: "17:10", type: fire, location: "Old Bridge", severity: 2, notes: tanker}

``resources`` lists stations (with units by kind) and hospitals (with beds)::

    resources:
      stations:
        - {name: Fire Station 1, kind: fire, node: 42, units: {engine: 2, ladder: 1}}
        - {name: County Fire, kind: fire, node: [24.93, 60.16], units: {engine: 2}, mutual_aid: true}
      hospitals:
        - {name: General, node: "South General Hospital", beds: 300}

A list left empty takes the city's own facilities (fire, EMS and police stations and
hospitals, plus a tow depot near the centre); ``include_city_facilities`` changes that.

Severity levels are whole numbers 1 (minor) to 5 (major). A table "by severity"
(``units``, ``priority``, ``transport``, ``capacity_factor``) maps levels to values; a
level that is not listed takes the value of the nearest listed level below it (or the
lowest listed level), so ``{1: ..., 3: ...}`` covers 1-2 with the first and 3-5 with the
second. A single value (or a single unit mix) means the same for every level.

Random durations (``call_delay``, ``turnout``, ``on_scene``, ``clearance``,
``handover``, ``hospital_stay``) are a plain duration (fixed) or a mapping
``{dist: fixed|exponential|lognormal|gamma|uniform|triangular, ...}`` with ``value``,
``mean``/``sd`` or ``low``/``mode``/``high`` as the distribution needs.

Whether a location (node id, ``[lon, lat]`` or a named place) exists in the city, and
whether every unit kind is needed by some incident type, is checked when the twin is
built (the city is needed for that): see :mod:`twin.emergency`.
"""

from __future__ import annotations

import copy
import math
from typing import Annotated, Any, Literal, cast

from pydantic import (
    BeforeValidator,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from basics.clock import parse_time_point

from .base import Count, CrossFieldError, Duration, Number, _Section

__all__ = [
    "DEFAULT_INCIDENT_TYPES",
    "DistSpec",
    "DrillEntry",
    "HospitalSpec",
    "IncidentTypeSpec",
    "IncidentsSpec",
    "RateSpec",
    "ResourcesSpec",
    "ResponseTarget",
    "StationSpec",
    "level_value",
]

#: severity levels
LEVELS: tuple[int, ...] = (1, 2, 3, 4, 5)

#: Most units of one kind an incident type may ask for at one severity level.
MAX_UNITS_PER_INCIDENT: int = 100
#: Most units of one kind a station may have.
MAX_UNITS_PER_STATION: int = 1_000
#: Most beds a hospital may have.
MAX_BEDS: int = 1_000_000
#: Most calls per hour of one incident type.
MAX_CALLS_PER_HOUR: float = 10_000.0
#: Most entries of the drill timeline, stations, hospitals, incident types, rate nodes.
MAX_ENTRIES: int = 2_000
#: Largest standard deviation of a random duration, as a multiple of its mean
#: (lognormal and gamma; beyond it their parameters overflow).
MAX_CV: float = 100.0

Level = Annotated[int, Field(ge=1, le=5)]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]
Weight = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]


def level_value(table: dict[int, Any], level: int, default: Any = None) -> Any:
    """The value a by-severity table gives ``level``.

    The nearest listed level at or below ``level``; below every listed level, the
    lowest listed one; ``default`` for an empty table.
    """
    if not table:
        return default
    below = [k for k in table if k <= level]
    return table[max(below) if below else min(table)]


# ------------------------------------------------------------------------ random durations

_DIST_FIELDS: dict[str, tuple[str, ...]] = {
    "fixed": ("value",),
    "exponential": ("mean",),
    "lognormal": ("mean", "sd"),
    "gamma": ("mean", "sd"),
    "uniform": ("low", "high"),
    "triangular": ("low", "mode", "high"),
}


def _plain_duration(value: Any) -> Any:
    """A bare duration (``90``, ``"2min"``) is a fixed distribution."""
    if isinstance(value, (int, float, str)) and not isinstance(value, bool):
        return {"dist": "fixed", "value": value}
    return value


class DistSpec(_Section):
    """A random duration in seconds.

    Written as a plain duration (fixed) or ``{dist: ..., ...}``:

    ============  ==========================
    dist          fields
    ============  ==========================
    fixed         ``value``
    exponential   ``mean``
    lognormal     ``mean``, ``sd``
    gamma         ``mean``, ``sd``
    uniform       ``low``, ``high``
    triangular    ``low``, ``mode``, ``high``
    ============  ==========================
    """

    dist: Literal["fixed", "exponential", "lognormal", "gamma", "uniform", "triangular"] = "fixed"
    value: Annotated[Duration, Field(ge=0)] | None = None
    mean: Annotated[Duration, Field(ge=0)] | None = None
    sd: Annotated[Duration, Field(ge=0)] | None = None
    low: Annotated[Duration, Field(ge=0)] | None = None
    mode: Annotated[Duration, Field(ge=0)] | None = None
    high: Annotated[Duration, Field(ge=0)] | None = None

    @model_validator(mode="before")
    @classmethod
    def _bare(cls, data: Any) -> Any:
        return _plain_duration(data)

    @model_validator(mode="after")
    def _fields(self) -> DistSpec:
        need = _DIST_FIELDS[self.dist]
        problems: list[tuple[str, str]] = []
        for name in ("value", "mean", "sd", "low", "mode", "high"):
            given = getattr(self, name) is not None
            if name in need and not given:
                problems.append((name, f"is required for dist {self.dist} (give {', '.join(need)})"))
            elif given and name not in need:
                problems.append((name, f"is not used by dist {self.dist} (it takes {', '.join(need)})"))
        if not problems and self.dist in ("uniform", "triangular") and self._f("low") > self._f("high"):
            problems.append(("high", f"must be at least low ({self.low:g} s), got {self.high:g} s"))
        if not problems and self.dist == "triangular" and not self._f("low") <= self._f("mode") <= self._f("high"):
            problems.append(("mode", "must lie between low and high"))
        if not problems and self.dist in ("lognormal", "gamma") and self._f("mean") <= 0:
            problems.append(("mean", f"must be greater than 0 for dist {self.dist}"))
        elif not problems and self.dist in ("lognormal", "gamma") and self._f("sd") > MAX_CV * self._f("mean"):
            problems.append(
                (
                    "sd",
                    (
                        f"must be at most {MAX_CV:g} times the mean for dist {self.dist} "
                        f"(mean {self.mean:g} s, sd {self.sd:g} s)"
                    ),
                )
            )
        if problems:
            raise CrossFieldError(problems)
        return self

    @model_serializer(mode="wrap")
    def _compact(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = handler(self)
        return {k: v for k, v in data.items() if v is not None}

    def _f(self, name: str) -> float:
        """A time field the distribution requires (the validator makes sure it is given)."""
        return cast(float, getattr(self, name))

    @property
    def mean_s(self) -> float:
        """The distribution's mean in seconds."""
        d = self.dist
        if d == "fixed":
            return float(self._f("value"))
        if d in ("exponential", "lognormal", "gamma"):
            return float(self._f("mean"))
        if d == "uniform":
            return 0.5 * (self._f("low") + self._f("high"))
        return (self._f("low") + self._f("mode") + self._f("high")) / 3.0


def _fixed(seconds: float) -> DistSpec:
    return DistSpec(dist="fixed", value=seconds)


# ----------------------------------------------------------------------- incident types


def _by_level(value: Any) -> Any:
    """A single value means the same for every level: ``x`` -> ``{1: x}``."""
    if value is None or isinstance(value, dict):
        return value
    return {1: value}


def _mix_by_level(value: Any) -> Any:
    """``{engine: 2}`` (kinds as keys) -> ``{1: {engine: 2}}``."""
    if (
        isinstance(value, dict)
        and value
        and all(isinstance(k, str) and not k.strip().lstrip("+-").isdigit() for k in value)
    ):
        return {1: value}
    return value


UnitMix = dict[str, Annotated[Count, Field(ge=0, le=MAX_UNITS_PER_INCIDENT)]]
Priority = Annotated[Count, Field(ge=-1000, le=1000)]


class ResponseTarget(_Section):
    """A response-time target of an incident type.

    Attributes
    ----------
    seconds : float
        The target (a duration).
    measure : {"response", "travel"}
        ``response``: first unit on scene minus the time the call was reported;
        ``travel``: the driving time of the first unit on scene (from leaving to arriving).
    unit : str or None
        Count only units of this kind (e.g. ``engine``); ``None``: any unit.
    """

    seconds: Annotated[Duration, Field(gt=0)]
    measure: Literal["response", "travel"] = "response"
    unit: str | None = None


class IncidentTypeSpec(_Section):
    """One kind of incident, defined by data.

    Attributes
    ----------
    description : str
        For people.
    severity : dict
        Level -> relative weight of drawing that level (stochastic calls; a drill entry
        may give its own level).
    units : dict
        Level -> required unit mix ``{kind: count}``; by severity.
    priority : dict
        Level -> dispatch priority (higher first); default the level itself.
    on_scene : DistSpec
        Work on scene, from the first unit's arrival.
    transport : dict
        Level -> chance a patient is taken to hospital by a ``transport_unit``.
    transport_unit : str
        Unit kind that carries patients (default ``ambulance``).
    handover : DistSpec
        Time at the hospital before the unit is free again.
    hospital_stay : DistSpec
        How long a patient occupies a bed.
    cleared_by : str or None
        Unit kind whose arrival starts the clearance clock (``tow`` for crashes).
    clearance : DistSpec
        From that unit's arrival until the road is cleared.
    capacity_factor : dict
        Level -> capacity left on the incident's link(s) until cleared (crashes).
    closes_links : bool
        The incident closes its links until cleared (floods).
    closure_radius_m : float
        A closing incident at a node closes the links with both ends within this many
        metres of it (0: the links touching the node).
    target : ResponseTarget or None
        Response-time target for the KPIs.
    """

    description: str = ""
    severity: dict[Level, Weight] = Field(default_factory=lambda: {1: 1.0})
    units: Annotated[dict[Level, UnitMix], BeforeValidator(_mix_by_level)]
    priority: Annotated[dict[Level, Priority] | None, BeforeValidator(_by_level)] = None
    on_scene: DistSpec = Field(default_factory=lambda: _fixed(1800.0))
    transport: Annotated[dict[Level, Probability], BeforeValidator(_by_level)] = Field(default_factory=dict)
    transport_unit: str = "ambulance"
    handover: DistSpec = Field(default_factory=lambda: _fixed(900.0))
    hospital_stay: DistSpec = Field(default_factory=lambda: _fixed(4 * 3600.0))
    cleared_by: str | None = None
    clearance: DistSpec = Field(default_factory=lambda: _fixed(0.0))
    capacity_factor: Annotated[dict[Level, Probability], BeforeValidator(_by_level)] = Field(default_factory=dict)
    closes_links: bool = False
    closure_radius_m: Annotated[Number, Field(ge=0, le=100_000)] = 0.0
    target: ResponseTarget | None = None

    @model_validator(mode="after")
    def _consistent(self) -> IncidentTypeSpec:
        problems = []
        if not any(w > 0 for w in self.severity.values()):
            problems.append(("severity", "needs at least one level with a weight above 0"))
        if not self.units:
            problems.append(("units", "needs the unit mix of at least one severity level, e.g. {engine: 1}"))
        for lvl, mix in self.units.items():
            for kind in mix:
                if not kind.strip():
                    problems.append((f"units.{lvl}", "unit kinds must be non-empty names"))
            if sum(mix.values()) < 1:
                problems.append((f"units.{lvl}", "must ask for at least one unit"))
        if self.units:
            for lvl in LEVELS:
                mix = level_value(self.units, lvl)
                if level_value(self.transport, lvl, 0.0) > 0 and mix.get(self.transport_unit, 0) < 1:
                    problems.append(
                        (
                            f"transport.{lvl}" if lvl in self.transport else "transport",
                            (
                                f"severity {lvl} may need a transport but its unit mix {dict(mix)} has no "
                                f"'{self.transport_unit}' (the transport_unit)"
                            ),
                        )
                    )
                    break
                if self.cleared_by and mix.get(self.cleared_by, 0) < 1:
                    problems.append(
                        (
                            "cleared_by",
                            (
                                f"'{self.cleared_by}' clears the incident but severity {lvl}'s unit mix "
                                f"{dict(mix)} does not include one"
                            ),
                        )
                    )
                    break
        if self.capacity_factor and self.closes_links:
            problems.append(("capacity_factor", "an incident type either reduces capacity or closes links, not both"))
        if (
            self.target is not None
            and self.target.unit
            and self.units
            and not any(self.target.unit in mix for mix in self.units.values())
        ):
            problems.append(("target.unit", f"'{self.target.unit}' is never sent to this incident type"))
        if problems:
            raise CrossFieldError(problems)
        return self

    @property
    def affects_links(self) -> bool:
        """Whether it reduces capacity or closes links."""
        return bool(self.capacity_factor) or self.closes_links


def _lognormal(mean: float, sd: float) -> dict[str, Any]:
    return {"dist": "lognormal", "mean": mean, "sd": sd}


#: The built-in incident types (a scenario's ``incidents.types`` is merged over them).
DEFAULT_INCIDENT_TYPES: dict[str, dict[str, Any]] = {
    "fire": {
        "description": "structure or vehicle fire",
        "severity": {1: 0.6, 2: 0.3, 3: 0.1},
        "units": {
            1: {"engine": 1},
            2: {"engine": 2, "ladder": 1, "police": 1},
            3: {"engine": 3, "ladder": 1, "ambulance": 1, "police": 1},
        },
        "priority": {1: 2, 2: 4, 3: 5},
        "on_scene": _lognormal(2400.0, 1200.0),
        "transport": {1: 0.0, 3: 0.5},
        "target": {"seconds": 240.0, "measure": "travel", "unit": "engine"},
    },
    "medical": {
        "description": "medical emergency",
        "severity": {1: 0.5, 2: 0.35, 3: 0.15},
        "units": {1: {"ambulance": 1}, 3: {"ambulance": 1, "engine": 1}},
        "priority": {1: 1, 2: 3, 3: 5},
        "on_scene": _lognormal(1200.0, 480.0),
        "transport": {1: 0.5, 2: 0.8, 3: 1.0},
        "handover": _lognormal(900.0, 300.0),
        "hospital_stay": _lognormal(4 * 3600.0, 2 * 3600.0),
        "target": {"seconds": 480.0, "measure": "response"},
    },
    "traffic_crash": {
        "description": "road traffic collision blocking lanes until towed",
        "severity": {1: 0.6, 2: 0.3, 3: 0.1},
        "units": {
            1: {"police": 1, "tow": 1},
            2: {"police": 1, "ambulance": 1, "tow": 1},
            3: {"police": 2, "ambulance": 2, "engine": 1, "tow": 2},
        },
        "priority": {1: 2, 2: 3, 3: 4},
        "on_scene": _lognormal(1800.0, 600.0),
        "transport": {1: 0.0, 2: 0.5, 3: 1.0},
        "cleared_by": "tow",
        "clearance": _lognormal(1200.0, 600.0),
        "capacity_factor": {1: 0.65, 2: 0.35, 3: 0.15},
        "target": {"seconds": 600.0, "measure": "response"},
    },
    "flood": {
        "description": "flooded roads, closed until the water is gone and the scene cleared",
        "severity": {1: 0.5, 2: 0.35, 3: 0.15},
        "units": {1: {"police": 1}, 2: {"engine": 1, "police": 2}, 3: {"engine": 2, "police": 2}},
        "priority": {1: 1, 2: 2, 3: 3},
        "on_scene": _lognormal(3 * 3600.0, 3600.0),
        "closes_links": True,
        "closure_radius_m": 0.0,
        "target": {"seconds": 1200.0, "measure": "response"},
    },
}


def _merge_types(value: Any) -> Any:
    """The built-in table with the scenario's entries merged over it, field by field."""
    if value is None:
        value = {}
    if not isinstance(value, dict):
        return value  # pydantic reports the type error
    out = copy.deepcopy(DEFAULT_INCIDENT_TYPES)
    for name, entry in value.items():
        if isinstance(name, str) and name in out and isinstance(entry, dict):
            out[name] = {**out[name], **entry}
        else:
            out[name] = entry
    return out


# ----------------------------------------------------------------------------- locations


def _location(value: Any) -> Any:
    """A location: node id (int), ``[lon, lat]``, or a named place (text)."""
    if isinstance(value, bool) or value is None:
        raise ValueError(f"expected a node id, [lon, lat] or a place name, got {value!r}")
    if isinstance(value, float) and value.is_integer() and abs(value) < 2.0**63:
        value = int(value)
    if isinstance(value, int):
        if not -(2**63) <= value < 2**63:
            raise ValueError(
                "a node id must fit a 64-bit integer (OSM ids do), got a "
                f"{len(str(abs(value))) if abs(value) < 10**4000 else 'many'}-digit number"
            )
        return value
    if isinstance(value, str):
        if not value.strip():
            raise ValueError("expected a node id, [lon, lat] or a place name, got an empty string")
        return value.strip()
    if isinstance(value, (list, tuple)):
        if len(value) != 2 or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value
        ):
            raise ValueError(f"a [lon, lat] location needs two finite numbers, got {list(value)!r}")
        return [float(value[0]), float(value[1])]
    raise ValueError(f"expected a node id, [lon, lat] or a place name, got {value!r}")


Location = Annotated[int | str | list[float], BeforeValidator(_location)]


def _time_point(value: Any) -> Any:
    """Check a time point; keep clock times as text (the start is needed to place them)."""
    parse_time_point(value)  # raises ValueError naming the problem
    if isinstance(value, str) and ":" in value:
        return value.strip()
    from basics.clock import parse_duration

    return parse_duration(value)


TimePoint = Annotated[float | str, BeforeValidator(_time_point)]


# ------------------------------------------------------------------------------ incidents


class RateSpec(_Section):
    """Stochastic calls of one incident type: a Poisson process by clock hour and zone.

    Attributes
    ----------
    per_hour : float
        Mean calls per hour over the whole city and the whole day.
    hourly : list of 24 floats or None
        Relative rate by clock hour 0-23 (scaled to a mean of 1); ``None``: flat.
    zones : str or dict
        Where calls happen: ``uniform`` (every node alike), ``residents`` or ``jobs``
        (zones weighted by them, nodes alike within a zone), or ``{zone name: weight}``
        (unlisted zones get none).
    nodes : list or None
        Instead of zones: only these locations (node ids, ``[lon, lat]`` or place names),
        alike.
    """

    per_hour: Annotated[Number, Field(ge=0, le=MAX_CALLS_PER_HOUR)]
    hourly: list[Weight] | None = None
    zones: Literal["uniform", "residents", "jobs"] | Annotated[dict[str, Weight], Field(max_length=MAX_ENTRIES)] = (
        "residents"
    )
    nodes: Annotated[list[Location], Field(max_length=MAX_ENTRIES)] | None = None

    @field_validator("hourly", mode="before")
    @classmethod
    def _hours_count(cls, value: Any) -> Any:
        if isinstance(value, (list, tuple)) and len(value) != 24:
            # before reading each value: a million of them are refused at once
            raise ValueError(f"needs 24 values (clock hours 0-23), got {len(value):,}")
        return value

    @field_validator("hourly")
    @classmethod
    def _hours(cls, value: list[float] | None) -> list[float] | None:
        if value is None:
            return None
        if len(value) != 24:
            raise ValueError(f"needs 24 values (clock hours 0-23), got {len(value)}")
        total = math.fsum(value)
        if total <= 0:
            raise ValueError("needs at least one hour above 0")
        return [24.0 * v / total for v in value]

    @field_validator("nodes")
    @classmethod
    def _some_nodes(cls, value: list[Any] | None) -> list[Any] | None:
        if value is not None and not value:
            raise ValueError("give at least one location, or leave nodes out")
        return value

    @field_validator("zones")
    @classmethod
    def _some_zone(cls, value: Any) -> Any:
        if isinstance(value, dict) and not any(w > 0 for w in value.values()):
            raise ValueError("needs at least one zone with a weight above 0")
        return value


class DrillEntry(_Section):
    """One scripted incident of the drill timeline.

    Attributes
    ----------
    at : float or str
        When it occurs: a clock time ``"HH:MM[:SS]"`` (the first at or after the start)
        or a time after the start (``"25min"``, ``900``).
    type : str
        An incident type.
    location : int, [lon, lat] or str
        A node id, a point, or a named place of the city (a bridge, a facility name).
    severity : int or None
        Level 1-5; ``None`` draws it from the type's severity weights.
    notes : str
        Free text, carried into the after-action log.
    """

    at: TimePoint
    type: str
    location: Location
    severity: Level | None = None
    notes: str = ""


class IncidentsSpec(_Section):
    """The ``incidents`` section: incident types, stochastic rates, the drill timeline.

    Attributes
    ----------
    enabled : bool or None
        ``None`` (default): emergency response runs when there are rates or a drill.
    types : dict
        Incident types by name, merged over :data:`DEFAULT_INCIDENT_TYPES`.
    rates : dict
        Type name -> :class:`RateSpec` (stochastic calls).
    drill : list
        The scripted timeline (:class:`DrillEntry`).
    call_delay : DistSpec
        From occurrence to the call being reported to dispatch.
    turnout : DistSpec
        From a unit being dispatched to it leaving for the scene.
    emergency_speed_factor : float
        Units drive each link in its current (congested) travel time divided by this.
    policy : str
        Dispatch policy: ``closest`` (closest available unit by current travel time),
        ``closest_free_flow`` (by free-flow travel time, blind to congestion) or
        ``"package.module:function"`` (see :mod:`twin.emergency.dispatch`).
    """

    enabled: bool | None = None
    types: Annotated[dict[str, IncidentTypeSpec], BeforeValidator(_merge_types)] = Field(
        default_factory=dict, validate_default=True, max_length=100
    )
    rates: dict[str, RateSpec] = Field(default_factory=dict, max_length=100)
    drill: list[DrillEntry] = Field(default_factory=list, max_length=MAX_ENTRIES)
    call_delay: DistSpec = Field(default_factory=lambda: DistSpec(dist="lognormal", mean=60.0, sd=30.0))
    turnout: DistSpec = Field(default_factory=lambda: _fixed(60.0))
    emergency_speed_factor: Annotated[Number, Field(gt=0, le=10)] = 1.25
    policy: str = "closest"

    @model_validator(mode="after")
    def _known_types(self) -> IncidentsSpec:
        problems = []
        known = ", ".join(sorted(self.types))
        for name in self.types:
            if not name.strip():
                problems.append(("types", "incident type names cannot be empty"))
        for name in self.rates:
            if name not in self.types:
                problems.append((f"rates.{name}", f"is not an incident type (known: {known})"))
        for i, entry in enumerate(self.drill):
            if entry.type not in self.types:
                problems.append((f"drill.{i}.type", f"'{entry.type}' is not an incident type (known: {known})"))
        pol = self.policy.strip()
        if pol not in ("closest", "closest_free_flow") and ":" not in pol:
            problems.append(("policy", "must be closest, closest_free_flow or 'package.module:function'"))
        if problems:
            raise CrossFieldError(problems)
        return self

    @property
    def active(self) -> bool:
        """Whether the twin should run emergency response for this section."""
        return bool(self.rates or self.drill) if self.enabled is None else self.enabled

    @property
    def unit_kinds_needed(self) -> set[str]:
        """Every unit kind some incident type asks for."""
        return {k for t in self.types.values() for mix in t.units.values() for k, n in mix.items() if n > 0}


# ------------------------------------------------------------------------------ resources


class StationSpec(_Section):
    """A station and its units.

    Attributes
    ----------
    name : str
        Unique among stations.
    kind : {"fire", "ems", "police", "tow"}
        What kind of station.
    node : int, [lon, lat] or str
        Where it is: a node id, a point or a named place.
    units : dict
        Unit kind -> count (e.g. ``{engine: 2, ladder: 1}``).
    mutual_aid : bool
        Units from a neighbouring service: sent only when no own unit of the kind is free.
    in_service : bool
        Out of service at the start (its units are not dispatched) when false.
    """

    name: str
    kind: Literal["fire", "ems", "police", "tow"]
    node: Location
    units: dict[str, Annotated[Count, Field(ge=0, le=MAX_UNITS_PER_STATION)]] = Field(
        default_factory=dict, max_length=100
    )
    mutual_aid: bool = False
    in_service: bool = True


class HospitalSpec(_Section):
    """A hospital with beds for emergency patients.

    Attributes
    ----------
    name : str
        Unique among hospitals.
    node : int, [lon, lat] or str
        Where it is.
    beds : int
        Beds (or ED places) for patients brought in.
    occupied : int
        Beds already taken at the start.
    """

    name: str
    node: Location
    beds: Annotated[Count, Field(ge=1, le=MAX_BEDS)]
    occupied: Annotated[Count, Field(ge=0, le=MAX_BEDS)] = 0

    @model_validator(mode="after")
    def _fits(self) -> HospitalSpec:
        if self.occupied > self.beds:
            raise CrossFieldError([("occupied", f"cannot exceed beds ({self.beds}), got {self.occupied}")])
        return self


class ResourcesSpec(_Section):
    """The ``resources`` section: stations with units, hospitals with beds.

    Attributes
    ----------
    stations, hospitals : list
        See :class:`StationSpec`, :class:`HospitalSpec`.
    include_city_facilities : bool or None
        Add the city's facilities (fire/EMS/police stations and a tow depot; hospitals)
        to the lists: ``None`` (default) only where a list is empty, ``true`` always,
        ``false`` never.
    """

    stations: list[StationSpec] = Field(default_factory=list, max_length=MAX_ENTRIES)
    hospitals: list[HospitalSpec] = Field(default_factory=list, max_length=MAX_ENTRIES)
    include_city_facilities: bool | None = None

    @model_validator(mode="after")
    def _unique(self) -> ResourcesSpec:
        problems = []
        for attr in ("stations", "hospitals"):
            seen: dict[str, int] = {}
            for i, entry in enumerate(getattr(self, attr)):
                name = entry.name.strip()
                if not name:
                    problems.append((f"{attr}.{i}.name", "cannot be empty"))
                elif name in seen:
                    problems.append((f"{attr}.{i}.name", f"'{name}' is already the name of {attr}[{seen[name]}]"))
                seen.setdefault(name, i)
        if problems:
            raise CrossFieldError(problems)
        return self
