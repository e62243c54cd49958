"""The clock's scheduling primitive: exact absolute times through SimPy's public API."""

import numpy as np
import pytest
import simpy

from twin.clock import PRIORITY, exact_delay, schedule_at


def test_exact_delay_lands_on_the_time_bit_for_bit():
    rng = np.random.default_rng(0)
    now = rng.uniform(0.0, 1e5, 20_000) * rng.choice([1e-3, 1.0, 1e3], 20_000)
    t = now + rng.uniform(0.0, 1e5, now.size) * rng.choice([1e-9, 1e-3, 1.0], now.size)
    missing = 0
    for a, b in zip(now.tolist(), t.tolist(), strict=True):
        d = exact_delay(a, b)
        if d is None:  # the sums' rounding steps over b (schedule_at then places the event at b itself)
            missing += 1
            continue
        assert d >= 0.0 and a + d == b
    assert missing < now.size // 100


def test_schedule_at_fires_at_the_absolute_time_in_priority_order():
    env = simpy.Environment(initial_time=1.1)
    seen = []

    def proc(name, t, prio):
        yield schedule_at(env, t, prio)
        seen.append((name, env.now))

    t = 5.2  # 1.1 + (5.2 - 1.1) != 5.2 in floating point
    assert 1.1 + (t - 1.1) != t
    env.process(proc("traffic", t, PRIORITY["traffic"]))
    env.process(proc("normal", t, PRIORITY["normal"]))
    env.process(proc("urgent", t, PRIORITY["urgent"]))
    env.run()
    assert seen == [("urgent", t), ("normal", t), ("traffic", t)]


def test_schedule_at_refuses_the_past():
    env = simpy.Environment(initial_time=5.0)
    with pytest.raises(ValueError, match="clock is at 5.0"):
        schedule_at(env, 4.0)
    assert exact_delay(5.0, 5.0) == 0.0
    assert exact_delay(1.1, 5.2) is None  # no delay lands on 5.2 from 1.1


def test_a_landed_event_keeps_its_place_among_simultaneous_events():
    # the event id is taken when schedule_at is called, on the landing path as on the plain one
    env = simpy.Environment(initial_time=1.1)
    seen = []

    def proc(name, start, t):
        if start > env.now:
            yield env.timeout(start - env.now)
        yield schedule_at(env, t)
        seen.append((name, env.now))

    assert exact_delay(1.1, 5.2) is None and exact_delay(2.0, 5.2) is not None
    env.process(proc("late plain", 2.0, 5.2))  # scheduled at 2.0
    env.process(proc("landed", 1.1, 5.2))  # scheduled at 1.1: first among equals
    env.run()
    assert seen == [("landed", 5.2), ("late plain", 5.2)]
    assert all(type(now) is float for _, now in seen)


def test_a_landing_delay_sums_to_its_time_either_way_round():
    from twin.clock import _Landing

    now, t = 1.1, 5.2
    assert now + (t - now) != t  # the case a plain delay cannot land on
    d = _Landing(now, t)
    assert now + d == t and d + now == t
    assert type(now + d) is float and float(d) == t - now
