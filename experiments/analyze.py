"""Analysis of an experiment store, as :class:`xarray.Dataset` s (what ``twin experiment analyze`` shows).

:func:`analyze` returns a dict of Datasets:

- ``points``: every KPI's mean over the replications at each design point with its 95 %
  t-interval and the count of runs done (dims ``kpi``, ``point``; factor coordinates);
- ``main_effects`` (factorial designs): each factor level's mean over the other factors;
- ``sobol`` (Sobol designs): first-order and total indices with SALib's confidence
  half-widths (dims ``kpi``, ``factor``);
- ``morris`` (Morris designs): mu*, its confidence, mu and sigma (dims ``kpi``, ``factor``);
- ``history`` (optimisations): each trial's value, the best so far, the best trials with
  their intervals.

The indices are SALib's (``SALib.analyze.sobol``/``.morris``) on the replication means.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

import numpy as np
import xarray as xr

from experiments.store import DONE, open_results

__all__ = ["CONFIDENCE", "analyze", "kpi_names"]

CONFIDENCE = 0.95


def kpi_names(ds: xr.Dataset) -> list[str]:
    """The store's KPI variables (dims point, replication only), in name order."""
    return sorted(
        str(n) for n, v in ds.data_vars.items() if v.dims == ("point", "replication") and n not in ("status", "error")
    )


def _interval(values: np.ndarray) -> tuple[float, float, float, int]:
    from scipy import stats

    x = values[np.isfinite(values)]
    n = int(x.size)
    if n == 0:
        return math.nan, math.nan, math.nan, 0
    mean = float(x.mean())
    if n < 2:
        return mean, math.nan, math.nan, n
    half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1)) * float(x.std(ddof=1)) / math.sqrt(n)
    return mean, mean - half, mean + half, n


def _factor_coords(ds: xr.Dataset) -> dict[str, Any]:
    return {name: ("point", np.asarray(ds[name].values)) for name in ds.attrs["factors"]}


def _points(ds: xr.Dataset, kpis: list[str]) -> xr.Dataset:
    n_p = ds.sizes["point"]
    stats = np.full((4, len(kpis), n_p), np.nan)
    done = np.asarray(ds["status"].values) == DONE
    for k, name in enumerate(kpis):
        values = np.where(done, np.asarray(ds[name].values, dtype=np.float64), np.nan)
        for p in range(n_p):
            stats[:, k, p] = _interval(values[p])
    dims = ("kpi", "point")
    out = xr.Dataset(
        {
            "mean": (dims, stats[0], {"long_name": "mean over replications"}),
            "ci_low": (dims, stats[1], {"long_name": f"{CONFIDENCE:.0%} interval, low"}),
            "ci_high": (dims, stats[2], {"long_name": f"{CONFIDENCE:.0%} interval, high"}),
            "n": (dims, stats[3].astype(np.int64), {"long_name": "runs done"}),
        },
        coords={"kpi": kpis, "point": ds["point"].values, **_factor_coords(ds)},
    )
    out["kpi_label"] = ("kpi", [str(ds[k].attrs.get("long_name", k)) for k in kpis])
    out["kpi_units"] = ("kpi", [str(ds[k].attrs.get("units", "")) for k in kpis])
    return out


def _main_effects(points: xr.Dataset, factors: list[str]) -> xr.Dataset:
    out = xr.Dataset()
    for f in factors:
        grouped = points["mean"].groupby(points[f]).mean()
        out[f"effect_{f}"] = grouped.rename({f: f"level_{f}"})
    return out


def _problem(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "num_vars": len(spec["factors"]),
        "names": [f.get("name") or f["path"].split(".")[-1] for f in spec["factors"]],
        "bounds": [[float(f["range"][0]), float(f["range"][1])] for f in spec["factors"]],
    }


def _indices(ds: xr.Dataset, points: xr.Dataset, kpis: list[str], spec: dict[str, Any]) -> xr.Dataset:
    kind = spec["design"]["kind"]
    problem = _problem(spec)
    names = {"sobol": ("S1", "S1_conf", "ST", "ST_conf"), "morris": ("mu_star", "mu_star_conf", "mu", "sigma")}[kind]
    table = np.full((len(names), len(kpis), problem["num_vars"]), np.nan)
    x = np.column_stack([np.asarray(ds[f].values, dtype=np.float64) for f in ds.attrs["factors"]])
    for k, kpi in enumerate(kpis):
        y = np.asarray(points["mean"].sel(kpi=kpi).values, dtype=np.float64)
        if not np.isfinite(y).all():
            continue  # a failed point: SALib's estimators need every one
        if kind == "sobol":
            from SALib.analyze import sobol

            res = sobol.analyze(
                problem, y, calc_second_order=bool(spec["design"]["second_order"]), seed=int(spec.get("seed", 0))
            )
        else:
            from SALib.analyze import morris

            res = morris.analyze(problem, x, y, num_levels=int(spec["design"]["levels"]), seed=int(spec.get("seed", 0)))
        for i, name in enumerate(names):
            table[i, k] = np.asarray(res[name], dtype=np.float64)
    return xr.Dataset(
        {name: (("kpi", "factor"), table[i]) for i, name in enumerate(names)},
        coords={"kpi": kpis, "factor": problem["names"]},
        attrs={"method": f"SALib.analyze.{kind}", "confidence": CONFIDENCE},
    )


def _history(points: xr.Dataset, spec: dict[str, Any]) -> xr.Dataset:
    kpi = spec["design"]["kpi"]
    sign = 1.0 if spec["design"]["direction"] == "minimize" else -1.0
    if kpi not in points["kpi"].values:
        return xr.Dataset(attrs={"kpi": kpi, "note": "no trial finished"})
    row = points.sel(kpi=kpi)
    value = np.asarray(row["mean"].values, dtype=np.float64)
    score = np.where(np.isfinite(value), sign * value, np.inf)
    best_so_far = sign * np.minimum.accumulate(score)
    best_so_far[~np.isfinite(best_so_far)] = np.nan
    order = np.argsort(score, kind="stable")
    out = xr.Dataset(
        {
            "value": ("point", value, {"long_name": f"mean {kpi} over replications"}),
            "ci_low": ("point", row["ci_low"].values),
            "ci_high": ("point", row["ci_high"].values),
            "best_so_far": ("point", best_so_far),
            "rank": ("point", np.argsort(order).astype(np.int64), {"long_name": "0 = best trial"}),
        },
        coords={"point": points["point"].values, **{f: ("point", points[f].values) for f in spec_factor_names(spec)}},
        attrs={"kpi": kpi, "direction": spec["design"]["direction"], "best_point": int(order[0])},
    )
    return out


def spec_factor_names(spec: dict[str, Any]) -> list[str]:
    """Factor names of a stored spec (as the store names its coordinates)."""
    return [f.get("name") or f["path"].split(".")[-1] for f in spec["factors"]]


def analyze(store: str | os.PathLike[str] | xr.Dataset) -> dict[str, xr.Dataset]:
    """Analyse an experiment store (see the module docstring).

    Parameters
    ----------
    store : path or xarray.Dataset
        The store folder, or it opened with :func:`experiments.store.open_results`.

    Returns
    -------
    dict of str to xarray.Dataset
        ``points`` always; ``main_effects``, ``sobol``, ``morris`` or ``history`` by design.
    """
    ds = store if isinstance(store, xr.Dataset) else open_results(store)
    spec = json.loads(ds.attrs["experiment"])
    kpis = kpi_names(ds)
    points = _points(ds, kpis)
    out = {"points": points}
    kind = spec["design"]["kind"]
    status = np.asarray(ds["status"].values)
    summary = {"runs": int(status.size), "done": int((status == DONE).sum()), "failed": int((status == -1).sum())}
    points.attrs.update(
        {"design": kind, "name": ds.attrs.get("name", ""), "spec_hash": ds.attrs["spec_hash"], **summary}
    )
    if kind == "factorial":
        out["main_effects"] = _main_effects(points, list(ds.attrs["factors"]))
    elif kind in ("sobol", "morris"):
        out[kind] = _indices(ds, points, kpis, spec)
    elif kind == "optimize":
        out["history"] = _history(points, spec)
    return out
