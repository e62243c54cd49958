"""Bounded work for any scenario input (issue 15, part 4): each finding of the issue as a
test that failed before the bounds and passes after.

The headline two (an alias bomb, a huge duration) are measured in a fresh interpreter:
an error within 2 s and 200 MB of peak memory.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from city_models.demand import DemandError, read_trips_csv
from scenarios import ScenarioError, load_scenario
from scenarios.loader import MAX_YAML_DEPTH, MAX_YAML_NODES
from tests.city_models.helpers import tiny_network

CITY = {"synthetic": {"blocks_x": 4, "blocks_y": 4, "bridges": 1, "zone_blocks": 2}}

BOMB = """\
a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
city: {synthetic: {}}
"""


def _measured(path) -> dict:
    """Load ``path`` in a fresh interpreter; the error, seconds and peak-memory growth (MB)."""
    code = textwrap.dedent(f"""
        import json, resource, time
        from scenarios import ScenarioError, load_scenario
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t0 = time.perf_counter()
        try:
            load_scenario({str(path)!r})
            err = None
        except ScenarioError as exc:
            err = [exc.fields, str(exc)]
        took = time.perf_counter() - t0
        grew = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
        print(json.dumps({{"error": err, "seconds": took, "mb": grew}}))
    """)
    run = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=str(__import__("pathlib").Path(__file__).resolve().parents[2]),
    )
    assert run.returncode == 0, run.stderr[-2000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_an_alias_bomb_is_an_error_within_2_s_and_200_mb(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB)
    got = _measured(path)
    assert got["error"] is not None, "the bomb must not load"
    fields, text = got["error"]
    assert f"more than {MAX_YAML_NODES:,} values" in text and "bomb.yaml" in text and fields[0] in "abcdefghi"
    assert got["seconds"] < 2.0 and got["mb"] < 200.0, got


def test_a_huge_duration_is_an_error_within_2_s_and_200_mb(tmp_path):
    path = tmp_path / "long.yaml"
    path.write_text("city: {synthetic: {}}\ntime: {duration: 1.0e+30}\n")
    got = _measured(path)
    assert got["error"] is not None
    fields, text = got["error"]
    assert fields == ["time.duration"] and "366 days" in text and "line 2" in text
    assert got["seconds"] < 2.0 and got["mb"] < 200.0, got


@pytest.mark.parametrize("duration", [1e30, 1e12, 366 * 86400 + 1, "400d", 10**400])
def test_durations_beyond_366_days_name_the_field(duration):
    with pytest.raises(ScenarioError) as err:
        load_scenario({"city": CITY, "time": {"duration": duration}})
    assert err.value.fields == ["time.duration"]


def test_a_year_is_still_a_duration():
    s = load_scenario({"city": CITY, "time": {"duration": "366d", "step": "10s"}, "outputs": {"interval": "1h"}})
    assert s.time.duration == 366 * 86400


def test_deep_nesting_is_an_error_not_a_recursion_error(tmp_path):
    path = tmp_path / "deep.yaml"
    path.write_text("city: {synthetic: {}}\nx: " + "[" * 500 + "]" * 500 + "\n")
    with pytest.raises(ScenarioError) as err:
        load_scenario(path)
    assert f"more than {MAX_YAML_DEPTH} levels" in str(err.value) and err.value.problems[0].line == 2
    assert err.value.fields[0].startswith("x[0]")


def test_a_recursive_alias_is_an_error(tmp_path):
    path = tmp_path / "rec.yaml"
    path.write_text("city: {synthetic: {}}\nx: &a [1, *a]\n")
    with pytest.raises(ScenarioError, match="recursive alias"):
        load_scenario(path)


@pytest.mark.parametrize(
    "text, words",
    [
        (b"name: x\x00y\ncity: {synthetic: {}}\n", "NUL byte at line 1"),
        (b"city: {synthetic: {}}\nname: \xff\xfe\n", "not UTF-8"),
        (b"city: {synthetic: {}}\nname: \x07\n", "line 2"),
    ],
)
def test_unreadable_bytes_name_the_line(tmp_path, text, words):
    path = tmp_path / "bad.yaml"
    path.write_bytes(text)
    with pytest.raises(ScenarioError, match=words):
        load_scenario(path)


def test_a_nul_escaped_into_the_name_is_an_error(tmp_path):
    path = tmp_path / "nul.yaml"
    path.write_text('name: "x\\0y"\ncity: {synthetic: {}}\n')
    with pytest.raises(ScenarioError, match="control character") as err:
        load_scenario(path)
    assert err.value.fields == ["name"]


def test_a_million_value_profile_is_refused_at_once(tmp_path):
    path = tmp_path / "profile.yaml"
    path.write_text("city: {synthetic: {}}\ndemand: {gravity: {profile: [" + ", ".join(["1"] * 1_000_000) + "]}}\n")
    t0 = time.perf_counter()
    with pytest.raises(ScenarioError, match="at most 1 MiB"):
        load_scenario(path)
    assert time.perf_counter() - t0 < 2.0


def test_a_long_profile_within_the_size_limit_names_its_field(tmp_path):
    path = tmp_path / "profile.yaml"
    path.write_text(
        "city: {synthetic: {}}\ndemand: {gravity: {profile: [" + ", ".join(["1"] * (MAX_YAML_NODES + 10)) + "]}}\n"
    )
    with pytest.raises(ScenarioError, match=f"more than {MAX_YAML_NODES:,} values") as err:
        load_scenario(path)
    assert err.value.fields == ["demand.gravity.profile"] and err.value.problems[0].line == 2


def test_a_million_value_profile_from_code_names_its_field_at_once():
    t0 = time.perf_counter()
    with pytest.raises(ScenarioError, match="24 hourly values") as err:
        load_scenario({"city": CITY, "demand": {"gravity": {"profile": [1.0] * 1_000_000}}})
    assert err.value.fields == ["demand.gravity.profile"] and time.perf_counter() - t0 < 2.0


@pytest.mark.parametrize(
    "field, value",
    [
        ("resources.stations", [{"name": "S", "kind": "fire", "node": 1, "units": {"engine": 2**63}}]),
        ("resources.stations", [{"name": "S", "kind": "fire", "node": 1, "units": {"engine": 10**6}}]),
        ("incidents.types", {"fire": {"units": {1: {"engine": 10**9}}}}),
        ("demand.gravity.total_trips", 10**12),
        ("population.persons", 2**63),
        ("resources.hospitals", [{"name": "H", "node": 1, "beds": 2**70}]),
        ("incidents.rates", {"fire": {"per_hour": 1e9}}),
        ("incidents.drill", [{"at": 60, "type": "fire", "location": 2**70}]),
    ],
)
def test_counts_that_would_allocate_without_bound_are_errors(field, value):
    with pytest.raises(ScenarioError) as err:
        load_scenario({"city": CITY, "incidents": {}, **_nested(field, value)})
    assert err.value.fields and err.value.fields[0].startswith(field), err.value


def _nested(field: str, value) -> dict:
    head, *rest = field.split(".")
    out = value
    for part in reversed(rest):
        out = {part: out}
    return {head: out}


@pytest.mark.parametrize("seed", [2**63, 2**64, 10**30])
def test_a_seed_beyond_64_bits_is_an_error_before_the_run(seed):
    with pytest.raises(ScenarioError) as err:
        load_scenario({"city": CITY, "seed": seed})
    assert err.value.fields == ["seed"]


def test_the_largest_seed_is_accepted():
    assert load_scenario({"city": CITY, "seed": 2**63 - 1}).seed == 2**63 - 1


@pytest.mark.parametrize("mean", [1e-300, 1e-9])
def test_a_tiny_lognormal_mean_is_an_error(mean):
    with pytest.raises(ScenarioError) as err:
        load_scenario({"city": CITY, "incidents": {"call_delay": {"dist": "lognormal", "mean": mean, "sd": 30}}})
    assert err.value.fields == ["incidents.call_delay.sd"]


def test_a_drawn_duration_never_overflows():
    from twin.emergency.incidents import draw

    s = load_scenario({"city": CITY, "incidents": {"call_delay": {"dist": "gamma", "mean": 0.5, "sd": 50}}})
    x = draw(s.incidents.call_delay, np.random.default_rng(0))
    assert np.isfinite(x) and x >= 0


@pytest.mark.parametrize(
    "field, value",
    [
        ("demand.trips", "y" * 300 + ".csv"),
        ("city.graphml", "/tmp/" + "y" * 300 + ".graphml"),
        ("demand.trips", "a" * 5000),
        ("demand.trips", "x\x00.csv"),
    ],
)
def test_path_components_over_255_bytes_are_errors(tmp_path, field, value):
    with pytest.raises(ScenarioError) as err:
        load_scenario({"city": CITY, **_nested(field, value)}, base_dir=tmp_path)
    assert err.value.fields == [field]


def test_a_name_too_long_for_a_folder_is_an_error():
    with pytest.raises(ScenarioError, match="at most 100") as err:
        load_scenario({"city": CITY, "name": "x" * 300})
    assert err.value.fields == ["name"]


def test_a_scenario_path_with_a_long_component_is_an_error():
    with pytest.raises(ScenarioError, match="255 bytes"):
        load_scenario("z" * 300 + ".yaml")


def test_thousands_of_problems_are_counted_not_listed():
    with pytest.raises(ScenarioError) as err:
        load_scenario({"city": CITY, "incidents": {"drill": [{"at": -1, "type": "x", "location": None}] * 1500}})
    assert len(err.value.problems) <= 26 and "more problem" in str(err.value)


# ------------------------------------------------------------------------ the trips reader


@pytest.fixture(scope="module")
def network():
    return tiny_network([(0, 0), (100, 0), (100, 100)], [(0, 1), (1, 2)])


@pytest.mark.parametrize("trip_id", ["9223372036854775808", "18446744073709551616", "-9223372036854775809", "9" * 5000])
def test_a_trip_id_beyond_64_bits_is_an_error_naming_the_row(tmp_path, network, trip_id):
    path = tmp_path / "trips.csv"
    path.write_text(f"trip_id,origin,destination,depart_s\n1,0,1,0\n{trip_id},1,2,5\n")
    with pytest.raises(DemandError, match=r"row 2 \(line 3\).*|trip_id") as err:
        read_trips_csv(path, network)
    assert "trip_id" in str(err.value) and "row 2" in str(err.value)


def test_the_largest_trip_id_is_kept_exactly(tmp_path, network):
    path = tmp_path / "trips.csv"
    path.write_text(f"trip_id,origin,destination,depart_s\n{2**63 - 1},0,1,0\n{2**60 + 1},1,2,5\n")
    trips = read_trips_csv(path, network)
    assert sorted(trips.trip_id.tolist()) == [2**60 + 1, 2**63 - 1]


@pytest.mark.parametrize("cut", [10, 30, -8, -1])
def test_a_truncated_csv_gz_is_an_error_naming_the_file(tmp_path, network, cut):
    rows = "".join(f"{i},{i % 3},{(i + 1) % 3},{i}\n" for i in range(2000))
    data = gzip.compress(("trip_id,origin,destination,depart_s\n" + rows).encode())
    path = tmp_path / "trips.csv.gz"
    path.write_bytes(data[:cut])
    with pytest.raises(DemandError, match="trips.csv.gz"):
        read_trips_csv(path, network)


def test_a_truncated_csv_gz_named_by_a_scenario_is_a_scenario_error(tmp_path):
    path = tmp_path / "trips.csv.gz"
    path.write_bytes(gzip.compress(b"trip_id,origin,destination,depart_s\n1,0,1,0\n")[:12])
    with pytest.raises(ScenarioError, match="truncated or corrupted") as err:
        load_scenario({"city": CITY, "demand": {"trips": str(path)}})
    assert err.value.fields == ["demand.trips"]


def test_a_resolved_scenario_with_the_most_drill_entries_loads_back(tmp_path):
    from scenarios import dump_resolved, scenario_hash
    from scenarios.emergency import MAX_ENTRIES

    drill = [{"at": 60 + i, "type": "fire", "location": i % 9, "severity": 1, "notes": "n"} for i in range(MAX_ENTRIES)]
    s = load_scenario({"city": CITY, "incidents": {"drill": drill}})
    back = load_scenario(dump_resolved(s, tmp_path / "resolved.yaml"))
    assert scenario_hash(back) == scenario_hash(s)


@pytest.mark.parametrize(
    "field, value",
    [
        ("blocks_x", 10**9),
        ("blocks_y", 501),
        ("block_m", 1e12),
        ("bridges", 10**6),
        ("residents", 10**12),
        ("zone_blocks", 10**7),
    ],
)
def test_synthetic_city_sizes_are_bounded(field, value):
    """A synthetic city of 10^9 blocks used to be accepted and then allocate: each size is bounded,
    and the error names the field."""
    with pytest.raises(ScenarioError, match=f"city.synthetic.{field}"):
        load_scenario({"city": {"synthetic": {field: value}}})
