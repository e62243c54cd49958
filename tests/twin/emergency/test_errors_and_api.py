"""Bad input gets clear errors naming the entry; the interventions API; injects; pluggable policies."""

from __future__ import annotations

import numpy as np
import pytest

from basics.errors import InputError
from tests.twin.emergency.helpers import FIXED, line_city, medical_only, scenario
from twin.model import Twin

ONE_AMB = {"stations": [{"name": "S", "kind": "ems", "node": 0, "units": {"ambulance": 1}}]}


def _twin(incidents, resources=ONE_AMB, **kw):
    return Twin(
        scenario({**FIXED, "types": {"medical": medical_only(on_scene=300)}, **incidents}, resources, **kw),
        city=line_city(places={"Main Street": np.array([0, 1])}),
    )


# ------------------------------------------------------------------------------ bad input


def test_incident_at_an_unknown_place_names_the_drill_entry():
    with pytest.raises(InputError) as info:
        _twin(
            {
                "drill": [
                    {"at": 60, "type": "medical", "location": 2},
                    {"at": "00:10", "type": "medical", "location": "Main Stret"},
                ]
            }
        )
    msg = str(info.value)
    assert "incidents.drill[1]" in msg and "'Main Stret'" in msg and "Main Street" in msg  # suggests the near name


def test_incident_at_an_unknown_node_id():
    with pytest.raises(InputError, match=r"incidents\.drill\[0\].*99 is not a node id"):
        _twin({"drill": [{"at": 60, "type": "medical", "location": 99}]})


def test_station_on_no_node_names_the_station():
    res = {"stations": [{"name": "Ghost Station", "kind": "ems", "node": 12345, "units": {"ambulance": 1}}]}
    with pytest.raises(InputError, match=r"resources\.stations\[0\] \('Ghost Station'\)\.node: 12345 is not a node id"):
        _twin({"drill": [{"at": 60, "type": "medical", "location": 2}]}, res)


def test_station_far_outside_the_city():
    res = {"stations": [{"name": "Far", "kind": "ems", "node": [10.0, 50.0], "units": {"ambulance": 1}}]}
    with pytest.raises(InputError, match=r"resources\.stations\[0\] \('Far'\).*from the nearest node"):
        _twin({"drill": [{"at": 60, "type": "medical", "location": 2}]}, res)


def test_a_unit_kind_no_incident_needs_names_the_station_and_kind():
    res = {
        "stations": [
            {"name": "S", "kind": "ems", "node": 0, "units": {"ambulance": 1}},
            {"name": "Harbour", "kind": "fire", "node": 1, "units": {"boat": 2}},
        ]
    }
    with pytest.raises(InputError) as info:
        _twin({"drill": [{"at": 60, "type": "medical", "location": 2}]}, res)
    msg = str(info.value)
    assert "resources.stations[1] ('Harbour')" in msg and "'boat'" in msg and "ambulance" in msg


def test_an_incident_type_in_use_needs_its_units_somewhere():
    with pytest.raises(InputError, match=r"incidents\.types\.fire\.units: severity 1 needs 'engine'"):
        _twin({"drill": [{"at": 60, "type": "fire", "location": 2}]})


def test_transport_needs_a_hospital():
    with pytest.raises(InputError, match=r"incidents\.types\.medical\.transport.*no(ne)? hospital|has none"):
        Twin(
            scenario(
                {
                    **FIXED,
                    "types": {"medical": medical_only(transport=1.0)},
                    "drill": [{"at": 60, "type": "medical", "location": 2}],
                },
                ONE_AMB,
            ),
            city=line_city(),
        )


def test_zone_weights_name_unknown_zones():
    with pytest.raises(InputError, match=r"incidents\.rates\.medical\.zones: no zone named 'Z9'"):
        _twin({"rates": {"medical": {"per_hour": 1, "zones": {"Z9": 1.0}}}})


def test_bad_policy_module():
    with pytest.raises(InputError, match=r"incidents\.policy: cannot load dispatch policy"):
        _twin({"policy": "no_such_module:pick", "drill": [{"at": 60, "type": "medical", "location": 2}]})


def test_a_policy_cannot_send_a_busy_unit():
    tw = _twin(
        {
            "drill": [
                {"at": 0, "type": "medical", "location": 1, "severity": 1},
                {"at": 10, "type": "medical", "location": 2, "severity": 1},
            ]
        },
        {"stations": [{"name": "S", "kind": "ems", "node": 0, "units": {"ambulance": 2}}]},
    )
    em = tw.components["emergency"]
    em.policy = lambda inc, kind, n, cand: [0]  # always unit 0, busy after the first call
    em.policy_name = "always-unit-0"
    with pytest.raises(InputError, match=r"always-unit-0: unit 0 is not free to send to incident 1"):
        tw.run()


# ------------------------------------------------------------------------------ API


def test_station_out_of_service_and_back():
    tw = _twin(
        {
            "drill": [
                {"at": 0, "type": "medical", "location": 1, "severity": 1},
                {"at": 1000, "type": "medical", "location": 1, "severity": 1},
            ]
        },
        {
            "stations": [
                {"name": "S", "kind": "ems", "node": 0, "units": {"ambulance": 1}},
                {"name": "Far", "kind": "ems", "node": 4, "units": {"ambulance": 1}},
            ]
        },
    )
    em = tw.components["emergency"]
    em.set_station_in_service("S", False)
    tw.run_until(900)
    # S is out: the far unit answered (3 links) although S is next door
    assert em.incidents[0].first_unit == 1 and em.incidents[0].first_travel_s == 300.0
    em.set_station_in_service("S", True)
    tw.run_until(2000)
    assert em.incidents[1].first_unit == 0
    with pytest.raises(InputError, match="no station named 'Nope'"):
        em.set_station_in_service("Nope", False)


def test_out_of_service_station_units_finish_their_job_then_stay():
    tw = _twin({"drill": [{"at": 0, "type": "medical", "location": 2, "severity": 1}]})
    em = tw.components["emergency"]
    tw.run_until(100)
    em.set_station_in_service("S", False)
    tw.run_until(2000)
    assert em.incidents[0].stage == 4  # cleared by the unit that was already on its way
    assert em.units[0].state == 7  # out of service back at its station


def test_add_and_remove_station():
    tw = _twin({"drill": [{"at": 600, "type": "medical", "location": 4, "severity": 1}]})
    em = tw.components["emergency"]
    tw.run_until(300)
    new = em.add_station("Pop-up", "ems", 4, {"ambulance": 1})
    assert new == [1] and em.unit_name(1) == "ambulance 1 (Pop-up)"
    tw.run_until(1000)
    assert em.incidents[0].first_unit == 1 and em.incidents[0].first_travel_s == 0.0
    with pytest.raises(InputError, match="already exists"):
        em.add_station("Pop-up", "ems", 4, {"ambulance": 1})
    with pytest.raises(InputError, match="unit kind 'boat' is not needed"):
        em.add_station("Harbour", "fire", 2, {"boat": 1})
    with pytest.raises(InputError, match=r"add_station\('X'\)\.node: 77 is not a node id"):
        em.add_station("X", "ems", 77, {"ambulance": 1})
    em.remove_station("S")
    tw.run_until(3000)
    assert em.units[0].state == 8 and em.units[0].done  # removed
    tw.components["emergency"].check_invariants()
    ds = tw.results()
    assert list(ds.station_name.values) == ["S", "Pop-up"] and ds.station_in_service_end.values.tolist() == [0, 1]


def test_move_units_relocates_them():
    tw = _twin(
        {"drill": [{"at": 1000, "type": "medical", "location": 4, "severity": 1}]},
        {
            "stations": [
                {"name": "S", "kind": "ems", "node": 0, "units": {"ambulance": 1}},
                {"name": "East", "kind": "ems", "node": 4, "units": {}},
            ]
        },
    )
    em = tw.components["emergency"]
    assert em.move_units("S", "East", "ambulance", 1) == [0]
    tw.run_until(500)
    assert em.units[0].state == 0 and em.units[0].node == 4  # arrived at East after 4 links
    tw.run_until(1500)
    assert em.incidents[0].first_travel_s == 0.0


def test_inject_now_later_and_bad():
    tw = _twin({"enabled": True})  # no drill, no rates: on for injects (as twin drill does)
    em = tw.components["emergency"]
    tw.run_until(100)
    i = em.inject("medical", "Main Street", severity=2, notes="caller on the street")
    assert i == 0 and em.incidents[0].node == 0 and em.incidents[0].source == "inject"
    assert em.inject("medical", [24.9 + 3000 / 55_000, 60.17], at="00:20") is None
    tw.run_until(1300)
    assert len(em.incidents) == 2 and em.incidents[1].t_occur == 1200 and em.incidents[1].node == 3
    with pytest.raises(InputError, match="not an incident type"):
        em.inject("alien", 1)
    with pytest.raises(InputError, match="severity must be a whole number 1-5"):
        em.inject("medical", 1, severity=9)
    with pytest.raises(InputError, match="before the clock"):
        em.inject("medical", 1, at=10)
    with pytest.raises(InputError, match="is not a named place"):
        em.inject("medical", "Atlantis")


def test_enabled_false_and_no_incidents_mean_no_component(small_city):
    from tests.twin.conftest import small_scenario

    assert "emergency" not in Twin(small_scenario(), city=small_city).components
