"""Golden event logs: small hand-made cases whose every event time follows from the inputs.

The line city has 100 s links (1000 m at 10 m/s), no traffic, emergency speed factor 1,
call delay 60 s and turnout 30 s, so each time below is a sum a person can check.
"""

from __future__ import annotations

import math

import numpy as np

from tests.twin.emergency.helpers import FIXED, ladder_city, line_city, medical_only, scenario
from twin.model import Twin


def _log(tw):
    return [(t, ev, i, u, node) for t, ev, i, u, node, _ in tw.components["emergency"].log.rows]


def test_one_unit_two_incidents_the_second_waits():
    sc = scenario(
        {
            **FIXED,
            "types": {"medical": medical_only(on_scene=600)},
            "drill": [
                {"at": 100, "type": "medical", "location": 1, "severity": 1},
                {"at": 200, "type": "medical", "location": 2, "severity": 1},
            ],
        },
        {
            "stations": [{"name": "S", "kind": "ems", "node": 0, "units": {"ambulance": 1}}],
            "hospitals": [{"name": "H", "node": 4, "beds": 10}],
        },
    )
    tw = Twin(sc, city=line_city())
    tw.run()
    golden = [
        (100.0, "occurred", 0, -1, 1),
        (160.0, "reported", 0, -1, 1),  # + call delay
        (160.0, "dispatched", 0, 0, 0),  # the only unit, free at its station
        (190.0, "en_route", 0, 0, 0),  # + turnout
        (200.0, "occurred", 1, -1, 2),
        (260.0, "reported", 1, -1, 2),
        (260.0, "queued", 1, -1, 2),  # no free unit: the second call waits
        (290.0, "on_scene", 0, 0, 1),  # one link, 100 s
        (890.0, "work_done", 0, -1, 1),  # + 600 s on scene
        (890.0, "scene_closed", 0, -1, 1),
        (890.0, "returning", -1, 0, 1),
        (890.0, "cleared", 0, -1, 1),
        (890.0, "dispatched", 1, 0, 1),  # sent on at once from the first scene, rolling: no turnout
        (890.0, "en_route", 1, 0, 1),
        (990.0, "on_scene", 1, 0, 2),  # one more link
        (1590.0, "work_done", 1, -1, 2),
        (1590.0, "scene_closed", 1, -1, 2),
        (1590.0, "returning", -1, 0, 2),
        (1590.0, "cleared", 1, -1, 2),
        (1790.0, "at_station", -1, 0, 0),  # two links home
    ]
    assert _log(tw) == golden
    ds = tw.results()
    np.testing.assert_allclose(ds.incident_response_s.values, [290 - 160, 990 - 260])
    np.testing.assert_allclose(ds.incident_wait_s.values, [0, 890 - 260])
    np.testing.assert_array_equal(ds.incident_units_sent.values, [1, 1])
    assert list(ds.incident_status.values) == ["cleared", "cleared"]
    # busy from each dispatch to its release: 160-890 and 890-1590
    assert ds.unit_busy_s.values[0] == 730 + 700
    kp = tw.kpis()
    assert kp["incidents_waited"] == 1 and kp["incidents_open"] == 0


def test_crash_with_tow_clearance_and_capacity_change():
    """Police and tow; the link's capacity is halved from the crash until tow + 300 s clearance."""
    crash = {
        "units": {"police": 1, "tow": 1},
        "on_scene": 600,
        "transport": 0.0,
        "cleared_by": "tow",
        "clearance": 300,
        "capacity_factor": 0.5,
        "severity": {1: 1.0},
    }
    sc = scenario(
        {
            **FIXED,
            "types": {"traffic_crash": crash},
            "drill": [{"at": 0, "type": "traffic_crash", "location": "Crash Road", "severity": 1}],
        },
        {
            "stations": [
                {"name": "Police", "kind": "police", "node": 0, "units": {"police": 1}},
                {"name": "Depot", "kind": "tow", "node": 4, "units": {"tow": 1}},
            ]
        },
    )
    city = line_city(places={"Crash Road": np.array([4])})  # node 2 -> 3
    tw = Twin(sc, city=city)
    headway0 = tw.traffic.links.headway[4]
    tw.run_until(100)
    assert tw.traffic.links.headway[4] == 2 * headway0  # capacity halved since t=0
    tw.run()
    golden = [
        (0.0, "occurred", 0, -1, 2),
        (0.0, "link_change", 0, -1, 2),
        (60.0, "reported", 0, -1, 2),
        (60.0, "dispatched", 0, 0, 0),  # police from node 0: 2 links
        (60.0, "dispatched", 0, 1, 4),  # tow from node 4: 2 links
        (90.0, "en_route", 0, 0, 0),
        (90.0, "en_route", 0, 1, 4),
        (290.0, "on_scene", 0, 0, 2),
        (290.0, "on_scene", 0, 1, 2),  # tow on scene: clearance starts
        (590.0, "road_cleared", 0, -1, 2),  # + 300 s clearance
        (590.0, "link_change", 0, -1, 2),  # capacity restored
        (590.0, "returning", -1, 1, 2),  # the tow's job is done
        (790.0, "at_station", -1, 1, 4),
        (890.0, "work_done", 0, -1, 2),  # police: 600 s from the first arrival
        (890.0, "scene_closed", 0, -1, 2),
        (890.0, "returning", -1, 0, 2),
        (890.0, "cleared", 0, -1, 2),
        (1090.0, "at_station", -1, 0, 0),
    ]
    assert _log(tw) == golden
    assert tw.traffic.links.headway[4] == headway0  # restored exactly
    ds = tw.results()
    assert ds.incident_time.sel(stage="road_cleared").values[0] == 590.0
    assert ds.incident_time.sel(stage="cleared").values[0] == 890.0
    assert ds.incident_links.values[0] == "4"


def test_patient_transport_to_the_nearest_hospital_with_a_free_bed():
    med = medical_only(on_scene=300, transport=1.0, handover=120, hospital_stay="1h")
    sc = scenario(
        {
            **FIXED,
            "types": {"medical": med},
            "drill": [
                {"at": 0, "type": "medical", "location": 1, "severity": 1},
                {"at": 1000, "type": "medical", "location": 1, "severity": 1},
            ],
        },
        {
            "stations": [{"name": "S", "kind": "ems", "node": 0, "units": {"ambulance": 1}}],
            "hospitals": [{"name": "Near", "node": 2, "beds": 1}, {"name": "Far", "node": 4, "beds": 5}],
        },
    )
    tw = Twin(sc, city=line_city())
    tw.run()
    em = tw.components["emergency"]
    rows = [
        (t, ev, i, u, d)
        for t, ev, i, u, _, d in em.log.rows
        if ev in ("transport", "at_hospital", "handover_done", "cleared")
    ]
    assert rows == [
        (490.0, "transport", 0, 0, "Near"),  # 60 + 30 + 100 on the way + 300 on scene
        (590.0, "at_hospital", 0, 0, "Near"),
        (710.0, "handover_done", 0, 0, ""),  # + 120 s handover
        (710.0, "cleared", 0, -1, ""),  # cleared once the patient is handed over
        # second patient: Near's only bed is taken until 590 + 1 h, so Far (3 links)
        (1490.0, "transport", 1, 0, "Far"),
        (1790.0, "at_hospital", 1, 0, "Far"),
        (1910.0, "handover_done", 1, 0, ""),
        (1910.0, "cleared", 1, -1, ""),
    ]
    ds = tw.results()
    assert list(ds.incident_hospital.values) == ["Near", "Far"]
    assert ds.hospital_admitted.values.tolist() == [1, 1]
    i = int(np.searchsorted(ds.time.values, 1800))
    assert ds.hospital_occupied.values[i].tolist() == [1, 1]


def test_flood_closes_the_bridge_and_the_unit_en_route_reroutes():
    """An ambulance on its way over Bridge A turns back when a flood closes it (t=150)."""
    flood = {"units": {"police": 1}, "on_scene": "2h", "severity": {1: 1.0}}
    sc = scenario(
        {
            **FIXED,
            "types": {"medical": medical_only(on_scene=60), "flood": flood},
            "drill": [
                {"at": 0, "type": "medical", "location": 2, "severity": 1},
                {"at": 150, "type": "flood", "location": "Bridge A", "severity": 1},
            ],
        },
        {
            "stations": [
                {"name": "S", "kind": "ems", "node": 0, "units": {"ambulance": 1}},
                {"name": "P", "kind": "police", "node": 3, "units": {"police": 1}},
            ]
        },
    )
    tw = Twin(sc, city=ladder_city())
    em = tw.components["emergency"]
    while tw.env.peek() < 1000:
        tw.env.step()
        em.check_invariants()
    log = [(t, ev, i, u) for t, ev, i, u, _, _ in em.log.rows if u == 0]
    assert log[:3] == [(60.0, "dispatched", 0, 0), (90.0, "en_route", 0, 0), (150.0, "rerouted", 0, 0)]
    # it finishes link 0->1 (190), drives back (290) and round by Bridge B (3 links): 590
    assert (590.0, "on_scene", 0, 0) in log
    assert tw.traffic.links.is_open[[2, 3]].tolist() == [0, 0]
    # the police unit for the flood never crosses the closed bridge either
    assert math.isfinite(em.incidents[1].t_on_scene)


def test_external_closure_is_seen_before_the_unit_reaches_it():
    """A closure by someone else (road works) re-routes the unit at the next link watch."""
    sc = scenario(
        {
            **FIXED,
            "types": {"medical": medical_only(on_scene=60)},
            "drill": [{"at": 0, "type": "medical", "location": 2, "severity": 1}],
        },
        {"stations": [{"name": "S", "kind": "ems", "node": 0, "units": {"ambulance": 1}}]},
    )
    tw = Twin(sc, city=ladder_city())
    em = tw.components["emergency"]

    def works(env):
        yield env.timeout(140)
        tw.link_control.apply([2, 3], source="works", closed=True)

    tw.env.process(works(tw.env))
    tw.run_until(1000)
    rer = [t for t, ev, _, u, _, _ in em.log.rows if ev == "rerouted"]
    assert len(rer) == 1 and 140 <= rer[0] < 190  # before it would have entered the bridge at 190
    assert em.incidents[0].t_on_scene == 590.0
