"""Population synthesis: persons in households, placed in zones from zone totals.

:func:`synthesize_population` turns a city's zones (residents, jobs, and
optionally school places per zone) into persons:

* each zone gets exactly its share of persons (the zone's residents, or a
  scaled total split over the zones by largest remainder);
* persons come in households whose sizes follow a target distribution (the
  last household of a zone is cut to fit the zone total exactly), on a node of
  the zone (one of its *access nodes*: a few nodes per zone where homes,
  workplaces and other activities meet the roads, or all of them);
* each person has an age group (``0-5``, ``6-17``, ``18-64``, ``65+``; the
  city's shares exactly, children never heading a household, seniors mostly
  in one- and two-person households), employment (adults, and a few seniors),
  school attendance (ages 6-17), car access (adults and seniors of a
  household with a car) and a value of time (log-normal; workers higher);
* workers get a workplace and pupils a school: a doubly constrained gravity
  model between zones, integerised so that the people working in each zone
  equal its jobs (scaled to the number of workers) exactly, and likewise for
  school places; the node is drawn within the zone.

Zones come from the city (the synthetic generator's, or the OSM builders' grid
over the network), from :func:`grid_zones_over` with another cell size, or from
a zone file (:func:`read_zone_file`: GeoJSON polygons or points, or a CSV of
centroids).  Every random draw comes from the generator passed in, in a fixed
order: the same seed gives the same population.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from city_models.city import Zones
from city_models.synthetic import allocate_integer
from city_models.zone_tables import (
    MAX_ZONE_COUNT,
    PopulationError,
    ZoneTable,
    grid_zones_over,
    read_zone_file,
    zones_from_features,
)

__all__ = [
    "AGE_GROUPS",
    "AGE_PRESCHOOL",
    "AGE_SCHOOL",
    "AGE_ADULT",
    "AGE_SENIOR",
    "PopulationError",
    "SynthesisParams",
    "Population",
    "ZoneTable",
    "synthesize_population",
    "zone_node_index",
    "access_node_index",
    "doubly_constrained_integer",
    "grid_zones_over",
    "read_zone_file",
    "zones_from_features",
    "MAX_ZONE_COUNT",
]

log = logging.getLogger(__name__)

AGE_GROUPS: tuple[str, ...] = ("0-5", "6-17", "18-64", "65+")
AGE_PRESCHOOL, AGE_SCHOOL, AGE_ADULT, AGE_SENIOR = 0, 1, 2, 3


@dataclass(frozen=True)
class SynthesisParams:
    """Distributions the synthesis draws from.

    Attributes
    ----------
    household_sizes : tuple of float
        Relative shares of households of 1, 2, ... persons.
    age_shares : tuple of 4 float
        Shares of the age groups :data:`AGE_GROUPS`.
    employment_rate : float
        Share of 18-64 year olds who work.
    senior_employment_rate : float
        Share of over-65s who work.
    car_share : float
        Share of households with a car (larger households more often).
    vot_median : float
        Median value of time, currency per hour.
    vot_sigma : float
        Log-normal spread of the value of time.
    worker_vot_factor : float
        Workers' value of time relative to others'.
    work_beta_per_km, school_beta_per_km : float
        Distance decay of the workplace and school assignment.
    access_nodes : int
        Nodes per zone where its homes, workplaces and other activities meet
        the road network (drawn at random; 0: every node of the zone).  Fewer
        access nodes mean fewer distinct trip destinations, so far fewer
        route-table rows for the traffic model to keep up to date.
    """

    household_sizes: tuple[float, ...] = (0.36, 0.32, 0.14, 0.12, 0.06)
    age_shares: tuple[float, float, float, float] = (0.06, 0.13, 0.63, 0.18)
    employment_rate: float = 0.72
    senior_employment_rate: float = 0.05
    car_share: float = 0.65
    vot_median: float = 12.0
    vot_sigma: float = 0.5
    worker_vot_factor: float = 1.3
    work_beta_per_km: float = 0.25
    school_beta_per_km: float = 1.0
    access_nodes: int = 0

    def check(self) -> None:
        """Raise :class:`PopulationError` naming the first bad field."""
        hs = np.asarray(self.household_sizes, np.float64)
        if hs.size == 0 or np.any(hs < 0) or hs.sum() <= 0 or not np.all(np.isfinite(hs)):
            raise PopulationError(
                f"household_sizes must be non-negative shares with a positive sum, got {self.household_sizes}"
            )
        ag = np.asarray(self.age_shares, np.float64)
        if ag.shape != (4,) or np.any(ag < 0) or ag.sum() <= 0:
            raise PopulationError(
                f"age_shares must be 4 non-negative shares ({', '.join(AGE_GROUPS)}), got {self.age_shares}"
            )
        if ag[2] + ag[3] <= 0:
            raise PopulationError("age_shares: somebody must be 18 or over to head a household")
        for name in ("employment_rate", "senior_employment_rate", "car_share"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise PopulationError(f"{name} must lie in [0, 1], got {v}")
        if self.access_nodes < 0:
            raise PopulationError(f"access_nodes must be >= 0, got {self.access_nodes}")
        if not self.vot_median > 0 or not self.vot_sigma >= 0 or not self.worker_vot_factor > 0:
            raise PopulationError("vot_median and worker_vot_factor must be positive, vot_sigma >= 0")


class Population(NamedTuple):
    """Persons (sorted by household) and households, as arrays.

    Person arrays have one entry per person; ``hh_first`` is a CSR pointer:
    the persons of household ``h`` are ``hh_first[h]:hh_first[h + 1]``.
    ``work_*`` / ``school_*`` are -1 for persons without one.
    """

    household: np.ndarray  # int32
    home_zone: np.ndarray  # int32
    home_node: np.ndarray  # int32
    age_group: np.ndarray  # int8
    worker: np.ndarray  # bool
    student: np.ndarray  # bool
    car: np.ndarray  # bool: may drive a household car
    vot: np.ndarray  # float32, currency per hour
    work_zone: np.ndarray  # int32
    work_node: np.ndarray  # int32
    school_zone: np.ndarray  # int32
    school_node: np.ndarray  # int32
    hh_first: np.ndarray  # int64 (n_households + 1)
    hh_zone: np.ndarray  # int32
    hh_node: np.ndarray  # int32
    hh_car: np.ndarray  # bool
    zone_persons: np.ndarray  # int64 per zone
    access_indptr: np.ndarray  # int64 (n_zones + 1): CSR of each zone's access nodes
    access_nodes: np.ndarray  # int32

    @property
    def n_persons(self) -> int:
        """The number of persons."""
        return int(self.household.shape[0])

    @property
    def n_households(self) -> int:
        """The number of households."""
        return int(self.hh_zone.shape[0])

    @property
    def hh_size(self) -> np.ndarray:
        """Persons per household."""
        sizes: np.ndarray = np.diff(self.hh_first)
        return sizes


# ---------------------------------------------------------------------------- helpers


def zone_node_index(node_zone: np.ndarray, n_zones: int) -> tuple[np.ndarray, np.ndarray]:
    """CSR of the nodes of each zone: ``(indptr int64[Z+1], nodes int32)``."""
    nz = np.asarray(node_zone)
    ok = np.flatnonzero(nz >= 0)
    order = ok[np.argsort(nz[ok], kind="stable")]
    counts = np.bincount(nz[ok], minlength=n_zones)[:n_zones]
    indptr = np.zeros(n_zones + 1, np.int64)
    np.cumsum(counts, out=indptr[1:])
    return indptr, order.astype(np.int32)


def access_node_index(
    node_zone: np.ndarray, n_zones: int, k: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``k`` random nodes of each zone (all of them for ``k == 0``), as CSR ``(indptr, nodes)``.

    Nodes are sorted within each zone.
    """
    indptr, nodes = zone_node_index(node_zone, n_zones)
    key = rng.random(nodes.size)
    if k <= 0:
        return indptr, nodes
    zone = np.repeat(np.arange(n_zones), np.diff(indptr))
    order = np.lexsort((key, zone))  # zones stay grouped, random within
    rank = np.arange(nodes.size) - indptr[zone]  # position within the zone (``order`` keeps zone blocks)
    keep = order[rank < k]
    zk, nk = zone[keep], nodes[keep]
    order = np.lexsort((nk, zk))
    counts = np.bincount(zk, minlength=n_zones)
    ptr = np.zeros(n_zones + 1, np.int64)
    np.cumsum(counts, out=ptr[1:])
    return ptr, nk[order].astype(np.int32)


def _pick_nodes(zone: np.ndarray, indptr: np.ndarray, nodes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A uniformly random node of each entry's zone."""
    count = indptr[zone + 1] - indptr[zone]
    j = np.minimum((rng.random(zone.shape[0]) * count).astype(np.int64), np.maximum(count - 1, 0))
    picked: np.ndarray = nodes[indptr[zone] + j]
    return picked


def _top_k(weights: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``k`` draws without replacement, probability in proportion to ``weights``."""
    if k <= 0:
        return np.zeros(0, np.int64)
    if k >= weights.shape[0]:
        return np.arange(weights.shape[0])
    with np.errstate(divide="ignore"):
        keys = np.log(weights) - np.log(-np.log(rng.random(weights.shape[0])))
    return np.argpartition(-keys, k - 1)[:k]


def doubly_constrained_integer(
    rows: np.ndarray, cols: np.ndarray, weight: np.ndarray, *, iters: int = 200
) -> np.ndarray:
    """An integer matrix with row sums ``rows`` and column sums ``cols``, close to ``weight``'s pattern.

    Iterative proportional fitting scales ``weight`` to both margins; each row
    is rounded by largest remainder, then units move within rows from columns
    over their total to columns under it (where the fitted matrix wants them
    most) until every column sum is exact.

    Parameters
    ----------
    rows, cols : int64 arrays
        Margins with equal sums.
    weight : float64[len(rows), len(cols)]
        Positive affinities (e.g. ``exp(-beta * distance)``).
    """
    rows = np.asarray(rows, np.int64)
    cols = np.asarray(cols, np.int64)
    if rows.sum() != cols.sum():
        raise PopulationError(f"margins differ: rows sum to {rows.sum()}, columns to {cols.sum()}")
    w = np.where(rows[:, None] > 0, 1.0, 0.0) * np.where(cols[None, :] > 0, 1.0, 0.0) * weight
    m = w.copy()
    for _ in range(iters):
        rs = m.sum(1)
        m *= np.divide(rows, rs, out=np.zeros_like(rs), where=rs > 0)[:, None]
        cs = m.sum(0)
        m *= np.divide(cols, cs, out=np.zeros_like(cs), where=cs > 0)[None, :]
        rs = m.sum(1)
        if np.allclose(rs, rows, rtol=1e-9, atol=1e-6):
            break
    n = np.zeros(m.shape, np.int64)
    for i in np.flatnonzero(rows > 0):
        wi = m[i] if m[i].sum() > 0 else (cols > 0).astype(np.float64)
        n[i] = allocate_integer(int(rows[i]), wi)
    diff = cols - n.sum(0)  # > 0: column short, < 0: column over
    guard = 0
    while np.any(diff != 0):
        guard += 1
        if guard > 10 * (rows.size + cols.size) + int(np.abs(diff).sum()):
            raise PopulationError("could not balance the assignment matrix")  # pragma: no cover
        j_over = int(np.argmin(diff))
        j_short = int(np.argmax(diff))
        donors = np.flatnonzero(n[:, j_over] > 0)
        donor = int(donors[np.argmax(m[donors, j_short] - m[donors, j_over] * 1e-12)])
        k = int(min(-diff[j_over], diff[j_short], n[donor, j_over]))
        n[donor, j_over] -= k
        n[donor, j_short] += k
        diff[j_over] += k
        diff[j_short] -= k
    return n


def _zone_distance_km(zx: np.ndarray, zy: np.ndarray) -> np.ndarray:
    d: np.ndarray = np.hypot(zx[:, None] - zx[None, :], zy[:, None] - zy[None, :]) / 1000.0
    if d.shape[0] > 1:
        off = d + np.diag(np.full(d.shape[0], np.inf))
        np.fill_diagonal(d, 0.5 * off.min(1))  # within a zone: half the distance to the nearest other
    return d


def _assign(
    home_zone: np.ndarray,
    who: np.ndarray,
    targets: np.ndarray,
    zx: np.ndarray,
    zy: np.ndarray,
    beta: float,
    indptr: np.ndarray,
    nodes: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Zones and nodes for the persons ``who`` (doubly constrained gravity)."""
    nzones = targets.shape[0]
    hz = home_zone[who]
    rows = np.bincount(hz, minlength=nzones).astype(np.int64)
    cols = allocate_integer(int(who.size), targets.astype(np.float64))
    f = np.nan_to_num(np.exp(-beta * _zone_distance_km(zx, zy)), nan=0.0)  # zones without nodes: no centroid
    mat = doubly_constrained_integer(rows, cols, f)
    order = np.lexsort((rng.random(who.size), hz))  # by home zone, random within
    labels = np.repeat(np.tile(np.arange(nzones, dtype=np.int32), nzones), mat.ravel())
    zone = np.empty(who.size, np.int32)
    zone[order] = labels
    return zone, _pick_nodes(zone, indptr, nodes, rng).astype(np.int32)


# -------------------------------------------------------------------------- synthesis


def synthesize_population(
    table: ZoneTable | Zones,
    *,
    rng: np.random.Generator,
    params: SynthesisParams = SynthesisParams(),
    scale: float = 1.0,
    persons: int | None = None,
) -> Population:
    """Persons in households from zone totals (see the module docstring).

    Parameters
    ----------
    table
        The zones (residents, jobs, centroids, ``node_zone``) and optional
        school places.
    rng
        The only source of randomness.
    params
        Distributions (:class:`SynthesisParams`).
    scale
        Share of the zones' residents to synthesise (1: all of them, exactly
        per zone; otherwise the scaled total split by largest remainder).
    persons
        A total number of persons instead (split over zones by residents).

    Raises
    ------
    PopulationError
        For bad parameters, or residents in a zone no network node lies in.
    """
    params.check()
    if isinstance(table, Zones):
        table = ZoneTable(table)
    z = table.zones
    nzones = z.n_zones
    zone_persons = _zone_persons(z, scale, persons)
    indptr, nodes = access_node_index(z.node_zone, nzones, int(params.access_nodes), rng)
    _check_access(z, indptr, zone_persons)

    hh_size, hh_zone = _households(zone_persons, params, rng)
    n_hh = hh_size.size
    hh_first = np.zeros(n_hh + 1, np.int64)
    np.cumsum(hh_size, out=hh_first[1:])
    n = int(hh_first[-1])
    household = np.repeat(np.arange(n_hh, dtype=np.int32), hh_size)
    pos = np.arange(n, dtype=np.int64) - np.repeat(hh_first[:-1], hh_size)
    age = _age_groups(pos, np.repeat(hh_size, hh_size), params, rng)

    worker, student, hh_car, car, vot = _traits(age, hh_size, params, rng)

    # --- homes, workplaces, schools
    hh_node = _pick_nodes(hh_zone, indptr, nodes, rng).astype(np.int32)
    home_zone = np.repeat(hh_zone, hh_size).astype(np.int32)
    home_node = np.repeat(hh_node, hh_size).astype(np.int32)
    access = _Access(indptr, nodes, home_zone, z.x, z.y)
    jobs = np.asarray(z.jobs, np.float64) * (np.diff(indptr) > 0)
    if jobs.sum() <= 0:
        jobs = zone_persons.astype(np.float64)
    work_zone, work_node = access.assign(worker, jobs, params.work_beta_per_km, rng)
    places = _school_places(table, zone_persons, indptr) if student.any() else zone_persons.astype(np.float64)
    school_zone, school_node = access.assign(student, places, params.school_beta_per_km, rng)
    log.info(
        "population: %d persons in %d households over %d zones (%d workers, %d pupils, %d with a car)",
        n,
        n_hh,
        nzones,
        int(worker.sum()),
        int(student.sum()),
        int(car.sum()),
    )
    return Population(
        household=household,
        home_zone=home_zone,
        home_node=home_node,
        age_group=age,
        worker=worker,
        student=student,
        car=car,
        vot=vot,
        work_zone=work_zone,
        work_node=work_node,
        school_zone=school_zone,
        school_node=school_node,
        hh_first=hh_first,
        hh_zone=hh_zone.astype(np.int32),
        hh_node=hh_node,
        hh_car=hh_car,
        zone_persons=zone_persons.astype(np.int64),
        access_indptr=indptr,
        access_nodes=nodes,
    )


def _zone_persons(z: Zones, scale: float, persons: int | None) -> np.ndarray:
    """Persons to synthesise per zone: all residents, a share of them, or a given total."""
    residents = np.asarray(z.residents, np.int64)
    if not scale > 0:
        raise PopulationError(f"scale must be positive, got {scale}")
    if persons is not None:
        if persons < 0:
            raise PopulationError(f"persons must be >= 0, got {persons}")
        return allocate_integer(int(persons), residents.astype(np.float64))
    if scale == 1.0:
        return residents.copy()
    return allocate_integer(int(round(scale * residents.sum())), residents.astype(np.float64))


def _check_access(z: Zones, indptr: np.ndarray, zone_persons: np.ndarray) -> None:
    """A PopulationError for zones with persons but no network node."""
    empty = (np.diff(indptr) == 0) & (zone_persons > 0)
    if empty.any():
        bad = np.flatnonzero(empty)
        raise PopulationError(
            f"{bad.size} zone(s) have residents but no network node: "
            + ", ".join(f"{z.name[i]!r} ({zone_persons[i]} persons)" for i in bad[:5])
            + (" ..." if bad.size > 5 else "")
            + "; give them nodes or 0 residents"
        )


def _households(
    zone_persons: np.ndarray, params: SynthesisParams, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Household sizes and zones: sizes drawn until each zone's total, the last one cut to fit."""
    shares = np.asarray(params.household_sizes, np.float64)
    shares = shares / shares.sum()
    mean_size = float(np.dot(np.arange(1, shares.size + 1), shares))
    sizes_list: list[np.ndarray] = []
    zone_list: list[np.ndarray] = []
    for i in np.flatnonzero(zone_persons > 0):
        total = int(zone_persons[i])
        drawn = np.zeros(0, np.int64)
        while drawn.sum() < total:
            m = int(total / mean_size * 1.1) + 8
            drawn = np.concatenate([drawn, rng.choice(shares.size, m, p=shares) + 1])
        cs = np.cumsum(drawn)
        n_h = int(np.searchsorted(cs, total)) + 1
        s = drawn[:n_h].copy()
        s[-1] -= int(cs[n_h - 1] - total)
        sizes_list.append(s)
        zone_list.append(np.full(n_h, i, np.int32))
    hh_size = np.concatenate(sizes_list) if sizes_list else np.zeros(0, np.int64)
    hh_zone = np.concatenate(zone_list) if zone_list else np.zeros(0, np.int32)
    return hh_size, hh_zone


def _age_groups(pos: np.ndarray, size_of: np.ndarray, params: SynthesisParams, rng: np.random.Generator) -> np.ndarray:
    """Age groups: the city's shares exactly; children never head a household
    (``pos``: each person's place in their household; ``size_of``: its size).
    """
    n = pos.size
    target = allocate_integer(n, np.asarray(params.age_shares, np.float64))
    age = np.full(n, AGE_ADULT, np.int8)
    n_child = int(target[AGE_PRESCHOOL] + target[AGE_SCHOOL])
    child_slots = np.flatnonzero(pos >= 2)
    second = np.flatnonzero(pos == 1)
    pick = child_slots[_top_k(np.ones(child_slots.size), min(n_child, child_slots.size), rng)]
    if n_child > pick.size:  # single parents: children in second place too
        more = second[_top_k(np.ones(second.size), min(n_child - pick.size, second.size), rng)]
        pick = np.concatenate([pick, more])
    pick = pick[rng.permutation(pick.size)]
    n_pre = min(int(target[AGE_PRESCHOOL]), pick.size)
    age[pick[:n_pre]] = AGE_PRESCHOOL
    age[pick[n_pre:]] = AGE_SCHOOL
    rest = np.flatnonzero(age == AGE_ADULT)
    w = np.where(size_of[rest] <= 2, 4.0, 1.0)  # seniors mostly live alone or as couples
    age[rest[_top_k(w, min(int(target[AGE_SENIOR]), rest.size), rng)]] = AGE_SENIOR
    return age


def _traits(
    age: np.ndarray, hh_size: np.ndarray, params: SynthesisParams, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Employment, school, cars (per household and person) and value of time."""
    n, n_hh = age.size, hh_size.size
    u = rng.random(n)
    worker = ((age == AGE_ADULT) & (u < params.employment_rate)) | (
        (age == AGE_SENIOR) & (u < params.senior_employment_rate)
    )
    student = age == AGE_SCHOOL
    # car ownership rises with household size, averaging ``car_share`` over households
    raw = np.minimum(0.6 + 0.2 * (hh_size - 1), 1.4)
    p_car = np.clip(params.car_share * raw / max(float(raw.mean()) if n_hh else 1.0, 1e-9), 0.0, 1.0)
    hh_car = rng.random(n_hh) < p_car
    car = np.repeat(hh_car, hh_size) & (age >= AGE_ADULT)
    vot = params.vot_median * np.exp(params.vot_sigma * rng.standard_normal(n))
    vot = np.where(worker, vot * params.worker_vot_factor, vot).astype(np.float32)
    return worker, student, hh_car, car, vot


def _school_places(table: ZoneTable, zone_persons: np.ndarray, indptr: np.ndarray) -> np.ndarray:
    """School places per zone with access nodes (the zone's persons where none are given)."""
    places = zone_persons.astype(np.float64) if table.schools is None else np.asarray(table.schools, np.float64)
    places = places * (np.diff(indptr) > 0)
    if places.sum() <= 0:
        places = zone_persons.astype(np.float64)
    return places


class _Access:
    """What assigning workplaces and schools needs: each zone's access nodes, homes, centroids."""

    def __init__(
        self, indptr: np.ndarray, nodes: np.ndarray, home_zone: np.ndarray, zx: np.ndarray, zy: np.ndarray
    ) -> None:
        self.indptr, self.nodes, self.home_zone, self.zx, self.zy = indptr, nodes, home_zone, zx, zy

    def assign(
        self, mask: np.ndarray, targets: np.ndarray, beta: float, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Zone and node per person (-1 outside ``mask``), by a doubly constrained gravity model."""
        n = mask.size
        zone = np.full(n, -1, np.int32)
        node = np.full(n, -1, np.int32)
        who = np.flatnonzero(mask)
        if who.size:
            zone[who], node[who] = _assign(
                self.home_zone, who, targets, self.zx, self.zy, beta, self.indptr, self.nodes, rng
            )
        return zone, node
