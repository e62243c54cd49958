"""The Zarr store of an experiment: dims ``point`` x ``replication``, written as each run ends.

Layout (Zarr format 3, read with :func:`open_results` or ``xarray.open_zarr(STORE,
consolidated=False)``):

- coordinates ``point``, ``replication``, ``seed`` (replication) and one per factor along
  ``point`` (its value at each design point);
- ``status`` (point, replication): 0 not run, 1 done, -1 failed; ``error``: the failure's
  message (empty otherwise);
- one variable per KPI (point, replication), created when the first run reports it, with
  ``long_name`` and ``units``; each ``outputs.series`` variable as (point, replication,
  its own dims), with its own coordinates (``time`` ...);
- attrs: ``experiment`` (the spec as JSON), ``spec_hash``, ``design``, ``factors``.

A run's values are written before its ``status``, and Zarr writes each chunk file
atomically, so a process killed at any moment leaves finished runs intact and the run in
flight marked "not run": running again redoes only that one.  Nothing here unpickles.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from experiments.spec import ExperimentError

if TYPE_CHECKING:
    import xarray as xr

    from experiments.spec import ExperimentSpec

__all__ = ["DONE", "FAILED", "PENDING", "ExperimentStore", "open_results"]

PENDING, DONE, FAILED = 0, 1, -1


def _rows(n_p: int, n_r: int) -> int:
    """Points per chunk of the (point, replication) arrays: about 1,024 runs a chunk."""
    return max(1, min(n_p, 1024 // max(n_r, 1)))


_RESERVED = {"point", "replication", "seed", "status", "error"}


def _factor_dtype(spec: ExperimentSpec, name: str) -> Any:
    """i8 for whole numbers (levels, choices or an integer range), f8 for other numbers, else str."""
    f = next(f for f in spec.factors if f.name == name)
    if f.kind == "range":
        return "i8" if f.integer else "f8"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in f.values):
        return "i8"
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in f.values):
        return "f8"
    return str


class ExperimentStore:
    """Read and write one experiment's Zarr store (single writer: the process running it).

    Parameters
    ----------
    path : path
        The store folder.
    spec : ExperimentSpec
        The experiment; an existing store must hold the same one (same hash).
    points : list of dict
        The design's points (factor name -> value; empty dicts for an optimisation).
    seeds : list of int
        One seed per replication.
    overwrite : bool, optional
        Replace a store of another experiment instead of refusing.
    """

    #: the open Zarr group (typed loosely: zarr's indexing returns arrays or groups)
    group: Any

    def __init__(
        self,
        path: str | os.PathLike[str],
        spec: ExperimentSpec,
        points: list[dict[str, Any]],
        seeds: list[int],
        *,
        overwrite: bool = False,
    ) -> None:
        import zarr

        self.path = Path(path)
        self.spec = spec
        if (self.path / "zarr.json").exists():
            group = zarr.open_group(str(self.path), mode="r+")
            found = group.attrs.get("spec_hash")
            if found != spec.hash and not overwrite:
                raise ExperimentError(
                    f"--out {self.path} holds another experiment (spec hash {found}, this one {spec.hash}): "
                    "give another --out, or --overwrite to replace it"
                )
            if found == spec.hash:
                self.group = group
                return
            shutil.rmtree(self.path)
        elif self.path.exists() and any(self.path.iterdir()):
            raise ExperimentError(f"--out {self.path} exists and is not an experiment store")
        self.group = self._create(points, seeds)

    def _create(self, points: list[dict[str, Any]], seeds: list[int]) -> Any:
        import zarr

        spec = self.spec
        n_p, n_r = len(points), len(seeds)
        g = zarr.open_group(str(self.path), mode="w", zarr_format=3)
        g.attrs.update(
            {
                "experiment": json.dumps(spec.raw, sort_keys=True, default=str),
                "spec_hash": spec.hash,
                "name": spec.name,
                "design": spec.design["kind"],
                "factors": [f.name for f in spec.factors],
                "factor_paths": [f.path for f in spec.factors],
                "replications": n_r,
                "seed": spec.seed,
            }
        )
        g.create_array("point", shape=(n_p,), dtype="i8", dimension_names=["point"])[:] = np.arange(n_p)
        g.create_array("replication", shape=(n_r,), dtype="i8", dimension_names=["replication"])[:] = np.arange(n_r)
        seed = g.create_array(
            "seed",
            shape=(n_r,),
            dtype="i8",
            dimension_names=["replication"],
            attributes={"long_name": "seed of the replication (the same at every point)"},
        )
        seed[:] = np.asarray(seeds, dtype=np.int64)
        for f in spec.factors:
            dtype = _factor_dtype(spec, f.name)
            fill = "" if dtype is str else (np.nan if dtype == "f8" else -1)
            arr = g.create_array(
                f.name,
                shape=(n_p,),
                dtype=dtype,
                fill_value=fill,
                dimension_names=["point"],
                attributes={"long_name": f"factor {f.name}", "path": f.path},
            )
            if points and points[0]:
                arr[:] = np.asarray([p[f.name] for p in points], dtype=object if dtype is str else dtype)
        g.create_array(
            "status",
            shape=(n_p, n_r),
            chunks=(_rows(n_p, n_r), n_r),
            dtype="i1",
            fill_value=PENDING,
            dimension_names=["point", "replication"],
            attributes={"long_name": "run status", "flag_values": [-1, 0, 1], "flag_meanings": "failed not_run done"},
        )
        g.create_array(
            "error",
            shape=(n_p, n_r),
            chunks=(_rows(n_p, n_r), n_r),
            dtype=str,
            fill_value="",
            dimension_names=["point", "replication"],
            attributes={"long_name": "error of a failed run"},
        )
        self._mark_coords(g)
        return g

    @staticmethod
    def _mark_coords(g: Any) -> None:
        """Tell xarray which arrays are coordinates (the factors and the seed)."""
        coords = ["seed", *[name for name in g.attrs["factors"]]]
        for name in ("status", "error"):
            g[name].attrs["coordinates"] = " ".join(coords)

    # ------------------------------------------------------------------ state
    @property
    def status(self) -> np.ndarray:
        """(point, replication) status codes."""
        return np.asarray(self.group["status"][:])

    @property
    def seeds(self) -> list[int]:
        """The replications' seeds."""
        return [int(s) for s in self.group["seed"][:]]

    def factor_values(self, point: int) -> dict[str, Any]:
        """The factor values of one point as stored (Python scalars)."""
        out = {}
        for f in self.spec.factors:
            v = self.group[f.name][point]
            out[f.name] = v.item() if hasattr(v, "item") else v
        return out

    def all_factor_values(self) -> list[dict[str, Any]]:
        """Every point's factor values (one read per factor)."""
        columns = {f.name: self.group[f.name][:].tolist() for f in self.spec.factors}
        n_p = self.group["status"].shape[0]
        return [{name: col[p] for name, col in columns.items()} for p in range(n_p)]

    def set_point(self, point: int, values: dict[str, Any]) -> None:
        """Write a point's factor values (an optimisation's trial, once asked)."""
        for name, v in values.items():
            self.group[name][point] = v

    # ------------------------------------------------------------------ writing a run
    def _ensure(self, name: str, shape: tuple[int, ...], dims: tuple[str, ...], attrs: dict[str, Any]) -> Any:
        g = self.group
        if name in g:
            return g[name]
        if name in _RESERVED or name in {f.name for f in self.spec.factors}:
            raise ExperimentError(f"a result variable is called {name!r}, a name the store keeps for itself")
        n_p, n_r = g["status"].shape
        chunks = (_rows(n_p, n_r), n_r) if not shape else (1, 1, *shape)
        arr = g.create_array(
            name,
            shape=(n_p, n_r, *shape),
            chunks=chunks,
            dtype="f8",
            fill_value=np.nan,
            dimension_names=["point", "replication", *dims],
            attributes=attrs,
        )
        return arr

    def _ensure_coord(self, dim: str, values: np.ndarray, attrs: dict[str, Any]) -> None:
        if dim in self.group:
            return
        values = np.asarray(values)
        dtype = str if values.dtype.kind in "OUT" else values.dtype
        arr = self.group.create_array(dim, shape=values.shape, dtype=dtype, dimension_names=[dim], attributes=attrs)
        arr[:] = values

    def write_run(self, point: int, rep: int, result: dict[str, Any], labels: dict[str, Any] | None = None) -> None:
        """Write one run's KPIs and series, then its status (done, or failed with its error)."""
        self.write_runs([result], labels)

    def write_runs(self, results: list[dict[str, Any]], labels: dict[str, Any] | None = None) -> None:
        """Write finished runs (``point``, ``rep``, ``kpis``, ``series``/``coords`` or ``error``).

        The values go first (one write per variable), the statuses last, so a process killed
        in between leaves those runs "not run".
        """
        labels = labels or {}
        ok = [r for r in results if not r.get("error")]
        bad = [r for r in results if r.get("error")]
        if bad:
            idx = (np.array([r["point"] for r in bad]), np.array([r["rep"] for r in bad]))
            self.group["error"].vindex[idx] = np.array([str(r["error"])[:2000] for r in bad], dtype=object)
        kpis: dict[str, list[tuple[int, int, float]]] = {}
        for r in ok:
            for key, value in r["kpis"].items():
                kpis.setdefault(key, []).append((r["point"], r["rep"], float(value)))
            self._write_series(r)
        for key in sorted(kpis):
            label, units = labels.get(key, (key, ""))
            arr = self._ensure(key, (), (), {"long_name": label, "units": units})
            rows = kpis[key]
            arr.vindex[(np.array([x[0] for x in rows]), np.array([x[1] for x in rows]))] = np.array(
                [x[2] for x in rows]
            )
        if results:
            codes = np.array([FAILED if r.get("error") else DONE for r in results], dtype=np.int8)
            idx = (np.array([r["point"] for r in results]), np.array([r["rep"] for r in results]))
            self.group["status"].vindex[idx] = codes

    def _write_series(self, result: dict[str, Any]) -> None:
        for name, (dims, values, attrs) in sorted(result.get("series", {}).items()):
            for dim, (cvals, cattrs) in result.get("coords", {}).items():
                if dim in dims:
                    self._ensure_coord(dim, cvals, cattrs)
            values = np.asarray(values, dtype=np.float64)
            self._ensure(name, values.shape, tuple(dims), attrs)[result["point"], result["rep"]] = values


def open_results(path: str | os.PathLike[str]) -> xr.Dataset:
    """An experiment store as an :class:`xarray.Dataset` (loaded in memory).

    Raises
    ------
    ExperimentError
        The folder is not an experiment store.
    """
    import xarray as xr

    path = Path(path)
    if not (path / "zarr.json").exists():
        raise ExperimentError(f"{path} is not an experiment store (no zarr.json): run `twin experiment run` first")
    ds = xr.open_zarr(str(path), consolidated=False, chunks=None)
    if "spec_hash" not in ds.attrs:
        raise ExperimentError(f"{path} is a Zarr store, but not an experiment's")
    return ds.load()
