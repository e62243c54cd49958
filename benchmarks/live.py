"""Benchmarks of the live twin: shadow-mode speed, forks from "now", twin versus truth.

::

    python -m benchmarks.live                      # all three parts
    python -m benchmarks.live --parts shadow fork  # some of them
    python -m benchmarks.live --members 12 --variants 4 --horizon 2h

- **shadow**: the recorded sample day (24 h, the synthetic city) replayed through
  cleansing into an ensemble of twins with assimilation on, as fast as it goes:
  simulated time per wall time (target: at least 60x real time); the open loop
  (feed read, nothing assimilated) in the same run for comparison.
- **fork**: a snapshot of the light day (light_day) at 17:00, then 4 what-if variants plus
  "no action", 2 h each, on a fresh local Dask cluster (cold: workers start and
  load the numba cache) and again on the warm cluster (target: under 30 s).
- **truth**: the twin-versus-truth experiment on the full sample day
  (:mod:`experiments.twin_vs_truth`): held-out RMSE open loop vs assimilated vs
  the oracle (the open loop given the truth's own demand factors), coverage of
  the 90 % band.

Results go to ``OUT/live.json`` (default ``benchmarks/out``), written atomically.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

__all__ = ["main"]


def shadow(members: int) -> dict:
    from scenarios import LIBRARY_DIR, load_scenario
    from twin.feeds import FeedHub
    from twin.live import AssimilationSettings, Shadow
    from twin.model import build_city

    sc = load_scenario(Path(LIBRARY_DIR) / "feeds" / "sample_day.yaml")
    city = build_city(sc.city)
    out = {}
    for label, st in (
        ("assimilated", AssimilationSettings(members=members)),
        ("open_loop", replace(AssimilationSettings(members=members), estimate_demand=False, correct_links=False)),
    ):
        hub = FeedHub.from_scenario(sc, city.network)
        t0 = time.perf_counter()
        sh = Shadow(sc, hub, st, city=city)
        t1 = time.perf_counter()
        sh.run()
        wall = time.perf_counter() - t1
        stat = sh.status()
        sh.close()
        out[label] = {
            "members": members,
            "setup_s": t1 - t0,
            "wall_s": wall,
            "sim_h": sh.now / 3600,
            "x_real_time": sh.now / wall,
            "accepted": stat["accepted"],
            "rejected": stat["rejected"],
            "late": stat["late"],
            "demand_level": stat["demand_level"],
        }
    return out


def fork_bench(variants: int, horizon_s: float) -> dict:
    from experiments.executor import Executor
    from scenarios import load_scenario
    from twin.live.fork import Variant, fork
    from twin.model import Twin

    tw = Twin(load_scenario("light_day"))
    tw.run_until("17:00")
    tmp = Path(tempfile.mkdtemp(prefix="fork-bench-"))
    snap = tw.snapshot(tmp / "now.snap")
    roads = ["Old Bridge", "North Bridge", "Ring Bridge"]
    vs = [Variant(name=f"close {r}", interventions=[{"kind": "close", "place": r, "until": "2h"}]) for r in roads]
    vs.append(
        Variant(
            name="8 Avenue at half capacity",
            interventions=[{"kind": "capacity", "road": "8 Avenue", "factor": 0.5, "until": "2h"}],
        )
    )
    vs = (vs * (variants // len(vs) + 1))[:variants]
    for i, v in enumerate(vs):
        v.name = f"{i + 1}: {v.name}"
    out = {"variants": variants, "horizon_s": horizon_s, "snapshot_mb": snap.stat().st_size / 1e6}
    t0 = time.perf_counter()
    with Executor() as ex:
        t1 = time.perf_counter()
        res = fork(snap, vs, horizon_s=horizon_s, executor=ex)
        t2 = time.perf_counter()
        res2 = fork(snap, vs, horizon_s=horizon_s, executor=ex)
        t3 = time.perf_counter()
        out["workers"] = ex.n_workers
    t0s = time.perf_counter()
    with Executor(serial=True) as ex:
        fork(snap, vs, horizon_s=horizon_s, executor=ex)
    serial = time.perf_counter() - t0s
    out.update(
        {
            "cluster_start_s": t1 - t0,
            "cold_s": t2 - t0,
            "cold_runs_s": t2 - t1,
            "warm_s": t3 - t2,
            "serial_in_process_s": serial,
            "slowest_run_s": max(r.wall_s for r in res2),
            "kpis": {r.name: {k: r.kpis[k] for k in ("h_mean_travel_time_s", "h_vehicle_hours")} for r in res},
        }
    )
    snap.unlink()
    return out


def truth(members: int) -> dict:
    from experiments.twin_vs_truth import run_experiment

    return run_experiment(members=members, oracle=True)


def _write(path: Path, data: dict) -> None:
    from basics.atomic import write_text

    write_text(path, json.dumps(data, indent=2, default=float))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.live", description=__doc__.split("\n\n")[0])
    p.add_argument("--parts", nargs="+", default=["shadow", "fork", "truth"], choices=["shadow", "fork", "truth"])
    p.add_argument("--members", type=int, default=12)
    p.add_argument("--variants", type=int, default=4)
    p.add_argument("--horizon", default="2h")
    p.add_argument("--out", default=str(Path(__file__).parent / "out"))
    args = p.parse_args(argv)
    from scenarios import parse_duration

    res: dict = {}
    if "shadow" in args.parts:
        res["shadow"] = shadow(args.members)
        for k, v in res["shadow"].items():
            print(
                f"shadow {k:12s}: {v['sim_h']:.0f} h in {v['wall_s']:.1f} s = {v['x_real_time']:,.0f}x real time "  # noqa: T201
                f"({v['members']} members, set-up {v['setup_s']:.1f} s; msgs ok {v['accepted']:,}, "
                f"rejected {v['rejected']:,}, late {v['late']:,})"
            )
    if "fork" in args.parts:
        f = res["fork"] = fork_bench(args.variants, parse_duration(args.horizon))
        print(
            f"fork {f['variants']} variants + no action x {f['horizon_s'] / 3600:.0f} h on {f['workers']} workers: "  # noqa: T201
            f"cold {f['cold_s']:.1f} s (cluster start {f['cluster_start_s']:.1f} s), warm {f['warm_s']:.1f} s, "
            f"serial in-process {f['serial_in_process_s']:.1f} s; snapshot {f['snapshot_mb']:.1f} MB"
        )
    if "truth" in args.parts:
        t = res["truth"] = truth(args.members)
        for k in ("open_loop", "assimilated", "oracle"):
            v = t[k]
            print(
                f"truth {k:12s}: flow RMSE 5-min {v['flow_rmse_5min']:.1f} (floor {v['floor_5min']:.1f}), "  # noqa: T201
                f"hourly {v['flow_rmse_hourly']:.1f} (floor {v['floor_hourly']:.1f}) veh/h; speed RMSE "
                f"{v['speed_rmse']:.2f} m/s; 90% band coverage flow {v['flow_coverage']:.2f} "
                f"(busy intervals {v['flow_coverage_busy']:.2f}) speed {v['speed_coverage']:.2f}"
            )
        print(
            "reduction:",
            {k: f"{100 * v:.0f}%" for k, v in t["reduction"].items()},  # noqa: T201
            "of the oracle's:",
            {k: f"{100 * v:.0f}%" for k, v in t["achieved"].items()},
        )
    _write(Path(args.out) / "live.json", res)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
