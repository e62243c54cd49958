"""Coupling to traffic, both ways: a crash lowers its link's outflow until cleared; units drive the
congested network."""

from __future__ import annotations

import numpy as np

from tests.twin.emergency.helpers import FIXED, line_city, medical_only, scenario
from twin.model import Twin

CRASH = {
    "units": {"police": 1, "tow": 1},
    "on_scene": 600,
    "transport": 0.0,
    "cleared_by": "tow",
    "clearance": "20min",
    "capacity_factor": 0.5,
    "severity": {1: 1.0},
}


def _trips(folder, n, *, origin=0, dest=1, horizon=3600.0):
    path = folder / "trips.csv"
    dep = np.linspace(0.0, horizon, n, endpoint=False)
    path.write_text(
        "trip_id,origin,destination,depart_s\n" + "".join(f"{k},{origin},{dest},{t:.3f}\n" for k, t in enumerate(dep))
    )
    return path


def test_crash_on_a_busy_link_lowers_outflow_then_recovers(tmp_path):
    # 3000 veh/h into a link of 2400 veh/h: it discharges at capacity all the time
    trips = _trips(tmp_path, 3000)
    sc = scenario(
        {
            **FIXED,
            "types": {"traffic_crash": CRASH},
            "drill": [{"at": "20min", "type": "traffic_crash", "location": "Main Street", "severity": 1}],
        },
        {
            "stations": [
                {"name": "Police", "kind": "police", "node": 4, "units": {"police": 1}},
                {"name": "Depot", "kind": "tow", "node": 4, "units": {"tow": 1}},
            ]
        },
        duration="80min",
        step="1s",
        demand={"trips": str(trips)},
    )
    city = line_city(places={"Main Street": np.array([0])})
    tw = Twin(sc, city=city)
    tw.run()
    em = tw.components["emergency"]
    inc = em.incidents[0]
    # tow: 60 s call + 30 s turnout + 4 links (400 s) -> on scene at 1690; cleared 20 min later
    assert inc.t_clear_start == 1200 + 60 + 30 + 400
    assert inc.t_clear_end == inc.t_clear_start + 1200 == 2890
    ds = tw.results()
    out = ds.link_outflow.sel(link=0).values.astype(float)
    t_end = ds.time.values
    cap = 300.0 / tw.traffic.links.headway[0]  # vehicles per 5-min interval at full capacity
    assert cap == 200.0
    before = out[(t_end <= 1200) & (t_end > 300)]
    during = out[(t_end - 300 >= 1200) & (t_end <= 2890)]
    after = out[(t_end - 300 >= 2890) & (t_end <= 4500)]
    assert before.size >= 2 and during.size >= 4 and after.size >= 3
    np.testing.assert_allclose(before, cap, atol=1)
    # never above the reduced capacity while it lasts, and at it once the link has settled
    # (the first minutes run below it: the kernel's slower backward wave for the reduced
    # fundamental diagram briefly holds back entries)
    assert (during <= cap / 2 + 1).all()
    np.testing.assert_allclose(during[-3:], cap / 2, atol=1)
    np.testing.assert_allclose(after, cap, atol=1)  # and back after clearance
    # the queue at the origin grew while the crash lasted
    wait = ds.network_waiting.values
    assert wait[t_end == 2700][0] > wait[t_end == 1200][0] + 200


def _jammed_run(tmp_path, policy):
    trips = _trips(tmp_path, 3000, dest=2)  # through link 0 (0->1) and link 2 (1->2)
    sc = scenario(
        {
            **FIXED,
            "policy": policy,
            "types": {"medical": medical_only(on_scene=60)},
            "drill": [{"at": "50min", "type": "medical", "location": 1, "severity": 1}],
        },
        {
            "stations": [
                {"name": "S", "kind": "ems", "node": 0, "units": {"ambulance": 1}},
                {"name": "T", "kind": "ems", "node": 2, "units": {"ambulance": 1}},
            ]
        },
        duration="75min",
        step="1s",
        demand={"trips": str(trips)},
    )
    tw = Twin(sc, city=line_city())
    tw.link_control.apply([2], source="road works", capacity_factor=0.3)  # a bottleneck after link 0
    tw.run()
    st = tw.traffic.state
    assert st.n_in[0] - st.n_out[0] > 150  # link 0 is jammed by the queue behind the works
    return tw.components["emergency"].incidents[0]


def test_units_drive_the_congested_network(tmp_path):
    """Both units are one link from the call; the one behind the jam takes far longer than free flow,
    so the default policy (current travel time) sends the other, a congestion-blind one does not."""
    inc = _jammed_run(tmp_path, "closest")
    assert inc.first_unit == 1 and inc.first_travel_s == 100.0  # T, over the empty link 2->1
    inc = _jammed_run(tmp_path, "closest_free_flow")  # a tie by free flow: the lower id, S
    assert inc.first_unit == 0 and inc.first_travel_s > 200  # over the jammed link 0->1


def test_emergency_speed_factor_shortens_trips():
    base = {
        "call_delay": 0,
        "turnout": 0,
        "types": {"medical": medical_only(on_scene=60)},
        "drill": [{"at": 0, "type": "medical", "location": 3, "severity": 1}],
    }
    res = {"stations": [{"name": "S", "kind": "ems", "node": 0, "units": {"ambulance": 1}}]}
    times = []
    for factor in (1.0, 2.0):
        tw = Twin(scenario({**base, "emergency_speed_factor": factor}, res, duration="30min"), city=line_city())
        tw.run()
        times.append(tw.components["emergency"].incidents[0].first_travel_s)
    assert times == [300.0, 150.0]
