"""The live twin's filter step: the demand factors' estimate, and how the counts move it.

:class:`DemandFilter` holds the log demand factors ``theta`` of every member (origin
zones, the level, destination zones) and, for ``method="kalman"``, the Kalman state they
are drawn from: the mean and covariance of ``theta`` plus the previous clock hour's
level and the day's level.  Its updates are pure arithmetic on arrays that the
ensemble (:class:`~twin.live.ensemble.Ensemble`) gathers from its members and from the
observation operator (:class:`~twin.live.observation.Crossings`):

- :meth:`DemandFilter.kalman_update` -- a Kalman update of the factors from each
  sensor's count, with the operator ``H``;
- :meth:`DemandFilter.end_update` -- the clock hour's hand-over and a new draw of the
  members' factors;
- :meth:`DemandFilter.enkf_walk` and :meth:`DemandFilter.enkf_update` -- the ensemble
  Kalman filter (``method="enkf"``) on the members' counts.

Every random draw comes from the ensemble's one generator, in the order the ensemble
makes them, so a run is reproducible from its seed.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import ndtr

from kernels.assimilation import enkf_update
from twin.live.settings import AssimilationSettings

__all__ = ["DemandFilter", "detector_mean"]


def detector_mean(counts: np.ndarray, count_sd: float) -> np.ndarray:
    """What a detector with additive noise reports on average, clipped at zero.

    Parameters
    ----------
    counts
        The true counts (any shape).
    count_sd
        The sd of the detector's additive noise (``> 0``).

    Returns
    -------
    numpy.ndarray
        ``E[max(0, c + e)]`` with ``e ~ N(0, count_sd)``: near-empty links read high on
        average (at night, most of them).
    """
    z = counts / count_sd
    return counts * ndtr(z) + count_sd * np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)


class DemandFilter:
    """The members' demand factors and the filter state they come from (see the module docstring).

    Parameters
    ----------
    settings
        The ensemble's settings (already checked).
    n_zones
        Zones of the city.
    n_members
        Members of the ensemble.
    rng
        The ensemble's generator (the prior's draws come from it, here, in this order).
    start_s
        The scenario's start (clock seconds since midnight): the level is the current
        clock hour's.
    """

    def __init__(
        self, settings: AssimilationSettings, *, n_zones: int, n_members: int, rng: np.random.Generator, start_s: float
    ) -> None:
        s = self.settings = settings
        self.rng = rng
        self.n_zones = nz = n_zones
        self.theta = np.zeros((n_members, nz + 1 + (nz if s.destination_factors else 0)))
        if s.estimate_demand and n_members > 1:
            self.theta[:, :nz] = rng.normal(0.0, s.zone_sd, (n_members, nz))
            self.theta[:, nz] = rng.normal(0.0, s.level_sd, n_members)
            if s.destination_factors:
                self.theta[:, nz + 1 :] = rng.normal(0.0, s.zone_sd, (n_members, nz))
        p = self.theta.shape[1]
        self._init_kalman_state(p)
        self.start_s = float(start_s)
        self.hour = math.floor(self.start_s / 3600.0)  # clock hour (since the start's midnight) of the level
        if s.method == "kalman" and s.estimate_demand and n_members > 1:
            zz = rng.normal(0.0, 1.0, (n_members, p))  # members draw theta only
            zz -= zz.mean(axis=0)
            self.offsets = zz / zz.std(axis=0)
            self.theta = self.draw()

    def _init_kalman_state(self, p: int) -> None:
        """Prior mean and covariance of the Kalman state, and the factors' walk per update."""
        s, nz = self.settings, self.n_zones
        prior_var = np.concatenate([np.full(nz, s.zone_sd**2), [s.level_sd**2], np.full(p - nz - 1, s.zone_sd**2)])
        if s.method == "kalman":
            level_walk, zone_walk = s.kalman_level_walk_sd, s.kalman_zone_walk_sd
        else:
            level_walk, zone_walk = s.level_walk_sd, s.zone_walk_sd
        self.walk_var = np.concatenate([np.full(nz, zone_walk**2), [level_walk**2], np.full(p - nz - 1, zone_walk**2)])
        # the Kalman state: theta (its level is the current clock hour's), the previous
        # hour's level (its trips are still on the road, and their counts still inform
        # it), and the day's level: each hour's level is the day's plus a deviation
        self.mean = np.zeros(p + 2)
        hv = s.hour_sd**2
        self.cov = np.diag(np.concatenate([prior_var, [s.level_sd**2 + hv, s.level_sd**2]]))
        self.cov[nz, nz] += hv
        self.cov[nz, p] = self.cov[p, nz] = s.level_sd**2 + hv
        self.cov[nz, p + 1] = self.cov[p + 1, nz] = self.cov[p, p + 1] = self.cov[p + 1, p] = s.level_sd**2

    # ------------------------------------------------------------ the members' factors
    def draw(self) -> np.ndarray:
        """The members' factors drawn from the Kalman state (each member keeps its offsets).

        Returns
        -------
        numpy.ndarray
            ``(members, factors)``, clipped to what the pool can release.
        """
        p = self.theta.shape[1]
        sd = np.linalg.cholesky(self.cov[:p, :p] + 1e-12 * np.eye(p))
        th = self.mean[:p] + self.offsets @ sd.T
        return np.clip(th, -2.0, math.log(self.settings.pool_factor))

    def demand_scale(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and sd over members of each zone's demand scale ``exp(level + zone)``.

        Returns
        -------
        tuple of numpy.ndarray
            Mean and sd, one per zone.
        """
        nz = self.n_zones
        sc = np.exp(self.theta[:, nz : nz + 1] + self.theta[:, :nz])
        return sc.mean(axis=0), sc.std(axis=0)

    def level_hour(self) -> int | None:
        """The clock hour of the level (``None`` with one level for the whole run)."""
        return self.hour if self.settings.hour_sd > 0 else None

    def prev_shift(self) -> float:
        """The previous hour's log level minus the current hour's."""
        p = self.theta.shape[1]
        return float(self.mean[p] - self.mean[self.n_zones])

    # ------------------------------------------------------------ Kalman
    def walk(self) -> None:
        """The factors random-walk between updates (the covariance grows)."""
        p = self.theta.shape[1]
        self.cov[:p, :p] += np.diag(self.walk_var)

    def kalman_update(
        self, obs: np.ndarray, sim: np.ndarray, *, H: np.ndarray, shift: np.ndarray, expect: np.ndarray
    ) -> None:
        """Kalman update of the state from sensor counts.

        Parameters
        ----------
        obs
            Observed counts, one per sensor window.
        sim
            The members' simulated counts of those windows, ``(members, windows)``.
        H, shift, expect
            The observation operator's derivative, the shift of the simulated counts to the
            current factors, and the expected counts
            (:meth:`twin.live.observation.Crossings.operator`).
        """
        s = self.settings
        if s.count_sd > 0:  # a detector's clipped additive noise
            sim = detector_mean(sim, s.count_sd)
        pred = sim.mean(axis=0)
        H = np.pad(H, ((0, 0), (0, self.mean.size - H.shape[1])))  # the day's level: no direct effect
        pred = np.maximum(pred + shift, 0.0) if s.prediction == "simulated" else expect
        # detector noise, the truth's Poisson noise, the members' own (one common pool:
        # their mean is one realisation), and the model's error
        # (all from the prediction: weights from the observed counts would favour the
        # low ones and bias the estimate down, by about a count per window)
        lam = np.maximum(expect if s.prediction == "simulated" else pred, 0.5)
        var = 2.0 * lam + ((s.count_cv**2 + s.model_cv**2) * lam**2) + s.count_sd**2
        PHt = self.cov @ H.T
        S = H @ PHt + np.diag(var)
        K = np.linalg.solve(S, PHt.T).T
        self.mean = self.mean + K @ (obs - pred)
        ikh = np.eye(self.mean.size) - K @ H
        self.cov = ikh @ self.cov @ ikh.T + (K * var) @ K.T  # Joseph form: stays symmetric, PSD
        self.cov = 0.5 * (self.cov + self.cov.T)

    def end_update(self, now: float) -> None:
        """Clip the state, hand the level over at a new clock hour, and draw the members again.

        Parameters
        ----------
        now
            Simulated seconds since the start.
        """
        s, nz, p = self.settings, self.n_zones, self.theta.shape[1]
        self.mean = np.clip(self.mean, -2.0, math.log(s.pool_factor))
        hour = math.floor((self.start_s + now) / 3600.0 + 1e-9)
        if s.hour_sd > 0 and hour != self.hour:
            # a new clock hour (the trips released from now on belong to it): the last
            # hour's level moves to "previous"; the new one starts from the day's level plus
            # ``hour_persistence`` of the last hour's deviation from it, with more spread
            rho = s.hour_persistence
            F = np.eye(self.mean.size)
            F[p, :] = 0.0
            F[p, nz] = 1.0
            F[nz, :] = 0.0
            F[nz, nz], F[nz, p + 1] = rho, 1.0 - rho
            self.mean = F @ self.mean
            self.cov = F @ self.cov @ F.T
            self.cov[nz, nz] += s.hour_sd**2
            self.hour = hour
        self.theta = self.draw()

    def level_of(self, t: float) -> tuple[float, float]:
        """The log level of the interval ending at ``t`` and its sd.

        Parameters
        ----------
        t
            End of the interval, simulated seconds.

        Returns
        -------
        tuple of float
            ``"kalman"``: the posterior mean and sd of the interval's own clock hour (the
            previous hour's once a new one began); ``"enkf"``: the members' mean and sd.
        """
        s, nz = self.settings, self.n_zones
        if s.method == "kalman":
            i = nz
            if math.floor((self.start_s + t) / 3600.0 - 1e-9) == self.hour - 1 and s.hour_sd > 0:
                i = self.theta.shape[1]
            return float(self.mean[i]), float(math.sqrt(max(self.cov[i, i], 0.0)))
        return float(self.theta[:, nz].mean()), float(self.theta[:, nz].std())

    # ------------------------------------------------------------ EnKF
    def enkf_walk(self) -> None:
        """Random walk of the members' factors (mean-reverting towards the plan when reversion < 1)."""
        s, nz = self.settings, self.n_zones
        walk = np.concatenate(
            [np.full(nz, s.zone_walk_sd), [s.level_walk_sd], np.full(self.theta.shape[1] - nz - 1, s.zone_walk_sd)]
        )
        self.theta = s.reversion * self.theta + self.rng.normal(0.0, 1.0, self.theta.shape) * walk

    def enkf_update(self, obs: np.ndarray, pred: np.ndarray, var: np.ndarray) -> None:
        """Damped EnKF update of the members' factors, relaxed to the prior spread.

        Parameters
        ----------
        obs
            Observed counts (summed by zone or per sensor).
        pred
            The members' counts of the same, ``(members, observations)``.
        var
            The observations' error variance.
        """
        s = self.settings
        eps = self.rng.normal(0.0, 1.0, pred.shape) * np.sqrt(var)
        prior_sd = self.theta.std(axis=0)
        # the counts answer to demand released a few minutes earlier, so the same
        # shortfall shows again before a correction can act: take part of each
        # increment (a damped update) or the estimate overshoots and oscillates
        post = self.theta + s.damping * (
            enkf_update(self.theta, pred, obs, var, eps, inflation=s.inflation) - self.theta
        )
        # relaxation to prior spread (Whitaker & Hamill 2012): a small ensemble
        # fed many observations would otherwise collapse and stop learning
        mean = post.mean(axis=0)
        post_sd = np.maximum(post.std(axis=0), 1e-12)
        factor = 1.0 + s.rtps * (prior_sd - post_sd) / post_sd
        self.theta = np.clip(mean + (post - mean) * factor, -2.0, math.log(s.pool_factor))
