"""``twin export``: a run's results out to GIS tools and dataframes (issue 13, part 5).

::

    twin export RUN_DIR --format gpkg|geojson|parquet --out FILE [--time HH:MM-HH:MM]

Reads the run folder's files only (nothing is simulated); see :mod:`viz.export`.
"""

from __future__ import annotations

import time

from rich.console import Console

__all__ = ["add_commands"]


def _cmd_export(args, console: Console) -> int:
    from viz.export import export_run

    t0 = time.perf_counter()
    with console.status("exporting…"):
        summary = export_run(args.run, args.out, fmt=args.format, window=args.time)
    crs = summary.crs or "the city's local metric frame (no CRS)"
    console.print(
        f"exported {summary.window[0]}-{summary.window[1]} of [bold]{args.run}[/] in "
        f"{time.perf_counter() - t0:.1f} s; coordinates: {crs}"
    )
    for name, path in summary.files.items():
        console.print(f"  {name}: {summary.rows[name]:,} rows -> {path}")
    return 0


def add_commands(sub) -> None:
    """Register ``twin export`` on the sub-parsers object ``sub``."""
    from viz.export import FORMATS

    e = sub.add_parser(
        "export",
        help="write a run's links (geometry, flow, speed, v/c, delay), trips, incidents and units for GIS tools",
        description=(
            "Write a run folder's results as a GeoPackage (one layer per table), GeoJSON or Parquet "
            "(one file per table: --out names the links file, the others are written beside it)."
        ),
    )
    e.add_argument("run", help="run folder (from `twin run`)")
    e.add_argument("--format", choices=sorted(FORMATS), help="output format (default: from the --out extension)")
    e.add_argument("--out", required=True, help="file to write (.gpkg, .geojson or .parquet)")
    e.add_argument(
        "--time", metavar="HH:MM-HH:MM", help="aggregate only the output intervals inside this window (default: all)"
    )
    e.set_defaults(func=_cmd_export)
