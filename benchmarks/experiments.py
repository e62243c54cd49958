"""Benchmark of batch experiments (issue 17): parallel efficiency, overhead per run, 1,000 short runs.

::

    python -m benchmarks.experiments                  # the issue's figures (several minutes)
    python -m benchmarks.experiments --small          # a quick check that it works

Three measurements, each a real :func:`experiments.runner.run_experiment` into a Zarr store:

1. **Parallel efficiency**: ``--long`` runs of ``--seconds`` s of CPU work each (a busy loop
   in a test function, so the figure is the machinery's, not the twin's memory traffic),
   in this process one after another (``--workers 0``) and on a local cluster of 2
   workers; ``efficiency = serial time / (2 x parallel time)``, the cluster's start-up
   left out (it is reported separately).  Target: >= 90 % for runs of 5 s or more.
2. **Overhead per run**: ``--short`` runs that do nothing, on 2 workers; ``overhead =
   (2 x wall time) / runs`` -- what each run costs in submission, transfer, store writes
   and progress.  Target: < 0.5 s.
3. **1,000 short runs** complete with the progress bar live and the store intact (every
   status "done", every value the function's).

Results go to ``OUT/results.json`` (default ``benchmarks/out/experiments``).
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from basics.atomic import write_json
from experiments.executor import Executor
from experiments.runner import run_experiment
from experiments.store import DONE, open_results

__all__ = ["busy", "main", "noop"]


def busy(values: dict[str, Any], seed: int) -> dict[str, float]:
    """Burn ``values["seconds"]`` of CPU time (numpy-free arithmetic), return a checksum."""
    end = time.process_time() + float(values["seconds"])
    acc, i = 0.0, 0
    while time.process_time() < end:
        for _ in range(10_000):
            i += 1
            acc += (i * seed % 7) * 1e-9
    return {"work": float(i), "checksum": acc}


def noop(values: dict[str, Any], seed: int) -> dict[str, float]:
    """Return the point's value and a value from the seed: no work at all."""
    return {"y": float(values["i"]), "z": float(np.random.default_rng(seed).random())}


def _spec(function: str, factors: list[dict[str, Any]], replications: int) -> dict[str, Any]:
    return {
        "name": function.split(":")[1],
        "function": function,
        "factors": factors,
        "replications": replications,
        "seed": 1,
    }


def _warm(ex: Executor, tmp: Path) -> None:
    """Let every worker import what a run needs (a one-time cost, not the per-run overhead)."""
    spec = _spec("benchmarks.experiments:noop", [{"name": "i", "levels": list(range(4 * ex.n_workers))}], 1)
    run_experiment(spec, tmp / "warm.zarr", executor=ex, overwrite=True)


def efficiency(n_runs: int, seconds: float, tmp: Path) -> dict[str, Any]:
    """Serial versus 2 local workers on ``n_runs`` runs of ``seconds`` CPU seconds each."""
    spec = _spec("benchmarks.experiments:busy", [{"name": "seconds", "levels": [seconds]}], n_runs)
    t0 = time.perf_counter()
    run_experiment(spec, tmp / "serial.zarr", workers=0)
    serial = time.perf_counter() - t0
    t0 = time.perf_counter()
    with Executor(workers=2) as ex:
        start = time.perf_counter() - t0
        _warm(ex, tmp)
        t1 = time.perf_counter()
        run_experiment(spec, tmp / "parallel.zarr", executor=ex)
        parallel = time.perf_counter() - t1
    return {
        "runs": n_runs,
        "seconds_per_run": seconds,
        "serial_s": serial,
        "parallel_s": parallel,
        "cluster_start_s": start,
        "efficiency": serial / (2 * parallel),
    }


def short_runs(n_runs: int, tmp: Path, *, progress: bool) -> dict[str, Any]:
    """``n_runs`` runs that do nothing on 2 workers: overhead per run, store intact."""
    spec = _spec("benchmarks.experiments:noop", [{"name": "i", "levels": list(range(n_runs))}], 1)
    with Executor(workers=2) as ex:
        _warm(ex, tmp)
        t0 = time.perf_counter()
        res = run_experiment(spec, tmp / "short.zarr", executor=ex, progress=progress)
        wall = time.perf_counter() - t0
    ds = open_results(tmp / "short.zarr")
    intact = bool((ds["status"].values == DONE).all()) and bool(
        np.array_equal(ds["y"].values[:, 0], np.arange(n_runs, dtype=float))
    )
    return {
        "runs": n_runs,
        "wall_s": wall,
        "overhead_per_run_s": 2 * wall / n_runs,
        "done": res.done,
        "failed": res.failed,
        "store_intact": intact,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--long", type=int, default=8, help="runs for the efficiency figure (default 8)")
    p.add_argument("--seconds", type=float, default=5.0, help="CPU seconds per long run (default 5)")
    p.add_argument("--short", type=int, default=1000, help="short runs (default 1000)")
    p.add_argument("--small", action="store_true", help="a quick check: 4 runs of 0.5 s, 100 short runs")
    p.add_argument("--out", default="benchmarks/out/experiments", help="folder for results.json")
    args = p.parse_args(argv)
    if args.small:
        args.long, args.seconds, args.short = 4, 0.5, 100
    from twin.emergency.dispatch import allow_plugins

    allow_plugins(["benchmarks.experiments:busy", "benchmarks.experiments:noop"])
    with tempfile.TemporaryDirectory(prefix="bench-exp-") as tmp:
        eff = efficiency(args.long, args.seconds, Path(tmp))
        short = short_runs(args.short, Path(tmp), progress=True)
    results = {"machine": platform.node(), "small": args.small, "efficiency": eff, "short": short}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "results.json", results)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
