"""Snapshots: the whole state of a twin on disk, and back.

A snapshot holds the city, the traffic state (links, vehicles, routes), every
component's records (interventions, incidents and units, agents, feeds), the
link changes in force, the recorder's rows so far, and every random generator's
state.  SimPy processes are not stored: they are thin drivers over those
records, and a restored twin builds them again (:meth:`Twin._start_processes`)
on a fresh clock set to the snapshot's time, with each process's next event at
the time its record says.  Simultaneous events keep their order because every
kind of process has a fixed priority (:data:`twin.recorder.PRIORITY`).  So
restore-then-run equals the uninterrupted run, bit for bit.

File format: a short JSON header line (format, package version, scenario,
hash, seed, sim time), then a pickle.  Written to a temporary file and renamed,
so an interrupted snapshot never leaves a half-written file.  Pickles run code
when loaded: restore only snapshots you made.
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

from twin.atomic import write_bytes
from twin.errors import InputError

__all__ = ["write_snapshot", "read_snapshot", "snapshot_header", "FORMAT"]

FORMAT = "city-twin-snapshot/1"


def write_snapshot(twin, path: str | os.PathLike) -> Path:
    """Write ``twin``'s state to ``path`` atomically; returns the path."""
    from twin.results import package_version

    path = Path(path)
    if path.exists() and path.is_dir():
        raise InputError(f"snapshot path {str(path)!r} is a folder; give a file name (e.g. now.snap)")
    twin.sync()
    header = {
        "format": FORMAT,
        "package_version": package_version(),
        "scenario": twin.scenario.name,
        "scenario_hash": twin.scenario_hash,
        "seed": int(twin.seed),
        "sim_time_s": float(twin.now),
        "clock_s": float(twin.clock_s()),
    }
    payload = pickle.dumps(twin, protocol=pickle.HIGHEST_PROTOCOL)
    write_bytes(path, json.dumps(header).encode() + b"\n" + payload, fsync=True)
    return path


def snapshot_header(path: str | os.PathLike) -> dict:
    """The header of a snapshot file (cheap: does not load the state)."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            line = fh.readline(4096)
    except FileNotFoundError:
        raise InputError(f"snapshot {str(path)!r} does not exist") from None
    try:
        header = json.loads(line)
    except ValueError:
        header = None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise InputError(f"{str(path)!r} is not a city-twin snapshot (no '{FORMAT}' header)")
    return header


def read_snapshot(path: str | os.PathLike):
    """Load a twin from a snapshot; it resumes where the snapshot was taken."""
    from twin.results import package_version

    header = snapshot_header(path)
    if header["package_version"] != package_version():
        raise InputError(f"snapshot {str(path)!r} was written by city-twin {header['package_version']}, "
                         f"this is {package_version()}: restore it with that version")
    with open(path, "rb") as fh:
        fh.readline()
        try:
            return pickle.load(fh)
        except (pickle.UnpicklingError, EOFError, AttributeError, ImportError) as exc:
            raise InputError(f"snapshot {str(path)!r} is damaged or incomplete: {exc}") from None
