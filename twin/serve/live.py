"""Shadow mode behind the page: ``twin serve --live FEED``.

:class:`LiveDriver` wraps a :class:`~twin.live.shadow.Shadow` (the ensemble in step
with the feed) for the :class:`~twin.serve.runner.Runner`: the runner thread calls
:meth:`LiveDriver.step` instead of running a twin, shows the member nearest the
ensemble mean on the map (:attr:`LiveDriver.twin`), and adds :meth:`LiveDriver.state`
to each publication:

- ``feed``: messages received (raw, as pushed), accepted, applied (accepted and
  released to the twin), rejected, late, duplicate, pending -- the hub's own counters;
- ``lag_sim_s``: the feed's clock minus the twin's (simulated seconds; ``None``
  before the first message); ``lag_wall_s``: wall seconds since the last message;
- ``demand``: each zone's demand scale, mean and spread (sd) over the members, and
  their overall mean;
- ``sensors``: for a few sensor links (the busiest when first observed), the
  observed flow and speed against the estimate with its 90 % band (5-95 %), over
  the last :data:`HISTORY` output intervals; ``sensor_links``: every link observed.

Only new observations are read at each publication (the estimate log is appended
to, never changed), so the work per update stays proportional to what changed.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from basics.clock import format_clock
from basics.numeric import EPS

__all__ = ["LiveDriver", "HISTORY", "N_SENSORS"]

#: output intervals kept in the sensor charts
HISTORY = 36
#: sensor links charted
N_SENSORS = 4


#: one observation as charted: (time s, flow veh/h, speed km/h), None where not observed; JSON writes it as a list
_ObsRow = tuple[float, float | None, float | None]


def _f(v: float, digits: int = 1) -> float | None:
    v = float(v)
    return round(v, digits) if math.isfinite(v) else None


class LiveDriver:
    """Steps a shadow twin for the runner and describes the feed and the estimate.

    Parameters
    ----------
    shadow
        A :class:`~twin.live.shadow.Shadow` (its feed started and connected).
    n_sensors
        Sensor links charted on the page.
    """

    def __init__(self, shadow: Any, *, n_sensors: int = N_SENSORS) -> None:
        self.shadow = shadow
        self.hub = shadow.hub
        self.n_sensors = int(n_sensors)
        self.start_s = float(shadow.scenario.time.start)
        self._n_obs = 0  # observations of the estimate log read so far
        self._obs_count: dict[int, int] = {}  # link -> observations with a count
        self._obs_flow: dict[int, float] = {}  # link -> sum of the observed flows
        self._obs: dict[int, list[_ObsRow]] = {}  # charted link -> its observations
        self.charted: list[int] = []

    # ------------------------------------------------------------------ driving
    @property
    def twin(self) -> Any:
        """The member shown on the map: the one nearest the ensemble mean."""
        return self.shadow.representative()

    @property
    def finished(self) -> bool:
        """True at the scenario's end."""
        return bool(self.shadow.now >= self.shadow.end_s - EPS)

    def step(self) -> bool:
        """Run one output interval when the feed (or the pace) allows; whether it did."""
        return bool(self.shadow.step())

    def repace(self, speed: float | None = None) -> None:
        """Pace pull replays from now (after a pause or at a new ``speed``)."""
        sh = self.shadow
        if speed is not None:
            sh.speed = float(speed)
        sh.wall0, sh.sim0 = time.monotonic(), sh.now

    def close(self) -> None:
        """Stop the feed."""
        self.shadow.close()

    # ------------------------------------------------------------------ state
    def counters(self) -> dict[str, int]:
        """The feed's counters now (see the module docstring)."""
        tot = self.hub.totals()
        pending = int(self.hub.pending)
        accepted = int(tot.get("accepted", 0))
        return {
            "received": int(self.hub.received),
            "accepted": accepted,
            "applied": accepted - pending,
            "rejected": int(tot.get("rejected", 0)),
            "late": int(tot.get("late", 0)),
            "duplicate": int(tot.get("duplicate", 0)),
            "pending": pending,
        }

    def state(self) -> dict[str, Any]:
        """The ``live`` section of the page's state (see the module docstring)."""
        sh, hub = self.shadow, self.hub
        last = float(hub.last_push_wall)
        ft = float(hub.feed_time)
        mean, sd = sh.ensemble.demand_scale()
        self._read_observations()
        return {
            "feed": self.counters(),
            "lag_sim_s": _f(sh.lag_s(), 0),
            "lag_wall_s": _f(time.time() - last, 1) if math.isfinite(last) else None,
            "feed_clock": format_clock(self.start_s + ft, with_seconds=True) if math.isfinite(ft) else None,
            "members": len(sh.ensemble.members),
            "start_s": self.start_s,
            "exhausted": bool(hub.exhausted),
            "demand": {
                "mean": _f(float(np.mean(mean)), 3),
                "zones": [[_f(m, 3), _f(s, 3)] for m, s in zip(mean, sd, strict=True)],
            },
            "sensor_links": sorted(self._obs_count),
            "sensors": self._sensor_charts(),
        }

    def _read_observations(self) -> None:
        """Take the observations received since the last call (only those)."""
        obs = self.shadow.ensemble.log.observed
        new = obs[self._n_obs :]
        self._n_obs += len(new)
        for t, link, _period, flow, speed, _lane in new:
            self._obs_count[link] = self._obs_count.get(link, 0) + int(math.isfinite(flow))
            self._obs_flow[link] = self._obs_flow.get(link, 0.0) + (flow if math.isfinite(flow) else 0.0)
            if link in self._obs:
                self._obs[link].append((round(t, 1), _f(flow), _f(speed * 3.6)))
        if len(self.charted) < self.n_sensors and self._obs_count:
            # the busiest sensor links so far (ties by index), kept once charted
            ranked = sorted(self._obs_flow, key=lambda k: (-self._obs_flow[k], k))
            for link in ranked:
                if len(self.charted) >= self.n_sensors:
                    break
                if link not in self.charted:
                    self.charted.append(link)
                    self._obs[link] = [
                        (round(t, 1), _f(f), _f(s * 3.6)) for t, lk, _p, f, s, _l in obs[: self._n_obs] if lk == link
                    ]

    def _sensor_charts(self) -> dict[str, Any]:
        """Observed and estimated flow (veh/h) and speed (km/h) of the charted links."""
        log = self.shadow.ensemble.log
        net = self.shadow.ensemble.city.network
        k0 = max(0, len(log.time) - HISTORY)
        times = [round(float(t), 1) for t in log.time[k0:]]
        t_min = times[0] - self.shadow.step_s if times else -math.inf
        out: dict[str, Any] = {}
        for link in self.charted:
            obs = self._obs.get(link, [])
            while obs and obs[0][0] < t_min - 3600.0:  # keep an hour before the charted estimates
                obs.pop(0)
            rows = range(k0, len(log.time))
            out[str(link)] = {
                "name": str(net.link_name[link] or f"link {link}"),
                "t": times,
                "flow": [_f(log.flow_mean[k][link]) for k in rows],
                "flow_lo": [_f(log.flow_lo[k][link]) for k in rows],
                "flow_hi": [_f(log.flow_hi[k][link]) for k in rows],
                "speed": [_f(log.speed_mean[k][link] * 3.6) for k in rows],
                "speed_lo": [_f(log.speed_lo[k][link] * 3.6) for k in rows],
                "speed_hi": [_f(log.speed_hi[k][link] * 3.6) for k in rows],
                "obs": [r for r in obs if r[0] >= t_min],
            }
        return out
