"""Plain-numpy reference for :mod:`kernels.choice`.

The hash is written with Python integers (masked to 64 bits); the choice
lists every alternative with its logit weight, orders the unpriced before the
priced ones and walks the cumulative weights to the draw: slow and obvious.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["ref_mix64", "ref_hash_uniform", "ref_decision_key", "ref_choose"]

_MASK = (1 << 64) - 1
SLOT_DRAW = 0
SLOT_CANDIDATE = 1 << 40
SLOT_NODE = 1 << 41


def ref_mix64(x: int) -> int:
    z = (int(x) + 0x9E3779B97F4A7C15) & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


def ref_hash_uniform(key: int, slot: int) -> float:
    h = ref_mix64(int(key) ^ ref_mix64(int(slot)))
    return ((h >> 11) + 0.5) * 2.0**-53


def ref_decision_key(base: int, person: int, leg: int) -> int:
    return ref_mix64(int(base) ^ ref_mix64((int(person) * 64 + int(leg)) & _MASK))


def _price(world, o: int, d: int, dep: float) -> float:
    total = 0.0
    for k in range(len(world.price)):
        if world.price[k] > 0 and dep < world.price_until[k] and world.cordon[k][o] != world.cordon[k][d]:
            total += float(world.price[k])
    return total


def ref_choose(par, inp, world) -> dict[str, np.ndarray]:
    """Every person's choice; returns arrays ``dest, mode, depart, tt, gc, paid``."""
    n = len(inp.key)
    res = {
        "dest": np.full(n, -1, np.int32),
        "mode": np.full(n, -1, np.int8),
        "depart": np.full(n, np.nan),
        "tt": np.full(n, np.nan),
        "gc": np.full(n, np.nan),
        "paid": np.zeros(n),
    }
    shifts = [float(s) for s in par.shifts]
    cdf = np.asarray(world.attract_cdf)
    for i in range(n):
        key = int(inp.key[i])
        o = int(inp.orig[i])
        t_pref, t_min = float(inp.t_pref[i]), float(inp.t_min[i])
        alts = []  # (utility, dest, mode, depart, tt, gc, paid)
        if inp.can_stay[i]:
            alts.append((0.0, -1, -1, np.nan, np.nan, np.nan, 0.0))
        ok = [s for s in range(len(shifts)) if t_pref + shifts[s] >= t_min]
        open_shifts = list(range(ok[0], len(shifts))) if ok else [len(shifts) - 1]
        flexible = inp.dest_node[i] < 0
        for c in range(par.n_samples if flexible else 1):
            size = 0.0
            if flexible:
                u = ref_hash_uniform(key, SLOT_CANDIDATE + c)
                z = int(np.flatnonzero(cdf >= u)[0])
                nodes = world.zone_nodes[world.zone_indptr[z] : world.zone_indptr[z + 1]]
                if len(nodes) == 0:
                    continue
                j = min(int(ref_hash_uniform(key, SLOT_NODE + c) * len(nodes)), len(nodes) - 1)
                d = int(nodes[j])
                if d == o and len(nodes) > 1:
                    d = int(nodes[(j + 1) % len(nodes)])
                if par.attract_weight != 1.0:
                    size = (par.attract_weight - 1.0) * float(world.log_attract[z])
            else:
                d = int(inp.dest_node[i])
                z = int(world.node_zone[d])
            if not world.node_open[d]:
                continue
            km = math.hypot(world.node_x[d] - world.node_x[o], world.node_y[d] - world.node_y[o]) * par.detour / 1000.0
            if flexible:
                size -= par.dest_beta_km * km
            row = int(world.skim_row[z]) if z >= 0 else -1
            tt_car = float(world.skim[row, o]) if row >= 0 else math.inf
            tt_other = par.other_wait_s + km * 1000.0 / par.other_speed
            for s in open_shifts:
                dep = max(t_pref + shifts[s], t_min)
                shift = dep - t_pref
                sched = (par.early_cost_h * max(-shift, 0.0) + par.late_cost_h * max(shift, 0.0)) / 3600.0
                if inp.car[i] and tt_car < math.inf and world.node_comp[d] == world.node_comp[o]:
                    paid = _price(world, o, d, dep)
                    gc = (inp.vot[i] / 3600.0 * tt_car + par.car_cost_km * km) + paid
                    v = par.theta * (inp.value[i] - gc - sched) + size
                    alts.append((v, d, 0, dep, tt_car, gc, paid))
                gc = inp.vot[i] / 3600.0 * tt_other + par.other_fare + par.other_penalty
                v = par.theta * (inp.value[i] - gc - sched) + size
                alts.append((v, d, 1, dep, tt_other, gc, 0.0))
        if not alts:
            continue
        vmax = max(a[0] for a in alts)
        weights = [math.exp(a[0] - vmax) for a in alts]
        target = ref_hash_uniform(key, SLOT_DRAW) * sum(weights)
        order = [a for a in range(len(alts)) if alts[a][6] <= 0] + [a for a in range(len(alts)) if alts[a][6] > 0]
        acc, best = 0.0, None
        for a in order:
            if weights[a] <= 0:
                continue
            acc += weights[a]
            best = a  # the last one, should rounding leave the sum just short of the draw
            if acc >= target:
                break
        _, d, m, dep, tt, gc, paid = alts[best]
        if m < 0:
            continue
        res["dest"][i], res["mode"][i], res["depart"][i] = d, m, dep
        res["tt"][i], res["gc"][i], res["paid"][i] = tt, gc, paid
    return res
