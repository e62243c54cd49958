"""Shared building blocks of the scenario schema: field types, the section base class,
path resolution and the cross-field error. Every section module imports from here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationInfo

from .timeparse import parse_clock, parse_duration

__all__ = ["Clock", "Count", "CrossFieldError", "Duration", "Number", "Section", "_Section",
           "resolve_file", "_resolve_file", "_context", "_normpath"]


class CrossFieldError(ValueError):
    """Problems that involve several fields, each with its own field path.

    Raised inside model validators so the loader can report each problem under the field
    a user should change, instead of under the section as a whole.

    Parameters
    ----------
    problems : list of (str, str)
        ``(field path relative to the model raising it, message)`` pairs.
    """

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(f"{path}: {msg}" for path, msg in self.problems))




def _not_bool(value: Any) -> Any:
    """Refuse ``true``/``false`` where a number is meant (pydantic would take it as 1/0)."""
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {str(value).lower()}")
    return value


Count = Annotated[int, BeforeValidator(_not_bool)]
Number = Annotated[float, BeforeValidator(_not_bool)]
Duration = Annotated[float, BeforeValidator(parse_duration)]
Clock = Annotated[float, BeforeValidator(parse_clock)]


def _context(info: ValidationInfo) -> tuple[Path, bool]:
    """Base folder for relative paths and whether files must exist, from the context."""
    ctx = info.context or {}
    base = Path(ctx.get("base_dir") or Path.cwd())
    return base, bool(ctx.get("check_files", True))


def _resolve_file(value: str, info: ValidationInfo, *, what: str,
                  builtins: tuple[str, ...] = ()) -> str:
    """Return ``value`` as an absolute path (or a built-in name), checking it exists."""
    text = value.strip()
    if not text:
        raise ValueError(f"expected a path to a {what}, got an empty string")
    if text.lower() in builtins and not any(sep in text for sep in "/\\."):
        return text.lower()
    base, check = _context(info)
    path = Path(text).expanduser()
    if not path.is_absolute():
        path = base / path
    path = Path(_normpath(path))
    if check and not path.is_file():
        hint = ""
        if builtins and not any(sep in text for sep in "/\\."):
            hint = f"; it is not a built-in city either (built-in: {', '.join(builtins)})"
        state = "is a folder, not a file" if path.is_dir() else "does not exist"
        raise ValueError(f"{what} '{path}' {state}{hint}")
    return str(path)


def _normpath(path: Path) -> str:
    """Absolute, normalised path without resolving symlinks."""
    return os.path.normpath(os.path.abspath(path))


class _Section(BaseModel):
    """Base of every section: unknown keys are errors; assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


Section = _Section
resolve_file = _resolve_file
