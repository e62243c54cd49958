"""The feed hub: every source pushes into one thread-safe queue; the twin drains it by sim time.

::

    hub = FeedHub.from_scenario(scenario, twin.city.network, dead_letter=run_dir / "dead_letter.jsonl")
    with hub:                                   # starts MQTT / HTTP / paced-replay threads
        ...
        for rec in hub.drain(twin.now):         # cleansed records with t <= now - reorder_window
            ...                                 # Observation / AlertEvent / ClosureEvent, in time order
        hub.counters()                          # {source: {accepted, rejected, late, duplicate}}

Sources push raw messages with :meth:`FeedHub.push` from any thread (MQTT's network
thread, the HTTP server's threads, a paced replay thread); each message is cleansed at
once under the hub's lock (:class:`~twin.feeds.cleanse.Cleanser`) and its accepted
records wait in a time-ordered buffer. :meth:`FeedHub.drain` first lets *pull* sources
(a replay without ``speedup``: deterministic, in step with the twin's clock) push
everything that had arrived by ``until``, then releases the records that are due.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

from basics.errors import InputError
from twin.feeds.cleanse import Cleanser, DeadLetter, Outcome
from twin.feeds.ngsi import FeedClock, Record, Units
from twin.feeds.sensors import LinkMapper, read_sensor_table

__all__ = ["FeedHub", "Source", "build_source", "parse_feed_url"]

log = logging.getLogger(__name__)


class Source(Protocol):
    """What the hub needs of a source."""

    name: str

    def start(self, hub: FeedHub) -> None:
        """Start delivering messages to ``hub`` (in the background, or on demand for a pull replay)."""
        ...

    def stop(self) -> None:
        """Stop delivering and release the connection."""
        ...


class FeedHub:
    """One queue for all feed sources, cleansed on arrival, drained by sim time.

    Parameters
    ----------
    cleanser : Cleanser
        Does the checking, counting and dead-lettering.
    """

    def __init__(self, cleanser: Cleanser) -> None:
        self.cleanser = cleanser
        self.clock: FeedClock = cleanser.clock
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._sources: list = []
        self._waiters = 0
        self._started = False
        self.received = 0  # raw messages pushed
        self.takes_arrival = True  # push() takes ``at`` (replays give their arrival times)
        self.last_push_wall = math.nan  # time.time() of the latest push

    # ------------------------------------------------------------------ building
    @classmethod
    def from_spec(
        cls, spec, network, *, start_s: float = 0.0, dead_letter: str | Path | None = None, date=None
    ) -> FeedHub:
        """A hub for a scenario's ``feeds`` section, with its sources added (not started).

        Parameters
        ----------
        spec : scenarios.feeds.FeedsSpec
            The section.
        network : city_models.Network
            The twin's road network.
        start_s : float
            Clock seconds of day at sim time 0 (``scenario.time.start``).
        dead_letter : path, optional
            Dead-letter file when the section names none (``None``: in memory only).
        date : datetime.date, optional
            Overrides ``spec.date``.
        """
        sensors = [s.model_dump() for s in spec.sensors]
        if spec.sensor_file:
            sensors += read_sensor_table(spec.sensor_file)
        mapper = LinkMapper(
            network, sensors=sensors, segment_prefix=spec.segment_prefix, snap_max_m=spec.cleansing.snap_max_m
        )
        clock = FeedClock.for_day(date or spec.date, start_s=start_s, timezone=spec.timezone)
        c = spec.cleansing
        units = {}
        for src in spec.sources:
            if src.speed_unit or src.intensity_unit or src.occupancy_unit:
                units[src.name] = Units(
                    speed=src.speed_unit or c.speed_unit,
                    intensity=src.intensity_unit or c.intensity_unit,
                    occupancy=src.occupancy_unit or c.occupancy_unit,
                    default_interval_s=c.default_interval,
                    roadworks_capacity_factor=c.roadworks_capacity_factor,
                )
        cleanser = Cleanser(
            clock=clock,
            mapper=mapper,
            settings=c,
            source_units=units,
            dead_letter=DeadLetter(
                spec.dead_letter or dead_letter,
                max_bytes=int(spec.dead_letter_max_mb * 1e6),
                rotate_keep=spec.dead_letter_keep,
            ),
        )
        hub = cls(cleanser)
        for src in spec.sources:
            hub.add_source(build_source(src, clock=clock))
        return hub

    @classmethod
    def from_scenario(cls, scenario, network, **kw) -> FeedHub:
        """:meth:`from_spec` of ``scenario.feeds``, starting at ``scenario.time.start``."""
        return cls.from_spec(scenario.feeds, network, start_s=float(scenario.time.start), **kw)

    def add_source(self, source) -> Any:
        """Add a source (started with the hub, or now if the hub runs); returns it."""
        if any(s.name == source.name for s in self._sources):
            raise InputError(f"a feed source named {source.name!r} is already attached")
        self._sources.append(source)
        if self._started:
            source.start(self)
        return source

    @property
    def sources(self) -> list:
        """The hub's sources, in the order they were added."""
        return list(self._sources)

    # ------------------------------------------------------------------ running
    def start(self) -> FeedHub:
        """Start every source (threads, connections, servers)."""
        if not self._started:
            self._started = True
            for s in self._sources:
                s.start(self)
        return self

    def stop(self) -> None:
        """Stop every source and close the dead-letter file."""
        for s in reversed(self._sources):
            try:
                s.stop()
            except Exception:  # stopping one must not keep the others running
                log.exception("feed source %s did not stop cleanly", s.name)
        self._started = False
        self.cleanser.close()

    def __enter__(self) -> FeedHub:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ queue
    def push(self, payload: Any, *, source: str, at: float | None = None) -> list[Outcome]:
        """Cleanse one raw message from ``source`` into the queue (any thread).

        ``at`` is the sim time it arrived when the source knows it (a replay). Returns
        the outcome of each entity in it.
        """
        with self._lock:
            self.received += 1
            out = self.cleanser.process(payload, source=source, at=at)
            if self._waiters:
                self._arrived.notify_all()
        self.last_push_wall = time.time()
        return out

    def reject(self, message: Any, *, source: str, code: str, reason: str) -> Outcome:
        """Dead-letter and count a message a transport refused before cleansing (any thread)."""
        with self._lock:
            self.received += 1
            out = self.cleanser.reject(message, source=source, code=code, reason=reason)
            if self._waiters:
                self._arrived.notify_all()
        return out

    def drain(self, until: float, *, flush: bool = False) -> list[Record]:
        """Records due by sim time ``until``, in time order.

        Pull sources (replays in step with the twin) first push what had arrived by
        ``until``. Released are records with ``t <= until - reorder_window`` (all with
        ``t <= until`` when ``flush``); later arrivals of observations at or before that
        time are *late*.
        """
        for s in self._sources:
            pump = getattr(s, "pump", None)
            if pump is not None and getattr(s, "pull", False):
                pump(self, until)
        with self._lock:
            return self.cleanser.release(until, flush=flush)

    def wait_ready(self, timeout: float = 10.0) -> None:
        """Wait until every source that connects somewhere (MQTT) is connected.

        Raises
        ------
        InputError
            Naming the source, its address and why it could not connect, after at most
            ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        for s in self._sources:
            check = getattr(s, "wait_ready", None)
            if check is not None:
                check(max(0.1, deadline - time.monotonic()))

    def wait(self, predicate: Callable[[FeedHub], bool], timeout: float) -> bool:
        """Block until ``predicate(hub)`` holds (checked after each push) or ``timeout`` s pass."""
        deadline = time.monotonic() + timeout
        while not predicate(self):  # without the lock: the predicate may read counters
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            with self._arrived:
                self._waiters += 1
                try:
                    self._arrived.wait(min(left, 0.1))
                finally:
                    self._waiters -= 1
        return True

    # ------------------------------------------------------------------ state
    def counters(self) -> dict[str, dict[str, int]]:
        """``{source: {"accepted", "rejected", "late", "duplicate"}}`` (entities)."""
        with self._lock:
            return self.cleanser.counters()

    def totals(self) -> dict[str, int]:
        """Counters summed over sources."""
        with self._lock:
            return self.cleanser.totals()

    def reasons(self) -> dict[str, dict[str, int]]:
        """``{source: {reason code: n}}``."""
        with self._lock:
            return self.cleanser.reasons()

    def data_vars(self) -> dict:
        """Counter variables for a run's Dataset (see :meth:`Cleanser.data_vars`)."""
        with self._lock:
            return self.cleanser.data_vars()

    @property
    def pending(self) -> int:
        """Accepted records waiting to be drained."""
        return self.cleanser.pending

    @property
    def feed_time(self) -> float:
        """The feed's live clock (``-inf`` before it is known): the latest time that
        ``clock_quorum`` different senders have reported up to; one sender cannot move it.
        """
        return self.cleanser.feed_time

    @property
    def watermark(self) -> float:
        """Sim time up to which records have been released."""
        return self.cleanser.watermark

    @property
    def exhausted(self) -> bool:
        """True when every source is a replay that has sent its whole file."""
        return bool(self._sources) and all(getattr(s, "exhausted", False) for s in self._sources)


# ---------------------------------------------------------------------- sources


def build_source(spec, *, clock: FeedClock):
    """The source object for a ``feeds.sources`` entry."""
    if spec.kind == "replay":
        from twin.feeds.replay import ReplaySource

        return ReplaySource(spec.path, clock=clock, name=spec.name, speedup=spec.speedup)
    if spec.kind == "mqtt":
        from twin.feeds.mqtt import MqttSource

        return MqttSource.from_spec(spec)
    if spec.kind == "http":
        from twin.feeds.http import HttpSource

        return HttpSource.from_spec(spec)
    raise InputError(f"unknown feed source kind {spec.kind!r}")


def parse_feed_url(text: str, *, name: str | None = None, speedup: float | None = None) -> dict:
    """A ``feeds.sources`` entry from a command-line feed.

    ``replay:FILE`` (or a plain file path), ``mqtt://HOST[:PORT]/TOPIC/FILTER/#`` or
    ``http://HOST:PORT[/PATH]`` (the address to listen on; beyond loopback the token in
    ``$TWIN_FEED_TOKEN`` is required).

    Returns
    -------
    dict
        Validated by :class:`scenarios.feeds.FeedsSpec` when put in ``sources``.
    """
    text = text.strip()
    if text.startswith("replay:"):
        out: dict[str, Any] = {"kind": "replay", "path": text[len("replay:") :]}
        if speedup is not None:
            out["speedup"] = speedup
    elif text.startswith(("mqtt://", "mqtts://")):
        u = urlparse(text.split("#", 1)[0])  # '#' is a topic wildcard here, not a URL fragment
        rest = text.split("://", 1)[1]
        topic = rest.split("/", 1)[1] if "/" in rest else ""
        topic = topic or "ngsi-ld/#"
        if u.scheme == "mqtts":
            raise InputError("mqtts:// (TLS) is not supported yet; use mqtt:// on a trusted network")
        out = {"kind": "mqtt", "host": u.hostname or "127.0.0.1", "port": u.port or 1883, "topic": topic}
        if u.username:
            out["username"] = u.username
    elif text.startswith("http://"):
        u = urlparse(text)
        out = {"kind": "http", "host": u.hostname or "127.0.0.1", "port": 8668 if u.port is None else u.port}
        if u.path and u.path != "/":
            out["path"] = u.path
    elif "://" not in text and text:
        out = {"kind": "replay", "path": text}
        if speedup is not None:
            out["speedup"] = speedup
    else:
        raise InputError(f"feed {text!r}: expected replay:FILE, mqtt://HOST:PORT/TOPIC or http://127.0.0.1:PORT")
    if name:
        out["name"] = name
    return out
