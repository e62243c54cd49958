"""The resolved scenario: its hash (what it simulates) and its YAML saved beside results."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import yaml

from basics.atomic import atomic_open

from .city import _SUMO_BUILTINS, BUILTIN_CITIES
from .schema import Scenario

__all__ = ["COSMETIC_FIELDS", "PATH_FIELDS", "dump_resolved", "hash_payload", "scenario_hash"]

# Fields that hold file paths (overrides resolve them against the working directory).
PATH_FIELDS: tuple[tuple[str, str], ...] = (
    ("city", "osm"),
    ("city", "graphml"),
    ("city", "sumo"),
    ("city", "zones"),
    ("city", "polygon"),
    ("demand", "trips"),
    ("demand", "sumo"),
    ("outputs", "dir"),
)

# Fields that do not change what is simulated, left out of the hash.
COSMETIC_FIELDS: tuple[tuple[str, ...], ...] = (("name",), ("description",), ("outputs", "dir"))


def _file_digest(path: str) -> str:
    """sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def hash_payload(scenario: Scenario, *, include_seed: bool = True) -> dict[str, Any]:
    """What :func:`scenario_hash` hashes: the resolved scenario minus cosmetic fields.

    Parameters
    ----------
    scenario : Scenario
        The scenario.
    include_seed : bool, optional
        Keep the seed (default); without it, replications of one scenario share a hash.

    Returns
    -------
    dict
        ``resolved()`` without ``name``, ``description`` and ``outputs.dir`` (they do not
        change what is simulated), and with each input file replaced by the sha256 of its
        content (so moving a project keeps the hash and editing a trips table changes it).
    """
    data = scenario.resolved()
    for loc in COSMETIC_FIELDS:
        node = data
        for part in loc[:-1]:
            node = node[part]
        node.pop(loc[-1], None)
    if not include_seed:
        data.pop("seed", None)
    for section, field in PATH_FIELDS:
        value = data.get(section, {}).get(field)
        if isinstance(value, str) and value not in BUILTIN_CITIES + _SUMO_BUILTINS and Path(value).is_file():
            data[section][field] = {"sha256": _file_digest(value)}
    return data


def scenario_hash(scenario: Scenario, *, include_seed: bool = True) -> str:
    """A short, stable identifier of what a scenario simulates.

    Parameters
    ----------
    scenario : Scenario
        The scenario.
    include_seed : bool, optional
        Include the seed (default True).

    Returns
    -------
    str
        The first 16 hex digits of the sha256 of the canonical JSON (sorted keys, no
        spaces) of :func:`hash_payload`. Independent of key order in the file and of how
        values were written (``"2h"`` and ``7200`` hash alike).
    """
    text = json.dumps(
        hash_payload(scenario, include_seed=include_seed),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
        allow_nan=False,
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


class _Dumper(yaml.SafeDumper):
    """Writes lists of plain values on one line (``profile: [0.01, ...]``)."""


def _represent_list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    flow = all(isinstance(x, (int, float, str, bool)) or x is None for x in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_Dumper.add_representer(list, _represent_list)


def dump_resolved(scenario: Scenario, path: str | os.PathLike[str]) -> Path:
    """Write the resolved scenario as YAML (atomically), to save beside results.

    Parameters
    ----------
    scenario : Scenario
        The scenario.
    path : str or path-like
        The file to write; its folder is created if needed.

    Returns
    -------
    Path
        The file written. :func:`load_scenario` reads it back to an equal scenario with
        the same hash.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = (
        f"# Resolved scenario '{scenario.name}', hash {scenario_hash(scenario)}.\n"
        "# Written by the twin: defaults filled in, times in seconds (time.start in\n"
        "# seconds after midnight), paths absolute. Load it with load_scenario().\n"
    )
    body = yaml.dump(
        scenario.resolved(), Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True, width=100
    )
    with atomic_open(path, "w", encoding="utf-8") as handle:
        handle.write(header + body)
    return path
