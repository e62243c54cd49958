"""Who may watch and who may act: tokens for ``twin serve``.

A token file has one token a line, ``NAME ROLE TOKEN`` separated by blanks
(``#`` starts a comment)::

    # name        role      token
    wall-screen   viewer    0f3c9a...
    duty-officer  operator  a81be2...

``viewer`` tokens watch; ``operator`` tokens also use the controls.  Without a
token file the server answers only on the loopback address and every local
browser is the operator ``local``.  Tokens are compared in constant time; the
file is read once, at start-up.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass
from pathlib import Path

from basics.errors import InputError

__all__ = ["Tokens", "Identity", "ROLES", "MAX_TOKEN_FILE_BYTES"]

ROLES = ("viewer", "operator")
#: largest token file read
MAX_TOKEN_FILE_BYTES = 1_000_000
_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")


@dataclass(frozen=True)
class Identity:
    """A caller the server knows: the token's name and role."""

    name: str
    role: str

    @property
    def operator(self) -> bool:
        """Whether it may use the controls."""
        return self.role == "operator"


class Tokens:
    """The known tokens (or none: every local caller is the operator ``local``).

    Parameters
    ----------
    entries
        ``(name, role, token)`` triples; empty means no tokens are needed.
    """

    LOCAL = Identity("local", "operator")

    def __init__(self, entries: list[tuple[str, str, str]] | None = None) -> None:
        self.entries = list(entries or [])

    @property
    def required(self) -> bool:
        """Whether callers must show a token."""
        return bool(self.entries)

    @classmethod
    def from_file(cls, path: str | Path) -> Tokens:
        """Read a token file (see the module docstring).

        Raises
        ------
        InputError
            The file is missing, too large, or a line is not ``NAME ROLE TOKEN`` with a
            known role and a token of at least 16 characters; names the line.
        """
        p = Path(path)
        try:
            if p.stat().st_size > MAX_TOKEN_FILE_BYTES:
                raise InputError(f"--token-file {str(p)!r}: larger than {MAX_TOKEN_FILE_BYTES:,} bytes")
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise InputError(f"--token-file {str(p)!r}: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise InputError(f"--token-file {str(p)!r}: not UTF-8 text") from None
        entries: list[tuple[str, str, str]] = []
        for n, line in enumerate(text.splitlines(), 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split()
            where = f"--token-file {str(p)!r} line {n}"
            if len(parts) != 3:
                raise InputError(f"{where}: expected NAME ROLE TOKEN, got {len(parts)} field(s)")
            name, role, token = parts
            if not _NAME.match(name):
                raise InputError(f"{where}: a name has 1-64 letters, digits or _.@-")
            if role not in ROLES:
                raise InputError(f"{where}: role must be viewer or operator, got {role[:20]!r}")
            if len(token) < 16:
                raise InputError(f"{where}: a token needs at least 16 characters")
            entries.append((name, role, token))
        if not entries:
            raise InputError(f"--token-file {str(p)!r}: no tokens in it")
        return cls(entries)

    def identify(self, token: str | None) -> Identity | None:
        """The identity a token stands for; ``None`` for a missing or unknown one."""
        if not self.required:
            return self.LOCAL
        if not token or len(token) > 512:
            return None
        found = None
        for name, role, known in self.entries:  # no early exit: the same time for any token
            if hmac.compare_digest(known.encode(), token.encode()):
                found = Identity(name, role)
        return found
