"""Population benchmark: persons synthesised and simulated through a day, traffic included.

The city is the ``metro`` case's network (a 72 x 72 grid, 20,448 links, see
:func:`benchmarks.cases.metro_case`) with 1 km square zones: residents denser
towards the edge, jobs concentrated in the centre.  Each size runs in its own
child process (after a small warm-up run in the parent has compiled the numba
kernels; each child repeats it untimed, see :func:`warm_up`), so its peak
resident memory is its own::

    python -m benchmarks.population                       # 100,000 and 1,000,000 persons
    python -m benchmarks.population --access-nodes 0      # every node an access node
    python -m benchmarks.population --persons 100000      # just one size
    python -m benchmarks.population --persons 20000 --hours 6

Timed: ``build`` (synthesis, plans, Mesa agents, the first skim: everything in
``Twin(...)``) and ``run`` (the day: agents' decisions, the traffic model and
its re-routing, recording).  ``population`` is the part of ``run`` spent in the
population's own steps (arrivals, choices, putting trips on the road).  Wall
times and CPU times (all threads) are both reported: on a shared machine the
wall time depends on the other load, the CPU time much less.
Results go to ``OUT/results.json`` (atomically).
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import os
import platform
import resource
import time
from pathlib import Path

import numpy as np

from basics.atomic import atomic_open

log = logging.getLogger("benchmarks.population")


def metro_city(persons: int, *, n: int = 72, link_m: float = 200.0, zone_m: float = 1000.0):
    """The metro grid as a :class:`city_models.City` with 1 km zones and ``persons`` residents."""
    from benchmarks.cases import grid_network
    from city_models import City, Zones
    from city_models.synthetic import allocate_integer

    net = grid_network(
        n, link_m=link_m, lanes=1.0, speed_kmh=40.0, arterial_every=6, arterial_lanes=2.0, arterial_speed_kmh=60.0
    )
    ix = np.floor(net.x / zone_m).astype(np.int64)
    iy = np.floor(net.y / zone_m).astype(np.int64)
    ncol = int(ix.max()) + 1
    cells, node_zone = np.unique(iy * ncol + ix, return_inverse=True)
    counts = np.bincount(node_zone).astype(np.float64)
    zx = np.bincount(node_zone, weights=net.x) / counts
    zy = np.bincount(node_zone, weights=net.y) / counts
    cx, cy = net.x.mean(), net.y.mean()
    r = np.hypot(zx - cx, zy - cy)
    r /= r.max()
    res_w = (0.4 + r) * counts
    job_w = (np.exp(-((r / 0.35) ** 2)) + 0.05) * counts
    zones = Zones(
        name=tuple(f"C{c // ncol:02d}-{c % ncol:02d}" for c in cells),
        residents=allocate_integer(int(persons), res_w),
        jobs=allocate_integer(int(0.55 * persons), job_w),
        x=zx,
        y=zy,
        node_zone=node_zone.astype(np.int32),
    )
    return City(name=f"metro-{n}x{n}", network=net, zones=zones)


def _scenario(hours: float, step: float, reroute: float, bucket: float, access: int = 0):
    from scenarios import load_scenario

    return load_scenario(
        {
            "name": "population_benchmark",
            "time": {"start": "00:00", "duration": hours * 3600.0, "step": step},
            "city": {"synthetic": {}},  # replaced by the metro city passed to Twin
            "traffic": {"reroute_interval": reroute},
            "outputs": {"interval": "5min"},
            "population": {
                "enabled": True,
                "bucket": bucket,
                "trip_table": False,
                "synthesis": {"access_nodes": access},
            },
        }
    )


def run_size(
    persons: int,
    *,
    hours: float = 24.0,
    step: float = 2.0,
    reroute: float = 600.0,
    bucket: float = 300.0,
    access: int = 0,
) -> dict:
    """Build and run one size in this process; returns the measurements."""
    from twin.model import Twin
    from twin.population.component import PopulationComponent

    city = metro_city(persons)
    sc = _scenario(hours, step, reroute, bucket, access)
    spent = [0.0]
    inner = PopulationComponent._step

    def timed(self, k):
        t = time.perf_counter()
        inner(self, k)
        spent[0] += time.perf_counter() - t

    PopulationComponent._step = timed  # benchmark-only timing of the agents' share
    try:
        c0, t0 = time.process_time(), time.perf_counter()
        tw = Twin(sc, city=city)
        c1, t1 = time.process_time(), time.perf_counter()
        tw.run()
        c2, t2 = time.process_time(), time.perf_counter()
    finally:
        PopulationComponent._step = inner
    k = tw.kpis()
    pop = tw.components["population"]
    return {
        "persons": int(pop.people.n_persons),
        "households": int(pop.people.n_households),
        "links": int(city.network.n_links),
        "planned_trips": int(pop.plans.n_trips),
        "trips_made": int(k["pop_trips_made"]),
        "car_trips": int(k["pop_trips_car"]),
        "vehicles": int(tw.traffic.n_vehicles),
        "vehicles_completed": int(k["trips_completed"]),
        "trips_cancelled": int(k["pop_trips_cancelled"]),
        "mean_travel_time_s": float(k["mean_travel_time_s"]),
        "mean_car_trip_km": float(k["vehicle_km"]) / max(int(k["trips_completed"]), 1),
        "mean_gc": float(k["pop_mean_gc"]),
        "build_s": t1 - t0,
        "run_s": t2 - t1,
        "population_s": spent[0],
        "total_s": t2 - t0,
        "build_cpu_s": c1 - c0,
        "run_cpu_s": c2 - c1,
        "route_rows": int(tw.traffic.dest_nodes.shape[0]),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
    }


def warm_up(*, step: float = 2.0, reroute: float = 600.0, bucket: float = 300.0) -> None:
    """Compile (or load) the numba kernels: a small run through the morning (a run
    with no car on the road compiles the traffic kernels only for empty vehicle
    arrays, whose columns numba types differently), then one choice batch large
    enough for the parallel path (the small run's batches are all below it).
    """
    from kernels import choice as kc

    seen = []
    inner = kc.choose

    def spy(par, inp, world, out):
        seen.append((par, inp, world))
        return inner(par, inp, world, out)

    kc.choose = spy
    try:
        run_size(2000, hours=9.0, step=step, reroute=reroute, bucket=bucket)
    finally:
        kc.choose = inner
    par, inp, world = next(((p, i, w) for p, i, w in reversed(seen) if i.key.shape[0]), seen[-1])
    n = kc._PARALLEL_MIN
    big = kc.ChoiceInputs(*(np.resize(a, n) for a in inp))
    kc.choose(par, big, world, kc.empty_outputs(n))


def _child(conn, persons, kw):
    try:
        warm_up(step=kw["step"], reroute=kw["reroute"], bucket=kw["bucket"])  # load the kernels
        conn.send(run_size(persons, **kw))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        conn.send({"persons": persons, "error": f"{type(exc).__name__}: {exc}"})
    finally:
        conn.close()


def run_isolated(persons: int, **kw) -> dict:
    ctx = mp.get_context("spawn")  # numba's thread pool does not survive a fork
    parent, child = ctx.Pipe(duplex=False)
    p = ctx.Process(target=_child, args=(child, persons, kw))
    p.start()
    child.close()
    res = parent.recv()
    p.join()
    return res


def _write(out: Path, payload: dict) -> None:
    with atomic_open(out / "results.json", "w") as fh:
        json.dump(payload, fh, indent=2)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.population", description=__doc__.splitlines()[0])
    ap.add_argument("--persons", default="100000,1000000", help="comma list of population sizes")
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--step", type=float, default=2.0, help="traffic time step, s")
    ap.add_argument("--reroute", type=float, default=600.0, help="re-routing interval, s")
    ap.add_argument("--bucket", type=float, default=300.0, help="decision bucket, s")
    ap.add_argument("--access-nodes", type=int, default=6, help="access nodes per zone (0: every node; default 6)")
    ap.add_argument("--no-isolate", action="store_true", help="run in this process (peak memory then cumulative)")
    ap.add_argument("--out", default="benchmarks/out/population")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    sizes = [int(float(s)) for s in args.persons.split(",") if s.strip()]
    kw = dict(hours=args.hours, step=args.step, reroute=args.reroute, bucket=args.bucket, access=args.access_nodes)
    t = time.perf_counter()
    warm_up(step=args.step, reroute=args.reroute, bucket=args.bucket)  # compile the kernels
    warm = time.perf_counter() - t
    rows = []
    payload = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "args": vars(args),
        "warmup_s": warm,
        "results": rows,
    }
    for n in sizes:
        res = run_size(n, **kw) if args.no_isolate else run_isolated(n, **kw)
        rows.append(res)
        _write(Path(args.out), payload)
    hdr = (
        "persons",
        "households",
        "trips_made",
        "car_trips",
        "vehicles_completed",
        "route_rows",
        "build_s",
        "run_s",
        "population_s",
        "total_s",
        "build_cpu_s",
        "run_cpu_s",
        "peak_rss_mb",
    )
    print(f"warm-up (numba compile, 2,000 persons, 9 h): {warm:.1f} s")
    print(" | ".join(hdr))
    for r in rows:
        if "error" in r:
            print(f"{r['persons']:,} | error: {r['error']}")
            continue
        cells = [f"{r[h]:,}" if isinstance(r[h], int) else f"{r[h]:.1f}" for h in hdr]
        print(" | ".join(cells))
    return 0 if all("error" not in r for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
