"""The ``demand`` section: who travels (a trips table, SUMO routes or a gravity model)."""

from __future__ import annotations

import csv
import gzip
import math
import zlib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from .base import Count, Number, _context, _resolve_file, _Section

__all__ = ["DEFAULT_PROFILE", "MAX_TRIPS", "TRIPS_COLUMNS", "DemandSpec", "GravityDemand"]

#: Most trips a gravity model may make (or a trips table hold): a metro region's day.
MAX_TRIPS: int = 20_000_000

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
