"""Numeric tolerances shared by the packages (one home, so they cannot drift apart)."""

from __future__ import annotations

__all__ = ["EPS"]

#: Tolerance for comparing simulation times in seconds: two times closer than this are
#: the same moment (event times are sums of float travel times, so exact equality fails).
EPS: float = 1e-9
