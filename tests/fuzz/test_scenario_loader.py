"""Fuzzing the scenario loader: any file or mapping gives a Scenario or a ScenarioError."""

from __future__ import annotations

import copy

import yaml
from hypothesis import assume, given
from hypothesis import strategies as st

from scenarios import Scenario, ScenarioError, load_scenario

from .conftest import RUNS, bounded, fuzz_settings

BASE = {
    "name": "fuzz",
    "seed": 1,
    "time": {"start": "07:00", "duration": "1h", "step": "2s"},
    "city": {"synthetic": {"blocks_x": 4, "blocks_y": 4, "bridges": 1, "zone_blocks": 2}},
    "demand": {"gravity": {"total_trips": 100}},
    "outputs": {"interval": "5min"},
    "incidents": {
        "call_delay": {"dist": "lognormal", "mean": 60, "sd": 30},
        "drill": [{"at": "07:10", "type": "fire", "location": 3}],
    },
    "resources": {
        "stations": [{"name": "S", "kind": "fire", "node": 1, "units": {"engine": 2}}],
        "hospitals": [{"name": "H", "node": 2, "beds": 10}],
    },
    "population": {"enabled": False},
}

# Field paths the fuzzer replaces (sections, leaves, list entries, unknown keys).
PATHS = [
    ("name",),
    ("seed",),
    ("description",),
    ("time",),
    ("time", "duration"),
    ("time", "step"),
    ("time", "start"),
    ("demand",),
    ("demand", "gravity", "total_trips"),
    ("demand", "gravity", "profile"),
    ("demand", "gravity", "beta_per_km"),
    ("demand", "trips"),
    ("demand", "elasticity"),
    ("outputs", "interval"),
    ("outputs", "dir"),
    ("traffic", "reroute_interval"),
    ("traffic", "stuck_time"),
    ("incidents", "call_delay"),
    ("incidents", "call_delay", "mean"),
    ("incidents", "call_delay", "sd"),
    ("incidents", "drill"),
    ("incidents", "turnout"),
    ("incidents", "rates"),
    ("incidents", "types"),
    ("incidents", "emergency_speed_factor"),
    ("resources", "stations"),
    ("resources", "hospitals"),
    ("population", "scale"),
    ("population", "persons"),
    ("population", "zone_size"),
    ("population", "bucket"),
    ("population", "choice", "shifts"),
    ("city", "synthetic", "seed"),
    ("city", "min_link_m"),
    ("extends",),
    ("unknown_key",),
    ("time", "durration"),
]

NASTY_TEXT = st.sampled_from(
    [
        "",
        " ",
        "\x00",
        "a\x00b",
        "x" * 300,
        "../../etc",
        "~nosuchuser/x.csv",
        "1e30",
        "nan",
        "-5min",
        "25:00",
        "1h30min",
        "99999999999999999999h",
        "07:00",
        "fire",
        "Old Bridge",
        "\u202e",
        "🚒",
        "lognormal",
        "%s%n",
    ]
)
NUMBERS = st.one_of(
    st.integers(),
    st.integers(min_value=2**62, max_value=2**70),
    st.integers(min_value=-(2**70), max_value=0),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, -1, 1e-300, 1e300, 2**63, 2**64, 10**400, 1e30, 5e-324]),
)
LEAVES = st.one_of(st.none(), st.booleans(), NUMBERS, NASTY_TEXT, st.text(max_size=40))
VALUES = st.recursive(
    LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, max_size=30), st.dictionaries(st.one_of(NASTY_TEXT, st.text(max_size=10)), inner, max_size=6)
    ),
    max_leaves=40,
)


def _set(data: dict, path: tuple, value) -> dict:
    data = copy.deepcopy(data)
    node = data
    for part in path[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[path[-1]] = value
    return data


def _load(source, **kw):
    try:
        result = load_scenario(source, **kw)
    except ScenarioError as exc:
        assert str(exc) and exc.problems, "a ScenarioError says what is wrong"
        assert len(str(exc)) < 20_000, "an error is one readable paragraph"
        return None
    assert isinstance(result, Scenario)
    return result


@RUNS
def test_any_mapping_gives_a_scenario_or_a_scenario_error(examples, tmp_path, memory_bound):
    @fuzz_settings(examples)
    @given(edits=st.lists(st.tuples(st.sampled_from(PATHS), VALUES), min_size=1, max_size=4))
    def check(edits):
        data = BASE
        for path, value in edits:
            data = _set(data, path, value)
        with bounded("load_scenario(mapping)"):
            _load(data, base_dir=tmp_path)

    check()


@RUNS
def test_any_yaml_file_gives_a_scenario_or_a_scenario_error(examples, tmp_path, memory_bound):
    path = tmp_path / "s.yaml"

    @fuzz_settings(examples)
    @given(edits=st.lists(st.tuples(st.sampled_from(PATHS), VALUES), max_size=3))
    def check(edits):
        data = BASE
        for where, value in edits:
            data = _set(data, where, value)
        try:
            text = yaml.safe_dump(data, allow_unicode=True)
        except (yaml.YAMLError, UnicodeEncodeError, ValueError):
            assume(False)
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        with bounded("load_scenario(file)"):
            _load(path)

    check()


# Pieces of YAML text, hostile ones included, glued together at random.
FRAGMENTS = st.sampled_from(
    [
        "city: {synthetic: {}}\n",
        "time: {duration: 1e30}\n",
        "time: {duration: 1.0e+30}\n",
        "seed: 18446744073709551616\n",
        "a: &a [x, x, x, x, x, x, x, x, x]\n",
        "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n",
        "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n",
        "d: [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n",
        "e: &e [1, *e]\n",
        "f: " + "[" * 200 + "]" * 200 + "\n",
        "g: " + "{a: " * 100 + "1" + "}" * 100 + "\n",
        'name: "x\\0y"\n',
        "\x00",
        "\t",
        "---\n",
        "--- !!python/object/apply:os.system [echo hi]\n",
        "demand: {gravity: {profile: [" + ", ".join(["1"] * 3000) + "]}}\n",
        "<<: *a\n",
        "? [a, b]\n: c\n",
        "resources: {stations: [{name: S, kind: fire, node: 1, units: {engine: 9223372036854775808}}]}\n",
        "incidents: {call_delay: {dist: lognormal, mean: 1e-300, sd: 30}}\n",
        "extends: default\n",
        "extends: /dev/zero\n",
        "demand: {trips: /dev/zero}\n",
        "\ufeff",
        "%YAML 1.1\n",
        "!!binary AAAA\n",
        ": :\n",
    ]
)


@RUNS
def test_any_yaml_text_gives_a_scenario_or_a_scenario_error(examples, tmp_path, memory_bound):
    path = tmp_path / "t.yaml"

    @fuzz_settings(examples)
    @given(parts=st.lists(st.one_of(FRAGMENTS, st.text(max_size=30)), min_size=1, max_size=8))
    def check(parts):
        path.write_text("".join(parts), encoding="utf-8", errors="surrogatepass")
        with bounded("load_scenario(text)"):
            _load(path)

    check()


@RUNS
def test_any_bytes_give_a_scenario_or_a_scenario_error(examples, tmp_path, memory_bound):
    path = tmp_path / "b.yaml"
    good = yaml.safe_dump(BASE).encode()

    @fuzz_settings(examples)
    @given(pos=st.integers(0, len(good)), junk=st.binary(max_size=20), cut=st.integers(0, len(good)))
    def check(pos, junk, cut):
        path.write_bytes((good[:pos] + junk + good[pos:])[: max(cut, 1)])
        with bounded("load_scenario(bytes)"):
            _load(path)

    check()
