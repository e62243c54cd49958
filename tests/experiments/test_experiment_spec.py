"""Experiment specs: bad input gets an error naming the field, before any run starts."""

from __future__ import annotations

import math

import pytest

from experiments.design import design_points
from experiments.runner import replication_seeds, run_experiment
from experiments.spec import ExperimentError, load_experiment, set_path
from tests.experiments.conftest import TINY


def _spec(**changes):
    base = {
        "name": "t",
        "base": TINY,
        "factors": [{"name": "trips", "path": "demand.gravity.total_trips", "levels": [800, 1600]}],
        "replications": 2,
        "seed": 1,
    }
    return {**base, **changes}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"factors": [{"path": "demand.gravity.no_such_field", "levels": [1, 2]}]}, "factors[0]"),
        ({"factors": [{"path": "demmand.gravity.total_trips", "levels": [1, 2]}]}, "factors[0].path"),
        ({"factors": [{"path": "demand.gravity.total_trips", "levels": [800, "many"]}]}, "factors[0].levels[1]"),
        ({"factors": [{"path": "time.step", "range": [5, 1]}]}, "factors[0].range"),
        ({"factors": []}, "factors"),
        ({"design": {"kind": "lhs", "points": 0}}, "design.points"),
        ({"design": {"kind": "sobol"}}, "factors[0]"),
        ({"design": {"kind": "grid"}}, "design.kind"),
        ({"design": {"kind": "optimize"}}, "design.kpi"),
        ({"replications": 0}, "replications"),
        ({"seed": -1}, "seed"),
        ({"colour": "red"}, "colour"),
        ({"base": None}, "base"),
    ],
)
def test_bad_input_names_the_field_before_any_run(tmp_path, changes, field):
    out = tmp_path / "store.zarr"
    with pytest.raises(ExperimentError, match=field.replace("[", r"\[").replace("]", r"\]")):
        run_experiment(_spec(**changes), out, workers=0)
    assert not out.exists()  # nothing ran, nothing written


def test_list_items_by_name_and_position():
    doc = {"stations": [{"name": "A", "units": {"engine": 1}}, {"name": "B", "units": {}}], "xs": [1, 2]}
    set_path(doc, "stations[B].units.engine", 3)
    set_path(doc, "xs[1]", 5)
    assert doc["stations"][1]["units"]["engine"] == 3 and doc["xs"] == [1, 5]
    with pytest.raises(KeyError, match="no item named 'C'"):
        set_path(doc, "stations[C].units.engine", 3)


def test_builtin_experiments_load_and_have_points():
    for name, kind in [
        ("ems_fleet_call_rate", "factorial"),
        ("traffic_sobol", "sobol"),
        ("station_placement", "optimize"),
    ]:
        spec = load_experiment(name)
        assert spec.design["kind"] == kind and design_points(spec)


def test_function_hook_from_a_file_needs_trust(tmp_path):
    path = tmp_path / "e.yaml"
    path.write_text("function: 'tests.experiments.ishigami:ishigami'\nfactors: [{name: x1, range: [0, 1]}]\n")
    with pytest.raises(ExperimentError, match="allow-plugins"):
        load_experiment(path)


def test_seeds_spawned_from_one_root_are_stable():
    assert replication_seeds(7, 3) == replication_seeds(7, 3)
    assert replication_seeds(7, 4)[:3] == replication_seeds(7, 3)
    assert len(set(replication_seeds(7, 50))) == 50


def test_sobol_design_comes_from_salib():
    spec = load_experiment(
        {
            "function": "tests.experiments.ishigami:ishigami",
            "factors": [{"name": n, "range": [-math.pi, math.pi]} for n in ("x1", "x2", "x3")],
            "design": {"kind": "sobol", "base_samples": 8},
        }
    )
    assert len(design_points(spec)) == 8 * (3 + 2)
