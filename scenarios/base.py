"""Shared building blocks of the scenario schema: field types, the section base class,
path resolution and the cross-field error. Every section module imports from here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationInfo

from basics.clock import parse_clock, parse_duration
from basics.errors import TwinError

__all__ = [
    "Clock",
    "Count",
    "CrossFieldError",
    "Duration",
    "MAX_COUNT",
    "MAX_PATH_BYTES",
    "MAX_PATH_COMPONENT_BYTES",
    "Number",
    "Section",
    "_Section",
    "check_path_text",
    "expanduser",
    "resolve_file",
    "_resolve_file",
    "_context",
    "_normpath",
]

#: Largest whole number any count field takes: a signed 64-bit integer, so no count
#: wraps around when it reaches numpy or a results file. Fields that allocate per item
#: (units, trips, persons...) have tighter limits of their own.
MAX_COUNT: int = 2**63 - 1

#: Longest file or folder name (one path component) most file systems take, in bytes.
MAX_PATH_COMPONENT_BYTES: int = 255

#: Longest path the twin accepts, in bytes (Linux's PATH_MAX).
MAX_PATH_BYTES: int = 4096


class CrossFieldError(TwinError):
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


def _count(value: Any) -> Any:
    """A whole number within a signed 64-bit integer (checked before pydantic reads it)."""
    value = _not_bool(value)
    if isinstance(value, int) and not -MAX_COUNT - 1 <= value <= MAX_COUNT:
        digits = len(str(abs(value))) if abs(value) < 10**4000 else "thousands of"
        raise ValueError(f"a whole number of {digits} digits is too large (at most {MAX_COUNT:,})")
    return value


Count = Annotated[int, BeforeValidator(_count)]
Number = Annotated[float, BeforeValidator(_not_bool)]
Duration = Annotated[float, BeforeValidator(parse_duration)]
Clock = Annotated[float, BeforeValidator(parse_clock)]


def _context(info: ValidationInfo) -> tuple[Path, bool]:
    """Base folder for relative paths and whether files must exist, from the context."""
    ctx = info.context or {}
    base = Path(ctx.get("base_dir") or Path.cwd())
    return base, bool(ctx.get("check_files", True))


def check_path_text(text: str, what: str) -> None:
    """Refuse a path no file system takes, before it reaches one.

    Raises
    ------
    ValueError
        The path holds a control character (such as a NUL byte), is longer than
        :data:`MAX_PATH_BYTES`, or has a component longer than
        :data:`MAX_PATH_COMPONENT_BYTES` (255) bytes; the message says which.
    """
    bad = next((c for c in text if ord(c) < 32 or ord(c) == 127), None)
    if bad is not None:
        raise ValueError(f"the {what} path contains the control character {bad!r} at position {text.index(bad) + 1}")
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_PATH_BYTES:
        raise ValueError(f"the {what} path is {size:,} bytes long; at most {MAX_PATH_BYTES} are allowed")
    for part in text.replace("\\", "/").split("/"):
        n = len(part.encode("utf-8", "surrogatepass"))
        if n > MAX_PATH_COMPONENT_BYTES:
            raise ValueError(
                f"the {what} path has a name of {n} bytes ('{part[:20]}...'); "
                f"file and folder names can be at most {MAX_PATH_COMPONENT_BYTES} bytes"
            )


def _resolve_file(value: str, info: ValidationInfo, *, what: str, builtins: tuple[str, ...] = ()) -> str:
    """Return ``value`` as an absolute path (or a built-in name), checking it exists."""
    text = value.strip()
    if not text:
        raise ValueError(f"expected a path to a {what}, got an empty string")
    check_path_text(text, what)
    if text.lower() in builtins and not any(sep in text for sep in "/\\."):
        return text.lower()
    base, check = _context(info)
    path = expanduser(Path(text))
    if not path.is_absolute():
        path = base / path
    path = Path(_normpath(path))
    check_path_text(str(path), what)
    try:
        is_file = path.is_file()
    except (OSError, ValueError) as exc:
        raise ValueError(f"{what} '{path}' cannot be looked at: {exc}") from None
    if check and not is_file:
        hint = ""
        if builtins and not any(sep in text for sep in "/\\."):
            hint = f"; it is not a built-in city either (built-in: {', '.join(builtins)})"
        state = "is a folder, not a file" if path.is_dir() else "does not exist"
        raise ValueError(f"{what} '{path}' {state}{hint}")
    return str(path)


def expanduser(path: Path) -> Path:
    """``~`` and ``~user`` expanded; a path naming an unknown user is left as written."""
    try:
        return path.expanduser()
    except RuntimeError:
        return path


def _normpath(path: Path) -> str:
    """Absolute, normalised path without resolving symlinks."""
    return os.path.normpath(os.path.abspath(path))


class _Section(BaseModel):
    """Base of every section: unknown keys are errors; assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


Section = _Section
resolve_file = _resolve_file
