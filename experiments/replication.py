"""One replication of a comparison: the task a worker runs, and what it sends back.

:func:`run_replication` builds and runs one :class:`~twin.model.Twin` (or equilibrates
it) and returns a compact, pickle-safe :class:`Replication`; :mod:`experiments.compare`
sends these tasks to an executor and assembles the results.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from basics.errors import InputError

__all__ = ["ComparisonError", "Replication", "run_replication"]

#: time series and per-trip variables a replication sends back
_SERIES = ("network_vehicles", "trips_arrived", "network_stranded")  # stranded: issue 16
_LINK = ("link_speed", "link_outflow")
_TRIP = "trip_travel_time_s"
#: dims of the geometry coordinates copied into comparison.nc
_GEOMETRY_DIMS = frozenset({"link", "node", "zone", "facility"})
#: dims of the geometry coordinates copied into comparison.nc
_GEOMETRY_DIMS = frozenset({"link", "node", "zone", "facility"})
#: labels of the KPIs an equilibrated replication adds
_EQ_LABELS = {
    "equilibrium_iterations": ("Days to equilibrium", ""),
    "equilibrium_relative_gap": ("Relative gap at equilibrium", ""),
}


class ComparisonError(InputError):
    """Two scenarios that cannot be compared, or a comparison asked for wrongly."""


@dataclass
class Replication:
    """What one run sends back to the comparison (pickle-safe, compact).

    Attributes
    ----------
    variant : str
        ``"baseline"`` or ``"scenario"``.
    index, seed : int
        Replication number and its seed.
    scenario_hash : str
        Hash of the re-validated scenario with this seed.
    kpis : dict
        The run's KPIs.
    data : xarray.Dataset
        ``link_speed``, ``link_outflow`` (time, link), ``network_vehicles``,
        ``trips_arrived`` (time), ``trip_travel_time_s`` (trip), with units.
    intervened : list of int
        Links named by a ``link_intervened`` result variable, if the run has one.
    wall_s : float
        Seconds the run took in its worker (building, simulating, extracting).
    labels : dict of str to (str, str)
        Label and unit of each KPI (so the caller need not import every component).
    geometry : xarray.Dataset or None
        The run's link/node/zone/facility coordinates (replication 0 only).
    run_files : dict of str to bytes, or None
        The run folder's files (replication 0 only).
    """

    variant: str
    index: int
    seed: int
    scenario_hash: str
    kpis: dict[str, float]
    data: xr.Dataset
    intervened: list[int] = field(default_factory=list)
    wall_s: float = 0.0
    labels: dict[str, tuple[str, str]] = field(default_factory=dict)
    geometry: xr.Dataset | None = None
    run_files: dict[str, bytes] | None = None
    day1_kpis: dict[str, float] | None = None


def _intervened_links(ds: xr.Dataset) -> list[int]:
    """Link indices a ``link_intervened`` variable marks (any non-zero over other dims)."""
    if "link_intervened" not in ds.variables:
        return []
    var = ds["link_intervened"]
    values = np.asarray(var.values)
    if "link" in var.dims:
        axes = tuple(i for i, d in enumerate(var.dims) if d != "link")
        marked = np.nan_to_num(values.astype(np.float64), nan=0.0) != 0
        if axes:
            marked = marked.any(axis=axes)
        return [int(i) for i in np.flatnonzero(marked)]
    flat = values.ravel()  # a list of link indices
    if flat.dtype.kind in "iu":
        return sorted({int(i) for i in flat if i >= 0})
    return []


def run_replication(
    scenario: Mapping[str, Any],
    seed: int,
    *,
    variant: str,
    index: int,
    expect_hash: str | None = None,
    keep_run: bool = False,
    response: str = "day1",
    iterations: int | None = None,
) -> Replication:
    """Run one replication in this process (the task a worker runs).

    Parameters
    ----------
    scenario : mapping
        The resolved scenario (:meth:`scenarios.Scenario.resolved`); validated again here.
    seed : int
        The replication's seed (replaces the scenario's).
    variant : str
        ``"baseline"`` or ``"scenario"`` (labels the result).
    index : int
        Replication number.
    expect_hash : str, optional
        The scenario hash (seed excluded) the caller computed; a mismatch (the worker sees
        other files than the caller) raises :class:`ComparisonError`.
    keep_run : bool, optional
        Also return the run folder's files and the geometry coordinates.
    response : {"day1", "equilibrium"}, optional
        ``equilibrium``: equilibrate the scenario (:func:`twin.equilibrium.equilibrate`,
        every day with this seed) and report its final day; its day 1 KPIs come back as
        ``day1_kpis``.
    iterations : int, optional
        Most days when equilibrating (default: the scenario's ``traffic.equilibrium``).

    Returns
    -------
    Replication
    """
    t0 = time.perf_counter()  # imports count: a fresh worker pays them once
    from scenarios import load_scenario, scenario_hash
    from twin.model import Twin
    from twin.results import kpi_labels

    sc = load_scenario(dict(scenario))
    got = scenario_hash(sc, include_seed=False)
    if expect_hash is not None and got != expect_hash:
        raise ComparisonError(
            f"the {variant} scenario {sc.name!r} differs on the worker (hash {got}, expected "
            f"{expect_hash}): its input files, or the project's code, are not the same there"
        )
    eq = None
    if response == "equilibrium":
        from twin.equilibrium import equilibrate

        eq = equilibrate(sc, seed=int(seed), iterations=iterations)
        tw = eq.twin
    else:
        tw = Twin(sc, seed=int(seed))
        tw.run()
    ds = tw.results()
    data = xr.Dataset(
        {name: ds[name].variable for name in (*_LINK, *_SERIES, _TRIP)},
        coords={"time": ds["time"].variable, "clock": ds["clock"].variable, "trip": ds["trip"].variable},
    )
    rep = Replication(
        variant=variant,
        index=int(index),
        seed=int(seed),
        scenario_hash=tw.scenario_hash,
        kpis={k: float(v) for k, v in tw.kpis().items()},
        data=data.load(),
        intervened=_intervened_links(ds),
    )
    if eq is not None:
        rep.kpis.update({"equilibrium_iterations": float(eq.iterations), "equilibrium_relative_gap": eq.final_gap})
        rep.day1_kpis = {k: float(v) for k, v in eq.day1_kpis.items()}
    rep.labels = {k: (v[0], v[1]) for k, v in {**kpi_labels(), **_EQ_LABELS}.items() if k in rep.kpis}
    if keep_run:
        _keep_run(rep, tw, ds)
    rep.wall_s = time.perf_counter() - t0
    return rep


def _keep_run(rep: Replication, twin: Any, ds: xr.Dataset) -> None:
    """Give ``rep`` the run's geometry coordinates and its run folder's files (written to a
    scratch folder and read back).
    """
    rep.geometry = xr.Dataset(
        coords={name: c.variable for name, c in ds.coords.items() if c.dims and set(c.dims) <= _GEOMETRY_DIMS}
    )
    with tempfile.TemporaryDirectory(prefix="twin-rep-") as tmp:
        folder = twin.save(Path(tmp) / "run")
        rep.run_files = {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}
