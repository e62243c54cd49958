"""``twin fork``: what-ifs from a snapshot of "now", side by side with doing nothing.

::

    twin run default --until 17:00 --snapshot now.snap      # make a snapshot
    twin fork now.snap --scenario close_bridge.yaml --horizon 2h [--variants a.yaml b.yaml]
              [--workers N] [--scheduler ADDRESS] [--out forks.json]

With ``--out``, each finished run is kept as it lands in ``.<name>.forks/`` beside the
file, and the same command again (same snapshot, what-ifs and horizon) takes those and
runs only the rest; the folder goes once the results file is written.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from basics.clock import format_clock

__all__ = ["add_commands", "fork_table"]


def _fmt(value) -> str:
    """A value as every table and report shows it (one rule: :func:`viz.data.fmt_value`)."""
    from viz.data import fmt_value

    return fmt_value(value)


def fork_table(results, *, title: str) -> Table:
    """KPIs of each fork side by side; differences against the first column ("no action")."""
    from twin.live.fork import kpi_rows

    table = Table(title=title)
    table.add_column("KPI", min_width=22, ratio=1, overflow="fold")
    for r in results:
        table.add_column(r.name, justify="right", no_wrap=True)
    for label, unit, values in kpi_rows(results):
        base = values[0]
        cells = [_fmt(values[0])]
        for v in values[1:]:
            diff = v - base if isinstance(v, (int, float)) and isinstance(base, (int, float)) else math.nan
            cells.append(f"{_fmt(v)} ({'+' if diff >= 0 else ''}{_fmt(diff)})" if math.isfinite(diff) else _fmt(v))
        table.add_row(f"{label} ({unit})" if unit else label, *cells)
    return table


def _cmd_fork(args, console: Console) -> int:
    from basics.errors import InputError
    from scenarios import parse_duration
    from twin.live.fork import fork, load_variant
    from twin.snapshot import snapshot_header

    header = snapshot_header(args.snapshot)
    try:
        horizon = parse_duration(args.horizon)
    except ValueError as exc:
        raise InputError(f"--horizon: {exc}") from None
    paths = ([args.scenario] if args.scenario else []) + list(args.variants or [])
    if not paths:
        raise InputError("give at least one what-if: --scenario FILE (and/or --variants FILE ...)")
    variants = [load_variant(p) for p in paths]
    from experiments.executor import Executor

    t0 = time.perf_counter()
    workers = args.workers if args.workers is not None else min(len(variants) + 1, 4)
    with console.status(
        f"forking {len(variants)} what-if(s) and 'no action' from {header['scenario']} "
        f"at sim time {header['sim_time_s']:.0f} s…"
    ):
        ckpt = None
        if args.out:
            out = Path(args.out)
            ckpt = out.parent / f".{out.name}.forks"
        with Executor(scheduler=args.scheduler, workers=workers) as ex:
            results = fork(args.snapshot, variants, horizon_s=horizon, executor=ex, checkpoint=ckpt)
    wall = time.perf_counter() - t0
    clock = header["clock_s"] % 86400
    console.print(
        fork_table(
            results,
            title=(
                f"{header['scenario']} from {format_clock(clock)}, "
                f"next {args.horizon}: KPIs (difference from 'no action')"
            ),
        )
    )
    console.print(f"{len(results)} runs in {wall:.1f} s (slowest run {max(r.wall_s for r in results):.1f} s)")
    if args.out:
        import shutil

        from basics.atomic import json_safe, write_json

        write_json(
            args.out,
            json_safe(
                {
                    "kind": "fork",
                    "snapshot": str(args.snapshot),
                    "scenario": header["scenario"],
                    "sim_time_s": header["sim_time_s"],
                    "horizon_s": horizon,
                    "runs": [
                        {
                            "name": r.name,
                            "kpis": r.kpis,
                            "wall_s": r.wall_s,
                            "sim_from_s": r.sim_from_s,
                            "sim_to_s": r.sim_to_s,
                        }
                        for r in results
                    ],
                }
            ),
        )
        if ckpt is not None and (ckpt / "key.json").exists():
            shutil.rmtree(ckpt, ignore_errors=True)
        console.print(f"results in [bold]{args.out}[/]")
    return 0


def add_commands(sub) -> None:
    """Register this module's sub-commands on the ``twin`` parser's sub-parsers ``sub``."""
    f = sub.add_parser("fork", help="run what-ifs from a snapshot, side by side with 'no action'")
    f.add_argument("snapshot", help="snapshot file (twin run ... --snapshot FILE, or a live twin's)")
    f.add_argument("--scenario", help="what-if file: interventions: [...], times counted from the snapshot")
    f.add_argument("--variants", nargs="+", help="more what-if files")
    f.add_argument("--horizon", default="2h", help="how far to run each (default 2h)")
    f.add_argument("--workers", type=int, help="local Dask worker processes (0: run here, one after the other)")
    f.add_argument("--scheduler", help="address of a running Dask scheduler")
    f.add_argument(
        "--out",
        help="also write the results here (JSON); each run is kept as it lands, so the "
        "same command again resumes an interrupted fork",
    )
    f.set_defaults(func=_cmd_fork)
