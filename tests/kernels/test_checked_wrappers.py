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
