"""Scenario section ``interventions``: a timeline of what-if changes.

Each entry has a ``kind``, an optional ``name``, and ``at`` / ``until`` (a
clock time ``"HH:MM"`` -- the first such moment at or after the start -- or a
time after the start such as ``"2h"``; ``until`` omitted means to the end).
Places are named by link or node ids, road names or named places (``road``,
``place``: e.g. ``"Old Bridge"``), or ``near: [lon, lat]``::

    interventions:
      - {kind: close, road: Old Bridge, at: "06:00", until: "20:00"}
      - {kind: capacity, road: 4 Avenue, factor: 0.5, at: 2h}
      - {kind: lanes, links: [12, 13], lanes: 3}
      - {kind: speed, road: Ring Road, speed_kmh: 50}
      - {kind: signal, road: 4 Avenue, cycle: 90, favour: {road: 4 Avenue}, green_share: 0.65}
      - {kind: cordon, zones: [Z01-01, Z01-02], price: 5, at: "07:00", until: "10:00"}
      - {kind: demand, scale: 0.8, zones: [Z00-00]}
      - {kind: work_from_home, share: 0.3}
      - {kind: evacuation, zones: [Z00-01], compliance: 0.9, delay_mean: 15min}
      - {kind: station_out, station: Fire Station 2}
      - {kind: station_add, station: Fire Station 5, station_kind: fire, near: [24.95, 60.17], units: {engine: 2}}
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self

from pydantic import Field, field_validator, model_validator

from basics.clock import parse_time_point

from .base import Count, CrossFieldError, Duration, Number, _Section

__all__ = ["InterventionSpec", "INTERVENTION_KINDS", "LinkSelector"]


def _time_point(value: Any) -> Any:
    if value is None:
        return None
    parse_time_point(value)  # raises a ValueError with the accepted forms
    return value


TimePoint = Annotated[str | float | None, Field(union_mode="left_to_right")]


class _Base(_Section):
    name: str | None = None
    at: TimePoint = 0.0
    until: TimePoint = None
    note: str = ""

    @field_validator("at", "until", mode="before")
    @classmethod
    def _times(cls, value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError("expected a time, got " + str(value).lower())
        return _time_point(value)


class LinkSelector(_Base):
    """Which links: ids, road names, named places, or the road nearest a [lon, lat] point."""

    links: list[int] | int | None = None
    road: list[str] | str | None = None
    place: list[str] | str | None = None
    near: tuple[Number, Number] | None = None

    @model_validator(mode="after")
    def _some_place(self) -> Self:
        if self.links is None and self.road is None and self.place is None and self.near is None:
            raise CrossFieldError(
                [("road", "say which links: give 'links' (ids), 'road', 'place' or 'near' [lon, lat]")]
            )
        return self


class Close(LinkSelector):
    """Close links (road works, a bridge): nobody enters; those on them drive off."""

    kind: Literal["close"]


class Capacity(LinkSelector):
    """Multiply capacity (e.g. 0.5 for one of two lanes coned off without losing storage)."""

    kind: Literal["capacity"]
    factor: Annotated[Number, Field(ge=0)]


class Lanes(LinkSelector):
    """Set the number of lanes (capacity and storage scale with it)."""

    kind: Literal["lanes"]
    lanes: Annotated[Number, Field(gt=0)]


class Speed(LinkSelector):
    """A speed limit (km/h) and/or a factor on free speed."""

    kind: Literal["speed"]
    speed_kmh: Annotated[Number, Field(gt=0)] | None = None
    factor: Annotated[Number, Field(gt=0)] | None = None

    @model_validator(mode="after")
    def _one(self) -> Self:
        if self.speed_kmh is None and self.factor is None:
            raise CrossFieldError([("speed_kmh", "give speed_kmh (a new limit) or factor")])
        return self


class Favour(_Section):
    links: list[int] | int | None = None
    road: list[str] | str | None = None
    place: list[str] | str | None = None
    near: tuple[Number, Number] | None = None


class Signal(_Base):
    """Retime fixed-time signals at nodes: cycle, offset, and the green share of a favoured approach."""

    kind: Literal["signal"]
    nodes: list[int] | int | None = None
    road: list[str] | str | None = None
    near: tuple[Number, Number] | None = None
    cycle: Annotated[Duration, Field(gt=0)] | None = None
    offset: Duration | None = None
    favour: Favour | None = None
    green_share: Annotated[Number, Field(gt=0, lt=1)] | None = None

    @model_validator(mode="after")
    def _coherent(self) -> Self:
        problems = []
        if self.nodes is None and self.road is None and self.near is None:
            problems.append(("nodes", "say which signals: give 'nodes' (ids), 'road' or 'near' [lon, lat]"))
        if (self.favour is None) != (self.green_share is None):
            problems.append(("green_share", "'favour' and 'green_share' go together"))
        if self.cycle is None and self.offset is None and self.favour is None:
            problems.append(("cycle", "nothing to change: give cycle, offset, or favour + green_share"))
        if problems:
            raise CrossFieldError(problems)
        return self


class Cordon(_Base):
    """A priced cordon around zones: trips crossing its boundary pay ``price``.

    Population agents weigh the price in their choices.  With a trips table or
    gravity demand, each crossing trip departing while the cordon is priced is
    dropped with probability ``1 - exp(-price_sensitivity * price)``.
    """

    kind: Literal["cordon"]
    zones: list[str | int]
    price: Annotated[Number, Field(ge=0)]
    price_sensitivity: Annotated[Number, Field(ge=0)] = 0.08


class Demand(_Base):
    """Scale the trips departing in the window (from the given origin zones, or all)."""

    kind: Literal["demand"]
    scale: Annotated[Number, Field(ge=0)]
    zones: list[str | int] | None = None


class WorkFromHome(_Base):
    """A share of workers stays home (needs a ``population``)."""

    kind: Literal["work_from_home"]
    share: Annotated[Number, Field(ge=0, le=1)]


class Evacuation(_Base):
    """An evacuation order for zones (needs a ``population``)."""

    kind: Literal["evacuation"]
    zones: list[str | int]
    compliance: Annotated[Number, Field(ge=0, le=1)] = 1.0
    delay_mean: Duration = 0.0
    delay_sd: Duration = 0.0
    shelters: list[int] | None = None


class StationOut(_Base):
    """Take an emergency station out of service (its units stop taking calls)."""

    kind: Literal["station_out"]
    station: str


class StationAdd(_Base):
    """Open a new emergency station with units."""

    kind: Literal["station_add"]
    station: str
    station_kind: Literal["fire", "ems", "police", "tow"] = "fire"
    node: int | None = None
    near: tuple[Number, Number] | None = None
    units: dict[str, Annotated[Count, Field(ge=0)]] = Field(default_factory=lambda: {"engine": 1})

    @model_validator(mode="after")
    def _where(self) -> Self:
        if (self.node is None) == (self.near is None):
            raise CrossFieldError([("node", "give exactly one of 'node' (an id) or 'near' [lon, lat]")])
        return self


InterventionSpec = Annotated[
    Close | Capacity | Lanes | Speed | Signal | Cordon | Demand | WorkFromHome | Evacuation | StationOut | StationAdd,
    Field(discriminator="kind"),
]

INTERVENTION_KINDS: tuple[str, ...] = (
    "close",
    "capacity",
    "lanes",
    "speed",
    "signal",
    "cordon",
    "demand",
    "work_from_home",
    "evacuation",
    "station_out",
    "station_add",
)
