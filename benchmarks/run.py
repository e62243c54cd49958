"""Benchmark CLI: run cases through our engine and the peers, print tables, write JSON.

Examples::

    python -m benchmarks.run --quick                       # small case, all peers (~1.5 min)
    python -m benchmarks.run --cases small,grid21 --peers uxsim-cpp,sumo
    python -m benchmarks.run --cases grid21 --skip-slow-peers
    python -m benchmarks.run --cases metro                  # ours only

Every engine stops once every trip has arrived (UXsim and ours check every
300 s of simulated time; SUMO by itself) and is run three times in its process,
the fastest run reported (``--full-horizon``, ``--check``, ``--repeat``).
See ``benchmarks/README.md`` for the columns.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from basics.atomic import atomic_open
from benchmarks.cases import CASES, Case, CaseSkipped, build_case
from benchmarks.peers import PEERS, EngineResult, run_engine

log = logging.getLogger("benchmarks")

#: peers that take many minutes on the larger cases; --skip-slow-peers drops them there
SLOW_PEERS = {"uxsim-py", "sumo"}
DEFAULT_PEERS = ("uxsim-cpp", "uxsim-py", "sumo")


def free_flow_mean_tt(case: Case) -> float:
    """Mean shortest free-flow travel time of the case's trips, seconds."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import dijkstra

    net = case.network
    g = csr_matrix((net.length_m / net.free_speed_mps, (net.src, net.dst)), shape=(net.n_nodes, net.n_nodes))
    origins, inv = np.unique(case.trips.origin, return_inverse=True)
    total = 0.0
    for start in range(0, origins.shape[0], 512):  # bound memory on big networks
        block = origins[start : start + 512]
        dist = dijkstra(g, indices=block)
        sel = (inv >= start) & (inv < start + block.shape[0])
        total += float(dist[inv[sel] - start, case.trips.destination[sel]].sum())
    return total / case.n_trips


def _fmt(v: Any, spec: str = ".2f") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return format(v, spec)


def _reference(results: list[EngineResult]) -> EngineResult | None:
    """UXsim deltan=1 (C++ preferred): the fidelity reference."""
    for eng in ("uxsim-cpp", "uxsim-py"):
        for r in results:
            if r.engine == eng and r.deltan == 1 and r.status == "ok":
                return r
    return None


def table_rows(results: list[EngineResult]) -> list[dict[str, str]]:
    """Rows of the printed table: one per engine run, with speed-up and TT difference."""
    ours = next((r for r in results if r.engine == "ours" and r.status == "ok"), None)
    ref = _reference(results)
    rows = []
    for r in results:
        speedup = "-"
        if ours is not None and r is not ours and r.wall_s and ours.wall_s:
            speedup = f"{r.wall_s / ours.wall_s:.1f}x" + (" (>)" if r.status == "timeout" else "")
        dtt = "-"
        if ref is not None and r.mean_tt_s is not None and math.isfinite(r.mean_tt_s) and r is not ref:
            dtt = f"{100.0 * (r.mean_tt_s / ref.mean_tt_s - 1.0):+.1f}%"
        rows.append(
            {
                "engine": r.engine,
                "deltan": str(r.deltan) if r.deltan is not None else "-",
                "status": r.status,
                "wall s": _fmt(r.wall_s, ".3f" if r.wall_s is not None and r.wall_s < 1 else ".2f")
                + (f" (cold {r.cold_wall_s:.1f})" if r.cold_wall_s else ""),
                "end s": _fmt(r.sim_end_s, ",.0f"),
                "vehicles": _fmt(r.vehicles, ","),
                "completed": _fmt(r.completed, ","),
                "mean TT s": _fmt(r.mean_tt_s, ".1f"),
                "veh-h": _fmt(r.vehicle_hours, ",.1f"),
                "peak MB": _fmt(r.peak_rss_mb, ",.0f"),
                "peer/ours": speedup,
                "TT vs UXsim d=1": dtt,
                "note": r.note,
            }
        )
    return rows


def print_table(title: str, rows: list[dict[str, str]]) -> None:
    """Print with rich when available, else as aligned plain text."""
    if not rows:
        return
    try:
        from rich.console import Console
        from rich.table import Table

        t = Table(title=title)
        for col in rows[0]:
            t.add_column(col, justify="left" if col in ("engine", "status", "note") else "right")
        for row in rows:
            t.add_row(*row.values())
        Console(width=200).print(t)
    except ImportError:  # pragma: no cover
        cols = list(rows[0])
        width = {c: max(len(c), *(len(r[c]) for r in rows)) for c in cols}
        print(title)
        print("  ".join(c.ljust(width[c]) for c in cols))
        for row in rows:
            print("  ".join(row[c].ljust(width[c]) for c in cols))
    print()


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to ``path`` atomically (:func:`basics.atomic.atomic_open`)."""
    with atomic_open(path, "w") as f:
        json.dump(data, f, indent=2, default=float)


def _machine() -> dict[str, Any]:
    info: dict[str, Any] = {"python": sys.version.split()[0], "platform": platform.platform(), "cpus": os.cpu_count()}
    try:
        import uxsim

        info["uxsim"] = getattr(uxsim, "__version__", "?")
    except ImportError:
        pass
    try:
        import subprocess

        out = subprocess.run(["sumo", "--version"], capture_output=True, text=True).stdout
        info["sumo"] = out.splitlines()[0] if out else "?"
    except OSError:
        pass
    return info


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--cases", default="small", help=f"comma-separated cases from {','.join(CASES)} (default: small)")
    p.add_argument(
        "--peers",
        default=",".join(DEFAULT_PEERS),
        help=f"comma-separated peers from {','.join(PEERS)} or 'none' (default: {','.join(DEFAULT_PEERS)})",
    )
    p.add_argument(
        "--skip-slow-peers", action="store_true", help="skip UXsim's Python engine and SUMO on every case but 'small'"
    )
    p.add_argument("--quick", action="store_true", help="the small case with all peers (overrides --cases/--peers)")
    p.add_argument("--no-ours", action="store_true", help="do not run our engine")
    p.add_argument(
        "--no-isolate",
        action="store_true",
        help="run every engine in this process (default: one forked child per engine run)",
    )
    p.add_argument("--deltan", default="1,5", help="UXsim deltan values (default 1,5)")
    p.add_argument(
        "--platoon",
        choices=("consecutive", "od"),
        default="consecutive",
        help="how trips are grouped into UXsim platoons (default: consecutive)",
    )
    p.add_argument("--sumo-timeout", type=float, default=900.0, help="seconds before SUMO is stopped")
    p.add_argument("--step", type=float, default=2.0, help="our engine's time step, s")
    p.add_argument(
        "--reroute",
        type=float,
        default=300.0,
        help="re-routing period, s (ours; also UXsim's duo_update_time and SUMO's rerouting period)",
    )
    p.add_argument(
        "--repeat", type=int, default=3, help="runs per engine in its process; the fastest is reported (default 3)"
    )
    p.add_argument(
        "--check",
        type=float,
        default=300.0,
        help="UXsim and ours: simulated seconds between checks that every trip has arrived",
    )
    p.add_argument(
        "--full-horizon",
        action="store_true",
        help="run every engine to the case's full duration instead of stopping once every trip "
        "has arrived (SUMO then gets --end)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="benchmarks/out", help="folder for results.json")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    args.case_list = [c.strip() for c in args.cases.split(",") if c.strip()]
    args.peer_list = [] if args.peers.strip() == "none" else [c.strip() for c in args.peers.split(",") if c.strip()]
    if args.repeat < 1:
        p.error("--repeat must be at least 1")
    if not args.check > 0:
        p.error("--check must be positive")
    if args.quick:
        args.case_list = ["small"]
        args.peer_list = list(DEFAULT_PEERS) + ["sumo-meso"]
    for c in args.case_list:
        if c not in CASES:
            p.error(f"--cases: unknown case {c!r}; known: {', '.join(CASES)}")
    for c in args.peer_list:
        if c not in PEERS:
            p.error(f"--peers: unknown peer {c!r}; known: {', '.join(PEERS)}")
    try:
        args.deltan_list = [int(d) for d in args.deltan.split(",")]
    except ValueError:
        p.error(f"--deltan: expected comma-separated integers, got {args.deltan!r}")
    return args


def run_case(case: Case, args: argparse.Namespace) -> list[EngineResult]:
    """Run ours and the selected peers on one case."""
    results: list[EngineResult] = []
    stop = {"early_stop": not args.full_horizon, "repeat": args.repeat}
    if not args.no_ours:
        results.append(
            run_engine(
                "ours",
                "run_ours",
                case,
                isolate=not args.no_isolate,
                step_s=args.step,
                reroute_s=args.reroute,
                check_s=args.check,
                **stop,
            )
        )
    for peer in args.peer_list:
        if case.peers_allowed is not None and peer not in case.peers_allowed:
            results.append(
                EngineResult(
                    engine=peer,
                    case=case.name,
                    trips=case.n_trips,
                    status="skipped",
                    note="peer would take hours on this case",
                )
            )
            continue
        if args.skip_slow_peers and peer in SLOW_PEERS and case.name != "small":
            results.append(
                EngineResult(
                    engine=peer, case=case.name, trips=case.n_trips, status="skipped", note="--skip-slow-peers"
                )
            )
            continue
        for label, runner, fixed in PEERS[peer]:
            kw: dict[str, Any] = {"seed": args.seed, **stop, **fixed}
            if peer.startswith("uxsim"):
                if fixed["deltan"] not in args.deltan_list:
                    continue
                kw.update(platoon=args.platoon, duo_update_time=args.reroute, check_s=args.check)
            else:
                kw.update(timeout_s=args.sumo_timeout, reroute_s=args.reroute)
            results.append(run_engine(label, runner, case, isolate=not args.no_isolate, **kw))
    return results


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    out = Path(args.out)
    path = out / "results.json"
    doc: dict[str, Any] = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "machine": _machine(),
        "args": {k: v for k, v in vars(args).items()},
        "cases": {},
    }
    for name in args.case_list:
        t0 = time.perf_counter()
        try:
            case = build_case(name, seed=args.seed)
        except CaseSkipped as exc:
            print(f"[{name}] skipped: {exc}\n")
            doc["cases"][name] = {"skipped": str(exc)}
            write_json_atomic(path, doc)
            continue
        build = time.perf_counter() - t0
        ff = free_flow_mean_tt(case)
        print(
            f"[{name}] {case.description}; simulated {case.duration_s:g} s; "
            f"free-flow mean TT {ff:.1f} s (built in {build:.1f} s)",
            flush=True,
        )
        results = run_case(case, args)
        doc["cases"][name] = {
            "description": case.description,
            "n_nodes": case.network.n_nodes,
            "n_links": case.network.n_links,
            "n_trips": case.n_trips,
            "horizon_s": case.horizon_s,
            "duration_s": case.duration_s,
            "free_flow_mean_tt_s": ff,
            "results": [r.to_dict() for r in results],
        }
        write_json_atomic(path, doc)  # after every case: nothing computed is lost
        print_table(f"{name}: {case.description}", table_rows(results))
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
