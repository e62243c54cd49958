"""Results out to GIS and dataframes: ``twin export RUN --format gpkg|geojson|parquet``.

Reads a run folder (``results.nc``, as :func:`viz.data.open_results` does) and
writes, with geopandas / pyogrio / shapely (no hand-written GeoJSON):

``links``
    one feature per link, its geometry (the road's shape when the run recorded
    one, else the straight line between its end nodes) and, over the output
    intervals inside the time window: ``flow_veh`` (vehicles that entered),
    ``flow_vph``, ``speed_kmh`` (space-mean speed: vehicle-time-weighted mean of
    the recorded link speed; the recorded speed of the empty link when no
    vehicle was on it), ``speed_ratio`` (speed / free-flow speed), ``vc_ratio``
    (flow per hour / capacity), ``delay_veh_h`` (vehicle-hours on the link
    beyond the time the same distance takes at free-flow speed) and the link's
    static attributes (source ids, name, class, length, lanes, free speed,
    capacity);
``trips``
    the trips table (no geometry), trips departing inside the window;
``incidents``
    points at the incident's node: type, severity, status, response times
    (runs with incidents);
``units``
    points at each unit's home station at the end of the run (runs with units).

Coordinates: longitude/latitude (EPSG:4326) when the run wrote the nodes'
geographic position (``node_lon`` / ``node_lat``); else the city's local metric
frame (``node_x`` / ``node_y``), which has no CRS (a synthetic city's).

A GeoPackage holds every table as a layer of one file.  GeoJSON and Parquet
hold one table per file: ``--out`` names the links file and the others are
written beside it (``NAME-trips.EXT``, ``NAME-incidents.EXT``,
``NAME-units.EXT``).  Every file is written under a temporary name and renamed
into place, so a failed export never leaves a half-written file.
"""

from __future__ import annotations

import contextlib
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from basics.atomic import atomic_path
from basics.errors import InputError
from basics.numeric import EPS
from viz.data import Results, clock_label, open_results, parse_time

__all__ = ["FORMATS", "ExportSummary", "export_run", "link_table", "parse_window"]

#: output format -> (pyogrio driver, file extension)
FORMATS: dict[str, tuple[str, str]] = {
    "gpkg": ("GPKG", ".gpkg"),
    "geojson": ("GeoJSON", ".geojson"),
    "parquet": ("Parquet", ".parquet"),
}
_WINDOW = re.compile(r"^\s*(\d{1,2}:\d{2}(?::\d{2})?)\s*-\s*(\d{1,2}:\d{2}(?::\d{2})?)\s*$")
try:
    import pyarrow  # noqa: F401 - a dependency; checked so a missing one only slows writing

    _HAVE_ARROW = True
except ImportError:  # pragma: no cover
    _HAVE_ARROW = False


@dataclass
class ExportSummary:
    """What :func:`export_run` wrote: files, the rows of each table, the window."""

    files: dict[str, Path] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    window: tuple[str, str] = ("", "")
    crs: str | None = None


def parse_window(text: str | None, res: Results) -> tuple[np.ndarray, tuple[float, float]]:
    """The output intervals inside ``"HH:MM-HH:MM"`` (all of them for ``None``).

    Parameters
    ----------
    text : str or None
        Clock times on the run's clock, start before end (``"07:00-09:00"``).
    res : Results
        The run.

    Returns
    -------
    tuple
        A bool mask over the output intervals (an interval is inside when it lies
        wholly within the window) and the window in seconds since the start.

    Raises
    ------
    InputError
        When the text is not a window, or no whole output interval lies inside it.
    """
    times = res.times
    starts = np.concatenate([[0.0], times[:-1]]) if times.size else times
    if text is None:
        return np.ones(times.size, bool), (0.0, float(times[-1]) if times.size else 0.0)
    m = _WINDOW.match(str(text))
    if not m:
        raise InputError(f"--time {text!r}: give a window of clock times HH:MM-HH:MM (e.g. 07:00-09:00)")
    t0 = parse_time(m.group(1), start_clock_s=res.start_clock_s)
    t1 = parse_time(m.group(2), start_clock_s=res.start_clock_s)
    if t1 <= t0 and times.size and t1 + 86400.0 <= times[-1] + EPS:
        t1 += 86400.0  # a run over midnight
    inside = (starts >= t0 - EPS) & (times <= t1 + EPS)
    if t1 <= t0 or not inside.any():
        first, last = clock_label(res.start_clock_s), clock_label(res.start_clock_s + (times[-1] if times.size else 0))
        step = float(times[0]) if times.size else 0.0
        raise InputError(
            f"--time {text!r}: no whole output interval of {res.path / 'results.nc'} lies in this window; the run "
            f"covers {first}-{last} in intervals of {step / 60:g} min"
        )
    return inside, (float(t0), float(t1))


def _need(ds: xr.Dataset, names: tuple[str, ...], where: Path) -> None:
    missing = [n for n in names if n not in ds.variables]
    if missing:
        raise InputError(
            f"{where}: has no {', '.join(repr(n) for n in missing)}, which export needs; was it written by "
            "this version of `twin run`?"
        )


def link_table(ds: xr.Dataset, inside: np.ndarray) -> pd.DataFrame:
    """Per link, the static attributes and the traffic aggregated over the intervals ``inside``.

    Parameters
    ----------
    ds : xarray.Dataset
        A run's results.
    inside : numpy.ndarray
        bool per output interval.

    Returns
    -------
    pandas.DataFrame
        One row per link, in link order (columns as listed in the module notes).
    """
    times = np.asarray(ds["time"].values, np.float64)
    dt = np.diff(np.concatenate([[0.0], times]))[inside]
    hours = float(dt.sum()) / 3600.0
    inflow = np.asarray(ds["link_inflow"].values[inside], np.int64)
    veh = np.asarray(ds["link_vehicles"].values[inside], np.float64)
    speed = np.asarray(ds["link_speed"].values[inside], np.float64)
    free = np.asarray(ds["link_free_speed"].values, np.float64)
    cap = np.asarray(ds["link_capacity"].values, np.float64)
    vt = veh * dt[:, None]  # vehicle-seconds per interval
    vt_sum = vt.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        weighted = np.where(np.isfinite(speed), speed, 0.0)
        mean_speed = np.where(vt_sum > 0, (vt * weighted).sum(axis=0) / vt_sum, np.nanmean(speed, axis=0))
        ratio = mean_speed / free
        flow = inflow.sum(axis=0)
        vph = flow / hours if hours > 0 else np.full(flow.shape, np.nan)
        delay = np.maximum(vt * (1.0 - weighted / free[None, :]), 0.0).sum(axis=0) / 3600.0
    table = {
        "link": np.asarray(ds["link"].values, np.int64),
        "link_id": np.asarray(ds["link_osmid"].values, np.int64),
        "from_node": np.asarray(ds["link_src"].values, np.int64),
        "to_node": np.asarray(ds["link_dst"].values, np.int64),
        "name": np.asarray(ds["link_name"].values, str) if "link_name" in ds else "",
        "road_class": np.asarray(ds["link_kind"].values, str) if "link_kind" in ds else "",
        "length_m": np.asarray(ds["link_length_m"].values, np.float64),
        "lanes": np.asarray(ds["link_lanes"].values, np.float64),
        "free_speed_kmh": free * 3.6,
        "capacity_vph": cap,
        "flow_veh": flow,
        "flow_vph": vph,
        "speed_kmh": mean_speed * 3.6,
        "speed_ratio": ratio,
        "vc_ratio": vph / cap,
        "vehicle_hours": vt_sum / 3600.0,
        "delay_veh_h": delay,
    }
    return pd.DataFrame(table)


def _node_frame(ds: xr.Dataset) -> tuple[dict[int, int], np.ndarray, np.ndarray, str | None]:
    """Node source id -> index, and the coordinates export writes (with their CRS)."""
    ids = np.asarray(ds["node_osmid"].values, np.int64)
    index = {int(v): i for i, v in enumerate(ids.tolist())}
    if "node_lon" in ds and "node_lat" in ds:
        lon = np.asarray(ds["node_lon"].values, np.float64)
        lat = np.asarray(ds["node_lat"].values, np.float64)
        if lon.size and np.isfinite(lon).all() and np.isfinite(lat).all():
            return index, lon, lat, "EPSG:4326"
    return index, np.asarray(ds["node_x"].values, np.float64), np.asarray(ds["node_y"].values, np.float64), None


def _link_geometry(ds: xr.Dataset, index: dict[int, int], nx: np.ndarray, ny: np.ndarray, crs: str | None) -> Any:
    """LineStrings of the links: their recorded shapes, else straight end-to-end lines."""
    import shapely

    src = np.asarray([index[int(v)] for v in ds["link_src"].values.tolist()], np.int64)
    dst = np.asarray([index[int(v)] for v in ds["link_dst"].values.tolist()], np.int64)
    if crs is not None and "link_shape_indptr" in ds and "shape_lon" in ds:
        ptr = np.asarray(ds["link_shape_indptr"].values, np.int64)
        coords = np.column_stack([ds["shape_lon"].values, ds["shape_lat"].values]).astype(np.float64)
        counts = np.diff(ptr)
        if ptr.size == src.size + 1 and (counts >= 2).all():
            return shapely.linestrings(coords, indices=np.repeat(np.arange(src.size), counts))
    xy = np.empty((src.size * 2, 2))
    xy[0::2, 0], xy[0::2, 1] = nx[src], ny[src]
    xy[1::2, 0], xy[1::2, 1] = nx[dst], ny[dst]
    return shapely.linestrings(xy, indices=np.repeat(np.arange(src.size), 2))


def _points(ds: xr.Dataset, nodes: np.ndarray, index: dict[int, int], nx: np.ndarray, ny: np.ndarray) -> Any:
    import shapely

    k = np.asarray([index.get(int(v), -1) for v in np.asarray(nodes, np.int64).tolist()], np.int64)
    x = np.where(k >= 0, nx[np.maximum(k, 0)], np.nan)
    y = np.where(k >= 0, ny[np.maximum(k, 0)], np.nan)
    pts = shapely.points(np.column_stack([x, y])) if k.size else np.empty(0, object)
    return np.where(k >= 0, pts, np.array(None, dtype=object)) if k.size else pts  # None: node not in the network


def _trips(ds: xr.Dataset, window: tuple[float, float] | None) -> pd.DataFrame:
    cols = {
        "trip_id": "trip",
        "origin": "trip_origin",
        "destination": "trip_destination",
        "depart_s": "trip_depart_s",
        "arrive_s": "trip_arrive_s",
        "travel_time_s": "trip_travel_time_s",
        "length_m": "trip_length_m",
        "free_flow_time_s": "trip_free_flow_time_s",
    }
    df = pd.DataFrame({k: np.asarray(ds[v].values) for k, v in cols.items() if v in ds.variables})
    if "trip_source" in ds.variables:
        meanings = str(ds["trip_source"].attrs.get("flag_meanings", "")).split()
        codes = np.asarray(ds["trip_source"].values, np.int64)
        df["source"] = [meanings[c] if 0 <= c < len(meanings) else str(c) for c in codes.tolist()]
    if window is not None and "depart_s" in df:
        df = df[(df["depart_s"] >= window[0]) & (df["depart_s"] < window[1])].reset_index(drop=True)
    return df


def _incidents(ds: xr.Dataset, geo: tuple, window: tuple[float, float] | None) -> Any:
    import geopandas as gpd

    if ds.sizes.get("incident", 0) == 0 or "incident_node" not in ds:
        return None
    index, nx, ny, crs = geo
    names = [str(n)[len("incident_") :] for n in ds.data_vars if ds[n].dims == ("incident",)]
    df = pd.DataFrame({n: np.asarray(ds[f"incident_{n}"].values) for n in names})
    df.insert(0, "incident", np.asarray(ds["incident"].values, np.int64))
    if "incident_time" in ds and "stage" in ds.coords:
        for k, stage in enumerate(ds["stage"].values.tolist()):
            df[f"t_{stage}_s"] = np.asarray(ds["incident_time"].values[:, k], np.float64)
    keep = np.ones(len(df), bool)
    if window is not None and "t_occurred_s" in df:
        keep = (df["t_occurred_s"] >= window[0]).to_numpy() & (df["t_occurred_s"] < window[1]).to_numpy()
    geom = _points(ds, df["node"].to_numpy(), index, nx, ny)
    return gpd.GeoDataFrame(df[keep].reset_index(drop=True), geometry=list(geom[keep]), crs=crs)


def _units(ds: xr.Dataset, geo: tuple) -> Any:
    import geopandas as gpd

    if ds.sizes.get("unit", 0) == 0 or "unit_station" not in ds or "station_name" not in ds:
        return None
    index, nx, ny, crs = geo
    names = [str(n)[len("unit_") :] for n in ds.data_vars if ds[n].dims == ("unit",)]
    df = pd.DataFrame({n: np.asarray(ds[f"unit_{n}"].values) for n in names})
    df.insert(0, "unit", np.asarray(ds["unit"].values, np.int64))
    at = dict(zip(ds["station_name"].values.tolist(), ds["station_node"].values.tolist(), strict=True))
    nodes = np.asarray([at.get(s, -1) for s in df["station"].tolist()], np.int64)
    return gpd.GeoDataFrame(df, geometry=list(_points(ds, nodes, index, nx, ny)), crs=crs)


def _write_one(frame: Any, tmp: Path, *, fmt: str, layer: str) -> None:
    import geopandas as gpd
    from pyogrio import write_dataframe

    arrow = _HAVE_ARROW  # pyogrio's Arrow path writes a million trips about twice as fast
    if fmt == "parquet":
        frame.to_parquet(tmp, index=False)
    elif fmt == "gpkg":
        write_dataframe(frame, tmp, layer=layer, driver="GPKG", append=tmp.exists(), use_arrow=arrow)
    else:
        frame = frame if isinstance(frame, gpd.GeoDataFrame) else gpd.GeoDataFrame(frame, geometry=None)
        write_dataframe(frame, tmp, driver=FORMATS[fmt][0], use_arrow=arrow)


def _write_atomic(frames: dict[str, Any], out: Path, fmt: str) -> dict[str, Path]:
    """Write the tables (a layer each in one GeoPackage, else a file each) under temporary
    names in ``out``'s folder (:func:`basics.atomic.atomic_path`), then rename them into
    place once all are written.
    """
    ext = FORMATS[fmt][1]
    targets = {n: out if n == "links" or fmt == "gpkg" else out.with_name(f"{out.stem}-{n}{ext}") for n in frames}
    with contextlib.ExitStack() as stack, warnings.catch_warnings():
        # a synthetic city's local frame has no CRS: the command line says so, pyogrio need not warn
        warnings.filterwarnings("ignore", message="'crs' was not provided", category=UserWarning)
        tmps = {target: stack.enter_context(atomic_path(target)) for target in dict.fromkeys(targets.values())}
        for tmp in tmps.values():
            tmp.unlink()  # the writers create their files (a GeoPackage's later layers are appended)
        for name, frame in frames.items():
            _write_one(frame, tmps[targets[name]], fmt=fmt, layer=name)
    return targets


def export_run(run: str | Path, out: str | Path, *, fmt: str | None = None, window: str | None = None) -> ExportSummary:
    """Write a run's links, trips, incidents and units for GIS tools and dataframes.

    Parameters
    ----------
    run : str or Path
        A run folder (from ``twin run``) or its ``results.nc``.
    out : str or Path
        The file to write (the links file for GeoJSON and Parquet).
    fmt : str, optional
        ``"gpkg"``, ``"geojson"`` or ``"parquet"``; default from ``out``'s extension.
    window : str, optional
        ``"HH:MM-HH:MM"``: aggregate the output intervals inside it, keep the trips
        departing and the incidents occurring in it; default the whole run.

    Returns
    -------
    ExportSummary
        The files written and the rows of each table.

    Raises
    ------
    InputError
        An unknown format, a folder that is not a run folder, results that lack what
        export needs (naming the file and the variable), a window outside the run.
    """
    out = Path(out)
    fmt = fmt or next((k for k, (_, ext) in FORMATS.items() if out.suffix.lower() == ext), None)
    if fmt not in FORMATS:
        given = f"format {fmt!r}" if fmt else f"no format given and the extension of {str(out)!r} names none"
        raise InputError(
            f"export: {given}; use one of {', '.join(FORMATS)} (--format, or the file's extension .gpkg, "
            ".geojson, .parquet)"
        )
    res = open_results(run)
    if res.kind != "run":
        raise InputError(f"{res.path}: a comparison folder; export reads a run folder (results.nc from `twin run`)")
    nc = res.path / "results.nc"
    ds = res.ds
    _need(ds, ("link_inflow", "link_vehicles", "link_speed", "link_free_speed", "link_capacity"), nc)
    _need(ds, ("link_src", "link_dst", "link_osmid", "link_length_m", "link_lanes", "node_osmid", "node_x"), nc)
    inside, (t0, t1) = parse_window(window, res)
    geo = _node_frame(ds)
    index, nx, ny, crs = geo
    unknown = sorted(set(ds["link_src"].values.tolist() + ds["link_dst"].values.tolist()) - set(index))
    if unknown:
        raise InputError(f"{nc}: link end node {unknown[0]} is not among the run's nodes (node_osmid)")
    import geopandas as gpd

    links = gpd.GeoDataFrame(link_table(ds, inside), geometry=_link_geometry(ds, index, nx, ny, crs), crs=crs)
    span = None if window is None else (t0, t1)
    frames: dict[str, Any] = {"links": links, "trips": _trips(ds, span)}
    for name, frame in (("incidents", _incidents(ds, geo, span)), ("units", _units(ds, geo))):
        if frame is not None:
            frames[name] = frame
    files = _write_atomic(frames, out, fmt)
    start = res.start_clock_s
    return ExportSummary(
        files=files,
        rows={k: len(v) for k, v in frames.items()},
        window=(clock_label(start + t0), clock_label(start + t1)),
        crs=crs,
    )
