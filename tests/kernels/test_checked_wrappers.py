"""The kernels' public wrappers refuse bad input with an InputError naming the argument
(stumpy's layering: a checked wrapper over a private ``@njit`` kernel)."""

from __future__ import annotations

import numpy as np
import pytest

from basics.errors import InputError
from benchmarks.cases import build_case
from kernels import traffic as k
from kernels import traffic_state as ks
from twin.traffic import TrafficModel


@pytest.fixture(scope="module")
def model() -> TrafficModel:
    return TrafficModel(build_case("small").network)


def _advance(m: TrafficModel, **change):
    args = {"links": m.links, "nodes": m.nodes, "ls": m.state, "veh": m.veh, "routes": m.routes}
    args.update(change)
    return k.advance(1, m.dt, **args)


def test_advance_accepts_a_model_and_refuses_bad_fields(model):
    assert _advance(model) == 0
    with pytest.raises(InputError, match=r"links\.headway must be a numpy array of float64, got dtype float32"):
        _advance(model, links=model.links._replace(headway=model.links.headway.astype(np.float32)))
    with pytest.raises(InputError, match=r"ls\.head must have 360 entries, got 359"):
        _advance(model, ls=model.state._replace(head=model.state.head[:-1]))
    with pytest.raises(InputError, match=r"nodes\.in_indptr must have 101 entries"):
        _advance(model, nodes=model.nodes._replace(in_indptr=model.nodes.in_indptr[:-1]))
    with pytest.raises(InputError, match=r"routes\.pot must have shape \(\*, 100\)"):
        _advance(model, routes=model.routes._replace(pot=np.zeros((1, 99))))
    with pytest.raises(InputError, match=r"veh\.ihot must have shape \(0, 4\)"):
        _advance(model, veh=model.veh._replace(ihot=np.zeros((0, 3), np.int32)))
    with pytest.raises(InputError, match="nodes must be a Nodes, got tuple"):
        _advance(model, nodes=tuple(model.nodes))
    with pytest.raises(InputError, match="n_ticks must be an integer >= 0"):
        k.advance(-1, model.dt, model.links, model.nodes, model.state, model.veh, model.routes)
    with pytest.raises(InputError, match="dt must be > 0"):
        k.advance(1, 0.0, model.links, model.nodes, model.state, model.veh, model.routes)


def test_state_kernels_refuse_bad_arguments(model):
    m = model
    with pytest.raises(InputError, match="out must have 360 entries, got 3"):
        ks.link_travel_times(m.links, m.state, m.veh, m.now, np.empty(3))
    with pytest.raises(InputError, match="now must be a finite number"):
        ks.link_travel_times(m.links, m.state, m.veh, np.nan, np.empty(m.network.n_links))
    with pytest.raises(InputError, match="link must be a numpy array of int32, got dtype int64"):
        ks.status_counts(np.zeros(3, np.int64), np.zeros(6, np.int64))
    with pytest.raises(InputError, match="out must have 6 entries"):
        ks.status_counts(np.zeros(3, np.int32), np.zeros(5, np.int64))
    cand = np.zeros(4, np.int32)
    with pytest.raises(InputError, match=r"released must be in 0\.\.ls\.cursor\[0\]"):
        ks.destinations_in_use(m.veh, m.state, 0.0, cand, 0, 5, np.zeros(1, bool))
    with pytest.raises(InputError, match="out must be a numpy array of bool"):
        ks.destinations_in_use(m.veh, m.state, 0.0, cand, 0, 0, np.zeros(1, np.int8))
    with pytest.raises(InputError, match=r"pot must have shape \(\*, 100\)"):
        ks.retry_no_route(m.veh, m.state, np.zeros((2, 3)))
    with pytest.raises(InputError, match=r"ls\.vs_t must be a numpy array of float64"):
        ks.flush_vehicle_seconds(m.state._replace(vs_t=np.zeros(m.network.n_links, np.int64)), 0.0)


# ------------------------------------------------------------------------- routing


def _graph_and_weight():
    from kernels.routing import graph_of

    net = build_case("small").network
    return graph_of(net), net.length_m / 10.0


def test_routing_wrappers_refuse_bad_arguments():
    from kernels.routing import (
        LinkChanges,
        changed_links,
        compute_route_table,
        compute_tree_to,
        route_table,
        stale_rows,
    )

    g, w = _graph_and_weight()
    n, m = g.n_nodes, g.n_links
    dests = np.array([0, 5], np.int32)
    ok = {"active": np.ones(2, bool), "next_link_out": np.empty((0, n), np.int32), "dist_out": np.empty((2, n))}
    route_table(g, dests, w, **ok)
    with pytest.raises(InputError, match=r"dests has an index outside 0\.\.99: dests\[1\] = 100"):
        route_table(g, np.array([0, 100]), w, **ok)
    with pytest.raises(InputError, match=r"dist_out must have shape \(2 or 0, n_nodes=100\)"):
        route_table(g, dests, w, **(ok | {"dist_out": np.empty((1, n))}))
    with pytest.raises(InputError, match="next_link_out must be a int32 numpy array, got int64"):
        route_table(g, dests, w, **(ok | {"next_link_out": np.empty((2, n), np.int64)}))
    with pytest.raises(InputError, match=r"active must have shape \(2,\)"):
        route_table(g, dests, w, **(ok | {"active": np.ones(3, bool)}))
    with pytest.raises(InputError, match="weight must be a float64"):
        route_table(g, dests, w.astype(np.float32), **ok)
    with pytest.raises(InputError, match="dest 100 is outside"):
        compute_tree_to(g, 100, w)
    _, pot = compute_route_table(g, dests, w)
    changes = changed_links(w[None, :], w * 2)
    good = {"active": np.ones(2, bool), "row_basis": np.zeros(2, np.int64), "basis_weights": w[None, :]}
    stale_rows(g, pot, w * 2, changes, out=np.zeros(2, bool), **good)
    with pytest.raises(InputError, match=r"row_basis has an index outside 0\.\.0"):
        stale_rows(g, pot, w * 2, changes, out=np.zeros(2, bool), **(good | {"row_basis": np.ones(2, np.int64)}))
    with pytest.raises(InputError, match="changes.links must be an int32 array"):
        stale_rows(g, pot, w * 2, LinkChanges(changes.indptr, changes.links[:-1]), out=np.zeros(2, bool), **good)
    with pytest.raises(InputError, match=r"pot must be a float64 array of shape \(rows, n_nodes=100\)"):
        stale_rows(g, pot[:, :-1], w * 2, changes, out=np.zeros(2, bool), **good)
    with pytest.raises(InputError, match=f"basis_weights must have n_links={m} columns"):
        stale_rows(g, pot, w * 2, changes, out=np.zeros(2, bool), **(good | {"basis_weights": np.ones((1, 3))}))
    with pytest.raises(InputError, match=r"out must be a writeable bool array of shape \(2,\)"):
        stale_rows(g, pot, w * 2, changes, out=np.zeros(3, bool), **good)


# -------------------------------------------------------------------------- choice


def test_choice_wrappers_refuse_bad_arguments():
    from kernels import choice as kc
    from tests.kernels.test_choice import _inputs, _params, _world

    rng = np.random.default_rng(1)
    par, world, inp = _params(), _world(rng), _inputs(rng, 10)
    out = kc.empty_outputs(10)
    kc.choose(par, inp, world, out)
    with pytest.raises(InputError, match=r"inp\.orig has an index outside 0\.\.29: inp\.orig\[0\] = 30"):
        kc.choose(par, inp._replace(orig=np.full(10, 30, np.int32)), world, out)
    with pytest.raises(InputError, match=r"inp\.vot must have 10 entries, got 9"):
        kc.choose(par, inp._replace(vot=inp.vot[:-1]), world, out)
    with pytest.raises(InputError, match=r"out\.mode must be a numpy array of int8, got dtype int32"):
        kc.choose(par, inp, world, out._replace(mode=np.zeros(10, np.int32)))
    with pytest.raises(InputError, match=r"world\.skim must have shape \(\*, 30\)"):
        kc.choose(par, inp, world._replace(skim=world.skim[:, :-1]), out)
    with pytest.raises(InputError, match=r"world\.skim_row has an index outside -1\.\."):
        kc.choose(par, inp, world._replace(skim_row=np.full_like(world.skim_row, 99)), out)
    with pytest.raises(InputError, match="par.n_samples must be an integer >= 1"):
        kc.choose(par._replace(n_samples=0), inp, world, out)
    with pytest.raises(InputError, match="out must have 4 entries, got 3"):
        kc.hash_uniforms(np.zeros(4, np.uint64), 0, np.empty(3))
    with pytest.raises(InputError, match="base must be a numpy.uint64"):
        kc.decision_keys(7, np.zeros(2, np.int64), np.zeros(2, np.int64), np.empty(2, np.uint64))
    with pytest.raises(InputError, match="leg must have one entry per person"):
        kc.decision_keys(np.uint64(7), np.zeros(2, np.int64), np.zeros(3, np.int64), np.empty(2, np.uint64))


# ------------------------------------------------------------- agents, assimilation


def test_agents_and_assimilation_wrappers_refuse_bad_arguments():
    from kernels.agents import PersonTrips, Positions, VehicleView, trip_positions
    from kernels.assimilation import enkf_update, sensor_crossings

    n = 4
    trips = PersonTrips(
        mode=np.zeros(n, np.int8),
        vid=np.arange(n),
        dep=np.zeros(n),
        arr_known=np.full(n, np.nan),
        dest=np.zeros(n, np.int32),
        purpose=np.zeros(n, np.int8),
        place=np.zeros(n, np.int8),
        node=np.zeros(n, np.int32),
    )
    veh = VehicleView(np.full(n, np.nan), np.full(n, -1, np.int32), np.zeros(3, np.int32))
    out = Positions(np.empty(2), np.empty(2, np.int8), np.empty(2, np.int32))
    trip_positions(np.array([0, 3]), trips, veh, 1.0, out)
    with pytest.raises(InputError, match=r"persons has an index outside 0\.\.3: persons\[1\] = 4"):
        trip_positions(np.array([0, 4]), trips, veh, 1.0, out)
    with pytest.raises(InputError, match=r"trips\.vid \(of a car trip\) has an index outside 0\.\.3"):
        trip_positions(np.array([0, 3]), trips._replace(vid=np.array([0, 1, 2, 9])), veh, 1.0, out)
    with pytest.raises(InputError, match=r"trips\.dep must be a numpy array of float64"):
        trip_positions(np.array([0]), trips._replace(dep=np.zeros(n, np.int64)), veh, 1.0, out)
    with pytest.raises(InputError, match=r"out\.state must have 2 entries"):
        trip_positions(np.array([0, 1]), trips, veh, 1.0, out._replace(state=np.empty(3, np.int8)))
    with pytest.raises(InputError, match="positive"):
        enkf_update(np.zeros((3, 1)), np.zeros((3, 2)), np.zeros(2), np.zeros(2), np.zeros((3, 2)))
    g, w = _graph_and_weight()
    with pytest.raises(InputError, match="graph must be a kernels.routing.Graph"):
        sensor_crossings(tuple(g), [0], [0], np.zeros((1, g.n_nodes)), w, np.ones(g.n_links), np.full(g.n_links, -1))
