"""kernels.choice against the plain reference, on random and edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kernels import choice as kc
from tests.reference.choice import ref_choose, ref_decision_key, ref_hash_uniform, ref_mix64


def _params(**kw):
    base = dict(
        theta=0.2,
        shifts=np.array([-1800.0, -900.0, 0.0, 900.0, 1800.0]),
        early_cost_h=6.0,
        late_cost_h=9.0,
        car_cost_km=0.2,
        detour=1.3,
        other_speed=5.0,
        other_wait_s=300.0,
        other_fare=2.5,
        other_penalty=3.0,
        attract_weight=1.0,
        dest_beta_km=0.2,
        n_samples=4,
    )
    base.update(kw)
    return kc.ChoiceParams(**base)


def _world(rng, n_nodes=30, n_zones=4, n_cordons=2, *, empty_zone=False):
    node_zone = rng.integers(0, n_zones, n_nodes).astype(np.int32)
    if empty_zone:
        node_zone[node_zone == 1] = 0
    order = np.argsort(node_zone, kind="stable")
    counts = np.bincount(node_zone, minlength=n_zones)
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    attract = rng.uniform(0.1, 1.0, n_zones)
    if empty_zone:
        attract[2] = 0.0
    share = attract / attract.sum()
    cdf = np.cumsum(share)
    cdf[-1] = 1.0
    with np.errstate(divide="ignore"):
        log_a = np.log(share)
    skim = rng.uniform(60.0, 1500.0, (n_zones + 2, n_nodes))  # more rows than zones, as the route table
    skim[rng.random(skim.shape) < 0.1] = np.inf
    skim_row = rng.permutation(n_zones + 2)[:n_zones].astype(np.int32)
    skim_row[-1] = -1  # a zone without a centroid row: no car there
    return kc.ChoiceWorld(
        skim=skim,
        skim_row=skim_row,
        node_x=rng.uniform(0, 5000, n_nodes),
        node_y=rng.uniform(0, 5000, n_nodes),
        node_zone=node_zone,
        zone_indptr=indptr,
        zone_nodes=order.astype(np.int32),
        attract_cdf=cdf,
        log_attract=log_a,
        node_open=(rng.random(n_nodes) > 0.1).astype(np.uint8),
        node_comp=(rng.random(n_nodes) < 0.1).astype(np.int32),
        cordon=(rng.random((n_cordons, n_nodes)) < 0.4).astype(np.uint8),
        price=rng.uniform(0.0, 8.0, n_cordons),
        price_until=np.where(rng.random(n_cordons) < 0.5, np.inf, 3000.0),
    )


def _inputs(rng, n, n_nodes=30):
    keys = np.empty(n, np.uint64)
    kc.decision_keys(np.uint64(rng.integers(0, 2**63)), np.arange(n, dtype=np.int64), rng.integers(0, 6, n), keys)
    t_pref = rng.uniform(0.0, 5000.0, n)
    return kc.ChoiceInputs(
        key=keys,
        orig=rng.integers(0, n_nodes, n).astype(np.int32),
        dest_node=np.where(rng.random(n) < 0.5, -1, rng.integers(0, n_nodes, n)).astype(np.int32),
        t_pref=t_pref,
        t_min=t_pref + rng.choice([-4000.0, -100.0, 0.0, 500.0, 4000.0], n),
        value=rng.uniform(0.0, 40.0, n),
        vot=rng.uniform(5.0, 30.0, n),
        car=(rng.random(n) < 0.7).astype(np.uint8),
        can_stay=(rng.random(n) < 0.6).astype(np.uint8),
    )


def _compare(par, inp, world):
    out = kc.choose(par, inp, world, kc.empty_outputs(inp.key.shape[0]))
    ref = ref_choose(par, inp, world)
    np.testing.assert_array_equal(out.dest, ref["dest"])
    np.testing.assert_array_equal(out.mode, ref["mode"])
    np.testing.assert_allclose(out.depart, ref["depart"], rtol=0, atol=1e-9, equal_nan=True)
    np.testing.assert_allclose(out.tt, ref["tt"], rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(out.gc, ref["gc"], rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(out.paid, ref["paid"], rtol=1e-12)
    return out


def test_hash_matches_python_integers():
    keys = np.array([0, 1, 2**63 + 5, 2**64 - 1, 123456789], dtype=np.uint64)
    for k in keys:
        assert int(kc.mix64(k)) == ref_mix64(int(k))
        for slot in (0, 7, kc.SLOT_CANDIDATE + 3, kc.SLOT_NODE):
            assert kc.hash_uniform(k, slot) == ref_hash_uniform(int(k), slot)
    out = np.empty(3, np.uint64)
    kc.decision_keys(np.uint64(99), np.array([0, 5, 10**6], np.int64), np.array([0, 3, 5], np.int64), out)
    assert [int(v) for v in out] == [ref_decision_key(99, p, g) for p, g in ((0, 0), (5, 3), (10**6, 5))]


def test_uniforms_are_uniform_and_in_open_interval():
    u = kc.hash_uniforms(np.arange(200_000, dtype=np.uint64), 3, np.empty(200_000))
    assert u.min() > 0.0 and u.max() < 1.0
    hist = np.histogram(u, bins=10, range=(0, 1))[0]
    assert np.all(np.abs(hist - 20_000) < 5 * math.sqrt(20_000))


@pytest.mark.parametrize("seed", range(6))
def test_random_batches_match_reference(seed):
    rng = np.random.default_rng(seed)
    world = _world(rng, empty_zone=seed % 2 == 1)
    inp = _inputs(rng, 300)
    out = _compare(_params(attract_weight=1.0 if seed < 3 else 0.6), inp, world)
    # everybody either stays, or goes somewhere open, no earlier than possible
    go = out.mode >= 0
    assert np.all(world.node_open[out.dest[go]] == 1)
    assert np.all(out.depart[go] >= inp.t_min[go] - 1e-9)
    assert np.all((out.mode[go] == kc.MODE_OTHER) | (inp.car[go] == 1))


def test_empty_batch():
    rng = np.random.default_rng(0)
    out = kc.choose(_params(), _inputs(rng, 0), _world(rng), kc.empty_outputs(0))
    assert out.dest.shape == (0,)


def test_edge_cases_match_reference():
    rng = np.random.default_rng(11)
    world = _world(rng, n_nodes=12, n_zones=3)
    n = 8
    inp = _inputs(rng, n, n_nodes=12)
    # all destinations closed: stayers stay, the others cannot go anywhere
    closed = world._replace(node_open=np.zeros(12, np.uint8))
    out = _compare(_params(), inp, closed)
    assert np.all(out.dest == -1) and np.all(out.mode == kc.STAY)
    # nobody reachable by car: everybody who goes takes the other mode
    no_car = world._replace(skim=np.full_like(world.skim, np.inf))
    out = _compare(_params(), inp._replace(can_stay=np.zeros(n, np.uint8)), no_car)
    assert np.all(out.mode[out.dest >= 0] == kc.MODE_OTHER)
    # the roads cut in pieces: a car only within one piece
    split = world._replace(node_comp=np.arange(12, dtype=np.int32))
    out = _compare(_params(), inp, split)
    assert np.all(out.mode[(out.dest >= 0) & (out.dest != inp.orig)] == kc.MODE_OTHER)
    # already past every shift: leaves at t_min
    late = inp._replace(t_min=inp.t_pref + 10_000.0, can_stay=np.zeros(n, np.uint8))
    out = _compare(_params(), late, world)
    ok = out.dest >= 0
    np.testing.assert_array_equal(out.depart[ok], late.t_min[ok])
    # a single shift, one candidate, zero price
    _compare(_params(shifts=np.array([0.0]), n_samples=1), inp, world._replace(price=np.zeros(2)))


def test_logit_shares_match_the_softmax():
    """Hashed draws reproduce logit probabilities (stay vs one alternative)."""
    rng = np.random.default_rng(5)
    world = _world(rng, n_nodes=6, n_zones=2, n_cordons=1)._replace(node_open=np.ones(6, np.uint8), price=np.zeros(1))
    n = 40_000
    keys = np.empty(n, np.uint64)
    kc.decision_keys(np.uint64(7), np.arange(n, dtype=np.int64), np.zeros(n, np.int64), keys)
    dest = 3 if world.node_zone[3] >= 0 else 4
    inp = kc.ChoiceInputs(
        key=keys,
        orig=np.zeros(n, np.int32),
        dest_node=np.full(n, dest, np.int32),
        t_pref=np.full(n, 1000.0),
        t_min=np.zeros(n),
        value=np.full(n, 10.0),
        vot=np.full(n, 12.0),
        car=np.zeros(n, np.uint8),
        can_stay=np.ones(n, np.uint8),
    )
    par = _params(shifts=np.array([0.0]))
    out = kc.choose(par, inp, world, kc.empty_outputs(n))
    km = math.hypot(world.node_x[dest] - world.node_x[0], world.node_y[dest] - world.node_y[0]) * par.detour / 1000
    gc = 12.0 / 3600 * (par.other_wait_s + km * 1000 / par.other_speed) + par.other_fare + par.other_penalty
    p_go = 1.0 / (1.0 + math.exp(-par.theta * (10.0 - gc)))
    share = float(np.mean(out.mode >= 0))
    assert abs(share - p_go) < 4 * math.sqrt(p_go * (1 - p_go) / n)


def test_choice_does_not_depend_on_the_batch():
    rng = np.random.default_rng(2)
    world = _world(rng)
    inp = _inputs(rng, 200)
    whole = kc.choose(_params(), inp, world, kc.empty_outputs(200))
    perm = rng.permutation(200)[:70]
    part = kc.choose(_params(), kc.ChoiceInputs(*(a[perm] for a in inp)), world, kc.empty_outputs(70))
    np.testing.assert_array_equal(part.dest, whole.dest[perm])
    np.testing.assert_array_equal(part.depart, whole.depart[perm])


@settings(max_examples=30, deadline=None)
@given(p1=st.floats(0.0, 40.0), dp=st.floats(0.0, 40.0), seed=st.integers(0, 10_000))
def test_a_higher_cordon_price_never_adds_a_crossing(p1, dp, seed):
    """Common random numbers: each person who crosses at the higher price also crosses at the lower one."""
    rng = np.random.default_rng(seed)
    world = _world(rng, n_cordons=1)._replace(price_until=np.array([np.inf]))
    inp = _inputs(rng, 150)
    par = _params()

    def crossing(price):
        out = kc.choose(par, inp, world._replace(price=np.array([price])), kc.empty_outputs(150))
        return out.paid > 0

    lo, hi = crossing(p1 + 1e-9), crossing(p1 + dp + 1e-9)
    assert np.all(lo | ~hi)


def test_large_batches_run_in_parallel_with_the_same_choices():
    """A batch above the parallel threshold matches the reference, and its halves chosen apart."""
    rng = np.random.default_rng(42)
    n = kc._PARALLEL_MIN + 1500
    par, world = _params(), _world(rng)
    inp = _inputs(rng, n)
    _compare(par, inp, world)
    whole = kc.choose(par, inp, world, kc.empty_outputs(n))
    h = 1000  # below the threshold: the serial loop
    part = kc.choose(par, kc.ChoiceInputs(*(a[:h] for a in inp)), world, kc.empty_outputs(h))
    for f in kc.ChoiceOutputs._fields:
        np.testing.assert_array_equal(getattr(whole, f)[:h], getattr(part, f), err_msg=f)
