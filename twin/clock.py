"""The twin clock's scheduling primitive: events at an absolute time, with a fixed priority.

SimPy's :class:`~simpy.events.Timeout` fires at ``now + delay`` with priority
``NORMAL``.  The twin needs two things more:

- an event that fires at the *absolute* time ``t`` (``now + (t - now)`` can differ
  from ``t`` in the last bit, and the golden logs are compared bit for bit);
- a priority per kind of process (:data:`PRIORITY`), so that simultaneous events
  run in the same order in a twin restored from a snapshot, whose processes are
  created in another order than the original's.

:func:`schedule_at` gives both through SimPy's public
:meth:`simpy.Environment.schedule` (``heappush((now + delay, priority, eid, event))``):
it picks the delay ``d`` for which ``now + d == t`` exactly.  For a few pairs
(under 1 %) no such float exists: the sums' rounding steps over ``t`` (from
``now = 1.1``, ``now + d`` is ``5.199999999999999`` or ``5.200000000000001``
but never ``5.2``).  There the delay handed to ``Environment.schedule`` is a
:class:`_Landing`: a ``float`` (``t - now``, so it compares, prints and checks
as the delay it is) whose sum with the clock's time is ``t`` itself, through
Python's rule that a ``float`` subclass's reflected ``__radd__`` is tried before
``float.__add__``.  The queue entry is then exactly what an ideal
``schedule(event, priority, t - now)`` would make: time ``t``, the priority, and
the next event id taken *now* (so simultaneous events keep their order), and no
code outside SimPy's public API touches its queue.  ``tests/twin/test_clock.py``
checks the landing bit for bit, so a SimPy that stopped computing ``now + delay``
would be caught.  (A relay -- a first timeout to some ``t'`` from which a delay
does land on ``t`` -- would use the public API too, but the event would take its
id at ``t'``, so events scheduled in between for the same time and priority would
run before it instead of after.)
"""

from __future__ import annotations

import math

import simpy
from simpy.events import URGENT, EventPriority

__all__ = ["PRIORITY", "At", "schedule_at"]

#: SimPy priorities (lower runs first among events at the same time): the recorder
#: samples before anything else acts at T; re-routing uses what every other event at T
#: did; the traffic process only catches the kernel up, so it goes last.
PRIORITY: dict[str, int] = {"urgent": URGENT, "normal": 1, "reroute": 4, "demand": 5, "traffic": 9}

#: how many last-bit steps :func:`exact_delay` tries before giving up (one or two suffice)
_MAX_STEPS = 64


class At(simpy.Event):
    """An event already triggered (successfully, value ``None``) that waits in the queue.

    Built like :class:`simpy.events.Timeout`: the event is marked as succeeded
    when it is made and scheduled by the caller (:func:`schedule_at`).
    """

    def __init__(self, env: simpy.Environment) -> None:
        super().__init__(env)
        self._ok = True
        self._value = None


def exact_delay(now: float, t: float) -> float | None:
    """The delay ``d >= 0`` for which ``now + d == t`` in floating point (``None``: there is none).

    Parameters
    ----------
    now : float
        The clock's time.
    t : float
        The absolute time wanted, ``t >= now``.

    Returns
    -------
    float or None
        ``t - now``, moved by a few units in the last place where the plain
        difference does not land on ``t`` exactly; ``None`` where no delay does.
    """
    d = t - now
    for _ in range(_MAX_STEPS):
        s = now + d
        if s == t:
            return d
        step = math.nextafter(d, math.inf if s < t else -math.inf)
        if (now + step < t) != (s < t) and now + step != t:
            return None  # the sums step over t: no delay lands on it
        d = step
    return None


class _Landing(float):
    """A delay ``t - now`` whose sum with the clock's time is ``t`` exactly.

    Only for the rare ``(now, t)`` where :func:`exact_delay` finds no plain
    float: ``now + _Landing(now, t)`` calls :meth:`__radd__` (a subclass's
    reflected method comes before ``float.__add__``) and returns ``t``.

    Parameters
    ----------
    now : float
        The clock's time.
    t : float
        The absolute time the sum must give.
    """

    at: float

    def __new__(cls, now: float, t: float) -> _Landing:
        """The delay ``t - now``, remembering ``t``."""
        self = super().__new__(cls, t - now)
        self.at = t
        return self

    def __radd__(self, now: object) -> float:
        """``now + delay``: the absolute time ``t`` itself, as the caller gave it."""
        return self.at

    def __add__(self, now: object) -> float:
        """``delay + now``, should a SimPy version add the other way round: ``t`` as well."""
        return self.at


def schedule_at(env: simpy.Environment, t: float, priority: int = PRIORITY["normal"]) -> simpy.Event:
    """An event that fires at the absolute time ``t`` with the given priority.

    Parameters
    ----------
    env : simpy.Environment
        The twin's clock.
    t : float
        Absolute time in seconds; not before ``env.now``.
    priority : int
        SimPy priority (lower runs first among events at the same time); one of
        :data:`PRIORITY`'s values.

    Returns
    -------
    simpy.Event
        The event, to ``yield`` from a process.

    Raises
    ------
    ValueError
        When ``t`` lies before the clock's time.
    """
    now = env.now
    if t < now:
        raise ValueError(f"cannot schedule at {t} s: the clock is at {now} s")
    ev = At(env)
    d = exact_delay(now, t)
    env.schedule(ev, EventPriority(priority), _Landing(now, t) if d is None else d)
    return ev
