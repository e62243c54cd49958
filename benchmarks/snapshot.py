"""Snapshot benchmark: write and read the whole state of the ``metro`` city's twin (issue 15, "Performance").

The ``metro`` case (:func:`benchmarks.cases.metro_case`: a 72 x 72 grid with
arterials, 20,448 links, 1,000,000 trips over 24 h) runs as a twin (the metro
grid as a city, the trips as a trips table, default traffic settings) up to
``--until`` (default 08:00, the morning peak: about 100,000 vehicles on the
road or done); then the benchmark times

- ``pickle``: the pickle of the twin (what snapshots were before issue 15),
  ``pickle.dumps`` and ``pickle.loads`` in memory, and as a file the old way (header
  line + pickle, written atomically with fsync; read back and unpickled), and its size;
- ``snapshot``: :meth:`twin.model.Twin.snapshot` to a file and
  :meth:`twin.model.Twin.restore` from it (the format of :mod:`twin.snapshot`),
  and the file's size,

each the fastest of ``--repeat`` tries, and checks that the restored twin's next
hour equals the original's (bit for bit)::

    python -m benchmarks.snapshot                   # metro, 1,000,000 trips, at 08:00
    python -m benchmarks.snapshot --trips 100000 --until 02:00   # a quick look

Targets: write and read under 2 s each, the file no more than 20 % larger than
the pickle.
"""

from __future__ import annotations

import argparse
import json
import pickle
import tempfile
import time
from pathlib import Path

import numpy as np


def build_twin(*, n_trips: int, until: str, out: Path, seed: int = 0):
    """The metro twin run up to ``until`` (clock time)."""
    from benchmarks.cases import metro_case
    from benchmarks.equilibrium import write_trips
    from benchmarks.population import metro_city
    from scenarios import load_scenario
    from twin.model import Twin

    case = metro_case(seed=seed, n_trips=n_trips)
    city = metro_city(1000)
    csv = write_trips(case.trips, out / f"metro_trips_{n_trips}_seed{seed}.csv")
    sc = load_scenario(
        {
            "name": "metro_snapshot",
            "time": {"start": "00:00", "duration": "25h", "step": 2.0},
            "city": {"synthetic": {}},  # replaced by the metro city
            "demand": {"trips": str(csv)},
            "outputs": {"interval": "5min"},
        }
    )
    twin = Twin(sc, city=city)
    twin.run_until(until)
    return twin


def _best(fn, repeat: int):
    best, value = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - t)
    return best, value


def run(*, n_trips: int, until: str, repeat: int, out: Path, check: bool = True, pickle_only: bool = False) -> dict:
    from twin.model import Twin

    t = time.perf_counter()
    twin = build_twin(n_trips=n_trips, until=until, out=out)
    build_s = time.perf_counter() - t
    row: dict = {
        "trips": n_trips,
        "until": until,
        "build_s": build_s,
        "sim_time_s": twin.now,
        "vehicles": int(twin.traffic.n_vehicles),
        "links": int(twin.city.network.n_links),
    }
    pw, blob = _best(lambda: pickle.dumps(twin, protocol=pickle.HIGHEST_PROTOCOL), repeat)
    pr, _ = _best(lambda: pickle.loads(blob), repeat)  # noqa: F821 (bound above; `del` below frees it)
    row.update(pickle_write_s=pw, pickle_read_s=pr, pickle_bytes=len(blob))
    del blob
    # the format before issue 15 as a file: a header line and the pickle, written with fsync
    from basics.atomic import write_bytes

    old = out / "metro.pickle.snap"
    head = json.dumps({"format": "city-twin-snapshot/1"}).encode() + b"\n"
    fw, _ = _best(
        lambda: write_bytes(old, head + pickle.dumps(twin, protocol=pickle.HIGHEST_PROTOCOL), fsync=True), repeat
    )

    def read_old():
        with open(old, "rb") as fh:
            fh.readline()
            return pickle.load(fh)

    fr, _ = _best(read_old, repeat)
    row.update(pickle_file_write_s=fw, pickle_file_read_s=fr)
    old.unlink()
    if not pickle_only:
        path = out / "metro.snap"
        sw, _ = _best(lambda: twin.snapshot(path), repeat)
        sr, back = _best(lambda: Twin.restore(path), repeat)
        row.update(
            snapshot_write_s=sw,
            snapshot_read_s=sr,
            snapshot_bytes=path.stat().st_size,
            size_ratio=path.stat().st_size / row["pickle_bytes"],
        )
        if check:
            t1 = twin.now + 3600.0
            twin.run_until(t1)
            back.run_until(t1)
            a, b = twin.results(), back.results()
            row["restored_run_identical"] = all(
                np.array_equal(a[k].values, b[k].values, equal_nan=True)
                for k in a.data_vars
                if a[k].dtype.kind in "biuf"
            )
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trips", type=int, default=1_000_000)
    ap.add_argument("--until", default="08:00", help="clock time of the snapshot (default 08:00)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--pickle-only", action="store_true", help="time only the pickle (the format before issue 15)")
    ap.add_argument("--no-check", action="store_true", help="skip running on after the restore")
    ap.add_argument("--out", type=Path, default=None, help="folder for the trips table and the snapshot")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        row = run(
            n_trips=args.trips,
            until=args.until,
            repeat=args.repeat,
            out=out,
            check=not args.no_check,
            pickle_only=args.pickle_only,
        )
    print(json.dumps(row, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
