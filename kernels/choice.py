"""Batched logit choices of the persons departing in one time bucket.

Every person in the batch has one planned leg: an origin node, a preferred
departure time and either a fixed destination (home, work, school) or a
flexible one (any zone, an "other" activity).  :func:`choose` draws, for each
person at once, one joint alternative from a multinomial logit over:

* *travel or not* -- the "stay" alternative (utility 0) where the leg may be
  skipped (``can_stay``);
* *destination* -- for flexible legs, ``n_samples`` candidate nodes drawn in
  proportion to the zones' attraction (sampling of alternatives, with the
  ``-ln q`` correction), otherwise the fixed node;
* *departure shift* -- every shift in ``ChoiceParams.shifts`` that leaves at
  or after ``t_min`` (if none does, the latest shift, clamped to ``t_min``);
* *mode* -- car (if the person has one and the destination is reachable) or
  the non-car mode (public transport, bike and walk together, a door-to-door
  speed).

The systematic utility of travelling is ``theta * (value - gc - schedule)``
(plus, for sampled destinations, the size term and a distance decay) where the generalized cost
``gc`` is the value of the travel time (``vot`` per hour x current car travel
time from the skim, or the non-car time) plus money (car cost per km, cordon
prices crossed while they are set, fares, a non-car penalty) and ``schedule``
prices leaving earlier or later than preferred.

The draw is exact multinomial logit by inverse CDF over the alternatives'
probabilities, with the unpriced alternatives first and the priced ones
(car trips paying a cordon) last: a person chooses a priced alternative
exactly when the draw exceeds the probability of all unpriced ones, which
only grows with a price.  Randomness is counter based: the draw, the sampled
destinations and nodes are hashes of the person's decision ``key`` and a slot
(:func:`hash_uniform`), so a choice does not depend on which other persons
share its batch or on the batch order, and two scenarios that differ only in
a price give each person the same draws (common random numbers): raising a
price can only move a person away from paying it.

The kernels are private ``@njit`` functions behind checked wrappers (:func:`choose`,
:func:`decision_keys`, :func:`hash_uniforms`: dtypes, lengths and node, zone and row
indices, :class:`basics.errors.InputError` naming the field); :func:`mix64` and
:func:`hash_uniform` are scalar building blocks inlined into kernels.  The twin's population
component builds the inputs.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from basics.errors import InputError
from kernels._checks import check_array, check_fields, check_indices
from kernels._jit import Float, Int, njit, prange

__all__ = [
    "ChoiceParams",
    "ChoiceInputs",
    "ChoiceWorld",
    "ChoiceOutputs",
    "MODE_CAR",
    "MODE_OTHER",
    "STAY",
    "SLOT_DRAW",
    "SLOT_CANDIDATE",
    "SLOT_NODE",
    "mix64",
    "hash_uniform",
    "hash_uniforms",
    "decision_keys",
    "choose",
    "empty_outputs",
]

MODE_CAR = 0
MODE_OTHER = 1
#: ``ChoiceOutputs.mode`` of a person who does not travel
STAY = -1

#: slots of the counter-based random numbers of one decision
SLOT_DRAW = 0  # the draw among the alternatives
SLOT_CANDIDATE = 1 << 40  # + c: which zone candidate c is
SLOT_NODE = 1 << 41  # + c: which node of that zone

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S11 = np.uint64(11)
_INV53 = 1.0 / 9007199254740992.0  # 2**-53


class ChoiceParams(NamedTuple):
    """Parameters of the choice model (scalars as float64, shifts as an array).

    Attributes
    ----------
    theta : float
        Utility per currency unit of generalized cost (logit scale).
    shifts : float64[S]
        Departure shifts to choose from, seconds, ascending, containing 0.
    early_cost_h, late_cost_h : float
        Cost per hour of leaving earlier / later than preferred.
    car_cost_km : float
        Money cost of driving, per km.
    detour : float
        Network distance over straight-line distance.
    other_speed : float
        Door-to-door speed of the non-car mode, m/s (> 0).
    other_wait_s : float
        Fixed access and waiting time of the non-car mode, s.
    other_fare : float
        Money cost of a non-car trip.
    other_penalty : float
        Extra disutility of the non-car mode, currency (comfort, reliability).
    attract_weight : float
        Weight of the log attraction of a sampled destination (1: the
        attraction enters in full; its sampling correction cancels it).
    dest_beta_km : float
        Utility lost per straight-line km to a sampled destination, beyond
        its generalized cost (errands are done nearby).
    n_samples : int
        Destination candidates drawn for a flexible leg (>= 1).
    """

    theta: float
    shifts: np.ndarray
    early_cost_h: float
    late_cost_h: float
    car_cost_km: float
    detour: float
    other_speed: float
    other_wait_s: float
    other_fare: float
    other_penalty: float
    attract_weight: float
    dest_beta_km: float
    n_samples: int


class ChoiceInputs(NamedTuple):
    """One bucket's persons (length ``B`` each).

    Attributes
    ----------
    key : uint64[B]
        Decision key (see :func:`decision_keys`).
    orig : int32[B]
        Origin node.
    dest_node : int32[B]
        Fixed destination node, or -1 for a flexible leg.
    t_pref : float64[B]
        Preferred departure, s.
    t_min : float64[B]
        Earliest possible departure (now), s.
    value : float64[B]
        Value of the activity, currency (the utility of going is measured
        against staying; only matters where ``can_stay``).
    vot : float64[B]
        Value of time, currency per hour.
    car : uint8[B]
        1 if a car is available.
    can_stay : uint8[B]
        1 if the person may skip the leg.
    """

    key: np.ndarray
    orig: np.ndarray
    dest_node: np.ndarray
    t_pref: np.ndarray
    t_min: np.ndarray
    value: np.ndarray
    vot: np.ndarray
    car: np.ndarray
    can_stay: np.ndarray


class ChoiceWorld(NamedTuple):
    """What the persons know of the city now.

    Attributes
    ----------
    skim : float64[R, N]
        Current car travel times from each node to some destinations, s
        (inf: unreachable): e.g. the traffic model's route potentials.
    skim_row : int32[Z]
        Row of ``skim`` holding the travel times to zone ``z``'s centroid
        (-1: none, no car).
    node_x, node_y : float64[N]
        Node coordinates, m.
    node_zone : int32[N]
        Zone of each node (-1: none).
    zone_indptr : int64[Z + 1], zone_nodes : int32[...]
        The nodes of each zone (CSR).
    attract_cdf : float64[Z]
        Cumulative attraction shares of the zones for flexible legs (last 1).
    log_attract : float64[Z]
        Log of each zone's attraction share (-inf when 0).
    node_open : uint8[N]
        0 where a node may not be a destination (evacuated zones).
    node_comp : int32[N]
        Strongly connected component of each node on the open roads: a car
        goes only between nodes of one component (closures can cut a zone in
        two, which its centroid's travel time would not show).
    cordon : uint8[C, N]
        1 where a node lies inside cordon ``k``.
    price : float64[C]
        Price of crossing cordon ``k``'s boundary (0: not set).
    price_until : float64[C]
        Time the price is known to end, s (inf: not known).
    """

    skim: np.ndarray
    skim_row: np.ndarray
    node_x: np.ndarray
    node_y: np.ndarray
    node_zone: np.ndarray
    zone_indptr: np.ndarray
    zone_nodes: np.ndarray
    attract_cdf: np.ndarray
    log_attract: np.ndarray
    node_open: np.ndarray
    node_comp: np.ndarray
    cordon: np.ndarray
    price: np.ndarray
    price_until: np.ndarray


class ChoiceOutputs(NamedTuple):
    """The choices (length ``B`` each).

    Attributes
    ----------
    dest : int32[B]
        Destination node (-1: stays).
    mode : int8[B]
        ``MODE_CAR``, ``MODE_OTHER`` or ``STAY``.
    depart : float64[B]
        Departure time, s (NaN: stays).
    tt : float64[B]
        Expected travel time, s (the non-car mode's actual time).
    gc : float64[B]
        Generalized cost of the chosen alternative (time value plus money,
        schedule cost excluded), currency.
    paid : float64[B]
        Cordon prices in ``gc``.
    """

    dest: np.ndarray
    mode: np.ndarray
    depart: np.ndarray
    tt: np.ndarray
    gc: np.ndarray
    paid: np.ndarray


def empty_outputs(n: int) -> ChoiceOutputs:
    """Output arrays for a batch of ``n`` persons."""
    return ChoiceOutputs(
        dest=np.full(n, -1, np.int32),
        mode=np.full(n, STAY, np.int8),
        depart=np.full(n, np.nan),
        tt=np.full(n, np.nan),
        gc=np.full(n, np.nan),
        paid=np.zeros(n),
    )


# ----------------------------------------------------------------- random numbers


@njit(cache=True, inline="always")
def mix64(x: np.uint64) -> np.uint64:
    """SplitMix64's finaliser: a bijective avalanche hash of a uint64."""
    z = x + _GOLDEN
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@njit(cache=True, inline="always")
def hash_uniform(key: np.uint64, slot: Int) -> Float:
    """A uniform number in (0, 1) from a key and a slot (counter-based)."""
    h = mix64(key ^ mix64(np.uint64(slot)))
    return (np.float64(h >> _S11) + 0.5) * _INV53


@njit(cache=True)
def _hash_uniforms(keys: np.ndarray, slot: Int, out: np.ndarray) -> np.ndarray:
    """``out[i] = hash_uniform(keys[i], slot)`` for every key."""
    for i in range(keys.shape[0]):
        out[i] = hash_uniform(keys[i], slot)
    return out


@njit(cache=True)
def _decision_keys(base: np.uint64, person: np.ndarray, leg: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Key of person ``person[i]``'s decision about leg ``leg[i]`` under ``base``."""
    for i in range(person.shape[0]):
        out[i] = mix64(base ^ mix64(np.uint64(person[i]) * np.uint64(64) + np.uint64(leg[i])))
    return out


@njit(cache=True, inline="always")
def _draw_zone(cdf: np.ndarray, u: Float) -> Int:
    lo, hi = 0, cdf.shape[0] - 1
    while lo < hi:
        mid = (lo + hi) >> 1
        if cdf[mid] < u:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True, inline="always")
def _cordon_price(world: ChoiceWorld, o: Int, d: Int, dep: Float) -> Float:
    total = 0.0
    for k in range(world.price.shape[0]):
        p = world.price[k]
        if p > 0.0 and dep < world.price_until[k] and world.cordon[k, o] != world.cordon[k, d]:
            total += p
    return total


@njit(cache=True, inline="always")
def _first_open_shift(shifts: np.ndarray, t_pref: Float, t_min: Float) -> Int:
    """The first shift leaving at or after ``t_min`` (if none does, the latest, clamped)."""
    n_s = shifts.shape[0]
    first_ok: Int = n_s - 1
    for s in range(n_s):
        if t_pref + shifts[s] >= t_min:
            first_ok = s
            break
    return first_ok


@njit(cache=True, inline="always")
def _draw(key: np.uint64, n: Int, vmax: Float, buf_v: np.ndarray, buf_i: np.ndarray, buf_f: np.ndarray) -> Int:
    """The alternative drawn among the first ``n``: logit probabilities, the draw walking the
    unpriced alternatives first, then the priced ones (see the module docstring).
    """
    total = 0.0
    for a in range(n):
        w = np.exp(buf_v[a] - vmax)
        buf_v[a] = w
        total += w
    target = hash_uniform(key, SLOT_DRAW) * total
    acc = 0.0
    pick = -1
    last = -1
    for rnd in range(2):
        for a in range(n):
            priced = buf_i[a, 1] == MODE_CAR and buf_f[a, 3] > 0.0
            if priced != (rnd == 1) or buf_v[a] <= 0.0:
                continue
            acc += buf_v[a]
            last = a
            if acc >= target:
                pick = a
                break
        if pick >= 0:
            break
    if pick < 0:
        pick = last  # rounding: the total fell just short of the draw
    return pick


@njit(cache=True, inline="always")
def _write_choice(out: ChoiceOutputs, i: Int, pick: Int, buf_i: np.ndarray, buf_f: np.ndarray) -> None:
    """Person ``i``'s outputs: alternative ``pick`` of the buffers, or staying (``pick < 0``,
    or the stay alternative).
    """
    if pick < 0 or buf_i[pick, 1] == STAY:
        out.dest[i] = -1
        out.mode[i] = STAY
        out.depart[i] = np.nan
        out.tt[i] = np.nan
        out.gc[i] = np.nan
        out.paid[i] = 0.0
        return
    out.dest[i] = buf_i[pick, 0]
    out.mode[i] = buf_i[pick, 1]
    out.depart[i] = buf_f[pick, 0]
    out.tt[i] = buf_f[pick, 1]
    out.gc[i] = buf_f[pick, 2]
    out.paid[i] = buf_f[pick, 3]


@njit(cache=True)
def _choose_one(
    i: Int,
    par: ChoiceParams,
    inp: ChoiceInputs,
    world: ChoiceWorld,
    out: ChoiceOutputs,
    buf_v: np.ndarray,
    buf_i: np.ndarray,
    buf_f: np.ndarray,
) -> None:
    """One person's alternatives into the buffers, then one draw (see :func:`choose`).

    Shifts, draw and outputs are inlined helpers; the candidate loop stays here: split into
    inlined helpers taking the NamedTuples it ran 1.26-1.37x slower (see docs/DESIGN.md).
    """
    key = inp.key[i]
    o = inp.orig[i]
    ox = world.node_x[o]
    oy = world.node_y[o]
    shifts = par.shifts
    n_s = shifts.shape[0]
    t_pref = inp.t_pref[i]
    t_min = inp.t_min[i]
    vot_s = inp.vot[i] / 3600.0
    value = inp.value[i]
    theta = par.theta
    flexible = inp.dest_node[i] < 0
    n_c = par.n_samples if flexible else 1
    first_ok = _first_open_shift(shifts, t_pref, t_min)
    n, vmax = 0, -np.inf
    if inp.can_stay[i]:
        buf_v[0] = 0.0
        buf_i[0, 0] = -1
        buf_i[0, 1] = STAY
        buf_f[0, 4] = 0.0
        vmax = 0.0
        n = 1
    for c in range(n_c):
        size = 0.0
        if flexible:
            z = _draw_zone(world.attract_cdf, hash_uniform(key, SLOT_CANDIDATE + c))
            n0 = world.zone_indptr[z]
            nz = world.zone_indptr[z + 1] - n0
            if nz <= 0:
                continue
            j = int(hash_uniform(key, SLOT_NODE + c) * nz)
            if j >= nz:
                j = nz - 1
            d = world.zone_nodes[n0 + j]
            if d == o and nz > 1:
                d = world.zone_nodes[n0 + (j + 1) % nz]
            # size term and sampling correction: attract_weight * ln A - ln q, q = A
            if par.attract_weight != 1.0:
                size = (par.attract_weight - 1.0) * world.log_attract[z]
        else:
            d = inp.dest_node[i]
            z = world.node_zone[d]
        if world.node_open[d] == 0:
            continue
        km = np.hypot(world.node_x[d] - ox, world.node_y[d] - oy) * par.detour / 1000.0
        if flexible:
            size -= par.dest_beta_km * km
        tt_car = np.inf
        if z >= 0 and world.skim_row[z] >= 0:
            tt_car = world.skim[world.skim_row[z], o]
        car_ok = inp.car[i] != 0 and tt_car < np.inf and world.node_comp[d] == world.node_comp[o]
        tt_other = par.other_wait_s + km * 1000.0 / par.other_speed
        gc_other = vot_s * tt_other + par.other_fare + par.other_penalty
        gc_car0 = vot_s * tt_car + par.car_cost_km * km
        for s in range(first_ok, n_s):
            dep = t_pref + shifts[s]
            if dep < t_min:
                dep = t_min
            shift = dep - t_pref
            sched = (par.early_cost_h * max(-shift, 0.0) + par.late_cost_h * max(shift, 0.0)) / 3600.0
            for m in range(2):
                if m == MODE_CAR:
                    if not car_ok:
                        continue
                    paid = _cordon_price(world, o, d, dep)
                    gc = gc_car0 + paid
                    tt = tt_car
                else:
                    paid = 0.0
                    gc = gc_other
                    tt = tt_other
                v = theta * (value - gc - sched) + size
                buf_v[n] = v
                buf_i[n, 0] = d
                buf_i[n, 1] = m
                buf_f[n, 0] = dep
                buf_f[n, 1] = tt
                buf_f[n, 2] = gc
                buf_f[n, 3] = paid
                if v > vmax:
                    vmax = v
                n += 1
    pick = _draw(key, n, vmax, buf_v, buf_i, buf_f) if n > 0 else -1
    _write_choice(out, i, pick, buf_i, buf_f)


#: batches at least this large are split over threads (below it a parallel launch costs more than it saves)
_PARALLEL_MIN = 4096
_MAX_CHUNKS = 64


@njit(cache=True, parallel=True)
def _choose_parallel(par: ChoiceParams, inp: ChoiceInputs, world: ChoiceWorld, out: ChoiceOutputs) -> None:
    n = inp.key.shape[0]
    n_alt = 1 + 2 * par.n_samples * par.shifts.shape[0]
    n_chunks = min(n, _MAX_CHUNKS)
    for c in prange(n_chunks):
        buf_v = np.empty(n_alt)
        buf_i = np.empty((n_alt, 2), np.int64)
        buf_f = np.zeros((n_alt, 5))
        for i in range(c * n // n_chunks, (c + 1) * n // n_chunks):
            _choose_one(i, par, inp, world, out, buf_v, buf_i, buf_f)


@njit(cache=True)
def _choose(par: ChoiceParams, inp: ChoiceInputs, world: ChoiceWorld, out: ChoiceOutputs) -> ChoiceOutputs:
    """Choose for every person of the batch (see the module docstring).

    A person with no available alternative (cannot stay, and no destination
    open) gets ``dest = -1`` and ``mode = STAY``.  Writes ``out``; returns it.
    A batch of at least ``_PARALLEL_MIN`` persons is split over threads; each
    person's choice depends on its own inputs and draws only, so the result
    is the same either way.
    """
    if inp.key.shape[0] >= _PARALLEL_MIN:
        _choose_parallel(par, inp, world, out)
        return out
    n_alt = 1 + 2 * par.n_samples * par.shifts.shape[0]
    buf_v = np.empty(n_alt)
    buf_i = np.empty((n_alt, 2), np.int64)
    buf_f = np.zeros((n_alt, 5))
    for i in range(inp.key.shape[0]):
        _choose_one(i, par, inp, world, out, buf_v, buf_i, buf_f)
    return out


# ----------------------------------------------------------------------------- checked wrappers

_F, _I32, _U8 = np.dtype(np.float64), np.dtype(np.int32), np.dtype(np.uint8)
_INPUTS: dict[str, tuple[np.dtype[Any], int, int | None]] = {
    f: (_F, 1, None) for f in ("t_pref", "t_min", "value", "vot")
}
_INPUTS |= {"key": (np.dtype(np.uint64), 1, None), "orig": (_I32, 1, None), "dest_node": (_I32, 1, None)}
_INPUTS |= {"car": (_U8, 1, None), "can_stay": (_U8, 1, None)}
_OUTPUTS: dict[str, tuple[np.dtype[Any], int, int | None]] = {
    "dest": (_I32, 1, None),
    "mode": (np.dtype(np.int8), 1, None),
}
_OUTPUTS |= {f: (_F, 1, None) for f in ("depart", "tt", "gc", "paid")}


def _check_world(world: ChoiceWorld) -> tuple[int, int]:
    """Check the world's arrays against each other; returns ``(n_nodes, n_zones)``.  O(N + Z)."""
    if not isinstance(world, ChoiceWorld):
        raise InputError(f"world must be a ChoiceWorld, got {type(world).__name__}")
    check_array("world.node_x", world.node_x, _F)
    n, z = world.node_x.shape[0], world.attract_cdf.shape[0] if isinstance(world.attract_cdf, np.ndarray) else 0
    spec = {"node_x": (_F, 1, n), "node_y": (_F, 1, n), "node_zone": (_I32, 1, n), "node_open": (_U8, 1, n)}
    spec |= {"node_comp": (_I32, 1, n), "attract_cdf": (_F, 1, z), "log_attract": (_F, 1, z)}
    spec |= {"skim_row": (_I32, 1, z), "zone_indptr": (np.dtype(np.int64), 1, z + 1), "zone_nodes": (_I32, 1, None)}
    spec |= {"price": (_F, 1, None), "price_until": (_F, 1, None)}
    check_fields("world", world, ChoiceWorld, spec)
    check_array("world.skim", world.skim, _F, ndim=2, shape=(None, n))
    check_array("world.cordon", world.cordon, _U8, ndim=2, shape=(world.price.shape[0], n))
    check_array("world.price_until", world.price_until, _F, length=world.price.shape[0])
    check_indices("world.node_zone", world.node_zone, -1, z)
    check_indices("world.skim_row", world.skim_row, -1, world.skim.shape[0])
    check_indices("world.zone_nodes", world.zone_nodes, 0, n)
    ip = world.zone_indptr
    if z and (ip[0] != 0 or ip[-1] != world.zone_nodes.shape[0] or np.any(np.diff(ip) < 0)):
        raise InputError("world.zone_indptr must start at 0, never decrease and end at len(world.zone_nodes)")
    return n, z


def choose(par: ChoiceParams, inp: ChoiceInputs, world: ChoiceWorld, out: ChoiceOutputs) -> ChoiceOutputs:
    """Choose for every person of the batch (see the module docstring); writes ``out``, returns it.

    Checks the parameters, the inputs (one length ``B``, origins and fixed destinations among
    the world's nodes), the world (:func:`_check_world`) and the outputs (length ``B``), once
    per batch, then runs :func:`_choose`, whose per-person loop calls the kernel
    :func:`_choose_one` unchecked.  A person with no available alternative (cannot stay, and
    no destination open) gets ``dest = -1`` and ``mode = STAY``.

    Raises
    ------
    basics.errors.InputError
        Naming the field (``inp.orig``, ``world.skim``, ``par.shifts``) and what is wrong.
    """
    if not isinstance(par, ChoiceParams):
        raise InputError(f"par must be a ChoiceParams, got {type(par).__name__}")
    check_array("par.shifts", par.shifts, _F)
    if par.shifts.shape[0] == 0:
        raise InputError("par.shifts must hold at least one departure shift (0: as preferred)")
    if isinstance(par.n_samples, bool) or not isinstance(par.n_samples, (int, np.integer)) or par.n_samples < 1:
        raise InputError(f"par.n_samples must be an integer >= 1, got {par.n_samples!r}")
    n, _ = _check_world(world)
    b = inp.key.shape[0] if isinstance(inp, ChoiceInputs) and isinstance(inp.key, np.ndarray) else None
    check_fields("inp", inp, ChoiceInputs, {f: (dt, nd, b) for f, (dt, nd, _) in _INPUTS.items()})
    check_fields("out", out, ChoiceOutputs, {f: (dt, nd, b) for f, (dt, nd, _) in _OUTPUTS.items()})
    check_indices("inp.orig", inp.orig, 0, n)
    check_indices("inp.dest_node", inp.dest_node, -1, n)
    return _choose(par, inp, world, out)


def hash_uniforms(keys: np.ndarray, slot: int, out: np.ndarray) -> np.ndarray:
    """``out[i] = hash_uniform(keys[i], slot)`` for every key (uint64 keys, float64 ``out`` of
    their length, an integer slot); returns ``out``.
    """
    check_array("keys", keys, np.uint64)
    check_array("out", out, np.float64, length=keys.shape[0], writeable=True)
    if isinstance(slot, bool) or not isinstance(slot, (int, np.integer)) or slot < 0:
        raise InputError(f"slot must be an integer >= 0, got {slot!r}")
    return _hash_uniforms(keys, slot, out)


def decision_keys(base: np.uint64, person: np.ndarray, leg: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Key of person ``person[i]``'s decision about leg ``leg[i]`` under ``base`` (a
    ``numpy.uint64``), into ``out`` (uint64, one per person); returns ``out``.
    """
    if not isinstance(base, np.uint64):
        raise InputError(f"base must be a numpy.uint64 key, got {type(base).__name__}")
    for what, a in (("person", person), ("leg", leg)):
        if not isinstance(a, np.ndarray) or a.ndim != 1 or a.dtype.kind not in "iu":
            raise InputError(f"{what} must be a 1-D integer numpy array")
    if leg.shape != person.shape:
        raise InputError(f"leg must have one entry per person ({person.shape[0]}), got {leg.shape[0]}")
    check_array("out", out, np.uint64, length=person.shape[0], writeable=True)
    return _decision_keys(base, person, leg, out)
