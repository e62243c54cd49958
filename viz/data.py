"""Reading run and comparison folders for reports and scenes.

``viz`` never runs a simulation: everything here reads what ``twin run``
(a *run folder*: ``results.nc``, ``summary.json``, ``scenario.yaml``) or
``twin compare`` (a *comparison folder*: ``comparison.nc``, ``summary.json``)
wrote, checks that what a figure needs is there, and derives the few series
the figures share (network speed, clock labels, incidents active at a time,
intervened links).

Bad input raises :class:`basics.errors.InputError` naming the folder, file,
variable or time that is wrong.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TypeGuard

import numpy as np
import xarray as xr

from basics.clock import DAY_S, format_clock, parse_clock
from basics.errors import InputError

__all__ = [
    "Results",
    "open_results",
    "fmt_value",
    "is_finite_number",
    "clock_label",
    "time_index",
    "network_speed_kmh",
    "intervened_mask",
    "incidents_at",
    "sites",
    "node_xy",
    "node_index",
    "link_ends",
    "kpi_label",
    "link_offsets",
    "open_equilibrium",
]

log = logging.getLogger(__name__)

#: variables every run folder's results.nc must have for reports and scenes
RUN_REQUIRED = ("link_speed", "link_x0", "link_y0", "link_x1", "link_y1", "link_length_m")
#: variables every comparison.nc must have
COMPARISON_REQUIRED = ("link_speed", "link_x0", "link_y0", "link_x1", "link_y1", "link_length_m")


@dataclass
class Results:
    """A run or comparison folder, read into memory.

    Attributes
    ----------
    kind
        ``"run"`` or ``"comparison"``.
    path
        The folder.
    ds
        The Dataset (``results.nc`` or ``comparison.nc``), loaded and closed.
    summary
        ``summary.json`` (empty for a run folder that has none).
    """

    kind: str
    path: Path
    ds: xr.Dataset
    summary: dict = field(default_factory=dict)
    _variants: dict[str, Results] = field(default_factory=dict, init=False, repr=False, compare=False)

    def variant(self, name: str) -> Results:
        """A comparison folder's kept run folder ``name`` (``baseline`` or ``scenario``), read
        once for all the sections that use it (:func:`open_results`; its errors are raised each call).
        """
        if name not in self._variants:
            self._variants[name] = open_results(self.path / name)
        return self._variants[name]

    @cached_property
    def scenario_doc(self) -> dict:
        """The folder's resolved ``scenario.yaml``, read once (empty when absent or unreadable)."""
        import yaml

        path = self.path / "scenario.yaml"
        try:
            doc = yaml.safe_load(path.read_text()) if path.is_file() else {}
        except (OSError, yaml.YAMLError) as exc:
            log.info("scenario.yaml not read: %s", exc)
            return {}
        return doc if isinstance(doc, dict) else {}

    @property
    def name(self) -> str:
        """Scenario name (run) or ``"scenario vs baseline"`` (comparison)."""
        if self.kind == "comparison":
            return f"{self.summary.get('scenario', 'scenario')} vs {self.summary.get('baseline', 'baseline')}"
        return str(self.ds.attrs.get("scenario_name", self.summary.get("scenario", self.path.name)))

    @property
    def start_clock_s(self) -> float:
        """Clock seconds of day at t = 0: the ``start_clock_s`` attribute, else read off the
        ``clock`` coordinate (``HH:MM:SS`` at each output time), else 0 (midnight).
        """
        value = self.ds.attrs.get("start_clock_s", self.summary.get("start_clock_s"))
        if value is not None:
            try:
                return float(value)
            except (TypeError, ValueError):
                pass
        if "clock" in self.ds.coords and self.ds.sizes.get("time", 0) > 0:
            try:
                first = parse_clock(str(self.ds["clock"].values[0]).strip())
            except ValueError:
                return 0.0
            return float((first - float(self.ds["time"].values[0])) % DAY_S)
        return 0.0

    @property
    def times(self) -> np.ndarray:
        """Output times (end of each interval, s since the start)."""
        if "time" not in self.ds.coords:
            return np.zeros(0)
        return np.asarray(self.ds["time"].values, dtype=np.float64)

    def clock_labels(self) -> list[str]:
        """``HH:MM`` at the end of each output interval."""
        return [clock_label(self.start_clock_s + t) for t in self.times]

    @property
    def kpi_labels(self) -> dict[str, tuple[str, str]]:
        """``{key: (label, unit)}`` of the KPIs, as the writer put them in the folder.

        Read from ``summary.json`` (``kpi_labels``), else from the Dataset's ``labels``
        attribute (JSON text); empty for folders written before labels were stored
        (then :func:`kpi_label` falls back to the key itself).
        """
        table = self.summary.get("kpi_labels")
        if not isinstance(table, dict):
            try:
                table = json.loads(str(self.ds.attrs.get("labels", "{}")))
            except ValueError:
                table = {}
        if not isinstance(table, dict):
            return {}
        out = {}
        for key, value in table.items():
            if isinstance(value, (list, tuple)) and len(value) == 2:
                out[str(key)] = (str(value[0]), str(value[1]))
        return out


def _read_json(path: Path) -> dict:
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from exc
    if not isinstance(doc, dict):
        raise InputError(f"{path}: expected a JSON object at the top level")
    return doc


def _open_nc(path: Path) -> xr.Dataset:
    try:
        with xr.open_dataset(path, engine="h5netcdf") as ds:
            return ds.load()
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot be read as a NetCDF results file ({exc})") from exc


def _check_vars(ds: xr.Dataset, names, where: Path) -> None:
    missing = [n for n in names if n not in ds.variables]
    if missing:
        raise InputError(
            f"{where}: missing {', '.join(repr(m) for m in missing)}; was it written by this version "
            "of `twin run` / `twin compare`?"
        )


def open_results(path: str | Path) -> Results:
    """Read a run folder or a comparison folder.

    Parameters
    ----------
    path
        The folder (or its ``results.nc`` / ``comparison.nc`` file).

    Raises
    ------
    InputError
        The folder does not exist, holds neither ``results.nc`` nor
        ``comparison.nc``, or a file is unreadable or lacks what reports need.
    """
    p = Path(path)
    if p.is_file() and p.name in ("results.nc", "comparison.nc"):
        p = p.parent
    if not p.exists():
        raise InputError(f"results folder {str(p)!r} not found")
    if not p.is_dir():
        raise InputError(
            f"{str(p)!r} is a file; give a run folder (with results.nc, from `twin run`) "
            "or a comparison folder (with comparison.nc, from `twin compare`)"
        )
    summary_path = p / "summary.json"
    summary = _read_json(summary_path) if summary_path.is_file() else {}
    if (p / "comparison.nc").is_file() or summary.get("kind") == "comparison":
        nc = p / "comparison.nc"
        if not nc.is_file():
            raise InputError(f"comparison folder {str(p)!r} has summary.json but no comparison.nc")
        if not summary_path.is_file():
            raise InputError(f"comparison folder {str(p)!r} has comparison.nc but no summary.json (the KPI table)")
        ds = _open_nc(nc)
        _check_vars(ds, COMPARISON_REQUIRED, nc)
        if "variant" not in ds.dims:
            raise InputError(f"{nc}: no 'variant' dimension (expected variants 'baseline' and 'scenario')")
        variants = [str(v) for v in ds["variant"].values]
        if "baseline" not in variants or "scenario" not in variants:
            raise InputError(f"{nc}: variant must hold 'baseline' and 'scenario', found {variants}")
        if not isinstance(summary.get("kpis", []), list):
            raise InputError(f"{summary_path}: 'kpis' must be a list of rows (key, label, unit, baseline, ...)")
        return Results("comparison", p, ds, summary)
    nc = p / "results.nc"
    if not nc.is_file():
        raise InputError(
            f"folder {str(p)!r} has no results.nc (a run folder from `twin run`) "
            "nor comparison.nc (a comparison folder from `twin compare`)"
        )
    ds = _open_nc(nc)
    _check_vars(ds, RUN_REQUIRED, nc)
    return Results("run", p, ds, summary)


# -- formatting -----------------------------------------------------------------


def is_finite_number(value: object) -> TypeGuard[float]:
    """True for a finite Python or numpy int or float (bools count, as ``isinstance`` has them)."""
    return isinstance(value, (int, float)) and bool(np.isfinite(value))


def fmt_value(value) -> str:
    """A KPI value as the CLI's tables show it (``–`` for missing)."""
    if value is None:
        return "–"
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (np.integer,)):
        value = int(value)
    if isinstance(value, (np.floating,)):
        value = float(value)
    if not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, float) and math.isnan(value):
        return "–"
    if isinstance(value, float) and math.isinf(value):
        return "∞" if value > 0 else "−∞"
    if isinstance(value, int) or float(value).is_integer() and abs(value) > 100:
        return f"{value:,.0f}"
    return f"{value:,.1f}" if abs(value) >= 10 else f"{value:,.2f}"


def clock_label(seconds: float) -> str:
    """``HH:MM`` of a clock time in seconds (wrapping at midnight; :func:`basics.clock.format_clock`)."""
    return format_clock(seconds)


def kpi_label(key: str, labels: Mapping[str, Sequence[str]] | None = None) -> tuple[str, str]:
    """Label and unit of a KPI key.

    Parameters
    ----------
    key : str
        The KPI's key (``"mean_travel_time_s"``).
    labels : mapping, optional
        ``{key: (label, unit)}`` as a results folder carries it (:attr:`Results.kpi_labels`,
        or ``summary.json``'s ``kpi_labels``).

    Returns
    -------
    tuple of str
        ``(label, unit)``; the key with spaces for underscores and no unit when the
        folder has no label for it (folders written before labels were stored).
    """
    entry = (labels or {}).get(key)
    if entry is not None and len(entry) == 2:
        return str(entry[0]), str(entry[1])
    return key.replace("_", " "), ""


# -- time -----------------------------------------------------------------------


def parse_time(text: str | float, *, start_clock_s: float) -> float:
    """Seconds since the start for ``"HH:MM[:SS]"`` (clock time) or a number of seconds."""
    if isinstance(text, (int, float)):
        return float(text)
    s = str(text).strip()
    if ":" in s:
        try:
            clock = parse_clock(s)
        except ValueError:
            raise InputError(f"time {s!r}: not a clock time (HH:MM or HH:MM:SS)") from None
        return (clock - start_clock_s) % DAY_S
    try:
        value = float(s)
    except ValueError:
        raise InputError(
            f"time {s!r}: give a clock time HH:MM (e.g. 08:15) or seconds since the start (e.g. 4500)"
        ) from None
    if not math.isfinite(value) or value < 0:
        raise InputError(f"time {s!r}: seconds since the start must be a finite number >= 0")
    return value


def time_index(res: Results, when: str | float | None) -> int:
    """Index of the output interval that holds time ``when``.

    ``None`` picks the busiest interval (most vehicles on the network; the
    middle one if that series is absent).  A clock time ``HH:MM`` is read on
    the run's clock; a plain number is seconds since the start.  Output times
    mark the *end* of each interval, so ``08:00`` on a run from 07:00 with
    5-minute intervals is the interval 07:55-08:00.
    """
    times = res.times
    if times.size == 0:
        raise InputError(f"{res.path}: the results have no output intervals (time dimension is empty)")
    if when is None:
        if "network_vehicles" in res.ds:
            nv = res.ds["network_vehicles"]
            extra = [d for d in nv.dims if d != "time"]
            series = np.asarray(nv.mean(extra).values if extra else nv.values, dtype=np.float64)
            if series.size == times.size and np.isfinite(series).any():
                return int(np.nanargmax(series))
        return times.size // 2
    t = parse_time(when, start_clock_s=res.start_clock_s)
    if t > times[-1] + 1e-9:
        first, last = clock_label(res.start_clock_s), clock_label(res.start_clock_s + times[-1])
        raise InputError(
            f"time {str(when)!r} is outside the results: they cover {first}-{last} "
            f"(0-{times[-1]:.0f} s since the start)"
        )
    return int(np.searchsorted(times, t - 1e-9, side="left"))


# -- derived series -------------------------------------------------------------


def _interval_lengths(times: np.ndarray) -> np.ndarray:
    return np.diff(np.concatenate([[0.0], times]))


def network_speed_kmh(ds: xr.Dataset, times: np.ndarray | None = None) -> np.ndarray:
    """Network speed per output interval, km/h: vehicle-km over vehicle-hours on the links.

    With ``link_vehicles`` (a run) this is the KPI's definition, per interval:
    ``sum(outflow * length) / sum(vehicles * interval)``.  Without it (a
    comparison), each link's vehicle-hours are ``outflow * length / speed``
    (a distance-weighted harmonic mean of link speeds).  Extra leading dims
    (``variant``, ``replication``) are kept; the result's last axis is time.
    NaN where no vehicle finished a link in the interval.
    """
    L = np.asarray(ds["link_length_m"].values, dtype=np.float64)
    speed = ds["link_speed"].transpose(..., "time", "link").values.astype(np.float64)
    if "link_outflow" in ds:
        flow = ds["link_outflow"].transpose(..., "time", "link").values.astype(np.float64)
    else:  # no flows: every link counts once per interval
        flow = np.ones_like(speed)
    km = (flow * L).sum(-1) / 1000.0
    if "link_vehicles" in ds and times is not None:
        veh = ds["link_vehicles"].transpose(..., "time", "link").values.astype(np.float64)
        hours = veh.sum(-1) * _interval_lengths(times) / 3600.0
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            hours = np.where(speed > 0, flow * L / speed, 0.0).sum(-1) / 3600.0
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(hours > 0, km / hours, np.nan)


def intervened_mask(res: Results) -> np.ndarray:
    """Boolean per link: the links an intervention changed (all False when none are recorded).

    Read from a link variable whose name contains ``intervened`` (e.g.
    ``link_intervened``) and, for comparisons, ``summary.json``'s
    ``intervened_links`` (link indices).
    """
    ds = res.ds
    n = ds.sizes["link"]
    mask = np.zeros(n, dtype=bool)
    for name in list(ds.data_vars) + list(ds.coords):
        var = ds[name]
        if "intervened" in str(name) and var.dims and var.dims[-1] == "link":
            flag = np.nan_to_num(np.asarray(var.values).astype(np.float64)) != 0
            mask |= flag.reshape(-1, n).any(axis=0)
    listed = res.summary.get("intervened_links") or []
    if listed:
        link_ids = np.asarray(ds["link"].values)
        pos = {int(v): i for i, v in enumerate(link_ids)}
        for item in listed:
            idx = item.get("link") if isinstance(item, dict) else item
            try:
                if idx is None:
                    raise TypeError("no link index")
                i = pos.get(int(idx))
            except (TypeError, ValueError):
                log.warning("intervened_links entry %r is not a link index; ignored", item)
                continue
            if i is None:
                log.warning("intervened link %r is not in the results' links; ignored", idx)
            else:
                mask[i] = True
    return mask


def _first(ds: xr.Dataset, dim: str, *names: str):
    for n in names:
        if n in ds.variables and ds[n].dims == (dim,):
            return np.asarray(ds[n].values)
    return None


def node_index(ds: xr.Dataset) -> dict[int, int]:
    """Node source id (``node_osmid``, as ``link_src`` holds them) -> node index."""
    return {int(v): i for i, v in enumerate(np.asarray(ds["node_osmid"].values, np.int64))}


def link_ends(ds: xr.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Each link's source and destination node as node indices (see :func:`node_index`)."""
    pos = node_index(ds)
    a = np.array([pos[int(v)] for v in np.asarray(ds["link_src"].values, np.int64)], np.int64)
    b = np.array([pos[int(v)] for v in np.asarray(ds["link_dst"].values, np.int64)], np.int64)
    return a, b


def node_xy(ds: xr.Dataset, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions of nodes named by their *source* ids (as ``link_src`` holds them); NaN if unknown.

    Uses a ``node_osmid`` coordinate when the results have one, else the ids
    and end points of the links.  Ids not found but within ``0..n_nodes-1``
    are read as node indices.
    """
    ids = np.asarray(ids, dtype=np.int64)
    x = np.full(ids.shape, np.nan)
    y = np.full(ids.shape, np.nan)
    if "node_osmid" in ds and "node_x" in ds:
        known = dict(
            zip(
                np.asarray(ds["node_osmid"].values, np.int64).tolist(),
                zip(ds["node_x"].values.tolist(), ds["node_y"].values.tolist(), strict=False),
                strict=False,
            )
        )
    else:
        known = {}
        if "link_src" in ds and "link_dst" in ds:
            for ids_, xs, ys in (("link_src", "link_x0", "link_y0"), ("link_dst", "link_x1", "link_y1")):
                known.update(
                    zip(
                        np.asarray(ds[ids_].values, np.int64).tolist(),
                        zip(ds[xs].values.tolist(), ds[ys].values.tolist(), strict=False),
                        strict=False,
                    )
                )
    nn = ds.sizes.get("node", 0)
    for i, v in enumerate(ids.tolist()):
        if v in known:
            x[i], y[i] = known[v]
        elif 0 <= v < nn and "node_x" in ds:
            x[i], y[i] = float(ds["node_x"].values[v]), float(ds["node_y"].values[v])
    return x, y


@dataclass
class Incidents:
    """Incidents to draw: position, kind and whether each is active at the chosen time."""

    x: np.ndarray
    y: np.ndarray
    kind: np.ndarray
    active: np.ndarray


def _incident_window(ds: xr.Dataset) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(start, end) seconds of each incident; end NaN while it is still open."""
    if "incident_time" in ds and ds["incident_time"].dims == ("incident", "stage") and "stage" in ds.coords:
        stages = [str(v) for v in ds["stage"].values]
        times = np.asarray(ds["incident_time"].values, dtype=np.float64)
        start = times[:, stages.index("occurred")] if "occurred" in stages else times[:, 0]
        ends = [times[:, stages.index(n)] for n in ("cleared", "road_cleared") if n in stages]
        if ends:
            stack = np.stack(ends, -1)
            end = np.where(
                np.isfinite(stack).any(-1), np.nanmax(np.where(np.isfinite(stack), stack, -np.inf), -1), np.nan
            )
        else:
            end = None
        return start, end
    t0 = _first(ds, "incident", "incident_start_s", "incident_time_s", "incident_t0")
    t1 = _first(ds, "incident", "incident_end_s", "incident_cleared_s", "incident_t1")
    return (None if t0 is None else t0.astype(np.float64)), (None if t1 is None else t1.astype(np.float64))


def incidents_at(res: Results, t: float | None = None) -> Incidents | None:
    """The run's incidents (``incident`` dim), if any, with those active at ``t`` flagged.

    Position from ``incident_x``/``incident_y``, else ``incident_node`` (a
    node's source id, see :func:`node_xy`).  Active from the ``occurred``
    stage of ``incident_time(incident, stage)`` to the later of ``cleared``
    and ``road_cleared`` (or ``incident_start_s`` to ``incident_end_s``);
    without times every incident counts as active.  ``t=None``: all of them.
    Returns ``None`` when the results have no incidents or no way to place them.
    """
    ds = res.ds
    if "incident" not in ds.dims or ds.sizes["incident"] == 0:
        return None
    x = _first(ds, "incident", "incident_x")
    y = _first(ds, "incident", "incident_y")
    if x is None or y is None:
        node = _first(ds, "incident", "incident_node")
        if node is None:
            log.warning("incidents have neither incident_x/incident_y nor incident_node; not drawn")
            return None
        x, y = node_xy(ds, node)
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    kind = _first(ds, "incident", "incident_kind", "incident_type")
    kind = np.asarray(kind, dtype=str) if kind is not None else np.full(x.shape, "incident")
    active = np.isfinite(x) & np.isfinite(y)
    t0, t1 = _incident_window(ds)
    if t is not None and t0 is not None:
        active &= np.isfinite(t0) & (t0 <= t)
        if t1 is not None:
            active &= ~(np.isfinite(t1) & (t1 < t))
    return Incidents(x=x, y=y, kind=kind, active=active)


#: station kinds of the emergency component -> facility kinds of the city
_STATION_KIND = {"fire": "fire_station", "ems": "ems_station", "police": "police_station", "tow": "tow_depot"}


@dataclass
class Sites:
    """Stations and other facilities to draw: position, kind (``fire_station``, ``hospital``, ...), in service."""

    x: np.ndarray
    y: np.ndarray
    kind: np.ndarray
    in_service: np.ndarray


def sites(res: Results) -> Sites | None:
    """Facilities and emergency stations of the results, or ``None`` when there are none.

    With a ``station`` dim (the emergency component), stations come from it
    (so added and closed ones show, ``station_in_service_end`` telling which
    are in service) and facilities add the rest (hospitals, ...); otherwise
    the city's ``facility`` coordinates are used as they are.
    """
    ds = res.ds
    xs, ys, kinds, ok = [], [], [], []
    has_stations = "station" in ds.dims and ds.sizes["station"] > 0 and "station_node" in ds
    if has_stations:
        x, y = node_xy(ds, ds["station_node"].values)
        kind = (
            [_STATION_KIND.get(k, f"{k}_station") for k in np.asarray(ds["station_kind"].values, dtype=str)]
            if "station_kind" in ds
            else ["station"] * x.size
        )
        serv = (
            np.asarray(ds["station_in_service_end"].values, dtype=bool)
            if "station_in_service_end" in ds
            else np.ones(x.size, bool)
        )
        xs.append(x)
        ys.append(y)
        kinds += kind
        ok.append(serv)
    if "facility" in ds.dims and "facility_x" in ds and ds.sizes["facility"] > 0:
        fk = (
            np.asarray(ds["facility_kind"].values, dtype=str)
            if "facility_kind" in ds
            else np.full(ds.sizes["facility"], "facility")
        )
        keep = np.array(
            [not (has_stations and (k.endswith("_station") or k in _STATION_KIND.values())) for k in fk], dtype=bool
        )
        xs.append(np.asarray(ds["facility_x"].values, np.float64)[keep])
        ys.append(np.asarray(ds["facility_y"].values, np.float64)[keep])
        kinds += list(fk[keep])
        ok.append(np.ones(int(keep.sum()), bool))
    if not kinds:
        return None
    x, y = np.concatenate(xs), np.concatenate(ys)
    good = np.isfinite(x) & np.isfinite(y)
    return Sites(x=x[good], y=y[good], kind=np.asarray(kinds, dtype=str)[good], in_service=np.concatenate(ok)[good])


def link_offsets(ds: xr.Dataset, offset_m: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Link end points moved ``offset_m`` to the right of travel, so both directions show."""
    x0 = np.asarray(ds["link_x0"].values, dtype=np.float64)
    y0 = np.asarray(ds["link_y0"].values, dtype=np.float64)
    x1 = np.asarray(ds["link_x1"].values, dtype=np.float64)
    y1 = np.asarray(ds["link_y1"].values, dtype=np.float64)
    dx, dy = x1 - x0, y1 - y0
    n = np.hypot(dx, dy)
    n[n == 0] = 1.0
    ox, oy = dy / n * offset_m, -dx / n * offset_m
    return x0 + ox, y0 + oy, x1 + ox, y1 + oy


def open_equilibrium(res: Results) -> xr.Dataset | None:
    """The run folder's ``equilibrium.nc`` (from ``twin equilibrate``: per-iteration
    relative gap, mean travel time, vehicle-hours), or ``None`` when it has none.
    """
    path = res.path / "equilibrium.nc"
    if res.kind != "run" or not path.is_file():
        return None
    ds = _open_nc(path)
    _check_vars(ds, ("relative_gap", "mean_travel_time_s", "vehicle_hours"), path)
    if "iteration" not in ds.dims:
        raise InputError(f"{path}: no 'iteration' dimension")
    return ds
