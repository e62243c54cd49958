"""Twin versus truth: does assimilation make the twin follow a city it cannot see.

A hidden truth run (:func:`experiments.truth.run_truth`: perturbed demand, a few
unannounced incidents) sends noisy detector messages from a subset of links and
some (late) incident alerts.  Two ensembles of twins of the *nominal* scenario
then replay that feed through the real cleansing path (:class:`twin.feeds.FeedHub`):

- **open loop**: the feed is ignored (no demand estimation, no link corrections,
  no alerts): what a plain simulation of the scenario predicts;
- **assimilated**: the Kalman filter on the demand factors by origin zone,
  destination zone and clock hour (or, with ``--set method=enkf``, the ensemble
  Kalman filter), the link corrections and the alerts (:mod:`twin.live`);
  each interval's estimate is the one issued once that interval's counts were in;
- **oracle** (unless ``--no-oracle``): the open loop given the truth's own demand
  factors (:func:`true_factors`, from the truth's hidden metadata): what a perfect
  estimate of the demand would score, the ceiling of any demand estimator here.
  ``achieved`` is the share of the oracle's gain over the open loop that the
  assimilated twin makes.

Scores are on **held-out** links (links with traffic that carry no sensor):
RMSE of link flow (veh/h, per 5-minute interval and per hour) and of link speed
(per interval), open loop versus assimilated, and the coverage of the reported
90 % band (the share of held-out link-intervals where the truth lies inside it).
The truth's link counts are Poisson-like, so even a perfect model of the mean
keeps an RMSE of about the square root of the mean count (``floor_*``); 5-minute
RMSEs are mostly that floor, so the hourly RMSE is the one that measures how
well the twin knows the demand (``flow_excess_hourly`` is its part above the
floor).  Most 5-minute counts on held-out links are below one vehicle, where any
band holding a discrete count's 5th-95th percentiles covers more than 90 %;
``flow_coverage_busy`` is the coverage where the estimate expects 3 or more.

Run::

    python -m experiments.twin_vs_truth --members 12           # the light day (the benchmark)
    python -m experiments.twin_vs_truth --duration 6h --start 06:00 --members 6
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from basics.atomic import write_bytes
from basics.errors import InputError
from city_models.demand import gravity_shares
from experiments.truth import TruthConfig, run_truth
from scenarios import load_scenario
from scenarios.feeds import FeedsSpec
from twin.feeds import FeedHub
from twin.live import AssimilationSettings, Ensemble

__all__ = ["TruthScore", "run_experiment", "score", "true_factors", "main", "result_table"]


@dataclass
class TruthScore:
    """How close one twin's estimates came to the hidden truth (RMSE of counts and speeds)."""

    #: RMSE a perfect model of the mean would still have: the truth's own Poisson noise
    floor_5min: float
    floor_hourly: float
    flow_rmse_5min: float
    flow_rmse_hourly: float
    #: the part of the hourly RMSE above the truth's own noise, sqrt(rmse^2 - floor^2): what
    #: a model can remove at all (it still holds the twin's own sampling noise)
    flow_excess_hourly: float
    speed_rmse: float
    flow_coverage: float
    #: coverage where the estimate expects 3 or more vehicles in the interval (a smaller
    #: count's discreteness makes any band that holds its 5th-95th percentiles cover more)
    flow_coverage_busy: float
    speed_coverage: float
    links: int
    intervals: int


def _rmse(a: np.ndarray, b: np.ndarray) -> float:
    ok = np.isfinite(a) & np.isfinite(b)
    return float(np.sqrt(np.mean((a[ok] - b[ok]) ** 2))) if ok.any() else math.nan


def score(est, truth_ds, held: np.ndarray, *, interval_s: float) -> TruthScore:
    """Scores of an ensemble estimate (``Ensemble.dataset()``) against the truth on ``held`` links."""
    t_est = est.time.values
    t_tru = truth_ds.time.values
    common, ie, it = np.intersect1d(np.round(t_est, 6), np.round(t_tru, 6), return_indices=True)
    to_vph = 3600.0 / interval_s
    tf = truth_ds.link_outflow.values[it][:, held] * to_vph
    ts = truth_ds.link_speed.values[it][:, held]
    ef = est.est_flow.values[ie][:, held]
    es = est.est_speed.values[ie][:, held]
    per_hour = max(1, int(round(3600.0 / interval_s)))
    n_h = tf.shape[0] // per_hour  # whole hours (none in a run under an hour: hourly scores NaN)
    hf_t = (
        tf[: n_h * per_hour].reshape(n_h, per_hour, tf.shape[1]).mean(axis=1)
        if n_h
        else np.full((0, tf.shape[1]), np.nan)
    )
    hf_e = (
        ef[: n_h * per_hour].reshape(n_h, per_hour, ef.shape[1]).mean(axis=1)
        if n_h
        else np.full((0, ef.shape[1]), np.nan)
    )
    lo, hi = est.est_flow_p05.values[ie][:, held], est.est_flow_p95.values[ie][:, held]
    slo, shi = est.est_speed_p05.values[ie][:, held], est.est_speed_p95.values[ie][:, held]
    counts = tf / to_vph
    rmse_h = _rmse(hf_e, hf_t)
    floor_h = float(np.sqrt(np.mean(counts) / per_hour) * to_vph)
    return TruthScore(
        floor_5min=float(np.sqrt(np.mean(counts)) * to_vph),
        floor_hourly=floor_h,
        flow_rmse_5min=_rmse(ef, tf),
        flow_rmse_hourly=rmse_h,
        flow_excess_hourly=float(math.sqrt(max(rmse_h**2 - floor_h**2, 0.0))),
        speed_rmse=_rmse(es, ts),
        flow_coverage=float(np.mean((tf >= lo) & (tf <= hi))),
        flow_coverage_busy=float(np.mean(((tf >= lo) & (tf <= hi))[ef >= 3.0 * to_vph])),
        speed_coverage=float(np.mean((ts >= slo) & (ts <= shi))),
        links=int(held.size),
        intervals=int(common.size),
    )


def _replay(ensemble, truth, hub, *, step_s: float, until_s: float, before_step=None, on_step=None) -> None:
    """Push the truth's messages as they arrive and advance the ensemble, ``step_s`` at a time
    (``before_step(t)``, if given, runs before each step from ``t``; ``on_step(t)`` after it).
    """
    msgs = truth.messages
    k = 0
    t = 0.0
    while t < until_s - 1e-9:
        if before_step is not None:
            before_step(t)
        t = min(t + step_s, until_s)
        while k < len(msgs) and msgs[k][0] <= t:
            env = msgs[k][1]  # an envelope: {"receivedAt", "payload" | "raw"}
            hub.push(env["payload"] if "payload" in env else env.get("raw", env), source="truth")
            k += 1
        ensemble.advance(t, hub.drain(t))
        if on_step is not None:
            on_step(t)


def true_factors(truth, city, scenario) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The truth's demand relative to the scenario's, in the ensemble's own terms: log
    factors by origin zone and by destination zone, and the log level of each clock hour
    (hidden from the twin: the oracle row uses them).

    Both demands are doubly-constrained gravity models, ``T_ij = a_i P_i b_j A_j f_ij``, so
    the truth's share of each zone pair over the scenario's is exactly ``x_i y_j``; the log
    factors are the least-squares fit over the pairs that hold trips.
    """
    g, z, d = scenario.demand.gravity, city.zones, truth.demand
    kw = {"node_zone": z.node_zone, "zone_x": z.x, "zone_y": z.y, "beta_per_km": g.beta_per_km}
    base = gravity_shares(residents=z.residents, jobs=z.jobs, **kw)
    pert = gravity_shares(
        residents=np.rint(z.residents * np.asarray(d["zone_residents_factor"])).astype(np.int64),
        jobs=np.rint(z.jobs * np.asarray(d["zone_jobs_factor"])).astype(np.int64),
        **kw,
    )
    i, j = np.nonzero((base > 0) & (pert > 0))
    nz = z.n_zones
    A = np.zeros((i.size, 2 * nz))
    A[np.arange(i.size), i] = 1.0
    A[np.arange(i.size), nz + j] = 1.0
    w = np.sqrt(base[i, j])
    x = np.linalg.lstsq(A * w[:, None], np.log(pert[i, j] / base[i, j]) * w, rcond=None)[0]
    # the hourly level: trips spread over the window's hours by the profile (times the
    # truth's hour factors), scaled by the truth's demand scale
    prof = np.asarray(g.profile, np.float64)
    if prof.size != 24:
        raise InputError("true_factors needs an hourly (24-value) demand profile")
    hours = np.arange(24)
    start, end = float(scenario.time.start), float(scenario.time.start + scenario.time.duration)
    overlap = sum(
        np.clip(np.minimum((hours + 1) * 3600.0 + day, end) - np.maximum(hours * 3600.0 + day, start), 0.0, None)
        for day in (0.0, 86400.0)
    )
    f_hour = np.asarray(d["hour_factor"], np.float64)
    w0, w1 = prof * overlap, prof * f_hour * overlap
    with np.errstate(divide="ignore", invalid="ignore"):
        level = np.log(d["demand_scale"] * (w1 / w1.sum()) / (w0 / w0.sum()))
    return x[:nz], x[nz:], np.where(np.isfinite(level), level, 0.0)


def _tell_stage(tell: Callable[[str, float, float], None], label: str, duration: float, t: float) -> None:
    """Report ``t`` seconds done of stage ``label`` (a replay's step callback)."""
    tell(label, t, duration)


def run_experiment(
    *,
    scenario: str = "light_day",
    overrides: dict | None = None,
    members: int = 8,
    truth_config=None,
    settings=None,
    seed: int = 0,
    keep: dict | None = None,
    oracle: bool = False,
    progress=None,
) -> dict:
    """Run truth, open loop and assimilated (and, with ``oracle``, the open loop given the
    truth's own demand factors: what a perfect demand estimate would score); return scores
    and timings (see the module docstring).

    ``progress(stage, done_s, total_s)``, if given, is called as each stage starts
    (``done_s`` 0) and after each step of a replay (stages: ``truth``, ``open_loop``,
    ``assimilated``, ``oracle``).
    """
    overrides = dict(overrides or {})
    cfg = truth_config or TruthConfig()

    def tell(stage: str, done: float, total: float) -> None:
        if progress is not None:
            progress(stage, done, total)

    t0 = time.perf_counter()
    tell("truth", 0.0, 1.0)
    truth = run_truth(cfg, scenario=scenario, overrides=overrides)
    tell("truth", 1.0, 1.0)
    t_truth = time.perf_counter() - t0
    nominal = load_scenario(scenario, overrides=overrides | {"seed": seed})
    base = settings or AssimilationSettings(members=members)
    sensors = np.array(sorted({int(s["link"]) for s in truth.sensors}), np.int64)
    truth_ds = truth.dataset
    busy = truth_ds.link_outflow.sum("time").values > 0
    held = np.flatnonzero(busy & ~np.isin(np.arange(busy.size), sensors))
    out: dict[str, Any] = {
        "sensors": int(sensors.size),
        "held_out": int(held.size),
        "truth_s": t_truth,
        "messages": len(truth.messages),
    }
    spec = FeedsSpec.model_validate(
        {
            "date": cfg.date,
            "sensors": [{k: v for k, v in row.items() if v not in ("", None)} for row in truth.sensor_table],
        }
    )
    plain = replace(base, estimate_demand=False, correct_links=False)  # the open loop's, and the oracle's
    runs = [("open_loop", plain), ("assimilated", base)] + ([("oracle", plain)] if oracle else [])
    for label, st in runs:
        out[label] = _run_arm(
            label,
            st,
            truth,
            spec=spec,
            held=held,
            sensors=sensors,
            nominal=nominal,
            tell=tell,
            keep=keep,
        )
    out.update(_gains(out, oracle=oracle))
    out["truth_demand"] = {"scale": cfg.demand_scale, "zone_sigma": cfg.zone_sigma, "hour_sigma": cfg.hour_sigma}
    return out


def _run_arm(label: str, settings, truth, *, nominal, spec, held, sensors, tell, keep: dict | None) -> dict:
    """Replay the truth's day through one arm (``open_loop``, ``assimilated`` or ``oracle``)
    of the experiment and score its estimate on the held-out links.
    """
    interval = float(nominal.outputs.interval)
    duration = float(nominal.time.duration)
    t1 = time.perf_counter()
    tell(label, 0.0, duration)
    step = functools.partial(_tell_stage, tell, label, duration)
    ens = Ensemble(nominal, settings)
    hub = FeedHub.from_spec(spec, ens.city.network, start_s=float(nominal.time.start))
    if label == "assimilated":
        _replay(ens, truth, hub, step_s=interval, until_s=duration, on_step=step)
    elif label == "open_loop":
        _replay(ens, truth, _NullHub(hub), step_s=interval, until_s=duration, on_step=step)
    else:
        _replay(
            ens,
            truth,
            _NullHub(hub),
            step_s=interval,
            until_s=duration,
            before_step=_oracle_levels(ens, *true_factors(truth, ens.city, nominal)),
            on_step=step,
        )
    wall = time.perf_counter() - t1
    est = ens.dataset()
    if keep is not None:
        keep.update({label: est, "truth": truth, "held": held, "sensors": sensors})
    sc = score(est, truth.dataset, held, interval_s=interval)
    return {
        **sc.__dict__,
        "wall_s": wall,
        "sim_per_wall": duration / wall,
        "feed": hub.totals(),
        "final_level": float(ens.demand_scale()[0].mean()),
    }


def _gains(out: dict, *, oracle: bool) -> dict:
    """``reduction``: the assimilated run's error reduction on the open loop's; with the
    oracle, ``achieved``: the share of a perfect demand estimate's gain that the filter gains.
    """
    ol, asm = out["open_loop"], out["assimilated"]
    gains: dict = {
        "reduction": {
            k: 1.0 - asm[k] / ol[k]
            for k in ("flow_rmse_5min", "flow_rmse_hourly", "flow_excess_hourly", "speed_rmse")
            if ol[k] and math.isfinite(ol[k])
        }
    }
    if oracle:
        orc = out["oracle"]
        # the share of what a perfect demand estimate would gain that the filter gains
        gains["achieved"] = {
            k: (ol[k] - asm[k]) / (ol[k] - orc[k])
            for k in ("flow_rmse_hourly", "speed_rmse")
            if ol[k] - orc[k] > 0.02 * ol[k]
        }  # (speeds: the demand barely moves them)
    return gains


def _oracle_levels(ensemble, zone, dest, level):
    """Give every member the truth's zone factors; returns the step hook that sets the
    level of the clock hour whose trips the next bucket releases.
    """
    for pool in ensemble.pools:
        pool.log_zone, pool.log_dest = zone.copy(), dest.copy()

    def hook(t: float) -> None:
        hour = int((ensemble.start_s + t) // 3600.0) % 24
        for pool in ensemble.pools:
            pool.log_level = float(level[hour])

    return hook


class _NullHub:
    """The open loop reads the feed (so its counters are comparable) but uses none of it."""

    def __init__(self, hub) -> None:
        self.hub = hub

    def push(self, payload, *, source):
        return self.hub.push(payload, source=source)

    def drain(self, until):
        self.hub.drain(until)
        return []


def _setting(key: str, text: str):
    """An ``--set KEY=VALUE`` value, typed as the setting's default is."""
    kinds: dict[str, type] = {f.name: type(f.default) for f in fields(AssimilationSettings)}
    if key not in kinds:
        raise SystemExit(f"--set {key}: no such assimilation setting (one of: {', '.join(sorted(kinds))})")
    kind = kinds[key]
    try:
        if kind is bool:
            if text.lower() not in ("true", "false"):
                raise ValueError
            return text.lower() == "true"
        return kind(text)
    except ValueError:
        raise SystemExit(f"--set {key}={text}: not a {kind.__name__}") from None


def main(argv: list[str] | None = None) -> int:
    """Run the experiment from the command line; returns the exit status."""
    p = argparse.ArgumentParser(prog="python -m experiments.twin_vs_truth", description=__doc__.split("\n\n")[0])
    p.add_argument("--scenario", default="light_day")
    p.add_argument("--start", help="override time.start (HH:MM)")
    p.add_argument("--duration", help="override time.duration (e.g. 6h)")
    p.add_argument("--trips", type=int, help="override demand.gravity.total_trips")
    p.add_argument("--members", type=int, default=8)
    p.add_argument("--out", help="write the scores as JSON here")
    p.add_argument("--json", action="store_true", help="print the scores as JSON instead of a table")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.add_argument(
        "--no-oracle",
        action="store_true",
        help="skip the oracle row (the open loop given the truth's own demand factors)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an assimilation setting, e.g. --set damping=0.5 --set observation=link",
    )
    args = p.parse_args(argv)
    over = {}
    if args.start:
        over["time.start"] = args.start
    if args.duration:
        over["time.duration"] = args.duration
    if args.trips:
        over["demand.gravity.total_trips"] = args.trips

    kw = {}
    for item in args.set:
        key, _, value = item.partition("=")
        kw[key] = _setting(key, value)
    settings = AssimilationSettings(members=args.members, **kw)

    console = Console()
    stages = ["truth", "open_loop", "assimilated"] + ([] if args.no_oracle else ["oracle"])
    bar = Progress(
        TextColumn("{task.description:<12}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f} %"),
        TimeElapsedColumn(),
        console=console,
        disable=args.quiet,
    )
    tasks: dict[str, TaskID] = {}

    def progress(stage: str, done: float, total: float) -> None:
        if stage not in tasks:
            tasks[stage] = bar.add_task(stage, total=total)
        bar.update(tasks[stage], completed=done, total=total)

    console.print(
        f"twin vs truth on [bold]{args.scenario}[/]: {len(stages)} runs ({', '.join(stages)}), "
        f"{args.members} members each"
    )
    with bar:
        res = run_experiment(
            scenario=args.scenario,
            overrides=over,
            members=args.members,
            settings=settings,
            oracle=not args.no_oracle,
            progress=progress,
        )
    text = json.dumps(res, indent=2, default=float)
    if args.out:
        write_bytes(Path(args.out), text.encode())
    if args.json:
        print(text)  # noqa: T201  (a script's output)
    else:
        console.print(result_table(res))
        if args.out:
            console.print(f"scores as JSON in [bold]{args.out}[/]")
    return 0


#: rows of the result table: (key in a run's scores, label, how to show it)
_ROWS = (
    ("flow_rmse_hourly", "hourly flow RMSE (veh/h)", "{:,.1f}"),
    ("flow_excess_hourly", "  above the Poisson floor", "{:,.1f}"),
    ("flow_rmse_5min", "5-min flow RMSE (veh/h)", "{:,.1f}"),
    ("speed_rmse", "speed RMSE (m/s)", "{:.2f}"),
    ("flow_coverage", "90 % band coverage, flow", "{:.0%}"),
    ("flow_coverage_busy", "  where 3+ vehicles expected", "{:.0%}"),
    ("speed_coverage", "90 % band coverage, speed", "{:.0%}"),
    ("wall_s", "wall time (s)", "{:,.0f}"),
)


def result_table(res: dict):
    """The experiment's scores as a table: a row per score, a column per run (open loop,
    assimilated, oracle) and the assimilated run's reduction against the open loop.
    """
    runs = [k for k in ("open_loop", "assimilated", "oracle") if k in res]
    table = Table(
        title=f"held-out links: {res['held_out']:,} ({res['sensors']:,} with sensors), {res['messages']:,} messages"
    )
    table.add_column("score", overflow="fold")
    for k in runs:
        table.add_column(k.replace("_", " "), justify="right", no_wrap=True)
    table.add_column("reduction", justify="right", no_wrap=True)
    for key, label, fmt in _ROWS:
        cells = []
        for k in runs:
            v = res[k].get(key)
            cells.append("–" if v is None or not math.isfinite(v) else fmt.format(v))
        red = res.get("reduction", {}).get(key)
        table.add_row(label, *cells, "–" if red is None else f"{red:+.0%}")
    for key, v in res.get("achieved", {}).items():
        table.add_row(f"achieved of the oracle's gain ({key})", *([""] * len(runs)), f"{v:.0%}")
    return table


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
