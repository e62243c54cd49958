"""``extends:``: a scenario built on another one."""

from __future__ import annotations

import pytest

from scenarios import ScenarioError, load_scenario


def test_child_merges_over_parent(tmp_path):
    (tmp_path / "base.yaml").write_text(
        "name: base\nseed: 4\ntime: {start: '07:00', duration: 2h}\ncity: {synthetic: {bridges: 2}}\n"
        "interventions: [{kind: close, place: Old Bridge}]\n"
    )
    (tmp_path / "child.yaml").write_text(
        "extends: base.yaml\ntime: {duration: 3h}\ninterventions: [{kind: capacity, place: North Bridge, factor: 0.5}]\n"
    )
    s = load_scenario(tmp_path / "child.yaml")
    assert s.name == "child" and s.seed == 4
    assert s.time.start == 7 * 3600 and s.time.duration == 3 * 3600  # merged key by key
    assert s.city.synthetic.bridges == 2
    assert [i.kind for i in s.interventions] == ["capacity"]  # lists replace


def test_builtin_what_ifs_extend_the_evening_peak():
    base = load_scenario("evening_peak")
    closed = load_scenario("whatif_old_bridge_closed_retimed")
    assert closed.demand == base.demand and closed.time == base.time
    assert [i.kind for i in closed.interventions] == ["close", "signal"]
    assert closed.baseline.endswith("evening_peak.yaml")


def test_loops_and_missing_parents_are_named(tmp_path):
    (tmp_path / "a.yaml").write_text("extends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\ncity: {synthetic: {}}\n")
    with pytest.raises(ScenarioError, match="loop"):
        load_scenario(tmp_path / "a.yaml")
    (tmp_path / "c.yaml").write_text("extends: nowhere.yaml\n")
    with pytest.raises(ScenarioError, match="extends.*nowhere.yaml"):
        load_scenario(tmp_path / "c.yaml")


def test_a_parent_s_relative_files_resolve_beside_the_parent(tmp_path):
    # the what-if lives in another folder than the scenario it extends, which ships its trips beside it
    shared, mine = tmp_path / "shared", tmp_path / "mine"
    shared.mkdir()
    mine.mkdir()
    (shared / "trips.csv").write_text("trip_id,origin,destination,depart_s\n1,0,1,0\n")
    (shared / "base.yaml").write_text("city: {synthetic: {}}\ndemand: {trips: trips.csv}\n")
    (mine / "whatif.yaml").write_text("extends: ../shared/base.yaml\ntime: {duration: 1h}\n")
    s = load_scenario(mine / "whatif.yaml")
    assert s.demand.trips == str((shared / "trips.csv").resolve())
    # a file the what-if names itself still resolves beside the what-if
    (mine / "trips.csv").write_text("trip_id,origin,destination,depart_s\n1,0,1,0\n")
    (mine / "mine.yaml").write_text("extends: ../shared/base.yaml\ndemand: {trips: trips.csv}\n")
    assert load_scenario(mine / "mine.yaml").demand.trips == str((mine / "trips.csv").resolve())
    # a built-in parent's name and a missing file are left for the schema as before
    (mine / "bad.yaml").write_text("extends: ../shared/base.yaml\ndemand: {trips: gone.csv}\n")
    with pytest.raises(ScenarioError, match="gone.csv"):
        load_scenario(mine / "bad.yaml")


def test_extending_a_built_in_with_shipped_data_from_elsewhere(tmp_path):
    # sumo_drt names its SUMO trips file beside it in scenarios/library; extending it from any folder
    # finds the file there (it used to be looked for beside the extending file)
    from pathlib import Path

    library = Path(__import__("scenarios").__file__).parent / "library"
    (tmp_path / "mine.yaml").write_text("extends: sumo_drt\ntime: {duration: 1h}\n")
    s = load_scenario(tmp_path / "mine.yaml")
    assert Path(s.demand.sumo) == (library / "sumo_drt.trips.xml").resolve()
    assert s.city.sumo == "drt"  # a built-in name stays a name
