"""Shadow mode: the twin runs in step with the city's feed and can be forked at any moment.

:class:`Shadow` drives an :class:`~twin.live.ensemble.Ensemble` from a
:class:`~twin.feeds.FeedHub`, one output interval at a time:

- with a *pull* replay (the default for files) it runs as fast as it can, or
  paced at ``speed`` sim seconds per wall second;
- with pushed sources (MQTT, HTTP, a paced replay) it never runs ahead of the
  feed: it steps to ``t`` only once the feed's live clock (where ``clock_quorum``
  senders agree: one sender dated ahead cannot move it) has passed ``t`` plus the
  cleanser's reorder window, so late messages still count.  The lag (feed
  clock minus twin clock) is part of the status.

Forks from "now" without stopping: :meth:`Shadow.request_fork` (or a variant
YAML dropped into the watched folder, see :meth:`poll_fork_folder`) snapshots
the member nearest the ensemble mean and runs the what-ifs on the executor the
caller gave (the command line gives the project's Dask executor) in a background
thread; the results are written next to the request as JSON, atomically.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from basics.errors import InputError

__all__ = ["Shadow", "ForkJob"]

log = logging.getLogger(__name__)


@dataclass
class ForkJob:
    """A fork running in the background: its request, its state, and its results once done."""

    name: str
    request: Path | None
    sim_time_s: float
    horizon_s: float
    state: str = "running"  # running | done | failed
    results: list = field(default_factory=list)
    error: str = ""
    wall_s: float = math.nan


class Shadow:
    """The live twin (see the module docstring).

    Parameters
    ----------
    scenario
        The scenario (its ``feeds`` section gives the sensor table and cleansing).
    hub
        A started or unstarted :class:`~twin.feeds.FeedHub` (started here).
    settings
        :class:`~twin.live.settings.AssimilationSettings`.
    speed
        Sim seconds per wall second for pull replays (``None``: as fast as possible).
    city
        The built city (optional: built from the scenario otherwise).
    executor
        Runs forks (see :func:`twin.live.fork.fork`); the caller closes it.  Without one,
        a fork request fails with a message saying so, and the twin runs on.
    """

    def __init__(self, scenario, hub, settings=None, *, speed: float | None = None, city=None, executor=None) -> None:
        from twin.live.ensemble import Ensemble

        if speed is not None and not speed > 0:
            raise InputError(f"--speed must be positive, got {speed}")
        self.scenario = scenario
        self.hub = hub
        self.ensemble = Ensemble(scenario, settings, city=city)
        self.step_s = float(scenario.outputs.interval)
        self.end_s = float(scenario.time.duration)
        self.speed = speed
        self.wall0 = time.monotonic()
        self.sim0 = 0.0
        self.jobs: list[ForkJob] = []
        self._executor = executor
        self._seen_requests: set[str] = set()
        self.hub.start()

    # ------------------------------------------------------------------ clock
    @property
    def now(self) -> float:
        """The twin's sim time (seconds since the scenario's start)."""
        return self.ensemble.now

    @property
    def pull(self) -> bool:
        """True when every source is a pull replay (the twin sets the pace)."""
        srcs = self.hub.sources
        return bool(srcs) and all(getattr(s, "pull", False) for s in srcs)

    def lag_s(self) -> float:
        """Feed clock minus twin clock (s); NaN before the first message."""
        ft = self.hub.feed_time
        return ft - self.now if math.isfinite(ft) else math.nan

    def ready(self) -> bool:
        """Whether the next step may run now."""
        target = self.now + self.step_s
        if self.speed is not None and time.monotonic() < self.wall0 + (target - self.sim0) / self.speed:
            return False
        if self.pull or self.hub.exhausted:
            return True
        window = float(getattr(self.hub.cleanser, "window", 0.0) or 0.0)
        return self.hub.feed_time >= target + window

    def step(self) -> bool:
        """Run one output interval if :meth:`ready`; returns whether it did."""
        if self.now >= self.end_s - 1e-9 or not self.ready():
            return False
        target = min(self.now + self.step_s, self.end_s)
        records = self.hub.drain(target, flush=self.hub.exhausted)
        self.ensemble.advance(target, records)
        return True

    def run(
        self,
        *,
        until: float | None = None,
        on_step=None,
        idle_s: float = 0.05,
        stop: threading.Event | None = None,
        fork_folder: Path | None = None,
    ) -> None:
        """Step until ``until`` (default: the scenario's end), a ``stop`` event, or the feed ends."""
        end = self.end_s if until is None else min(until, self.end_s)
        while self.now < end - 1e-9:
            if stop is not None and stop.is_set():
                break
            if fork_folder is not None:
                self.poll_fork_folder(fork_folder)
            if self.step():
                if on_step is not None:
                    on_step(self)
            else:
                time.sleep(idle_s)

    # ------------------------------------------------------------------ status
    def status(self) -> dict:
        """Sim time, lag behind the feed, message counters, KPIs of the ensemble."""
        ens = self.ensemble
        kp = [m.kpis() for m in ens.members]
        tot = self.hub.totals()

        def mean(key):
            vals = [k[key] for k in kp if isinstance(k.get(key), (int, float)) and math.isfinite(k[key])]
            return float(np.mean(vals)) if vals else math.nan

        return {
            "sim_time_s": self.now,
            "clock_s": float(self.scenario.time.start) + self.now,
            "lag_s": self.lag_s(),
            "accepted": tot.get("accepted", 0),
            "rejected": tot.get("rejected", 0),
            "late": tot.get("late", 0),
            "duplicate": tot.get("duplicate", 0),
            "mean_speed_kmh": mean("mean_network_speed_kmh"),
            "vehicles": float(np.mean([m.traffic.counts()["on_network"] for m in ens.members])),
            "trips_completed": mean("trips_completed"),
            "demand_level": float(ens.demand_scale()[0].mean()),
            "links_corrected": int(np.count_nonzero(ens.link_factor < 1.0)),
            "forks_running": sum(j.state == "running" for j in self.jobs),
        }

    # ------------------------------------------------------------------ forks
    def representative(self):
        """The member whose demand factors are nearest the ensemble mean."""
        th = self.ensemble.theta
        i = int(np.argmin(((th - th.mean(axis=0)) ** 2).sum(axis=1)))
        return self.ensemble.members[i]

    def snapshot(self, path: str | Path) -> Path:
        """Snapshot of the representative member (a twin that :mod:`twin.live.fork` can fork)."""
        return self.representative().snapshot(path)

    def request_fork(self, variants, *, horizon_s: float, name: str, out: Path | None = None) -> ForkJob:
        """Fork ``variants`` (and "no action") from now, in the background; returns the job."""
        from twin.live.fork import fork
        from twin.snapshot import snapshot_bytes

        # the state goes to the fork in memory: never a file in the request folder (issue 15)
        snap = snapshot_bytes(self.representative())
        job = ForkJob(name=name, request=out, sim_time_s=self.now, horizon_s=horizon_s)
        self.jobs.append(job)

        def work():
            t0 = time.perf_counter()
            try:
                job.results = fork(snap, variants, horizon_s=horizon_s, executor=self._get_executor())
                job.state = "done"
            except Exception as exc:  # noqa: BLE001  (reported in the job and the result file)
                job.state, job.error = "failed", f"{type(exc).__name__}: {exc}"
                log.exception("fork %s failed", name)
            finally:
                job.wall_s = time.perf_counter() - t0
                if out is not None:
                    _write_json(out, _job_json(job))

        threading.Thread(target=work, name=f"fork-{name}", daemon=True).start()
        return job

    def poll_fork_folder(self, folder: Path, *, horizon_s: float = 7200.0) -> list[ForkJob]:
        """Start a fork for each new ``*.yaml`` variant in ``folder`` (results: ``NAME.result.json``).

        A request file may set ``horizon`` (e.g. ``2h``); a bad request gets a
        result file with the error instead of stopping the twin.
        """
        from scenarios import parse_duration
        from twin.live.fork import load_variant

        started = []
        for path in sorted(Path(folder).glob("*.yaml")):
            key = str(path.resolve())
            if key in self._seen_requests:
                continue
            self._seen_requests.add(key)
            out = path.with_suffix(".result.json")
            try:
                variant = load_variant(path)
                import yaml

                raw = yaml.safe_load(path.read_text()) or {}
                horizon = parse_duration(raw.get("horizon", horizon_s)) if isinstance(raw, dict) else horizon_s
            except (InputError, ValueError) as exc:
                _write_json(out, {"name": path.stem, "state": "failed", "error": str(exc)})
                continue
            started.append(self.request_fork([variant], horizon_s=horizon, name=path.stem, out=out))
        return started

    def _get_executor(self):
        if self._executor is None:
            raise InputError("this live twin was started without an executor: it cannot run forks")
        return self._executor

    def wait_for_forks(self, timeout: float = 300.0) -> bool:
        """Wait until no fork is running (at most ``timeout`` seconds); whether they all ended."""
        deadline = time.monotonic() + timeout
        while any(j.state == "running" for j in self.jobs):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def close(self) -> None:
        """Stop the feed (the executor is the caller's to close)."""
        self.hub.stop()

    # ------------------------------------------------------------------ results
    def save(self, out_dir: str | Path, *, files=()) -> Path:
        """The representative member's run folder, plus ``assimilation.nc`` (the
        ensemble's estimate with its bands, and the feed's counters).

        ``files`` (e.g. the dead-letter file and its rotations, written beside the folder
        while running) are moved into the folder once it is written, under their names
        (``x.dead_letter.jsonl`` becomes ``dead_letter.jsonl``).
        """
        import xarray as xr

        from twin.results import write_run

        est = self.ensemble.dataset()
        feed = self.hub.data_vars()
        coords = {k[6:]: v for k, v in feed.items() if k.startswith("coord:")}
        data = {k: v for k, v in feed.items() if not k.startswith("coord:")}
        est = est.merge(xr.Dataset(data, coords=coords))
        out = write_run(self.representative(), Path(out_dir), extra={"assimilation.nc": est})
        for f in map(Path, files):
            if f.exists():
                _, sep, tail = f.name.rpartition(".dead_letter.")
                os.replace(f, out / (f"dead_letter.{tail}" if sep else f.name))
        return out


def _job_json(job: ForkJob) -> dict:
    from basics.atomic import json_safe

    return {
        "name": job.name,
        "state": job.state,
        "error": job.error,
        "sim_time_s": job.sim_time_s,
        "horizon_s": job.horizon_s,
        "wall_s": job.wall_s,
        "variants": [{"name": r.name, "kpis": json_safe(r.kpis)} for r in job.results],
    }


def _write_json(path: Path, data: dict) -> None:
    from basics.atomic import write_json

    write_json(path, data)
