"""The twin clock's scheduling primitive: events at an absolute time, with a fixed priority.

SimPy's :class:`~simpy.events.Timeout` fires at ``now + delay`` with priority
``NORMAL``.  The twin needs two things more:

- an event that fires at the *absolute* time ``t`` (``now + (t - now)`` can differ
  from ``t`` in the last bit, and the golden logs are compared bit for bit);
- a priority per kind of process (:data:`PRIORITY`), so that simultaneous events
  run in the same order in a twin restored from a snapshot, whose processes are
  created in another order than the original's.

:func:`schedule_at` gives both through SimPy's public
:meth:`simpy.Environment.schedule`: it picks the delay ``d`` for which
``now + d == t`` exactly.  For a few pairs no such delay exists (the sum's
rounding ties step over ``t``); only then does it put the event on the queue at
``t`` itself, as ``Environment.schedule`` would (:func:`_schedule_exactly`, the
one place that touches SimPy's internals), so event times stay bit for bit what
they were.
"""

from __future__ import annotations

import math
from heapq import heappush

import simpy
from simpy.core import URGENT

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


def _schedule_exactly(env: simpy.Environment, event: simpy.Event, priority: int, t: float) -> None:
    """Put ``event`` on the queue at ``t`` itself, as ``Environment.schedule`` does at ``now + delay``.

    Only for the rare ``(now, t)`` where :func:`exact_delay` finds no delay.
    """
    heappush(env._queue, (t, priority, next(env._eid), event))


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
    if d is None:
        _schedule_exactly(env, ev, priority, t)
    else:
        env.schedule(ev, priority, d)
    return ev
