"""Forks: what-ifs run from a snapshot of "now", side by side with doing nothing.

A variant is a YAML file with ``interventions:`` (the scenario schema's, times
counted from the fork: ``at: 0`` is now, ``until: 2h`` two hours on, a clock
time its next occurrence) and an optional ``name`` and ``description``.  A
whole scenario file works too: its interventions are taken.  Each variant,
and "no action", restores the snapshot, adds its interventions and runs for
the horizon; the runs go to the executor the caller passes (the command line gives
the project's Dask :class:`~experiments.executor.Executor`, the one comparisons use;
anything with its ``as_completed(fn, tasks)`` will do).

The KPIs compare the horizon itself, not the day so far: trips completed in
the horizon and their mean travel time, vehicle-hours spent on the network in
it, mean network speed, vehicles left on the network at its end, plus every
component's KPIs (e.g. emergency response times) at the end of the horizon.

The snapshot travels to the workers as the bytes of a snapshot file
(:mod:`twin.snapshot`: checked against its checksum and decoded without running
code from it, in the calling process before anything is sent and again in each
worker).  A twin can be forked without a file (:func:`fork` takes a
:class:`~twin.model.Twin` or snapshot bytes too): the live twin's fork folder does
that, so nothing a request can reach ever holds a snapshot.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import yaml

from basics.errors import InputError

__all__ = ["Variant", "ForkResult", "Executor", "load_variant", "run_fork", "fork", "HORIZON_KPI_LABELS"]


class Executor(Protocol):
    """What a fork needs of an executor: run tasks, and yield each result as it lands."""

    def as_completed(
        self, func: Callable[..., Any], items: Iterable[Sequence[Any]], **kwargs: Any
    ) -> Iterator[tuple[int, Any]]:
        """Yield ``(index in items, func(*item, **kwargs))`` as each task finishes."""


HORIZON_KPI_LABELS: dict[str, tuple[str, str]] = {
    "h_trips_completed": ("Trips completed in the horizon", ""),
    "h_mean_travel_time_s": ("Mean travel time of those trips", "s"),
    "h_vehicle_hours": ("Vehicle-hours on the network in the horizon", "veh·h"),
    "h_mean_network_speed_kmh": ("Mean network speed in the horizon", "km/h"),
    "h_vehicles_at_end": ("Vehicles on the network at the end", "veh"),
    "h_waiting_at_end": ("Vehicles waiting to enter at the end", "veh"),
}


@dataclass
class Variant:
    """One what-if to fork: a name and its interventions (plain, pickle-safe data)."""

    name: str
    interventions: list[dict] = field(default_factory=list)
    description: str = ""


@dataclass
class ForkResult:
    """One fork run: its variant's name, its horizon KPIs, its wall time and the sim times it ran between."""

    name: str
    kpis: dict[str, float]
    wall_s: float
    sim_from_s: float
    sim_to_s: float


#: largest variant file read (a what-if is a few interventions)
MAX_VARIANT_BYTES = 1_000_000


def load_variant(path: str | Path) -> Variant:
    """Read a variant file (see the module docstring); errors name the file and entry.

    Only a regular YAML file of at most :data:`MAX_VARIANT_BYTES` is read (YAML's safe
    loader: plain data, never objects).
    """
    from pydantic import TypeAdapter, ValidationError

    from scenarios.interventions import InterventionSpec

    path = Path(path)
    try:
        st = os.stat(path)
        if not os.path.isfile(path):
            raise InputError(f"variant file {str(path)!r} is not a regular file")
        if st.st_size > MAX_VARIANT_BYTES:
            raise InputError(
                f"variant file {str(path)!r} has {st.st_size:,} bytes; a what-if has at most {MAX_VARIANT_BYTES:,}"
            )
        data = yaml.safe_load(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise InputError(f"variant file {str(path)!r} does not exist") from None
    except UnicodeDecodeError:
        raise InputError(f"variant file {str(path)!r} is not UTF-8 text") from None
    except OSError as exc:
        raise InputError(f"cannot read variant file {str(path)!r}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise InputError(f"variant file {str(path)!r} is not valid YAML: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("interventions", []), list):
        raise InputError(f"variant file {str(path)!r} must be a mapping with an 'interventions:' list")
    entries = data.get("interventions") or []
    adapter: TypeAdapter[Any] = TypeAdapter(InterventionSpec)
    for i, entry in enumerate(entries):
        try:
            adapter.validate_python(entry)
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = ".".join(str(x) for x in first["loc"])
            raise InputError(f"{path}: interventions[{i}].{loc}: {first['msg']}") from None
    return Variant(
        name=str(data.get("name") or path.stem), interventions=entries, description=str(data.get("description") or "")
    )


def _horizon_kpis(twin, t0: float) -> dict[str, float]:
    ds = twin.results()
    arrive = ds.trip_arrive_s.values
    tt = ds.trip_travel_time_s.values
    done = np.isfinite(arrive) & (arrive > t0)
    sel = ds.time.values > t0 + 1e-9
    times = ds.time.values
    span = np.diff(np.concatenate([[0.0], times]))[sel]
    veh = ds.link_vehicles.values[sel]
    link_h = float((veh * span[:, None]).sum() / 3600.0)
    link_km = float((ds.link_outflow.values[sel] * ds.link_length_m.values).sum() / 1000.0)
    out = {
        "h_trips_completed": int(done.sum()),
        "h_mean_travel_time_s": float(tt[done].mean()) if done.any() else math.nan,
        "h_vehicle_hours": link_h,
        "h_mean_network_speed_kmh": link_km / link_h if link_h > 0 else math.nan,
        "h_vehicles_at_end": int(ds.network_vehicles.values[-1]) if ds.sizes["time"] else 0,
        "h_waiting_at_end": int(ds.network_waiting.values[-1]) if ds.sizes["time"] else 0,
    }
    for comp in twin.components.values():
        out.update(comp.kpis())
    return out


def run_fork(
    snapshot: bytes,
    variant: Variant,
    horizon_s: float,
    allowed_plugins: tuple[str, ...] = (),
    what: str = "(in memory)",
) -> ForkResult:
    """Restore ``snapshot`` (the bytes of a snapshot file), apply ``variant`` and run the horizon.

    A module-level function, so Dask workers can run it.  ``allowed_plugins``: the
    dispatch policies the calling process trusts (``--allow-plugins``), trusted here too.
    """
    from twin.emergency.dispatch import allow_plugins
    from twin.interventions import ensure
    from twin.model import Twin
    from twin.snapshot import twin_from_bytes

    t_wall = time.perf_counter()
    allow_plugins(allowed_plugins)
    twin = twin_from_bytes(bytes(snapshot), what=what)
    if not isinstance(twin, Twin):
        raise InputError(f"snapshot {what} does not hold a twin")
    t0 = twin.now
    if variant.interventions:
        from pydantic import TypeAdapter

        from scenarios.interventions import InterventionSpec

        adapter: TypeAdapter[Any] = TypeAdapter(InterventionSpec)
        specs = [adapter.validate_python(e) for e in variant.interventions]
        ensure(twin).add(specs, label=f"variant {variant.name!r}: interventions")
    twin.run_until(t0 + horizon_s)
    return ForkResult(
        name=variant.name,
        kpis=_horizon_kpis(twin, t0),
        wall_s=time.perf_counter() - t_wall,
        sim_from_s=t0,
        sim_to_s=twin.now,
    )


def fork(
    snapshot_path,
    variants: list[Variant],
    *,
    horizon_s: float,
    executor: Executor,
    include_no_action: bool = True,
    checkpoint: str | os.PathLike | None = None,
) -> list[ForkResult]:
    """Run ``variants`` (and "no action") from a snapshot for ``horizon_s`` seconds.

    Parameters
    ----------
    snapshot_path
        A file written by :meth:`twin.model.Twin.snapshot`, the bytes of one
        (:func:`twin.snapshot.snapshot_bytes`), or a :class:`~twin.model.Twin` (forked
        from its state now, without a file).
    variants
        What-ifs; names must be unique.
    horizon_s
        How far to run each, seconds (> 0).
    executor
        Runs the what-ifs: anything with ``as_completed(fn, tasks)`` yielding
        ``(index, result)`` as each ``fn(*task)`` finishes (the command line passes an
        :class:`experiments.executor.Executor`; the caller closes it).
    include_no_action
        Run "no action" too, first.
    checkpoint
        A folder where each finished run is kept as it lands (a checksummed records
        file, :func:`twin.snapshot.records_bytes`); forking the same snapshot with the
        same what-ifs and horizon again takes them and runs only the rest.  A folder
        of another fork is replaced; a folder that is not a fork checkpoint is refused.
    """
    from twin.emergency.dispatch import allowed_plugins
    from twin.snapshot import SnapshotError, snapshot_bytes, snapshot_header, verify_bytes

    if not horizon_s > 0 or not math.isfinite(horizon_s):
        raise InputError(f"the horizon must be a positive duration, got {horizon_s!r}")
    if isinstance(snapshot_path, (bytes, bytearray, memoryview)):
        data, what = bytes(snapshot_path), "(in memory)"
    elif isinstance(snapshot_path, (str, os.PathLike)):
        snapshot_header(snapshot_path)  # a clear error for a file that is not a snapshot
        what = repr(str(snapshot_path))
        try:
            data = Path(snapshot_path).read_bytes()
        except OSError as exc:
            raise SnapshotError(f"cannot read snapshot {what}: {exc.strerror or exc}") from None
    else:
        data, what = snapshot_bytes(snapshot_path), "(in memory)"
    verify_bytes(data, what)  # truncated, damaged or other-version files stop here, before any worker
    runs = ([Variant(name="no action")] if include_no_action else []) + list(variants)
    names = [v.name for v in runs]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise InputError(f"variant names must be unique; repeated: {', '.join(sorted(dup))}")
    ckpt = _ForkCheckpoint(checkpoint, data, runs, horizon_s) if checkpoint is not None else None
    results: dict[int, ForkResult] = ckpt.load() if ckpt is not None else {}
    left = [i for i in range(len(runs)) if i not in results]
    if left:
        plugins = allowed_plugins()
        tasks = [(data, runs[i], float(horizon_s), plugins, what) for i in left]
        for k, res in executor.as_completed(run_fork, tasks):
            if ckpt is not None:
                ckpt.save(left[k], res)  # kept as it lands: a killed fork loses only the runs in flight
            results[left[k]] = res
    return [results[i] for i in range(len(runs))]


class _ForkCheckpoint:
    """Finished fork runs kept in a folder, keyed by the snapshot, the what-ifs and the horizon."""

    KIND = "fork result"

    def __init__(self, folder, data: bytes, runs: list[Variant], horizon_s: float) -> None:
        import hashlib
        import json

        from twin.results import package_version

        self.folder = Path(folder)
        self.key = json.loads(
            json.dumps(
                {
                    "kind": "fork results",
                    "snapshot_sha256": hashlib.sha256(data).hexdigest(),
                    "runs": [[v.name, json.dumps(v.interventions, sort_keys=True, default=str)] for v in runs],
                    "horizon_s": float(horizon_s),
                    "package_version": package_version(),
                }
            )
        )

    def load(self) -> dict[int, ForkResult]:
        import json
        import logging
        import shutil

        from twin.snapshot import SnapshotError, records_from_bytes

        if not self.folder.exists():
            return {}
        try:
            have = json.loads((self.folder / "key.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            have = None
        if not isinstance(have, dict) or have.get("kind") != self.key["kind"]:
            raise InputError(f"{str(self.folder)!r} exists and is not a fork checkpoint: move it away")
        if have != self.key:
            shutil.rmtree(self.folder, ignore_errors=True)
            return {}
        out: dict[int, ForkResult] = {}
        for i in range(len(self.key["runs"])):
            path = self.folder / f"run{i}.rep"
            if not path.exists():
                continue
            try:
                r = records_from_bytes(path.read_bytes(), kind=self.KIND, what=repr(str(path)))
                out[i] = ForkResult(
                    name=str(r["name"]),
                    kpis=dict(r["kpis"]),
                    wall_s=float(r["wall_s"]),
                    sim_from_s=float(r["sim_from_s"]),
                    sim_to_s=float(r["sim_to_s"]),
                )
            except (SnapshotError, OSError, KeyError, TypeError, ValueError) as exc:
                logging.getLogger(__name__).warning(
                    "fork checkpoint %s cannot be used (%s): it runs again", path.name, exc
                )
        return out

    def save(self, i: int, res: ForkResult) -> None:
        import json

        from basics.atomic import write_bytes
        from twin.snapshot import records_bytes

        if not self.folder.exists():
            self.folder.mkdir(parents=True)
            write_bytes(self.folder / "key.json", json.dumps(self.key, indent=1).encode("utf-8"))
        rec = {
            "name": res.name,
            "kpis": dict(res.kpis),
            "wall_s": res.wall_s,
            "sim_from_s": res.sim_from_s,
            "sim_to_s": res.sim_to_s,
        }
        write_bytes(self.folder / f"run{i}.rep", records_bytes(rec, kind=self.KIND), fsync=True)

    def discard(self) -> None:
        import shutil

        if (self.folder / "key.json").exists():
            shutil.rmtree(self.folder, ignore_errors=True)


def kpi_rows(results: list[ForkResult]) -> list[tuple[str, str, list[Any]]]:
    """(label, unit, values per variant) for a side-by-side table, horizon KPIs first."""
    from twin.results import kpi_labels

    labels = {**HORIZON_KPI_LABELS, **kpi_labels()}
    keys: list[str] = []
    for r in results:
        keys += [k for k in r.kpis if k not in keys]
    return [
        (labels.get(k, (k, ""))[0], labels.get(k, (k, ""))[1], [r.kpis.get(k, math.nan) for r in results]) for k in keys
    ]
