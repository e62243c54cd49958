"""The ``incidents`` and ``resources`` scenario sections."""

from __future__ import annotations

import pytest

from scenarios import ScenarioError, builtin_scenarios, dump_resolved, load_scenario, scenario_hash
from scenarios.emergency import (
    DEFAULT_INCIDENT_TYPES,
    DistSpec,
    IncidentsSpec,
    ResourcesSpec,
    level_value,
)

CITY = {"synthetic": {}}


def _load(incidents=None, resources=None):
    data = {"city": CITY}
    if incidents is not None:
        data["incidents"] = incidents
    if resources is not None:
        data["resources"] = resources
    return load_scenario(data)


def _error(incidents=None, resources=None) -> str:
    with pytest.raises(ScenarioError) as info:
        _load(incidents, resources)
    return str(info.value)


def test_defaults_construct_without_arguments():
    inc, res = IncidentsSpec(), ResourcesSpec()
    assert set(inc.types) == set(DEFAULT_INCIDENT_TYPES) == {"fire", "medical", "traffic_crash", "flood"}
    assert not inc.active and inc.rates == {} and inc.drill == []
    assert res.stations == [] and res.hospitals == [] and res.include_city_facilities is None
    s = _load()
    assert s.incidents == inc and s.resources == res
    # the targets of the issue: 8 min for medical, 240 s travel of the first engine at fires
    med, fire = inc.types["medical"].target, inc.types["fire"].target
    assert (med.seconds, med.measure, med.unit) == (480.0, "response", None)
    assert (fire.seconds, fire.measure, fire.unit) == (240.0, "travel", "engine")
    assert inc.types["traffic_crash"].cleared_by == "tow" and inc.types["flood"].closes_links


def test_types_merge_over_the_built_in_table_and_new_types_are_data():
    s = _load(
        {
            "types": {
                "fire": {"on_scene": "1h"},
                "gas_leak": {
                    "units": {"engine": 1, "police": 1},
                    "severity": {1: 0.7, 2: 0.3},
                    "target": {"seconds": "10min"},
                },
            },
            "rates": {"gas_leak": {"per_hour": 0.5}},
        }
    )
    fire = s.incidents.types["fire"]
    assert fire.on_scene.mean_s == 3600.0 and fire.target.unit == "engine"  # the rest kept
    gas = s.incidents.types["gas_leak"]
    assert gas.units == {1: {"engine": 1, "police": 1}}  # one mix for every level
    assert s.incidents.active and "gas_leak" in s.incidents.rates


def test_level_tables_take_the_nearest_level_below():
    table = {1: "a", 3: "b"}
    assert [level_value(table, k) for k in (1, 2, 3, 4, 5)] == ["a", "a", "b", "b", "b"]
    assert level_value({2: "x"}, 1) == "x" and level_value({}, 3, default=0) == 0


@pytest.mark.parametrize(
    ("value", "mean"),
    [
        (90, 90.0),
        ("2min", 120.0),
        ({"dist": "exponential", "mean": "5min"}, 300.0),
        ({"dist": "lognormal", "mean": 60, "sd": 20}, 60.0),
        ({"dist": "uniform", "low": 10, "high": 30}, 20.0),
        ({"dist": "triangular", "low": 0, "mode": 30, "high": 60}, 30.0),
        ({"dist": "gamma", "mean": "1h", "sd": "10min"}, 3600.0),
    ],
)
def test_durations(value, mean):
    assert DistSpec.model_validate(value).mean_s == mean


@pytest.mark.parametrize(
    ("value", "where", "words"),
    [
        ({"dist": "lognormal", "mean": 60}, "incidents.call_delay.sd", "required for dist lognormal"),
        ({"dist": "fixed", "value": 3, "sd": 2}, "incidents.call_delay.sd", "not used by dist fixed"),
        ({"dist": "uniform", "low": 30, "high": 10}, "incidents.call_delay.high", "at least low"),
        ({"dist": "weibull", "mean": 3}, "incidents.call_delay.dist", "must be one of"),
        ("soon", "incidents.call_delay", "could not read"),
        (-5, "incidents.call_delay.value", "negative"),
    ],
)
def test_bad_durations_name_the_field(value, where, words):
    msg = _error({"call_delay": value})
    assert where in msg and words in msg


def test_drill_entries():
    s = _load(
        {
            "drill": [
                {"at": "17:10", "type": "fire", "location": "Old Bridge", "severity": 2, "notes": "big"},
                {"at": "25min", "type": "medical", "location": 42},
                {"at": 90, "type": "flood", "location": [24.94, 60.17]},
            ]
        }
    )
    d = s.incidents.drill
    assert (d[0].at, d[0].location, d[0].severity, d[0].notes) == ("17:10", "Old Bridge", 2, "big")
    assert (d[1].at, d[1].location, d[1].severity) == (1500.0, 42, None)
    assert d[2].location == [24.94, 60.17] and s.incidents.active


@pytest.mark.parametrize(
    ("entry", "where", "words"),
    [
        ({"at": "17:10", "type": "volcano", "location": 1}, "incidents.drill.0.type", "not an incident type"),
        ({"at": "later", "type": "fire", "location": 1}, "incidents.drill[0].at", "could not read"),
        ({"at": 0, "type": "fire", "location": [1, 2, 3]}, "incidents.drill[0].location", "[lon, lat]"),
        ({"at": 0, "type": "fire", "location": True}, "incidents.drill[0].location", "node id"),
        ({"at": 0, "type": "fire", "location": 1, "severity": 7}, "incidents.drill[0].severity", "at most 5"),
        ({"at": 0, "type": "fire", "location": 1, "colour": "red"}, "incidents.drill[0].colour", "not a known field"),
        ({"at": 0, "type": "fire"}, "incidents.drill[0].location", "required"),
    ],
)
def test_bad_drill_entries_name_the_entry(entry, where, words):
    msg = _error({"drill": [entry]})
    assert where in msg and words in msg


@pytest.mark.parametrize(
    ("types", "where", "words"),
    [
        (
            {"medical": {"transport": {1: 1.0}, "units": {"engine": 1}}},
            "incidents.types.medical.transport",
            "has no 'ambulance'",
        ),
        ({"traffic_crash": {"units": {"police": 1}}}, "incidents.types.traffic_crash.cleared_by", "'tow' clears"),
        ({"fire": {"units": {1: {"engine": 0}}}}, "incidents.types.fire.units.1", "at least one unit"),
        ({"fire": {"severity": {1: 0}}}, "incidents.types.fire.severity", "above 0"),
        ({"fire": {"severity": {6: 1}}}, "incidents.types.fire.severity[6]", "at most 5"),
        ({"fire": {"capacity_factor": 1.5}}, "incidents.types.fire.capacity_factor[1]", "at most 1"),
        ({"fire": {"target": {"seconds": 60, "unit": "boat"}}}, "incidents.types.fire.target.unit", "never sent"),
        ({"hike": {"severity": {1: 1}}}, "incidents.types.hike.units", "required"),
    ],
)
def test_bad_types_name_the_field(types, where, words):
    msg = _error({"types": types})
    assert where in msg and words in msg


def test_rates():
    s = _load(
        {
            "rates": {
                "medical": {"per_hour": 4, "hourly": [1] * 12 + [3] * 12, "zones": {"Z00-00": 2}},
                "fire": {"per_hour": 1, "nodes": [3, "Old Bridge"]},
            }
        }
    )
    med = s.incidents.rates["medical"]
    assert sum(med.hourly) == pytest.approx(24) and med.hourly[0] == pytest.approx(0.5)
    assert s.incidents.rates["fire"].nodes == [3, "Old Bridge"]
    assert "incidents.rates.hike" in _error({"rates": {"hike": {"per_hour": 1}}})
    msg = _error({"rates": {"medical": {"per_hour": 1, "hourly": [1] * 23}}})
    assert "incidents.rates.medical.hourly" in msg and "24 values" in msg
    assert "incidents.rates.medical.per_hour" in _error({"rates": {"medical": {"per_hour": -1}}})


def test_policy_names():
    assert _load({"policy": "closest_free_flow"}).incidents.policy == "closest_free_flow"
    assert _load({"policy": "my_pkg.policies:nearest_two"}).incidents.policy == "my_pkg.policies:nearest_two"
    assert "incidents.policy" in _error({"policy": "fastest"})


def test_resources():
    s = _load(
        resources={
            "stations": [
                {"name": "F1", "kind": "fire", "node": 12, "units": {"engine": 2, "ladder": 1}},
                {"name": "County", "kind": "fire", "node": [24.9, 60.1], "units": {"engine": 1}, "mutual_aid": True},
                {"name": "P", "kind": "police", "node": "Central Police Station", "in_service": False},
            ],
            "hospitals": [{"name": "H", "node": 5, "beds": 200, "occupied": 150}],
            "include_city_facilities": False,
        }
    )
    st = s.resources.stations
    assert st[1].mutual_aid and st[1].node == [24.9, 60.1] and not st[2].in_service and st[2].units == {}
    assert s.resources.hospitals[0].occupied == 150


@pytest.mark.parametrize(
    ("resources", "where", "words"),
    [
        (
            {"stations": [{"name": "A", "kind": "fire", "node": 1}, {"name": "A", "kind": "ems", "node": 2}]},
            "resources.stations.1.name",
            "already the name of stations[0]",
        ),
        (
            {"stations": [{"name": "A", "kind": "coastguard", "node": 1}]},
            "resources.stations[0].kind",
            "must be one of",
        ),
        (
            {"stations": [{"name": "A", "kind": "fire", "node": 1, "units": {"engine": -1}}]},
            "resources.stations[0].units.engine",
            "at least 0",
        ),
        (
            {"hospitals": [{"name": "H", "node": 1, "beds": 10, "occupied": 11}]},
            "resources.hospitals[0].occupied",
            "cannot exceed beds",
        ),
        ({"hospitals": [{"name": "H", "node": 1, "beds": 0}]}, "resources.hospitals[0].beds", "at least 1"),
    ],
)
def test_bad_resources_name_the_field(resources, where, words):
    msg = _error(resources=resources)
    assert where in msg and words in msg


def test_a_new_unit_mix_must_still_carry_patients():
    # replacing fire's unit table drops its ambulance, but severity 3 fires still transport
    msg = _error({"types": {"fire": {"units": {1: {"engine": 2}}}}})
    assert "incidents.types.fire.transport" in msg and "no 'ambulance'" in msg


def test_resolved_scenario_round_trips_and_hashes_alike(tmp_path):
    s = _load(
        {
            "call_delay": {"dist": "lognormal", "mean": "1min", "sd": "20s"},
            "turnout": "80s",
            "types": {"fire": {"units": {1: {"engine": 2}}, "transport": 0}},
            "rates": {"medical": {"per_hour": 3}},
            "drill": [{"at": "17:10", "type": "fire", "location": "Old Bridge"}],
        },
        {"stations": [{"name": "F", "kind": "fire", "node": [24.9, 60.1], "units": {"engine": 1}}]},
    )
    path = dump_resolved(s, tmp_path / "s.yaml")
    again = load_scenario(path)
    assert again.incidents == s.incidents and again.resources == s.resources
    assert scenario_hash(again) == scenario_hash(s)
    text = path.read_text()
    assert "'17:10'" in text or '"17:10"' in text  # clock times stay clock times
    other = _load(
        {
            "turnout": "90s",
            "call_delay": {"dist": "lognormal", "mean": "1min", "sd": "20s"},
            "types": {"fire": {"units": {1: {"engine": 2}}, "transport": 0}},
            "rates": {"medical": {"per_hour": 3}},
            "drill": [{"at": "17:10", "type": "fire", "location": "Old Bridge"}],
        },
        {"stations": [{"name": "F", "kind": "fire", "node": [24.9, 60.1], "units": {"engine": 1}}]},
    )
    assert scenario_hash(other) != scenario_hash(s)


@pytest.mark.parametrize("name", ["drill_evening_peak", "drill_flood"])
def test_builtin_drills_load(name):
    assert name in builtin_scenarios()
    s = load_scenario(name)
    assert s.incidents.active and s.incidents.drill and s.incidents.rates
    if name == "drill_flood":
        places = [d.location for d in s.incidents.drill if d.type == "flood"]
        assert places == ["Old Bridge", "North Bridge", "Ring Bridge"]
