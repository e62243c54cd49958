"""``twin drill``: run an emergency drill and write its after-action log.

::

    twin drill SCENARIO.yaml [--out DIR] [--seed N] [--speed X] [--inject FILE|-] [--log-format csv|jsonl]

Without ``--speed`` the drill runs as fast as it can.  With ``--speed 60`` it is paced
against the wall clock (one real second = 60 simulated seconds) with a live view of
incidents and units.  Injects come one per line, JSON or a YAML flow mapping::

    {type: fire, location: "Old Bridge", severity: 2, notes: "tanker on fire"}
    {type: medical, location: 57, at: "17:40"}
    {station: "Fire Station 2", in_service: false}

from ``--inject FILE`` (watched while a paced drill runs: append lines to it) or from
standard input (``--inject -``); each is picked up at the next event.  Without
``--speed`` the inject file is read once, before the start (give ``at`` for each).
A rejected inject is reported and logged; the drill goes on.

The run folder gets ``after_action.csv`` (or ``.jsonl``) beside ``results.nc``,
``summary.json`` and ``scenario.yaml``, all written to a temporary folder and renamed
into place in one step.  Ctrl-C during a paced drill stops it and still writes the
results so far.
"""

from __future__ import annotations

import json
import math
import queue
import sys
import threading
import time
from pathlib import Path

import yaml
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from basics.clock import format_clock

__all__ = ["add_commands", "parse_inject", "apply_inject", "InjectSource", "save_drill"]


# ------------------------------------------------------------------------------- injects

_INCIDENT_KEYS = {"type", "location", "severity", "notes", "at"}
_STATION_KEYS = {"station", "in_service"}

#: Longest inject line read (longer lines are rejected unread).
MAX_INJECT_CHARS = 4096
#: Longest ``notes`` of an inject.
MAX_NOTES_CHARS = 1000


def _quote(text: str, limit: int = 120) -> str:
    """A line quoted for a message, cut to ``limit`` characters."""
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


def _read_mapping(text: str) -> object:
    """Parse one inject line: JSON, or YAML with the scenario loader's bounds."""
    if text.startswith('{"'):
        return json.loads(text)
    from scenarios.loader import parse_yaml_text

    return parse_yaml_text(text)


def parse_inject(line: str) -> dict | None:
    """One inject line as a checked mapping (``None`` for a blank line or a ``#`` comment).

    Every field is checked here, before anything reaches the twin: ``type`` a name,
    ``location`` a node id, ``[lon, lat]`` or a place name, ``severity`` a whole number
    1-5, ``notes`` text, ``at`` a clock time or a time after the start; a station inject
    has a ``station`` name and ``in_service: true|false``. Lines longer than
    :data:`MAX_INJECT_CHARS` are not read.

    Raises
    ------
    InputError
        For any problem, quoting the line and naming the key; never another exception.
    """
    from basics.errors import InputError

    if not isinstance(line, str):
        raise InputError(f"inject: expected a line of text, got {type(line).__name__}")
    text = line.strip()
    if not text or text.startswith("#"):
        return None
    if len(text) > MAX_INJECT_CHARS:
        raise InputError(
            f"inject {_quote(text)}: the line is {len(text):,} characters long; "
            f"an inject line may have at most {MAX_INJECT_CHARS:,}"
        )
    try:
        obj = _read_mapping(text)
    except (ValueError, RecursionError, yaml.YAMLError) as exc:
        why = " ".join(str(exc).split())
        raise InputError(f"inject {_quote(text)}: not JSON or a YAML mapping ({why[:300]})") from None
    if not isinstance(obj, dict):
        raise InputError(f"inject {_quote(text)}: expected a mapping such as {{type: fire, location: 12}}")
    keys = set(obj)
    if "station" in keys:
        if keys - _STATION_KEYS or "in_service" not in keys:
            raise InputError(f"inject {_quote(text)}: a station inject has exactly the keys station, in_service")
        if not isinstance(obj["station"], str) or not obj["station"].strip():
            raise InputError(f"inject {_quote(text)}: station must be a station's name")
        if not isinstance(obj["in_service"], bool):
            raise InputError(f"inject {_quote(text)}: in_service must be true or false")
        return {"station": obj["station"].strip(), "in_service": obj["in_service"]}
    if keys - _INCIDENT_KEYS or not {"type", "location"} <= keys:
        bad = sorted(str(k)[:40] for k in keys - _INCIDENT_KEYS)
        raise InputError(
            f"inject {_quote(text)}: "
            + (f"unknown key(s) {', '.join(bad)}; " if bad else "")
            + "an incident inject has type and location, and may have severity, notes, at"
        )
    try:
        return _checked_incident(obj)
    except ValueError as exc:
        raise InputError(f"inject {_quote(text)}: {exc}") from None


def _checked_incident(obj: dict) -> dict:
    """The fields of an incident inject, checked; ``ValueError`` names the key."""
    from scenarios import parse_time_point
    from scenarios.emergency import _location

    kind = obj["type"]
    if not isinstance(kind, str) or not kind.strip():
        raise ValueError("type must be the name of an incident type, such as fire")
    try:
        location = _location(obj["location"])
    except ValueError as exc:
        raise ValueError(f"location: {exc}") from None
    severity = obj.get("severity")
    if severity is not None and (isinstance(severity, bool) or not isinstance(severity, int) or not 1 <= severity <= 5):
        raise ValueError("severity must be a whole number 1-5")
    notes = obj.get("notes", "")
    if notes is None:
        notes = ""
    if isinstance(notes, (int, float)) and not isinstance(notes, bool):
        notes = str(notes)
    if not isinstance(notes, str):
        raise ValueError("notes must be text")
    if len(notes) > MAX_NOTES_CHARS:
        raise ValueError(f"notes may have at most {MAX_NOTES_CHARS:,} characters")
    at = obj.get("at")
    if at is not None:
        if isinstance(at, bool) or not isinstance(at, (int, float, str)):
            raise ValueError('at must be a clock time "HH:MM[:SS]" or a time after the start')
        parse_time_point(at)  # ValueError naming the forms it takes
    out = {"type": kind.strip(), "location": location}
    if "notes" in obj:
        out["notes"] = notes
    if severity is not None:
        out["severity"] = int(severity)
    if at is not None:
        out["at"] = at
    return out


def apply_inject(comp, obj: dict) -> str:
    """Apply a parsed inject to the emergency component; returns a one-line description.

    Raises
    ------
    InputError
        The inject cannot be applied (unknown type, station or place, a time in the past
        or after the end); the twin is unchanged.
    """
    from basics.errors import InputError

    if not isinstance(obj, dict):
        raise InputError(f"inject: expected a mapping, got {type(obj).__name__}")
    if "station" in obj:
        if not isinstance(obj.get("in_service"), bool) or not isinstance(obj["station"], str):
            raise InputError(f"inject station {str(obj['station'])[:80]!r}: in_service must be true or false")
        comp.set_station_in_service(obj["station"], obj["in_service"])
        return f"{obj['station']} {'back in' if obj['in_service'] else 'out of'} service"
    if "type" not in obj or "location" not in obj:
        raise InputError("inject: an incident inject has type and location")
    notes = obj.get("notes", "")
    notes = notes[:MAX_NOTES_CHARS] if isinstance(notes, str) else ""
    i = comp.inject(obj["type"], obj["location"], severity=obj.get("severity"), notes=notes, at=obj.get("at"))
    return f"{obj['type']} at {obj['location']}" + (f" (incident {i})" if i is not None else f" at {obj.get('at')}")


class InjectSource:
    """New inject lines from a watched file (read from where it was left) or from stdin."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.offset = 0
        self._buf = ""
        self._q: queue.Queue[str] | None = None
        if path == "-":
            self._q = queue.Queue()
            threading.Thread(target=self._read_stdin, args=(self._q,), daemon=True).start()
        elif not Path(path).is_file():
            from basics.errors import InputError

            raise InputError(f"--inject {path!r}: no such file (create it, even empty, then append lines)")

    def _read_stdin(self, q: queue.Queue[str]) -> None:
        for line in sys.stdin:
            q.put(line)

    def poll(self) -> list[str]:
        """Complete lines that arrived since the last call."""
        if self._q is not None:
            out = []
            while True:
                try:
                    out.append(self._q.get_nowait())
                except queue.Empty:
                    return out
        with open(self.path, encoding="utf-8") as fh:
            fh.seek(self.offset)
            chunk = fh.read()
            self.offset = fh.tell()
        text = self._buf + chunk
        lines = text.split("\n")
        self._buf = lines.pop()  # an unfinished last line waits for its newline
        return lines


# ------------------------------------------------------------------------------- saving


def save_drill(twin, out: Path, *, log_name: str = "after_action.csv", overwrite: bool = True) -> Path:
    """Write the run folder with the after-action log, replacing ``out`` in one rename
    (only a folder the twin wrote; a finished drill only with ``overwrite``).
    """
    from basics.atomic import replace_folder
    from twin.emergency.log import write_after_action
    from twin.results import fill_run, run_marker

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {str(out)!r} is a file, not a run folder; choose another path")

    def fill(folder: Path) -> None:
        fill_run(twin, folder)
        write_after_action(twin.components["emergency"], folder / log_name)

    return replace_folder(out, fill, marker=run_marker(twin, kind="drill"), overwrite=overwrite, what="run folder")


# ------------------------------------------------------------------------------- views


def _clock(twin, t: float | None = None) -> str:
    return format_clock(twin.clock_s(t), with_seconds=True)


def live_view(twin, *, speed: float, notes: list[str]) -> Group:
    """The live drill view: clock, incidents, units by kind, the latest events."""
    from twin.emergency.log import after_action_rows

    comp = twin.components["emergency"]
    head = Table.grid(padding=(0, 2))
    head.add_row(
        f"[bold]{twin.scenario.name}[/]",
        f"clock [bold]{_clock(twin)}[/]",
        f"{speed:g}× real time",
        f"incidents open [bold]{comp.book.n_open}[/]",
        f"waiting for a unit [bold]{len(comp.book.queue)}[/]",
    )
    units = Table(title="units", title_justify="left")
    for col in ("kind", "free", "busy", "out"):
        units.add_column(col, justify="right" if col != "kind" else "left")
    from twin.emergency.resources import BUSY, DISPATCHABLE

    for k in comp.fleet.kinds:
        us = [u for u in comp.units if u.kind == k and not u.done]
        free = sum(1 for u in us if u.state in DISPATCHABLE and comp.stations[u.station].in_service)
        busy = sum(1 for u in us if u.state in BUSY)
        units.add_row(k, str(free), str(busy), str(len(us) - free - busy))
    incs = Table(title="open incidents", title_justify="left")
    for col in ("#", "type", "sev", "stage", "units", "since"):
        incs.add_column(col)
    from twin.emergency.incidents import STAGES

    for inc in [i for i in comp.incidents if i.open][-8:]:
        incs.add_row(
            str(inc.id),
            inc.type,
            str(inc.severity),
            STAGES[inc.stage],
            str(len(inc.assigned)),
            _clock(twin, inc.t_occur),
        )
    events = Table(title="latest events", title_justify="left")
    for col in ("clock", "event", "incident", "unit", "detail"):
        events.add_column(col)
    for row in after_action_rows(comp, comp.log.rows[-10:]):
        events.add_row(
            row["clock"],
            row["event"],
            f"{row['incident']} {row['incident_type']}".strip(),
            str(row["unit"]),
            str(row["detail"])[:40],
        )
    grid = Table.grid(padding=(0, 3))
    grid.add_row(units, incs)
    parts = [head, grid, events] + [f"[yellow]{n}[/]" for n in notes[-3:]]
    return Group(*parts)


def response_table(twin) -> Table:
    """Response times and targets by incident type."""
    comp = twin.components["emergency"]
    kp = comp.kpis()
    table = Table(title="response by incident type")
    for col in ("type", "incidents", "open", "p50 s", "p90 s", "target", "within target"):
        # numbers never wrap (80 columns: pipes, CI logs); the type and the target text may
        table.add_column(
            col, justify="left" if col == "type" else "right", no_wrap=col not in ("type", "target"), overflow="fold"
        )
    for t in sorted({i.type for i in comp.incidents}):
        tgt = comp.types[t].target
        n = sum(1 for i in comp.incidents if i.type == t)
        n_open = sum(1 for i in comp.incidents if i.type == t and i.open)

        def f(v):
            return "–" if v is None or not math.isfinite(v) else f"{v:,.0f}"

        target = "–" if tgt is None else f"{tgt.seconds:.0f} s {tgt.measure}" + (f" ({tgt.unit})" if tgt.unit else "")
        table.add_row(
            t,
            str(n),
            str(n_open),
            f(kp.get(f"response_p50_s_{t}")),
            f(kp.get(f"response_p90_s_{t}")),
            target,
            f(kp.get(f"within_target_pct_{t}")) + " %",
        )
    return table


# ------------------------------------------------------------------------------- command


def _apply_lines(comp, lines, console: Console, notes: list[str]) -> None:
    from basics.errors import InputError

    for line in lines:
        try:
            obj = parse_inject(line)
            if obj is None:
                continue
            msg = apply_inject(comp, obj)
            notes.append(f"inject at {_clock(comp.twin)}: {msg}")
        except InputError as exc:
            comp.log.add(comp.now, "inject_rejected", detail=str(exc))
            notes.append(f"rejected: {exc}")
            console.print(f"[yellow]inject rejected:[/] {exc}", highlight=False)


def _run_unpaced(twin, comp, source: InjectSource | None, *, notes: list[str], console: Console, quiet: bool) -> None:
    """Run the drill as fast as it goes (what ``--inject`` holds is applied at the start)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    if source is not None:
        _apply_lines(comp, source.poll() + ([source._buf] if source._buf else []), console, notes)
    progress = Progress(
        TextColumn("drill"),
        BarColumn(),
        TextColumn("{task.fields[clock]}"),
        TextColumn("{task.fields[open]} open"),
        TimeElapsedColumn(),
        console=console,
        disable=quiet,
    )
    with progress:
        task = progress.add_task("drill", total=twin.duration_s, clock="", open=0)
        twin.run(
            progress=lambda now: progress.update(task, completed=now, clock=_clock(twin, now), open=comp.book.n_open)
        )


def _run_paced(twin, comp, source: InjectSource | None, *, speed: float, notes: list[str], console: Console) -> bool:
    """Run the drill paced at ``speed`` simulated seconds per real second, applying injects as
    they arrive, with a live view; whether it was stopped (Ctrl-C) before the end.
    """
    end = twin.duration_s
    wall0, sim0 = time.perf_counter(), twin.now
    try:
        with Live(
            live_view(twin, speed=speed, notes=notes), console=console, refresh_per_second=4, transient=False
        ) as live:
            while twin.now < end:
                if source is not None:
                    _apply_lines(comp, source.poll(), console, notes)
                target = min(sim0 + (time.perf_counter() - wall0) * speed, end)
                if target > twin.now:
                    twin.run_until(target)
                live.update(live_view(twin, speed=speed, notes=notes))
                if twin.now < end:
                    time.sleep(min(0.2, max(0.0, (end - twin.now) / speed)))
    except KeyboardInterrupt:
        console.print(f"[yellow]stopped at {_clock(twin)}[/]: writing the results so far")
        return True
    return False


def _cmd_drill(args, console: Console) -> int:
    from basics.errors import InputError
    from scenarios import load_scenario
    from twin.cli.common import kpi_table
    from twin.emergency import EmergencyComponent
    from twin.model import Twin

    if args.speed is not None and not (args.speed > 0 and math.isfinite(args.speed)):
        raise InputError(f"--speed must be a positive number (simulated seconds per real second), got {args.speed}")
    scenario = load_scenario(args.scenario, overrides={"seed": args.seed, "incidents.enabled": True})
    from twin.cli.common import out_folder

    out = out_folder(args.out, scenario, f"{{name}}-drill-seed{scenario.seed}", overwrite=args.overwrite)
    source = InjectSource(args.inject) if args.inject else None
    t0 = time.perf_counter()
    with console.status(f"building [bold]{scenario.name}[/]…"):
        twin = Twin(scenario)
    comp = twin.components["emergency"]
    assert isinstance(comp, EmergencyComponent)  # incidents.enabled (set above) builds it
    console.print(
        f"[bold]{scenario.name}[/]: {twin.city.name}, {len(comp.stations)} stations, {len(comp.units)} units, "
        f"{len(comp.hospitals)} hospitals, {len(comp.script)} scripted incidents, "
        f"{twin.trips.trip_id.shape[0]:,} trips (set-up {time.perf_counter() - t0:.1f} s)"
    )
    notes: list[str] = []
    stopped = False
    t1 = time.perf_counter()
    if args.speed is None:
        _run_unpaced(twin, comp, source, notes=notes, console=console, quiet=args.quiet)
    else:
        stopped = _run_paced(twin, comp, source, speed=args.speed, notes=notes, console=console)
    wall = time.perf_counter() - t1
    log_name = "after_action.jsonl" if args.log_format == "jsonl" else "after_action.csv"
    with console.status("writing results…"):
        save_drill(twin, out, log_name=log_name, overwrite=args.overwrite)
    console.print(response_table(twin))
    labels_keys = set(comp.kpis()) | {"trips_total", "trips_completed", "trips_stranded"}  # stranded: issue 16
    console.print(
        kpi_table({k: v for k, v in twin.kpis().items() if k in labels_keys}, title=f"{scenario.name} — emergency KPIs")
    )
    still = [i for i in comp.incidents if i.open]
    if still:
        console.print(
            f"[yellow]{len(still)} incident(s) still open[/] at {_clock(twin)}: "
            + ", ".join(f"#{i.id} {i.type}" for i in still[:10])
            + (" …" if len(still) > 10 else "")
        )
    console.print(
        f"{'stopped after' if stopped else 'simulated'} {twin.now / 3600:.2f} h in {wall:.1f} s; "
        f"{len(comp.log)} events; results in [bold]{out}[/] ({log_name}, results.nc, summary.json, scenario.yaml)"
    )
    return 0


def add_commands(sub) -> None:
    """Register ``twin drill``."""
    d = sub.add_parser("drill", help="run an emergency drill and write its after-action log")
    d.add_argument("scenario", help="scenario YAML file or built-in name (e.g. drill_evening_peak)")
    d.add_argument("--out", help="run folder (default: runs/<name>-drill-seed<seed>)")
    d.add_argument("--seed", type=int, help="override the scenario's seed")
    d.add_argument("--speed", type=float, help="pace against the wall clock: simulated seconds per real second")
    d.add_argument("--inject", help="file of inject lines (watched while a paced drill runs), or - for stdin")
    d.add_argument("--log-format", choices=("csv", "jsonl"), default="csv", help="after-action log format")
    d.add_argument("--overwrite", action="store_true", help="replace a finished drill in the run folder")
    d.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    d.set_defaults(func=_cmd_drill)
