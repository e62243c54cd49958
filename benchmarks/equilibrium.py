"""Equilibrium benchmark: day-to-day iterations of the ``metro`` day (issue 12, "Performance").

The ``metro`` case (:func:`benchmarks.cases.metro_case`: a 72 x 72 grid with
arterials, 20,448 links, 1,000,000 trips over 24 h, simulated 25 h) run through
:func:`twin.equilibrium.equilibrate` as ``twin equilibrate`` runs a scenario: the
trips go in as a trips table (a CSV written once to ``--out``), the city is the
metro grid (:func:`benchmarks.population.metro_city`, the same network), and the
scenario's traffic settings are the defaults (step 2 s, re-routing every 10 min in
5 batches, 5 min knowledge bins, MSA learning)::

    python -m benchmarks.equilibrium                         # 20 days of the metro day
    python -m benchmarks.equilibrium --iterations 3 --trips 100000 --hours 10  # a quick look

Every iteration runs (``--gap-target 0``, the default here) so that 20 days are
timed; the table says on which day the relative gap first fell to 1 % (the
scenario default's stopping point).  A small untimed run first compiles (or loads)
the numba kernels.  Prints a row per day (relative gap, mean travel time,
vehicle-hours, seconds) and the total; ``OUT/results.json`` has them too.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import time
from pathlib import Path

import numpy as np

from basics.atomic import atomic_open

log = logging.getLogger("benchmarks.equilibrium")


def metro_scenario(
    trips_csv: Path, *, hours: float, step: float, reroute: float, interval: float, iterations: int, gap_target: float
):
    """The scenario for the metro day: defaults except the trips table and the horizon."""
    from scenarios import load_scenario

    return load_scenario(
        {
            "name": "metro_equilibrium",
            "time": {"start": "00:00", "duration": hours * 3600.0, "step": step},
            "city": {"synthetic": {}},  # replaced by the metro city passed to equilibrate
            "demand": {"trips": str(trips_csv)},
            "traffic": {
                "reroute_interval": reroute,
                "equilibrium": {"iterations": iterations, "gap_target": gap_target},
            },
            "outputs": {"interval": interval},
        }
    )


def write_trips(trips, path: Path) -> Path:
    """The case's trips as a trips table (node ids are the grid's dense indices)."""
    import pandas as pd

    frame = pd.DataFrame(
        {
            "trip_id": trips.trip_id,
            "origin": trips.origin,
            "destination": trips.destination,
            "depart_s": np.round(trips.depart_s, 3),
        }
    )
    with atomic_open(path, "w", newline="") as fh:
        frame.to_csv(fh, index=False)
    return path


def run(
    *,
    n_trips: int,
    hours: float,
    iterations: int,
    gap_target: float,
    step: float,
    reroute: float,
    interval: float,
    out: Path,
    threads: int | None,
    seed: int = 0,
    warm_up: bool = True,
) -> dict:
    from benchmarks.cases import metro_case
    from benchmarks.population import metro_city
    from twin.equilibrium import equilibrate

    case = metro_case(seed=seed, n_trips=n_trips)
    city = metro_city(1000)
    net_c, net_m = case.network, city.network
    if (
        net_c.n_links != net_m.n_links
        or not np.array_equal(net_c.src, net_m.src)
        or not np.array_equal(net_c.dst, net_m.dst)
    ):
        raise RuntimeError("metro_case and metro_city built different networks")
    csv = write_trips(case.trips, out / f"metro_trips_{n_trips}_seed{seed}.csv")
    sc = metro_scenario(
        csv, hours=hours, step=step, reroute=reroute, interval=interval, iterations=iterations, gap_target=gap_target
    )

    # untimed warm-up: compile (or load) the kernels on a small day
    t = time.perf_counter()
    if warm_up:
        small = metro_case(seed=seed, n_trips=20000)
        small_csv = write_trips(small.trips, out / f"metro_trips_20000_seed{seed}.csv")
        equilibrate(
            metro_scenario(
                small_csv, hours=10.0, step=step, reroute=reroute, interval=interval, iterations=2, gap_target=0.0
            ),
            city=city,
            threads=threads,
        )
        print(
            f"warm-up (kernels compiled or loaded: 2 days to 10:00 of the case with 20,000 trips): "
            f"{time.perf_counter() - t:.1f} s",
            flush=True,
        )
    warm_s = time.perf_counter() - t

    rows = []
    cpu_mark = [time.process_time()]

    def show(row: dict) -> None:
        now = time.process_time()
        row = {k: v for k, v in row.items() if k != "kpis"}
        row["cpu_s"] = now - cpu_mark[0]  # CPU seconds of the day, all threads (less noisy than wall)
        cpu_mark[0] = now
        rows.append(row)
        print(
            f"  day {row['iteration']:>3}: relative gap {100 * row['relative_gap']:6.2f} %, mean travel time "
            f"{row['mean_travel_time_s']:7.1f} s, {row['vehicle_hours']:,.0f} veh-h, "
            f"{int(row['trips_completed']):,} completed, {row['wall_s']:.1f} s (CPU {row['cpu_s']:.1f} s)",
            flush=True,
        )

    c0, t0 = time.process_time(), time.perf_counter()
    cpu_mark[0] = c0
    eq = equilibrate(sc, city=city, progress=show, threads=threads)
    wall = time.perf_counter() - t0
    cpu = time.process_time() - c0
    first_1pct = next((r["iteration"] for r in rows if r["relative_gap"] <= 0.01), None)
    return {
        "case": case.description,
        "links": int(net_c.n_links),
        "trips": int(n_trips),
        "hours": hours,
        "iterations": eq.iterations,
        "final_gap": eq.final_gap,
        "converged": bool(eq.converged),
        "first_day_gap_le_1pct": first_1pct,
        "total_s": wall,
        "cpu_s": cpu,
        "warmup_s": warm_s,
        "mean_day_s": wall / max(eq.iterations, 1),
        "threads": threads,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "days": rows,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.equilibrium", description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=20, help="days (default 20)")
    ap.add_argument(
        "--gap-target", type=float, default=0.0, help="stop at this relative gap (default 0: run every day)"
    )
    ap.add_argument("--trips", type=int, default=1_000_000, help="metro trips (default 1,000,000)")
    ap.add_argument("--hours", type=float, default=25.0, help="simulated hours a day (default 25, the case's)")
    ap.add_argument("--step", type=float, default=2.0, help="traffic time step, s")
    ap.add_argument("--reroute", type=float, default=600.0, help="re-routing interval, s (scenario default)")
    ap.add_argument("--interval", type=float, default=300.0, help="output interval = knowledge bin, s")
    ap.add_argument(
        "--threads",
        type=int,
        default=0,
        help="most numba threads during the days (default 0: numba's setting, equilibrate's default; "
        "small routing calls run on one thread anyway)",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-warm-up", action="store_true", help="skip the untimed warm-up run")
    ap.add_argument("--out", default="benchmarks/out/equilibrium")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    out = Path(args.out)
    res = run(
        n_trips=args.trips,
        hours=args.hours,
        iterations=args.iterations,
        gap_target=args.gap_target,
        step=args.step,
        reroute=args.reroute,
        interval=args.interval,
        out=out,
        threads=None if args.threads == 0 else args.threads,
        seed=args.seed,
        warm_up=not args.no_warm_up,
    )
    first = res["first_day_gap_le_1pct"]
    print(
        f"{res['iterations']} days of {res['trips']:,} trips on {res['links']:,} links in {res['total_s']:.1f} s "
        f"({res['mean_day_s']:.1f} s a day, CPU {res['cpu_s']:.1f} s); final relative gap "
        f"{100 * res['final_gap']:.2f} %; gap <= 1 % first on day {first if first else '-'}; "
        f"peak RSS {res['peak_rss_mb']:,.0f} MB"
    )
    payload = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "args": vars(args),
        "result": res,
    }
    with atomic_open(out / "results.json", "w") as fh:
        json.dump(payload, fh, indent=2, default=float)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
