"""``twin live``: shadow mode, the twin in step with the city's feed.

::

    twin live SCENARIO.yaml [--feed replay:FILE|mqtt://HOST:PORT/TOPIC|http://127.0.0.1:PORT]
              [--members N] [--speed X] [--until HH:MM] [--out DIR] [--fork-dir DIR] [--open-loop]

The default scenario is the built-in sample day (``feeds/sample_day.yaml``: the
synthetic city with its recorded feed).  Drop a variant YAML into ``--fork-dir``
while it runs to fork what-ifs from "now" (results in ``NAME.result.json``).

Results go to ``--out`` (default ``runs/<name>-live-<UTC date-time>``, said at the
start), written whole at the end; rejected messages go to ``<out>.dead_letter.jsonl``
while it runs and into the run folder with the results. A feed that cannot connect
(no MQTT broker at the address) fails within seconds, naming the address and why.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.live import Live
from rich.table import Table

from basics.clock import format_clock

if TYPE_CHECKING:
    from experiments.executor import Executor

__all__ = ["add_commands", "status_line"]


def status_line(st: dict) -> str:
    """One line: sim clock, lag, messages, KPIs."""
    lag = "–" if not math.isfinite(st["lag_s"]) else f"{st['lag_s']:+.0f} s"
    return (
        f"sim {format_clock(st['clock_s'])}  lag {lag}  msgs ok {st['accepted']:,} "
        f"rejected {st['rejected']:,} late {st['late']:,}  speed {st['mean_speed_kmh']:.1f} km/h  "
        f"on road {st['vehicles']:,.0f}  demand x{st['demand_level']:.2f}  "
        f"corrected links {st['links_corrected']}  forks {st['forks_running']}"
    )


def _default_out(scenario) -> Path:
    """``runs/<name>-live-<UTC date and time>``: a new folder for every live run."""
    import datetime as _dt

    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{scenario.name}-live-{stamp}"


def _cmd_live(args, console: Console) -> int:
    from basics.errors import InputError
    from scenarios import parse_time_point
    from twin.live import Shadow

    scenario, settings = _live_scenario(args)
    out = Path(args.out) if args.out else _default_out(scenario)
    # dead letters go beside the run folder while it runs (the folder itself is written
    # whole at the end) and into it when the results are saved
    dead = None if scenario.feeds.dead_letter else out.parent / f"{out.name}.dead_letter.jsonl"
    console.print(
        f"results will be written to [bold]{out}[/] at the end"
        + ("" if args.out else " (--out DIR to choose)")
        + f"; rejected messages: {dead or scenario.feeds.dead_letter}"
    )
    from twin.model import build_city

    city = build_city(scenario.city)
    hub = _start_feed(scenario, city, dead=dead, console=console)
    fork_dir = Path(args.fork_dir) if args.fork_dir else None
    # forks run on the project's Dask executor, started when the first fork is asked for
    executor = _LazyExecutor(workers=2) if fork_dir is not None else None
    with console.status(f"building {args.members} twins of {scenario.name}…"):
        shadow = Shadow(scenario, hub, settings, speed=args.speed, city=city, executor=executor)
    until = None
    if args.until:
        try:
            until = parse_time_point(args.until, start_s=float(scenario.time.start))
        except ValueError as exc:
            shadow.close()
            raise InputError(f"--until: {exc}") from None
    if fork_dir is not None:
        fork_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    try:
        with Live(console=console, refresh_per_second=4, transient=False) as live:

            def show(sh):
                live.update(status_line(sh.status()))

            shadow.run(until=until, on_step=show, fork_folder=fork_dir)
            show(shadow)
        shadow.wait_for_forks()
    finally:
        wall = time.perf_counter() - t0
        shadow.close()
        if executor is not None:
            executor.close()
    console.print(_summary_table(scenario.name, shadow, wall=wall))
    for job in shadow.jobs:
        console.print(f"fork {job.name}: {job.state} {job.error}")
    keep = hub.cleanser.dead_letter.files() if dead is not None else []
    saved = shadow.save(out, files=keep)
    console.print(
        f"results in [bold]{saved}[/] (results.nc of the representative member, assimilation.nc"
        + (", dead_letter.jsonl)" if keep else ")")
    )
    return 0


def _live_scenario(args):
    """The scenario with ``--feed`` applied and the assimilation settings, both checked.

    Everything is checked here, before the city is built or the feed connected.
    """
    from basics.errors import InputError
    from scenarios import load_scenario
    from twin.feeds import parse_feed_url
    from twin.live import AssimilationSettings

    source = args.scenario or str(_sample_day())
    # --feed replaces the scenario's sources; the loader validates it (a relative path against the
    # working directory, as on a command line) and names the field of what is wrong
    overrides = {"feeds.sources": [parse_feed_url(args.feed)]} if args.feed else None
    scenario = load_scenario(source, overrides=overrides)
    if not scenario.feeds.sources:
        raise InputError(
            "no feed: give --feed replay:FILE | mqtt://HOST:PORT/TOPIC | http://127.0.0.1:PORT, "
            "or a scenario with feeds.sources"
        )
    settings = AssimilationSettings(members=args.members)
    if args.open_loop:
        settings = replace(settings, estimate_demand=False, correct_links=False)
    settings.check(scenario)  # before the city is built or the feed connected
    if scenario.feeds.dead_letter:
        # a scenario file is data: the file it names for rejected messages stays inside the run root
        from twin.cli.common import confined

        confined(scenario.feeds.dead_letter, "feeds.dead_letter", option="a scenario without feeds.dead_letter")
    return scenario, settings


def _start_feed(scenario, city, *, dead: Path | None, console: Console):
    """The scenario's feed hub, started and connected (stopped again if connecting fails)."""
    from twin.feeds import FeedHub

    hub = FeedHub.from_scenario(scenario, city.network, dead_letter=dead)
    try:
        for src in hub.sources:
            if getattr(src, "loopback", True) is False:
                console.print(
                    f"[yellow]warning:[/] the feed endpoint {src.host}:{src.port} accepts connections "
                    f"from other machines; requests must carry 'Authorization: Bearer <token>' "
                    f"(the token in ${getattr(src, 'token_env', 'TWIN_FEED_TOKEN')}), "
                    f"and nothing is encrypted: put TLS in front"
                )
        hub.start()
        with console.status("connecting to the feed…"):
            hub.wait_ready(timeout=10.0)
    except BaseException:
        hub.stop()
        raise
    return hub


def _summary_table(name: str, shadow, *, wall: float) -> Table:
    """The end-of-run table: simulated time and speed, members, messages, estimates."""
    st = shadow.status()
    table = Table(title=f"{name}: shadow run")
    table.add_column("", style="bold")
    table.add_column("value", justify="right")
    table.add_row(
        "simulated",
        f"{st['sim_time_s'] / 3600:.2f} h in {wall:.1f} s ({st['sim_time_s'] / max(wall, 1e-9):,.0f}x real time)",
    )
    table.add_row("members", str(len(shadow.ensemble.members)))
    for key in ("accepted", "rejected", "late", "duplicate"):
        table.add_row(f"messages {key}", f"{st[key]:,}")
    table.add_row("estimated demand level", f"x{st['demand_level']:.3f}")
    table.add_row("links with a capacity correction", str(st["links_corrected"]))
    kp = shadow.representative().kpis()  # the member whose results are written
    table.add_row("trips stranded (waiting for a route)", f"{kp['trips_stranded']:,} of {kp['trips_total']:,}")
    return table


class _LazyExecutor:
    """The project's executor (:class:`experiments.executor.Executor`), started on first use.

    A live twin may never be asked for a fork: Dask starts only when one is.
    """

    def __init__(self, *, workers: int) -> None:
        import threading

        self.workers = workers
        self._executor: Executor | None = None
        self._lock = threading.Lock()

    def as_completed(self, func, items, **kwargs):
        """Start the executor if needed and run the tasks on it (see ``Executor.as_completed``)."""
        from experiments.executor import Executor

        with self._lock:
            executor = self._executor
            if executor is None:
                executor = self._executor = Executor(workers=self.workers)
        return executor.as_completed(func, items, **kwargs)

    def close(self) -> None:
        """Close the executor if it was started."""
        with self._lock:
            if self._executor is not None:
                self._executor.close()
                self._executor = None


def _sample_day() -> Path:
    from scenarios import LIBRARY_DIR

    return Path(LIBRARY_DIR) / "feeds" / "sample_day.yaml"


def add_commands(sub) -> None:
    """Register this module's sub-commands on the ``twin`` parser's sub-parsers ``sub``."""
    p = sub.add_parser("live", help="shadow mode: run in step with a live feed, assimilating it")
    p.add_argument("scenario", nargs="?", help="scenario with a feeds section (default: the recorded sample day)")
    p.add_argument(
        "--feed", help="replay:FILE | mqtt://HOST:PORT/TOPIC | http://127.0.0.1:PORT (replaces feeds.sources)"
    )
    p.add_argument("--members", type=int, default=12, help="ensemble size (default 12)")
    p.add_argument(
        "--speed", type=float, help="for a file replay: sim seconds per wall second (default: as fast as possible)"
    )
    p.add_argument("--until", help="stop at a clock time HH:MM or a time after the start")
    p.add_argument("--out", help="run folder for the results (default: runs/<name>-live-<UTC date-time>)")
    p.add_argument("--fork-dir", help="folder watched for what-if requests (*.yaml) while running")
    p.add_argument("--open-loop", action="store_true", help="read the feed but do not assimilate (for comparison)")
    p.set_defaults(func=_cmd_live)
