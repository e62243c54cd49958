"""Reading scenario files: YAML in, a validated :class:`~scenarios.schema.Scenario` out.

Every problem -- a missing file, bad YAML, a typo in a field name, a value of the wrong
kind, a missing trips table -- becomes one :class:`~scenarios.errors.ScenarioError` whose
message is a single paragraph naming the file, the field path and the line, with all the
problems found at once. No pydantic traceback reaches the user.

The resolved scenario (seconds and absolute paths, defaults filled in) is what the twin
saves beside its results, and :func:`scenario_hash` identifies it.

The parts live in their own modules (names re-exported here): bounded YAML reading in
:mod:`scenarios.yaml_reader`, validation messages in :mod:`scenarios.messages`, the
resolved scenario's hash and YAML in :mod:`scenarios.resolved`.
"""

from __future__ import annotations

import copy
import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .base import check_path_text, expanduser
from .city import _SUMO_BUILTINS, BUILTIN_CITIES, CitySpec
from .errors import Problem, ScenarioError
from .messages import MAX_PROBLEMS, capped, merge_problems, show_value, validation_problems
from .resolved import PATH_FIELDS, dump_resolved, hash_payload, scenario_hash
from .schema import Scenario
from .yaml_reader import MAX_YAML_BYTES, MAX_YAML_DEPTH, MAX_YAML_NODES, Loc, parse_yaml_text, read_yaml

__all__ = [
    "LIBRARY_DIR",
    "MAX_EXTENDS_DEPTH",
    "MAX_PROBLEMS",
    "MAX_YAML_BYTES",
    "MAX_YAML_DEPTH",
    "MAX_YAML_NODES",
    "builtin_path",
    "builtin_scenarios",
    "dump_resolved",
    "hash_payload",
    "load_city",
    "load_scenario",
    "parse_yaml_text",
    "scenario_hash",
]

#: Folder of the built-in scenario files.
LIBRARY_DIR: Path = Path(__file__).resolve().parent / "library"


#: Longest chain of ``extends:`` (a file extending a file extending ...).
MAX_EXTENDS_DEPTH: int = 16


# --------------------------------------------------------------------------- overrides


def _apply_overrides(
    data: dict[str, Any], overrides: Mapping[str, Any], source: str
) -> tuple[dict[str, Any], list[Loc]]:
    """Set dotted-path overrides in a copy of the raw data; paths resolve against cwd (:func:`_anchor_paths`)."""
    data = copy.deepcopy(data)
    touched: list[Loc] = []
    for key, value in overrides.items():
        if value is None:
            continue
        parts = tuple(str(key).split("."))
        if not all(parts):
            raise ScenarioError(
                source, [Problem("", f"override '{key}' is not a field path such as 'seed' or 'time.duration'")]
            )
        node = data
        for depth, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                raise ScenarioError(
                    source,
                    [
                        Problem(
                            ".".join(parts[: depth + 1]),
                            (f"override '{key}' reaches inside it, but it is {show_value(child)}, not a section"),
                        )
                    ],
                )
            node = child
        # a path the override names resolves against the working directory, as on a command line
        node[parts[-1]] = _anchor_paths(
            copy.deepcopy(value), Path.cwd(), key=parts[-1], section=parts[0], missing_too=True
        )
        touched.append(parts)
    return data, touched


# ------------------------------------------------------------------------------ public


def builtin_scenarios() -> dict[str, Path]:
    """The built-in scenario files by name.

    Returns
    -------
    dict of str to Path
        ``{"default": .../library/default.yaml, ...}``, sorted by name.
    """
    return {p.stem: p for p in sorted(LIBRARY_DIR.glob("*.yaml"))}


def _builtin_named(ref: str) -> Path | None:
    """The built-in scenario a bare name refers to, with or without ``.yaml``/``.yml``.

    ``"evening_peak"`` and ``"evening_peak.yaml"`` both name the library's file (so a
    what-if's ``extends: evening_peak.yaml`` works outside ``scenarios/library``); a
    name with a folder in it never does.
    """
    text = ref.strip()
    if not text or "/" in text or "\\" in text or os.sep in text:
        return None
    stem = text[:-5] if text.lower().endswith(".yaml") else text[:-4] if text.lower().endswith(".yml") else text
    if "." in stem:
        return None
    return builtin_scenarios().get(stem)


def builtin_path(name: str) -> Path:
    """The file of a built-in scenario.

    Parameters
    ----------
    name : str
        A built-in scenario name such as ``"default"``.

    Returns
    -------
    Path
        The library file.

    Raises
    ------
    ScenarioError
        If there is no such built-in scenario (the message lists them).
    """
    library = builtin_scenarios()
    if name in library:
        return library[name]
    near = difflib.get_close_matches(name, list(library), n=1)
    hint = f"did you mean '{near[0]}'? " if near else ""
    raise ScenarioError(
        name,
        [
            Problem(
                "",
                (f"is neither a scenario file nor a built-in scenario; {hint}built-in: {', '.join(library) or 'none'}"),
            )
        ],
    )


def load_scenario(
    source: str | os.PathLike[str] | Mapping[str, Any] | Scenario,
    *,
    base_dir: str | os.PathLike[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    check_files: bool = True,
) -> Scenario:
    """Read and validate a scenario.

    Parameters
    ----------
    source : str, path-like, mapping or Scenario
        A YAML file, the name of a built-in scenario (``"default"``, see
        :func:`builtin_scenarios`), the scenario as a mapping, or a scenario to re-validate
        with overrides.
    base_dir : str or path-like, optional
        Folder that relative paths in the scenario resolve against. Default: the file's
        folder, or the working directory for a mapping.
    overrides : mapping, optional
        Values that replace the file's, keyed by dotted field path
        (``{"seed": 3, "time.duration": "1h", "outputs.dir": "runs/x"}``); a value
        replaces the whole field or section it names. Entries whose value is ``None`` are
        ignored (CLI options left unset can be passed straight through). Relative paths in
        overrides resolve against the working directory, as on a command line.
    check_files : bool, optional
        Check that the files the scenario names exist (and the trips table's header).
        Default True.

    Returns
    -------
    Scenario
        Validated, with times in seconds and paths absolute.

    Raises
    ------
    ScenarioError
        For any problem, with every problem found listed in one paragraph.
    """
    label, data, base, lines, problems, name_default = _read_source(source, base_dir)
    if not isinstance(data, dict):
        raise ScenarioError(
            label,
            [Problem("", (f"must be a mapping of sections (city:, time:, demand:, ...), got {show_value(data)}"))],
        )
    if "extends" in data:
        data = _extend(data, base, label, seen=(label,))
    ref = data.get("baseline")
    if isinstance(ref, str) and not (base / ref.strip()).is_file() and _builtin_named(ref) is not None:
        data = {**data, "baseline": Path(ref.strip()).stem}  # 'baseline: evening_peak.yaml': the built-in
    overridden: list[Loc] = []
    if overrides:
        data, overridden = _apply_overrides(data, overrides, label)
    data.setdefault("name", name_default)
    try:
        scenario = Scenario.model_validate(data, context={"base_dir": base, "check_files": check_files})
    except ValidationError as exc:
        problems = merge_problems(problems, validation_problems(exc, lines, overridden))
        raise ScenarioError(label, capped(problems)) from None
    except RecursionError:  # a mapping given from code that contains itself
        raise ScenarioError(label, [Problem("", "nests too deeply (or contains itself)")]) from None
    if problems:
        raise ScenarioError(label, capped(problems))
    return scenario


def _read_source(
    source: str | os.PathLike[str] | Mapping[str, Any] | Scenario, base_dir: str | os.PathLike[str] | None
) -> tuple[str, Any, Path, dict[Loc, int], list[Problem], str]:
    """What :func:`load_scenario` was given, read: its label, the raw data, the folder
    relative paths resolve against, the lines of its fields, duplicate keys, and the
    scenario's default name.
    """
    lines: dict[Loc, int] = {}
    problems: list[Problem] = []
    name_default = "scenario"
    data: Any
    if isinstance(source, Scenario):
        label, data = "<scenario>", source.resolved()
        base = Path(base_dir) if base_dir is not None else Path.cwd()
    elif isinstance(source, Mapping):
        label, data = "<dict>", dict(source)
        base = Path(base_dir) if base_dir is not None else Path.cwd()
    elif isinstance(source, (str, os.PathLike)):
        label = os.fsdecode(os.fspath(source))
        path = _scenario_path(source, label)
        data, lines, problems = read_yaml(path, label)
        base = Path(base_dir) if base_dir is not None else path.resolve().parent
        name_default = path.stem
        if data is None:
            raise ScenarioError(
                label, [Problem("", ("is empty; a scenario needs at least a city, e.g. 'city: {synthetic: {}}'"))]
            )
    else:
        raise TypeError(f"load_scenario takes a path, a mapping or a Scenario, not {type(source).__name__}")
    return label, data, base, lines, problems, name_default


def _scenario_path(source: str | os.PathLike[str], label: str) -> Path:
    """The file a scenario path or built-in name refers to."""
    try:
        check_path_text(label, "scenario file")
    except ValueError as exc:
        raise ScenarioError(show_value(label)[1:-1], [Problem("", str(exc))]) from None
    path = expanduser(Path(label))
    if not path.exists() and isinstance(source, str) and not path.suffix and os.sep not in label and "/" not in label:
        return builtin_path(label)
    named = _builtin_named(label) if not path.exists() and isinstance(source, str) else None
    if named is not None:
        return named  # 'evening_peak.yaml' from outside the library
    return path


def _deep_merge(parent: Mapping[str, Any], child: Mapping[str, Any]) -> dict[str, Any]:
    """``child`` over ``parent``: mappings merge key by key, anything else replaces."""
    out = dict(parent)
    for key, value in child.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _extend(data: dict[str, Any], base: Path, label: str, *, seen: tuple[str, ...]) -> dict[str, Any]:
    """Resolve ``extends: PARENT`` (a file, relative to ``base``, or a built-in name).

    The scenario is the parent with this file's sections merged over it
    (mappings merge key by key, lists and values replace); ``name`` is never
    inherited.  A relative input path the parent names (its OSM file, trips table,
    feed replay, ...) resolves against the parent's own folder when the file is there
    (:func:`_anchor_paths`), so a what-if elsewhere can extend a scenario that ships
    its data beside it; anything else resolves against the extending file's folder.
    """
    data = dict(data)
    ref = data.pop("extends")
    if not isinstance(ref, str) or not ref.strip():
        raise ScenarioError(
            label, [Problem("extends", f"must name a scenario file or built-in scenario, got {show_value(ref)}")]
        )
    ref = ref.strip()
    if len(seen) > MAX_EXTENDS_DEPTH:
        raise ScenarioError(
            label, [Problem("extends", (f"scenarios extend each other more than {MAX_EXTENDS_DEPTH} levels deep"))]
        )
    try:
        check_path_text(ref, "extended scenario")
    except ValueError as exc:
        raise ScenarioError(label, [Problem("extends", str(exc))]) from None
    path = expanduser(Path(ref))
    if not path.is_absolute():
        path = base / path
    named = _builtin_named(ref)
    if not path.is_file() and named is not None:
        path = named  # a built-in, named with or without .yaml
    if not path.is_file():
        raise ScenarioError(
            label,
            [
                Problem(
                    "extends", f"scenario {ref!r} not found (looked for {path} and a built-in scenario of that name)"
                )
            ],
        )
    key = str(path.resolve())
    if key in seen:
        raise ScenarioError(
            label, [Problem("extends", f"scenarios extend each other in a loop: {' -> '.join(seen + (key,))}")]
        )
    parent, _, problems = read_yaml(path, str(path))
    if problems:
        raise ScenarioError(str(path), problems)
    if not isinstance(parent, dict):
        raise ScenarioError(str(path), [Problem("", "must be a mapping of sections")])
    if "extends" in parent:
        parent = _extend(parent, path.resolve().parent, str(path), seen=seen + (key,))
    parent.pop("name", None)
    return _deep_merge(_anchor_paths(parent, path.resolve().parent), data)


#: keys whose string values name an input file in some section (``city.osm``,
#: ``demand.trips``, ``feeds.sources[].path``, ``baseline``, ...)
PATH_KEYS = frozenset(
    {"osm", "graphml", "sumo", "zones", "polygon", "trips", "path", "sensor_file", "baseline", "dir"}
    | {field for _, field in PATH_FIELDS}
)
#: the top-level sections where those keys name files (``zones`` under ``interventions`` and
#: ``incidents`` are zone names, not files)
PATH_SECTIONS = frozenset({"city", "demand", "outputs", "feeds", "population", "baseline"})


def _anchor_paths(
    data: Any, folder: Path, *, key: str = "", section: str = "", missing_too: bool = False, depth: int = 0
) -> Any:
    """``data`` with its relative paths made absolute against ``folder``.

    Only values under :data:`PATH_KEYS` in the :data:`PATH_SECTIONS` are candidates
    (``section``: the top-level section ``data`` is in; empty for a whole scenario).  Without ``missing_too`` (a
    parent scenario's paths) only those naming an existing file under ``folder`` change;
    with it (a command line's overrides) every relative path does, except built-in names
    (``helsinki``, ``drt``, ``evening_peak.yaml``).  URL paths (``/ngsi-ld/...``) are
    absolute already.  Depth is bounded by the YAML reader; ``depth`` guards mappings from code.
    """
    if depth > 64:
        return data
    if isinstance(data, Mapping):
        return {
            k: _anchor_paths(v, folder, key=str(k), section=section or str(k), missing_too=missing_too, depth=depth + 1)
            for k, v in data.items()
        }
    if isinstance(data, list):
        return [
            _anchor_paths(v, folder, key=key, section=section, missing_too=missing_too, depth=depth + 1) for v in data
        ]
    if key not in PATH_KEYS or section not in PATH_SECTIONS or not isinstance(data, str) or not data.strip():
        return data
    text = data.strip()
    try:
        check_path_text(text, key)
    except ValueError:
        return data  # the schema names the problem with its field
    path = expanduser(Path(text))
    if path.is_absolute():
        return data
    if (folder / path).is_file():
        return str(folder / path)
    builtin = text.lower() in BUILTIN_CITIES + _SUMO_BUILTINS or _builtin_named(text) is not None
    return os.path.abspath(folder / path) if missing_too and not builtin else data


def load_city(
    source: str | os.PathLike[str] | Mapping[str, Any], *, base_dir: str | os.PathLike[str] | None = None
) -> CitySpec:
    """Read a city spec the way ``twin city info`` is given one.

    Parameters
    ----------
    source : str, path-like or mapping
        ``"synthetic"`` (the default generated city); a built-in city name
        (``"helsinki"``); an OSM file (``.osm``, ``.pbf``, ``.xml``...); a ``.graphml``
        file; a scenario (file or built-in name: its ``city`` section); or a city mapping
        (``{"synthetic": {"bridges": 2}}``).
    base_dir : str or path-like, optional
        Folder that relative paths resolve against (default: the working directory).

    Returns
    -------
    CitySpec
        The validated city.

    Raises
    ------
    ScenarioError
        If the city cannot be read.
    """
    if isinstance(source, Mapping):
        spec: Mapping[str, Any] = source
    else:
        text = os.fspath(source)
        lower = text.strip().lower()
        if lower == "synthetic":
            spec = {"synthetic": {}}
        elif lower in BUILTIN_CITIES:
            spec = {"osm": lower}
        elif lower.endswith(".graphml"):
            spec = {"graphml": text}
        elif lower.endswith(".net.xml"):
            spec = {"sumo": text}
        elif lower.endswith((".yaml", ".yml")) or not Path(text).suffix:
            return load_scenario(source, base_dir=base_dir).city
        else:
            spec = {"osm": text}
    return load_scenario({"city": dict(spec)}, base_dir=base_dir).city
