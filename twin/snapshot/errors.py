"""The snapshot's error: a file that cannot be read or a state that cannot be written."""

from __future__ import annotations

from basics.errors import InputError

__all__ = ["SnapshotError"]


class SnapshotError(InputError):
    """A snapshot that cannot be read (missing, not a snapshot, other version, damaged) or written."""
