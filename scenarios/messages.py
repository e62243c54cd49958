"""Pydantic's validation errors as sentences for a person, with field paths and lines."""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from .errors import Problem
from .schema import CrossFieldError, Scenario
from .yaml_reader import Loc, path_text

__all__ = ["MAX_PROBLEMS", "capped", "merge_problems", "show_value", "validation_problems"]

#: Most problems listed in one error (the rest are counted).
MAX_PROBLEMS: int = 25


def show_value(value: Any) -> str:
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
        return f"must be {words} {ctx.get(key)}, got {show_value(value)}"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected')}, got {show_value(value)}"
    if kind in _TYPE_TEXT:
        return f"{_TYPE_TEXT[kind]}, got {show_value(value)}"
    return f"{err['msg'].rstrip('.')}, got {show_value(value)}"


def validation_problems(exc: ValidationError, lines: Mapping[Loc, int], overridden: list[Loc]) -> list[Problem]:
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
                out.append(Problem(path_text(where), f"{msg} (set by an override)"))
            else:
                out.append(Problem(path_text(where), msg, _line_of(where, lines)))
    return out


def capped(problems: list[Problem]) -> list[Problem]:
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


def merge_problems(first: list[Problem], second: list[Problem]) -> list[Problem]:
    """Both lists of problems, sorted by line (problems without a line last)."""
    both = first + second
    return sorted(both, key=lambda p: (p.line is None, p.line or 0))
