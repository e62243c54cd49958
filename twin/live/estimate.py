"""The live twin's outputs: the estimates it issues, interval by interval, and their Dataset.

:class:`EstimateLog` keeps what the ensemble (:class:`~twin.live.ensemble.Ensemble`)
issues for each output interval once its own counts are in: every link's predictive
mean and 5-95 % band of the count (:func:`twin.live.observation.count_band`) and of the
speed, the demand factors and their spread, the level, and how many observations and
link corrections went in.  :meth:`EstimateLog.dataset` writes them as the
``assimilation.nc`` Dataset.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xarray as xr

from twin.live.observation import count_band

__all__ = ["EstimateLog"]


@dataclass
class EstimateLog:
    """The issued estimates, one entry per output interval (lists in issue order)."""

    time: list[float] = field(default_factory=list)
    flow_mean: list[np.ndarray] = field(default_factory=list)
    flow_lo: list[np.ndarray] = field(default_factory=list)
    flow_hi: list[np.ndarray] = field(default_factory=list)
    speed_mean: list[np.ndarray] = field(default_factory=list)
    speed_lo: list[np.ndarray] = field(default_factory=list)
    speed_hi: list[np.ndarray] = field(default_factory=list)
    theta_mean: list[np.ndarray] = field(default_factory=list)
    theta_sd: list[np.ndarray] = field(default_factory=list)
    dest_mean: list[np.ndarray] = field(default_factory=list)
    dest_sd: list[np.ndarray] = field(default_factory=list)
    level: list[float] = field(default_factory=list)
    level_sd: list[float] = field(default_factory=list)
    n_obs: list[int] = field(default_factory=list)
    corrected: list[int] = field(default_factory=list)
    #: the observations received: (end time s, link, period s, flow veh/h, speed m/s, lane)
    observed: list[tuple[float, int, float, float, float, int]] = field(default_factory=list)

    def __setstate__(self, state: dict) -> None:
        state.setdefault("observed", [])  # a log restored from before observations were kept
        self.__dict__.update(state)

    def add_observation(self, r) -> None:
        """Keep a received observation (:class:`twin.feeds.records.Observation`) for the results."""
        self.observed.append(
            (float(r.t), int(r.link), float(r.interval_s), float(r.flow_vph), float(r.speed_mps), int(r.lane))
        )

    def add_links(
        self,
        t: float,
        counts: np.ndarray,
        speeds: np.ndarray,
        *,
        interval_s: float,
        band_cv: float,
        speed_cv: float,
        rng: np.random.Generator,
    ) -> None:
        """Issue the links' estimate of the interval ending at ``t``.

        Parameters
        ----------
        t
            End of the interval (simulated seconds).
        counts, speeds
            The members' counts (already moved to the current demand factors) and speeds,
            ``(members, links)``.
        interval_s
            The output interval (counts become flows per hour).
        band_cv
            Relative error of a link's expected count beyond the members' spread.
        speed_cv
            Relative noise added to the members' speeds in the speed band.
        rng
            The ensemble's generator (the speed noise is drawn from it).
        """
        k = 16
        sp = np.repeat(speeds, k, axis=0) * np.exp(speed_cv * rng.normal(size=(counts.shape[0] * k, counts.shape[1])))
        to_vph = 3600.0 / interval_s
        self.time.append(t)
        self.flow_mean.append(counts.mean(axis=0) * to_vph)
        lo, hi = count_band(counts, model_cv=band_cv)
        self.flow_lo.append(lo * to_vph)
        self.flow_hi.append(hi * to_vph)
        self.speed_mean.append(speeds.mean(axis=0))
        lo, hi = np.percentile(sp, [5, 95], axis=0)
        self.speed_lo.append(lo)
        self.speed_hi.append(hi)

    def add_demand(
        self,
        scale: tuple[np.ndarray, np.ndarray],
        dest: np.ndarray,
        level: tuple[float, float],
        *,
        n_obs: int,
        corrected: int,
    ) -> None:
        """Issue the demand estimate of the same interval (after :meth:`add_links`).

        Parameters
        ----------
        scale
            Mean and sd over members of each origin zone's demand scale.
        dest
            Each member's destination factors, ``(members, zones)``.
        level
            The log level and its sd.
        n_obs, corrected
            Observations assimilated and link corrections changed at the last update.
        """
        self.theta_mean.append(scale[0])
        self.theta_sd.append(scale[1])
        self.dest_mean.append(dest.mean(axis=0))
        self.dest_sd.append(dest.std(axis=0))
        self.level.append(level[0])
        self.level_sd.append(level[1])
        self.n_obs.append(n_obs)
        self.corrected.append(corrected)

    def dataset(self, *, n_links: int, n_zones: int, attrs: dict) -> xr.Dataset:
        """The issued estimates as a Dataset (``assimilation.nc``).

        Parameters
        ----------
        n_links, n_zones
            The city's links and zones (the shape of an empty log's variables).
        attrs
            The Dataset's attributes (members, seed, scenario name).

        Returns
        -------
        xarray.Dataset
            Link flow and speed means with 5-95 % bands, demand factors, level, counters.
        """
        nl, nz = n_links, n_zones
        L = self

        def v(dims, data, units, name):
            return xr.Variable(dims, np.asarray(data), attrs={"units": units, "long_name": name})

        def stack(rows, n):
            return np.stack(rows) if rows else np.zeros((0, n))

        return xr.Dataset(
            {
                "est_flow": v(("time", "link"), stack(L.flow_mean, nl), "veh h-1", "ensemble mean link outflow"),
                "est_flow_p05": v(
                    ("time", "link"), stack(L.flow_lo, nl), "veh h-1", "5th percentile of the predicted outflow"
                ),
                "est_flow_p95": v(
                    ("time", "link"), stack(L.flow_hi, nl), "veh h-1", "95th percentile of the predicted outflow"
                ),
                "est_speed": v(("time", "link"), stack(L.speed_mean, nl), "m s-1", "ensemble mean link speed"),
                "est_speed_p05": v(
                    ("time", "link"), stack(L.speed_lo, nl), "m s-1", "5th percentile of the predicted speed"
                ),
                "est_speed_p95": v(
                    ("time", "link"), stack(L.speed_hi, nl), "m s-1", "95th percentile of the predicted speed"
                ),
                "demand_scale": v(
                    ("time", "zone"),
                    stack(L.theta_mean, nz),
                    "1",
                    "estimated demand scale by origin zone (ensemble mean)",
                ),
                "demand_scale_sd": v(
                    ("time", "zone"), stack(L.theta_sd, nz), "1", "ensemble spread of the demand scale"
                ),
                "dest_scale": v(
                    ("time", "zone"),
                    stack(L.dest_mean, nz),
                    "1",
                    "estimated demand factor by destination zone (ensemble mean)",
                ),
                "dest_scale_sd": v(
                    ("time", "zone"), stack(L.dest_sd, nz), "1", "ensemble spread of the destination factor"
                ),
                "log_level": v(("time",), np.asarray(L.level), "1", "estimated log demand level of the current hour"),
                "log_level_sd": v(
                    ("time",), np.asarray(L.level_sd), "1", "its posterior (kalman) or ensemble (enkf) sd"
                ),
                "observations_used": v(
                    ("time",), np.asarray(L.n_obs, np.int64), "1", "observations assimilated at this update"
                ),
                "links_corrected": v(
                    ("time",), np.asarray(L.corrected, np.int64), "1", "link capacity corrections changed"
                ),
                **_observation_vars(L.observed),
            },
            coords={
                "time": v(("time",), np.asarray(L.time), "s", "end of the output interval"),
                "link": v(("link",), np.arange(nl), "1", "link index"),
                "zone": v(("zone",), np.arange(nz), "1", "zone index"),
            },
            attrs=attrs,
        )


def _observation_vars(rows: list) -> dict[str, xr.Variable]:
    """The observations received, one entry each along ``observation`` (for reports: observed
    against estimated flow and speed).
    """
    cols: list[Sequence[Any]] = list(zip(*rows, strict=True)) if rows else [[]] * 6
    spec = [
        ("obs_time_s", np.float64, "s", "end of the observation period, since the start"),
        ("obs_link", np.int64, "1", "link index"),
        ("obs_interval_s", np.float64, "s", "length of the observation period"),
        ("obs_flow", np.float64, "veh h-1", "observed flow (NaN: not reported)"),
        ("obs_speed", np.float64, "m s-1", "observed speed (NaN: not reported)"),
        ("obs_lane", np.int64, "1", "lane (-1: the whole road)"),
    ]
    return {
        name: xr.Variable(("observation",), np.asarray(col, dtype), attrs={"units": units, "long_name": long})
        for (name, dtype, units, long), col in zip(spec, cols, strict=True)
    }
