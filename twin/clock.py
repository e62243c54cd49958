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
``now + d == t`` exactly.
"""

from __future__ import annotations

import math

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


def exact_delay(now: float, t: float) -> float:
    """The delay ``d >= 0`` for which ``now + d == t`` in floating point.

    Parameters
    ----------
    now : float
        The clock's time.
    t : float
        The absolute time wanted, ``t >= now``.

    Returns
    -------
    float
        ``t - now``, moved by a few units in the last place where the plain
        difference does not land on ``t`` exactly.
    """
    d = t - now
    for _ in range(_MAX_STEPS):
        s = now + d
        if s == t:
            return d
        d = math.nextafter(d, math.inf if s < t else -math.inf)
    raise ArithmeticError(f"no delay reaches {t!r} s exactly from {now!r} s")


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
    env.schedule(ev, priority, exact_delay(now, t))
    return ev
