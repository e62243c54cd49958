"""Tests of the scenario schema and loader."""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path

import pytest
import yaml

import scenarios
from scenarios import (
    DEFAULT_PROFILE,
    Scenario,
    ScenarioError,
    builtin_path,
    builtin_scenarios,
    dump_resolved,
    format_duration,
    hash_payload,
    load_city,
    load_scenario,
    parse_clock,
    parse_duration,
    parse_time_point,
    scenario_hash,
)

CITY = {"synthetic": {}}


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def trips_csv(folder: Path, name: str = "trips.csv", rows: str = "1,0,5,10\n") -> Path:
    return write(folder, name, "trip_id,origin,destination,depart_s\n" + rows)


def error_of(*args, **kwargs) -> ScenarioError:
    with pytest.raises(ScenarioError) as info:
        load_scenario(*args, **kwargs)
    return info.value


# ------------------------------------------------------------------------ durations


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (90, 90.0),
        (2.5, 2.5),
        (0, 0.0),
        ("90", 90.0),
        ("90s", 90.0),
        ("90 s", 90.0),
        ("15min", 900.0),
        ("15 minutes", 900.0),
        ("2m", 120.0),
        ("2h", 7200.0),
        ("1.5h", 5400.0),
        ("2 hours", 7200.0),
        ("1h30min", 5400.0),
        ("1h 30min 15s", 5415.0),
        ("1d", 86400.0),
        ("1D", 86400.0),
        ("1day", 86400.0),
        ("1:30", 5400.0),
        ("0:00:45", 45.0),
        (" 24h ", 86400.0),
        (".5h", 1800.0),
    ],
)
def test_parse_duration_reads_what_people_write(value, seconds):
    assert parse_duration(value) == seconds


@pytest.mark.parametrize(
    "value",
    [
        "2 hourz",
        "",
        "h",
        "abc",
        "1h1h",
        "1min2m",
        "1.2.3s",
        "2h-",
        None,
        True,
        [1],
        {"h": 1},
        "nan",
        float("nan"),
        float("inf"),
        "1:75",
    ],
)
def test_parse_duration_rejects_garbage_with_examples(value):
    with pytest.raises(ValueError) as info:
        parse_duration(value)
    assert "duration" in str(info.value)


@pytest.mark.parametrize("value", [-1, "-5s", "-1h30min"])
def test_parse_duration_rejects_negative(value):
    with pytest.raises(ValueError, match="negative"):
        parse_duration(value)


def test_parse_duration_message_matches_the_documented_form():
    with pytest.raises(ValueError) as info:
        parse_duration("2 hourz")
    assert str(info.value) == ('could not read \'2 hourz\' as a duration (examples: 90, "90s", "15min", "2h")')


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("00:00", 0.0),
        ("07:00", 25200.0),
        ("7:00", 25200.0),
        ("17:30:15", 63015.0),
        ("23:59:59", 86399.0),
        (0, 0.0),
        (25200, 25200.0),
        ("25200", 25200.0),
        ("7h", 25200.0),
    ],
)
def test_parse_clock(value, seconds):
    assert parse_clock(value) == seconds


@pytest.mark.parametrize("value", ["24:00", "25:00", "07:60", "noon", -1, 86400, True, None, "07:00:60"])
def test_parse_clock_rejects_bad_times(value):
    with pytest.raises(ValueError, match="clock time"):
        parse_clock(value)


def test_parse_time_point_clock_or_offset():
    assert parse_time_point("08:15", start_s=7 * 3600) == 4500.0
    assert parse_time_point("15min", start_s=7 * 3600) == 900.0
    assert parse_time_point(60, start_s=7 * 3600) == 60.0
    # the first such clock time at or after the start: past midnight
    assert parse_time_point("01:00", start_s=22 * 3600) == 3 * 3600.0
    with pytest.raises(ValueError, match="HH:MM"):
        parse_time_point("soon")


@pytest.mark.parametrize("seconds", [0.0, 2.0, 2.5, 90.0, 600.0, 5400.0, 86400.0, 90061.0])
def test_format_duration_round_trips(seconds):
    assert parse_duration(format_duration(seconds)) == seconds


# -------------------------------------------------------------------------- defaults


def test_defaults_are_filled_in():
    s = load_scenario({"city": CITY})
    assert s.name == "scenario" and s.description == "" and s.seed == 0
    assert (s.time.start_s, s.time.duration_s, s.time.step_s) == (0.0, 86400.0, 2.0)
    assert s.time.n_steps == 43200 and s.time.end_s == 86400.0
    syn = s.city.synthetic
    assert s.city.kind == "synthetic" and s.city.min_link_m == 10.0
    assert (syn.blocks_x, syn.blocks_y, syn.block_m, syn.river, syn.bridges) == (12, 12, 250.0, True, 3)
    assert (syn.ring_road, syn.arterial_every, syn.residents, syn.jobs) == (True, 4, 120000, 80000)
    assert (syn.zone_blocks, syn.signals, syn.seed) == (3, True, 0)
    assert s.demand.kind == "gravity" and s.demand.trips is None
    g = s.demand.gravity
    assert (g.total_trips, g.beta_per_km) == (560000, 0.25)
    assert g.profile == list(DEFAULT_PROFILE) and math.isclose(sum(g.profile), 1.0)
    assert (s.traffic.reroute_interval, s.traffic.routing) == (600.0, "dynamic")
    assert (s.outputs.interval, s.outputs.dir) == (300.0, None)
    assert s.interventions == []
    for section in (s.incidents, s.resources, s.feeds, s.population):  # each section's defaults
        assert type(section)() == section


def test_default_profile_has_two_peaks():
    p = DEFAULT_PROFILE
    assert len(p) == 24 and all(v >= 0 for v in p)
    morning, evening = max(range(12), key=p.__getitem__), max(range(12, 24), key=p.__getitem__)
    assert 6 <= morning <= 9 and 15 <= evening <= 18
    assert p[morning] > 5 * p[3] and p[evening] > 5 * p[3]


def test_bare_number_start_is_seconds_after_midnight():
    assert parse_clock("7") == 7.0 and parse_clock(7) == 7.0


def test_empty_sections_mean_defaults(tmp_path):
    path = write(tmp_path, "day.yaml", "time:\ndemand:\ncity:\n  synthetic:\n")
    s = load_scenario(path)
    assert s.name == "day" and s.time.duration_s == 86400.0
    assert s.demand.kind == "gravity" and s.city.kind == "synthetic"


def test_time_written_in_many_ways(tmp_path):
    path = write(tmp_path, "t.yaml", 'time: {start: "07:30", duration: 1h30min, step: 0.5}\ncity: {synthetic: {}}\n')
    t = load_scenario(path).time
    assert (t.start_s, t.duration_s, t.step_s, t.end_s) == (27000.0, 5400.0, 0.5, 32400.0)


def test_unquoted_clock_time_is_not_read_as_base_60(tmp_path):
    # YAML 1.1 would read 10:00 as the integer 600 (ten minutes past midnight).
    path = write(tmp_path, "t.yaml", "time:\n  start: 10:00\n  duration: 1:30\ncity: {synthetic: {}}\n")
    t = load_scenario(path).time
    assert t.start_s == 36000.0 and t.duration_s == 5400.0


def test_gravity_profile_is_normalised():
    s = load_scenario({"city": CITY, "demand": {"gravity": {"profile": [2] * 24}}})
    assert s.demand.gravity.profile == [1 / 24] * 24


# ---------------------------------------------------------------------------- errors


def test_typo_names_the_path_line_and_suggestion(tmp_path):
    path = write(tmp_path, "day.yaml", "city: {synthetic: {}}\ntime:\n  duraton: 2h\n")
    err = error_of(path)
    assert err.fields == ["time.duraton"]
    msg = str(err)
    assert "day.yaml" in msg and "field 'time.duraton' (line 3)" in msg
    assert "did you mean 'duration'" in msg


def test_typo_in_a_section_name(tmp_path):
    err = error_of({"city": CITY, "ouputs": {"interval": "5min"}})
    assert err.fields == ["ouputs"] and "did you mean 'outputs'" in str(err)


def test_typo_in_a_nested_field():
    err = error_of({"city": {"synthetic": {"bridge": 2}}})
    assert err.fields == ["city.synthetic.bridge"] and "'bridges'" in str(err)


def test_wrong_type_names_path_and_value(tmp_path):
    path = write(tmp_path, "day.yaml", "city:\n  synthetic:\n    blocks_x: many\n")
    err = error_of(path)
    assert err.fields == ["city.synthetic.blocks_x"]
    assert "'many'" in str(err) and "whole number" in str(err) and "(line 3)" in str(err)


def test_bad_duration_message(tmp_path):
    path = write(tmp_path, "day.yaml", "city: {synthetic: {}}\ntime: {duration: 2 hourz}\n")
    assert str(error_of(path)) == (
        "scenario '" + str(path) + "': field 'time.duration' (line 2): could not read "
        '\'2 hourz\' as a duration (examples: 90, "90s", "15min", "2h")'
    )


def test_bool_is_not_a_number():
    err = error_of({"city": CITY, "seed": True})
    assert err.fields == ["seed"] and "true" in str(err)


@pytest.mark.parametrize(
    ("data", "field", "words"),
    [
        ({"seed": -1}, "seed", "at least 0"),
        ({"time": {"step": 0}}, "time.step", "greater than 0"),
        ({"time": {"step": "2h", "duration": "1h"}}, "time.step", "longer than the duration"),
        ({"time": {"start": "25:00"}}, "time.start", "clock time"),
        ({"traffic": {"routing": "fast"}}, "traffic.routing", "'dynamic' or 'static'"),
        ({"outputs": {"interval": "7s"}}, "outputs.interval", "multiple of time.step"),
        ({"traffic": {"reroute_interval": 1}}, "traffic.reroute_interval", "time step"),
        ({"demand": {"gravity": {"profile": [1] * 23}}}, "demand.gravity.profile", "24"),
        ({"demand": {"gravity": {"profile": [0] * 24}}}, "demand.gravity.profile", "0"),
        ({"demand": {"gravity": {"profile": [1] * 23 + [-1]}}}, "demand.gravity.profile[23]", "at least 0"),
        ({"demand": {"gravity": {"total_trips": 1.5}}}, "demand.gravity.total_trips", "1.5"),
        (
            {"time": {"start": "07:00", "duration": "1h"}, "demand": {"gravity": {"profile": [1] * 6 + [0] * 18}}},
            "demand.gravity.profile",
            "no trip could depart",
        ),
        ({"interventions": {"at": 1}}, "interventions", "list"),
        ({"incidents": [1, 2]}, "incidents", "mapping"),
        ({"name": "  "}, "name", "empty"),
        ({"time": 3600}, "time", "mapping"),
    ],
)
def test_bad_values_name_their_field(data, field, words):
    err = error_of({"city": CITY, **data})
    assert err.fields == [field], str(err)
    assert words in str(err)


def test_synthetic_city_checks():
    err = error_of({"city": {"synthetic": {"river": True, "bridges": 0}}})
    assert err.fields == ["city.synthetic.bridges"]
    assert load_scenario({"city": {"synthetic": {"river": False, "bridges": 0}}})


def test_several_errors_reported_at_once(tmp_path):
    path = write(
        tmp_path,
        "day.yaml",
        (
            "seed: -1\n"
            "time:\n  duraton: 2h\n  step: 2 hourz\n"
            "city:\n  synthetic: {blocks_x: many}\n"
            "traffic: {routing: fast}\n"
        ),
    )
    err = error_of(path)
    assert err.fields == ["seed", "time.duraton", "time.step", "city.synthetic.blocks_x", "traffic.routing"]
    assert [p.line for p in err.problems] == [1, 3, 4, 6, 7]
    msg = str(err)
    assert msg.startswith(f"scenario '{path}' has 5 problems: (1) field 'seed'")
    assert "\n" not in msg and "Traceback" not in msg and "pydantic" not in msg


def test_error_is_a_value_error_without_pydantic_chain():
    err = error_of({"city": CITY, "seed": "x"})
    assert isinstance(err, ValueError)
    assert err.__cause__ is None and err.__suppress_context__


def test_error_survives_pickling():
    import pickle

    err = error_of({"city": CITY, "seed": "x", "time": {"step": 0}})
    again = pickle.loads(pickle.dumps(err))
    assert str(again) == str(err) and again.problems == err.problems


def test_missing_city(tmp_path):
    path = write(tmp_path, "day.yaml", "seed: 1\n")
    err = error_of(path)
    assert err.fields == ["city"]
    assert "every scenario needs a city" in str(err) and "synthetic" in str(err)


@pytest.mark.parametrize(
    ("city", "got"),
    [
        ({"synthetic": {}, "osm": "helsinki"}, "both synthetic and osm"),
        ({}, "none of them"),
        ({"min_link_m": 5}, "none of them"),
    ],
)
def test_exactly_one_city_kind(city, got):
    err = error_of({"city": city})
    assert err.fields == ["city"] and "exactly one" in str(err) and got in str(err)


def test_trips_and_gravity_together():
    err = error_of({"city": CITY, "demand": {"trips": "t.csv", "gravity": {}}}, check_files=False)
    assert err.fields == ["demand"] and "not both" in str(err)


def test_missing_trips_file_names_the_path(tmp_path):
    path = write(tmp_path, "sub/day.yaml", "city: {synthetic: {}}\ndemand:\n  trips: t.csv\n")
    err = error_of(path)
    assert err.fields == ["demand.trips"] and err.problems[0].line == 3
    assert str(tmp_path / "sub" / "t.csv") in str(err) and "does not exist" in str(err)


def test_trips_header_is_checked(tmp_path):
    write(tmp_path, "t.csv", "id,origin,dest\n1,2,3\n")
    err = error_of({"city": CITY, "demand": {"trips": "t.csv"}}, base_dir=tmp_path)
    assert err.fields == ["demand.trips"]
    assert "trip_id, destination, depart_s" in str(err) and "found id, origin, dest" in str(err)


def test_check_files_false_skips_existence():
    s = load_scenario({"city": {"graphml": "nowhere.graphml"}}, check_files=False)
    assert Path(s.city.graphml).is_absolute()


def test_missing_osm_file_and_unknown_builtin_city(tmp_path):
    err = error_of({"city": {"osm": "paris"}}, base_dir=tmp_path)
    assert "not a built-in city" in str(err) and "helsinki" in str(err)
    err = error_of({"city": {"osm": "x.osm.pbf"}}, base_dir=tmp_path)
    assert str(tmp_path / "x.osm.pbf") in str(err)


def test_yaml_syntax_error_gives_line(tmp_path):
    path = write(tmp_path, "bad.yaml", "city: {synthetic: {}}\ntime:\n  start: 1\n  - x\n")
    err = error_of(path)
    assert "not valid YAML at line 4, column 3" in str(err) and "bad.yaml" in str(err)


def test_unclosed_bracket(tmp_path):
    path = write(tmp_path, "bad.yaml", "city: {synthetic: {}\nseed: 1\n")
    assert "not valid YAML at line" in str(error_of(path))


def test_missing_file(tmp_path):
    err = error_of(tmp_path / "nope.yaml")
    assert "file not found" in str(err) and str(tmp_path / "nope.yaml") in str(err)


def test_folder_instead_of_file(tmp_path):
    assert "folder" in str(error_of(tmp_path))


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "is empty"),
        ("# only a comment\n", "is empty"),
        ("- 1\n- 2\n", "a list of 2"),
        ("just text\n", "'just text'"),
    ],
)
def test_document_must_be_a_mapping(tmp_path, text, words):
    err = error_of(write(tmp_path, "x.yaml", text))
    assert words in str(err)


def test_duplicate_keys_are_errors(tmp_path):
    path = write(tmp_path, "d.yaml", "seed: 1\ncity: {synthetic: {}}\nseed: 2\n")
    err = error_of(path)
    assert err.fields == ["seed"] and "lines 1 and 3" in str(err)


def test_unknown_name_is_neither_file_nor_builtin():
    err = error_of("defualt")
    assert "did you mean 'default'" in str(err)


# ----------------------------------------------------------------------------- paths


def test_relative_paths_resolve_against_the_scenario_folder(tmp_path, monkeypatch):
    folder = tmp_path / "project"
    trips_csv(folder / "data")
    write(folder, "city.graphml", "<graphml/>")
    path = write(
        folder,
        "scen/day.yaml",
        ("city: {graphml: ../city.graphml}\ndemand: {trips: ../data/trips.csv}\noutputs: {dir: ../runs/day}\n"),
    )
    monkeypatch.chdir(tmp_path)
    s = load_scenario(path)
    assert s.city.graphml == str(folder / "city.graphml")
    assert s.demand.trips == str(folder / "data" / "trips.csv")
    assert s.outputs.dir == str(folder / "runs" / "day")
    assert s.demand.kind == "trips" and s.demand.gravity is None


def test_builtin_city_name_stays_a_name(tmp_path):
    s = load_scenario({"city": {"osm": "Helsinki"}}, base_dir=tmp_path)
    assert s.city.osm == "helsinki" and s.city.is_builtin and s.city.kind == "osm"


def test_osm_file_next_to_a_builtin_name(tmp_path):
    write(tmp_path, "helsinki.osm", "<osm/>")
    s = load_scenario({"city": {"osm": "./helsinki.osm"}}, base_dir=tmp_path)
    assert s.city.osm == str(tmp_path / "helsinki.osm")


def test_dict_paths_resolve_against_base_dir(tmp_path):
    trips_csv(tmp_path)
    s = load_scenario({"city": CITY, "demand": {"trips": "trips.csv"}}, base_dir=tmp_path)
    assert s.demand.trips == str(tmp_path / "trips.csv")


# ------------------------------------------------------------------------------ hash


def test_hash_is_stable_across_key_order_and_spelling(tmp_path):
    a = write(
        tmp_path, "a.yaml", "seed: 3\ntime: {duration: 2h, step: 2s}\ncity: {synthetic: {bridges: 2, river: true}}\n"
    )
    b = write(
        tmp_path, "b.yaml", "city:\n  synthetic: {river: yes, bridges: 2}\ntime: {step: 2, duration: 7200}\nseed: 3\n"
    )
    ha, hb = scenario_hash(load_scenario(a)), scenario_hash(load_scenario(b))
    assert ha == hb and len(ha) == 16 and int(ha, 16) >= 0


def test_hash_changes_when_a_value_changes():
    base = {"city": CITY, "seed": 3}
    h0 = scenario_hash(load_scenario(base))
    changed = [
        {"seed": 4},
        {"time": {"step": 1}},
        {"city": {"synthetic": {"bridges": 2}}},
        {"demand": {"gravity": {"total_trips": 59999}}},
        {"traffic": {"routing": "static"}},
        {"outputs": {"interval": "10min"}},
        {"interventions": [{"at": "08:00", "kind": "close", "links": [1]}]},
    ]
    hashes = {scenario_hash(load_scenario({**base, **c})) for c in changed}
    assert h0 not in hashes and len(hashes) == len(changed)


def test_hash_ignores_name_description_and_output_folder(tmp_path):
    h0 = scenario_hash(load_scenario({"city": CITY}))
    other = load_scenario({"city": CITY, "name": "x", "description": "y", "outputs": {"dir": str(tmp_path)}})
    assert scenario_hash(other) == h0


def test_hash_follows_trips_content_not_location(tmp_path):
    trips_csv(tmp_path / "a")
    trips_csv(tmp_path / "b")
    ha = scenario_hash(load_scenario({"city": CITY, "demand": {"trips": "a/trips.csv"}}, base_dir=tmp_path))
    hb = scenario_hash(load_scenario({"city": CITY, "demand": {"trips": "b/trips.csv"}}, base_dir=tmp_path))
    assert ha == hb
    trips_csv(tmp_path / "b", rows="1,0,5,11\n")
    hc = scenario_hash(load_scenario({"city": CITY, "demand": {"trips": "b/trips.csv"}}, base_dir=tmp_path))
    assert hc != ha
    payload = hash_payload(load_scenario({"city": CITY, "demand": {"trips": "a/trips.csv"}}, base_dir=tmp_path))
    assert set(payload["demand"]["trips"]) == {"sha256"}


def test_hash_without_seed_groups_replications():
    a, b = load_scenario({"city": CITY, "seed": 1}), load_scenario({"city": CITY, "seed": 2})
    assert scenario_hash(a) != scenario_hash(b)
    assert scenario_hash(a, include_seed=False) == scenario_hash(b, include_seed=False)


def test_resolved_is_plain_json_and_round_trips(tmp_path):
    trips_csv(tmp_path)
    s = load_scenario(
        {
            "city": {"osm": "helsinki"},
            "demand": {"trips": "trips.csv"},
            "time": {"start": "07:00", "duration": "3h"},
            "interventions": [{"at": "08:00", "kind": "close", "road": "bridge 1"}],
        },
        base_dir=tmp_path,
    )
    r = s.resolved()
    assert json.loads(json.dumps(r)) == r
    assert r["time"] == {"start": 25200.0, "duration": 10800.0, "step": 2.0}
    assert r["demand"]["trips"] == str(tmp_path / "trips.csv") and r["city"]["osm"] == "helsinki"
    out = dump_resolved(s, tmp_path / "run" / "scenario.yaml")
    text = out.read_text()
    assert text.startswith("# Resolved scenario") and scenario_hash(s) in text
    assert isinstance(yaml.safe_load(text), dict)
    again = load_scenario(out, base_dir=tmp_path / "elsewhere")
    assert again == s and scenario_hash(again) == scenario_hash(s)


# --------------------------------------------------------------------------- library


def test_library_lists_the_builtins():
    library = builtin_scenarios()
    assert {"default", "morning_peak", "helsinki"} <= set(library)
    assert builtin_path("default") == library["default"] and library["default"].is_file()
    with pytest.raises(ScenarioError, match="built-in"):
        builtin_path("nope")


@pytest.mark.parametrize("name", sorted(builtin_scenarios()))
def test_every_library_scenario_loads(name):
    s = load_scenario(name)
    assert s.name == name and s.description
    assert load_scenario(builtin_path(name)) == s
    text = builtin_path(name).read_text()
    assert text.count("#") >= 5  # explained for users
    dumped = json.dumps(s.resolved())
    assert dumped and scenario_hash(s)


def test_default_library_scenario_is_the_working_day():
    s = load_scenario("default")
    assert s.city.kind == "synthetic" and s.demand.kind == "gravity"
    assert (s.time.start_s, s.time.duration_s, s.time.step_s) == (0.0, 86400.0, 2.0)
    assert s.outputs.interval == 300.0 and s.demand.gravity.total_trips == 560000
    # it spells out the defaults: same simulation as a scenario that only names a city,
    # but for its demand's elasticity (fixed trips unless a scenario says otherwise)
    assert s.demand.elasticity == -0.5 and load_scenario({"city": CITY}).demand.elasticity == 0.0
    assert scenario_hash(s) == scenario_hash(load_scenario({"city": CITY, "demand": {"elasticity": -0.5}}))


def test_morning_peak_and_helsinki():
    m = load_scenario("morning_peak")
    assert (m.time.start_s, m.time.end_s) == (6 * 3600.0, 10 * 3600.0)
    share = m.demand.gravity.window_share(m.time.start_s, m.time.duration_s)
    assert abs(m.demand.gravity.total_trips - 560000 * share) < 0.01 * 560000 * share
    h = load_scenario("helsinki")
    assert h.city.osm == "helsinki" and h.time.start_s == 7 * 3600.0
    assert h.time.duration_s == 3 * 3600.0 and h.demand.gravity.total_trips == 12000


# ------------------------------------------------------------------------- overrides


def test_overrides_set_fields():
    s = load_scenario(
        "default", overrides={"seed": 7, "time.duration": "1h", "city.synthetic.bridges": 2, "traffic.routing": None}
    )
    assert s.seed == 7 and s.time.duration_s == 3600.0 and s.city.synthetic.bridges == 2
    assert s.traffic.routing == "dynamic"  # None is ignored
    assert s.city.synthetic.blocks_x == 12  # the rest of the section is kept


def test_override_replaces_a_whole_section():
    s = load_scenario("default", overrides={"city": {"osm": "helsinki"}})
    assert s.city.kind == "osm" and s.city.synthetic is None


def test_override_paths_resolve_against_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    s = load_scenario("default", overrides={"outputs.dir": "runs/x"})
    assert s.outputs.dir == str(tmp_path / "runs" / "x")


def test_bad_override_is_named():
    err = error_of("default", overrides={"seed": "x"})
    assert err.fields == ["seed"] and "override" in str(err) and "'x'" in str(err)
    err = error_of("default", overrides={"seed.x": 1})
    assert "not a section" in str(err)


def test_overrides_on_a_scenario_object():
    s = load_scenario("default")
    t = load_scenario(s, overrides={"seed": 9})
    assert t.seed == 9 and t.name == "default" and s.seed == 0


def test_assignment_is_validated():
    s = load_scenario({"city": CITY})
    s.seed = 5
    assert s.seed == 5
    with pytest.raises(ValueError):
        s.seed = -1


# --------------------------------------------------------------------------- helpers


def test_load_city_forms(tmp_path):
    assert load_city("synthetic").kind == "synthetic"
    assert load_city("helsinki").osm == "helsinki"
    assert load_city("default").synthetic.bridges == 3
    assert load_city({"synthetic": {"bridges": 1}}).synthetic.bridges == 1
    write(tmp_path, "c.graphml", "<graphml/>")
    assert load_city("c.graphml", base_dir=tmp_path).graphml == str(tmp_path / "c.graphml")
    with pytest.raises(ScenarioError, match="does not exist"):
        load_city("missing.osm.pbf", base_dir=tmp_path)


def test_scenario_constructed_directly():
    s = Scenario(city={"synthetic": {}}, time={"duration": "2h"})
    assert s.time.duration_s == 7200.0


def test_package_imports_nothing_else_of_ours():
    ours = {"twin", "city_models", "kernels", "viz", "experiments", "benchmarks"}
    for path in Path(scenarios.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                continue
            assert not {n.split(".")[0] for n in names} & ours, (path, names)
