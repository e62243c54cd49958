"""Drill injects: every bad line is rejected with an InputError, logged, and the drill goes on.

Property tests over :func:`twin.cli.drill.parse_inject` (any text) and
:func:`twin.cli.drill.apply_inject` (anything that parses, applied to a real drill),
and the README's promise end to end: ``twin drill --inject`` with 48 bad lines runs
to the end and logs each one as ``inject_rejected``.
"""

from __future__ import annotations

import csv

import pytest
from hypothesis import given
from hypothesis import strategies as st

from basics.errors import InputError
from scenarios import load_scenario
from twin.cli import main
from twin.cli.drill import apply_inject, parse_inject
from twin.model import Twin

from .conftest import RUNS, bounded, fuzz_settings

DRILL = """\
name: fuzz_drill
seed: 2
time: {start: "08:00", duration: 40min, step: 2s}
city: {synthetic: {blocks_x: 4, blocks_y: 4, bridges: 1, zone_blocks: 2, arterial_every: 2}}
demand: {gravity: {total_trips: 300}}
outputs: {interval: 10min}
incidents:
  call_delay: 30s
  turnout: 20s
  drill:
    - {at: "08:05", type: fire, location: 6, severity: 1}
"""

#: Bad inject lines: wrong types, times, places, severities, keys, syntax, hostile YAML.
BAD_LINES = [
    "{at: yesterday, type: fire, location: 6}",
    "{type: [fire], location: 6}",
    "{type: {a: 1}, location: 6}",
    "{type: null, location: 6}",
    "{type: 7, location: 6}",
    "{type: fire, location: null}",
    "{type: fire, location: true}",
    "{type: fire, location: []}",
    "{type: fire, location: [1]}",
    "{type: fire, location: [1, 2, 3]}",
    "{type: fire, location: [.nan, 60]}",
    "{type: fire, location: {x: 1}}",
    "{type: fire, location: 99999999999999999999999}",
    "{type: fire, location: -1}",
    "{type: fire, location: 1e300}",
    "{type: fire, location: Nowhere Street}",
    "{type: fire, location: [0, 0]}",
    "{type: fire, location: 6, severity: 9}",
    "{type: fire, location: 6, severity: 0}",
    "{type: fire, location: 6, severity: true}",
    "{type: fire, location: 6, severity: 2.5}",
    "{type: fire, location: 6, severity: [2]}",
    '{type: fire, location: 6, at: "25:00"}',
    "{type: fire, location: 6, at: -5min}",
    "{type: fire, location: 6, at: .nan}",
    "{type: fire, location: 6, at: [1]}",
    "{type: fire, location: 6, at: true}",
    "{type: fire, location: 6, at: 400d}",
    "{type: fire, location: 6, at: 10h}",
    "{type: fire, location: 6, notes: {a: 1}}",
    "{type: fire, location: 6, notes: [1]}",
    "{type: volcano, location: 6}",
    "{type: fire}",
    "{location: 6}",
    "{type: fire, location: 6, colour: red}",
    "{1: 2}",
    "[1, 2]",
    "fire at the bridge",
    "{type: fire, location: 6",
    '{"type": "fire", "location": NaN}',
    '{"type": "fire", "location": ' + "[" * 3000 + "]" * 3000 + "}",
    "{type: !!python/object/apply:os.system [id], location: 6}",
    "{station: [Fire Station 1], in_service: false}",
    "{station: Nowhere, in_service: false}",
    "{station: Fire Station 1, in_service: maybe}",
    "{station: Fire Station 1}",
    "{a: &a [x, x, x, x, x, x, x, x], b: &b [*a, *a, *a, *a, *a, *a, *a, *a], c: &c [*b, *b, *b, *b, *b, *b, *b, *b], "
    "d: [*c, *c, *c, *c, *c, *c, *c, *c], type: fire, location: 6}",
    "{type: fire, location: 6, notes: " + "x" * 5000 + "}",
]


@pytest.fixture(scope="module")
def drill_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("drill") / "drill.yaml"
    path.write_text(DRILL)
    return path


@pytest.fixture(scope="module")
def comp(drill_file):
    twin = Twin(load_scenario(drill_file, overrides={"incidents.enabled": True}))
    twin.run_until(600.0)
    return twin.components["emergency"]


def test_there_are_48_bad_lines():
    assert len(BAD_LINES) == 48 and len(set(BAD_LINES)) == 48


@pytest.mark.parametrize("line", BAD_LINES)
def test_each_bad_line_is_an_input_error(line, comp):
    with bounded("an inject line", 2.0):
        with pytest.raises(InputError):
            apply_inject(comp, parse_inject(line))


def test_a_drill_with_48_bad_injects_runs_to_the_end_and_logs_each(tmp_path, drill_file, capsys):
    injects = tmp_path / "injects.txt"
    good = '{type: medical, location: 12, at: "08:15", severity: 2, notes: "fall"}'
    injects.write_text("\n".join(BAD_LINES + [good]) + "\n")
    out = tmp_path / "run"
    assert main(["drill", str(drill_file), "--out", str(out), "--inject", str(injects), "-q"]) == 0
    assert capsys.readouterr().out.count("inject rejected") == 48
    with open(out / "after_action.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert sum(r["event"] == "inject_rejected" for r in rows) == 48
    assert any(r["incident_type"] == "medical" and r["clock"] == "08:15:00" for r in rows), "the good one still runs"


LINE_PIECES = st.sampled_from(
    [
        "{",
        "}",
        "[",
        "]",
        ",",
        ": ",
        "type",
        "location",
        "severity",
        "notes",
        "at",
        "station",
        "in_service",
        "fire",
        "medical",
        "6",
        "12",
        "-1",
        "1e300",
        ".nan",
        "true",
        "null",
        '"08:15"',
        "25:00",
        "yesterday",
        "10min",
        "&a ",
        "*a",
        "!!python/name:os.system",
        "Old Bridge",
        "\x00",
        "'",
        '"',
        "#",
        "9" * 30,
        "[24.9, 60.1]",
    ]
)


@RUNS
def test_any_line_parses_or_is_an_input_error(examples, memory_bound):
    @fuzz_settings(examples)
    @given(line=st.one_of(st.text(max_size=60), st.lists(LINE_PIECES, max_size=14).map("".join)))
    def check(line):
        with bounded("parse_inject"):
            try:
                obj = parse_inject(line)
            except InputError as exc:
                assert str(exc).startswith("inject")
                return
        assert obj is None or isinstance(obj, dict)

    check()


@RUNS
def test_any_parsed_inject_applies_or_is_an_input_error(examples, comp, memory_bound):
    locations = st.one_of(st.integers(-3, 40), st.sampled_from(["Old Bridge", "x", [24.9, 60.1], [0.0, 0.0]]))
    fields = st.fixed_dictionaries(
        {"type": st.sampled_from(["fire", "medical", "traffic_crash", "flood", "volcano"]), "location": locations},
        optional={
            "severity": st.integers(-1, 7),
            "notes": st.text(max_size=10),
            "at": st.one_of(st.sampled_from(["08:00", "08:30", "07:00", "10min", "2h", "23:59"]), st.floats(0, 1e5)),
        },
    )

    @fuzz_settings(min(examples, 300))
    @given(obj=fields)
    def check(obj):
        import json

        with bounded("apply_inject"):
            try:
                parsed = parse_inject(json.dumps(obj))
                apply_inject(comp, parsed)
            except InputError:
                pass

    check()
