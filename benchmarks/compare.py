"""Benchmark of ``twin compare``: a 10-replication comparison of the default synthetic day.

::

    python -m benchmarks.compare                      # warm numba cache: Dask, then serial
    python -m benchmarks.compare --cold               # also a first run with an empty numba cache
    python -m benchmarks.compare --workers 2 --replications 10 --no-serial
    python -m benchmarks.compare --scenario bridge_closure    # another scenario against default

Reports, for the parallel run on a fresh local cluster: the wall time of the whole
comparison (cluster start-up included), of the runs alone, and the parallel efficiency

    efficiency = serial time of the runs / (workers x parallel wall time of the runs)

where the serial time is measured by running the same comparison again in this process
one run after another (``--no-serial`` falls back to the sum of the runs' own times in
the workers, which contention on a shared machine inflates). ``--cold`` first runs the
comparison on workers whose numba cache is an empty folder, so each worker compiles the
kernels itself, as on a fresh checkout. Results go to ``OUT/results.json`` (atomic).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from basics.atomic import atomic_open

__all__ = ["main"]


def _parallel(
    baseline: str, scenario: str, *, replications: int, workers: int | None, scheduler: str | None, out: Path
) -> dict[str, Any]:
    from experiments.compare import compare
    from experiments.executor import Executor, default_workers

    t0 = time.perf_counter()
    n = min(default_workers(), 2 * replications) if workers is None else workers
    with Executor(workers=n, scheduler=scheduler) as ex:
        c = compare(baseline, scenario, replications=replications, executor=ex, out=out)
    total = time.perf_counter() - t0
    s = c.summary
    return {
        "total_s": total,
        "startup_s": s["startup_s"],
        "runs_wall_s": s["runs_wall_s"],
        "run_s": s["run_s"],
        "workers": s["workers"],
        "kpis": {row["key"]: row["baseline"] for row in s["kpis"]},
    }


def _serial(baseline: str, scenario: str, *, replications: int, out: Path) -> dict[str, Any]:
    from experiments.compare import compare

    t0 = time.perf_counter()
    c = compare(baseline, scenario, replications=replications, workers=0, out=out)
    s = c.summary
    return {
        "total_s": time.perf_counter() - t0,
        "runs_wall_s": s["runs_wall_s"],
        "run_s": s["run_s"],
        "kpis": {row["key"]: row["baseline"] for row in s["kpis"]},
    }


def _write_json(path: Path, data: dict) -> None:
    with atomic_open(path, "w") as handle:
        json.dump(data, handle, indent=2)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.compare", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--baseline", default="default", help="baseline scenario (default: the built-in 'default')")
    p.add_argument("--scenario", default="default", help="scenario compared with it (default: 'default' again)")
    p.add_argument("--replications", type=int, default=10)
    p.add_argument("--workers", type=int, help="local worker processes (default: the cores)")
    p.add_argument("--scheduler", help="a running Dask scheduler instead of a local cluster")
    p.add_argument("--cold", action="store_true", help="first a run whose workers start with an empty numba cache")
    p.add_argument(
        "--no-serial", action="store_true", help="skip the serial run (efficiency from the workers' own times)"
    )
    p.add_argument("--out", default="benchmarks/out/compare", help="folder for results.json and the comparisons")
    args = p.parse_args(argv)
    out = Path(args.out)
    kw = dict(replications=args.replications, workers=args.workers, scheduler=args.scheduler)
    record: dict[str, Any] = {
        "machine": {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "cores": os.cpu_count(),
            "load_avg_at_start": list(os.getloadavg()),
        },
        "args": vars(args),
    }
    if args.cold:
        saved = os.environ.get("NUMBA_CACHE_DIR")
        with tempfile.TemporaryDirectory(prefix="numba-cold-") as cache:
            os.environ["NUMBA_CACHE_DIR"] = cache  # the workers start with it (spawned processes inherit it)
            try:
                record["cold"] = _parallel(args.baseline, args.scenario, out=out / "cold", **kw)
            finally:
                if saved is None:
                    os.environ.pop("NUMBA_CACHE_DIR", None)
                else:
                    os.environ["NUMBA_CACHE_DIR"] = saved
        _report("parallel, empty numba cache (cold)", record["cold"])
    record["warm"] = _parallel(args.baseline, args.scenario, out=out / "warm", **kw)
    _report("parallel, warm numba cache", record["warm"])
    warm = record["warm"]
    if not args.no_serial:
        record["serial"] = _serial(args.baseline, args.scenario, replications=args.replications, out=out / "serial")
        ser = record["serial"]
        print(f"serial, in this process: {ser['runs_wall_s']:.1f} s for {2 * args.replications} runs")
        serial_s = ser["runs_wall_s"]
        same = ser["kpis"] == warm["kpis"]
        record["serial_equals_parallel"] = same
        print(f"serial and parallel KPIs identical: {same}")
    else:
        serial_s = warm["run_s"]
    eff = serial_s / (warm["workers"] * warm["runs_wall_s"])
    record["efficiency"] = eff
    record["efficiency_from_worker_times"] = warm["run_s"] / (warm["workers"] * warm["runs_wall_s"])
    record["machine"]["load_avg_at_end"] = list(os.getloadavg())
    print(
        f"parallel efficiency = serial {serial_s:.1f} s / ({warm['workers']} workers x {warm['runs_wall_s']:.1f} s)"
        f" = {eff:.0%}; whole comparison {warm['total_s']:.1f} s (target < 120 s)"
    )
    _write_json(out / "results.json", record)
    print(f"written {out / 'results.json'}")
    return 0


def _report(title: str, r: dict[str, Any]) -> None:
    print(
        f"{title}: whole comparison {r['total_s']:.1f} s (cluster start {r['startup_s']:.1f} s, "
        f"runs {r['runs_wall_s']:.1f} s on {r['workers']} workers; the runs' own times add up to {r['run_s']:.1f} s)"
    )


if __name__ == "__main__":
    sys.exit(main())
