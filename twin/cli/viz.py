"""``twin report`` and ``twin render``: reports and 3D scenes from run and comparison folders.

::

    twin report RUN_OR_COMPARISON_DIR [--out FILE.html]
    twin render RUN_DIR [--time HH:MM|SECONDS] [--color speed|density] --out scene.png
                [--animate out.mp4|out.gif] [--frames N] [--fps F] [--size WxH] [--html scene.html]

Both only read the folder's files (nothing is simulated).
"""

from __future__ import annotations

import re
import time

from rich.console import Console

from basics.errors import InputError

__all__ = ["add_commands"]


def _size(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", text)
    if not m:
        raise InputError(f"--size {text!r}: give width x height in pixels, e.g. 1280x800")
    return int(m.group(1)), int(m.group(2))


def _cmd_report(args, console: Console) -> int:
    from viz.report import write_report

    t0 = time.perf_counter()
    with console.status("drawing the report…"):
        html, pngs = write_report(args.folder, out=args.out)
    console.print(
        f"report: [bold]{html}[/] ({html.stat().st_size / 1e6:.1f} MB, {len(pngs)} figures, "
        f"{time.perf_counter() - t0:.1f} s)"
    )
    for p in pngs:
        console.print(f"  figure: {p}")
    return 0


def _cmd_render(args, console: Console) -> int:
    from viz.scene import render

    when: str | float | None = args.time
    t0 = time.perf_counter()
    with console.status("rendering the 3D scene…"):
        timings = render(
            args.folder,
            out=args.out,
            when=when,
            color=args.color,
            size=_size(args.size),
            animate=args.animate,
            frames=args.frames,
            fps=args.fps,
            html=args.html,
        )
    console.print(
        f"scene: [bold]{args.out}[/] (scene built in {timings['scene_s']:.1f} s, image {timings['png_s']:.1f} s)"
    )
    if args.animate:
        n = int(timings.get("frames", 0))
        console.print(
            f"animation: [bold]{args.animate}[/] ({n} frames in {timings['animation_s']:.1f} s, "
            f"{timings['animation_s'] / max(n, 1):.2f} s a frame)"
        )
    if args.html:
        if timings.get("html_written"):
            console.print(f"interactive scene: [bold]{args.html}[/] (open it in a browser; works offline)")
        else:
            console.print("[yellow]note:[/] interactive HTML skipped: install trame-vtk (pip install trame-vtk) for it")
    console.print(f"done in {time.perf_counter() - t0:.1f} s")
    return 0


def add_commands(sub) -> None:
    """Register ``report`` and ``render`` on the ``twin`` sub-parsers."""
    r = sub.add_parser("report", help="write an HTML report (KPIs, time series, maps) of a run or comparison folder")
    r.add_argument("folder", help="run folder (twin run) or comparison folder (twin compare)")
    r.add_argument("--out", help="HTML file to write (default: FOLDER/report.html); figures go beside it as PNG")
    r.set_defaults(func=_cmd_report)
    v = sub.add_parser("render", help="render a run's city in 3D (PNG, animation, interactive HTML)")
    v.add_argument("folder", help="run folder (twin run)")
    v.add_argument("--out", required=True, help="PNG file to write")
    v.add_argument("--time", help="clock time HH:MM or seconds since the start (default: the busiest interval)")
    v.add_argument("--color", default="speed", choices=["speed", "density"], help="colour roads by (default: speed)")
    v.add_argument("--animate", help="also render the day as an animation: a .gif or .mp4 file")
    v.add_argument(
        "--frames", type=int, help="at most this many animation frames, evenly spread (default: every interval)"
    )
    v.add_argument("--fps", type=float, default=8.0, help="animation frames per second (default: 8)")
    v.add_argument("--size", default="1280x800", help="image size WIDTHxHEIGHT in pixels (default: 1280x800)")
    v.add_argument("--html", help="also export an interactive 3D scene to this HTML file (needs trame-vtk)")
    v.set_defaults(func=_cmd_render)
