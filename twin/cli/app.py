"""The ``twin`` command line.

::

    twin run [SCENARIO] [--out DIR] [--seed N]     run a scenario (default: the built-in 'default')
    twin city info SCENARIO|CITY                   network size and what validation changed
    twin scenarios                                 list the built-in scenarios

Bad input (scenario, city file, trips table, arguments) prints one clear
paragraph and exits with status 2; Ctrl-C exits with 130 and leaves no
half-written result file.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from basics.clock import format_clock
from basics.errors import TwinError
from twin.cli.common import folder_name, kpi_table, out_folder, run_root

__all__ = ["main"]


#: what the command line prints as one paragraph (exit 2): every project error the
#: user can fix derives from :class:`basics.errors.TwinError`; OSError covers files
USER_ERRORS: tuple[type[BaseException], ...] = (TwinError, OSError)


#: modules that add sub-commands: each has ``add_commands(sub)`` taking the sub-parsers
#: object and registering its commands (their ``func(args, console) -> int``)
COMMAND_MODULES: tuple[str, ...] = (
    "twin.cli.compare",
    "twin.cli.viz",
    "twin.cli.drill",
    "twin.cli.fork",
    "twin.cli.live",
    "twin.cli.equilibrate",
    "twin.cli.export",
    "twin.cli.serve",
    "twin.cli.experiment",
)


def _demand_text(twin) -> str:
    n = twin.trips.trip_id.shape[0]
    pop = twin.components.get("population")
    if pop is None:
        return f"{n:,} trips"
    persons = getattr(getattr(pop, "people", None), "n_persons", None)
    who = f"{persons:,} persons" if persons is not None else "a population"
    return f"{who} making their own trips" + (f" and {n:,} given trips" if n else "")


def _default_out(scenario, seed: int) -> Path:
    return run_root() / f"{folder_name(scenario.name)}-seed{seed}"


def _cmd_run(args, console: Console) -> int:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from scenarios import load_scenario
    from twin.model import Twin

    overrides = {"seed": args.seed}
    scenario = load_scenario(args.scenario or "default", overrides=overrides)
    seed = scenario.seed
    default = f"{{name}}-seed{seed}"
    if args.until:  # a partial run gets its own folder: it never replaces the full day's
        default += "-until" + "".join(ch for ch in args.until if ch.isalnum())[:16]
    out = out_folder(args.out, scenario, default, overwrite=args.overwrite)
    t0 = time.perf_counter()
    with console.status(f"building city and demand for [bold]{scenario.name}[/]…"):
        twin = Twin(scenario)
    net = twin.city.network
    console.print(
        f"[bold]{scenario.name}[/]: {twin.city.name}, {net.n_nodes:,} nodes, {net.n_links:,} links, "
        f"{_demand_text(twin)}, seed {seed} (set-up {time.perf_counter() - t0:.1f} s)"
    )
    t1 = time.perf_counter()
    progress = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[clock]}"),
        TextColumn("{task.fields[onnet]:>7} veh"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=args.quiet,
    )
    with progress:
        task = progress.add_task("simulating", total=twin.duration_s, clock="", onnet=0)

        def tick(now: float) -> None:
            on = twin.traffic.counts()["on_network"]
            progress.update(task, completed=now, clock=format_clock(twin.clock_s(now)), onnet=f"{on:,}")

        end = twin.duration_s
        if args.until:
            from scenarios import parse_time_point

            try:
                end = min(parse_time_point(args.until, start_s=twin.start_s), twin.duration_s)
            except ValueError as exc:
                from basics.errors import InputError

                raise InputError(f"--until: {exc}") from None
            progress.update(task, total=end)
        twin.run_until(end, progress=tick)
    wall = time.perf_counter() - t1
    if args.snapshot:
        path = twin.snapshot(args.snapshot)
        console.print(f"snapshot of the whole state at sim time {twin.now:.0f} s in [bold]{path}[/]")
    from twin.results import write_run

    with console.status("writing results…"):
        write_run(twin, out, overwrite=args.overwrite, what="--out" if args.out else "run folder")
    kpis = twin.kpis()
    console.print(kpi_table(kpis, title=f"{scenario.name} — KPIs"))
    stuck = kpis["trips_unfinished"]
    if kpis["trips_total"] and stuck > 0.05 * kpis["trips_total"]:
        console.print(
            f"[yellow]note:[/] {stuck:,} departed trips had not arrived when the run ended; if "
            "network_vehicles in results.nc keeps rising, the network is overloaded (gridlock): "
            "lower the demand or lengthen time.duration to let it clear"
        )
    console.print(
        f"simulated {twin.now / 3600:.1f} h in {wall:.1f} s; results in [bold]{out}[/] (results.nc, summary.json, scenario.yaml)"
    )
    return 0


def _cmd_city_info(args, console: Console) -> int:
    import numpy as np

    from scenarios import load_city as load_city_spec
    from twin.model import build_city

    src = Path(args.source)
    if src.suffix.lower() in (".graphml", ".osm", ".xml", ".pbf", ".yaml", ".yml") and not src.exists():
        raise FileNotFoundError(f"city file {args.source!r} not found")
    city = build_city(load_city_spec(args.source))
    net = city.network
    table = Table(title=f"city: {city.name}")
    table.add_column("item")
    table.add_column("value", justify="right")
    table.add_row("nodes", f"{net.n_nodes:,}")
    table.add_row("links", f"{net.n_links:,}")
    table.add_row("road length", f"{net.length_m.sum() / 1000:,.1f} km")
    table.add_row("lane length", f"{(net.length_m * net.lanes).sum() / 1000:,.1f} km")
    table.add_row("signalised nodes", f"{int(np.count_nonzero(net.signal_cycle_s > 0)):,}")
    table.add_row("source node ids remapped", f"{int(net.alias_osmid.size):,}")  # merged or dropped, still accepted
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components

    _, lab = connected_components(
        csr_matrix((np.ones(net.n_links), (net.src, net.dst)), shape=(net.n_nodes,) * 2),
        directed=True,
        connection="strong",
    )
    table.add_row(
        "nodes outside the largest strongly connected part",
        f"{int(net.n_nodes - np.bincount(lab).max()) if net.n_nodes else 0:,}",
    )
    table.add_row("zones", f"{city.zones.n_zones:,}")
    table.add_row("residents / jobs", f"{int(city.zones.residents.sum()):,} / {int(city.zones.jobs.sum()):,}")
    kinds: dict[str, int] = {}
    for f in city.facilities:
        kinds[f.kind] = kinds.get(f.kind, 0) + 1
    table.add_row("facilities", ", ".join(f"{v} {k}" for k, v in sorted(kinds.items())) or "none")
    table.add_row("named places", ", ".join(sorted(city.places)) or "none")
    console.print(table)
    from twin.cli.cityinfo import detail_tables  # zones, facilities and places listed (issue 13)

    for detail in detail_tables(city, limit=None if getattr(args, "all", False) else 20):
        console.print(detail)
    if city.notes:
        console.print("[bold]validation changed:[/]")
        for note in city.notes:
            console.print(f"  • {note}")
    else:
        console.print("validation changed nothing")
    return 0


def _cmd_scenarios(args, console: Console) -> int:
    from scenarios import builtin_scenarios, load_scenario

    table = Table(title="built-in scenarios")
    table.add_column("name")
    table.add_column("description")
    for name, path in sorted(builtin_scenarios().items()):
        table.add_row(name, load_scenario(path, check_files=False).description)
    console.print(table)
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="twin", description="City digital twin: run scenarios on a simulated city.")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run a scenario and write a run folder")
    r.add_argument("scenario", nargs="?", help="scenario YAML file or built-in name (default: 'default')")
    r.add_argument(
        "--out", help="run folder (default: runs/<name>-seed<seed>, with --until runs/<name>-seed<seed>-until<TIME>)"
    )
    r.add_argument("--seed", type=int, help="override the scenario's seed")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    r.add_argument("--until", help="stop early: a clock time HH:MM or a time after the start (e.g. 2h)")
    r.add_argument("--snapshot", help="also write the twin's whole state here at the end (for twin fork)")
    r.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a finished run in the run folder (without it, a finished run is never replaced)",
    )
    r.set_defaults(func=_cmd_run)
    c = sub.add_parser("city", help="inspect a city")
    csub = c.add_subparsers(dest="city_command", required=True)
    ci = csub.add_parser("info", help="network size and what validation changed")
    ci.add_argument("source", help="scenario file or name, 'synthetic', 'helsinki', or an OSM/GraphML file")
    ci.add_argument("--all", action="store_true", help="list every zone, facility and named place (default: 20 each)")
    ci.set_defaults(func=_cmd_city_info)
    s = sub.add_parser("scenarios", help="list the built-in scenarios")
    s.set_defaults(func=_cmd_scenarios)
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_commands(sub)
    for command in sub.choices.values():  # every command that may build a twin (issue 15: no code from data)
        command.add_argument(
            "--allow-plugins",
            action="append",
            metavar="MODULE:FUNCTION",
            help="trust this dispatch policy plug-in, which a scenario names in incidents.policy "
            "(repeat for more; registered entry points need no flag)",
        )
    return p


def _exit_if_hdf5_failed(code: int) -> None:
    """End the process now if an HDF5 write failed (see :data:`twin.results.HDF5_WRITE_FAILED`).

    After a failed write (a full disk) the HDF5 library can crash the interpreter's
    shutdown with a segfault; the message is out, so the process ends here instead,
    with ``code``.  Only the ``twin`` command does this (``main()`` without arguments).
    """
    results = sys.modules.get("twin.results")
    if results is not None and getattr(results, "HDF5_WRITE_FAILED", False):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def main(argv: list[str] | None = None) -> int:
    """Run the ``twin`` command with ``argv`` (default: the process's arguments); returns the exit status."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    console = Console(stderr=False)
    err = Console(stderr=True)
    try:
        from twin.emergency.dispatch import allow_plugins

        allow_plugins(getattr(args, "allow_plugins", None))
        return int(args.func(args, console) or 0)
    except USER_ERRORS as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False)
        if argv is None:  # the command itself (not a caller that goes on): end here
            _exit_if_hdf5_failed(2)
        return 2
    except KeyboardInterrupt:
        err.print("[yellow]interrupted[/]: no result files were written for this run")
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
