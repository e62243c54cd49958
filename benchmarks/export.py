"""Export benchmark (issue 13, "Performance"): a day's run of the metro city to GeoPackage.

Runs the ``metro`` day (:func:`benchmarks.cases.metro_case`'s trips on the 72 x 72 grid
of :func:`benchmarks.population.metro_city`: 20,448 links, 24 h, 5-minute outputs)
once and writes its run folder (untimed; reused when already there), then times
``twin export`` of it to a GeoPackage (target: under 10 s), and also to GeoJSON and
Parquet for comparison::

    python -m benchmarks.export                    # 1,000,000 trips
    python -m benchmarks.export --trips 200000     # a lighter day

Prints one JSON line with the timings, the layers' row counts and the file sizes.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def make_run(folder: Path, *, n_trips: int, seed: int = 0, step: float = 2.0, interval: float = 300.0) -> Path:
    """The metro day's run folder (written once; an existing finished one is reused)."""
    from benchmarks.cases import metro_case
    from benchmarks.equilibrium import write_trips
    from benchmarks.population import metro_city
    from scenarios import load_scenario
    from twin.model import Twin
    from twin.results import write_run

    if (folder / "results.nc").is_file():
        return folder
    case = metro_case(seed=seed, n_trips=n_trips)
    csv = write_trips(case.trips, folder.parent / f"metro_trips_{n_trips}_seed{seed}.csv")
    sc = load_scenario(
        {
            "name": "metro_day",
            "time": {"start": "00:00", "duration": 25 * 3600.0, "step": step},
            "city": {"synthetic": {}},  # replaced by the metro city
            "demand": {"trips": str(csv)},
            "outputs": {"interval": interval},
        }
    )
    twin = Twin(sc, city=metro_city(1000))
    twin.run()
    return write_run(twin, folder)


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark; returns (and prints) its figures."""
    from viz.export import export_run

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trips", type=int, default=1_000_000, help="metro trips (default 1,000,000)")
    ap.add_argument("--out", default="benchmarks/out/export")
    args = ap.parse_args(argv)
    out = Path(args.out)
    t = time.perf_counter()
    run = make_run(out / f"metro-{args.trips}", n_trips=args.trips)
    run_s = time.perf_counter() - t
    row: dict = {"trips": args.trips, "run_folder": str(run), "run_and_write_s": round(run_s, 1)}
    for fmt in ("gpkg", "geojson", "parquet"):
        t, c = time.perf_counter(), time.process_time()
        summary = export_run(run, out / f"metro.{fmt}", fmt=fmt)
        row[f"{fmt}_s"] = round(time.perf_counter() - t, 2)
        row[f"{fmt}_cpu_s"] = round(time.process_time() - c, 2)  # CPU seconds: less noisy on a shared machine
        row[f"{fmt}_mb"] = round(sum(p.stat().st_size for p in set(summary.files.values())) / 1e6, 1)
    row["rows"] = summary.rows
    row["gpkg_target_s"] = 10.0
    print(json.dumps(row), flush=True)
    return row


if __name__ == "__main__":
    main()
