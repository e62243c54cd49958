"""Run one benchmark case through our engine and through the peers.

Every engine is run as its users run it: it stops once every trip has arrived
(issue 12).  UXsim and ours look every ``check_s`` = 300 s of simulated time
(UXsim: ``exec_simulation(duration_t2=300)`` in a loop while
``check_simulation_ongoing()``, stopping when ``VEHICLES_LIVING`` is empty;
ours: :class:`twin.traffic.TrafficModel` advanced in 300 s chunks, stopping
when every trip has arrived); SUMO is given no ``--end``, so it stops by itself
in the step its last vehicle arrives.  ``early_stop=False`` runs every engine
to the case's full ``duration_s`` instead (SUMO then gets ``--end``).  Each
engine is run ``repeat`` (3) times in one process and the fastest run is
reported; ours after a first, cold call (JIT compile or numba cache load),
which is reported separately.

Every runner returns an :class:`EngineResult` with the same measures, computed
the same way from per-trip arrival times (:func:`summarise`):

- ``wall_s``: the simulation proper, fastest of ``repeat`` runs (UXsim: the
  ``exec_simulation`` loop only, after ``finalize_scenario``, its end-of-run
  analysis excluded; SUMO: the ``sumo`` process, which also reads the network
  and trips; ours: the ``update_routes``/``advance_to`` loop of a warm run,
  model set-up excluded, as ``twin.traffic.simulate``'s ``wall_s``);
- ``sim_end_s``: the simulated time at which the engine stopped;
- ``vehicles``: vehicles the engine simulated, in trips (UXsim: platoons × deltan);
- ``completed``: trips that arrived before the end of the simulation (and
  within the case's ``duration_s``);
- ``mean_tt_s``: mean over completed trips of arrival minus *scheduled* departure;
- ``vehicle_hours``: time in the system (waiting to enter included) summed over
  all trips, unfinished trips counted until the end of the simulation.

UXsim emits one vehicle per ``deltan`` trips.  Random node-to-node trips hardly
ever share an OD pair (6,000 trips over 9,900 pairs on the 10×10 grid), so
platooning by OD pair would round every trip up to ``deltan`` vehicles.  The
default ``platoon="consecutive"`` groups ``deltan`` trips consecutive in
departure order into one platoon that travels the OD pair of the group's first
trip and departs at the group's mean departure; each trip of the group gets the
platoon's arrival time.  ``platoon="od"`` groups by OD pair instead (the rounding
is then reported in ``note``).
"""

from __future__ import annotations

import gc
import logging
import os
import resource
import shutil
import subprocess
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.cases import Case

log = logging.getLogger(__name__)

#: how often (simulated s) UXsim and ours check whether every trip has arrived
CHECK_S = 300.0
#: runs per engine; the fastest is reported
REPEAT = 3

__all__ = [
    "CHECK_S",
    "REPEAT",
    "EngineResult",
    "PEERS",
    "summarise",
    "platoons",
    "run_ours",
    "ours_until_arrived",
    "run_uxsim",
    "uxsim_until_arrived",
    "run_sumo",
    "run_engine",
]


@dataclass
class EngineResult:
    """One engine on one case.  ``status`` is ``ok``, ``timeout``, ``error`` or ``skipped``."""

    engine: str
    case: str
    deltan: int | None = None
    status: str = "ok"
    wall_s: float | None = None  # fastest of the runs (see ``extra["wall_runs_s"]``)
    cold_wall_s: float | None = None  # ours: first run, JIT compile included
    sim_end_s: float | None = None  # simulated time at which the engine stopped
    build_s: float | None = None  # building the model before the timed part
    trips: int = 0
    vehicles: int | None = None
    completed: int | None = None
    mean_tt_s: float | None = None
    vehicle_hours: float | None = None
    peak_rss_mb: float | None = None
    note: str = ""
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------------------
# shared measures


def summarise(res: EngineResult, depart_s: np.ndarray, arrive_s: np.ndarray, end_s: float) -> EngineResult:
    """Fill ``completed``, ``mean_tt_s`` and ``vehicle_hours`` from per-trip times.

    ``arrive_s`` is NaN for unfinished trips; ``depart_s`` is the scheduled departure.
    """
    arrive_s = np.asarray(arrive_s, dtype=np.float64)
    done = np.isfinite(arrive_s) & (arrive_s <= end_s + 1e-6)
    tt = arrive_s[done] - depart_s[done]
    res.completed = int(done.sum())
    res.mean_tt_s = float(tt.mean()) if tt.size else float("nan")
    open_t = np.clip(end_s - depart_s[~done], 0.0, None)
    res.vehicle_hours = float((tt.sum() + open_t.sum()) / 3600.0)
    res.extra.setdefault("p95_tt_s", float(np.percentile(tt, 95)) if tt.size else float("nan"))
    return res


class _PeakRSS:
    """Sample the resident memory of a process (default: this one) in a thread.

    Call :meth:`watch` to switch to another process (e.g. a child just started);
    the peak is then that process's only.
    """

    def __init__(self, interval_s: float = 0.05) -> None:
        self.interval_s = interval_s
        self.peak = 0
        self._pid: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def watch(self, pid: int) -> None:
        self._pid = pid
        self.peak = 0

    def _sample(self) -> None:
        try:
            import psutil
        except ImportError:  # pragma: no cover
            return
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, psutil.Process(self._pid).memory_info().rss)
            except psutil.Error:
                pass
            self._stop.wait(self.interval_s)

    def __enter__(self) -> _PeakRSS:
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    @property
    def peak_mb(self) -> float | None:
        return self.peak / 2**20 if self.peak else None


def _ru_maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# ---------------------------------------------------------------------------
# platoons for UXsim


def platoons(
    case: Case, deltan: int, mode: str = "consecutive"
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Group trips into UXsim platoons of ``deltan`` trips.

    Returns ``(orig, dest, depart_s, trip_platoon)``: the OD and departure of
    each platoon, and for each trip the index of the platoon that carries it.
    """
    tr = case.trips
    n = tr.trip_id.shape[0]
    if mode == "consecutive":
        order = np.argsort(tr.depart_s, kind="stable")
        starts = np.arange(0, n, deltan)
    elif mode == "od":
        order = np.lexsort((tr.depart_s, tr.destination, tr.origin))
        o, d = tr.origin[order], tr.destination[order]
        new_od = np.ones(n, dtype=bool)
        new_od[1:] = (o[1:] != o[:-1]) | (d[1:] != d[:-1])
        group = np.cumsum(new_od) - 1
        group_start = np.flatnonzero(new_od)
        rank = np.arange(n) - group_start[group]
        starts = np.flatnonzero(rank % deltan == 0)
    else:
        raise ValueError(f"platoon mode must be 'consecutive' or 'od', not {mode!r}")
    sizes = np.diff(np.append(starts, n))
    platoon_of_sorted = np.repeat(np.arange(starts.shape[0]), sizes)
    trip_platoon = np.empty(n, dtype=np.int64)
    trip_platoon[order] = platoon_of_sorted
    first = order[starts]
    dep = np.bincount(platoon_of_sorted, weights=tr.depart_s[order]) / sizes
    return tr.origin[first], tr.destination[first], dep, trip_platoon


# ---------------------------------------------------------------------------
# UXsim


def _uxsim_world(
    case: Case, *, deltan: int, cpp: bool, seed: int, duo_update_time: float, platoon: str, vehicle_logging: bool
) -> tuple[Any, list, np.ndarray]:
    """A finalised UXsim ``World`` for the case: ``(W, vehicles, trip_platoon)``."""
    from uxsim import World

    name = f"uxsim-{'cpp' if cpp else 'py'}"
    net = case.network
    W = World(
        name=f"{case.name}_{name}_d{deltan}",
        deltan=deltan,
        tmax=case.duration_s,
        print_mode=0,
        save_mode=0,
        show_mode=0,
        show_progress=0,
        cpp=cpp,
        random_seed=seed,
        duo_update_time=duo_update_time,
        vehicle_logging_timestep_interval=1 if vehicle_logging else -1,
    )
    for i in range(net.n_nodes):
        W.addNode(str(i), float(net.x[i]), float(net.y[i]))
    lanes = np.maximum(np.rint(net.lanes), 1).astype(int)
    jam_lane = net.jam_density_vpm / net.lanes
    for k in range(net.n_links):
        W.addLink(
            f"l{k}",
            str(int(net.src[k])),
            str(int(net.dst[k])),
            length=float(net.length_m[k]),
            free_flow_speed=float(net.free_speed_mps[k]),
            jam_density_per_lane=float(jam_lane[k]),
            number_of_lanes=int(lanes[k]),
        )
    po, pd, pt, trip_platoon = platoons(case, deltan, platoon)
    vehs = [W.addVehicle(str(int(o)), str(int(d)), float(t)) for o, d, t in zip(po, pd, pt, strict=False)]
    W.finalize_scenario()
    return W, vehs, trip_platoon


def uxsim_until_arrived(W: Any, *, check_s: float = CHECK_S, early_stop: bool = True) -> float:
    """Run a finalised UXsim ``World`` as its users do and return the wall seconds.

    ``exec_simulation(duration_t2=check_s)`` (exactly ``check_s`` simulated
    seconds; ``duration_t`` would run one step more) in a loop while
    ``check_simulation_ongoing()``, stopping as soon as no vehicle is left
    (``VEHICLES_LIVING`` empty: every vehicle has ended or aborted); with
    ``early_stop=False`` a single ``exec_simulation()`` to ``tmax``.  UXsim's
    end-of-run analysis (``simulation_terminated``: the analyzer's basic
    analysis, and the C++ wrapper's log rebuild) is held back while timing and
    run afterwards, untimed, so ``W.analyzer`` is filled either way.
    """
    W.simulation_terminated = lambda: None  # instance attribute: shadows the method while timing
    try:
        t0 = time.perf_counter()
        if early_stop:
            while W.check_simulation_ongoing():
                W.exec_simulation(duration_t2=check_s)
                if not W.VEHICLES_LIVING:
                    break
        else:
            W.exec_simulation()
        wall = time.perf_counter() - t0
    finally:
        del W.simulation_terminated
    W.simulation_terminated()
    return wall


def run_uxsim(
    case: Case,
    *,
    deltan: int = 1,
    cpp: bool = False,
    seed: int = 0,
    duo_update_time: float = 300.0,
    platoon: str = "consecutive",
    vehicle_logging: bool = False,
    early_stop: bool = True,
    check_s: float = CHECK_S,
    repeat: int = REPEAT,
) -> EngineResult:
    """Run the case through UXsim's Python (``cpp=False``) or C++ engine.

    Links get ``jam_density_per_lane = jam_density_vpm / lanes`` (0.2) and
    ``number_of_lanes = round(lanes)``; UXsim derives capacity from its own FD
    (which equals ``make_network``'s default).  Signals are not transferred.
    Per-vehicle trajectory logging is off unless ``vehicle_logging`` (it is not
    needed for the measures and costs UXsim about half its run time at deltan=1);
    route choice is UXsim's default DUO, updated every ``duo_update_time`` s
    (our re-routing period).  The world is built afresh for each of ``repeat``
    runs (untimed) and run by :func:`uxsim_until_arrived`; the fastest run is
    reported (UXsim is deterministic for a given ``seed``, so the runs' measures
    agree; the fastest run's are kept).
    """
    name = f"uxsim-{'cpp' if cpp else 'py'}"
    res = EngineResult(engine=name, case=case.name, deltan=deltan, trips=case.n_trips)
    walls: list[float] = []
    best: tuple | None = None
    with _PeakRSS() as mem:
        for _ in range(max(int(repeat), 1)):
            t0 = time.perf_counter()
            W, vehs, trip_platoon = _uxsim_world(
                case,
                deltan=deltan,
                cpp=cpp,
                seed=seed,
                duo_update_time=duo_update_time,
                platoon=platoon,
                vehicle_logging=vehicle_logging,
            )
            build = time.perf_counter() - t0
            wall = uxsim_until_arrived(W, check_s=check_s, early_stop=early_stop)
            walls.append(wall)
            if best is None or wall < best[0]:
                dt = float(W.DELTAT)
                arr = np.full(len(vehs), np.nan)
                for i, v in enumerate(vehs):
                    # both engines: arrival_time is a time-step index (-1 = not arrived)
                    if v.state == "end" and v.arrival_time >= 0:
                        arr[i] = v.arrival_time * dt
                best = (
                    wall,
                    build,
                    arr,
                    trip_platoon,
                    len(vehs),
                    float(W.T * dt),
                    int(W.analyzer.trip_completed),
                    float(W.analyzer.average_travel_time),
                )
            del W, vehs
            gc.collect()
    res.peak_rss_mb = mem.peak_mb
    res.wall_s, res.build_s, arr, trip_platoon, n_platoons, res.sim_end_s, completed, avg_tt = best
    res.vehicles = int(n_platoons * deltan)
    summarise(res, case.trips.depart_s, arr[trip_platoon], min(res.sim_end_s, case.duration_s))
    res.extra["wall_runs_s"] = walls
    res.extra["early_stop"] = early_stop
    res.extra["platoons"] = n_platoons
    res.extra["platoon_mode"] = platoon
    res.extra["uxsim_trip_completed"] = completed
    res.extra["uxsim_average_travel_time"] = avg_tt
    if res.vehicles != case.n_trips:
        res.note = f"{n_platoons} platoons x {deltan} = {res.vehicles} vehicles for {case.n_trips} trips"
    return res


# ---------------------------------------------------------------------------
# SUMO


def _sumo_binary(tool: str) -> str | None:
    """Path of a SUMO binary: the eclipse-sumo wheel's own (not the Python entry-point
    wrapper, which would add interpreter start-up to the timing and hide the real
    process from the memory sampler), else whatever is on PATH.
    """
    try:
        import sumo  # the eclipse-sumo wheel

        cand = Path(sumo.SUMO_HOME) / "bin" / tool
        if cand.is_file() and os.access(cand, os.X_OK):
            return str(cand)
    except ImportError:
        pass
    return shutil.which(tool)


def _sumo_env() -> dict[str, str]:
    env = dict(os.environ)
    try:
        import sumo

        env.setdefault("SUMO_HOME", str(sumo.SUMO_HOME))
    except ImportError:
        pass
    return env


def _write_sumo_inputs(case: Case, folder: Path) -> tuple[Path, Path, Path]:
    net = case.network
    nod = folder / "net.nod.xml"
    edg = folder / "net.edg.xml"
    with open(nod, "w") as f:
        f.write("<nodes>\n")
        for i in range(net.n_nodes):
            f.write(f'  <node id="n{i}" x="{net.x[i]:.2f}" y="{net.y[i]:.2f}" type="priority"/>\n')
        f.write("</nodes>\n")
    lanes = np.maximum(np.rint(net.lanes), 1).astype(int)
    with open(edg, "w") as f:
        f.write("<edges>\n")
        for k in range(net.n_links):
            f.write(
                f'  <edge id="e{k}" from="n{net.src[k]}" to="n{net.dst[k]}" numLanes="{lanes[k]}" '
                f'speed="{net.free_speed_mps[k]:.4f}" length="{net.length_m[k]:.2f}"/>\n'
            )
        f.write("</edges>\n")
    trips = folder / "trips.xml"
    tr = case.trips
    # 3 m cars + 2 m gap: 0.2 veh/m jam density per lane, as in UXsim and ours
    with open(trips, "w") as f:
        f.write('<routes>\n  <vType id="car" length="3.0" minGap="2.0"/>\n')
        for i in np.argsort(tr.depart_s, kind="stable"):
            f.write(
                f'  <trip id="{int(tr.trip_id[i])}" type="car" depart="{tr.depart_s[i]:.2f}" '
                f'fromJunction="n{tr.origin[i]}" toJunction="n{tr.destination[i]}"/>\n'
            )
        f.write("</routes>\n")
    return nod, edg, trips


def run_sumo(
    case: Case,
    *,
    meso: bool = False,
    timeout_s: float = 900.0,
    seed: int = 0,
    reroute_s: float = 300.0,
    workdir: str | Path | None = None,
    early_stop: bool = True,
    repeat: int = REPEAT,
) -> EngineResult:
    """Run the case through SUMO (microscopic, or mesoscopic with ``meso=True``).

    The network is written as plain XML and converted with ``netconvert``
    (priority junctions, no U-turns except at dead ends); trips go in as
    ``<trip fromJunction toJunction>`` with ``--junction-taz`` and every vehicle
    has a rerouting device (period ``reroute_s``).  SUMO gets no ``--end``
    (with one it runs to that time even when the network is empty), so it stops
    by itself in the step its last vehicle arrives; ``early_stop=False`` gives
    it ``--end duration_s``.  Arrivals after ``duration_s`` (only possible
    without ``--end``) do not count as completed.  The ``sumo`` process is
    timed, ``repeat`` times (the fastest is reported); if a run goes past
    ``timeout_s`` it is killed, ``status="timeout"`` and no further run is made.
    """
    name = "sumo-meso" if meso else "sumo"
    res = EngineResult(engine=name, case=case.name, trips=case.n_trips)
    sumo_bin, netconvert_bin = _sumo_binary("sumo"), _sumo_binary("netconvert")
    if sumo_bin is None or netconvert_bin is None:
        res.status, res.note = "skipped", "sumo/netconvert not found"
        return res
    tmp = Path(tempfile.mkdtemp(prefix=f"bench_{case.name}_{name}_", dir=workdir))
    try:
        t0 = time.perf_counter()
        nod, edg, trips = _write_sumo_inputs(case, tmp)
        netfile = tmp / "net.net.xml"
        cmd = [
            netconvert_bin,
            "--node-files",
            str(nod),
            "--edge-files",
            str(edg),
            "-o",
            str(netfile),
            "--no-turnarounds.except-deadend",
            "--no-warnings",
        ]
        p = subprocess.run(cmd, capture_output=True, text=True, env=_sumo_env())
        if p.returncode != 0:
            res.status, res.note = "error", f"netconvert failed: {p.stderr.strip()[-400:]}"
            return res
        res.build_s = time.perf_counter() - t0
        walls: list[float] = []
        peak = 0.0
        for run in range(max(int(repeat), 1)):
            tripinfo = tmp / f"tripinfo{run}.xml"
            stats = tmp / f"stats{run}.xml"
            cmd = [
                sumo_bin,
                "-n",
                str(netfile),
                "-r",
                str(trips),
                "--junction-taz",
                "--begin",
                "0",
                "--seed",
                str(seed),
                "--device.rerouting.probability",
                "1",
                "--device.rerouting.period",
                f"{reroute_s:g}",
                "--tripinfo-output",
                str(tripinfo),
                "--tripinfo-output.write-unfinished",
                "--statistic-output",
                str(stats),
                "--no-step-log",
                "--no-warnings",
                "--duration-log.disable",
            ]
            if not early_stop:
                cmd += ["--end", f"{case.duration_s:g}"]
            if meso:
                cmd.append("--mesosim")
            with _PeakRSS() as mem:
                t0 = time.perf_counter()
                proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_sumo_env())
                mem.watch(proc.pid)
                try:
                    _, err = proc.communicate(timeout=timeout_s)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.communicate()
                    res.wall_s = time.perf_counter() - t0
                    res.status, res.note = "timeout", f"sumo ran past {timeout_s:g} s and was stopped"
                    res.extra["wall_runs_s"] = walls + [res.wall_s]
                    return res
                wall = time.perf_counter() - t0
            peak = max(peak, mem.peak_mb or 0.0)
            if proc.returncode != 0:
                res.status, res.note = "error", f"sumo failed: {err.strip()[-400:]}"
                return res
            walls.append(wall)
            if wall == min(walls):
                best_tripinfo, best_stats = tripinfo, stats
            else:
                tripinfo.unlink(missing_ok=True)
                stats.unlink(missing_ok=True)
        res.wall_s = min(walls)
        res.peak_rss_mb = peak or None
        res.extra["wall_runs_s"] = walls
        res.extra["early_stop"] = early_stop
        arr = np.full(case.n_trips, np.nan)
        index = {int(t): i for i, t in enumerate(case.trips.trip_id)}
        for _, el in ET.iterparse(best_tripinfo):
            if el.tag != "tripinfo":
                continue
            a = float(el.get("arrival", "-1"))
            if a >= 0:
                arr[index[int(el.get("id"))]] = a
            el.clear()
        res.vehicles = case.n_trips
        try:
            root = ET.parse(best_stats).getroot()
            perf = root.find("performance")
            tel = root.find("teleports")
            veh = root.find("vehicles")
            if perf is not None:
                res.sim_end_s = float(perf.get("end"))
            if tel is not None:
                res.extra["teleports"] = int(tel.get("total", 0))
            if veh is not None:
                res.extra["loaded"] = int(veh.get("loaded", 0))
                res.extra["inserted"] = int(veh.get("inserted", 0))
        except (ET.ParseError, OSError, TypeError, ValueError):
            pass
        end = case.duration_s if res.sim_end_s is None else min(res.sim_end_s, case.duration_s)
        summarise(res, case.trips.depart_s, arr, end)
        notes = []
        if res.extra.get("teleports"):
            notes.append(f"{res.extra['teleports']} teleports")
        if res.sim_end_s is not None and res.sim_end_s > case.duration_s:
            notes.append(f"ran to {res.sim_end_s:g} s, past the {case.duration_s:g} s horizon")
        res.note = "; ".join(notes)
        return res
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------------------
# ours


def _our_model() -> Any:
    """``twin.traffic.TrafficModel``, or a message if it does not import."""
    try:
        from twin.traffic import TrafficModel
    except ImportError as exc:
        return f"our engine is not importable ({exc})"
    return TrafficModel


def ours_until_arrived(
    case: Case,
    *,
    step_s: float = 2.0,
    reroute_s: float = 300.0,
    check_s: float = CHECK_S,
    early_stop: bool = True,
    route_tolerance: float = 0.02,
) -> dict[str, Any]:
    """One run of our engine, driven as ``twin.traffic.simulate`` drives it, but
    stopping once every trip has arrived.

    Routes are refreshed (``update_routes(reroute_s)``) every ``reroute_s`` and
    the model advanced in between (``advance_to``); every ``check_s`` of
    simulated time the run stops if every trip has arrived (the arrivals that
    ``advance_to`` returns are summed), else it goes on to ``duration_s``.
    With ``reroute_s == check_s`` (300 s) and no early stop this is exactly
    ``simulate``'s loop.  Returns ``wall_s`` (the loop only, as ``simulate``'s
    ``wall_s``), ``build_s`` (model and trips), ``sim_end_s``, ``arrive_s``.
    """
    TrafficModel = _our_model()
    if isinstance(TrafficModel, str):
        raise ImportError(TrafficModel)
    t0 = time.perf_counter()
    m = TrafficModel(case.network, step_s=step_s, route_tolerance=route_tolerance)
    m.add_trips(case.trips.origin, case.trips.destination, case.trips.depart_s)
    n = m.n_vehicles
    build = time.perf_counter() - t0
    duration = float(case.duration_s)
    t0 = time.perf_counter()
    t, next_route, next_check, arrived = 0.0, 0.0, check_s, 0
    while t < duration:
        if t >= next_route:
            m.update_routes(reroute_s)
            next_route = t + reroute_s
        t = min(next_route, next_check, duration)
        arrived += m.advance_to(t)
        if t >= next_check:
            next_check = t + check_s
            if early_stop and arrived >= n:
                break
    wall = time.perf_counter() - t0
    return {
        "wall_s": wall,
        "build_s": build,
        "sim_end_s": float(m.now),
        "arrive_s": m.veh.arrive.copy(),
        "counts": m.counts(),
    }


def run_ours(
    case: Case,
    *,
    step_s: float = 2.0,
    reroute_s: float = 300.0,
    warm: bool = True,
    early_stop: bool = True,
    check_s: float = CHECK_S,
    repeat: int = REPEAT,
) -> EngineResult:
    """Run our engine (:func:`ours_until_arrived`): a first, cold call (JIT
    compile or numba cache load, model set-up included: ``cold_wall_s``), then
    ``repeat`` warm runs, the fastest reported (``wall_s``: the simulation loop
    only).  ``warm=False`` reports the cold call's loop alone.
    """
    res = EngineResult(engine="ours", case=case.name, trips=case.n_trips, vehicles=case.n_trips)
    model = _our_model()
    if isinstance(model, str):
        res.status, res.note = "skipped", model
        return res
    kw = dict(step_s=step_s, reroute_s=reroute_s, check_s=check_s, early_stop=early_stop)
    walls: list[float] = []
    with _PeakRSS() as mem:
        t0 = time.perf_counter()
        best = ours_until_arrived(case, **kw)
        res.cold_wall_s = time.perf_counter() - t0
        if warm:
            best = None
            for _ in range(max(int(repeat), 1)):
                out = ours_until_arrived(case, **kw)
                walls.append(out["wall_s"])
                if best is None or out["wall_s"] < best["wall_s"]:
                    best = out
    res.peak_rss_mb = mem.peak_mb
    res.wall_s, res.build_s, res.sim_end_s = best["wall_s"], best["build_s"], best["sim_end_s"]
    res.extra["wall_runs_s"] = walls
    res.extra["early_stop"] = early_stop
    res.extra["counts"] = best["counts"]
    res.extra["ru_maxrss_mb"] = _ru_maxrss_mb()
    summarise(
        res, case.trips.depart_s, np.asarray(best["arrive_s"], dtype=np.float64), min(res.sim_end_s, case.duration_s)
    )
    return res


# ---------------------------------------------------------------------------
# registry


#: peer name -> list of (label, runner name in this module, fixed keyword arguments)
PEERS: dict[str, list[tuple[str, str, dict[str, Any]]]] = {
    "uxsim-cpp": [(f"uxsim-cpp d={d}", "run_uxsim", {"deltan": d, "cpp": True}) for d in (1, 5)],
    "uxsim-py": [(f"uxsim-py d={d}", "run_uxsim", {"deltan": d, "cpp": False}) for d in (1, 5)],
    "sumo": [("sumo", "run_sumo", {})],
    "sumo-meso": [("sumo-meso", "run_sumo", {"meso": True})],
}


def _call(runner: str, case: Case, kw: dict[str, Any]) -> EngineResult:
    res = globals()[runner](case, **kw)
    if runner != "run_sumo":  # sumo's peak is its own process's, sampled
        res.peak_rss_mb = _ru_maxrss_mb()
    return res


def run_engine(label: str, runner: str, case: Case, *, isolate: bool = True, **kw: Any) -> EngineResult:
    """Run one engine configuration, by default in a forked child process.

    Isolation keeps one engine's memory (UXsim holds on to gigabytes after a
    large case) out of the next one's figures; ``peak_rss_mb`` is then the
    child's peak resident memory (``ru_maxrss``), SUMO's own process for SUMO.
    An exception becomes ``status="error"`` so one peer cannot sink the run.
    """
    log.info("%s: running %s", case.name, label)
    try:
        if isolate:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor

            with ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("fork")) as pool:
                res = pool.submit(_call, runner, case, kw).result()
        else:
            res = globals()[runner](case, **kw)
    except Exception as exc:  # noqa: BLE001
        log.exception("%s on %s failed", label, case.name)
        engine, _, d = label.partition(" d=")
        res = EngineResult(
            engine=engine,
            case=case.name,
            deltan=int(d) if d else None,
            trips=case.n_trips,
            status="error",
            note=f"{type(exc).__name__}: {exc}",
        )
    log.info(
        "%s: %s done (%s, wall %s s)",
        case.name,
        label,
        res.status,
        f"{res.wall_s:.2f}" if res.wall_s is not None else "-",
    )
    return res
