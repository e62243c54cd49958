"""``twin equilibrate``: the day after travellers have adapted (a day-to-day equilibrium).

::

    twin equilibrate [SCENARIO] [--iterations N] [--out DIR] [--seed N]
                     [--method msa|constant] [--switch-share S] [--gap-target G] [--snapshot FILE]
                     [--routes-only]

Simulates the scenario's day again and again; between days travellers learn the
link travel times by time of day, and population agents also move their
departure times (:mod:`twin.equilibrium`; ``--routes-only``: they keep them).
Prints a row per day (relative gap, mean travel time, vehicle-hours; with
agents, how many moved their departure and the mean shift) and writes the final day's
run folder with ``equilibrium.nc`` (the per-iteration series) beside
``results.nc``; ``twin report`` draws the convergence from it.
"""

from __future__ import annotations

import time

from rich.console import Console
from rich.table import Table

__all__ = ["add_commands", "iteration_table"]


def iteration_table(history: list[dict], *, title: str) -> Table:
    """One row per day: relative gap, mean travel time, vehicle-hours, trips, share, seconds; with
    population agents learning departures, also how many moved theirs and the mean shift.
    """
    from rich import box

    from viz.data import fmt_value

    agents = any(h.get("departures_shifted", float("nan")) == h.get("departures_shifted") for h in history)
    # compact and never wrapping a number: readable at 80 columns (pipes, CI logs)
    table = Table(
        title=title,
        box=box.SIMPLE_HEAD,
        padding=(0, 1),
        pad_edge=False,
        collapse_padding=True,
        show_edge=False,
        caption="gap: relative gap; s_k: share that switches; moved: departures moved"
        if agents
        else "gap: relative gap; s_k: share that switches",
    )
    names = ["day", "gap", "mean\ntravel\ntime (s)", "veh·h", "completed", "s_k"]
    if agents:
        names += ["moved", "mean\nshift\n(min)"]
    for name in names + ["wall\ns"]:
        table.add_column(name, justify="right", no_wrap=True)
    for h in history:
        gap = h["relative_gap"]
        cells = [
            str(h["iteration"]),
            "–" if gap != gap else f"{100 * gap:.2f} %",
            fmt_value(h["mean_travel_time_s"]),
            "–" if h["vehicle_hours"] != h["vehicle_hours"] else f"{h['vehicle_hours']:,.0f}",
            f"{int(h['trips_completed']):,}",
            f"{h['switch_share']:.3g}",
        ]
        if agents:
            moved, mean = h.get("departures_shifted", float("nan")), h.get("mean_departure_shift_s", float("nan"))
            cells += ["–" if moved != moved else f"{int(moved):,}", "–" if mean != mean else f"{mean / 60:+.1f}"]
        table.add_row(*cells, f"{h['wall_s']:.1f}")
    return table


def _cmd_equilibrate(args, console: Console) -> int:
    from basics.errors import InputError
    from scenarios import load_scenario
    from twin.cli.common import kpi_table
    from twin.equilibrium import equilibrate, write_equilibrium

    if args.iterations is not None and not 1 <= args.iterations <= 1000:
        raise InputError(f"--iterations must be from 1 to 1000, got {args.iterations}")
    if args.switch_share is not None and not 0.0 < args.switch_share <= 1.0:
        raise InputError(f"--switch-share must lie in (0, 1], got {args.switch_share:g}")
    if args.gap_target is not None and not 0.0 <= args.gap_target < 1.0:
        raise InputError(f"--gap-target must lie in [0, 1) (a share: 0.01 is 1 %), got {args.gap_target:g}")
    scenario = load_scenario(args.scenario or "default", overrides={"seed": args.seed})
    spec = scenario.traffic.equilibrium
    from twin.cli.common import out_folder

    out = out_folder(args.out, scenario, f"{{name}}-seed{scenario.seed}-equilibrium", overwrite=args.overwrite)
    n = args.iterations or spec.iterations
    method = args.method or spec.method
    share = args.switch_share if args.switch_share is not None else spec.switch_share
    target = args.gap_target if args.gap_target is not None else spec.gap_target
    how = "msa (s_k = 1/k)" if method == "msa" else f"constant share {share:g}"
    dep = spec.departure_shift
    agents = scenario.population.enabled and dep.enabled and dep.max > 0 and not args.routes_only
    also = f"; agents move departures by up to ±{dep.max / 60:g} min in {dep.step / 60:g} min steps" if agents else ""
    console.print(
        f"equilibrating [bold]{scenario.name}[/] (seed {scenario.seed}): up to {n} days, learning by {how}, "
        f"stopping at a relative gap of {100 * target:g} %{also}"
    )

    def show(row: dict) -> None:
        if not args.quiet:
            gap = row["relative_gap"]
            moved = row.get("departures_shifted", float("nan"))
            extra = (
                f", {int(moved):,} departures moved (mean shift {row['mean_departure_shift_s'] / 60:+.1f} min)"
                if moved == moved and agents
                else ""
            )
            console.print(
                f"  day {row['iteration']:>3}: relative gap {100 * gap:6.2f} %, mean travel time "
                f"{row['mean_travel_time_s']:7.1f} s, {row['vehicle_hours']:,.0f} veh·h{extra} "
                f"({row['wall_s']:.1f} s)"
            )

    t0 = time.perf_counter()
    eq = equilibrate(
        scenario,
        iterations=args.iterations,
        method=args.method,
        switch_share=args.switch_share,
        gap_target=args.gap_target,
        departure_shift=False if args.routes_only else None,
        progress=show,
    )
    wall = time.perf_counter() - t0
    if args.snapshot:
        path = eq.twin.snapshot(args.snapshot)
        console.print(f"snapshot of the final day (with what travellers remember) in [bold]{path}[/]")
    with console.status("writing results…"):
        write_equilibrium(eq, out)
    console.print(iteration_table(eq.history, title=f"{scenario.name} — day-to-day iterations"))
    console.print(kpi_table(eq.twin.kpis(), title=f"{scenario.name} — KPIs of the final day (day {eq.iterations})"))
    verdict = (
        f"[green]converged[/]: relative gap {100 * eq.final_gap:.2f} % ≤ {100 * target:g} % on day {eq.iterations}"
        if eq.converged
        else f"[yellow]not converged[/]: relative gap {100 * eq.final_gap:.2f} % after {eq.iterations} days "
        f"(target {100 * target:g} %); more --iterations, or note that route_dispersion and "
        "route_tolerance keep a floor under the gap"
    )
    console.print(verdict)
    console.print(
        f"{eq.iterations} days in {wall:.1f} s; results of the final day in [bold]{out}[/] "
        "(results.nc, equilibrium.nc, summary.json, scenario.yaml)"
    )
    return 0


def add_commands(sub) -> None:
    """Register ``twin equilibrate``."""
    e = sub.add_parser(
        "equilibrate",
        help="simulate the day repeatedly while travellers learn (day-to-day equilibrium)",
        description="Simulate the scenario's day again and again; between days travellers learn "
        "the link travel times by time of day, until the relative gap reaches its target. "
        "Writes the final day's run folder plus equilibrium.nc.",
    )
    e.add_argument("scenario", nargs="?", help="scenario YAML file or built-in name (default: 'default')")
    e.add_argument("--iterations", "-n", type=int, help="most days (default: traffic.equilibrium.iterations, 20)")
    e.add_argument("--out", help="run folder (default: runs/<name>-seed<seed>-equilibrium)")
    e.add_argument("--seed", type=int, help="override the scenario's seed (every day uses it)")
    e.add_argument("--method", choices=("msa", "constant"), help="learning: msa (s_k = 1/k) or constant --switch-share")
    e.add_argument("--switch-share", type=float, help="share that switches each day with --method constant (0-1]")
    e.add_argument(
        "--gap-target", type=float, help="stop at this relative gap (a share: 0.01 = 1 %%; 0: run every day)"
    )
    e.add_argument(
        "--snapshot",
        help="also write the final day's whole state here (with the knowledge and the "
        "agents' departure shifts; for twin fork)",
    )
    e.add_argument(
        "--routes-only",
        action="store_true",
        help="population agents keep their planned departure times; only routes adapt",
    )
    e.add_argument("--overwrite", action="store_true", help="replace a finished equilibrium in the run folder")
    e.add_argument("-q", "--quiet", action="store_true", help="no line per day")
    e.set_defaults(func=_cmd_equilibrate)
