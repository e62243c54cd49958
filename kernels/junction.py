"""The node's own rules, inlined into the traffic kernel (:func:`kernels.traffic.advance`).

Scalar building blocks (``inline="always"``, no checks: their kernel has checked its
arrays): a fixed-time signal's green window (:func:`green_time`) and a priority junction's
gap acceptance (:func:`gap_headway`, Harders' capacity of a minor approach, against
:func:`major_flow`, the node's smoothed major flow).  :mod:`kernels.traffic`'s docstring
gives the model.
"""

from __future__ import annotations

import numpy as np

from kernels._jit import Float, njit

__all__ = ["green_time", "gap_headway", "major_flow", "CRITICAL_GAP_S", "MAJOR_FLOW_TAU_S"]


@njit(cache=True, inline="always")
def green_time(te: Float, cycle: Float, offset: Float, gs: Float, ge: Float) -> Float:
    """Earliest time >= te inside the green window [gs, ge) of the cycle."""
    if cycle <= 0.0 or gs == ge:
        return te
    phase = (te - offset) % cycle
    if gs < ge:
        green = gs <= phase < ge
    else:  # window wraps around the cycle end
        green = phase >= gs or phase < ge
    if green:
        return te
    return te + (gs - phase) % cycle


#: critical gap of a minor approach at a priority junction, s (HCM's base for a minor-street through movement)
CRITICAL_GAP_S = 6.5
#: time constant of the smoothed major flow at a priority junction, s
MAJOR_FLOW_TAU_S = 60.0


@njit(cache=True, inline="always")
def gap_headway(qc: Float, tf: Float) -> Float:
    """Mean headway ``1 / c`` of a minor approach with follow-up time ``tf`` (s) against
    a conflicting major flow ``qc`` (veh/s): Harders' capacity
    ``c = qc exp(-qc t_c) / (1 - exp(-qc tf))`` (``1 / tf`` at ``qc = 0``).
    """
    if not qc > 0.0:
        return tf
    return float(-np.expm1(-qc * tf) * np.exp(qc * CRITICAL_GAP_S) / qc)


@njit(cache=True, inline="always")
def major_flow(rate: Float, t_last: Float, when: Float) -> Float:
    """The node's smoothed major flow (veh/s) at ``when`` (no earlier than its last
    major move at ``t_last``), from ``rate``, its value just after that move.
    """
    q = rate - 0.5 / MAJOR_FLOW_TAU_S
    if when > t_last:
        q *= np.exp(-(when - t_last) / MAJOR_FLOW_TAU_S)
    if q < 0.0:
        q = 0.0
    return q
