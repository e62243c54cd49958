"""The one error a bad scenario raises."""

from __future__ import annotations

from typing import NamedTuple

from basics.errors import TwinError

__all__ = ["Problem", "ScenarioError"]


class Problem(NamedTuple):
    """One thing wrong with a scenario.

    Attributes
    ----------
    path : str
        The field path (``"time.duration"``, ``"demand.gravity.profile[3]"``), or ``""``
        for the file as a whole.
    message : str
        What is wrong, quoting the value given.
    line : int or None
        The 1-based line in the YAML file, where known.
    """

    path: str
    message: str
    line: int | None = None

    def describe(self) -> str:
        """Return ``"field 'x.y' (line 3): message"``."""
        if not self.path:
            return self.message
        where = f" (line {self.line})" if self.line else ""
        return f"field '{self.path}'{where}: {self.message}"


class ScenarioError(TwinError):
    """A scenario that cannot be used, explained in one paragraph.

    The message names the scenario file and, for each problem, the field path (such as
    ``time.duration``), the YAML line where known, what is wrong and the value given. All
    problems found are reported at once.

    Parameters
    ----------
    source : str
        The scenario as the user named it (a file path, a built-in name or ``"<dict>"``).
    problems : list of Problem or (str, str)
        What is wrong; a plain ``(path, message)`` pair is accepted too.

    Attributes
    ----------
    source : str
        As given.
    problems : list of Problem
        Each problem, so programs (and tests) can look at them one by one.
    """

    def __init__(self, source: str, problems: list[Problem] | list[tuple[str, str]]) -> None:
        self.source = source
        self.problems = [p if isinstance(p, Problem) else Problem(*p) for p in problems]
        super().__init__(self._format())

    def __reduce__(self) -> tuple[type[ScenarioError], tuple[str, list[Problem]]]:
        # Picklable, so errors raised in worker processes (Dask) reach the user intact.
        return (type(self), (self.source, self.problems))

    def _format(self) -> str:
        """Join the problems into one paragraph."""
        head = f"scenario '{self.source}'"
        parts = [p.describe() for p in self.problems]
        if len(parts) == 1:
            return f"{head}: {parts[0]}"
        numbered = "; ".join(f"({i}) {p}" for i, p in enumerate(parts, start=1))
        return f"{head} has {len(parts)} problems: {numbered}"

    @property
    def fields(self) -> list[str]:
        """The field paths with problems, in the order they were found."""
        return [p.path for p in self.problems]
