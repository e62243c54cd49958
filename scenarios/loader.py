"""Reading scenario files: YAML in, a validated :class:`~scenarios.schema.Scenario` out.

Every problem -- a missing file, bad YAML, a typo in a field name, a value of the wrong
kind, a missing trips table -- becomes one :class:`~scenarios.errors.ScenarioError` whose
message is a single paragraph naming the file, the field path and the line, with all the
problems found at once. No pydantic traceback reaches the user.

The resolved scenario (seconds and absolute paths, defaults filled in) is what the twin
saves beside its results, and :func:`scenario_hash` identifies it.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
import os
import tempfile
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from .base import check_path_text, expanduser
from .errors import Problem, ScenarioError
from .schema import _SUMO_BUILTINS, BUILTIN_CITIES, CitySpec, CrossFieldError, Scenario

__all__ = [
    "LIBRARY_DIR",
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

# Fields that hold file paths (overrides resolve them against the working directory).
_PATH_FIELDS: tuple[tuple[str, str], ...] = (
    ("city", "osm"),
    ("city", "graphml"),
    ("city", "sumo"),
    ("demand", "trips"),
    ("demand", "sumo"),
    ("outputs", "dir"),
)
# Fields that do not change what is simulated, left out of the hash.
_COSMETIC: tuple[tuple[str, ...], ...] = (("name",), ("description",), ("outputs", "dir"))

Loc = tuple[str | int, ...]


# ------------------------------------------------------------------------------- YAML


class _Loader(yaml.SafeLoader):
    """YAML loader that keeps ``10:00`` a string.

    YAML 1.1 reads unquoted ``10:00`` as the base-60 integer 600, which would silently
    turn a 10 o'clock start into ten minutes past midnight. Here any int or float written
    with a colon stays text, and :func:`~scenarios.timeparse.parse_clock` reads it.
    """


def _colon_aware(constructor: Any) -> Any:
    def construct(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Any:
        text = loader.construct_scalar(node)
        return text if ":" in text else constructor(loader, node)

    return construct


_Loader.add_constructor("tag:yaml.org,2002:int", _colon_aware(yaml.SafeLoader.construct_yaml_int))
_Loader.add_constructor("tag:yaml.org,2002:float", _colon_aware(yaml.SafeLoader.construct_yaml_float))


#: Largest scenario file read, in bytes (1 MiB; the built-in ones are under 6 KB).
#: Big tables belong in the files a scenario names (``demand.trips``, ``population.zones``).
MAX_YAML_BYTES: int = 1 << 20

#: Most values (keys, items and scalars, every alias counted as the whole value it
#: repeats) one scenario file may hold: an alias "bomb" that would expand to billions of
#: values is refused before anything is built from it.
MAX_YAML_NODES: int = 100_000

#: Deepest nesting of lists and mappings in a scenario file (aliases counted as what
#: they repeat); real scenarios nest 5-6 levels.
MAX_YAML_DEPTH: int = 32

#: Longest chain of ``extends:`` (a file extending a file extending ...).
MAX_EXTENDS_DEPTH: int = 16

#: Most problems listed in one error (the rest are counted).
MAX_PROBLEMS: int = 25


class _LimitExceeded(Exception):
    """A scenario file beyond one of the limits above (where and why)."""

    def __init__(self, loc: Loc, message: str, line: int | None) -> None:
        super().__init__(message)
        self.loc, self.message, self.line = loc, message, line


class _BoundedLoader(_Loader):
    """:class:`_Loader` that counts what it composes and stops at the limits.

    Every node composed counts one; an alias counts the whole value it repeats (its
    size is known once its anchor is composed, so counting costs nothing extra), and
    the nesting depth is the depth of the value once aliases are expanded. An alias to
    a list or mapping that contains it (a recursive alias) is refused. All of this
    happens while composing, before a single Python object is constructed, so a file
    that would expand beyond the limits costs at most the limits' worth of work.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.n_nodes = 0
        self._loc: list[str | int] = []
        self._size: dict[int, tuple[int, int]] = {}  # id(collection) -> (nodes, depth)

    def _fail(self, message: str, mark: Any, *, field_of_items: bool = False) -> None:
        loc = list(self._loc)
        if field_of_items:  # name the list or mapping, not its 50,000th item
            while loc and isinstance(loc[-1], int):
                loc.pop()
        if len(loc) > 8:
            loc = loc[:8] + ["..."]
        raise _LimitExceeded(tuple(loc), message, mark.line + 1 if mark is not None else None)

    def _count(self, nodes: int, depth: int, mark: Any) -> None:
        self.n_nodes += nodes
        if self.n_nodes > MAX_YAML_NODES:
            self._fail(
                f"the file holds more than {MAX_YAML_NODES:,} values here and above "
                "(aliases counted as what they repeat); a scenario file may hold at most "
                f"{MAX_YAML_NODES:,} (put long tables in a file the scenario names)",
                mark,
                field_of_items=True,
            )
        if len(self._loc) + depth > MAX_YAML_DEPTH:
            self._fail(
                f"nests lists and mappings more than {MAX_YAML_DEPTH} levels deep "
                "(aliases counted as what they repeat)",
                mark,
            )

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        part: str | int | None = None
        if isinstance(index, yaml.ScalarNode):
            part = index.value
        elif isinstance(index, int) and not isinstance(index, bool):
            part = index
        elif isinstance(index, yaml.Node):
            part = "<key>"
        if part is not None:
            self._loc.append(part)
        try:
            event = self.peek_event()
            if isinstance(event, yaml.AliasEvent):
                node = super().compose_node(parent, index)
                if isinstance(node, yaml.CollectionNode):
                    if id(node) not in self._size:
                        self._fail(
                            f"the alias *{event.anchor} repeats a list or mapping that contains it (a recursive alias)",
                            event.start_mark,
                        )
                    self._count(*self._size[id(node)], event.start_mark)
                else:
                    self._count(1, 0, event.start_mark)
                return node
            self._count(1, 0, event.start_mark)
            node = super().compose_node(parent, index)
            if isinstance(node, yaml.CollectionNode):
                nodes, depth = 1, 0
                children = (
                    node.value if isinstance(node, yaml.SequenceNode) else [n for pair in node.value for n in pair]
                )
                for child in children:
                    n, d = self._size.get(id(child), (1, 0))
                    nodes, depth = nodes + n, max(depth, d)
                self._size[id(node)] = (nodes, depth + 1)
            return node
        finally:
            if part is not None:
                self._loc.pop()


def _read_text(path: Path, source: str) -> str:
    """A scenario file's text, at most :data:`MAX_YAML_BYTES`, NUL-free UTF-8."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_YAML_BYTES + 1)
    except FileNotFoundError:
        raise ScenarioError(source, [Problem("", f"file not found (looked for '{path.absolute()}')")]) from None
    except IsADirectoryError:
        raise ScenarioError(source, [Problem("", f"'{path}' is a folder, not a file")]) from None
    except (OSError, ValueError) as exc:
        raise ScenarioError(source, [Problem("", f"could not be read: {exc}")]) from None
    if len(raw) > MAX_YAML_BYTES:
        try:
            size = f"{path.stat().st_size / (1 << 20):,.1f} MiB"
        except OSError:
            size = "more than that"
        raise ScenarioError(
            source,
            [
                Problem(
                    "",
                    (
                        f"is larger than a scenario file may be ({size}; at most {MAX_YAML_BYTES // (1 << 20)} MiB): "
                        "long tables belong in the files a scenario names, such as demand.trips"
                    ),
                )
            ],
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ScenarioError(
            source, [Problem("", (f"is not UTF-8 text: byte {raw[exc.start]:#04x} at line {line} cannot be decoded"))]
        ) from None
    return text


def _read_yaml(path: Path, source: str) -> tuple[Any, dict[Loc, int], list[Problem]]:
    """Read a YAML file; return the data, a field-path -> line map and duplicate keys.

    The file's size, the number of values it holds (aliases expanded) and their
    nesting are bounded (:data:`MAX_YAML_BYTES`, :data:`MAX_YAML_NODES`,
    :data:`MAX_YAML_DEPTH`); beyond them, and for characters YAML does not allow (a
    NUL byte), a :class:`ScenarioError` names the file, the field and the line.
    """
    text = _read_text(path, source)
    loader = None
    try:
        loader = _BoundedLoader(text)
        node = loader.get_single_node()
        lines: dict[Loc, int] = {}
        duplicates: list[Problem] = []
        if node is not None:
            _walk(node, (), lines, duplicates, set())
        data = loader.construct_document(node) if node is not None else None
    except _LimitExceeded as exc:
        raise ScenarioError(source, [Problem(_path_text(exc.loc), exc.message, exc.line)]) from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        what = (
            "a NUL byte"
            if exc.character in (0, "\0")
            else f"the character {chr(exc.character) if isinstance(exc.character, int) else exc.character!r}"
        )
        raise ScenarioError(
            source,
            [
                Problem(
                    "",
                    (
                        f"is not valid YAML: it contains {what} at line {line}, which YAML does not allow; "
                        "remove it (the file may not be a text file)"
                    ),
                )
            ],
        ) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        what = ": ".join(x for x in (exc.context, exc.problem) if x)
        raise ScenarioError(source, [Problem("", f"is not valid YAML{where}: {what}")]) from None
    except yaml.YAMLError as exc:
        raise ScenarioError(source, [Problem("", f"is not valid YAML: {exc}")]) from None
    except RecursionError:  # not reached within MAX_YAML_DEPTH; a last line of defence
        raise ScenarioError(source, [Problem("", "nests too deeply to be read")]) from None
    finally:
        if loader is not None:
            loader.dispose()
    return data, lines, duplicates


def parse_yaml_text(text: str) -> Any:
    """Parse a short YAML text (an inject line, a request) with the scenario files' bounds.

    Times written ``10:00`` stay text; the number of values (aliases expanded), their
    nesting and the text's length are bounded as for scenario files
    (:data:`MAX_YAML_NODES`, :data:`MAX_YAML_DEPTH`, :data:`MAX_YAML_BYTES`).

    Raises
    ------
    ValueError
        Not YAML, or beyond a bound; the message says where (never another exception).
    """
    if len(text) > MAX_YAML_BYTES:
        raise ValueError(f"the text is longer than {MAX_YAML_BYTES:,} characters")
    loader = None
    try:
        loader = _BoundedLoader(text)
        node = loader.get_single_node()
        return loader.construct_document(node) if node is not None else None
    except _LimitExceeded as exc:
        where = f"at {_path_text(exc.loc)}: " if exc.loc else ""
        raise ValueError(where + exc.message) from None
    except yaml.YAMLError as exc:
        raise ValueError(" ".join(str(exc).split())) from None
    except RecursionError:
        raise ValueError("nests too deeply to be read") from None
    finally:
        if loader is not None:
            loader.dispose()


def _walk(node: yaml.Node, path: Loc, lines: dict[Loc, int], duplicates: list[Problem], active: set[int]) -> None:
    """Record the line of every key and list item; note keys given twice."""
    if id(node) in active:  # a recursive alias
        return
    active.add(id(node))
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                continue
            key, line = key_node.value, key_node.start_mark.line + 1
            sub = (*path, key)
            if key in seen:
                duplicates.append(
                    Problem(_path_text(sub), (f"is given twice (lines {seen[key]} and {line}); keep one"), line)
                )
            seen[key] = line
            lines.setdefault(sub, line)
            _walk(value_node, sub, lines, duplicates, active)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            sub = (*path, index)
            lines.setdefault(sub, item.start_mark.line + 1)
            _walk(item, sub, lines, duplicates, active)
    active.discard(id(node))


# ------------------------------------------------------------------------------ errors


def _path_text(loc: Loc) -> str:
    """``("demand", "gravity", "profile", 3)`` -> ``"demand.gravity.profile[3]"``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _show(value: Any) -> str:
    """A user's value, quoted and shortened for a message."""
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "nothing (null)"
    if isinstance(value, str):
        text = f"'{value}'"
    elif isinstance(value, Mapping):
        text = "a mapping {" + ", ".join(str(k) for k in list(value)[:6]) + "}"
    elif isinstance(value, list):
        text = f"a list of {len(value)}"
    else:
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _model_at(loc: Loc) -> type[BaseModel] | None:
    """The schema model a location points into (for listing its fields)."""
    model: type[BaseModel] = Scenario
    for part in loc:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        if field is None:
            return None
        candidates = [field.annotation]
        if isinstance(field.annotation, types.UnionType) or typing.get_origin(field.annotation) is typing.Union:
            candidates = list(typing.get_args(field.annotation))
        nested = [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]
        if not nested:
            return None
        model = nested[0]
    return model


_TYPE_TEXT = {
    "int_parsing": "expected a whole number",
    "int_type": "expected a whole number",
    "int_from_float": "expected a whole number",
    "float_parsing": "expected a number",
    "float_type": "expected a number",
    "finite_number": "expected a finite number",
    "bool_parsing": "expected true or false",
    "bool_type": "expected true or false",
    "string_type": "expected text",
    "dict_type": "expected a mapping (key: value lines)",
    "model_type": "expected a mapping (key: value lines)",
    "model_attributes_type": "expected a mapping (key: value lines)",
    "list_type": "expected a list",
}
_BOUND_TEXT = {
    "greater_than": ("gt", "greater than"),
    "greater_than_equal": ("ge", "at least"),
    "less_than": ("lt", "less than"),
    "less_than_equal": ("le", "at most"),
}


def _message(err: Mapping[str, Any]) -> str:
    """Turn one pydantic error into a sentence for a person."""
    kind, loc, value = err["type"], tuple(err["loc"]), err.get("input")
    ctx = err.get("ctx") or {}
    if kind == "missing":
        if loc == ("city",):
            return (
                "is missing: every scenario needs a city, one of synthetic: {} "
                "(generated), osm: FILE-or-built-in-name (e.g. helsinki), graphml: FILE"
            )
        return "is required but missing"
    if kind == "extra_forbidden":
        model = _model_at(loc[:-1])
        if model is None:
            return "is not a known field"
        allowed = list(model.model_fields)
        near = difflib.get_close_matches(str(loc[-1]), allowed, n=1, cutoff=0.6)
        hint = f"; did you mean '{near[0]}'?" if near else ""
        what = "section" if len(loc) == 1 else "field"
        return f"is not a known {what}{hint} (allowed here: {', '.join(allowed)})"
    if kind in ("value_error", "assertion_error"):
        text = str(ctx.get("error", err["msg"]))
        return text.removeprefix("Value error, ")
    if kind in _BOUND_TEXT:
        key, words = _BOUND_TEXT[kind]
        return f"must be {words} {ctx.get(key)}, got {_show(value)}"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected')}, got {_show(value)}"
    if kind in _TYPE_TEXT:
        return f"{_TYPE_TEXT[kind]}, got {_show(value)}"
    return f"{err['msg'].rstrip('.')}, got {_show(value)}"


def _problems(exc: ValidationError, lines: Mapping[Loc, int], overridden: list[Loc]) -> list[Problem]:
    """All validation errors as problems with paths and lines."""
    out: list[Problem] = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        cause = (err.get("ctx") or {}).get("error")
        if err["type"] == "value_error" and isinstance(cause, CrossFieldError):
            entries = [((*loc, *rel.split(".")), msg) for rel, msg in cause.problems]
        else:
            entries = [(loc, _message(err))]
        for where, msg in entries:
            if any(where[: len(o)] == o for o in overridden):
                out.append(Problem(_path_text(where), f"{msg} (set by an override)"))
            else:
                out.append(Problem(_path_text(where), msg, _line_of(where, lines)))
    return out


def _capped(problems: list[Problem]) -> list[Problem]:
    """At most :data:`MAX_PROBLEMS` problems; the rest counted in one more."""
    if len(problems) <= MAX_PROBLEMS:
        return problems
    rest = len(problems) - MAX_PROBLEMS
    return problems[:MAX_PROBLEMS] + [Problem("", f"and {rest:,} more problem(s) like these")]


def _line_of(loc: Loc, lines: Mapping[Loc, int]) -> int | None:
    """The line of a field, or of the nearest enclosing key that is in the file."""
    for end in range(len(loc), 0, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


# --------------------------------------------------------------------------- overrides


def _apply_overrides(
    data: dict[str, Any], overrides: Mapping[str, Any], source: str
) -> tuple[dict[str, Any], list[Loc]]:
    """Set dotted-path overrides in a copy of the raw data; paths resolve against cwd."""
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
                            (f"override '{key}' reaches inside it, but it is {_show(child)}, not a section"),
                        )
                    ],
                )
            node = child
        node[parts[-1]] = copy.deepcopy(value)
        touched.append(parts)
    for section, field in _PATH_FIELDS:
        if not any((section, field)[: len(t)] == t for t in touched):
            continue
        value = (data.get(section) or {}).get(field) if isinstance(data.get(section), dict) else None
        if (
            isinstance(value, str)
            and value.strip()
            and value.strip().lower() not in BUILTIN_CITIES + _SUMO_BUILTINS
            and "\0" not in value
            and not expanduser(Path(value)).is_absolute()
        ):
            data[section][field] = os.path.abspath(expanduser(Path(value)))
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
    lines: dict[Loc, int] = {}
    problems: list[Problem] = []
    name_default = "scenario"
    if isinstance(source, Scenario):
        label, data = "<scenario>", source.resolved()
        base = Path(base_dir) if base_dir is not None else Path.cwd()
    elif isinstance(source, Mapping):
        label, data = "<dict>", dict(source)
        base = Path(base_dir) if base_dir is not None else Path.cwd()
    elif isinstance(source, (str, os.PathLike)):
        label = os.fspath(source)
        if isinstance(label, bytes):
            label = os.fsdecode(label)
        try:
            check_path_text(label, "scenario file")
        except ValueError as exc:
            raise ScenarioError(_show(label)[1:-1], [Problem("", str(exc))]) from None
        path = expanduser(Path(label))
        if (
            not path.exists()
            and isinstance(source, str)
            and not path.suffix
            and os.sep not in label
            and "/" not in label
        ):
            path = builtin_path(label)
        elif not path.exists() and isinstance(source, str) and _builtin_named(label) is not None:
            path = _builtin_named(label)  # 'evening_peak.yaml' from outside the library
        data, lines, problems = _read_yaml(path, label)
        base = Path(base_dir) if base_dir is not None else path.resolve().parent
        name_default = path.stem
        if data is None:
            raise ScenarioError(
                label, [Problem("", ("is empty; a scenario needs at least a city, e.g. 'city: {synthetic: {}}'"))]
            )
    else:
        raise TypeError(f"load_scenario takes a path, a mapping or a Scenario, not {type(source).__name__}")
    if not isinstance(data, dict):
        raise ScenarioError(
            label, [Problem("", (f"must be a mapping of sections (city:, time:, demand:, ...), got {_show(data)}"))]
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
        problems = _merge(problems, _problems(exc, lines, overridden))
        raise ScenarioError(label, _capped(problems)) from None
    except RecursionError:  # a mapping given from code that contains itself
        raise ScenarioError(label, [Problem("", "nests too deeply (or contains itself)")]) from None
    if problems:
        raise ScenarioError(label, _capped(problems))
    return scenario


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
    inherited.  Relative paths in the parent resolve against the extending
    file's folder.
    """
    data = dict(data)
    ref = data.pop("extends")
    if not isinstance(ref, str) or not ref.strip():
        raise ScenarioError(
            label, [Problem("extends", f"must name a scenario file or built-in scenario, got {_show(ref)}")]
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
    if not path.is_file() and _builtin_named(ref) is not None:
        path = _builtin_named(ref)  # a built-in, named with or without .yaml
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
    parent, _, problems = _read_yaml(path, str(path))
    if problems:
        raise ScenarioError(str(path), problems)
    if not isinstance(parent, dict):
        raise ScenarioError(str(path), [Problem("", "must be a mapping of sections")])
    if "extends" in parent:
        parent = _extend(parent, path.resolve().parent, str(path), seen=seen + (key,))
    parent.pop("name", None)
    return _deep_merge(parent, data)


def _merge(first: list[Problem], second: list[Problem]) -> list[Problem]:
    """Both lists of problems, sorted by line (problems without a line last)."""
    both = first + second
    return sorted(both, key=lambda p: (p.line is None, p.line or 0))


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
    for loc in _COSMETIC:
        node = data
        for part in loc[:-1]:
            node = node[part]
        node.pop(loc[-1], None)
    if not include_seed:
        data.pop("seed", None)
    for section, field in _PATH_FIELDS:
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
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(header + body)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
