"""Reading YAML with bounds: scenario files and short YAML texts.

Times written ``10:00`` stay text (YAML 1.1 would read them as base-60 numbers); the
size of a file, the number of values it holds (aliases counted as what they repeat) and
their nesting are bounded, so any input costs bounded work; every key's line is kept
for the messages of :mod:`scenarios.loader`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .errors import Problem, ScenarioError

__all__ = ["Loc", "MAX_YAML_BYTES", "MAX_YAML_DEPTH", "MAX_YAML_NODES", "parse_yaml_text", "path_text", "read_yaml"]

#: a field path: ``("demand", "gravity", "profile", 3)``
Loc = tuple[str | int, ...]

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


def path_text(loc: Loc) -> str:
    """``("demand", "gravity", "profile", 3)`` -> ``"demand.gravity.profile[3]"``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


class _Loader(yaml.SafeLoader):
    """YAML loader that keeps ``10:00`` a string.

    YAML 1.1 reads unquoted ``10:00`` as the base-60 integer 600, which would silently
    turn a 10 o'clock start into ten minutes past midnight. Here any int or float written
    with a colon stays text, and :func:`~basics.clock.parse_clock` reads it.
    """


def _colon_aware(constructor: Any) -> Any:
    def construct(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Any:
        text = loader.construct_scalar(node)
        return text if ":" in text else constructor(loader, node)

    return construct


_Loader.add_constructor("tag:yaml.org,2002:int", _colon_aware(yaml.SafeLoader.construct_yaml_int))
_Loader.add_constructor("tag:yaml.org,2002:float", _colon_aware(yaml.SafeLoader.construct_yaml_float))


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

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
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
            event = self.peek_event()  # type: ignore[no-untyped-call]  # (untyped in types-PyYAML)
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


def read_text(path: Path, source: str) -> str:
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


def read_yaml(path: Path, source: str) -> tuple[Any, dict[Loc, int], list[Problem]]:
    """Read a YAML file; return the data, a field-path -> line map and duplicate keys.

    The file's size, the number of values it holds (aliases expanded) and their
    nesting are bounded (:data:`MAX_YAML_BYTES`, :data:`MAX_YAML_NODES`,
    :data:`MAX_YAML_DEPTH`); beyond them, and for characters YAML does not allow (a
    NUL byte), a :class:`ScenarioError` names the file, the field and the line.
    """
    text = read_text(path, source)
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
        raise ScenarioError(source, [Problem(path_text(exc.loc), exc.message, exc.line)]) from None
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
        where = f"at {path_text(exc.loc)}: " if exc.loc else ""
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
                    Problem(path_text(sub), (f"is given twice (lines {seen[key]} and {line}); keep one"), line)
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
