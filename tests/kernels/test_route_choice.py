"""Route choice under congestion: UXsim's public route-choice verification cases,
written from their descriptions, and the properties the logit choice must keep.

UXsim's cases (``tests/test_verification_route_choice.py`` and
``tests/test_verification_multilane.py`` in its repository) use links with a free
speed of 20 m/s and a jam density of 0.2 veh/m per lane, so a lane carries 0.8 veh/s,
and refresh route choice every 100 s.  Expected values are derived here from the
links, never copied from a run.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from city_models.network import make_network
from twin.traffic import TrafficModel

VF = 20.0  # m/s
Q_LANE = 0.8  # veh/s per lane at 0.2 veh/m/lane jam density (UXsim's default diagram)


def two_routes(short_m, long_m, lanes):
    """orig (0) -> mid1 (1) -> dest (3) and orig -> mid2 (2) -> dest; links 0, 1 are the
    first route, 2, 3 the second."""
    return make_network(
        x=[0.0, 1.0, -1.0, 0.0],
        y=[0.0, 1.0, 1.0, 2.0],
        src=[0, 1, 0, 2],
        dst=[1, 3, 2, 3],
        length_m=[short_m, short_m, long_m, long_m],
        lanes=lanes,
        free_speed_mps=VF,
    )


def run(net, rate, t_dem, t_max, *, seed=0, update_s=100.0, **kw):
    """Uniform demand orig -> dest at ``rate`` veh/s over [0, t_dem); routes refreshed every
    ``update_s``.  Returns the model and the share of the first route per refresh window."""
    m = TrafficModel(net, step_s=1.0, route_seed=seed, **kw)
    dep = np.arange(int(round(t_dem * rate))) / rate
    m.add_trips(np.zeros(dep.size, np.int32), np.full(dep.size, 3, np.int32), dep)
    shares = []
    t = 0.0
    while t < t_max:
        m.update_routes(update_s)
        before = m.state.n_in.copy()
        t += update_s
        m.advance_to(t)
        d = m.state.n_in - before
        if d[0] + d[2] > 0:
            shares.append(d[0] / (d[0] + d[2]))
    return m, np.array(shares)


def route_times(m, net):
    """Mean travel time of the completed trips on each route (told apart by distance), and
    the first route's share."""
    tt = m.veh.arrive - m.veh.depart
    done = np.isfinite(tt)
    first = np.isclose(m.veh.dist, net.length_m[0] + net.length_m[1])
    return tt[done & first].mean(), tt[done & ~first].mean(), first[done].mean()


def link_route_times(m):
    """Each route's time as the sum of its links' mean traversal times (as UXsim's test
    measures it), and the first route's share of the vehicles entering."""
    ls = m.state
    mean = ls.acc_tt / np.maximum(ls.acc_out, 1)
    return mean[0] + mean[1], mean[2] + mean[3], ls.n_in[0] / (ls.n_in[0] + ls.n_in[2])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_two_equal_routes_split_evenly_with_equal_times(seed):
    """UXsim's ``2route_equal``: two identical 2 km routes, 0.8 veh/s for 1,500 s: each takes
    half (within 10 %), both take the free-flow time 100 s, and everyone arrives."""
    net = two_routes(1000.0, 1000.0, 1)
    m, _ = run(net, 0.8, 1500.0, 2000.0, seed=seed)
    assert m.counts()["arrived"] == m.n_vehicles == 1200
    t1, t2, share = link_route_times(m)
    assert share == pytest.approx(0.5, abs=0.05)
    free = 2 * 1000.0 / VF
    assert t1 == pytest.approx(free, rel=0.1) and t2 == pytest.approx(free, rel=0.1)
    assert t1 == pytest.approx(t2, rel=0.1)


@pytest.mark.parametrize("rate", [0.2, 0.6, 1.0, 1.4])
def test_equal_parallel_routes_split_evenly_at_every_load(rate):
    """Two identical single-lane routes share the demand evenly whether it is light, near
    one route's capacity or above it (then both queue alike)."""
    net = two_routes(1000.0, 1000.0, 1)
    m, shares = run(net, rate, 1200.0, 4000.0)
    _, _, share = link_route_times(m)
    assert share == pytest.approx(0.5, abs=0.05)
    assert np.all(np.abs(shares - 0.5) < 0.2)  # and in every window, not only on average


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_short_route_with_bottleneck_and_long_route_reach_equal_times(seed):
    """UXsim's ``route_choice_one_is_too_long_and_another_has_bottleneck``: a 2 km route whose
    second link has one lane (0.8 veh/s) and a 4 km route of two lanes, 1.6 veh/s for
    3,000 s.  At equilibrium the short route carries its bottleneck's capacity with a queue
    that makes it as slow as the long route at free flow (200 s): both routes' mean times
    within 10 % of that, the demand above the bottleneck goes long, and no queue is left
    at the origin."""
    net = two_routes(1000.0, 2000.0, [2, 1, 2, 2])
    m, shares = run(net, 1.6, 3000.0, 4500.0, seed=seed)
    assert m.counts()["arrived"] == m.n_vehicles
    t_short, t_long, share = route_times(m, net)
    equilibrium = 2 * 2000.0 / VF
    assert t_short == pytest.approx(equilibrium, rel=0.1)
    assert t_long == pytest.approx(equilibrium, rel=0.1)
    cap = Q_LANE * 1  # the bottleneck
    assert share == pytest.approx(cap / 1.6, abs=0.06)
    # no all-or-nothing flip-flop: once the first queue has formed (after 200 s), each
    # 100 s window's share stays well inside (0, 1) while demand lasts
    assert np.all((shares[2:30] > 0.15) & (shares[2:30] < 0.85))


def test_a_much_longer_route_is_not_taken():
    """UXsim's ``2route_one_is_too_long``: with a 4 km and a 2 km route and no congestion,
    (almost) everyone takes the short one at free-flow time."""
    net = two_routes(1000.0, 2000.0, 1)
    m, _ = run(net, 0.8, 1500.0, 2500.0)
    tt = m.veh.arrive - m.veh.depart
    short = np.isclose(m.veh.dist, 2000.0)
    assert short.mean() > 0.99
    assert tt[short].mean() == pytest.approx(2 * 1000.0 / VF, rel=0.05)


def test_logit_shares_follow_the_cost_difference():
    """With fixed link weights, the share of a route costing ``d`` s more than the band of the
    best is ``1 / (1 + exp(d / scale))`` (a binary logit), for several differences."""
    scale = 30.0
    for extra in (10.0, 30.0, 60.0):
        L2 = 1000.0 + extra * VF / 2  # the second route's two links are each extra/2 s slower
        net = two_routes(1000.0, L2, 1)
        m = TrafficModel(net, step_s=1.0, route_dispersion_s=scale, route_tolerance=0.0)
        n = 20000
        m.add_trips(np.zeros(n, np.int32), np.full(n, 3, np.int32), np.zeros(n))
        m.update_routes(1e9)
        m.advance_ticks(1)
        # the release puts everyone in the origin queue; each one's choice is made when it
        # is the head: read the choices off the kernel's rule directly instead of driving them
        from kernels.route_choice import choice_draw, choice_weight

        w2 = choice_weight(m.routes.weight[2] + m.routes.pot[0, 2], m.routes.weight[0] + m.routes.pot[0, 1], scale)
        p_long = w2 / (1.0 + w2)
        assert p_long == pytest.approx(1.0 / (1.0 + math.exp(extra / scale)), rel=1e-12)
        seed = m.routes.seed[0]
        draws = np.array([choice_draw(seed, v, -1) for v in range(n)])
        assert (draws < 1.0 / (1.0 + w2)).mean() == pytest.approx(1 - p_long, abs=0.01)


def test_choices_are_reproducible_and_keyed_to_the_seed():
    """Same seed: identical vehicle-by-vehicle results; another seed: other draws, same
    statistics."""
    net = two_routes(1000.0, 2000.0, [2, 1, 2, 2])
    a, _ = run(net, 1.6, 1500.0, 2500.0, seed=5)
    b, _ = run(net, 1.6, 1500.0, 2500.0, seed=5)
    c, _ = run(net, 1.6, 1500.0, 2500.0, seed=6)
    np.testing.assert_array_equal(a.veh.arrive, b.veh.arrive)
    np.testing.assert_array_equal(a.veh.dist, b.veh.dist)
    assert not np.array_equal(a.veh.dist, c.veh.dist)


@pytest.mark.parametrize(
    "kw, field",
    [
        ({"route_dispersion_s": -1.0}, "dispersion"),
        ({"route_dispersion_s": math.inf}, "dispersion"),
        ({"travel_time_smoothing": 0.0}, "smoothing"),
        ({"travel_time_smoothing": 1.5}, "smoothing"),
        ({"route_seed": -3}, "seed"),
    ],
)
def test_bad_route_settings_are_named(kw, field):
    with pytest.raises(ValueError, match=field):
        TrafficModel(two_routes(1000.0, 1000.0, 1), **kw)
