"""Scenario section ``feeds``: live data sources, the sensor table and cleansing settings.

A twin follows the city through messages its platform sends: detector counts and speeds
(FIWARE ``TrafficFlowObserved``), incident reports and closures (``Alert``). This section
says where they come from, how a sensor maps to a network link and how messages are
cleansed::

    feeds:
      date: "2024-05-14"               # calendar day of the scenario start (default: today)
      timezone: Europe/Helsinki        # for timestamps without an offset (default UTC)
      sources:
        - {kind: replay, path: library/feeds/sample_day.jsonl.gz}          # the default kind
        - {kind: mqtt, host: 127.0.0.1, port: 1883, topic: "city/traffic/#"}
        - {kind: http, port: 8668}     # NGSI-LD notifications (Orion-LD subscriptions)
      sensors:                         # entity id (or refDevice) -> link
        - {id: "urn:ngsi-ld:TrafficFlowObserved:cam-3", link: 412}
        - {id: cam-9, lon: 24.94, lat: 60.17, heading_deg: 90}
      sensor_file: sensors.csv         # the same as a CSV (columns id, link, segment, lon, lat, heading_deg)
      cleansing: {reorder_window: 60s, max_speed_kmh: 200}
      dead_letter: dead_letter.jsonl   # rejected messages, one JSON line each, with the reason

Relative paths resolve against the scenario file. The runtime lives in :mod:`twin.feeds`.
"""

from __future__ import annotations

import datetime as _dt
import zoneinfo
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import Field, ValidationInfo, field_validator, model_validator

from .base import Count, CrossFieldError, Duration, Number, _context, _normpath, _resolve_file, _Section

__all__ = [
    "CleansingSpec",
    "FeedsSpec",
    "HttpSourceSpec",
    "MqttSourceSpec",
    "ReplaySourceSpec",
    "SensorSpec",
    "SourceSpec",
    "DEFAULT_SEGMENT_PREFIX",
]

#: ``refRoadSegment`` ids of the form PREFIX + link index (or PREFIX + "SRC-DST" node ids)
DEFAULT_SEGMENT_PREFIX = "urn:ngsi-ld:RoadSegment:"

SpeedUnit = Literal["km/h", "m/s", "mph"]
IntensityUnit = Literal["per_interval", "per_hour"]
OccupancyUnit = Literal["fraction", "percent"]


class _SourceBase(_Section):
    """Settings every source has.

    Attributes
    ----------
    name : str
        Name of the source in counters and the dead-letter file (default: its kind).
    speed_unit, intensity_unit, occupancy_unit : str or None
        Units of values that carry no ``unitCode`` (keyValues messages always lack it);
        ``None`` takes the ``cleansing`` defaults.
    """

    name: str = ""
    speed_unit: SpeedUnit | None = None
    intensity_unit: IntensityUnit | None = None
    occupancy_unit: OccupancyUnit | None = None

    @model_validator(mode="after")
    def _default_name(self) -> Self:
        if not self.name.strip():
            object.__setattr__(self, "name", self.kind)  # type: ignore[attr-defined]
        return self


class ReplaySourceSpec(_SourceBase):
    """A recorded feed: JSONL (optionally gzipped) or CSV, replayed in sim time.

    Attributes
    ----------
    path : str
        The file (absolute after loading).
    speedup : float or None
        ``None`` (default): in step with the twin's clock, as fast as it runs
        (deterministic). A number: paced on the wall clock, ``speedup`` sim seconds
        per wall second.
    """

    kind: Literal["replay"] = "replay"
    path: str
    speedup: Annotated[Number, Field(gt=0)] | None = None

    @field_validator("path")
    @classmethod
    def _path(cls, value: str, info: ValidationInfo) -> str:
        return _resolve_file(value, info, what="feed replay file")


class MqttSourceSpec(_SourceBase):
    """An MQTT subscription (QoS 1, persistent session under a fixed client id).

    Attributes
    ----------
    host, port : str, int
        The broker.
    topic : str
        Topic filter, MQTT wildcards allowed (``city/+/traffic/#``).
    client_id : str
        Fixed client id: the broker keeps this session (subscription and queued QoS-1
        messages) while the twin is away.
    qos : int
        Subscription QoS (default 1: at least once; duplicates are removed by cleansing).
    protocol : {"3.1.1", "5"}
        MQTT protocol version (``clean_session=False`` / ``clean_start=False``).
    session_expiry : float
        MQTT 5 only: how long the broker keeps the session after a disconnect.
    username : str or None
        Broker user; the password is read from the environment variable ``password_env``.
    password_env : str or None
        Name of the environment variable holding the password (never the password itself).
    keepalive : float
        Seconds between keep-alive pings.
    """

    kind: Literal["mqtt"]
    host: str = "127.0.0.1"
    port: Annotated[Count, Field(ge=1, le=65535)] = 1883
    topic: str = "ngsi-ld/#"
    client_id: str = "city-twin"
    qos: Literal[0, 1, 2] = 1
    protocol: Literal["3.1.1", "5"] = "3.1.1"
    session_expiry: Annotated[Duration, Field(gt=0)] = 86400.0
    username: str | None = None
    password_env: str | None = None
    keepalive: Annotated[Duration, Field(ge=5)] = 30.0

    @field_validator("topic", "client_id", "host")
    @classmethod
    def _not_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("cannot be empty")
        return value.strip()


class HttpSourceSpec(_SourceBase):
    """An HTTP endpoint receiving NGSI-LD notifications (what Orion-LD POSTs to a subscriber).

    Attributes
    ----------
    host : str
        Address to bind; ``127.0.0.1`` (default) accepts local connections only.
    port : int
        Port; 0 picks a free one.
    path : str
        URL path notifications are POSTed to.
    max_body_bytes : int
        Larger bodies are refused (413).
    token_env : str
        Name of the environment variable holding the access token (never the token
        itself). When it is set, every request needs ``Authorization: Bearer <token>``
        (401 otherwise); bound beyond loopback (``0.0.0.0``, a LAN address) it must be
        set, or the endpoint refuses to start. Default ``TWIN_FEED_TOKEN``.
    max_connections : int
        Connections served at once; more are answered 503 (default 64).
    timeout : float
        Per-connection time to send the request head and body (408 or closed after it;
        default 10 s); idle keep-alive connections close after 5 s.
    """

    kind: Literal["http"]
    host: str = "127.0.0.1"
    port: Annotated[Count, Field(ge=0, le=65535)] = 8668
    path: str = "/ngsi-ld/v1/notify"
    max_body_bytes: Annotated[Count, Field(gt=0, le=100_000_000)] = 10_000_000
    token_env: str = "TWIN_FEED_TOKEN"
    max_connections: Annotated[Count, Field(ge=1, le=10_000)] = 64
    timeout: Annotated[Duration, Field(gt=0, le=600)] = 10.0

    @field_validator("path")
    @classmethod
    def _slash(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError(f"a URL path starts with '/', got {value!r}")
        return value


SourceSpec = Annotated[ReplaySourceSpec | MqttSourceSpec | HttpSourceSpec, Field(discriminator="kind")]


class SensorSpec(_Section):
    """One row of the sensor table: which link a sensor's messages describe.

    Give exactly one of ``link`` (dense link index), ``segment`` (a ``refRoadSegment``
    id) or ``lon``/``lat`` (snapped to the nearest link; ``heading_deg`` picks the
    direction of a two-way street: 0 = north, 90 = east).

    Attributes
    ----------
    id : str
        Entity id of its messages, or the id its ``refDevice`` names.
    """

    id: str
    link: Annotated[Count, Field(ge=0)] | None = None
    segment: str | None = None
    lon: Annotated[Number, Field(ge=-180, le=180)] | None = None
    lat: Annotated[Number, Field(ge=-90, le=90)] | None = None
    heading_deg: Annotated[Number, Field(ge=0, lt=360)] | None = None

    @model_validator(mode="after")
    def _one_place(self) -> SensorSpec:
        if not self.id.strip():
            raise ValueError("a sensor needs a non-empty id")
        geo = self.lon is not None or self.lat is not None
        if geo and (self.lon is None or self.lat is None):
            raise ValueError(f"sensor {self.id!r}: give both lon and lat")
        given = [
            k
            for k, v in (("link", self.link), ("segment", self.segment), ("lon/lat", geo))
            if v is not None and v is not False
        ]
        if len(given) != 1:
            raise ValueError(
                f"sensor {self.id!r}: give exactly one of link, segment or lon+lat, "
                f"got {', '.join(given) if given else 'none'}"
            )
        return self


class CleansingSpec(_Section):
    """How incoming messages are checked (see :mod:`twin.feeds.cleanse`).

    Attributes
    ----------
    reorder_window : float
        Records are held this long (sim seconds) so that ones arriving out of order are
        released in time order; an observation arriving after records of its time were
        released is *late* and dropped (dead-lettered). Default 60 s.
    dedup_horizon : float
        How long ids+times are remembered to recognise duplicates (default 6 h).
    max_speed_kmh : float
        Faster observed speeds are implausible (default 200 km/h).
    max_flow_vph_per_lane : float
        Higher flows (veh/h per lane of the mapped link) are implausible (default 3,000).
    stuck_repeats : int
        A sensor sending the same non-zero reading this many times in a row is stuck:
        the repeats from this one on are rejected (0 turns the check off; default 6).
    default_interval : float
        Observation period when a message gives only an instant (default 5 min).
    speed_unit, intensity_unit, occupancy_unit : str
        Units of values without ``unitCode``: km/h (the data model's default), vehicles
        per observation period, occupancy as a fraction 0-1.
    snap_max_m : float
        A location farther than this from every link maps to none (rejected).
    roadworks_capacity_factor : float
        Share of capacity left on links with road works (``roadWorks`` alerts).
    max_future : float
        Records dated more than this ahead of the live clock are dead-lettered as
        ``future`` (default 5 min; see :mod:`twin.feeds.cleanse` for the clock).
    max_period : float
        Observation periods longer than this (or shorter than 1 s) are implausible
        (default 1 h).
    clock_quorum : int
        How many different senders (entity id or ``refDevice``) must have reported up to
        a time before the live clock moves there (default 2: no single sender moves it;
        1 for a feed with one sensor).
    """

    reorder_window: Annotated[Duration, Field(ge=0)] = 60.0
    dedup_horizon: Annotated[Duration, Field(gt=0)] = 6 * 3600.0
    max_speed_kmh: Annotated[Number, Field(gt=0)] = 200.0
    max_flow_vph_per_lane: Annotated[Number, Field(gt=0)] = 3000.0
    stuck_repeats: Annotated[Count, Field(ge=0)] = 6
    default_interval: Annotated[Duration, Field(gt=0)] = 300.0
    speed_unit: SpeedUnit = "km/h"
    intensity_unit: IntensityUnit = "per_interval"
    occupancy_unit: OccupancyUnit = "fraction"
    snap_max_m: Annotated[Number, Field(gt=0)] = 50.0
    roadworks_capacity_factor: Annotated[Number, Field(ge=0, le=1)] = 0.5
    max_future: Annotated[Duration, Field(ge=0, le=7 * 86400)] = 300.0
    max_period: Annotated[Duration, Field(ge=1, le=7 * 86400)] = 3600.0
    clock_quorum: Annotated[Count, Field(ge=1, le=100)] = 2

    @field_validator("stuck_repeats")
    @classmethod
    def _stuck(cls, value: int) -> int:
        if value == 1:
            raise ValueError("1 would reject every reading; use 0 (off) or 2 or more")
        return value


class FeedsSpec(_Section):
    """The ``feeds`` section (all optional; the default has no sources).

    Attributes
    ----------
    sources : list
        Replay files, MQTT subscriptions and HTTP endpoints, all feeding one queue.
    sensors : list of SensorSpec
        The sensor table (entity id -> link).
    sensor_file : str or None
        More sensor rows from a CSV file (absolute after loading).
    segment_prefix : str
        ``refRoadSegment`` ids PREFIX + link index or PREFIX + "SRC-DST" (node source
        ids) map to links without a table entry.
    date : datetime.date or None
        Calendar day of the scenario's start (``None``: today, in ``timezone``, when the
        feed opens).
    timezone : str
        IANA time zone for timestamps without an offset (default ``UTC``).
    cleansing : CleansingSpec
        Validation, units, de-duplication, reordering and plausibility settings.
    dead_letter : str or None
        JSONL file for rejected messages (absolute after loading); ``None`` lets the
        runner choose (the run folder).
    dead_letter_max_mb : float
        When the dead-letter file passes this size it is rotated (``.1``, ``.2``, ...;
        default 64 MB).
    dead_letter_keep : int
        Rotated files kept (default 3): the dead letters never take more than
        ``(keep + 1) x dead_letter_max_mb`` of disk.
    """

    sources: list[SourceSpec] = Field(default_factory=list)
    sensors: list[SensorSpec] = Field(default_factory=list)
    sensor_file: str | None = None
    segment_prefix: str = DEFAULT_SEGMENT_PREFIX
    date: _dt.date | None = None
    timezone: str = "UTC"
    cleansing: CleansingSpec = Field(default_factory=CleansingSpec)
    dead_letter: str | None = None
    dead_letter_max_mb: Annotated[Number, Field(gt=0, le=100_000)] = 64.0
    dead_letter_keep: Annotated[Count, Field(ge=0, le=100)] = 3

    @field_validator("sources", mode="before")
    @classmethod
    def _default_kind(cls, value: Any) -> Any:
        # ``- {path: day.jsonl}`` is a replay source: replay is the embedded default
        if isinstance(value, list):
            return [({**v, "kind": "replay"} if isinstance(v, dict) and "kind" not in v else v) for v in value]
        return value

    @field_validator("sensor_file")
    @classmethod
    def _sensor_file(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        return _resolve_file(value, info, what="sensor table (CSV)")

    @field_validator("dead_letter")
    @classmethod
    def _dead_letter(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        if not value.strip():
            raise ValueError("expected a file path, got an empty string")
        base, _ = _context(info)
        path = Path(value.strip()).expanduser()
        return _normpath(path if path.is_absolute() else base / path)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (an IANA name such as 'UTC' or 'Europe/Helsinki')") from None
        return value

    @model_validator(mode="after")
    def _unique(self) -> FeedsSpec:
        problems = []
        seen: dict[str, int] = {}
        for i, src in enumerate(self.sources):
            if src.name in seen:
                problems.append(
                    (
                        f"sources.{i}.name",
                        f"{src.name!r} is also the name of sources.{seen[src.name]}; give each source its own name",
                    )
                )
            seen[src.name] = i
        ids: dict[str, int] = {}
        for i, s in enumerate(self.sensors):
            if s.id in ids:
                problems.append((f"sensors.{i}.id", f"{s.id!r} is also the id of sensors.{ids[s.id]}"))
            ids[s.id] = i
        if problems:
            raise CrossFieldError(problems)
        return self
