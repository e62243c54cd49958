"""The scenario spec: a validated schema for scenario files and a library of built-ins.

A scenario is a YAML file with sections ``city`` (required), ``time``, ``seed``,
``demand``, ``traffic``, ``outputs`` and, added by later issues, ``incidents``,
``resources``, ``interventions``, ``feeds`` and ``population``. Read one with
:func:`load_scenario`; every problem raises a :class:`ScenarioError` naming the file,
the field path and the line.

This package imports nothing else of the project.
"""

from basics.clock import DAY_S, format_duration, parse_clock, parse_duration, parse_time_point

from .errors import Problem, ScenarioError
from .loader import (
    LIBRARY_DIR,
    builtin_path,
    builtin_scenarios,
    dump_resolved,
    hash_payload,
    load_city,
    load_scenario,
    scenario_hash,
)
from .schema import (
    BUILTIN_CITIES,
    DEFAULT_PROFILE,
    TRIPS_COLUMNS,
    CitySpec,
    DemandSpec,
    GravityDemand,
    OutputSpec,
    Scenario,
    SyntheticCity,
    TimeSpec,
    TrafficSpec,
)

__all__ = [
    "BUILTIN_CITIES",
    "DAY_S",
    "DEFAULT_PROFILE",
    "LIBRARY_DIR",
    "TRIPS_COLUMNS",
    "CitySpec",
    "DemandSpec",
    "GravityDemand",
    "OutputSpec",
    "Problem",
    "Scenario",
    "ScenarioError",
    "SyntheticCity",
    "TimeSpec",
    "TrafficSpec",
    "builtin_path",
    "builtin_scenarios",
    "dump_resolved",
    "format_duration",
    "hash_payload",
    "load_city",
    "load_scenario",
    "parse_clock",
    "parse_duration",
    "parse_time_point",
    "scenario_hash",
]
