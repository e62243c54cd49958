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
