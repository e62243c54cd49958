"""Plain reference for :mod:`kernels.agents`: the same rules, person by person."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["ref_trip_positions"]


def ref_trip_positions(
    persons, mode, vid, dep, arr_known, dest, purpose, place, node, veh_arrive, veh_link, link_dst, now
):
    """Returns ``(arrive, state, node)`` arrays for ``persons``."""
    arrive, state, where = [], [], []
    for p in persons:
        if mode[p] == 0:
            a = float(veh_arrive[vid[p]])
        else:
            a = float(arr_known[p])
        arrive.append(a)
        if not math.isnan(a) and a <= now:
            state.append(0 if purpose[p] == 0 else 1)
            where.append(int(dest[p]))
        elif dep[p] <= now:
            state.append(2)
            on_link = mode[p] == 0 and veh_link[vid[p]] >= 0
            where.append(int(link_dst[veh_link[vid[p]]]) if on_link else int(node[p]))
        else:
            state.append(int(place[p]))
            where.append(int(node[p]))
    return np.array(arrive, np.float64), np.array(state, np.int8), np.array(where, np.int32)
