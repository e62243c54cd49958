"""numba's decorators, typed once for mypy.

Every kernel module imports ``njit`` and ``prange`` from here rather than from numba, so
``mypy --strict`` sees a decorator that keeps the function's signature (numba's own stubs
type the decorated function as a ``Dispatcher``), without an ignore on each line.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, TypeAlias, TypeVar, cast

import numba
import numpy as np

__all__ = ["njit", "prange", "Int", "Float"]

F = TypeVar("F", bound=Callable[..., Any])


def njit(
    *, cache: bool = True, inline: Literal["never", "always"] = "never", parallel: bool = False
) -> Callable[[F], F]:
    """``numba.njit(cache=..., inline=..., parallel=...)``, typed as keeping the function's signature."""
    return cast(Callable[[F], F], numba.njit(cache=cache, inline=inline, parallel=parallel))


#: ``numba.prange`` (a plain ``range`` outside numba): the parallel loop of a ``parallel=True`` kernel
prange: Callable[..., range] = numba.prange

#: an integer as a kernel receives it (numba types a Python int and a numpy integer alike)
Int: TypeAlias = int | np.integer[Any]
#: a real number as a kernel receives it
Float: TypeAlias = float | np.floating[Any]
