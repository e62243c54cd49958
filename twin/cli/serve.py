"""``twin serve``: run a scenario or a drill behind the live operations picture.

::

    twin serve [SCENARIO] [--drill | --live FEED [--members N]] [--speed X] [--host 127.0.0.1]
               [--port 8050] [--token-file FILE] [--paused] [--out DIR]

With ``--live`` (``replay:FILE``, ``mqtt://HOST:PORT/TOPIC`` or ``http://127.0.0.1:PORT``,
as ``twin live --feed`` takes it) the page shows shadow mode: the ensemble in step with
the feed (default scenario: the recorded sample day), its message counters and lag, the
demand factors with their spread and observed against estimated sensors.  A feed that
cannot connect fails within seconds, naming the address.

Open the printed address in a browser (several may watch the same run).  Bound to
127.0.0.1 unless ``--host`` says otherwise; any other address needs
``--token-file`` (lines ``NAME viewer|operator TOKEN``; open the page with
``?token=TOKEN``).  Ctrl-C stops the server; with ``--out`` the run folder is
written then (results, the after-action log with every operator action, and
``operator_log.csv``).
"""

from __future__ import annotations

import math
import secrets
from pathlib import Path

from rich.console import Console

__all__ = ["add_commands"]


def _cmd_serve(args, console: Console) -> int:
    import uvicorn

    from basics.errors import InputError
    from scenarios import load_scenario
    from twin.feeds.http import is_loopback
    from twin.model import Twin
    from twin.serve import Runner, Tokens, build_app

    if not (args.speed > 0 and math.isfinite(args.speed)) or args.speed > 3600:
        raise InputError(f"--speed must be a number in (0, 3600] (simulated seconds per real second), got {args.speed}")
    if not 0 < args.port < 65536:
        raise InputError(f"--port must be 1-65535, got {args.port}")
    tokens = Tokens.from_file(args.token_file) if args.token_file else Tokens()
    if not is_loopback(args.host) and not tokens.required:
        raise InputError(
            f"--host {args.host!r} is reachable from other machines: give --token-file with viewer/operator tokens "
            f"(one line each: NAME ROLE TOKEN; a token such as {secrets.token_urlsafe(24)})"
        )
    if args.live:
        if args.drill:
            raise InputError("--drill and --live cannot be combined: shadow mode follows the feed")
        runner = _live_runner(args, console)
        scenario, twin = runner.live.shadow.scenario, runner.twin
    else:
        overrides = {"incidents.enabled": True} if args.drill else {}
        scenario = load_scenario(args.scenario or "default", overrides=overrides)
        with console.status(f"building [bold]{scenario.name}[/]…"):
            twin = Twin(scenario)
        runner = Runner(twin, speed=args.speed, paused=args.paused)
    try:
        app = build_app(runner, tokens)
    except BaseException:
        if runner.live is not None:
            runner.live.close()
        raise
    runner.start()
    url = f"http://{args.host if ':' not in args.host else '[' + args.host + ']'}:{args.port}/"
    console.print(
        f"[bold]{scenario.name}[/] on {twin.city.name} ({twin.city.network.n_links:,} links): "
        f"open [bold]{url}[/]" + (" with ?token=YOUR_TOKEN" if tokens.required else "") + "; Ctrl-C stops"
    )
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning", ws="wsproto", ws_max_size=65536)
    finally:
        runner.stop()
        if runner.live is not None:
            runner.live.close()
        if args.out:
            _save(runner, Path(args.out), console)
    return 0


def _live_runner(args, console: Console):
    """Shadow mode: the scenario and feed checked, the feed connected, the ensemble built."""
    from types import SimpleNamespace

    from twin.cli.live import _live_scenario, _start_feed
    from twin.live import Shadow
    from twin.live.settings import MAX_MEMBERS
    from twin.model import build_city
    from twin.serve import Runner
    from twin.serve.live import LiveDriver

    if not 1 <= args.members <= MAX_MEMBERS:
        from basics.errors import InputError

        raise InputError(f"--members must be 1-{MAX_MEMBERS}, got {args.members}")
    ns = SimpleNamespace(scenario=args.scenario, feed=args.live, members=args.members, open_loop=False)
    scenario, settings = _live_scenario(ns)  # checked before the city is built or the feed connected
    city = build_city(scenario.city)
    hub = _start_feed(scenario, city, dead=None, console=console)  # fails within seconds, naming the address
    try:
        with console.status(f"building {args.members} twins of {scenario.name}…"):
            shadow = Shadow(scenario, hub, settings, speed=args.speed, city=city)
    except BaseException:
        hub.stop()
        raise
    return Runner(None, speed=args.speed, paused=args.paused, live=LiveDriver(shadow))


def _save(runner, out: Path, console: Console) -> None:
    """The run folder, with the operator log beside the results."""
    import csv
    import io

    from basics.atomic import write_text

    tw = runner.twin
    if runner.live is not None:
        runner.live.shadow.save(out)
    elif "emergency" in tw.components:
        from twin.cli.drill import save_drill

        save_drill(tw, out)
    else:
        tw.save(out)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=["time_s", "clock", "who", "action", "outcome"])
    w.writeheader()
    w.writerows(runner.oplog.rows)
    write_text(out / "operator_log.csv", buf.getvalue())
    console.print(f"results in [bold]{out}[/] (with operator_log.csv)")


def add_commands(sub) -> None:
    """Register ``twin serve``."""
    p = sub.add_parser("serve", help="live operations picture: a browser dashboard over a running twin")
    p.add_argument(
        "scenario", nargs="?", help="scenario file or built-in name (default: default; with --live the sample day)"
    )
    p.add_argument("--drill", action="store_true", help="with emergency services (incidents on)")
    p.add_argument(
        "--live",
        metavar="FEED",
        help="shadow mode: replay:FILE | mqtt://HOST:PORT/TOPIC | http://127.0.0.1:PORT (as twin live --feed)",
    )
    p.add_argument("--members", type=int, default=12, help="with --live: ensemble size (default 12)")
    p.add_argument("--speed", type=float, default=60.0, help="simulated seconds per real second (default 60)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; others need tokens)")
    p.add_argument("--port", type=int, default=8050, help="port (default 8050)")
    p.add_argument("--token-file", help="tokens: one line NAME viewer|operator TOKEN each")
    p.add_argument("--paused", action="store_true", help="start with the clock stopped")
    p.add_argument("--out", help="write the run folder here when the server stops")
    p.set_defaults(func=_cmd_serve)
