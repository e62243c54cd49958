"""Cleansing: raw messages in, typed records out, every rejection written down with its reason.

:class:`Cleanser` takes each raw message (bytes, text or parsed JSON: an entity, a list of
entities or an NGSI-LD Notification) through these steps, per entity:

1. **schema**: JSON, entity shape, required attributes and their types, timestamps
   (:func:`twin.feeds.ngsi.to_record`);
2. **units**: speeds to m/s, counts to vehicles per hour, occupancy to a fraction (from
   ``unitCode`` or the source's default units);
3. **mapping** to a link (:class:`twin.feeds.sensors.LinkMapper`);
4. **duplicates**: the same entity id and time (and lane) seen before with the same
   values is a *duplicate*: counted, dropped, not dead-lettered (QoS 1 delivers at least
   once); with other values it is a *conflict*: rejected;
5. **plausibility**: negative counts, speeds or occupancy; speeds above
   ``max_speed_kmh``; occupancy above 1; flows above ``max_flow_vph_per_lane`` times
   the link's lanes;
6. **time**: an observation period longer than ``max_period`` (or shorter than 1 s) is
   implausible; a record dated more than ``max_future`` ahead of the live clock (below)
   is *future*: rejected;
7. **lateness**: records are held for ``reorder_window`` sim seconds and released in
   time order by :meth:`Cleanser.release`; an observation of a time already released is
   *late*: dropped and dead-lettered (the twin has moved past it). An alert or closure
   arriving after its time is still delivered, flagged ``late`` and counted as
   accepted: a late report of a closure, or of its end, still changes what the twin does;
8. **stuck sensors**: the same non-zero reading from one sensor (entity id or
   ``refDevice``, and lane) ``stuck_repeats`` times in a row: that repeat and the ones
   after it are rejected until the reading changes.

**The live clock** (:attr:`Cleanser.feed_time`) is what the feed says the time is, and no
single sender can move it: it is the latest time that ``clock_quorum`` different senders
(entity id or ``refDevice``) have each reported up to (default 2). Shadow mode steps a
live twin by it. A record is *future* when it is dated more than ``max_future`` ahead of
the latest of: the live clock; the twin's own clock (the last time it drained); the
arrival time a replay gives its messages; and the wall clock, when the feed's day is
today. A message dated hours ahead therefore cannot drag the twin forward and make every
later real message late. On a pushed feed of a day other than today (no wall clock to
trust), a record beyond that limit is *held*: it joins the queue when ``clock_quorum``
senders agree (times within ``max_future`` of each other) that the feed has moved on
that far -- after an outage, or a broker delivering a backlog -- and is dead-lettered as
*future* (its count moving from accepted to rejected) if the live clock moves on
``2 x max_future`` without that.

Each entity gets exactly one outcome (:class:`Outcome`): ``accepted``, ``rejected``
(dead-lettered with its reason), ``late`` (dead-lettered) or ``duplicate``; counters per
source add them up. Nothing a message contains can raise out of :meth:`Cleanser.process`:
an unexpected error is dead-lettered as ``internal`` and logged.

The dead-letter file is JSON lines, appended and flushed line by line, a message kept up to
64 KiB (longer ones are cut, with a note); past ``max_bytes`` it is rotated (``FILE.1``,
``FILE.2``, ... up to ``keep``), so the dead letters never hold more than
``(keep + 1) x max_bytes`` on disk::

    {"at": "2024-05-14T07:05:03Z", "source": "mqtt", "status": "rejected", "code": "implausible",
     "reason": "averageVehicleSpeed 412 km/h is above max_speed_kmh=200", "id": "urn:...", "message": {...}}
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import heapq
import json
import logging
import math
import threading
from collections import Counter, deque
from pathlib import Path
from typing import IO, Any, NamedTuple

import numpy as np

from twin.feeds.ngsi import (
    AlertEvent,
    ClosureEvent,
    FeedClock,
    MessageError,
    Observation,
    Record,
    Units,
    decode,
    entities_of,
)

__all__ = ["Cleanser", "DeadLetter", "Outcome", "OUTCOMES"]

log = logging.getLogger(__name__)

#: the outcomes a message can have, in counter order
OUTCOMES: tuple[str, ...] = ("accepted", "rejected", "late", "duplicate")
_OUTCOME_INDEX = {name: i for i, name in enumerate(OUTCOMES)}
#: most records held for a quorum at once (see Cleanser._hold)
_MAX_HELD = 1000


class Outcome(NamedTuple):
    """What became of one entity of a message."""

    status: str  # one of OUTCOMES
    source: str
    entity_id: str = ""
    code: str = ""  # reason class (rejected / late); "" otherwise
    reason: str = ""


#: longest message text a dead-letter line keeps
MAX_DEAD_MESSAGE_CHARS = 65_536


class DeadLetter:
    """Append-only JSONL file of rejected messages, one flushed line each (thread-safe).

    Parameters
    ----------
    path : path-like or None
        The file (its folder is created); ``None`` keeps only the recent entries in memory.
    keep : int
        How many recent entries :attr:`recent` keeps.
    max_bytes : int
        Rotate the file when it would grow past this size.
    rotate_keep : int
        Rotated files kept (``FILE.1`` the newest); older ones are deleted. 0 keeps none
        (the file starts again empty).
    """

    def __init__(
        self, path: str | Path | None = None, *, keep: int = 200, max_bytes: int = 64_000_000, rotate_keep: int = 3
    ) -> None:
        self.path = None if path is None else Path(path)
        self.recent: deque[dict] = deque(maxlen=keep)
        self.count = 0
        self.rotations = 0
        self.max_bytes = max(int(max_bytes), 1024)
        self.rotate_keep = max(int(rotate_keep), 0)
        self._lock = threading.Lock()
        self._handle: IO[str] | None = None
        self._size = 0
        self._closed = False
        if self.path is not None:
            _check_dead_letter_file(self.path)

    def _open(self, path: Path) -> IO[str]:
        """Open the file at the first entry (a run that rejects nothing leaves none)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a", encoding="utf-8")
        self._handle = handle
        self._size = handle.tell()
        return handle

    def files(self) -> list[Path]:
        """The dead-letter file and its rotated predecessors that exist, newest first."""
        if self.path is None:
            return []
        names = [self.path] + [self.path.with_name(f"{self.path.name}.{i}") for i in range(1, self.rotate_keep + 1)]
        return [p for p in names if p.exists()]

    def write(self, entry: dict) -> None:
        """Append one entry (a JSON-able dict) and flush it."""
        msg = entry.get("message")
        if type(msg) is str and len(msg) > MAX_DEAD_MESSAGE_CHARS:
            entry = {
                **entry,
                "message": msg[:MAX_DEAD_MESSAGE_CHARS],
                "note": f"message cut to {MAX_DEAD_MESSAGE_CHARS} of {len(msg)} characters",
            }
        try:
            line = json.dumps(entry, ensure_ascii=False, default=repr)
        except (TypeError, ValueError, RecursionError) as exc:  # circular or too deep: keep the reason
            try:
                text = repr(entry.get("message"))[:2000]
            except RecursionError:
                text = "<nested too deep to write>"
            entry = {**entry, "message": text, "note": f"not JSON-able: {type(exc).__name__}: {exc}"}
            line = json.dumps(entry, ensure_ascii=False, default=repr)
        if len(line) > 2 * MAX_DEAD_MESSAGE_CHARS:  # a parsed message too large: keep its start as text
            entry = {
                **entry,
                "message": line[:MAX_DEAD_MESSAGE_CHARS],
                "note": f"message cut to {MAX_DEAD_MESSAGE_CHARS} characters of its JSON",
            }
            line = json.dumps(entry, ensure_ascii=False, default=repr)
        data = line + "\n"
        with self._lock:
            self.count += 1
            self.recent.append(entry)
            handle = self._handle
            if handle is None and self.path is not None and not self._closed:
                handle = self._open(self.path)
            if handle is not None:
                n = len(data.encode("utf-8"))
                if self._size and self._size + n > self.max_bytes and self.path is not None:
                    handle = self._rotate(self.path)
                handle.write(data)
                handle.flush()
                self._size += n

    def _rotate(self, path: Path) -> IO[str]:
        """FILE -> FILE.1 -> FILE.2 ...; the oldest beyond ``rotate_keep`` is deleted; the new file's handle."""
        if self._handle is not None:
            self._handle.close()
        self._handle = None
        try:
            if self.rotate_keep == 0:
                path.unlink(missing_ok=True)
            else:
                path.with_name(f"{path.name}.{self.rotate_keep}").unlink(missing_ok=True)
                for i in range(self.rotate_keep - 1, 0, -1):
                    older = path.with_name(f"{path.name}.{i}")
                    if older.exists():
                        older.replace(path.with_name(f"{path.name}.{i + 1}"))
                path.replace(path.with_name(f"{path.name}.1"))
        finally:
            self.rotations += 1
            handle = self._open(path)
        return handle

    def close(self) -> None:
        """Close the file; entries after this are still counted and kept in memory, not written."""
        with self._lock:
            self._closed = True
            if self._handle is not None:
                self._handle.close()
                self._handle = None


def _check_dead_letter_file(path: Path) -> None:
    """Refuse to append to a file that is not a dead-letter file (a scenario could name any)."""
    from basics.errors import InputError

    if not path.exists():
        return
    if not path.is_file():
        raise InputError(f"dead-letter file {str(path)!r} exists and is not a file")
    try:
        with open(path, "rb") as handle:
            first = handle.readline(2 * MAX_DEAD_MESSAGE_CHARS + 4096)
    except OSError as exc:
        raise InputError(f"dead-letter file {str(path)!r} cannot be read: {exc}") from None
    if not first.strip():
        return
    try:
        entry = json.loads(first)
    except ValueError:
        entry = None
    if not (isinstance(entry, dict) and "reason" in entry and "code" in entry):
        raise InputError(
            f"dead-letter file {str(path)!r} exists and is not a dead-letter file "
            f"(JSON lines with 'code' and 'reason'); refusing to append to it"
        )


def _raw_text(payload: Any) -> Any:
    """A raw payload as something JSON can hold."""
    if isinstance(payload, (bytes, bytearray, memoryview)):
        return bytes(payload).decode("utf-8", errors="replace")
    return payload


def _fingerprint(values: tuple) -> tuple:
    return tuple(None if (type(v) is float and v != v) else v for v in values)


class Cleanser:
    """Schema, units, mapping, duplicates, plausibility, lateness and stuck-sensor checks.

    Not thread-safe on its own: :class:`twin.feeds.hub.FeedHub` serialises calls.

    Parameters
    ----------
    clock : FeedClock
        Message timestamps -> sim seconds.
    mapper : LinkMapper
        Messages -> links.
    settings : scenarios.feeds.CleansingSpec, optional
        Thresholds and default units (defaults: the section's defaults).
    dead_letter : DeadLetter, path or None
        Where rejected messages go.
    source_units : dict, optional
        Source name -> :class:`Units` for sources whose keyValues use other units.
    """

    def __init__(
        self,
        *,
        clock: FeedClock,
        mapper,
        settings=None,
        dead_letter: DeadLetter | str | Path | None = None,
        source_units: dict[str, Units] | None = None,
    ) -> None:
        if settings is None:
            from scenarios.feeds import CleansingSpec

            settings = CleansingSpec()
        self.clock = clock
        self.mapper = mapper
        self.settings = settings
        self.dead_letter = dead_letter if isinstance(dead_letter, DeadLetter) else DeadLetter(dead_letter)
        self.units = Units(
            speed=settings.speed_unit,
            intensity=settings.intensity_unit,
            occupancy=settings.occupancy_unit,
            default_interval_s=settings.default_interval,
            roadworks_capacity_factor=settings.roadworks_capacity_factor,
        )
        self.source_units = dict(source_units or {})
        self.window = float(settings.reorder_window)
        self.watermark = -math.inf  # records with t <= watermark have been released
        self.feed_time = -math.inf  # the live clock: latest time clock_quorum senders reached
        self.latest_time = -math.inf  # latest accepted record time (any one sender)
        self.twin_time = -math.inf  # the twin's clock: the latest time it drained to
        self.stream_time = -math.inf  # latest arrival time a replay gave a message
        self._max_future = float(getattr(settings, "max_future", 300.0))
        self._max_period = float(getattr(settings, "max_period", 3600.0))
        self._quorum = max(1, int(getattr(settings, "clock_quorum", 2)))
        self._top: list[list] = []  # [time, sender] of the senders furthest ahead (at most quorum)
        self._held: list[tuple] = []  # (record, sender, live clock when held): see _hold
        now = clock.now()
        self._wall = -2 * 86400.0 <= now <= 3 * 86400.0  # the feed's day is today: wall time counts
        self._limit = math.inf  # records dated after this are checked against the wall / dead-lettered
        self._relimit()
        self._max_speed = settings.max_speed_kmh / 3.6
        self._max_flow_lane = float(settings.max_flow_vph_per_lane)
        self._stuck_n = int(settings.stuck_repeats)
        self._horizon = float(settings.dedup_horizon)
        self._lanes = [float(v) for v in mapper.lanes]
        self._heap: list[tuple[float, int, Record]] = []
        self._seq = 0
        self._seen: dict[tuple, tuple] = {}
        self._stuck: dict[tuple, list] = {}
        self._pruned_at = -math.inf
        self._counts: dict[str, list[int]] = {}
        self._reasons: dict[str, Counter] = {}

    # ------------------------------------------------------------------ intake
    def process(self, payload: Any, *, source: str, at: float | None = None) -> list[Outcome]:
        """Cleanse one raw message; returns the outcome of each entity in it.

        Parameters
        ----------
        payload : bytes, str, dict or list
            The message as received (JSON text or already parsed).
        source : str
            Name of the source it came from.
        at : float, optional
            Sim time it arrived, when the transport knows it (a replay): a reference of
            the future check.
        """
        if at is not None and at > self.stream_time and at < math.inf:
            self.stream_time = at
            self._relimit()
        tp = type(payload)
        if tp is dict and payload.get("type") != "Notification" and ("id" in payload or "data" not in payload):
            return [self._entity(payload, source)]  # the common case: one parsed entity
        try:
            obj = payload
            if tp is bytes or tp is str or isinstance(payload, (bytes, bytearray, memoryview, str)):
                try:
                    obj = json.loads(payload)
                except (ValueError, UnicodeDecodeError) as exc:
                    return [self.reject(payload, source=source, code="malformed", reason=f"not JSON: {exc}")]
                except RecursionError:
                    return [
                        self.reject(
                            _raw_text(payload)[:2000] if isinstance(payload, (bytes, bytearray, str)) else None,
                            source=source,
                            code="malformed",
                            reason="JSON nested too deep to read",
                        )
                    ]
            entities = entities_of(obj)
            if not entities:
                return [
                    self.reject(
                        payload, source=source, code="malformed", reason="no entities (an empty list or Notification)"
                    )
                ]
        except MessageError as exc:
            return [self.reject(payload, source=source, code=exc.code, reason=exc.detail)]
        except Exception as exc:  # never let a message stop the twin
            log.exception("feed message from %s could not be read", source)
            return [self.reject(payload, source=source, code="internal", reason=f"{type(exc).__name__}: {exc}")]
        return [self._entity(e, source) for e in entities]

    def _entity(self, entity: Any, source: str) -> Outcome:
        try:
            rec = decode(entity, self.clock, self.mapper, self.source_units.get(source, self.units), source)
            if isinstance(rec, Observation):  # the three record classes have no subclasses
                return self._observation(rec, entity)
            return self._event(rec, entity)
        except MessageError as exc:
            return self.reject(
                entity,
                source=source,
                code=exc.code,
                reason=exc.detail,
                entity_id=_id_of(entity),
                status="late" if exc.code == "late" else "rejected",
            )
        except Exception as exc:  # never let a message stop the twin
            ent_id = _id_of(entity)
            log.exception("feed entity %r from %s could not be cleansed", ent_id, source)
            return self.reject(
                entity, source=source, code="internal", reason=f"{type(exc).__name__}: {exc}", entity_id=ent_id
            )

    def _observation(self, r: Observation, entity: dict) -> Outcome:
        key = (r.id, r.t, r.lane)
        flow, speed, occ = r.flow_vph, r.speed_mps, r.occupancy
        fp = (
            r.link,
            flow if flow == flow else None,
            speed if speed == speed else None,
            occ if occ == occ else None,
            r.interval_s,
        )
        seen = self._seen.get(key)
        if seen is not None:
            if seen == fp:
                return self._count(Outcome("duplicate", r.source, r.id))
            raise MessageError(
                "conflict", f"an earlier message with the same id and time had other values ({_describe(seen)})"
            )
        iv = r.interval_s
        if iv > self._max_period or iv < 1.0:
            raise MessageError(
                "implausible", f"observation period of {iv:g} s is outside 1 s - max_period={self._max_period:g} s"
            )
        if flow < 0 or speed < 0 or occ < 0:
            what = "intensity" if flow < 0 else "averageVehicleSpeed" if speed < 0 else "occupancy"
            raise MessageError("implausible", f"negative {what}")
        if speed > self._max_speed:
            raise MessageError(
                "implausible",
                f"averageVehicleSpeed {speed * 3.6:.4g} km/h is above max_speed_kmh={self.settings.max_speed_kmh:g}",
            )
        if occ > 1.0:
            raise MessageError("implausible", f"occupancy {occ:.4g} is above 1")
        lanes = 1.0 if r.lane >= 0 else self._lanes[r.link]
        if flow > self._max_flow_lane * lanes:
            raise MessageError(
                "implausible",
                f"intensity {flow:.5g} veh/h is above "
                f"max_flow_vph_per_lane={self._max_flow_lane:g} x {lanes:g} lane(s) "
                f"of link {r.link}",
            )
        if r.t > self._limit and self._future(r, r.device or r.id):
            return self._hold(r, r.device or r.id, fp)
        if r.t <= self.watermark:
            raise MessageError(
                "late",
                f"observed at t={r.t:g} s but records up to t={self.watermark:g} s "
                f"were already released (reorder_window={self.window:g} s)",
            )
        if self._stuck_n:
            skey = (r.device or r.id, r.lane)
            reading = fp[1:4]
            state = self._stuck.get(skey)
            if state is not None and state[0] == reading and (reading[0] or reading[1] or reading[2]):
                state[1] += 1
                state[2] = r.t
                if state[1] >= self._stuck_n:
                    raise MessageError(
                        "stuck",
                        f"the same reading {_describe((None,) + reading)} for the "
                        f"{state[1]}th time in a row (stuck_repeats={self._stuck_n})",
                    )
            else:
                self._stuck[skey] = [reading, 1, r.t]
        self._seen[key] = fp
        self._seq += 1  # accept (inlined: this is the hot path)
        heapq.heappush(self._heap, (r.t, self._seq, r))
        if r.t > self.feed_time:
            self._tick(r.t, r.device or r.id)
        c = self._counts.get(r.source)
        if c is None:
            return self._count(Outcome("accepted", r.source, r.id))
        c[0] += 1
        return Outcome("accepted", r.source, r.id)

    def _event(self, r: AlertEvent | ClosureEvent, entity: dict) -> Outcome:
        links = r.links if isinstance(r, ClosureEvent) else (r.link,)
        key = (r.id, r.t, -2)
        fp = _fingerprint((r.sub_category, links, r.valid_from, r.valid_to, r.severity))
        seen = self._seen.get(key)
        if seen is not None:
            if seen == fp:
                return self._count(Outcome("duplicate", r.source, r.id))
            raise MessageError("conflict", "an earlier alert with the same id and dateIssued said otherwise")
        if r.t > self._limit:
            self._future(r, None)
        if r.t <= self.watermark:  # still delivered: an update (validTo: "it is over") matters late too
            r = dataclasses.replace(r, late=True)
        self._seen[key] = fp
        return self._accept(r)

    def _accept(self, r: Record) -> Outcome:
        self._seq += 1
        heapq.heappush(self._heap, (r.t, self._seq, r))
        if r.t > self.latest_time:
            self.latest_time = r.t
        c = self._counts.get(r.source)
        if c is None:
            return self._count(Outcome("accepted", r.source, r.id))
        c[0] += 1
        return Outcome("accepted", r.source, r.id)

    # ------------------------------------------------------------------ the live clock
    def _relimit(self) -> None:
        """Cache the time beyond which a record needs the full future check."""
        ref = max(self.feed_time, self.twin_time, self.stream_time)
        self._limit = ref + self._max_future if ref > -math.inf else math.inf
        if self._wall and self._limit == math.inf:
            self._limit = -math.inf  # nothing heard yet: judge by the wall clock

    def _tick(self, t: float, sender: str) -> None:
        """An accepted observation of ``sender`` up to ``t``: move the live clock if a quorum is there."""
        if t > self.latest_time:
            self.latest_time = t
        top = self._top
        for e in top:
            if e[1] == sender:
                if t > e[0]:
                    e[0] = t
                break
        else:
            if len(top) < self._quorum:
                top.append([t, sender])
            else:
                low = min(range(len(top)), key=lambda j: top[j][0])
                if t <= top[low][0]:
                    return
                top[low] = [t, sender]
        if len(top) >= self._quorum:
            q = min(e[0] for e in top)
            if q > self.feed_time:
                self.feed_time = q
                self._relimit()
                if self._held:
                    self._expire()

    def set_twin_time(self, t: float) -> None:
        """The twin's clock has reached ``t`` (it drains up to there)."""
        if t > self.twin_time and t < math.inf:
            self.twin_time = t
            self._relimit()

    def _future(self, r: Record, sender: str | None) -> bool:
        """Whether ``r`` is to be held (see :meth:`_hold`); raises ``future`` when it is dated
        more than ``max_future`` ahead of every reference (see the module docstring).
        """
        limit = self._limit
        wall = self.clock.now() if self._wall else -math.inf
        if wall > -math.inf:
            limit = max(limit, wall + self._max_future)
        if limit == -math.inf:
            limit = math.inf
        if r.t <= limit:
            return False
        if sender is not None and self._holds:
            return True
        ref = max(self.feed_time, self.twin_time, self.stream_time, wall)
        raise MessageError(
            "future",
            f"dated t={r.t:.6g} s, {r.t - ref:.6g} s ahead of the live clock "
            f"(t={ref:.6g} s; max_future={self._max_future:g} s)",
        )

    @property
    def _holds(self) -> bool:
        """A pushed feed of another day than today: nothing but the senders tells the time."""
        return not self._wall and self.stream_time == -math.inf and self._quorum > 1

    def _hold(self, r: Observation, sender: str, fp: tuple) -> Outcome:
        """Accept ``r`` (dated beyond the limit) on hold: it joins the queue when ``clock_quorum``
        senders agree the feed has moved on that far (an outage, a backlog), or is dead-lettered
        as ``future`` once the live clock has moved ``2 x max_future`` without that.
        """
        held = self._held
        if len(held) >= _MAX_HELD:
            self._expire(force=1)
        self._seen[(r.id, r.t, r.lane)] = fp
        held.append((r, sender, self.feed_time))
        latest: dict[str, float] = {}
        for h in held:
            if h[0].t > latest.get(h[1], -math.inf):
                latest[h[1]] = h[0].t
        ahead = sorted(latest.values())
        n, q = self._quorum, None
        for i in range(len(ahead) - n + 1):  # the earliest time that quorum senders agree on
            if ahead[i + n - 1] - ahead[i] <= self._max_future:
                q = ahead[i]
                break
        if q is not None and q > self.feed_time:
            log.warning(
                "feeds: %d senders agree the feed moved on to t=%g s (the live clock was at t=%g s)",
                n,
                q,
                self.feed_time,
            )
            self._top = sorted([t, s] for s, t in latest.items() if q <= t <= q + self._max_future)[:n]
            self.feed_time = q
            self._relimit()
            self._admit(self._limit)
            self._expire()
        return self._count(Outcome("accepted", r.source, r.id))

    def _admit(self, limit: float) -> None:
        """Held records dated up to ``limit`` join the queue."""
        keep = []
        for h in self._held:
            if h[0].t <= limit:
                self._seq += 1
                heapq.heappush(self._heap, (h[0].t, self._seq, h[0]))
                if h[0].t > self.latest_time:
                    self.latest_time = h[0].t
            else:
                keep.append(h)
        self._held = keep

    def _expire(self, force: int = 0) -> None:
        """Dead-letter held records the live clock has moved ``2 x max_future`` past (and the
        ``force`` oldest); their count moves from accepted to rejected.
        """
        keep = []
        for i, (r, sender, held_at) in enumerate(self._held):
            if i < force or self.feed_time - held_at >= 2 * self._max_future:
                self._counts[r.source][0] -= 1
                self.reject(
                    to_entity_safe(r, self.clock),
                    source=r.source,
                    code="future",
                    entity_id=r.id,
                    reason=f"dated t={r.t:.6g} s, held while the live clock moved from t={held_at:.6g} s "
                    f"to t={self.feed_time:.6g} s without other senders reaching that time "
                    f"(max_future={self._max_future:g} s)",
                )
            else:
                keep.append((r, sender, held_at))
        self._held = keep

    def _count(self, outcome: Outcome) -> Outcome:
        c = self._counts.get(outcome.source)
        if c is None:
            c = self._counts[outcome.source] = [0, 0, 0, 0]
            self._reasons[outcome.source] = Counter()
        c[_OUTCOME_INDEX[outcome.status]] += 1
        if outcome.code:
            self._reasons[outcome.source][outcome.code] += 1
        return outcome

    def reject(
        self, message: Any, *, source: str, code: str, reason: str, entity_id: str = "", status: str = "rejected"
    ) -> Outcome:
        """Dead-letter a message (or entity) with its reason and count it.

        Transports call this for what never reaches :meth:`process` (a body too large,
        a wrong content type).
        """
        entry = {
            "at": _dt.datetime.now(_dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "source": source,
            "status": status,
            "code": code,
            "reason": reason,
            "id": entity_id,
            "message": _raw_text(message),
        }
        try:
            self.dead_letter.write(entry)
        except OSError as exc:  # a full disk must not stop the twin either
            log.error("could not write the dead-letter file: %s", exc)
        return self._count(Outcome(status, source, entity_id, code, reason))

    # ----------------------------------------------------------------- release
    def release(self, until: float, *, flush: bool = False) -> list[Record]:
        """Records with ``t <= until - reorder_window`` (``until`` if ``flush``), in time order.

        Advances the watermark: observations of a time at or before it that arrive later
        are late.
        """
        if not flush:
            self.set_twin_time(float(until))
        cutoff = float(until) if flush else float(until) - self.window
        if self._held:  # the twin has reached them: they are not ahead any more
            self._admit(max(cutoff, self._limit))
        out = []
        heap = self._heap
        while heap and heap[0][0] <= cutoff:
            out.append(heapq.heappop(heap)[2])
        if cutoff > self.watermark:
            self.watermark = cutoff
            if cutoff - self._pruned_at > self._horizon / 4:
                self._prune(cutoff - self._horizon)
        return out

    def _prune(self, before: float) -> None:
        self._seen = {k: v for k, v in self._seen.items() if k[1] >= before}
        self._stuck = {k: v for k, v in self._stuck.items() if v[2] >= before}
        self._pruned_at = self.watermark

    @property
    def pending(self) -> int:
        """Accepted records not yet released."""
        return len(self._heap)

    # ---------------------------------------------------------------- counters
    def counters(self) -> dict[str, dict[str, int]]:
        """``{source: {"accepted": n, "rejected": n, "late": n, "duplicate": n}}``."""
        return {s: dict(zip(OUTCOMES, c, strict=False)) for s, c in sorted(self._counts.items())}

    def reasons(self) -> dict[str, dict[str, int]]:
        """``{source: {reason code: n}}`` of rejected and late messages."""
        return {s: dict(sorted(c.items())) for s, c in sorted(self._reasons.items())}

    def totals(self) -> dict[str, int]:
        """Counters summed over sources."""
        tot = dict.fromkeys(OUTCOMES, 0)
        for c in self._counts.values():
            for k, v in zip(OUTCOMES, c, strict=False):
                tot[k] += v
        return tot

    def data_vars(self) -> dict:
        """Counters as variables for a run's Dataset (dims ``feed_source``, ``feed_outcome``)."""
        import xarray as xr

        sources = sorted(self._counts)
        table = np.array([self._counts[s] for s in sources], dtype=np.int64).reshape(len(sources), len(OUTCOMES))
        codes = sorted({c for r in self._reasons.values() for c in r})
        reasons = np.array([[self._reasons[s].get(c, 0) for c in codes] for s in sources], dtype=np.int64).reshape(
            len(sources), len(codes)
        )
        return {
            "coord:feed_source": xr.Variable("feed_source", np.array(sources, dtype=object).astype(str)),
            "coord:feed_outcome": xr.Variable("feed_outcome", np.array(OUTCOMES)),
            "coord:feed_reason": xr.Variable("feed_reason", np.array(codes, dtype=object).astype(str)),
            "feed_messages": xr.Variable(
                ("feed_source", "feed_outcome"),
                table,
                attrs={"units": "1", "long_name": "feed messages (entities) by source and outcome"},
            ),
            "feed_rejections": xr.Variable(
                ("feed_source", "feed_reason"),
                reasons,
                attrs={"units": "1", "long_name": "rejected and late feed messages by source and reason"},
            ),
        }

    def close(self) -> None:
        """Close the dead-letter file."""
        self.dead_letter.close()


def to_entity_safe(r: Record, clock: FeedClock) -> Any:
    """The keyValues entity of a record, for the dead-letter file."""
    from twin.feeds.ngsi import to_entity

    try:
        return to_entity(r, clock=clock)
    except Exception:  # noqa: BLE001  (a date out of range: keep what can be said)
        return {"id": r.id, "t": r.t}


def _id_of(entity: Any) -> str:
    ent_id = entity.get("id") if type(entity) is dict else None
    return ent_id if type(ent_id) is str else ""


def _describe(fp: tuple) -> str:
    names = ("link", "flow_vph", "speed_mps", "occupancy", "interval_s")
    return ", ".join(
        f"{n}={v:.6g}" if isinstance(v, float) else f"{n}={v}" for n, v in zip(names, fp, strict=False) if v is not None
    )
