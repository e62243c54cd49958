r"""File replay: a recorded feed (JSONL or CSV, optionally gzipped) pushed into the hub.

**JSONL**: one message a line, in arrival order. A line is either a message as received
(an entity, a list of entities, or a Notification; it arrives at its own time:
``dateObservedTo``, ``dateObserved``, ``dateIssued``, ``notifiedAt``) or an *envelope*
recording when and what arrived::

    {"receivedAt": "2024-05-14T07:05:04Z", "payload": {...entity...}}
    {"receivedAt": "2024-05-14T07:05:09Z", "raw": "{\"id\": \"urn:ngsi-ld:Traff"}   (as received, not JSON)

A line that is not JSON is pushed as it is (and dead-lettered by cleansing) at the time
of the line before it. Arrival times never go backwards, and one line cannot move them
ahead by itself: a line's time counts only up to the second earliest time of the
:data:`LOOKAHEAD` lines after it, so a message (or ``receivedAt``) dated hours ahead of
its neighbours arrives with them (and cleansing dead-letters it as *future*), while a real
gap in the recording, which the lines after it share, is kept.

**CSV**: a header naming keyValues attributes (``id``, ``type`` (default
``TrafficFlowObserved``), ``dateObserved``, ``intensity``, ``averageVehicleSpeed``,
``occupancy``, ``refRoadSegment``, ...), optionally ``lon``/``lat`` (a Point location) and
``receivedAt``; empty cells are left out.

Two ways to replay:

- ``speedup=None`` (default): a *pull* source. :meth:`FeedHub.drain(until)` first pushes
  every message that had arrived by sim time ``until``, so a twin gets exactly what a
  live twin would have had at that moment, deterministically, as fast as it runs.
- ``speedup=k``: a thread pushes the messages on the wall clock, ``k`` sim seconds per
  wall second (a live feed stand-in).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from basics.errors import InputError
from twin.feeds.ngsi import FeedClock, _plain

__all__ = ["ReplaySource", "read_messages"]

log = logging.getLogger(__name__)

#: lines after a message whose second earliest time caps its arrival time (see the module docstring)
LOOKAHEAD = 6

_NUMERIC = {
    "intensity": float,
    "averageVehicleSpeed": float,
    "occupancy": float,
    "laneId": int,
    "averageHeadwayTime": float,
    "averageVehicleLength": float,
}


def _open_text(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def _own_time(obj: Any, clock: FeedClock) -> float | None:
    """Sim time a bare message carries (``None`` when it names none or it is unreadable)."""
    if type(obj) is list:
        obj = obj[0] if obj else None
    if type(obj) is not dict:
        return None
    try:
        if obj.get("type") == "Notification":
            v = obj.get("notifiedAt")
            if v is None:
                data = obj.get("data")
                return _own_time(data[0], clock) if type(data) is list and data else None
            return clock.to_sim(v)
        for name in ("dateObservedTo", "dateObserved", "dateIssued", "validFrom"):
            v = _plain(obj.get(name))
            if v is not None:
                if type(v) is str and "/" in v:
                    v = v.rsplit("/", 1)[1]
                return clock.to_sim(v)
    except (ValueError, TypeError, AttributeError, OverflowError):
        return None
    return None


def _csv_entity(row: dict) -> dict:
    ent: dict[str, Any] = {}
    lon = lat = None
    for k, v in row.items():
        if k is None or v is None or v.strip() == "":
            continue
        v = v.strip()
        if k == "lon":
            lon = v
        elif k == "lat":
            lat = v
        elif k == "receivedAt":
            continue
        elif k in _NUMERIC:
            try:
                ent[k] = _NUMERIC[k](v)
            except ValueError:
                ent[k] = v  # left as text: cleansing rejects it, naming the attribute
        else:
            ent[k] = v
    ent.setdefault("type", "TrafficFlowObserved")
    if lon is not None and lat is not None:
        try:
            ent["location"] = {"type": "Point", "coordinates": [float(lon), float(lat)]}
        except ValueError:
            ent["location"] = {"type": "Point", "coordinates": [lon, lat]}
    return ent


def read_messages(path: str | Path, *, clock: FeedClock) -> Iterator[tuple[float, Any]]:
    """``(arrival sim time, payload)`` of each message of a recorded feed, in file order.

    Arrival times never decrease (the file is a stream); a message without a readable
    time arrives with the one before it (the first ones at ``-inf``); a time far ahead of
    the lines after it does not count (see the module docstring).

    Raises
    ------
    InputError
        The file is missing or not readable (bad lines are not errors: they are pushed).
    """
    return _robust_arrivals(_raw_messages(path, clock=clock))


def _robust_arrivals(
    raw: Iterator[tuple[float | None, Any]], lookahead: int = LOOKAHEAD
) -> Iterator[tuple[float, Any]]:
    """Own times -> arrival times: never backwards, each capped by the second earliest of the
    next ``lookahead`` times (one early line, such as a bare late message, does not cap).
    """
    buf: deque = deque()
    last = -math.inf
    it = iter(raw)
    more = True
    while True:
        while more and len(buf) <= lookahead:
            try:
                buf.append(next(it))
            except StopIteration:
                more = False
        if not buf:
            return
        t, obj = buf.popleft()
        if t is not None and t > last:
            lo1 = lo2 = math.inf  # the two earliest times of the next lines
            for x, _ in buf:
                if x is not None:
                    if x < lo1:
                        lo1, lo2 = x, lo1
                    elif x < lo2:
                        lo2 = x
            cap = lo2 if lo2 < math.inf else lo1
            if cap < t:
                t = cap
            if t > last:
                last = t
        yield last, obj


def _raw_messages(path: str | Path, *, clock: FeedClock) -> Iterator[tuple[float | None, Any]]:
    """``(own or received sim time or None, payload)`` of each line, in file order."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"feed replay file {str(path)!r} does not exist")
    name = path.name[:-3] if path.suffix == ".gz" else path.name
    try:
        with _open_text(path) as handle:
            if name.endswith(".csv"):
                for row in csv.DictReader(handle):
                    t = None
                    if row.get("receivedAt"):
                        try:
                            t = clock.to_sim(row["receivedAt"].strip())
                        except ValueError:
                            t = None
                    ent = _csv_entity(row)
                    if t is None:
                        t = _own_time(ent, clock)
                    yield t, ent
                return
            for line in handle:
                line = line.strip()
                if not line:
                    continue
                try:
                    obj = json.loads(line)
                except ValueError:
                    yield None, line
                    continue
                t = None
                if type(obj) is dict and "receivedAt" in obj and ("payload" in obj or "raw" in obj):
                    try:
                        t = clock.to_sim(obj["receivedAt"])
                    except (ValueError, TypeError):
                        log.warning("%s: unreadable receivedAt %r", path, obj["receivedAt"])
                    obj = obj["payload"] if "payload" in obj else obj["raw"]
                else:
                    t = _own_time(obj, clock)
                yield t, obj
    except (OSError, EOFError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"feed replay file {str(path)!r} could not be read: {exc}") from None


class ReplaySource:
    """Replays a recorded feed into a :class:`~twin.feeds.hub.FeedHub`.

    Parameters
    ----------
    path : path-like
        JSONL or CSV, optionally ``.gz``.
    clock : FeedClock
        Reads the file's timestamps as sim time.
    name : str
        Source name in counters.
    speedup : float or None
        ``None``: pull source, in step with :meth:`FeedHub.drain`. A number: pushed on
        the wall clock at that many sim seconds per second, from the first message.
    """

    def __init__(
        self, path: str | Path, *, clock: FeedClock, name: str = "replay", speedup: float | None = None
    ) -> None:
        path = Path(path)
        if not path.is_file():
            raise InputError(f"feed replay file {str(path)!r} does not exist")
        self._setup(path, clock=clock, name=name, speedup=speedup)

    def _setup(self, path: Path | None, *, clock: FeedClock, name: str, speedup: float | None) -> None:
        self.path = path
        if speedup is not None and not speedup > 0:
            raise InputError(f"replay speedup must be > 0, got {speedup!r}")
        self.clock = clock
        self.name = name
        self.speedup = speedup
        self.pull = speedup is None
        self.sent = 0
        self.exhausted = False
        self._it: Iterator[tuple[float, Any]] | None = None
        self._next: tuple[float, Any] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def from_messages(
        cls, messages, *, clock: FeedClock, name: str = "replay", speedup: float | None = None
    ) -> ReplaySource:
        """A replay of messages in memory: ``(arrival sim s, envelope or payload)`` pairs in
        arrival order, as :func:`experiments.truth.run_truth` records them (an envelope's
        ``payload`` or ``raw`` is what is pushed).
        """
        self = cls.__new__(cls)
        self._setup(None, clock=clock, name=name, speedup=speedup)
        self._it = (
            (float(t), m["payload"] if "payload" in m else m["raw"])
            if type(m) is dict and "receivedAt" in m and ("payload" in m or "raw" in m)
            else (float(t), m)
            for t, m in messages
        )
        return self

    def _advance(self) -> None:
        if self._it is None:
            assert self.path is not None  # a replay of messages in memory has its iterator from the start
            self._it = read_messages(self.path, clock=self.clock)
        try:
            self._next = next(self._it, None)
        except InputError as exc:  # a truncated file: keep what was sent, stop this source
            log.error("%s; replay %s stops after %d messages", exc, self.name, self.sent)
            self._next = None
        if self._next is None:
            self.exhausted = True

    @property
    def next_arrival(self) -> float:
        """Sim time the next message arrives (``inf`` at the end)."""
        if self._next is None and not self.exhausted:
            self._advance()
        return math.inf if self._next is None else self._next[0]

    def pump(self, hub, until: float) -> int:
        """Push every message that arrived by sim time ``until``; returns how many."""
        n = 0
        while True:
            if self._next is None:
                if self.exhausted:
                    break
                self._advance()
                if self._next is None:
                    break
            t, payload = self._next
            if t > until:
                break
            if getattr(hub, "takes_arrival", False):
                hub.push(payload, source=self.name, at=t)
            else:
                hub.push(payload, source=self.name)
            self._next = None
            n += 1
        self.sent += n
        return n

    def start(self, hub) -> None:
        """Start pushing on the wall clock (paced replay); a pull replay does nothing here."""
        speedup = self.speedup  # None for a pull replay
        if speedup is None or self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, args=(hub, speedup), name=f"feed-replay-{self.name}", daemon=True
        )
        self._thread.start()

    def _run(self, hub, speedup: float) -> None:
        try:
            t0 = self.next_arrival
            if not math.isfinite(t0):
                t0 = 0.0
            wall0 = time.monotonic()
            while not self._stop.is_set():
                t = self.next_arrival
                if t == math.inf:
                    break
                wait = wall0 + (max(t, t0) - t0) / speedup - time.monotonic()
                if wait > 0 and self._stop.wait(wait):
                    break
                self.pump(hub, t)
        except Exception:  # a broken file must not take the twin down: log and stop this source
            log.exception("feed replay %s stopped", self.name)

    def stop(self) -> None:
        """Stop a paced replay's thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
