"""The hidden "truth" run and the recorded sample day it produces.

A twin is judged by how well it follows a city it cannot see. This module makes such a
city: the scenario's synthetic city with **perturbed demand** (its own seed, a demand
scale, random zone and hour factors) and a few **unannounced incidents** (capacity drops
and a closure through ``twin.link_control``), and records what a city platform would
have sent from it: noisy ``TrafficFlowObserved`` messages every 5 minutes from sensors
on a subset of links, and ``Alert`` messages for some of the incidents (late, as real
reports are; one incident is never reported). The recording also carries the faults a
live feed has: delayed and duplicated deliveries, malformed and implausible messages,
a stuck sensor, unknown sensors and off-network locations, so replaying it exercises
cleansing too.

Write the shipped sample (deterministic by seed; the same bytes every time)::

    python -m experiments.truth                         # a new folder runs/truth-light_day-seed2024[-N]
    python -m experiments.truth --out /tmp/day --seed 7
    python -m experiments.truth --update-sample         # maintainers: scenarios/library/feeds/sample_day.*

Without ``--update-sample`` the shipped sample is never written over (not even with
``--out`` naming its folder).

From Python (the twin-vs-truth experiment keeps the truth's link series for scoring)::

    run = run_truth(TruthConfig(), scenario="light_day")
    run.dataset.link_speed        # the truth, every link
    run.messages                  # [(arrival sim s, envelope dict)], arrival order
    run.sensors                   # the sensor links (the rest are held out)

Sensors come in three kinds, as on a real platform: ``det-*`` send keyValues with a
``refRoadSegment``; ``loop-*`` send the normalized form with a LineString location and
speeds in m/s (``unitCode`` ``MTS``); ``cam-*`` send neither, and the sensor table
(``*_sensors.csv``) maps them (by link, or by lon/lat and heading).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import io
import json
import logging
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from basics.atomic import write_bytes
from city_models.demand import gravity_trips, write_trips_csv
from experiments.truth_feed import record_feed
from scenarios import Scenario, builtin_scenarios, load_scenario, parse_clock
from twin.model import Twin, build_city
from twin.rng import component_rng

__all__ = [
    "TruthConfig",
    "TruthIncident",
    "TruthRun",
    "run_truth",
    "write_sample",
    "main",
    "SAMPLE_DIR",
    "DEFAULT_INCIDENTS",
]

log = logging.getLogger(__name__)

SAMPLE_DIR = Path(__file__).resolve().parent.parent / "scenarios" / "library" / "feeds"


@dataclass(frozen=True)
class TruthIncident:
    """An incident in the truth run.

    Attributes
    ----------
    name : str
        Label (in the metadata only: the twin never sees it).
    link_kind : str
        Kind of link it strikes (picked at random among them; any link if none).
    start, end : str
        Clock times ``"HH:MM"``.
    capacity_factor : float
        Capacity left (ignored when ``closed``).
    closed : bool
        Closed to traffic (both directions of the street).
    alert : str or None
        ``subCategory`` of the Alert the platform sends, or ``None``: never reported.
    report_delay_s : float
        Seconds after ``start`` the Alert is issued (negative: announced beforehand).
    """

    name: str
    link_kind: str
    start: str
    end: str
    capacity_factor: float = 0.3
    closed: bool = False
    alert: str | None = "carAccident"
    report_delay_s: float = 300.0


DEFAULT_INCIDENTS: tuple[TruthIncident, ...] = (
    TruthIncident(
        "crash on an arterial, morning peak",
        "arterial",
        "07:35",
        "08:20",
        0.25,
        alert="carAccident",
        report_delay_s=420.0,
    ),
    TruthIncident("road works on a bridge", "bridge", "10:00", "15:00", 0.5, alert="roadWorks", report_delay_s=-600.0),
    TruthIncident(
        "street closed (burst water main)",
        "local",
        "13:00",
        "14:00",
        0.0,
        closed=True,
        alert="roadClosed",
        report_delay_s=120.0,
    ),
    TruthIncident("unreported breakdown, evening peak", "arterial", "16:40", "17:40", 0.4, alert=None),
)


@dataclass(frozen=True)
class TruthConfig:
    """How the truth differs from the twin's scenario, and how its sensors report.

    Attributes
    ----------
    seed : int
        Seed of everything random here (demand, incidents, sensors, noise, faults).
    demand_scale : float
        Trips relative to the scenario's ``total_trips``.
    zone_sigma, hour_sigma : float
        Log-normal spread of the zones' residents/jobs factors and the hourly profile factors.
    sensor_share : float
        Share of links with a sensor.
    interval_s : float
        Observation period.
    date : str
        Calendar day of the scenario start.
    count_cv, count_sd : float
        Count noise: ``round(n * exp(N(0, count_cv)) + N(0, count_sd))``, at least 0.
    speed_cv, occupancy_cv : float
        Log-normal noise of speeds and occupancy.
    delay_rate, duplicate_rate, malformed_rate, implausible_rate : float
        Shares of observation messages delayed 1-15 min, delivered twice, garbled or
        implausible.
    incidents : tuple of TruthIncident
        Incidents (those outside the scenario's window are left out).
    """

    seed: int = 2024
    demand_scale: float = 1.15
    zone_sigma: float = 0.25
    hour_sigma: float = 0.10
    sensor_share: float = 0.15
    interval_s: float = 300.0
    date: str = "2024-05-14"
    count_cv: float = 0.08
    count_sd: float = 1.0
    speed_cv: float = 0.07
    occupancy_cv: float = 0.10
    delay_rate: float = 0.02
    duplicate_rate: float = 0.005
    malformed_rate: float = 0.001
    implausible_rate: float = 0.001
    incidents: tuple[TruthIncident, ...] = DEFAULT_INCIDENTS


@dataclass
class TruthRun:
    """What :func:`run_truth` returns."""

    config: TruthConfig
    scenario: Any  # the truth's scenario (its demand is the perturbed trips table)
    dataset: Any  # xarray.Dataset of the truth run
    sensors: list[dict]  # {"id", "link", "kind"}
    messages: list[tuple[float, dict]]  # (arrival sim s, envelope), in arrival order
    incidents: list[dict]  # hidden: what happened where and when
    demand: dict  # hidden: the zone and hour factors
    sensor_table: list[dict] = field(default_factory=list)  # rows for the twin's sensor table


# ------------------------------------------------------------------------ the truth run


def _perturbed_trips(scenario, city, cfg: TruthConfig, rng: np.random.Generator, folder: Path):

    g = scenario.demand.gravity
    if g is None:
        raise ValueError("the truth run perturbs a gravity demand; the scenario has a trips table")
    z, net = city.zones, city.network
    f_res = np.exp(rng.normal(0.0, cfg.zone_sigma, z.n_zones))
    f_job = np.exp(rng.normal(0.0, cfg.zone_sigma, z.n_zones))
    f_hour = np.exp(rng.normal(0.0, cfg.hour_sigma, 24))
    profile = np.asarray(g.profile) * f_hour
    trips = gravity_trips(
        node_zone=z.node_zone,
        residents=np.rint(z.residents * f_res).astype(np.int64),
        jobs=np.rint(z.jobs * f_job).astype(np.int64),
        zone_x=z.x,
        zone_y=z.y,
        node_x=net.x,
        node_y=net.y,
        rng=rng,
        total_trips=int(round(g.total_trips * cfg.demand_scale)),
        duration_s=float(scenario.time.duration),
        start_s=float(scenario.time.start),
        beta_per_km=g.beta_per_km,
        profile=profile,
    )
    path = folder / "truth_trips.csv"
    write_trips_csv(trips, net, path)
    demand = {
        "total_trips": int(trips.trip_id.shape[0]),
        "demand_scale": cfg.demand_scale,
        "zone_residents_factor": [round(float(v), 6) for v in f_res],
        "zone_jobs_factor": [round(float(v), 6) for v in f_job],
        "hour_factor": [round(float(v), 6) for v in f_hour],
    }
    return path, demand


def _pick_link(net, kind: str, rng: np.random.Generator, taken: set[int]) -> int:
    kinds = np.asarray(net.link_kind).astype(str)
    pool = [int(k) for k in np.flatnonzero(kinds == kind) if k not in taken]
    if not pool:
        pool = [k for k in range(net.n_links) if k not in taken]
    return int(pool[int(rng.integers(len(pool)))])


def _reverse(net, link: int) -> int | None:
    s, d = int(net.src[link]), int(net.dst[link])
    for k in range(int(net.out_indptr[d]), int(net.out_indptr[d + 1])):
        out = int(net.out_links[k])
        if int(net.dst[out]) == s:
            return out
    return None


def _schedule_incidents(twin, cfg: TruthConfig, rng: np.random.Generator) -> list[dict]:

    net = twin.city.network
    start, duration = twin.start_s, twin.duration_s
    out: list[dict] = []
    taken: set[int] = set()
    for inc in cfg.incidents:
        t0 = (parse_clock(inc.start) - start) % 86400.0
        t1 = (parse_clock(inc.end) - start) % 86400.0
        if not (0 <= t0 < t1 <= duration):
            continue
        link = _pick_link(net, inc.link_kind, rng, taken)
        links = [link]
        if inc.closed and (rev := _reverse(net, link)) is not None:
            links.append(rev)
        taken.update(links)
        rec = {
            "name": inc.name,
            "links": links,
            "start_s": t0,
            "end_s": t1,
            "closed": inc.closed,
            "capacity_factor": 0.0 if inc.closed else inc.capacity_factor,
            "alert": inc.alert,
            "report_delay_s": inc.report_delay_s,
        }
        out.append(rec)
        twin.env.process(_incident_process(twin, rec))
    return out


def _incident_process(twin, rec: dict):
    yield twin.env.timeout(rec["start_s"])
    h = twin.link_control.apply(
        rec["links"],
        source="truth incident",
        closed=rec["closed"],
        capacity_factor=1.0 if rec["closed"] else rec["capacity_factor"],
    )
    yield twin.env.timeout(rec["end_s"] - rec["start_s"])
    twin.link_control.revert(h)


def run_truth(
    config: TruthConfig = TruthConfig(), *, scenario: Any = "light_day", overrides: dict | None = None
) -> TruthRun:
    """Run the hidden truth and record its feed.

    Parameters
    ----------
    config : TruthConfig
        Perturbations, sensors, noise and faults.
    scenario : str, path, dict or Scenario
        The twin's scenario (its city, window and unperturbed demand).
    overrides : dict, optional
        ``load_scenario`` overrides (``{"time.duration": "2h"}``).
    """
    base = (
        scenario
        if isinstance(scenario, Scenario) and not overrides
        else load_scenario(scenario.resolved() if isinstance(scenario, Scenario) else scenario, overrides=overrides)
    )
    city = build_city(base.city)
    rng_demand = component_rng(config.seed, "truth demand")
    with tempfile.TemporaryDirectory(prefix="truth-") as tmp:
        trips_csv, demand = _perturbed_trips(base, city, config, rng_demand, Path(tmp))
        spec = base.resolved()
        spec.update(name=f"{base.name}-truth", seed=config.seed, demand={"trips": str(trips_csv)})
        spec["outputs"] = {**spec["outputs"], "interval": config.interval_s}
        truth_scn = load_scenario(spec)
        twin = Twin(truth_scn, city=city)
    incidents = _schedule_incidents(twin, config, component_rng(config.seed, "truth incidents"))
    twin.run()
    ds = twin.results()

    sensors, table, messages = record_feed(
        ds, city.network, config, incidents, component_rng(config.seed, "truth feed"), start_s=twin.start_s
    )
    return TruthRun(config, truth_scn, ds, sensors, messages, incidents, demand, table)


# ---------------------------------------------------------------------- writing files


def _atomic_write(path: Path, data: bytes) -> None:

    write_bytes(path, data)


def feed_bytes(messages: list[tuple[float, dict]]) -> bytes:
    """The gzipped JSONL of a recorded feed (byte-identical for identical messages)."""
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as gz:
        for _, env in messages:
            gz.write(json.dumps(env, separators=(",", ":"), ensure_ascii=False).encode("utf-8") + b"\n")
    return buf.getvalue()


def write_sample(run: TruthRun, out: str | Path, *, name: str = "sample_day") -> dict[str, Path]:
    """Write ``NAME.jsonl.gz`` (the feed), ``NAME_sensors.csv`` (the sensor table),
    ``NAME.meta.json`` (the hidden truth: incidents, demand factors, sensors, noise) and
    ``NAME.yaml`` (a twin scenario replaying the feed) into folder ``out``, atomically.
    """
    out = Path(out)
    feed = feed_bytes(run.messages)
    paths = {
        "feed": out / f"{name}.jsonl.gz",
        "sensors": out / f"{name}_sensors.csv",
        "meta": out / f"{name}.meta.json",
        "scenario": out / f"{name}.yaml",
    }
    _atomic_write(paths["feed"], feed)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=["id", "link", "segment", "lon", "lat", "heading_deg"], lineterminator="\n")
    w.writeheader()
    for row in run.sensor_table:
        w.writerow(row)
    _atomic_write(paths["sensors"], buf.getvalue().encode())
    cfg = asdict(run.config)
    cfg["incidents"] = [asdict(i) for i in run.config.incidents]
    meta = {
        "about": "Hidden truth behind the recorded feed: never give this to the twin; score against it.",
        "feed_sha256": hashlib.sha256(feed).hexdigest(),
        "messages": len(run.messages),
        "config": cfg,
        "scenario": run.scenario.name,
        "demand": run.demand,
        "incidents": run.incidents,
        "sensors": run.sensors,
        "regenerate": (
            f"python -m experiments.truth --update-sample --seed {run.config.seed}"
            if _is_sample_dir(out)
            else f"python -m experiments.truth --out {out} --seed {run.config.seed}"
        ),
    }
    _atomic_write(paths["meta"], (json.dumps(meta, indent=1) + "\n").encode())

    base = run.scenario.name.removesuffix("-truth")
    # the twin's scenario is the truth's base scenario (a built-in one by name, so the file
    # works from any folder); otherwise only its city is known here
    parent = f"extends: {base}\n" if base in builtin_scenarios() else "city:\n  synthetic: {}\n"
    yaml_text = (
        f"# The twin's view of the recorded sample day: the {base} scenario, fed by the\n"
        f"# truth run's messages (python -m experiments.truth regenerates all of these files).\n"
        f"{parent}"
        f"name: {name}\n"
        f"description: >-\n  The {base} scenario followed live through its recorded sample feed\n"
        f"  (truth seed {run.config.seed}: perturbed demand and unannounced incidents).\n"
        f'feeds:\n  date: "{run.config.date}"\n  sources:\n    - {{kind: replay, path: {paths["feed"].name}}}\n'
        f"  sensor_file: {paths['sensors'].name}\n"
    )
    _atomic_write(paths["scenario"], yaml_text.encode())
    return paths


def _is_sample_dir(folder: str | Path) -> bool:
    return os.path.realpath(folder) == os.path.realpath(SAMPLE_DIR)


def _new_folder(base: Path) -> Path:
    """``base``, or ``base-2``, ``base-3``, ... : the first that does not exist yet."""
    if not base.exists():
        return base
    for i in range(2, 10_000):
        candidate = base.with_name(f"{base.name}-{i}")
        if not candidate.exists():
            return candidate
    raise FileExistsError(f"no free folder name beside {base} (tried {base.name}-2 ... -9999)")


def main(argv: list[str] | None = None) -> int:
    """``python -m experiments.truth``: run the truth and write the sample files."""
    p = argparse.ArgumentParser(prog="python -m experiments.truth", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--out",
        help="folder for the files (default: a new folder runs/truth-SCENARIO-seedSEED[-N]); "
        "never the shipped sample's folder",
    )
    p.add_argument(
        "--update-sample",
        action="store_true",
        help="write the shipped sample (scenarios/library/feeds) itself: for maintainers",
    )
    p.add_argument("--name", default="sample_day", help="file name stem")
    p.add_argument("--scenario", default="light_day", help="the twin's scenario (name or file)")
    p.add_argument("--seed", type=int, default=TruthConfig.seed, help="truth seed")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.update_sample and args.out and not _is_sample_dir(args.out):
        p.error("--update-sample writes the shipped sample's folder; leave --out out")
    if args.update_sample:
        out = SAMPLE_DIR
    elif args.out:
        out = Path(args.out)
        if _is_sample_dir(out):
            p.error(f"--out {args.out} is the shipped sample's folder; it is written only with --update-sample")
    else:
        stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in Path(args.scenario).stem)[:80]
        out = _new_folder(Path("runs") / f"truth-{stem}-seed{args.seed}")
    t0 = time.perf_counter()
    print(f"running the truth of {args.scenario} (seed {args.seed}); files go to {out}", flush=True)  # CLI output
    run = run_truth(TruthConfig(seed=args.seed), scenario=args.scenario)
    paths = write_sample(run, out, name=args.name)
    for k, v in paths.items():
        print(f"{k:9s} {v}  ({v.stat().st_size:,} bytes)")  # CLI output
    print(
        f"messages  {len(run.messages):,}; sensors {len(run.sensors)}; incidents {len(run.incidents)}; "
        f"{time.perf_counter() - t0:.0f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
