"""The one base class of the errors a user can fix.

Every error the project raises for bad input (a scenario field, a city file, a zone
table, a demand table, a feed message, an output folder...) derives from
:class:`TwinError`, so the command line catches that one class and prints its message
as one paragraph (exit status 2).  :class:`TwinError` is a :class:`ValueError`, as
every one of these errors was before, so ``except ValueError`` keeps catching them.
"""

from __future__ import annotations

__all__ = ["InputError", "TwinError"]


class TwinError(ValueError):
    """Bad input the user can fix; the message names the entry, field or file that is wrong."""


class InputError(TwinError):
    """Bad input to a twin component or tool (an argument, a file, a folder, a message)."""
