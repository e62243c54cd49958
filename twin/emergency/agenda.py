"""A timed agenda: one SimPy process that runs each record's next step when it falls due.

Records (units, incidents) carry their next event time in ``t_next``; the agenda
keeps a heap of ``(t, seq, key)`` and runs the owner's step for a key when its
time comes.  An entry is live while ``due[key] == seq``: setting a new time for a
key supersedes its older entries without searching the heap.  One process for all
records keeps the number of SimPy events low, and the agenda is plain data (a
heap, a counter, a dict), so a snapshot holds it and :meth:`Agenda.start`
resumes it.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Generator
from typing import Any, Protocol

import simpy

from basics.numeric import EPS as _EPS
from twin.clock import PRIORITY, schedule_at

__all__ = ["Agenda", "AgendaOwner", "Key"]

#: an agenda key: a record's kind (``"u"``: unit, ``"i"``: incident) and its index
Key = tuple[str, int]


class AgendaOwner(Protocol):
    """What an :class:`Agenda` needs of the component whose records it times."""

    def agenda_record(self, key: Key) -> Any:
        """The record (with a ``t_next`` attribute) a key names."""
        ...

    def agenda_finished(self, key: Key, rec: Any) -> bool:
        """Whether the record is done for good (it gets no more steps)."""
        ...

    def agenda_due(self, key: Key, rec: Any) -> None:
        """Run the record's step that fell due now."""
        ...


class Agenda:
    """A heap of timed steps run by one SimPy process (see the module docstring).

    Parameters
    ----------
    owner : AgendaOwner
        Looks records up by key and runs their steps.
    priority : int
        SimPy priority of the agenda's wake-ups (:data:`twin.clock.PRIORITY`).
    """

    def __init__(self, owner: AgendaOwner, *, priority: int = PRIORITY["normal"]) -> None:
        self.owner = owner
        self.priority = priority
        #: ``(t, seq, key)`` entries; an entry is live while ``due[key] == seq``
        self.heap: list[tuple[float, int, Key]] = []
        self.seq = 0
        self.due: dict[Key, int] = {}
        #: generation of the running process (a restarted agenda ends the older one)
        self.gen = 0
        # process handles (not records: start() rebuilds them)
        self._env: simpy.Environment | None = None
        self._proc: simpy.Process | None = None
        self._idle: simpy.Event | None = None
        #: when the process sleeps until (inf: idle; -inf: running or already woken)
        self._at = -math.inf

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.update(_env=None, _proc=None, _idle=None, _at=-math.inf)
        return state

    def start(self, env: simpy.Environment) -> None:
        """Register the agenda's process on ``env`` (again after a restore)."""
        self._env = env
        self.gen += 1
        self._at = -math.inf
        self._proc = env.process(self._run(self.gen))

    def _run(self, gen: int) -> Generator[simpy.Event, Any, None]:
        env = self._env
        assert env is not None
        heap, due = self.heap, self.due
        while gen == self.gen:
            if not heap:
                self._at = math.inf
                ev = self._idle = env.event()
                yield ev
                self._at = -math.inf
                continue
            t, seq, key = heap[0]
            if due.get(key) != seq:  # superseded
                heapq.heappop(heap)
                continue
            if t <= env.now + _EPS:
                heapq.heappop(heap)
                del due[key]
                rec = self.owner.agenda_record(key)
                rec.t_next = math.inf
                self.owner.agenda_due(key, rec)
                continue
            self._at = t
            try:
                yield schedule_at(env, t, self.priority)
            except simpy.Interrupt:
                pass
            self._at = -math.inf

    def set_next(self, key: Key, t: float) -> None:
        """Set a record's next step time (``inf``: none) and wake the process if it sleeps past it.

        Parameters
        ----------
        key : Key
            The record's key.
        t : float
            Absolute time of its next step, s (``inf``: none).
        """
        rec = self.owner.agenda_record(key)
        rec.t_next = t = float(t)
        if t == math.inf or self.owner.agenda_finished(key, rec):
            self.due.pop(key, None)
            return
        self.seq += 1
        self.due[key] = self.seq
        heapq.heappush(self.heap, (t, self.seq, key))
        if t < self._at - _EPS:
            proc = self._proc
            if proc is None or not proc.is_alive or self._env is None or proc is self._env.active_process:
                return
            if self._at == math.inf:
                assert self._idle is not None
                self._idle.succeed()
            else:
                proc.interrupt()
            self._at = -math.inf
