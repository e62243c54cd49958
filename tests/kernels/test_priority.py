"""Priority junctions: gap acceptance of minor approaches (kernels.traffic), against
Harders' capacity formula and the plain reference."""

from __future__ import annotations

import math

import numpy as np
import pytest

from city_models.network import make_network
from kernels import junction as kj
from tests.kernels.test_traffic import random_network, random_trips, run_both
from twin.traffic import TrafficModel


def harders_vph(q_major_vph: float, minor_cap_vph: float) -> float:
    """Harders' (HCM) capacity of a minor approach, written out: follow-up time = the
    approach's own saturation headway, critical gap = the kernel's."""
    qc = q_major_vph / 3600.0
    tf = 3600.0 / minor_cap_vph
    if qc == 0:
        return minor_cap_vph
    return 3600.0 * qc * math.exp(-qc * kj.CRITICAL_GAP_S) / (1.0 - math.exp(-qc * tf))


def t_junction(*, major_prio: int, minor_prio: int, minor_cap: float = 1800.0, out_cap: float = 5400.0):
    """Major A -> J -> C and minor B -> J -> D; J unsignalised.  Links 0: A->J, 1: B->J,
    2: J->C, 3: J->D (500 m, 15 m/s)."""
    return make_network(
        x=[-500.0, 0.0, 0.0, 500.0, 0.0],
        y=[0.0, -500.0, 0.0, 0.0, 500.0],
        src=[0, 1, 2, 2],
        dst=[2, 2, 3, 4],
        length_m=500.0,
        lanes=[2.0, 1.0, 3.0, 3.0],
        free_speed_mps=15.0,
        capacity_vph=[3600.0, minor_cap, out_cap, out_cap],
        priority=[major_prio, minor_prio, 0, 0],
    )


def _discharge(net, *, q_major_vph: float, n_minor: int = 3000, dt: float = 2.0, window=(600.0, 2400.0)):
    """Exits per hour of the major and minor approaches over ``window`` (minor always queued)."""
    m = TrafficModel(net, step_s=dt)
    horizon = window[1] + 600.0
    n_major = int(q_major_vph * horizon / 3600.0)
    o = np.r_[np.zeros(n_major, np.int32), np.ones(n_minor, np.int32)]
    d = np.r_[np.full(n_major, 3, np.int32), np.full(n_minor, 4, np.int32)]
    t = np.r_[np.arange(n_major) * (3600.0 / q_major_vph) if n_major else np.zeros(0), np.zeros(n_minor)]
    m.add_trips(o, d, t)
    m.update_routes(horizon)
    m.advance_to(window[0])
    before = m.state.n_out.copy()
    m.advance_to(window[1])
    assert m.state.n_in[1] - m.state.n_out[1] > 5, "the minor approach must stay queued"
    per_h = (m.state.n_out - before) * 3600.0 / (window[1] - window[0])
    return per_h[0], per_h[1], m


@pytest.mark.parametrize("q_major", [600.0, 900.0, 1500.0])
def test_minor_discharge_follows_gap_acceptance(q_major):
    net = t_junction(major_prio=5, minor_prio=3)
    major, minor, _ = _discharge(net, q_major_vph=q_major)
    assert major == pytest.approx(q_major, rel=0.01)  # the major road keeps its flow
    assert minor == pytest.approx(harders_vph(q_major, 1800.0), rel=0.03)
    assert minor < 0.8 * 1800.0


def test_minor_gets_its_own_capacity_without_major_flow():
    net = t_junction(major_prio=5, minor_prio=3)
    m = TrafficModel(net, step_s=2.0)
    m.add_trips(np.ones(3000, np.int32), np.full(3000, 4, np.int32), np.zeros(3000))
    m.update_routes(3000.0)
    m.advance_to(600.0)
    n0 = int(m.state.n_out[1])
    m.advance_to(2400.0)
    assert (m.state.n_out[1] - n0) * 2.0 == pytest.approx(1800.0, rel=0.005)


def test_equal_priority_is_todays_merge():
    """Equal (or unknown) priorities: bit for bit the run without priorities; the gate
    only acts where priorities differ."""
    base = t_junction(major_prio=0, minor_prio=0)
    out = []
    for net in (base, t_junction(major_prio=4, minor_prio=4), t_junction(major_prio=4, minor_prio=0)):
        _, minor, m = _discharge(net, q_major_vph=1500.0)
        out.append((minor, m.veh.arrive.copy()))
    for minor, arrive in out[1:]:
        np.testing.assert_array_equal(arrive, out[0][1])
        assert minor == out[0][0]
    assert out[0][0] > 1700.0  # no gap acceptance: the minor approach discharges near its capacity
    _, minor_prio, _ = _discharge(t_junction(major_prio=5, minor_prio=3), q_major_vph=1500.0)
    assert minor_prio < 0.2 * out[0][0]


def _merge(prio_a: int, prio_b: int):
    """Two overloaded in-links (1800 and 900 veh/h) onto a 1200 veh/h out-link."""
    net = make_network(
        x=[-500.0, 0.0, 0.0, 500.0],
        y=[0.0, -500.0, 0.0, 0.0],
        src=[0, 1, 2],
        dst=[2, 2, 3],
        length_m=500.0,
        lanes=1.0,
        free_speed_mps=15.0,
        capacity_vph=[1800.0, 900.0, 1200.0],
        priority=[prio_a, prio_b, 0],
    )
    m = TrafficModel(net, step_s=1.0)
    n = 2000
    m.add_trips(np.r_[np.zeros(n, np.int32), np.ones(n, np.int32)], np.full(2 * n, 3, np.int32), np.zeros(2 * n))
    m.update_routes(4000.0)
    m.advance_to(600.0)
    before = m.state.n_out[:2].copy()
    m.advance_to(1800.0)
    return (m.state.n_out[:2] - before) * 3.0  # veh/h


def test_equal_priority_merge_splits_by_capacity():
    for p in (0, 3):
        a, b = _merge(p, p)
        assert a + b == pytest.approx(1200.0, rel=0.01)
        assert a / b == pytest.approx(2.0, rel=0.02)


def test_major_keeps_its_flow_at_a_congested_merge():
    """The major approach wins every tie for the out-link: it takes the out-link's
    capacity and the minor gets what is left (nothing, here)."""
    a, b = _merge(5, 2)
    assert a == pytest.approx(1200.0, rel=0.01)
    assert b <= 12.0


def test_priority_result_does_not_depend_on_the_tick():
    net = t_junction(major_prio=5, minor_prio=3)
    runs = [_discharge(net, q_major_vph=900.0, dt=dt, n_minor=800)[2].veh.arrive for dt in (1.0, 2.5)]
    np.testing.assert_allclose(runs[0], runs[1], rtol=0, atol=1e-9)


def _with_priorities(net, seed: int):
    rng = np.random.default_rng(seed + 77)
    m = net.n_links
    prio = rng.choice([0, 1, 2, 3], m, p=[0.1, 0.3, 0.3, 0.3])
    wave = np.where(rng.random(m) < 0.3, rng.uniform(4.0, 8.0, m), 0.0)
    fields = {
        f: getattr(net, f)
        for f in (
            "x",
            "y",
            "src",
            "dst",
            "length_m",
            "lanes",
            "free_speed_mps",
            "capacity_vph",
            "jam_density_vpm",
            "signal_cycle_s",
            "signal_offset_s",
            "green_start_s",
            "green_end_s",
        )
    }
    return make_network(**fields, priority=prio, wave_speed_mps=wave)


@pytest.mark.parametrize("seed", range(4))
def test_priorities_match_reference(seed):
    dt = [1.0, 2.0][seed % 2]
    net = _with_priorities(random_network(seed, dt=dt, signals=seed % 2 == 0), seed)
    top = np.zeros(net.n_nodes, int)
    low = np.full(net.n_nodes, 99)
    for a in range(net.n_links):
        if net.priority[a] > 0:
            top[net.dst[a]] = max(top[net.dst[a]], net.priority[a])
            low[net.dst[a]] = min(low[net.dst[a]], net.priority[a])
    assert np.any((low < top) & (net.signal_cycle_s == 0))  # some nodes have minor approaches
    trips = random_trips(seed, net.n_nodes, n_trips=400)
    m, ref = run_both(net, trips, dt=dt, duration=1200.0, every=3)
    assert m.counts()["arrived"] > 100
    assert np.any(m.state.major_rate > 0)


def test_gap_headway_formula():
    assert kj.gap_headway(0.0, 2.0) == 2.0
    q, tf = 0.25, 2.0
    assert kj.gap_headway(q, tf) == pytest.approx((1 - math.exp(-q * tf)) / (q * math.exp(-q * kj.CRITICAL_GAP_S)))
    assert kj.gap_headway(1e-12, 2.0) == pytest.approx(2.0)
