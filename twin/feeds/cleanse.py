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
6. **lateness**: records are held for ``reorder_window`` sim seconds and released in
   time order by :meth:`Cleanser.release`; an observation of a time already released is
   *late*: dropped and dead-lettered (the twin has moved past it). An alert or closure
   arriving after its time is still delivered, flagged ``late`` and counted as
   accepted: a late report of a closure, or of its end, still changes what the twin does;
7. **stuck sensors**: the same non-zero reading from one sensor (entity id or
   ``refDevice``, and lane) ``stuck_repeats`` times in a row: that repeat and the ones
   after it are rejected until the reading changes.

Each entity gets exactly one outcome (:class:`Outcome`): ``accepted``, ``rejected``
(dead-lettered with its reason), ``late`` (dead-lettered) or ``duplicate``; counters per
source add them up. Nothing a message contains can raise out of :meth:`Cleanser.process`:
an unexpected error is dead-lettered as ``internal`` and logged.

The dead-letter file is JSON lines, appended and flushed line by line::

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
from typing import Any, NamedTuple

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


class Outcome(NamedTuple):
    """What became of one entity of a message."""

    status: str  # one of OUTCOMES
    source: str
    entity_id: str = ""
    code: str = ""  # reason class (rejected / late); "" otherwise
    reason: str = ""


class DeadLetter:
    """Append-only JSONL file of rejected messages, one flushed line each (thread-safe).

    Parameters
    ----------
    path : path-like or None
        The file (its folder is created); ``None`` keeps only the recent entries in memory.
    keep : int
        How many recent entries :attr:`recent` keeps.
    """

    def __init__(self, path: str | Path | None = None, *, keep: int = 200) -> None:
        self.path = None if path is None else Path(path)
        self.recent: deque[dict] = deque(maxlen=keep)
        self.count = 0
        self._lock = threading.Lock()
        self._handle = None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = open(self.path, "a", encoding="utf-8")

    def write(self, entry: dict) -> None:
        """Append one entry (a JSON-able dict) and flush it."""
        try:
            line = json.dumps(entry, ensure_ascii=False, default=repr)
        except (TypeError, ValueError) as exc:  # e.g. circular: keep the reason, drop the message
            entry = {**entry, "message": repr(entry.get("message"))[:2000], "note": f"not JSON-able: {exc}"}
            line = json.dumps(entry, ensure_ascii=False, default=repr)
        with self._lock:
            self.count += 1
            self.recent.append(entry)
            if self._handle is not None:
                self._handle.write(line + "\n")
                self._handle.flush()

    def close(self) -> None:
        with self._lock:
            if self._handle is not None:
                self._handle.close()
                self._handle = None


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

    def __init__(self, *, clock: FeedClock, mapper, settings=None, dead_letter: DeadLetter | str | Path | None = None,
                 source_units: dict[str, Units] | None = None) -> None:
        if settings is None:
            from scenarios.feeds import CleansingSpec

            settings = CleansingSpec()
        self.clock = clock
        self.mapper = mapper
        self.settings = settings
        self.dead_letter = dead_letter if isinstance(dead_letter, DeadLetter) else DeadLetter(dead_letter)
        self.units = Units(speed=settings.speed_unit, intensity=settings.intensity_unit,
                           occupancy=settings.occupancy_unit, default_interval_s=settings.default_interval,
                           roadworks_capacity_factor=settings.roadworks_capacity_factor)
        self.source_units = dict(source_units or {})
        self.window = float(settings.reorder_window)
        self.watermark = -math.inf  # records with t <= watermark have been released
        self.feed_time = -math.inf  # latest accepted record time
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
    def process(self, payload: Any, *, source: str) -> list[Outcome]:
        """Cleanse one raw message; returns the outcome of each entity in it.

        Parameters
        ----------
        payload : bytes, str, dict or list
            The message as received (JSON text or already parsed).
        source : str
            Name of the source it came from.
        """
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
            entities = entities_of(obj)
            if not entities:
                return [self.reject(payload, source=source, code="malformed",
                                    reason="no entities (an empty list or Notification)")]
        except MessageError as exc:
            return [self.reject(payload, source=source, code=exc.code, reason=exc.detail)]
        except Exception as exc:  # never let a message stop the twin
            log.exception("feed message from %s could not be read", source)
            return [self.reject(payload, source=source, code="internal", reason=f"{type(exc).__name__}: {exc}")]
        return [self._entity(e, source) for e in entities]

    def _entity(self, entity: Any, source: str) -> Outcome:
        try:
            rec = decode(entity, self.clock, self.mapper, self.source_units.get(source, self.units), source)
            if type(rec) is Observation:
                return self._observation(rec, entity)
            return self._event(rec, entity)
        except MessageError as exc:
            return self.reject(entity, source=source, code=exc.code, reason=exc.detail, entity_id=_id_of(entity),
                               status="late" if exc.code == "late" else "rejected")
        except Exception as exc:  # never let a message stop the twin
            ent_id = _id_of(entity)
            log.exception("feed entity %r from %s could not be cleansed", ent_id, source)
            return self.reject(entity, source=source, code="internal", reason=f"{type(exc).__name__}: {exc}",
                               entity_id=ent_id)

    def _observation(self, r: Observation, entity: dict) -> Outcome:
        key = (r.id, r.t, r.lane)
        flow, speed, occ = r.flow_vph, r.speed_mps, r.occupancy
        fp = (r.link, flow if flow == flow else None, speed if speed == speed else None,
              occ if occ == occ else None, r.interval_s)
        seen = self._seen.get(key)
        if seen is not None:
            if seen == fp:
                return self._count(Outcome("duplicate", r.source, r.id))
            raise MessageError("conflict", "an earlier message with the same id and time had other values "
                                           f"({_describe(seen)})")
        if flow < 0 or speed < 0 or occ < 0:
            what = "intensity" if flow < 0 else "averageVehicleSpeed" if speed < 0 else "occupancy"
            raise MessageError("implausible", f"negative {what}")
        if speed > self._max_speed:
            raise MessageError("implausible", f"averageVehicleSpeed {speed * 3.6:.4g} km/h is above "
                                              f"max_speed_kmh={self.settings.max_speed_kmh:g}")
        if occ > 1.0:
            raise MessageError("implausible", f"occupancy {occ:.4g} is above 1")
        lanes = 1.0 if r.lane >= 0 else self._lanes[r.link]
        if flow > self._max_flow_lane * lanes:
            raise MessageError("implausible", f"intensity {flow:.5g} veh/h is above "
                                              f"max_flow_vph_per_lane={self._max_flow_lane:g} x {lanes:g} lane(s) "
                                              f"of link {r.link}")
        if r.t <= self.watermark:
            raise MessageError("late", f"observed at t={r.t:g} s but records up to t={self.watermark:g} s "
                                       f"were already released (reorder_window={self.window:g} s)")
        if self._stuck_n:
            skey = (r.device or r.id, r.lane)
            reading = fp[1:4]
            state = self._stuck.get(skey)
            if state is not None and state[0] == reading and (reading[0] or reading[1] or reading[2]):
                state[1] += 1
                if state[1] >= self._stuck_n:
                    raise MessageError("stuck", f"the same reading {_describe((None,) + reading)} for the "
                                                f"{state[1]}th time in a row (stuck_repeats={self._stuck_n})")
            else:
                self._stuck[skey] = [reading, 1]
        self._seen[key] = fp
        self._seq += 1  # accept (inlined: this is the hot path)
        heapq.heappush(self._heap, (r.t, self._seq, r))
        if r.t > self.feed_time:
            self.feed_time = r.t
        c = self._counts.get(r.source)
        if c is None:
            return self._count(Outcome("accepted", r.source, r.id))
        c[0] += 1
        return Outcome("accepted", r.source, r.id)

    def _event(self, r: AlertEvent | ClosureEvent, entity: dict) -> Outcome:
        links = r.links if type(r) is ClosureEvent else (r.link,)
        key = (r.id, r.t, -2)
        fp = _fingerprint((r.sub_category, links, r.valid_from, r.valid_to, r.severity))
        seen = self._seen.get(key)
        if seen is not None:
            if seen == fp:
                return self._count(Outcome("duplicate", r.source, r.id))
            raise MessageError("conflict", "an earlier alert with the same id and dateIssued said otherwise")
        if r.t <= self.watermark:  # still delivered: an update (validTo: "it is over") matters late too
            r = dataclasses.replace(r, late=True)
        self._seen[key] = fp
        return self._accept(r)

    def _accept(self, r: Record) -> Outcome:
        self._seq += 1
        heapq.heappush(self._heap, (r.t, self._seq, r))
        if r.t > self.feed_time:
            self.feed_time = r.t
        c = self._counts.get(r.source)
        if c is None:
            return self._count(Outcome("accepted", r.source, r.id))
        c[0] += 1
        return Outcome("accepted", r.source, r.id)

    def _count(self, outcome: Outcome) -> Outcome:
        c = self._counts.get(outcome.source)
        if c is None:
            c = self._counts[outcome.source] = [0, 0, 0, 0]
            self._reasons[outcome.source] = Counter()
        c[_OUTCOME_INDEX[outcome.status]] += 1
        if outcome.code:
            self._reasons[outcome.source][outcome.code] += 1
        return outcome

    def reject(self, message: Any, *, source: str, code: str, reason: str, entity_id: str = "",
               status: str = "rejected") -> Outcome:
        """Dead-letter a message (or entity) with its reason and count it.

        Transports call this for what never reaches :meth:`process` (a body too large,
        a wrong content type).
        """
        entry = {"at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                 "source": source, "status": status, "code": code, "reason": reason, "id": entity_id,
                 "message": _raw_text(message)}
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
        cutoff = float(until) if flush else float(until) - self.window
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
        self._pruned_at = self.watermark

    @property
    def pending(self) -> int:
        """Accepted records not yet released."""
        return len(self._heap)

    # ---------------------------------------------------------------- counters
    def counters(self) -> dict[str, dict[str, int]]:
        """``{source: {"accepted": n, "rejected": n, "late": n, "duplicate": n}}``."""
        return {s: dict(zip(OUTCOMES, c)) for s, c in sorted(self._counts.items())}

    def reasons(self) -> dict[str, dict[str, int]]:
        """``{source: {reason code: n}}`` of rejected and late messages."""
        return {s: dict(sorted(c.items())) for s, c in sorted(self._reasons.items())}

    def totals(self) -> dict[str, int]:
        """Counters summed over sources."""
        tot = dict.fromkeys(OUTCOMES, 0)
        for c in self._counts.values():
            for k, v in zip(OUTCOMES, c):
                tot[k] += v
        return tot

    def data_vars(self) -> dict:
        """Counters as variables for a run's Dataset (dims ``feed_source``, ``feed_outcome``)."""
        import xarray as xr

        sources = sorted(self._counts)
        table = np.array([self._counts[s] for s in sources], dtype=np.int64).reshape(len(sources), len(OUTCOMES))
        codes = sorted({c for r in self._reasons.values() for c in r})
        reasons = np.array([[self._reasons[s].get(c, 0) for c in codes] for s in sources],
                           dtype=np.int64).reshape(len(sources), len(codes))
        return {
            "coord:feed_source": xr.Variable("feed_source", np.array(sources, dtype=object).astype(str)),
            "coord:feed_outcome": xr.Variable("feed_outcome", np.array(OUTCOMES)),
            "coord:feed_reason": xr.Variable("feed_reason", np.array(codes, dtype=object).astype(str)),
            "feed_messages": xr.Variable(("feed_source", "feed_outcome"), table, attrs={
                "units": "1", "long_name": "feed messages (entities) by source and outcome"}),
            "feed_rejections": xr.Variable(("feed_source", "feed_reason"), reasons, attrs={
                "units": "1", "long_name": "rejected and late feed messages by source and reason"}),
        }

    def close(self) -> None:
        """Close the dead-letter file."""
        self.dead_letter.close()


def _id_of(entity: Any) -> str:
    ent_id = entity.get("id") if type(entity) is dict else None
    return ent_id if type(ent_id) is str else ""


def _describe(fp: tuple) -> str:
    names = ("link", "flow_vph", "speed_mps", "occupancy", "interval_s")
    return ", ".join(f"{n}={v:.6g}" if isinstance(v, float) else f"{n}={v}"
                     for n, v in zip(names, fp) if v is not None)
