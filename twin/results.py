"""Results of a run: one labelled :class:`xarray.Dataset`, KPIs, and the run folder."""

from __future__ import annotations

import json
import os
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import xarray as xr

from basics.clock import format_clock

__all__ = [
    "build_dataset",
    "compute_kpis",
    "link_sums",
    "write_run",
    "package_version",
    "KPI_LABELS",
    "kpi_labels",
    "kpi_label_table",
    "fill_run",
    "run_marker",
    "write_netcdf",
]

#: KPI key -> (label, unit) for tables and reports
KPI_LABELS: dict[str, tuple[str, str]] = {
    "trips_total": ("Trips (total)", ""),
    "trips_completed": ("Trips completed", ""),
    "completion_rate": ("Completion rate", "%"),
    "mean_travel_time_s": ("Mean travel time", "s"),
    "p95_travel_time_s": ("95th percentile travel time", "s"),
    "vehicle_hours": ("Vehicle-hours travelled", "veh·h"),
    "vehicle_km": ("Vehicle-km travelled", "veh·km"),
    "mean_network_speed_kmh": ("Mean network speed", "km/h"),
    "total_delay_h": ("Total delay (all trips so far)", "veh·h"),
    "mean_delay_s": ("Mean delay per completed trip", "s"),
    "trips_unfinished": ("Trips departed, not arrived", ""),
    "trips_stranded": ("Trips stranded (waiting for a route, or none on the network)", ""),
    "no_route": ("Trips waiting for a route", ""),
    "trips_no_route": ("Trips with no route on the network as given", ""),
    "trips_cancelled": ("Trips cancelled before departure", ""),
    "squeezed_entries": ("Entries into full streets (stuck rule)", ""),
    "trips_deterred": ("Trips not made for congestion (demand elasticity)", ""),
}


def package_version() -> str:
    """The installed city-twin version (``0+unknown`` from a bare source tree)."""
    try:
        return version("city-twin")
    except PackageNotFoundError:  # running from a source tree
        return "0+unknown"


def _trip_arrays(twin) -> dict[str, np.ndarray]:
    """Per-trip outcome of every trip put on the road (scenario's and components')."""
    veh = twin.traffic.veh
    n = twin.traffic.n_vehicles
    depart = veh.depart[:n]
    arrive = veh.arrive[:n]
    return {
        "depart": depart,
        "arrive": arrive,
        "travel": arrive - depart,
        "length": veh.dist[:n],
        "fftt": veh.fftt[:n],
        "status": veh.link[:n],
    }


def link_sums(
    rec, length: np.ndarray, *, start: int = 0, sums: tuple[float, float] = (0.0, 0.0)
) -> tuple[float, float]:
    """Link metres driven and link vehicle-seconds over the recorded intervals ``start:``,
    added to ``sums`` (the same additions in the same order as over the whole history, so
    a running total kept interval by interval equals the full sum exactly).
    """
    metres, vehsec = sums
    t = rec.time
    for k in range(start, len(t)):
        metres += (rec.link["outflow"][k] * length).sum()
        vehsec += (rec.link["vehicles"][k] * (t[k] - (t[k - 1] if k else 0.0))).sum()
    return metres, vehsec


def compute_kpis(twin, *, sums: tuple[float, float] | None = None) -> dict[str, float]:
    """The run's KPIs so far (see :data:`KPI_LABELS`).

    ``sums``: :func:`link_sums` over every recorded interval, when the caller keeps them
    (``twin serve`` adds each new interval instead of the whole history at every update).

    - travel time runs from the *scheduled* departure to arrival, so it
      includes waiting to enter the network; mean and p95 are over completed
      trips (``trips_unfinished`` says how many are left out);
    - vehicle-hours count every departed trip from its scheduled departure to
      its arrival or to now; vehicle-km count the links trips have finished;
    - delay is time in the system less the free-flow time of the links driven:
      ``total_delay_h`` sums it over every departed trip up to now (so a
      scenario that leaves trips stuck is not flattered), ``mean_delay_s`` is
      per completed trip;
    - mean network speed is link-km over link vehicle-hours (on the roads,
      waiting at origins excluded);
    - ``trips_stranded`` are the trips that cannot get where they are going now:
      waiting off the road for a route (``no_route``) or with none on the network
      as given (``trips_no_route``); they leave the road, so vehicles on the
      network fall while they stay stranded (issue 16).
    """
    from kernels.traffic import VEH_NO_ROUTE, VEH_PENDING
    from twin.traffic import VEH_CANCELLED, VEH_NO_PATH, time_in_system

    tr = _trip_arrays(twin)
    now = twin.traffic.now
    done = np.isfinite(tr["arrive"])
    cancelled = tr["status"] == VEH_CANCELLED
    no_path = tr["status"] == VEH_NO_PATH  # never released: no time in the system, not unfinished
    released = (tr["status"] != VEH_PENDING) & ~cancelled & ~no_path
    tt = tr["travel"][done]
    in_system = time_in_system(tr["depart"], tr["arrive"], now)[released]
    rec = twin.recorder
    link_km = 0.0
    link_h = 0.0
    if rec.time:
        metres, vehsec = link_sums(rec, twin.traffic.links.length) if sums is None else sums
        link_km = float(metres / 1000.0)
        link_h = float(vehsec / 3600.0)
    delay = tt - tr["fftt"][done]
    delay_all = in_system - tr["fftt"][released]
    n_total = int(tr["depart"].shape[0])
    out = {
        "trips_total": n_total,
        "trips_completed": int(done.sum()),
        "completion_rate": float(100.0 * done.sum() / max(n_total - cancelled.sum(), 1)) if n_total else float("nan"),
        "mean_travel_time_s": float(tt.mean()) if tt.size else float("nan"),
        "p95_travel_time_s": float(np.percentile(tt, 95)) if tt.size else float("nan"),
        "vehicle_hours": float(in_system.sum() / 3600.0),
        "vehicle_km": float(tr["length"].sum() / 1000.0),
        "mean_network_speed_kmh": link_km / link_h if link_h > 0 else float("nan"),
        "total_delay_h": float(delay_all.sum() / 3600.0),
        "mean_delay_s": float(delay.mean()) if delay.size else float("nan"),
        "trips_unfinished": int(np.count_nonzero(released & ~done)),
        "trips_stranded": int(np.count_nonzero((tr["status"] == VEH_NO_ROUTE) | no_path)),
        "no_route": int(np.count_nonzero(tr["status"] == VEH_NO_ROUTE)),
        "trips_cancelled": int(np.count_nonzero(cancelled)),
        "trips_no_route": int(np.count_nonzero(no_path)),
        "squeezed_entries": twin.traffic.squeezed,
        "trips_deterred": int(getattr(twin, "trips_deterred", 0)),
    }
    for comp in twin.components.values():
        out.update(comp.kpis())
    return out


def kpi_labels() -> dict[str, tuple[str, str]]:
    """Labels and units of the traffic KPIs and those of every component."""
    from twin.components import component_kpi_labels

    return {**KPI_LABELS, **component_kpi_labels()}


def kpi_label_table(keys) -> dict[str, list[str]]:
    """``{key: [label, unit]}`` for the KPI ``keys``, as a run folder carries it.

    Written into ``summary.json`` (``kpi_labels``) and the results Dataset's attrs
    (``labels``, as JSON text) when a run is written, so that readers of run folders
    (:mod:`viz`) show labels and units without importing the twin; a key without a
    label gets its own name and no unit.
    """
    labels = kpi_labels()
    return {key: list(labels.get(key, (key.replace("_", " "), ""))) for key in keys}


def _var(dims, data, units: str, long_name: str) -> xr.Variable:
    return xr.Variable(dims, data, attrs={"units": units, "long_name": long_name})


def geometry_coords(city) -> dict[str, xr.Variable]:
    """The nodes' geographic position and, when the city's source drew its roads, every
    link's shape (what ``twin export`` and report maps draw; issue 13).
    """
    from city_models.shapes import network_shapes

    net = city.network
    out = {
        "node_lon": _var(("node",), np.asarray(net.lon, np.float64), "degrees_east", "node longitude (NaN: unknown)"),
        "node_lat": _var(("node",), np.asarray(net.lat, np.float64), "degrees_north", "node latitude (NaN: unknown)"),
    }
    shapes = network_shapes(net, getattr(city, "link_shapes", None))
    if shapes is not None:
        ptr, lon, lat = shapes
        out["link_shape_indptr"] = _var(
            ("link_shape_ptr",), ptr, "1", "shape points of link i: shape[indptr[i]:indptr[i+1]]"
        )
        out["shape_lon"] = _var(("shape",), lon, "degrees_east", "road shape point, longitude")
        out["shape_lat"] = _var(("shape",), lat, "degrees_north", "road shape point, latitude")
    return out


def _stacked(rec, key: str, dtype, n_links: int) -> np.ndarray:
    """The recorder's per-interval link rows of ``key`` as one (time, link) array."""
    if not rec.time:
        return np.zeros((0, n_links), dtype)
    return np.stack(rec.link[key]).astype(dtype)


def _series_vars(twin) -> dict[str, xr.Variable]:
    """The recorded time series: link measures per interval and network counts."""
    rec = twin.recorder
    nl = twin.city.network.n_links
    return {
        "link_inflow": _var(
            ("time", "link"), _stacked(rec, "inflow", np.int32, nl), "veh", "vehicles entering the link in the interval"
        ),
        "link_outflow": _var(
            ("time", "link"), _stacked(rec, "outflow", np.int32, nl), "veh", "vehicles leaving the link in the interval"
        ),
        "link_vehicles": _var(
            ("time", "link"), _stacked(rec, "vehicles", np.float64, nl), "veh", "mean number of vehicles on the link"
        ),
        "link_speed": _var(
            ("time", "link"), _stacked(rec, "speed", np.float64, nl), "m s-1", "space-mean speed on the link"
        ),
        "network_vehicles": _var(
            ("time",), np.asarray(rec.network["on_network"], np.int64), "veh", "vehicles on the network"
        ),
        "network_waiting": _var(
            ("time",), np.asarray(rec.network["waiting"], np.int64), "veh", "vehicles waiting to enter at their origin"
        ),
        "trips_departed": _var(
            ("time",),
            np.asarray(rec.network["departed"], np.int64),
            "1",
            "trips whose departure time has passed (cumulative)",
        ),
        "trips_arrived": _var(
            ("time",), np.asarray(rec.network["arrived"], np.int64), "1", "trips completed (cumulative)"
        ),
    }


def _padded(rows: list, n: int, fill, dtype) -> np.ndarray:
    """``rows`` (one per output interval) as an array of ``n``, ``fill`` in front for intervals
    recorded before the series was (a run resumed from an older snapshot).
    """
    arr = np.asarray(rows, dtype)
    if arr.shape[0] < n:
        pad = np.full((n - arr.shape[0], *arr.shape[1:]), fill, dtype)
        arr = np.concatenate([pad, arr]) if arr.size else pad
    return arr


def _operations_vars(twin) -> dict[str, xr.Variable]:
    """Trips stranded and the links' closures and lost capacity per interval (issue 16)."""
    rec = twin.recorder
    nt, nl = len(rec.time), twin.city.network.n_links
    control = rec.control
    closed = _padded(control["closed"], nt, -1, np.int8) if nt else np.zeros((0, nl), np.int8)
    share = _padded(control["capacity_share"], nt, np.nan, np.float32) if nt else np.zeros((0, nl), np.float32)
    return {
        "network_stranded": _var(
            ("time",),
            _padded(rec.network["stranded"], nt, -1, np.int64),
            "veh",
            "trips stranded: waiting for a route, or with no route on the network as given (-1: not recorded)",
        ),
        "link_closed": _var(
            ("time", "link"),
            closed.reshape(nt, nl),
            "1",
            "1: link closed at the end of the interval (flood, closure, incident), -1: not recorded",
        ),
        "link_capacity_share": _var(
            ("time", "link"),
            share.reshape(nt, nl),
            "1",
            "capacity at the end of the interval over the network's (lanes lost, capacity cut; 1: unchanged)",
        ),
    }


def _link_change_vars(twin) -> dict[str, xr.Variable]:
    """Every link change applied or reverted (interventions, incidents, feed closures), in order."""
    hist = twin.link_control.history
    d = ("link_change",)
    return {
        "link_change_time_s": _var(d, np.array([h[0] for h in hist], np.float64), "s", "time since the start"),
        "link_change_action": _var(d, np.array([h[1] for h in hist], dtype=str), "1", "apply or revert"),
        "link_change_source": _var(
            d, np.array([h[3] for h in hist], dtype=str), "1", "what changed the links (intervention, incident, ...)"
        ),
        "link_change_links": _var(
            d,
            np.array([" ".join(map(str, np.asarray(h[4]).tolist())) for h in hist], dtype=str),
            "1",
            "link indices changed (space-separated)",
        ),
    }


def _evacuation_vars(twin) -> dict[str, xr.Variable]:
    """Each evacuee's time of reaching safety and each zone's order time (empty without an order)."""
    comp = twin.components.get("population")
    evac = comp.policies.evac if comp is not None else None  # the orders' owner (Evacuation)
    if evac is None or not evac.orders:
        return {}
    nz = twin.city.zones.n_zones
    ordered_s = np.full(nz, np.nan)
    zone_of = np.asarray(twin.city.zones.node_zone)
    for k, order in enumerate(evac.orders):
        nodes = np.flatnonzero(evac.order_of_node == k)
        zones = np.unique(zone_of[nodes])
        zones = zones[(zones >= 0) & np.isnan(ordered_s[np.clip(zones, 0, None)])]
        ordered_s[zones] = float(order["t"])
    safe = np.asarray(evac.safe_t, np.float64)[evac.target]
    return {
        "zone_evacuation_order_s": _var(
            ("zone",), ordered_s, "s", "time the zone was ordered evacuated, since the start (NaN: never)"
        ),
        "evacuee_safe_s": _var(
            ("evacuee",),
            safe,
            "s",
            "time each person of the ordered population reached safety, since the start (NaN: not yet)",
        ),
    }


def _trip_vars(twin, table: dict[str, np.ndarray]) -> dict[str, xr.Variable]:
    """Per-trip origin, destination and outcome (``table``: :meth:`trip_table`)."""
    net = twin.city.network
    tr = _trip_arrays(twin)
    return {
        "trip_origin": _var(("trip",), net.node_osmid[table["origin"]], "1", "origin node (source id)"),
        "trip_destination": _var(("trip",), net.node_osmid[table["destination"]], "1", "destination node (source id)"),
        "trip_depart_s": _var(("trip",), tr["depart"], "s", "scheduled departure time since the start"),
        "trip_arrive_s": _var(("trip",), tr["arrive"], "s", "arrival time since the start (NaN if unfinished)"),
        "trip_travel_time_s": _var(("trip",), tr["travel"], "s", "arrival minus scheduled departure"),
        "trip_length_m": _var(("trip",), tr["length"], "m", "distance driven"),
        "trip_free_flow_time_s": _var(("trip",), tr["fftt"], "s", "free-flow time of the links driven"),
    }


def _time_trip_coords(twin, table: dict[str, np.ndarray]) -> dict[str, xr.Variable]:
    """The ``time`` (with its clock labels) and ``trip`` coordinates (``table``: :meth:`trip_table`)."""
    rec = twin.recorder
    return {
        "time": _var(
            ("time",), np.asarray(rec.time, np.float64), "s", "end of the output interval, seconds since the start"
        ),
        "clock": _var(
            ("time",),
            np.array([format_clock(twin.start_s + t, with_seconds=True) for t in rec.time], dtype=str),
            "1",
            "clock time of day at the end of the output interval (HH:MM:SS)",
        ),
        "link": _var(("link",), np.arange(twin.city.network.n_links, dtype=np.int64), "1", "link index"),
        "trip": _var(("trip",), table["trip_id"], "1", "trip id"),
        "trip_source": xr.Variable(
            ("trip",),
            table["source"],
            attrs={
                "units": "1",
                "long_name": "what put the trip on the road",
                "flag_values": np.arange(len(twin.trip_sources), dtype=np.int8),
                "flag_meanings": " ".join(s.replace(" ", "_") for s in twin.trip_sources),
            },
        ),
    }


def _network_coords(net, node_zone: np.ndarray) -> dict[str, xr.Variable]:
    """The road network: links' ends, names, lengths, lanes, speeds, capacities, kinds; nodes."""
    return {
        "link_src": _var(("link",), net.node_osmid[net.src], "1", "upstream node (source id)"),
        "link_dst": _var(("link",), net.node_osmid[net.dst], "1", "downstream node (source id)"),
        "link_osmid": _var(("link",), net.link_osmid, "1", "source link id"),
        "link_name": _var(("link",), net.link_name.astype(str), "1", "road name"),
        "link_length_m": _var(("link",), net.length_m, "m", "link length"),
        "link_lanes": _var(("link",), net.lanes, "1", "lanes"),
        "link_free_speed": _var(("link",), net.free_speed_mps, "m s-1", "free-flow speed"),
        "link_capacity": _var(("link",), net.capacity_vph, "veh h-1", "capacity, all lanes"),
        "link_kind": _var(("link",), net.link_kind.astype(str), "1", "road class (e.g. local, arterial, ring, bridge)"),
        "node": _var(("node",), np.arange(net.n_nodes, dtype=np.int64), "1", "node index"),
        "node_osmid": _var(("node",), net.node_osmid, "1", "source node id (OSM id, or the synthetic city's id)"),
        "node_x": _var(("node",), net.x, "m", "node easting (local metric frame)"),
        "node_y": _var(("node",), net.y, "m", "node northing (local metric frame)"),
        "node_zone": _var(("node",), node_zone.astype(np.int64), "1", "zone of the node (-1: none)"),
        "link_x0": _var(("link",), net.x[net.src], "m", "upstream end, easting"),
        "link_y0": _var(("link",), net.y[net.src], "m", "upstream end, northing"),
        "link_x1": _var(("link",), net.x[net.dst], "m", "downstream end, easting"),
        "link_y1": _var(("link",), net.y[net.dst], "m", "downstream end, northing"),
    }


def _zone_facility_coords(city) -> dict[str, xr.Variable]:
    """Zones (names, centroids, residents, jobs) and, when the city has them, its facilities."""
    z = city.zones
    out = {
        "zone": _var(("zone",), np.arange(z.n_zones, dtype=np.int64), "1", "zone index"),
        "zone_name": _var(("zone",), np.asarray(z.name, dtype=str), "1", "zone name"),
        "zone_x": _var(("zone",), np.asarray(z.x, np.float64), "m", "zone centroid, easting"),
        "zone_y": _var(("zone",), np.asarray(z.y, np.float64), "m", "zone centroid, northing"),
        "zone_residents": _var(("zone",), np.asarray(z.residents, np.int64), "1", "residents"),
        "zone_jobs": _var(("zone",), np.asarray(z.jobs, np.int64), "1", "jobs"),
    }
    fac = city.facilities
    if fac:
        net = city.network
        out.update(
            {
                "facility": _var(("facility",), np.arange(len(fac), dtype=np.int64), "1", "facility index"),
                "facility_kind": _var(("facility",), np.array([f.kind for f in fac], dtype=str), "1", "kind"),
                "facility_name": _var(("facility",), np.array([f.name for f in fac], dtype=str), "1", "name"),
                "facility_x": _var(("facility",), net.x[[f.node for f in fac]], "m", "easting"),
                "facility_y": _var(("facility",), net.y[[f.node for f in fac]], "m", "northing"),
            }
        )
    return out


def _run_attrs(twin) -> dict:
    """The Dataset's attrs before the KPIs: scenario, hash, seed, version, clock and steps."""
    sc = twin.scenario
    return {
        "title": f"city twin run: {sc.name}",
        "scenario_name": sc.name,
        "scenario_hash": twin.scenario_hash,
        "seed": int(twin.seed),
        "package_version": package_version(),
        "city": twin.city.name,
        "start_clock_s": float(twin.start_s),
        "step_s": float(twin.traffic.dt),
        "output_interval_s": float(twin.recorder.interval_s),
        "sim_time_s": float(twin.traffic.now),
    }


def build_dataset(twin) -> xr.Dataset:
    """Assemble the run's labelled results.

    Dims: ``time`` (end of each output interval, s since the start), ``link``,
    ``trip``.  Every variable has ``units`` and ``long_name``; ``attrs`` carry
    the scenario name and hash, seed and package version.
    """
    table = twin.trip_table()
    data = {**_series_vars(twin), **_trip_vars(twin, table), **_operations_vars(twin), **_evacuation_vars(twin)}
    data.update(_link_change_vars(twin))
    coords = {
        **_time_trip_coords(twin, table),
        **_network_coords(twin.city.network, twin.city.zones.node_zone),
        **geometry_coords(twin.city),
        **_zone_facility_coords(twin.city),
    }
    for comp in twin.components.values():
        for name, var in comp.data_vars().items():
            if name.startswith("coord:"):
                coords[name[6:]] = var
            else:
                data[name] = var
    ds = xr.Dataset(data, coords=coords, attrs=_run_attrs(twin))
    kpis = compute_kpis(twin)
    for name, value in kpis.items():
        ds.attrs[f"kpi_{name}"] = value
    ds.attrs["labels"] = json.dumps(kpi_label_table(kpis))  # KPI labels and units for readers (viz)
    pairs = twin.traffic.no_path_pairs(top=10)  # trips with no route on the network as given, most frequent first
    ds.attrs["trips_no_route_pairs"] = "; ".join(f"{o} -> {d}: {c}" for (o, d), c in pairs)
    return ds


def run_marker(twin, *, kind: str = "run") -> dict:
    """What a run folder's marker says about the run (see :data:`basics.atomic.MARKER`).

    ``finished`` is true when the run reached the end of its scenario's time; a run
    stopped early (``--until``, a paced drill stopped with Ctrl-C) is partial.
    """
    return {
        "kind": kind,
        "scenario": twin.scenario.name,
        "seed": int(twin.seed),
        "scenario_hash": twin.scenario_hash,
        "sim_time_s": float(twin.traffic.now),
        "finished": bool(twin.traffic.now >= twin.duration_s - 1e-9),
    }


def write_run(
    twin, out_dir: Path, *, extra: dict | None = None, overwrite: bool = True, what: str = "run folder"
) -> Path:
    """Write ``results.nc``, ``scenario.yaml`` and ``summary.json`` into ``out_dir``.

    The files are written into a temporary folder beside ``out_dir``, which
    then replaces ``out_dir`` in one rename: an interrupted write leaves the
    previous run folder (if any) as it was, never a mix of two runs.
    ``extra`` maps more file names to Datasets of the same run (e.g.
    ``assimilation.nc``).  ``out_dir`` must be absent, empty or a folder the
    twin wrote; a finished run there is replaced only with ``overwrite``
    (the command line passes ``--overwrite``; see :func:`basics.atomic.replace_folder`).
    """
    from basics.atomic import replace_folder

    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise NotADirectoryError(f"run folder {str(out_dir)!r} exists and is not a folder")
    return replace_folder(
        out_dir, lambda tmp: fill_run(twin, tmp, extra=extra), marker=run_marker(twin), overwrite=overwrite, what=what
    )


#: set when an HDF5 write failed: the library may be left unable to shut down cleanly,
#: so the command line ends the process with :func:`os._exit` after its message
HDF5_WRITE_FAILED = False
#: datasets up to this size are encoded in memory when there is no room in /dev/shm
_IN_MEMORY_NC_BYTES = 2 * 1024**3


def _clean_scratch(folder: str) -> None:
    """Remove encodings that a killed writer left in the memory-backed ``folder``."""
    from basics.atomic import _pid_alive

    for path in Path(folder).glob(".city-twin-*-*.nc"):
        pid = path.name.split("-")[2]
        if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            path.unlink(missing_ok=True)


def _scratch_dir(need: int) -> str | None:
    """A memory-backed folder with room for ``need`` bytes twice over, if there is one."""
    for folder in ("/dev/shm",):
        try:
            if (
                os.path.isdir(folder)
                and os.access(folder, os.W_OK)
                and __import__("shutil").disk_usage(folder).free > 2 * need
            ):
                return folder
        except OSError:
            continue
    return None


def write_netcdf(ds: xr.Dataset, path: Path) -> None:
    """Write ``ds`` as netCDF-4 (h5netcdf) to ``path``; a failure is a clear ``OSError``.

    HDF5 writing to a full disk crashes inside the library (a segfault, measured with
    a full tmpfs and with a file-size limit), so HDF5 never writes to the destination:
    the file is encoded in memory (a file in ``/dev/shm``, or a byte buffer) and then
    copied with ordinary file writes, where a full disk or another OS error raises
    ``OSError`` naming the file.  The free space is checked first, for a clear error
    before anything is written.  Only a dataset over 2 GiB with no room in
    ``/dev/shm`` is written by HDF5 directly.
    """
    global HDF5_WRITE_FAILED
    import errno as _errno
    import shutil
    import tempfile

    path = Path(path)
    need = int(ds.nbytes * 1.05) + (1 << 20)
    try:
        free = shutil.disk_usage(path.parent).free
    except OSError:
        free = need
    if free < need:
        raise OSError(
            _errno.ENOSPC,
            f"could not write {path.name}: no space left on the device (about "
            f"{need / 1e6:,.1f} MB needed, {free / 1e6:,.1f} MB free)",
        )
    scratch = _scratch_dir(need)
    try:
        if scratch is not None:
            _clean_scratch(scratch)
            fd, tmp = tempfile.mkstemp(prefix=f".city-twin-{os.getpid()}-", suffix=".nc", dir=scratch)
            os.close(fd)
            try:
                ds.to_netcdf(tmp, engine="h5netcdf")
                shutil.copyfile(tmp, path)
            finally:
                Path(tmp).unlink(missing_ok=True)
        elif ds.nbytes <= _IN_MEMORY_NC_BYTES:
            data = ds.to_netcdf(None, engine="h5netcdf")
            with open(path, "wb") as fh:
                fh.write(data)
        else:
            HDF5_WRITE_FAILED = True  # until it succeeds: a crash inside HDF5 ends the process anyway
            ds.to_netcdf(path, engine="h5netcdf")
            HDF5_WRITE_FAILED = False
    except BaseException as exc:
        path.unlink(missing_ok=True)
        if isinstance(exc, (OSError, RuntimeError)):
            errno = getattr(exc, "errno", None) or _errno_in(str(exc))
            reason = os.strerror(errno) if errno else str(exc)
            raise OSError(errno or 0, f"could not write {path.name}: {reason}") from None
        raise


def _close_hdf5_handles() -> None:
    """Close every file xarray's cache and h5py still hold open (after a failed write)."""
    try:
        from xarray.backends.file_manager import FILE_CACHE

        for key in list(FILE_CACHE.keys()):
            try:
                FILE_CACHE.pop(key).close()
            except Exception:  # noqa: BLE001 -- closing what a failed write left; nothing to report
                pass
    except ImportError:  # pragma: no cover -- an xarray without the cache
        pass
    try:
        import h5py

        for fid in h5py.h5f.get_obj_ids(types=h5py.h5f.OBJ_FILE):
            try:
                fid.close()
            except Exception:  # noqa: BLE001
                pass
    except ImportError:  # pragma: no cover
        pass


def fill_run(twin, folder: Path, *, extra: dict | None = None) -> None:
    """Write a run's files into an existing (temporary) folder; see :func:`write_run`."""
    from basics.atomic import json_safe
    from scenarios import dump_resolved

    ds = build_dataset(twin)
    write_netcdf(ds, folder / "results.nc")
    dump_resolved(twin.scenario, folder / "scenario.yaml")
    summary = {
        "scenario": twin.scenario.name,
        "scenario_hash": twin.scenario_hash,
        "seed": int(twin.seed),
        "package_version": package_version(),
        "sim_time_s": float(twin.traffic.now),
        "city": {"name": twin.city.name, "nodes": twin.city.network.n_nodes, "links": twin.city.network.n_links},
        "kpis": json_safe(kpis := compute_kpis(twin)),
        "kpi_labels": kpi_label_table(kpis),
    }
    (folder / "summary.json").write_text(json.dumps(summary, indent=2, allow_nan=False))
    for name, extra_ds in (extra or {}).items():  # more datasets of the same run
        write_netcdf(extra_ds, folder / name)


def _errno_in(text: str) -> int | None:
    """The ``errno = N`` that HDF5 puts in its error text, if any."""
    import re

    m = re.search(r"errno = (\d+)", text)
    return int(m.group(1)) if m else None
