"""Agreement with a peer: UXsim (C++ engine, deltan=1) on the same grid and trips."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from city_models import make_network
from twin.traffic import simulate

uxsim = pytest.importorskip("uxsim")


def _grid(n: int, L: float, lanes: int, v: float):
    idx = np.arange(n * n).reshape(n, n)
    src, dst = [], []
    for a, b in [(idx[:-1, :], idx[1:, :]), (idx[:, :-1], idx[:, 1:])]:
        src += [a.ravel(), b.ravel()]
        dst += [b.ravel(), a.ravel()]
    src, dst = np.concatenate(src), np.concatenate(dst)
    xx, yy = np.meshgrid(np.arange(n) * L, np.arange(n) * L, indexing="ij")
    return make_network(x=xx.ravel(), y=yy.ravel(), src=src, dst=dst, length_m=L, lanes=lanes, free_speed_mps=v)


def _trips(n_nodes, n, horizon, seed):
    rng = np.random.default_rng(seed)
    o = rng.integers(0, n_nodes, n)
    d = rng.integers(0, n_nodes, n)
    keep = o != d
    dep = np.sort(rng.uniform(0, horizon, keep.sum()))
    return SimpleNamespace(origin=o[keep], destination=d[keep], depart_s=dep)


def _uxsim_arrivals(net, trips, tmax):
    W = uxsim.World(
        name="peer",
        deltan=1,
        tmax=tmax,
        print_mode=0,
        save_mode=0,
        show_mode=0,
        cpp=True,
        random_seed=0,
        duo_update_time=300,
    )
    for i in range(net.n_nodes):
        W.addNode(str(i), float(net.x[i]), float(net.y[i]))
    for k in range(net.n_links):
        W.addLink(
            f"l{k}",
            str(int(net.src[k])),
            str(int(net.dst[k])),
            length=float(net.length_m[k]),
            free_flow_speed=float(net.free_speed_mps[k]),
            jam_density_per_lane=0.2,
            number_of_lanes=int(net.lanes[k]),
        )
    vehs = [
        W.addVehicle(str(int(o)), str(int(d)), float(t))
        for o, d, t in zip(trips.origin, trips.destination, trips.depart_s, strict=False)
    ]
    W.exec_simulation()
    return np.array([v.arrival_time * W.DELTAT if v.state == "end" and v.arrival_time >= 0 else np.nan for v in vehs])


@pytest.mark.parametrize("load", [1500, 4000])
def test_mean_travel_time_within_10_percent_of_uxsim(load):
    net = _grid(8, 200.0, 1, 50 / 3.6)
    trips = _trips(net.n_nodes, load, 1800.0, seed=load)
    tmax = 1800.0 + 3600.0
    ours = simulate(net, trips, step_s=1.0, duration_s=tmax, reroute_s=300.0)
    theirs = _uxsim_arrivals(net, trips, tmax)
    assert ours.completed == np.isfinite(theirs).sum() == trips.origin.size
    tt_ours = np.nanmean(ours.travel_time_s)
    tt_theirs = np.nanmean(theirs - trips.depart_s)
    assert abs(tt_ours / tt_theirs - 1) < 0.10, (tt_ours, tt_theirs)
