"""Benchmark of the emergency services on the traffic: a day of 10,000 incidents on grid21.

::

    python -m benchmarks.emergency                  # traffic only, then with incidents (both lane modes)
    python -m benchmarks.emergency --per-day 5000

The 21x21 benchmark grid (500 m blocks, 2 lanes, 60,000 trips) runs a 24 h day
three times in one process, warm: traffic only; with ~10,000 incidents (60 %
medical, 25 % crashes, 15 % fires, Poisson over the day, 25 stations with 800
units, 4 hospitals); and the same with crashes that do not narrow their link
(the dispatch and unit cost alone). The issue's target: incidents add no more
than 10 s to the traffic-only run. Results go to ``OUT/emergency.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

__all__ = ["main"]


def _city_and_trips(folder: Path):
    from benchmarks.cases import grid21_case
    from city_models import City, Zones

    case = grid21_case()
    net = case.network
    tr = case.trips
    csv = folder / "grid21_trips.csv"
    lines = ["trip_id,origin,destination,depart_s"] + [
        f"{k},{int(net.node_osmid[o])},{int(net.node_osmid[d])},{t:.3f}"
        for k, (o, d, t) in enumerate(zip(tr.origin, tr.destination, tr.depart_s, strict=False))
    ]
    csv.write_text("\n".join(lines) + "\n")
    zones = Zones(
        name=("Z0",),
        residents=np.array([100000]),
        jobs=np.array([100000]),
        x=np.array([net.x.mean()]),
        y=np.array([net.y.mean()]),
        node_zone=np.zeros(net.n_nodes, np.int32),
    )
    return City(name="grid21", network=net, zones=zones), csv


def _resources(net, side: int = 21) -> dict:
    stations = [
        {
            "name": f"S{a}-{b}",
            "kind": "fire",
            "node": int(net.node_osmid[a * side + b]),
            "units": {"ambulance": 12, "engine": 6, "ladder": 2, "police": 8, "tow": 4},
        }
        for a in (2, 6, 10, 14, 18)
        for b in (2, 6, 10, 14, 18)
    ]
    hospitals = [
        {"name": f"H{a}-{b}", "node": int(net.node_osmid[a * side + b]), "beds": 2000}
        for a, b in ((5, 5), (5, 15), (15, 5), (15, 15))
    ]
    return {"stations": stations, "hospitals": hospitals}


def run_case(city, csv: Path, *, per_day: float | None, narrow_lanes: bool = True) -> dict:
    from scenarios import load_scenario
    from twin.model import Twin

    spec = {
        "name": "grid21-day",
        "seed": 0,
        "time": {"start": "00:00", "duration": "24h", "step": "2s"},
        "city": {"synthetic": {"blocks_x": 2, "blocks_y": 2, "zone_blocks": 1, "river": False, "ring_road": False}},
        "demand": {"trips": str(csv)},
        "traffic": {"reroute_interval": "5min"},
        "outputs": {"interval": "5min"},
    }
    if per_day:
        spec["incidents"] = {
            **({} if narrow_lanes else {"types": {"traffic_crash": {"capacity_factor": 1.0}}}),
            "rates": {
                "medical": {"per_hour": 0.60 * per_day / 24, "zones": "uniform"},
                "traffic_crash": {"per_hour": 0.25 * per_day / 24, "zones": "uniform"},
                "fire": {"per_hour": 0.15 * per_day / 24, "zones": "uniform"},
            },
        }
        spec["resources"] = _resources(city.network)
    tw = Twin(load_scenario(spec), city=city)
    t0, c0 = time.perf_counter(), time.process_time()
    tw.run()
    out = {
        "run_s": time.perf_counter() - t0,
        "cpu_s": time.process_time() - c0,
        "trips_completed": int(np.isfinite(tw.traffic.veh.arrive).sum()),
    }
    if per_day:
        em, k = tw.components["emergency"], tw.kpis()
        out.update(
            incidents=len(em.incidents),
            units=len(em.units),
            open=k["incidents_open"],
            waited=k["incidents_waited"],
            utilization_pct=k["unit_utilization_pct"],
            p50_medical_s=k["response_p50_s_medical"],
            p90_medical_s=k["response_p90_s_medical"],
        )
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.emergency", description=__doc__.split("\n\n")[0])
    p.add_argument("--per-day", type=float, default=10000.0)
    p.add_argument("--out", default=str(Path(__file__).parent / "out"))
    args = p.parse_args(argv)
    from basics.atomic import write_text

    with tempfile.TemporaryDirectory(prefix="em-bench-") as tmp:
        city, csv = _city_and_trips(Path(tmp))
        run_case(city, csv, per_day=None)  # warm the numba cache and the city
        res = {
            "traffic_only": run_case(city, csv, per_day=None),
            "incidents": run_case(city, csv, per_day=args.per_day),
            "incidents_no_lane_loss": run_case(city, csv, per_day=args.per_day, narrow_lanes=False),
        }
    base, base_cpu = res["traffic_only"]["run_s"], res["traffic_only"]["cpu_s"]
    res["load_average_1min"] = os.getloadavg()[0]  # the machine is shared: say how busy it was
    for k, v in res.items():
        if not isinstance(v, dict):
            continue
        extra = (
            ""
            if k == "traffic_only"
            else f"  (+{v['run_s'] - base:.1f} s wall, +{v['cpu_s'] - base_cpu:.1f} s CPU; "
            f"{v['incidents']:,} incidents, {v['units']} units, medical p50/p90 "
            f"{v['p50_medical_s']:.0f}/{v['p90_medical_s']:.0f} s)"
        )
        print(f"{k:24s} {v['run_s']:6.1f} s wall, {v['cpu_s']:6.1f} s CPU{extra}")  # noqa: T201
    print(f"load average (1 min) at the end: {res['load_average_1min']:.2f}")  # noqa: T201
    write_text(Path(args.out) / "emergency.json", json.dumps(res, indent=2, default=float))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
