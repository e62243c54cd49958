"""Errors for bad input the user can fix (the CLI prints them as one paragraph, exit 2)."""

from __future__ import annotations

__all__ = ["InputError"]


class InputError(ValueError):
    """Bad input to a twin component: the message names the entry, field or file that is wrong."""
