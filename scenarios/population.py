"""Scenario section ``population``: synthesised residents whose day plans make the demand.

Leave the section out (or empty) for trip-table or gravity demand. Any setting in it
(or ``enabled: true``) switches the population on: persons in households are synthesised
from the zones' residents, jobs and school places, each gets a day plan, and their trips
*replace* the gravity model (a ``demand: {trips: FILE}`` table, if given, still runs
beside them as background traffic)::

    population:
      scale: 0.25                      # a quarter of the zones' residents (or persons: N)
      zones: zones.geojson             # optional; default the city's zones (zone_size: a grid)
      synthesis: {car_share: 0.6, value_of_time: 14}
      plans:
        work: {depart: "08:00", depart_sd: 1h, duration: 8h30min}
        out_share: 0.85
      choice: {theta: 0.15, shifts: [-30min, -15min, 0s, 15min, 30min]}

Money is in one currency throughout (prices of cordons, fares, values of time per hour
and values of activities).
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, ValidationInfo, field_validator, model_validator

from basics.clock import parse_duration

from .base import Clock, Count, CrossFieldError, Duration, Number, _resolve_file, _Section

__all__ = [
    "PopulationSpec",
    "SynthesisSpec",
    "ActivitySpec",
    "PlansSpec",
    "ChoiceSpec",
    "EvacuationSpec",
]


def _signed_duration(value: Any) -> Any:
    """A duration that may be negative: ``-30min``, ``-1800``."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration, got {str(value).lower()}")
    if isinstance(value, str) and value.strip().startswith("-"):
        return -parse_duration(value.strip()[1:])
    if isinstance(value, (int, float)) and value < 0:
        return -parse_duration(-value)
    return parse_duration(value)


SignedDuration = Annotated[float, BeforeValidator(_signed_duration)]
Share = Annotated[Number, Field(ge=0, le=1)]

#: Most persons a population may have (``persons``, or the zones' residents times ``scale``).
MAX_PERSONS: int = 20_000_000
#: Most entries of a list of shares or of departure shifts.
MAX_LIST: int = 100


class SynthesisSpec(_Section):
    """Who lives in the city.

    Attributes
    ----------
    household_sizes : list of float
        Relative shares of households of 1, 2, 3, ... persons.
    age_shares : list of 4 float
        Relative shares of the age groups 0-5, 6-17, 18-64, 65+.
    employment_rate, senior_employment_rate : float
        Shares of 18-64 and 65+ year olds who work.
    car_share : float
        Share of households with a car (adults in them may drive).
    value_of_time : float
        Median value of travel time, currency per hour (log-normal across persons).
    value_of_time_spread : float
        Log-normal sigma of the value of time.
    worker_vot_factor : float
        Workers' value of time relative to the others'.
    work_beta_per_km, school_beta_per_km : float
        Distance decay of the workplace and school assignment.
    access_nodes : int
        Nodes per zone where homes, workplaces and activities meet the roads (drawn at
        random; 0: every node). A few per zone is the usual zone-connector
        simplification and keeps the traffic model's route table small.
    """

    household_sizes: list[Annotated[Number, Field(ge=0)]] = Field(
        default_factory=lambda: [0.36, 0.32, 0.14, 0.12, 0.06], min_length=1, max_length=20
    )
    age_shares: list[Annotated[Number, Field(ge=0)]] = Field(
        default_factory=lambda: [0.06, 0.13, 0.63, 0.18], min_length=4, max_length=4
    )
    employment_rate: Share = 0.72
    senior_employment_rate: Share = 0.05
    car_share: Share = 0.65
    value_of_time: Annotated[Number, Field(gt=0, le=1e6)] = 12.0
    value_of_time_spread: Annotated[Number, Field(ge=0, le=10)] = 0.5
    worker_vot_factor: Annotated[Number, Field(gt=0)] = 1.3
    work_beta_per_km: Annotated[Number, Field(ge=0)] = 0.25
    school_beta_per_km: Annotated[Number, Field(ge=0)] = 1.0
    access_nodes: Annotated[Count, Field(ge=0, le=100_000)] = 0

    @model_validator(mode="after")
    def _positive_sums(self) -> SynthesisSpec:
        problems = []
        if math.fsum(self.household_sizes) <= 0:
            problems.append(("household_sizes", "all shares are 0"))
        if self.age_shares[2] + self.age_shares[3] <= 0:
            problems.append(("age_shares", "somebody must be 18 or over to head a household"))
        if problems:
            raise CrossFieldError(problems)
        return self


class ActivitySpec(_Section):
    """An activity's times and value.

    Attributes
    ----------
    depart : float
        Mean preferred departure (clock time) when the activity starts the day.
    depart_sd : float
        Spread of that departure (normal, cut at 3 sd).
    duration, duration_sd : float
        Time spent at the activity (normal), and its spread.
    min_duration : float
        Shortest stay.
    value : float
        What doing it is worth, currency: a person skips it when the generalized cost of
        getting there comes close to this.
    """

    depart: Clock = 0.0
    depart_sd: Duration = 0.0
    duration: Annotated[Duration, Field(gt=0)]
    duration_sd: Duration = 0.0
    min_duration: Duration = 600.0
    value: Annotated[Number, Field(ge=0)] = 20.0


def _activity(**kw: Any) -> Any:
    return Field(default_factory=lambda: ActivitySpec(**kw))


class PlansSpec(_Section):
    """Day plans: activity times and the shares of each chain (see :mod:`city_models.plans`).

    Attributes
    ----------
    work, school, other : ActivitySpec
        Their departures, durations and values.
    home : ActivitySpec
        Time at home between two tours (``depart`` unused).
    stop_after_work : float
        Share of workers who stop for another activity on the way home.
    worker_evening : float
        Share of workers who go out again in the evening.
    student_other : float
        Share of pupils with an afternoon/evening activity.
    out_share : float
        Share of non-working adults and seniors who leave home at all.
    chain_other : float
        Share of those who chain a second activity in the same tour.
    second_tour : float
        Share of those who make a second tour.
    """

    work: ActivitySpec = _activity(
        depart=7.75 * 3600, depart_sd=3600.0, duration=8.5 * 3600, duration_sd=3600.0, min_duration=3600.0, value=80.0
    )
    school: ActivitySpec = _activity(
        depart=7.6 * 3600, depart_sd=900.0, duration=6.5 * 3600, duration_sd=1800.0, min_duration=3600.0, value=80.0
    )
    other: ActivitySpec = _activity(
        depart=11.0 * 3600, depart_sd=3 * 3600.0, duration=5400.0, duration_sd=3600.0, min_duration=600.0, value=20.0
    )
    home: ActivitySpec = _activity(duration=7200.0, duration_sd=3600.0, min_duration=1200.0, value=0.0)
    stop_after_work: Share = 0.3
    worker_evening: Share = 0.5
    student_other: Share = 0.35
    out_share: Share = 0.9
    chain_other: Share = 0.25
    second_tour: Share = 0.45


class ChoiceSpec(_Section):
    """How persons choose when, where, how and whether to travel (a logit model).

    Attributes
    ----------
    theta : float
        Logit scale: utility per currency unit of generalized cost.
    shifts : list of float
        Departure shifts to choose from (signed durations, e.g. ``-30min``), must hold 0.
        Persons decide ``-min(shifts)`` before their preferred departure.
    early_cost_per_h, late_cost_per_h : float
        Cost of leaving earlier / later than preferred, currency per hour.
    car_cost_per_km : float
        Money cost of driving, per km.
    detour : float
        Network distance over straight-line distance (>= 1).
    other_speed_kmh : float
        Door-to-door speed of the non-car modes (public transport, bike, walk).
    other_wait : float
        Access and waiting time of the non-car modes.
    other_fare : float
        Fare of a non-car trip.
    other_penalty : float
        Extra disutility of the non-car modes, currency.
    destination_samples : int
        Destinations drawn (by zone attraction) for a flexible activity.
    attraction_weight : float
        Weight of a zone's log attraction in the destination choice.
    destination_beta_per_km : float
        Utility lost per km to an errand's destination beyond its cost (errands are done
        nearby).
    other_attraction_jobs : float
        Attraction of a zone for "other" activities: this weight on jobs plus
        (1 - it) on residents.
    """

    theta: Annotated[Number, Field(gt=0)] = 0.2
    shifts: list[SignedDuration] = Field(
        default_factory=lambda: [-1800.0, -900.0, 0.0, 900.0, 1800.0], min_length=1, max_length=MAX_LIST
    )
    early_cost_per_h: Annotated[Number, Field(ge=0)] = 6.0
    late_cost_per_h: Annotated[Number, Field(ge=0)] = 9.0
    car_cost_per_km: Annotated[Number, Field(ge=0)] = 0.25
    detour: Annotated[Number, Field(ge=1)] = 1.3
    other_speed_kmh: Annotated[Number, Field(gt=0)] = 15.0
    other_wait: Duration = 300.0
    other_fare: Annotated[Number, Field(ge=0)] = 2.5
    other_penalty: Number = 4.0
    destination_samples: Annotated[Count, Field(ge=1, le=64)] = 8
    attraction_weight: Annotated[Number, Field(ge=0)] = 1.0
    destination_beta_per_km: Annotated[Number, Field(ge=0)] = 0.3
    other_attraction_jobs: Share = 0.6

    @field_validator("shifts")
    @classmethod
    def _shifts(cls, value: list[float]) -> list[float]:
        if 0.0 not in value:
            raise ValueError("the shifts must include 0 (leaving at the preferred time)")
        if len(set(value)) != len(value):
            raise ValueError("the shifts repeat a value")
        return sorted(value)


class EvacuationSpec(_Section):
    """How evacuations are measured and walked.

    Attributes
    ----------
    clearance_share : float
        The clearance time is the time from the order until this share of the ordered
        zones' population has reached safety.
    walk_speed_kmh : float
        Speed of evacuees without a car (they leave on foot).
    """

    clearance_share: Annotated[Number, Field(gt=0, le=1)] = 0.9
    walk_speed_kmh: Annotated[Number, Field(gt=0)] = 5.0


class PopulationSpec(_Section):
    """Synthesised residents with day plans, as Mesa agents (off unless set).

    Attributes
    ----------
    enabled : bool
        Whether the population makes the demand; true as soon as any other setting is
        given.
    scale : float
        Share of the zones' residents to synthesise (1: all; at most 100).
    persons : int or None
        A total number of persons instead (split over the zones by residents; at most
        :data:`MAX_PERSONS`).
    zones : str or None
        Zone file (GeoJSON polygons/points in lon/lat, or CSV of centroids) with
        ``residents``, ``jobs`` and optional ``schools``; absolute after loading.
    zone_size : float or None
        Square grid zones of this size (m, 10 m to 1,000 km) over the network instead of
        the city's zones (the city's residents and jobs spread by node counts).
    agents : {"household", "person"}
        What each Mesa agent stands for: a household (default; cheap for a million
        persons) or a person.
    bucket : float
        Decisions and arrivals are handled in buckets of this length (at least 1 s).
    skim_interval : float
        Shortest time between refreshes of the persons' car travel times (they follow the
        traffic model's re-routing; closures reach them at once; at least 1 s).
    trip_table : bool
        Write every agent trip (person, purpose, mode, times, cost) to the results.
    """

    enabled: bool = False
    scale: Annotated[Number, Field(gt=0, le=100)] = 1.0
    persons: Annotated[Count, Field(ge=0, le=MAX_PERSONS)] | None = None
    zones: str | None = None
    zone_size: Annotated[Number, Field(ge=10, le=1e6)] | None = None
    agents: Literal["household", "person"] = "household"
    bucket: Annotated[Duration, Field(ge=1)] = 300.0
    skim_interval: Annotated[Duration, Field(ge=1)] = 1800.0
    trip_table: bool = True
    synthesis: SynthesisSpec = Field(default_factory=SynthesisSpec)
    plans: PlansSpec = Field(default_factory=PlansSpec)
    choice: ChoiceSpec = Field(default_factory=ChoiceSpec)
    evacuation: EvacuationSpec = Field(default_factory=EvacuationSpec)

    @model_validator(mode="before")
    @classmethod
    def _switch_on(cls, data: Any) -> Any:
        # any setting switches the population on, unless ``enabled: false`` says otherwise
        if isinstance(data, dict) and data and "enabled" not in data:
            data = {**data, "enabled": True}
        return data

    @field_validator("zones")
    @classmethod
    def _zone_file(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        path = _resolve_file(value, info, what="zone file")
        if not path.lower().endswith((".geojson", ".json", ".gpkg", ".csv")):
            raise ValueError(f"zone file '{path}' must be GeoJSON (.geojson/.json), GeoPackage (.gpkg) or CSV (.csv)")
        return path

    @model_validator(mode="after")
    def _one_zoning(self) -> PopulationSpec:
        if self.zones is not None and self.zone_size is not None:
            raise CrossFieldError([("zone_size", "give a zone file (zones) or a grid size (zone_size), not both")])
        return self
