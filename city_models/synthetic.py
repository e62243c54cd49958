"""A synthetic grid city with a river, bridges, arterials, a ring road and signals.

The generator is deterministic for a given seed: every random choice comes
from one ``numpy.random.default_rng(seed)`` drawn in a fixed order.

Layout (``x`` east, ``y`` north, metres, origin at the south-west grid corner):

* a ``(blocks_x + 1) x (blocks_y + 1)`` grid of intersections, ``block_m``
  apart, slightly jittered; local streets (1 lane, 30-40 km/h) and arterials
  every ``arterial_every`` rows/columns (2 lanes, 50 km/h);
* a river: a horizontal band between two rows of nodes; only ``bridges``
  link pairs cross it (``link_kind == 'bridge'``, named, listed in
  :attr:`City.places`);
* a ring road ``block_m`` outside the grid (2-3 lanes, 70-80 km/h), joined
  to the grid's edge where the arterials end;
* fixed-time two-phase signals at arterial x arterial intersections;
* with ``priorities``, road ranks (``priority``): ring 8, arterials and
  connectors 7, local streets 3 (bridges take their road's), so local streets
  yield at unsignalised arterial junctions and connectors where they join the
  ring; without (the default, as before) every link's rank is 0 (unknown) and
  every junction merges by capacity;
* zones of ``zone_blocks x zone_blocks`` blocks, jobs dense in the centre,
  residents towards the periphery; fire, EMS and police stations and
  hospitals on both banks.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from city_models.city import City, Facility, Zones
from city_models.errors import CityError
from city_models.network import Network, make_network
from city_models.roads import PRIORITY_BY_KIND

__all__ = ["synthetic_city", "REFERENCE_LON", "REFERENCE_LAT", "BRIDGE_NAMES", "allocate_integer"]

logger = logging.getLogger(__name__)

#: the geographic point the synthetic grid's centre is placed at (Helsinki)
REFERENCE_LON = 24.94
REFERENCE_LAT = 60.17
_M_PER_DEG = 111_320.0

#: names given to the bridges, in order of creation
BRIDGE_NAMES = (
    "Old Bridge",
    "North Bridge",
    "Ring Bridge",
    "Harbour Bridge",
    "Mill Bridge",
    "Iron Bridge",
    "Stone Bridge",
    "Railway Bridge",
)


def allocate_integer(total: int, weights: np.ndarray) -> np.ndarray:
    """Split an integer ``total`` in proportion to ``weights`` (largest remainder).

    Parameters
    ----------
    total : int
        Non-negative integer to split.
    weights : numpy.ndarray
        Non-negative weights; at least one positive unless ``total`` is 0.

    Returns
    -------
    numpy.ndarray
        int64 parts that sum exactly to ``total``.
    """
    w = np.asarray(weights, dtype=np.float64)
    if total == 0 or w.size == 0:
        return np.zeros(w.size, dtype=np.int64)
    s = w.sum()
    if not np.isfinite(s) or s <= 0:
        w = np.ones_like(w)
        s = w.sum()
    exact = total * w / s
    base: np.ndarray = np.floor(exact).astype(np.int64)
    rest = int(total - base.sum())
    order = np.argsort(-(exact - base), kind="stable")
    base[order[:rest]] += 1
    return base


def _lonlat(x: np.ndarray, y: np.ndarray, cx: float, cy: float) -> tuple[np.ndarray, np.ndarray]:
    lat: np.ndarray = REFERENCE_LAT + (y - cy) / _M_PER_DEG
    lon: np.ndarray = REFERENCE_LON + (x - cx) / (_M_PER_DEG * math.cos(math.radians(REFERENCE_LAT)))
    return lon, lat


def synthetic_city(  # noqa: PLR0913 (keyword-only: the scenario's city.synthetic section)
    *,
    blocks_x: int = 12,
    blocks_y: int = 12,
    block_m: float = 250.0,
    river: bool = True,
    bridges: int = 3,
    ring_road: bool = True,
    arterial_every: int = 4,
    residents: int = 120_000,
    jobs: int = 80_000,
    zone_blocks: int = 3,
    signals: bool = True,
    priorities: bool = False,
    seed: int = 0,
) -> City:
    """Generate a small grid city.

    Parameters
    ----------
    blocks_x, blocks_y : int
        Blocks east-west and north-south (nodes are one more each way).
    block_m : float
        Block edge length, metres.
    river : bool
        Put a river between two middle rows of nodes.
    bridges : int
        Link pairs that cross the river (ignored without a river).  With 0
        the banks are disconnected.
    ring_road : bool
        Add a ring road around the grid.
    arterial_every : int
        Every this many rows/columns (counting the edges) is an arterial.
    residents, jobs : int
        City totals, split exactly over the zones.
    zone_blocks : int
        Zone edge, in blocks.
    signals : bool
        Fixed-time signals at arterial x arterial intersections.
    priorities : bool
        Rank the roads (link ``priority``), so minor roads yield at unsignalised
        junctions; off by default (every rank 0, capacity-proportional merging).
    seed : int
        Seed of the random generator; equal seeds give identical cities.

    Returns
    -------
    City
        Not validated; :func:`city_models.load_city` validates it.

    Raises
    ------
    CityError
        When an argument is out of range.
    """
    _check_arguments(
        blocks_x=blocks_x,
        blocks_y=blocks_y,
        block_m=block_m,
        river=river,
        bridges=bridges,
        arterial_every=arterial_every,
        residents=residents,
        jobs=jobs,
        zone_blocks=zone_blocks,
    )
    rng = np.random.default_rng(seed)
    grid = _Grid(rng, int(blocks_x), int(blocks_y), block_m, river, int(arterial_every))
    links = _LinkList()
    places: dict[str, np.ndarray] = {}
    _add_rows(grid, links)
    bridge_name = _bridge_names(grid, bridges, ring_road)
    _add_columns(grid, links, bridge_name, places)
    xs_l, ys_l = list(grid.xs), list(grid.ys)
    if ring_road:
        _add_ring(grid, links, rng, bridge_name, places, xs_l, ys_l)

    net = _network(grid, links, rng, xs_l, ys_l, signals=signals, priorities=priorities)
    zones = _zones(grid, rng, net.x, net.y, zone_blocks=int(zone_blocks), residents=int(residents), jobs=int(jobs))
    facilities = _facilities(grid, rng)
    logger.info(
        "synthetic city: %d nodes, %d links, %d zones, %d bridges", net.n_nodes, net.n_links, zones.n_zones, len(places)
    )
    bx, by = grid.bx, grid.by
    return City(name=f"synthetic-{bx}x{by}-seed{seed}", network=net, zones=zones, facilities=facilities, places=places)


def _check_arguments(
    *,
    blocks_x: int,
    blocks_y: int,
    block_m: float,
    river: bool,
    bridges: int,
    arterial_every: int,
    residents: int,
    jobs: int,
    zone_blocks: int,
) -> None:
    """Every argument out of range at once, as one :class:`CityError`."""
    problems = []
    for name, v, lo in (
        ("blocks_x", blocks_x, 1),
        ("blocks_y", blocks_y, 2 if river else 1),
        ("arterial_every", arterial_every, 1),
        ("zone_blocks", zone_blocks, 1),
        ("bridges", bridges, 0),
        ("residents", residents, 0),
        ("jobs", jobs, 0),
    ):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < lo:
            problems.append(f"{name} must be an integer >= {lo}, got {v!r}")
    if not (isinstance(block_m, (int, float)) and math.isfinite(block_m) and block_m > 0):
        problems.append(f"block_m must be a positive number of metres, got {block_m!r}")
    if problems:
        raise CityError("invalid synthetic city arguments: " + "; ".join(problems) + ".")


class _Grid:
    """The jittered grid of intersections, its arterials and street speeds (draws the grid's random numbers)."""

    def __init__(
        self, rng: np.random.Generator, bx: int, by: int, block_m: float, river: bool, arterial_every: int
    ) -> None:
        self.bx, self.by, self.block_m, self.river = bx, by, block_m, river
        self.nx_, self.ny_ = bx + 1, by + 1
        self.river_row = (by - 1) // 2 if river else -1  # river between rows river_row and river_row + 1
        self.river_w = 0.5 * block_m if river else 0.0
        ii, jj = np.meshgrid(np.arange(self.nx_), np.arange(self.ny_))  # row-major: node = j * nx_ + i
        self.ii, self.jj = ii.ravel(), jj.ravel()
        self.jitter = rng.uniform(-0.04, 0.04, size=(self.ii.size, 2)) * block_m
        self.xs = self.ii * block_m + self.jitter[:, 0]
        self.ys = self.jj * block_m + np.where(self.jj > self.river_row, self.river_w, 0.0) + self.jitter[:, 1]
        self.width = bx * block_m
        self.height = by * block_m + self.river_w
        ae = arterial_every
        self.col_art = [i % ae == 0 for i in range(self.nx_)]
        self.row_art = [j % ae == 0 for j in range(self.ny_)]
        self.col_speed = [50.0 if self.col_art[i] else float(rng.choice([30.0, 35.0, 40.0])) for i in range(self.nx_)]
        self.row_speed = [50.0 if self.row_art[j] else float(rng.choice([30.0, 35.0, 40.0])) for j in range(self.ny_)]

    def gid(self, i: int, j: int) -> int:
        """The node at column ``i``, row ``j``."""
        return j * self.nx_ + i


class _LinkList:
    """Links as they are added, in two-way pairs."""

    def __init__(self) -> None:
        self.src: list[int] = []
        self.dst: list[int] = []
        self.lanes: list[float] = []
        self.speed: list[float] = []
        self.kinds: list[str] = []
        self.names: list[str] = []
        self.prio: list[int] = []

    def add_pair(
        self, a: int, b: int, kind: str, nl: float, kph: float, name: str, rank: int | None = None
    ) -> np.ndarray:
        """Links ``a -> b`` and ``b -> a``; returns their ids."""
        ids = np.array([len(self.src), len(self.src) + 1], dtype=np.int64)
        for u, v in ((a, b), (b, a)):
            self.src.append(u)
            self.dst.append(v)
            self.lanes.append(nl)
            self.speed.append(kph)
            self.kinds.append(kind)
            self.names.append(name)
            self.prio.append(PRIORITY_BY_KIND[kind] if rank is None else rank)
        return ids


def _street(is_art: bool, k: int, axis: str) -> str:
    return f"{k} {'Boulevard' if is_art else 'Street'}" if axis == "row" else f"{k} {'Avenue' if is_art else 'Lane'}"


def _add_rows(grid: _Grid, links: _LinkList) -> None:
    """The horizontal streets."""
    for j in range(grid.ny_):
        for i in range(grid.bx):
            art = grid.row_art[j]
            kind = "arterial" if art else "local"
            links.add_pair(
                grid.gid(i, j), grid.gid(i + 1, j), kind, 2.0 if art else 1.0, grid.row_speed[j], _street(art, j, "row")
            )


def _bridge_names(grid: _Grid, bridges: int, ring_road: bool) -> dict[tuple[str, int], str]:
    """Where the bridges go -> their names.

    Candidates: interior arterial columns near the centre first, then the
    ring road's sides, then edge arterials, then local columns near the centre.
    """
    bx, col_art = grid.bx, grid.col_art
    centre_i = bx / 2.0
    interior_art = sorted((i for i in range(1, bx) if col_art[i]), key=lambda i: (abs(i - centre_i), i))
    edge_art = [i for i in (0, bx) if col_art[i]]
    local_cols = sorted((i for i in range(grid.nx_) if not col_art[i]), key=lambda i: (abs(i - centre_i), i))
    candidates: list[tuple[str, int]] = [("col", i) for i in interior_art]
    if ring_road:
        candidates += [("ring", 0), ("ring", 1)]
    candidates += [("col", i) for i in edge_art] + [("col", i) for i in local_cols]
    if grid.river and bridges > len(candidates):
        raise CityError(
            f"invalid synthetic city arguments: bridges={bridges} but only {len(candidates)} "
            f"river crossings exist on a {bx}-block-wide grid."
        )
    chosen = candidates[: bridges if grid.river else 0]
    return {c: (BRIDGE_NAMES[k] if k < len(BRIDGE_NAMES) else f"Bridge {k + 1}") for k, c in enumerate(chosen)}


def _add_columns(
    grid: _Grid, links: _LinkList, bridge_name: dict[tuple[str, int], str], places: dict[str, np.ndarray]
) -> None:
    """The vertical streets; across the river only the bridges."""
    for i in range(grid.nx_):
        art = grid.col_art[i]
        for j in range(grid.by):
            kind = "arterial" if art else "local"
            nl = 2.0 if art else 1.0
            name = _street(art, i, "col")
            a, b = grid.gid(i, j), grid.gid(i, j + 1)
            if j == grid.river_row:
                if ("col", i) not in bridge_name:
                    continue
                name = bridge_name[("col", i)]
                places[name] = links.add_pair(a, b, "bridge", nl, grid.col_speed[i], name, PRIORITY_BY_KIND[kind])
                continue
            links.add_pair(a, b, kind, nl, grid.col_speed[i], name)


def _ring_points(grid: _Grid) -> list[tuple[float, float, int, int]]:
    """The ring road's nodes: (x, y, grid node to connect or -1, side), going round counter-clockwise."""
    d, gid, row_art = grid.block_m, grid.gid, grid.row_art
    bx, by, ys, jitter = grid.bx, grid.by, grid.ys, grid.jitter
    art_cols = [i for i in range(grid.nx_) if grid.col_art[i]]
    river_rows = {grid.river_row, grid.river_row + 1} if grid.river else set()
    side_rows = sorted({j for j in range(grid.ny_) if row_art[j]} | river_rows)
    width, height = grid.width, grid.height
    pts: list[tuple[float, float, int, int]] = [(-d, -d, -1, 0)]
    pts += [(i * d, -d, gid(i, 0), 0) for i in art_cols]
    pts += [(width + d, -d, -1, 1)]
    pts += [
        (width + d, float(ys[gid(bx, j)] - jitter[gid(bx, j), 1]), gid(bx, j) if row_art[j] else -1, 1)
        for j in side_rows
    ]
    pts += [(width + d, height + d, -1, 2)]
    pts += [(i * d, height + d, gid(i, by), 2) for i in reversed(art_cols)]
    pts += [(-d, height + d, -1, 3)]
    pts += [
        (-d, float(ys[gid(0, j)] - jitter[gid(0, j), 1]), gid(0, j) if row_art[j] else -1, 3)
        for j in reversed(side_rows)
    ]
    return pts


def _add_ring(
    grid: _Grid,
    links: _LinkList,
    rng: np.random.Generator,
    bridge_name: dict[tuple[str, int], str],
    places: dict[str, np.ndarray],
    xs_l: list[float],
    ys_l: list[float],
) -> None:
    """The ring road ``block_m`` outside the grid, its bridges and its connectors to the arterials."""
    ring_lanes = [float(rng.choice([2.0, 3.0])) for _ in range(4)]
    ring_speed = [float(rng.choice([70.0, 80.0])) for _ in range(4)]
    pts = _ring_points(grid)
    first = len(xs_l)
    for px, py, _, _ in pts:
        xs_l.append(px)
        ys_l.append(py)
    river_y = grid.river_row * grid.block_m + 0.5 * grid.river_w + grid.block_m * 0.5
    for k in range(len(pts)):
        a, b = first + k, first + (k + 1) % len(pts)
        side = pts[k][3]
        crosses = grid.river and (min(ys_l[a], ys_l[b]) < river_y < max(ys_l[a], ys_l[b])) and xs_l[a] == xs_l[b]
        if crosses:
            key = ("ring", 0 if xs_l[a] < 0 else 1)
            if key not in bridge_name:
                continue
            name = bridge_name[key]
            places[name] = links.add_pair(
                a, b, "bridge", ring_lanes[side], ring_speed[side], name, PRIORITY_BY_KIND["ring"]
            )
            continue
        links.add_pair(a, b, "ring", ring_lanes[side], ring_speed[side], "Ring Road")
    for k, (_, _, g, _) in enumerate(pts):
        if g >= 0:
            links.add_pair(first + k, g, "connector", 2.0, 50.0, "Ring Road Junction")


def _network(
    grid: _Grid,
    links: _LinkList,
    rng: np.random.Generator,
    xs_l: list[float],
    ys_l: list[float],
    *,
    signals: bool,
    priorities: bool,
) -> Network:
    """The network record: nodes, links, lengths, signals (drawn here) and, with ``priorities``, road ranks."""
    x = np.asarray(xs_l, dtype=np.float64)
    y = np.asarray(ys_l, dtype=np.float64)
    n = x.size
    src_a = np.asarray(links.src, dtype=np.int64)
    dst_a = np.asarray(links.dst, dtype=np.int64)
    length = np.hypot(x[dst_a] - x[src_a], y[dst_a] - y[src_a])
    cycle, offset, g_start, g_end = _signals(grid, rng, x, y, src_a, dst_a, on=signals)
    lon, lat = _lonlat(x, y, grid.width / 2.0, grid.height / 2.0)
    return make_network(
        x=x,
        y=y,
        lon=lon,
        lat=lat,
        node_osmid=np.arange(n, dtype=np.int64),
        src=src_a,
        dst=dst_a,
        length_m=length,
        lanes=np.asarray(links.lanes),
        free_speed_mps=np.asarray(links.speed) / 3.6,
        link_osmid=np.arange(src_a.size, dtype=np.int64),
        link_name=links.names,
        link_kind=links.kinds,
        priority=np.asarray(links.prio, dtype=np.int64) if priorities else None,
        signal_cycle_s=cycle,
        signal_offset_s=offset,
        green_start_s=g_start,
        green_end_s=g_end,
    )


def _signals(
    grid: _Grid,
    rng: np.random.Generator,
    x: np.ndarray,
    y: np.ndarray,
    src: np.ndarray,
    dst: np.ndarray,
    *,
    on: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fixed-time two-phase signals at arterial x arterial intersections: cycle and
    offset per node, green start and end per link.
    """
    n = x.size
    cycle = np.zeros(n)
    offset = np.zeros(n)
    g_start = np.zeros(src.size)
    g_end = np.zeros(src.size)
    if not on:
        return cycle, offset, g_start, g_end
    for j in range(grid.ny_):
        for i in range(grid.nx_):
            if not (grid.row_art[j] and grid.col_art[i]):
                continue
            node = grid.gid(i, j)
            c = float(rng.choice([60.0, 70.0, 80.0, 90.0]))
            cycle[node] = c
            offset[node] = float(np.round(rng.uniform(0.0, c)))
            g = (c - 6.0) / 2.0
            into = np.flatnonzero(dst == node)
            dx = np.abs(x[node] - x[src[into]])
            dy = np.abs(y[node] - y[src[into]])
            horiz = dx >= dy
            g_start[into] = np.where(horiz, 0.0, g + 3.0)
            g_end[into] = np.where(horiz, g, c - 3.0)
    return cycle, offset, g_start, g_end


def _zones(
    grid: _Grid, rng: np.random.Generator, x: np.ndarray, y: np.ndarray, *, zone_blocks: int, residents: int, jobs: int
) -> Zones:
    """Zones of ``zone_blocks`` x ``zone_blocks`` blocks: jobs dense in the centre, residents towards the edge."""
    bx, by, zb = grid.bx, grid.by, zone_blocks
    nzx, nzy = -(-bx // zb), -(-by // zb)
    n = x.size
    n_grid = grid.nx_ * grid.ny_
    node_zone = np.full(n, -1, dtype=np.int32)
    node_zone[:n_grid] = (np.minimum(grid.jj, by - 1) // zb) * nzx + np.minimum(grid.ii, bx - 1) // zb
    if n > n_grid:
        d2 = (x[n_grid:, None] - x[None, :n_grid]) ** 2 + (y[n_grid:, None] - y[None, :n_grid]) ** 2
        node_zone[n_grid:] = node_zone[:n_grid][np.argmin(d2, axis=1)]
    nz = nzx * nzy
    counts = np.bincount(node_zone[:n_grid], minlength=nz)
    zx = np.bincount(node_zone[:n_grid], weights=x[:n_grid], minlength=nz) / np.maximum(counts, 1)
    zy = np.bincount(node_zone[:n_grid], weights=y[:n_grid], minlength=nz) / np.maximum(counts, 1)
    cx, cy = grid.width / 2.0, grid.height / 2.0
    r = np.hypot(zx - cx, zy - cy)
    r = r / max(float(r.max()), 1e-9)
    noise = rng.lognormal(0.0, 0.2, size=(2, nz))
    job_w = (np.exp(-((r / 0.35) ** 2)) + 0.05) * noise[0]
    res_w = (0.4 + r) * noise[1]
    return Zones(
        name=tuple(f"Z{k // nzx:02d}-{k % nzx:02d}" for k in range(nz)),
        residents=allocate_integer(residents, res_w),
        jobs=allocate_integer(jobs, job_w),
        x=zx,
        y=zy,
        node_zone=node_zone,
    )


#: the facilities placed: kind, name, position as a fraction of the grid (x, y), capacity range
_FACILITIES = (
    ("fire_station", "Fire Station 1", 0.25, 0.2, (2, 4)),
    ("fire_station", "Fire Station 2", 0.75, 0.25, (2, 4)),
    ("fire_station", "Fire Station 3", 0.3, 0.8, (2, 4)),
    ("fire_station", "Fire Station 4", 0.75, 0.75, (2, 4)),
    ("ems_station", "Ambulance Station South", 0.5, 0.3, (3, 6)),
    ("ems_station", "Ambulance Station North", 0.5, 0.75, (3, 6)),
    ("police_station", "Central Police Station", 0.55, 0.55, (6, 10)),
    ("hospital", "South General Hospital", 0.4, 0.15, (150, 450)),
    ("hospital", "North General Hospital", 0.6, 0.9, (150, 450)),
)
#: added on grids of at least 100 blocks
_BIG_CITY_FACILITIES = (("hospital", "Children's Hospital", 0.85, 0.6, (80, 200)),)


def _facilities(grid: _Grid, rng: np.random.Generator) -> tuple[Facility, ...]:
    """Fire, EMS and police stations and hospitals on both banks."""
    bx, by, river_row = grid.bx, grid.by, grid.river_row

    def node_at(fx: float, fy: float) -> int:
        i = int(round(fx * bx))
        j = int(round(fy * by))
        if grid.river:  # keep the intended bank
            j = min(j, river_row) if fy < 0.5 else max(j, river_row + 1)
        return grid.gid(min(max(i, 0), bx), min(max(j, 0), by))

    specs = _FACILITIES + (_BIG_CITY_FACILITIES if bx * by >= 100 else ())
    return tuple(
        Facility(kind=k, name=nm, node=node_at(fx, fy), capacity=int(rng.integers(lo, hi + 1)))
        for k, nm, fx, fy, (lo, hi) in specs
    )
