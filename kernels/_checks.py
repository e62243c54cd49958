"""The checks of the kernels' public wrappers: dtype, shape, length and index range.

Each raises :class:`basics.errors.InputError` naming the argument (``what``: ``"weight"``,
``"LinkState.head"``) and what was expected.  They are O(1) unless they say otherwise, so a
wrapper can check every argument of a call that runs a kernel over the whole network.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from basics.errors import InputError

__all__ = ["check_array", "check_index", "check_indices", "check_fields", "check_scalar"]


def check_array(
    what: str,
    a: Any,
    dtype: Any,
    *,
    ndim: int = 1,
    length: int | None = None,
    shape: tuple[int | None, ...] | None = None,
    writeable: bool = False,
) -> np.ndarray:
    """``a`` if it is a numpy array of ``dtype`` with ``ndim`` dimensions (and ``length`` entries
    or the given ``shape``, ``None`` in it matching any size); else :class:`InputError`.

    ``dtype`` may be a tuple of accepted dtypes.  ``writeable``: it must also be a writeable,
    C-contiguous array (the kernel writes into it).
    """
    if (  # the fast path: a single dtype, no shape pattern, all well
        type(a) is np.ndarray
        and shape is None
        and not writeable
        and a.ndim == ndim
        and (length is None or a.shape[0] == length)
        and not isinstance(dtype, tuple)
        and a.dtype == dtype
    ):
        return a
    dtypes = dtype if isinstance(dtype, tuple) else (dtype,)
    if not isinstance(a, np.ndarray):
        raise InputError(f"{what} must be a numpy array of {_names(dtypes)}, got {type(a).__name__}")
    if not any(a.dtype == np.dtype(d) for d in dtypes):
        raise InputError(f"{what} must be a numpy array of {_names(dtypes)}, got dtype {a.dtype}")
    if a.ndim != ndim:
        raise InputError(f"{what} must be {ndim}-D, got shape {a.shape}")
    if length is not None and a.shape[0] != length:
        raise InputError(f"{what} must have {length} entries, got {a.shape[0]}")
    if shape is not None and any(s is not None and s != got for s, got in zip(shape, a.shape, strict=True)):
        want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
        raise InputError(f"{what} must have shape {want}, got {a.shape}")
    if writeable and not (a.flags.writeable and a.flags.c_contiguous):
        raise InputError(f"{what} must be a writeable C-contiguous array (the kernel writes into it)")
    return a


def check_index(what: str, value: Any, n: int) -> int:
    """``value`` as an int if it is an integer in ``0..n - 1``; else :class:`InputError`."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise InputError(f"{what} must be an integer index, got {value!r}")
    if not 0 <= value < n:
        raise InputError(f"{what} {int(value)} is outside 0..{n - 1}")
    return int(value)


def check_indices(what: str, a: np.ndarray, lo: int, n: int) -> None:
    """Every entry of the integer array ``a`` lies in ``lo..n - 1``; else :class:`InputError`
    naming the first one outside (O(len(a))).
    """
    if a.size and (a.min() < lo or a.max() >= n):
        bad = int(np.flatnonzero((a < lo) | (a >= n))[0])
        raise InputError(f"{what} has an index outside {lo}..{n - 1}: {what}[{bad}] = {a.flat[bad]}")


def check_scalar(what: str, value: Any, *, lo: float = -np.inf, finite: bool = True) -> float:
    """``value`` as a float if it is a real number ``>= lo`` (and finite); else :class:`InputError`."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise InputError(f"{what} must be a number, got {value!r}")
    v = float(value)
    if (finite and not np.isfinite(v)) or not v >= lo:
        raise InputError(f"{what} must be a {'finite ' if finite else ''}number >= {lo}, got {value!r}")
    return v


def check_fields(what: str, nt: Any, cls: type, spec: dict[str, tuple[Any, int, int | None]]) -> None:
    """``nt`` is a ``cls`` NamedTuple whose fields have the dtypes, dimensions and lengths of
    ``spec`` (field: ``(dtype, ndim, length or None)``); else :class:`InputError` naming
    ``what.field``.  A tight loop (well under a microsecond a field) with the full check, and
    its message, only for a field that fails it.
    """
    if not isinstance(nt, cls):
        raise InputError(f"{what} must be a {cls.__name__}, got {type(nt).__name__}")
    for field, (dtype, ndim, length) in spec.items():
        a = getattr(nt, field)
        if (
            type(a) is not np.ndarray
            or a.dtype != dtype
            or a.ndim != ndim
            or (length is not None and a.shape[0] != length)
        ):
            check_array(f"{what}.{field}", a, dtype, ndim=ndim, length=length)


def _names(dtypes: tuple[Any, ...]) -> str:
    return " or ".join(np.dtype(d).name for d in dtypes)
