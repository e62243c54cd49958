"""The scenario schema: what a scenario file may say, validated with pydantic.

A scenario is a YAML mapping of sections. Only ``city`` is required; everything else has
a default a planner would expect (a 24 h working day from midnight, 2 s traffic steps,
gravity demand, dynamic re-routing every 10 min, results every 5 min)::

    name: my_day                 # default: the file name without .yaml
    seed: 7
    time: {start: "07:00", duration: 3h, step: 2s}
    city: {synthetic: {bridges: 2}}      # or {osm: helsinki} or {graphml: city.graphml}
    demand: {gravity: {total_trips: 20000}}   # or {trips: trips.csv}
    traffic: {reroute_interval: 10min, routing: dynamic}
    outputs: {interval: 5min}

Every section forbids unknown keys, so a typo (``duraton``) is an error naming the field,
not a silently ignored setting. Times are normalised to float seconds when validated (see
:mod:`basics.clock`), and file paths to absolute paths, resolved against the
scenario file's folder. Use :func:`scenarios.loader.load_scenario` to read files; it turns
every validation problem into one :class:`~scenarios.errors.ScenarioError` paragraph.

Sections ``city`` (:mod:`scenarios.city`) and ``demand`` (:mod:`scenarios.demand`) have
their own modules, and so do ``incidents`` and ``resources`` (:mod:`scenarios.emergency`),
``interventions`` (:mod:`scenarios.interventions`), ``feeds`` (:mod:`scenarios.feeds`) and
``population`` (:mod:`scenarios.population`), which each default to "not used"; their
names are re-exported here.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import (
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from basics.clock import DAY_S, format_clock, format_duration

__all__ = [
    "BUILTIN_CITIES",
    "DEFAULT_PROFILE",
    "MAX_TRIPS",
    "TRIPS_COLUMNS",
    "CitySpec",
    "RepairSpec",
    "CrossFieldError",
    "DemandSpec",
    "DepartureShiftSpec",
    "EquilibriumSpec",
    "GravityDemand",
    "OutputSpec",
    "Scenario",
    "SyntheticCity",
    "TimeSpec",
    "TrafficSpec",
]

#: Longest scenario name (it becomes part of a run folder's name, which file systems
#: limit to 255 bytes).
MAX_NAME_CHARS: int = 100

#: Most traffic steps in a scenario (``time.duration / time.step``).
MAX_STEPS: int = 100_000_000

#: Most recorded time bins in a scenario (``time.duration / outputs.interval``).
MAX_OUTPUT_BINS: int = 200_000

from .base import (  # noqa: E402  (re-exported: section modules and the loader use them)
    Clock,
    Count,
    CrossFieldError,
    Duration,
    Number,
    _context,
    _normpath,
    _resolve_file,
    _Section,
)

# --------------------------------------------------------------------------------- time


class TimeSpec(_Section):
    """When the scenario runs and how finely the traffic model steps.

    Attributes
    ----------
    start : float
        Clock time of day the scenario starts, seconds after midnight. Written
        ``"HH:MM[:SS]"`` or as seconds; default 0 (midnight).
    duration : float
        How long the scenario runs, seconds (> 0, at most 366 days). Written as a number
        of seconds or ``"90min"``, ``"3h"``, ``"1d"``...; default ``"24h"``.
    step : float
        The traffic model's time step, seconds (> 0, at most the duration, and
        at most :data:`MAX_STEPS` steps in the duration); default ``"2s"``.
    """

    start: Clock = 0.0
    duration: Annotated[Duration, Field(gt=0)] = DAY_S
    step: Annotated[Duration, Field(gt=0)] = 2.0

    @property
    def start_s(self) -> float:
        """Start, seconds after midnight."""
        return self.start

    @property
    def duration_s(self) -> float:
        """Duration, seconds."""
        return self.duration

    @property
    def step_s(self) -> float:
        """Traffic time step, seconds."""
        return self.step

    @property
    def end_s(self) -> float:
        """End as seconds after the first midnight (may exceed one day)."""
        return self.start + self.duration

    @property
    def n_steps(self) -> int:
        """Number of traffic steps that cover the duration (the last may end past it)."""
        return int(math.ceil(self.duration / self.step - 1e-9))

    @model_validator(mode="after")
    def _step_fits(self) -> TimeSpec:
        if self.step > self.duration:
            raise CrossFieldError(
                [
                    (
                        "step",
                        (
                            f"the step ({format_duration(self.step)}) is longer than the duration "
                            f"({format_duration(self.duration)})"
                        ),
                    )
                ]
            )
        if self.duration / self.step > MAX_STEPS:
            raise CrossFieldError(
                [
                    (
                        "step",
                        (
                            f"{format_duration(self.duration)} in steps of {format_duration(self.step)} is "
                            f"{self.duration / self.step:,.0f} steps; at most {MAX_STEPS:,} are allowed"
                        ),
                    )
                ]
            )
        return self


# ---------------------------------------------------------------------- traffic, outputs


class DepartureShiftSpec(_Section):
    """How population agents move their departure times between the days of an equilibrium
    (``traffic.equilibrium.departure_shift``; scenarios with a ``population`` only).

    After each day the same share ``s_k`` of agent car trips as learns the link times
    re-plans its departure: among the shifts ``-max, ..., -step, 0, step, ..., max`` from
    the time the plan says to leave, it takes the one with the least expected cost, the
    travel time it expects (shortest path on the remembered link times of that time of
    day) plus a schedule-delay penalty (Vickrey; Small 1982): ``early_penalty`` seconds of
    travel time per second of leaving early, ``late_penalty`` per second of leaving late.
    The shift is remembered for the next days.

    Attributes
    ----------
    enabled : bool
        Adapt departure times (default true); ``false``: only routes adapt.
    max : float
        Largest shift either way, seconds (0-4 h; default ``"30min"``; ``0``: none).
    step : float
        Spacing of the candidate shifts, seconds (> 0, at most ``max``; default ``"10min"``).
    early_penalty : float
        Cost of leaving a second earlier than planned, in seconds of travel time (>= 0,
        default 0.6, Small's estimate of the early-to-travel-time ratio).
    late_penalty : float
        Cost of leaving a second later than planned, in seconds of travel time (>= 0,
        default 2.4).
    """

    enabled: bool = True
    max: Annotated[Duration, Field(ge=0, le=4 * 3600)] = 1800.0
    step: Annotated[Duration, Field(gt=0, le=4 * 3600)] = 600.0
    early_penalty: Annotated[Number, Field(ge=0, le=100)] = 0.6
    late_penalty: Annotated[Number, Field(ge=0, le=100)] = 2.4

    @model_validator(mode="after")
    def _step_fits(self) -> Self:
        if self.max > 0 and self.step > self.max:
            raise CrossFieldError(
                [
                    (
                        "step",
                        (
                            f"the step between candidate shifts ({format_duration(self.step)}) is longer than the largest "
                            f"shift, max ({format_duration(self.max)}); make it at most max, or set max to 0 for no shifts"
                        ),
                    )
                ]
            )
        return self


class EquilibriumSpec(_Section):
    """A day-to-day equilibrium (``twin equilibrate``): the day is simulated again and
    again, and between days travellers learn the link travel times by time of day.

    Attributes
    ----------
    iterations : int
        Most days to simulate (1-1000; default 20). Day 1 routes on the day's own
        (within-day) travel times, as ``twin run`` does; later days on what travellers
        remember.
    method : {"msa", "constant"}
        How much of yesterday's experience enters what travellers remember: after day
        ``k`` the remembered times move a share ``s_k`` of the way to the experienced ones,
        ``s_k = 1/k`` (``msa``, the method of successive averages; default) or
        ``switch_share`` (``constant``).
    switch_share : float
        The constant share of travellers that switch to yesterday's experienced best,
        0 < s <= 1 (default 0.2; only used by ``method: constant``).
    gap_target : float
        Stop once a day's relative gap (experienced minus best possible travel time, over
        the best possible) is at most this, 0 <= g < 1 (default 0.01; ``0``: run every
        iteration).
    departure_shift : DepartureShiftSpec
        How population agents adapt their departure times between days (see
        :class:`DepartureShiftSpec`; ``{enabled: false}``: only routes adapt).
    """

    iterations: Annotated[Count, Field(ge=1, le=1000)] = 20
    method: Literal["msa", "constant"] = "msa"
    switch_share: Annotated[Number, Field(gt=0, le=1)] = 0.2
    gap_target: Annotated[Number, Field(ge=0, lt=1)] = 0.01
    departure_shift: DepartureShiftSpec = DepartureShiftSpec()


class TrafficSpec(_Section):
    """How the traffic model routes vehicles.

    Attributes
    ----------
    reroute_interval : float
        Seconds between re-computations of routes on current travel times (dynamic
        routing); default ``"10min"``.
    routing : {"dynamic", "static"}
        ``dynamic``: routes follow current (congested) travel times, refreshed every
        ``reroute_interval``; ``static``: free-flow shortest paths fixed at departure.
    route_tolerance : float
        Out-links whose route cost is within this share of the best count as equally
        good, and vehicles bound for one destination spread over them (default 0.02).
    route_dispersion : float
        Logit scale of route choice, in seconds: at each junction a vehicle takes an
        out-link that gets closer to its destination with probability proportional to
        ``exp(-extra / route_dispersion)``, ``extra`` being how much more its route
        costs than the tolerance band of the best; ``0``: only the band.  Default
        ``"30s"``.
    travel_time_smoothing : float
        Weight of a new travel-time estimate against the previous ones at each
        refresh of every route (exponential smoothing; ``1``: none).  Default 0.5.
    reroute_batches : int
        Destinations are refreshed in this many rotating batches, one every
        ``reroute_interval / reroute_batches``, so travellers bound for different
        places switch at different times (default 5).
    stuck_time : float or None
        When the vehicle at the head of a street has waited this long and nobody has
        left that street into room, the street's vehicles may enter their next street
        although it is full (its capacity still holds), until one leaves into room
        again: for as long as such a jam holds, the street is a point queue.  Queues
        that close a loop of streets then clear instead of locking the grid.  Default
        ``"60s"``: longer than the red phases of the synthetic city's signals (48 s at
        most), so a queue merely waiting for green is not affected.  A cousin of SUMO's
        time-to-teleport (300 s), where the vehicle jumps ahead instead; with 300 s the
        default day locks up at 3 % more demand, with 60 s it still clears at 6 % more.
        ``null``: never, pure kinematic-wave storage.  How often it acted is reported
        (``squeezed_entries`` in the KPIs).
    equilibrium : EquilibriumSpec
        Settings of the day-to-day equilibrium that ``twin equilibrate`` computes
        (``twin run`` simulates one day and ignores them).
    """

    reroute_interval: Annotated[Duration, Field(gt=0)] = 600.0
    routing: Literal["dynamic", "static"] = "dynamic"
    route_tolerance: Annotated[Number, Field(ge=0, le=1)] = 0.02
    route_dispersion: Annotated[Duration, Field(ge=0, le=3600)] = 30.0
    travel_time_smoothing: Annotated[Number, Field(gt=0, le=1)] = 0.5
    reroute_batches: Annotated[int, Field(ge=1, le=60)] = 5
    stuck_time: Annotated[Duration, Field(gt=0, le=86400)] | None = 60.0
    equilibrium: EquilibriumSpec = Field(default_factory=EquilibriumSpec)

    @field_validator("equilibrium", mode="before")
    @classmethod
    def _empty_equilibrium(cls, value: Any) -> Any:
        # ``equilibrium:`` with nothing after it reads as null in YAML: it means "defaults"
        return {} if value is None else value


class OutputSpec(_Section):
    """What a run records and where it writes.

    Attributes
    ----------
    interval : float
        Seconds per recorded time bin of the link time series; a whole multiple of the
        time step. Default ``"5min"``.
    dir : str or None
        The run folder (absolute after loading); ``None`` lets the CLI choose one. It does
        not enter the scenario hash.
    """

    interval: Annotated[Duration, Field(gt=0)] = 300.0
    dir: str | None = None

    @field_validator("dir")
    @classmethod
    def _absolute(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        if not value.strip():
            raise ValueError("expected a folder path, got an empty string")
        base, _ = _context(info)
        path = Path(value.strip()).expanduser()
        return _normpath(path if path.is_absolute() else base / path)


# ----------------------------------------------------------------------------- scenario

_SECTIONS = frozenset(
    {"time", "demand", "traffic", "outputs", "incidents", "resources", "interventions", "feeds", "population"}
)

from .city import BUILTIN_CITIES, CitySpec, RepairSpec, SyntheticCity  # noqa: E402
from .demand import DEFAULT_PROFILE, MAX_TRIPS, TRIPS_COLUMNS, DemandSpec, GravityDemand  # noqa: E402
from .emergency import IncidentsSpec, ResourcesSpec  # noqa: E402
from .feeds import FeedsSpec  # noqa: E402
from .interventions import InterventionSpec  # noqa: E402
from .population import PopulationSpec  # noqa: E402


class Scenario(_Section):
    """A complete, validated scenario.

    Attributes
    ----------
    name : str
        Short name (default: the file name without ``.yaml``).
    description : str
        Free text for people.
    seed : int
        Seed (>= 0) of the one random generator every component spawns from.
    time : TimeSpec
        Start, duration and step.
    city : CitySpec
        The road network (required).
    demand : DemandSpec
        Trips table or gravity model (default: gravity with its defaults).
    traffic : TrafficSpec
        Routing settings.
    outputs : OutputSpec
        Recording interval and run folder.
    incidents : IncidentsSpec
        Emergency incidents: types, random rates by hour and zone, a drill timeline,
        dispatch settings, response-time targets (:mod:`scenarios.emergency`).
    resources : ResourcesSpec
        Stations with units, hospitals (default: the city's own facilities).
    interventions : list
        A timeline of what-if changes with ``at``/``until`` (:mod:`scenarios.interventions`).
    feeds : FeedsSpec
        Live data sources, sensor table and cleansing (:mod:`scenarios.feeds`).
    population : PopulationSpec
        Synthesised persons and their day plans; when on, it makes the demand
        (:mod:`scenarios.population`).
    baseline : str or None
        The scenario this one is compared against by ``twin compare SCENARIO.yaml``: a
        file (absolute after loading; relative paths read from this file's folder) or a
        built-in scenario name. Not part of the resolved scenario or its hash.
    """

    name: str = "scenario"
    description: str = ""
    seed: Annotated[Count, Field(ge=0)] = 0
    time: TimeSpec = Field(default_factory=TimeSpec)
    city: CitySpec
    demand: DemandSpec = Field(default_factory=DemandSpec)
    traffic: TrafficSpec = Field(default_factory=TrafficSpec)
    outputs: OutputSpec = Field(default_factory=OutputSpec)
    incidents: IncidentsSpec = Field(default_factory=IncidentsSpec)
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec)
    interventions: list[InterventionSpec] = Field(default_factory=list)
    feeds: FeedsSpec = Field(default_factory=FeedsSpec)
    population: PopulationSpec = Field(default_factory=PopulationSpec)
    baseline: str | None = Field(default=None, exclude=True)

    @field_validator("baseline")
    @classmethod
    def _baseline_file(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        text = value.strip()
        if (
            text
            and not any(sep in text for sep in "/\\.")
            and (Path(__file__).resolve().parent / "library" / f"{text}.yaml").is_file()
        ):
            return text  # a built-in scenario's name
        return _resolve_file(value, info, what="baseline scenario file")

    @model_validator(mode="before")
    @classmethod
    def _null_sections(cls, data: Any) -> Any:
        # ``time:`` with nothing after it reads as null in YAML: it means "defaults".
        if isinstance(data, dict):
            empty: dict[str, Any] = {
                k: ([] if k == "interventions" else {}) for k, v in data.items() if v is None and k in _SECTIONS
            }
            if empty:
                data = {**data, **empty}
        return data

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the name cannot be empty")
        bad = next((c for c in value if ord(c) < 32 or ord(c) == 127), None)
        if bad is not None:
            raise ValueError(f"the name contains the control character {bad!r}; names become folder names")
        if len(value.strip()) > MAX_NAME_CHARS or len(value.strip().encode("utf-8")) > 2 * MAX_NAME_CHARS:
            raise ValueError(
                f"the name is {len(value.strip()):,} characters long; at most "
                f"{MAX_NAME_CHARS} are allowed (names become folder names)"
            )
        return value.strip()

    @model_validator(mode="after")
    def _consistent(self) -> Scenario:
        step = self.time.step
        problems = []
        interval = self.outputs.interval
        if interval < step or abs(interval / step - round(interval / step)) > 1e-6:
            problems.append(
                (
                    "outputs.interval",
                    (
                        f"the recording interval ({format_duration(interval)}) must be a whole "
                        f"multiple of time.step ({format_duration(step)})"
                    ),
                )
            )
        elif self.time.duration / interval > MAX_OUTPUT_BINS:
            problems.append(
                (
                    "outputs.interval",
                    (
                        f"recording every {format_duration(interval)} for {format_duration(self.time.duration)} "
                        f"makes {self.time.duration / interval:,.0f} time bins; at most {MAX_OUTPUT_BINS:,} "
                        "are allowed (record less often)"
                    ),
                )
            )
        if self.traffic.reroute_interval < step:
            problems.append(
                (
                    "traffic.reroute_interval",
                    (
                        f"re-routing every {format_duration(self.traffic.reroute_interval)} is "
                        f"more often than the time step ({format_duration(step)})"
                    ),
                )
            )
        elif self.traffic.reroute_interval / self.traffic.reroute_batches < step:
            problems.append(
                (
                    "traffic.reroute_batches",
                    (
                        f"{self.traffic.reroute_batches} batches would refresh routes every "
                        f"{format_duration(self.traffic.reroute_interval / self.traffic.reroute_batches)}, less than the "
                        f"time step ({format_duration(step)}): use fewer batches or a longer reroute_interval"
                    ),
                )
            )
        if self.demand.sumo is not None and self.city.sumo is None:
            problems.append(
                (
                    "demand.sumo",
                    "SUMO demand names the edges of a SUMO network: give the city as city: {sumo: FILE.net.xml} too",
                )
            )
        gravity = self.demand.gravity
        if gravity is not None and gravity.total_trips > 0:
            if gravity.window_share(self.time.start, self.time.duration) <= 0:
                problems.append(
                    (
                        "demand.gravity.profile",
                        (
                            "the profile is 0 in every hour of the scenario's time window "
                            f"(from {format_clock(self.time.start, with_seconds=None)} for "
                            f"{format_duration(self.time.duration)}), so no trip could depart"
                        ),
                    )
                )
        if problems:
            raise CrossFieldError(problems)
        return self

    def resolved(self) -> dict[str, Any]:
        """The scenario as plain JSON-able data: seconds and absolute paths throughout.

        Returns
        -------
        dict
            Every field, defaults included, in section order. Loading it again (or the
            YAML that :func:`scenarios.loader.dump_resolved` writes) gives an equal
            scenario.
        """
        return self.model_dump(mode="json")
