"""Kinematic-wave analytical cases for the traffic model.

Every expected value is computed here from the links' triangular fundamental
diagrams (free speed ``vf``, capacity ``q``, jam density ``kj``, backward wave
speed ``w = q / (kj - q / vf)``), never hard-coded.
"""

from __future__ import annotations

import numpy as np
import pytest

from city_models.network import make_network
from twin.traffic import TrafficModel

# ---------------------------------------------------------------- helpers


def corridor(lengths, *, lanes=1.0, vf=15.0, capacity_vph=None, **signals):
    """Nodes 0..n on a line, link i from node i to node i + 1."""
    lengths = np.asarray(lengths, float)
    n = lengths.size
    x = np.concatenate([[0.0], np.cumsum(lengths)])
    return make_network(
        x=x,
        y=np.zeros(n + 1),
        src=np.arange(n),
        dst=np.arange(1, n + 1),
        length_m=lengths,
        lanes=lanes,
        free_speed_mps=vf,
        capacity_vph=capacity_vph,
        **signals,
    )


def fd(net, a):
    """(vf, q, kj, w) of link ``a``: q in veh/s, kj in veh/m, w in m/s."""
    vf = float(net.free_speed_mps[a])
    q = float(net.capacity_vph[a]) / 3600.0
    kj = float(net.jam_density_vpm[a])
    return vf, q, kj, q / (kj - q / vf)


def uniform_departures(rate, t_end, t0=0.0):
    return t0 + np.arange(int((t_end - t0) * rate)) / rate


def start(net, dt, orig, dest, depart):
    m = TrafficModel(net, step_s=dt)
    m.add_trips(np.full(len(depart), orig), np.full(len(depart), dest), depart)
    m.update_routes(1e9)  # once: later refreshes would re-route around closures
    return m


def steady_rate(times):
    """Mean rate of a sorted sequence of event times."""
    times = np.sort(times)
    return (times.size - 1) / (times[-1] - times[0])


# ------------------------------------------------------ (a) free flow


@pytest.mark.parametrize("dt", [0.5, 1.0, 2.0, 5.0])
def test_free_flow_travel_time_is_sum_of_L_over_vf(dt):
    lengths = [150.0, 400.0, 90.0, 300.0, 250.0]
    vf = [15.0, 25.0, 10.0, 20.0, 12.5]
    net = corridor(lengths, vf=vf, lanes=[1, 2, 1, 3, 1])
    free_tt = net.length_m / net.free_speed_mps
    assert np.all(free_tt >= dt)
    _, q_min, _, _ = min((fd(net, a) for a in range(net.n_links)), key=lambda f: f[1])
    # sparse traffic at arbitrary (untick-aligned) times, and a platoon at exactly the capacity headway
    sparse = 3.3 + 37.1 * np.arange(10)
    platoon = 500.0 + np.arange(20) / q_min
    m = start(net, dt, 0, net.n_nodes - 1, np.concatenate([sparse, platoon]))
    m.advance_to(1000.0)
    assert m.counts()["arrived"] == m.n_vehicles
    np.testing.assert_allclose(m.veh.arrive - m.veh.depart, free_tt.sum(), rtol=0, atol=1e-9)
    np.testing.assert_allclose(m.veh.dist, net.length_m.sum())
    np.testing.assert_allclose(m.veh.fftt, free_tt.sum())


def test_partial_trip_free_flow():
    net = corridor([120.0, 200.0, 180.0], vf=[12.0, 20.0, 18.0])
    free_tt = net.length_m / net.free_speed_mps
    m = TrafficModel(net, step_s=2.0)
    m.add_trips([1, 0], [3, 2], [1.25, 7.75])
    m.update_routes(1e9)
    m.advance_to(200.0)
    np.testing.assert_allclose(m.veh.arrive, [1.25 + free_tt[1:].sum(), 7.75 + free_tt[:2].sum()], atol=1e-9)


# ---------------------------------------------- (b) discharge at capacity


@pytest.mark.parametrize("dt", [1.0, 2.0])
def test_lane_drop_discharges_at_one_lane_capacity(dt):
    net = corridor([600.0, 300.0, 300.0], lanes=[2.0, 1.0, 1.0])
    _, q_up, _, _ = fd(net, 0)
    _, q_b, _, _ = fd(net, 1)
    assert q_up > 1.5 * q_b
    demand = 1.5 * q_b
    depart = uniform_departures(demand, 900.0)
    m = start(net, dt, 0, 3, depart)
    m.advance_to(3000.0)
    assert m.counts()["arrived"] == m.n_vehicles
    arrive = np.sort(m.veh.arrive)
    # the queue builds on the 2-lane link: arrivals are spaced by the bottleneck headway
    core = arrive[50:-50]
    assert steady_rate(core) == pytest.approx(q_b, rel=0.005)
    delay = m.veh.arrive - m.veh.depart - net.free_flow_time_s.sum()
    assert delay[-1] > 0.25 * 900.0  # a real queue formed


# ------------------------------------------------------------ (c) spillback


@pytest.mark.parametrize("dt", [1.0, 2.0])
def test_spillback_restricts_upstream_inflow_at_shock_arrival(dt):
    L = 500.0
    net = corridor([L, 400.0, 400.0], lanes=[2.0, 1.0, 1.0])
    vf, q_u, kj, w = fd(net, 0)
    _, q_b, _, _ = fd(net, 1)
    q_a = 1.5 * q_b
    assert q_a < q_u
    depart = uniform_departures(q_a, 1500.0)
    m = start(net, dt, 0, 3, depart)
    m.advance_to(4000.0)
    # Rankine-Hugoniot: arrival state (q_a, q_a / vf) against the queue (q_b, kj - q_b / w)
    k_a = q_a / vf
    k_b = kj - q_b / w
    s = (q_b - q_a) / (k_b - k_a)
    assert s < 0
    t_theory = L / vf + L / abs(s)
    held = m.veh.enter_net > m.veh.depart + 1e-9
    t_first = m.veh.depart[np.argmax(held)]
    tol = 2 * max(1 / q_a, 1 / q_b) + dt
    assert abs(t_first - t_theory) <= tol, (t_first, t_theory)
    # from then on, the upstream link takes vehicles at the bottleneck capacity
    entries = np.sort(m.veh.enter_net[(m.veh.enter_net > t_theory + 100) & (m.veh.depart < 1400.0)])
    assert steady_rate(entries) == pytest.approx(q_b, rel=0.01)


# --------------------------------------------- (d, e) blockage on a corridor


N_LINKS = 8
LINK_L = 200.0
T_CLOSE = 300.0
T_OPEN = 860.0


def _blocked_corridor(dt):
    """Light traffic on 8 links; the last link closed over [T_CLOSE, T_OPEN).

    Returns the model (run to the end), the last-entry time of each link just
    before reopening, and the first exit after reopening of each link's head vehicle.
    """
    net = corridor([LINK_L] * N_LINKS)
    vf, q, kj, w = fd(net, 0)
    q_a = 0.5 * q
    m = start(net, dt, 0, N_LINKS, uniform_departures(q_a, 2000.0, t0=0.123))
    m.advance_to(T_CLOSE)
    m.links.is_open[N_LINKS - 1] = 0
    m.advance_to(T_OPEN)
    ls, veh = m.state, m.veh
    last_entry = np.array([veh.enter_t[ls.tail[a]] for a in range(N_LINKS - 1)])
    heads = ls.head[: N_LINKS - 1].copy()
    full = (ls.n_in - ls.n_out)[: N_LINKS - 1]
    m.links.is_open[N_LINKS - 1] = 1
    first_exit = np.full(N_LINKS - 1, np.nan)
    while np.isnan(first_exit).any() and m.now < T_OPEN + 600.0:
        m.advance_to(m.now + dt)
        for a in np.flatnonzero(np.isnan(first_exit)):
            v = heads[a]
            if veh.link[v] != a:  # it left link a during this tick: its entry time downstream is its exit time
                first_exit[a] = veh.enter_t[v] if veh.link[v] >= 0 else veh.arrive[v]
    m.advance_to(6000.0)
    return net, (vf, q, kj, w, q_a), m, last_entry, first_exit, full


@pytest.mark.parametrize("dt", [1.0, 2.0])
def test_blockage_queue_grows_back_at_shock_speed(dt):
    net, (vf, q, kj, w, q_a), m, last_entry, _, full = _blocked_corridor(dt)
    # shock between free flow (q_a, q_a / vf) and the jam (0, kj)
    s = (0.0 - q_a) / (kj - q_a / vf)
    dist_up = LINK_L * (N_LINKS - 1 - np.arange(N_LINKS - 1))  # blockage to each link's upstream end
    t_reach = T_CLOSE + dist_up / abs(s)
    jammed = t_reach < T_OPEN
    assert jammed.sum() >= 5
    assert np.all(full[jammed] == np.floor(kj * LINK_L))  # jammed links hold kj L vehicles
    tol = 2 / q_a + dt
    np.testing.assert_allclose(last_entry[jammed], t_reach[jammed], rtol=0, atol=tol)
    # the speed itself: slope of the arrival times over the distance
    slope = np.polyfit(dist_up[jammed], last_entry[jammed], 1)[0]
    assert 1 / slope == pytest.approx(abs(s), rel=0.03)
    assert m.counts()["arrived"] == m.n_vehicles


@pytest.mark.parametrize("dt", [1.0, 2.0])
def test_queue_dissipates_with_start_up_wave_at_w(dt):
    net, (vf, q, kj, w, q_a), m, _, first_exit, full = _blocked_corridor(dt)
    assert np.all(LINK_L / w >= dt)
    dist_down = LINK_L * (N_LINKS - 2 - np.arange(N_LINKS - 1))  # blockage to each link's downstream end
    jammed = T_CLOSE + (dist_down + LINK_L) / (q_a / (kj - q_a / vf)) < T_OPEN
    t_start = T_OPEN + dist_down / w
    np.testing.assert_allclose(first_exit[jammed], t_start[jammed], rtol=0, atol=1e-6)
    slope = np.polyfit(dist_down[jammed], first_exit[jammed], 1)[0]
    assert 1 / slope == pytest.approx(w, rel=1e-6)


# -------------------------------------------------------------- (f) signals


@pytest.mark.parametrize(
    ("cap_vph", "green", "cycle", "offset"),
    [(1800.0, (10.0, 40.0), 60.0, 7.0), (1800.0, (50.0, 20.0), 60.0, 0.0), (2000.0, (0.0, 25.0), 75.0, 3.0)],
)
def test_oversaturated_signal_discharges_capacity_times_green_ratio(cap_vph, green, cycle, offset):
    gs, ge = green
    g = (ge - gs) % cycle
    net = corridor(
        [300.0, 300.0],
        capacity_vph=[cap_vph, 3600.0],
        signal_cycle_s=[0.0, cycle, 0.0],
        signal_offset_s=[0.0, offset, 0.0],
        green_start_s=[gs, 0.0],
        green_end_s=[ge, 0.0],
    )
    _, q, _, _ = fd(net, 0)
    theory = q * g / cycle
    m = start(net, 1.0, 0, 2, uniform_departures(1.6 * theory, 3000.0))
    t0 = offset + 10 * cycle
    m.advance_to(t0)
    n0 = m.state.n_out[0]
    n_cycles = 30
    m.advance_to(t0 + n_cycles * cycle)
    per_cycle = (m.state.n_out[0] - n0) / n_cycles
    assert m.state.n_in[0] - m.state.n_out[0] > 10  # the approach stayed oversaturated
    assert abs(per_cycle - q * g) <= 1.0  # whole vehicles per green
    assert per_cycle / cycle == pytest.approx(theory, rel=0.05)
    # nothing crosses on red
    exit_phase = (m.veh.enter_t[m.veh.link == 1] - offset) % cycle
    assert np.all(((exit_phase - gs) % cycle) < g)


# ---------------------------------------------------------------- (g) merge


def _merge_shares(caps_vph, dt=1.0):
    net = make_network(
        x=[0.0, 0.0, 150.0, 450.0],
        y=[-100.0, 100.0, 0.0, 0.0],
        src=[0, 1, 2],
        dst=[2, 2, 3],
        length_m=[180.0, 180.0, 300.0],
        lanes=1.0,
        free_speed_mps=15.0,
        capacity_vph=caps_vph,
    )
    q = [fd(net, a)[1] for a in range(3)]
    d1 = uniform_departures(q[0], 2400.0)
    d2 = uniform_departures(q[1], 2400.0)
    m = TrafficModel(net, step_s=dt)
    m.add_trips(np.r_[np.zeros(d1.size), np.ones(d2.size)].astype(int), np.full(d1.size + d2.size, 3), np.r_[d1, d2])
    m.update_routes(1e9)
    m.advance_to(600.0)
    n0 = m.state.n_out.copy()
    m.advance_to(1800.0)
    rates = (m.state.n_out - n0) / 1200.0
    return q, rates, m


def test_symmetric_merge_splits_evenly_at_out_capacity():
    q, rates, m = _merge_shares([1800.0, 1800.0, 1200.0])
    assert rates[2] == pytest.approx(q[2], rel=0.01)
    np.testing.assert_allclose(rates[:2], q[2] / 2, rtol=0.03)


def test_saturated_merge_shares_in_proportion_to_capacity():
    q, rates, m = _merge_shares([1800.0, 900.0, 1200.0])
    assert np.all(m.state.n_in[:2] - m.state.n_out[:2] > 5)  # both in-links queued
    assert rates[2] == pytest.approx(q[2], rel=0.01)
    share = np.array(q[:2]) / (q[0] + q[1]) * q[2]
    np.testing.assert_allclose(rates[:2], share, rtol=0.03)


def test_saturated_merge_uses_full_out_capacity():
    q, rates, m = _merge_shares([1800.0, 900.0, 2400.0])
    assert np.all(m.state.n_in[:2] - m.state.n_out[:2] > 5)  # both in-links queued
    assert rates[2] == pytest.approx(min(q[2], q[0] + q[1]), rel=0.02)
