"""``twin compare``: a scenario against its baseline, over replications, with 95 % intervals.

::

    twin compare BASELINE.yaml SCENARIO.yaml [--replications N] [--out DIR]
                 [--scheduler ADDRESS] [--workers N] [--seed S]
    twin compare SCENARIO.yaml ...        # the scenario names its baseline (baseline: FILE)

Runs go to a local Dask cluster of worker processes (one per core) unless
``--scheduler`` names a running one; ``--workers 0`` runs them one after the other
in this process.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

from rich.console import Console
from rich.table import Table

__all__ = ["add_commands", "comparison_table", "verdict"]


def _fmt(value) -> str:
    """A value as every table and report shows it (one rule: :func:`viz.data.fmt_value`)."""
    from viz.data import fmt_value

    return fmt_value(value)


def _signed(value, count: bool = False) -> str:
    text = _fmt_kpi(value, count)
    return text if text == "–" or text.startswith("-") else f"+{text}"


def _fmt_kpi(value, count: bool) -> str:
    """A KPI value; a count (a KPI without a unit) that is a whole number prints as one (``0``, not ``0.00``)."""
    if count and isinstance(value, (int, float)) and math.isfinite(value) and float(value).is_integer():
        return f"{int(value):,}"
    return _fmt(value)


def verdict(row: dict) -> str:
    """``yes``/``no``/``no spread``: significant only when the interval excludes zero *and* has width.

    A zero-width interval means every replication gave the same difference (e.g. a
    deterministic scenario, or replications that do not differ): the t-interval says
    nothing about chance then, so it is shown as ``no spread``, never as significant.
    """
    lo, hi = row.get("ci_low"), row.get("ci_high")
    if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
        return "no"
    if hi - lo <= 1e-12 * max(1.0, abs(lo), abs(hi)):
        return "no spread"
    return "yes" if row.get("significant") else "no"


def comparison_table(summary: dict, *, rows: list | None = None, when: str | None = None) -> Table:
    """The KPI table of a comparison: baseline, scenario, difference and its interval.

    ``rows`` (default: the summary's ``kpis``) and ``when`` (default: from the summary's
    ``response``: "day 1" or "at equilibrium") label which day the table is about.
    """
    n = summary["replications"]
    conf = round(100 * summary.get("confidence", 0.95))
    if when is None:
        when = {"equilibrium": "at equilibrium", "day1": "day 1"}.get(summary.get("response", "day1"), "day 1")
    from rich import box
    from rich.text import Text

    table = Table(
        title=Text(
            f"{summary['scenario']} vs {summary['baseline']} — {when} — {n} replications, same seeds",
            overflow="fold",
            style="table.title",
        ),
        caption=Text(
            f"significant: the {conf} % interval of the difference excludes zero and has "
            "width (no spread: every replication gave the same difference)",
            overflow="fold",
            style="table.caption",
        ),
        box=box.SIMPLE_HEAD,
        padding=(0, 1),
        pad_edge=False,
        collapse_padding=True,
        show_edge=False,
    )
    table.add_column("KPI", min_width=14, ratio=1, overflow="fold")
    for name in ("baseline", "scenario", "difference", f"{conf} % interval"):
        table.add_column(name, justify="right", no_wrap=True)  # numbers are never wrapped or cut
    table.add_column("signif.", no_wrap=True, min_width=9)
    for row in summary["kpis"] if rows is None else rows:
        lo, hi = row["ci_low"], row["ci_high"]
        count = not row["unit"]
        finite = lo is not None and hi is not None and math.isfinite(lo) and math.isfinite(hi)
        ci = f"{_signed(lo, count)} … {_signed(hi, count)}" if finite else "–"
        if len(ci) > 19:  # two lines rather than a cut or wrapped number
            ci = f"{_signed(lo, count)} …\n{_signed(hi, count)}"
        label = f"{row['label']} ({row['unit']})" if row["unit"] else row["label"]
        sig = verdict(row)
        table.add_row(
            label,
            _fmt_kpi(row["baseline"], count),
            _fmt_kpi(row["scenario"], count),
            _signed(row["difference"], count),
            ci,
            "[bold]yes[/]" if sig == "yes" else f"[dim]{sig}[/]",
            style=None if sig == "yes" else "dim",
        )
    return table


def _scenarios(paths: list[str]):
    """The baseline and scenario the positional arguments name."""
    from basics.errors import InputError
    from scenarios import load_scenario

    if len(paths) == 2:
        return load_scenario(paths[0]), load_scenario(paths[1])
    if len(paths) != 1:
        raise InputError(
            f"twin compare takes BASELINE SCENARIO, or one SCENARIO that names its baseline; got {len(paths)} files"
        )
    scenario = load_scenario(paths[0])
    if scenario.baseline is None:
        raise InputError(
            f"scenario {paths[0]!r} names no baseline: give two files (twin compare BASELINE SCENARIO) "
            "or add a top-level line 'baseline: FILE.yaml' to it"
        )
    return load_scenario(scenario.baseline), scenario


def _cmd_compare(args, console: Console) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from experiments.compare import Checkpoint, checkpoint_for, compare
    from experiments.executor import Executor, default_workers

    _check_args(args)
    baseline, scenario = _scenarios(args.scenarios)
    from twin.cli.common import folder_name, run_root

    out = (
        Path(args.out)
        if args.out
        else run_root() / f"compare-{folder_name(baseline.name)}-vs-{folder_name(scenario.name)}"
    )
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {str(out)!r} is a file, not a comparison folder; choose another path")
    from basics.atomic import check_replaceable

    # before any run: a folder the twin did not write is never replaced (issue 15)
    check_replaceable(out, overwrite=True, what="--out" if args.out else "comparison folder")
    n_runs = 2 * args.replications
    if not args.verbose and args.workers != 0:
        import distributed  # noqa: F401  (importing it sets its loggers to INFO: quieten them after)

        # the cluster's own chatter (workers starting and stopping) is not for this screen
        logging.getLogger("distributed").setLevel(logging.ERROR)
    with console.status("starting workers…"):
        workers = args.workers
        if workers is None and args.scheduler is None:
            workers = min(default_workers(), n_runs)
        executor = Executor(scheduler=args.scheduler, workers=workers)
    where = {"serial": "in this process", "local": "local Dask cluster", "remote": f"Dask scheduler {args.scheduler}"}[
        executor.kind
    ]
    console.print(
        f"comparing [bold]{scenario.name}[/] with baseline [bold]{baseline.name}[/]: "
        f"{args.replications} replications each, {where} ({executor.n_workers} at a time)"
    )
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=args.quiet,
    )
    kept = [] if args.restart else sorted(checkpoint_for(out).glob("*.rep"))
    if kept:
        console.print(
            f"resuming: {len(kept)} finished run(s) of an earlier try kept in {checkpoint_for(out)} "
            "(used if they are this comparison's; --restart runs everything again)"
        )
    try:
        with progress:
            task = progress.add_task("runs", total=n_runs)
            # each finished run is kept beside --out as it lands; the same command again resumes
            result = compare(
                baseline,
                scenario,
                replications=args.replications,
                seed=args.seed,
                executor=executor,
                progress=lambda done, total: progress.update(task, completed=done),
                response="equilibrium" if args.equilibrium else "day1",
                iterations=args.iterations,
                checkpoint=checkpoint_for(out),
                resume=not args.restart,
            )
    finally:
        executor.close()
    with console.status("writing the comparison…"):
        result.write(out)
        Checkpoint(checkpoint_for(out), {}).discard()
    _print_result(result.summary, out=out, n_runs=n_runs, serial=executor.kind == "serial", console=console)
    return 0


def _check_args(args) -> None:
    """Refuse option values out of range, before anything runs."""
    from experiments.compare import ComparisonError

    if args.replications < 2:
        raise ComparisonError(
            f"--replications must be at least 2 (a confidence interval needs the spread of two or "
            f"more paired runs), got {args.replications}"
        )
    if args.workers is not None and args.workers < 0:
        raise ComparisonError(f"--workers must be 0 (serial) or more, got {args.workers}")
    if args.iterations is not None and not args.equilibrium:
        raise ComparisonError("--iterations applies to --equilibrium comparisons only")
    if args.iterations is not None and not 1 <= args.iterations <= 1000:
        raise ComparisonError(f"--iterations must be from 1 to 1000, got {args.iterations}")
    if args.seed is not None and args.seed < 0:
        raise ComparisonError(f"--seed must be 0 or more, got {args.seed}")


def _print_result(s: dict, *, out: Path, n_runs: int, serial: bool, console: Console) -> None:
    """The KPI tables, what was compared, and how long the runs took."""
    if s.get("day1_kpis"):
        console.print(comparison_table(s, rows=s["day1_kpis"], when="day 1 (the immediate response)"))
    console.print(comparison_table(s))
    console.print(f"compared {s['response_label']}")
    timing = f"{n_runs} runs in {s['runs_wall_s']:.1f} s"
    if not serial:
        eff = s["run_s"] / (s["workers"] * s["runs_wall_s"]) if s["runs_wall_s"] > 0 else float("nan")
        timing += (
            f" on {s['workers']} workers (start-up {s['startup_s']:.1f} s; the runs' own times add "
            f"up to {s['run_s']:.1f} s: {eff:.0%} of the workers' time was spent running)"
        )
    console.print(f"{timing}; results in [bold]{out}[/] (summary.json, comparison.nc, baseline/, scenario/)")


def add_commands(sub) -> None:
    """Register ``twin compare``."""
    c = sub.add_parser(
        "compare",
        help="compare a scenario with its baseline over replications (95 %% intervals)",
        description="Run BASELINE and SCENARIO with the same seeds per replication and report "
        "each KPI's difference with a 95 % confidence interval.",
    )
    c.add_argument(
        "scenarios",
        nargs="+",
        metavar="SCENARIO",
        help="BASELINE.yaml SCENARIO.yaml, or one SCENARIO.yaml with a 'baseline: FILE' line (files or built-in names)",
    )
    c.add_argument("--replications", "-n", type=int, default=10, help="runs of each scenario (default 10, at least 2)")
    c.add_argument("--out", help="comparison folder (default: runs/compare-<baseline>-vs-<scenario>)")
    c.add_argument("--scheduler", help="address of a running Dask scheduler (default: a local cluster)")
    c.add_argument(
        "--workers",
        type=int,
        help="local worker processes (default: the cores); 0 runs in this process, one after another",
    )
    c.add_argument(
        "--seed", type=int, help="seed of replication 0; replication i uses seed+i (default: the baseline's)"
    )
    c.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    c.add_argument(
        "--equilibrium",
        action="store_true",
        help="compare each variant after travellers adapted (day-to-day equilibrium, as twin equilibrate); "
        "the day-1 table of the same runs is shown too",
    )
    c.add_argument(
        "--restart",
        action="store_true",
        help="run every replication again (by default the runs an interrupted try of the same "
        "comparison kept beside --out are taken, and only the rest run)",
    )
    c.add_argument(
        "--iterations",
        type=int,
        help="most days per equilibrium (default: each scenario's traffic.equilibrium.iterations)",
    )
    c.set_defaults(func=_cmd_compare)
