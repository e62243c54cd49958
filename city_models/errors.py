"""Errors raised by the city builders and the network validator."""

from __future__ import annotations

from basics.errors import TwinError

__all__ = ["CityError"]


class CityError(TwinError):
    """A city could not be built or validated.

    The message is one paragraph that names the input (file, spec key or
    network field) and says what is wrong with it.
    """
