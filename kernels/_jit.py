"""numba's decorators, typed once for mypy (numba ships no type information).

Every kernel module imports ``njit`` and ``prange`` from here rather than from numba, so
``mypy --strict`` sees a decorator that keeps the function's signature instead of an untyped
one (which would make every kernel untyped), without an ignore on each line.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import numba

__all__ = ["njit", "prange"]

F = TypeVar("F", bound=Callable[..., Any])


def njit(*, cache: bool = True, inline: str = "never", parallel: bool = False) -> Callable[[F], F]:
    """``numba.njit(cache=..., inline=..., parallel=...)``, typed as keeping the function's signature."""
    decorator: Callable[[F], F] = numba.njit(cache=cache, inline=inline, parallel=parallel)
    return decorator


#: ``numba.prange`` (a plain ``range`` outside numba): the parallel loop of a ``parallel=True`` kernel
prange: Callable[..., range] = numba.prange
